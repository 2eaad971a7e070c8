/**
 * The bundled Action against a misbehaving mytoken server (issue #5), run as the runner runs it: every fault the
 * dev server can inject, at discovery and at the exchange of a rotating mytoken held in a repository secret. Each
 * ends in its one-line message and exit 1 (or succeeds where the fault is survivable), never rewrites the secret
 * with anything but a real newer token, leaves it valid unless the server rotated and the answer was lost, and
 * leaks no token.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { mint, startDevServer, type DevServer, type FaultSpec } from '../../devserver/index.ts';
import {
  NETWORK_HINT,
  SERVER_HINT,
  concurrencyHint,
  serverOrConcurrencyHint,
  staleAfterRotationHint,
  unknownOutcomeHint,
} from '../../src/action/messages.ts';
import { errorLine } from '../action/harness.ts';
import { REPO_SCOPE } from '../action/fixture.ts';
import {
  expectActionFailure,
  expectNoLeaks,
  isValid,
  runCanaries,
  secretWrites,
  sleep,
  withFixture,
} from './helpers.ts';

let faultsFired = 0;

afterAll(() => {
  if (process.env.MYTOKEN_RELIABILITY_COUNTS) {
    console.info(`action-faults: ${faultsFired} faults fired`);
  }
});

const PATHS = {
  discovery: '/.well-known/mytoken-configuration',
  exchange: '/api/v0/token/access',
} as const;

/** Backoffs of milliseconds; per-attempt timeouts short enough that a hanging server costs little. */
const FAST = { MYTOKEN_ACTION_RETRY_BASE_MS: '5' };
const SHORT_TIMEOUT = { ...FAST, MYTOKEN_ACTION_TIMEOUT_MS: '150' };

interface Row {
  name: string;
  at: keyof typeof PATHS;
  fault: Omit<FaultSpec, 'path'>;
  env?: Record<string, string>;
  autoRevoke?: boolean;
  /** The one error line for a server at `url` and secret `s`, or `ok` for a fault the run survives. */
  line: ((url: string, s: string) => string) | 'ok';
  /** The server rotated and the answer was lost: the secret's token is dead afterwards. */
  lost?: boolean;
}

const at = (url: string) => `the mytoken server ${url}`;

const ROWS: Row[] = [
  {
    name: 'connections reset before discovery answers',
    at: 'discovery',
    fault: { kind: 'reset', times: 3 },
    line: (url) => `cannot reach ${at(url)} (UND_ERR_SOCKET). ${NETWORK_HINT}`,
  },
  {
    name: 'a connection reset at the exchange, before the server handled it',
    at: 'exchange',
    fault: { kind: 'reset' },
    line: (url) => `cannot reach ${at(url)} (UND_ERR_SOCKET). ${NETWORK_HINT}`,
  },
  {
    name: 'discovery that never answers',
    at: 'discovery',
    fault: { kind: 'delay', ms: 400, times: 3 },
    env: SHORT_TIMEOUT,
    line: (url) => `${at(url)} did not answer in time. ${NETWORK_HINT}`,
  },
  {
    name: 'an exchange that times out: the outcome is unknown',
    at: 'exchange',
    fault: { kind: 'delay', ms: 400 },
    env: SHORT_TIMEOUT,
    line: (url, s) => `${at(url)} did not answer in time. ${unknownOutcomeHint(s)}`,
  },
  {
    name: 'a 503 at discovery, three times',
    at: 'discovery',
    fault: { kind: 'status', status: 503, times: 3 },
    line: (url) => `${at(url)} failed (503 internal_server_error: injected fault). ${SERVER_HINT}`,
  },
  {
    name: "the server's own 500 at the exchange",
    at: 'exchange',
    fault: { kind: 'status', status: 500 },
    line: (url, s) =>
      `${at(url)} failed (500 internal_server_error: injected fault). ${serverOrConcurrencyHint(s)}`,
  },
  {
    name: 'a 429 with Retry-After 1 at the exchange, waited out',
    at: 'exchange',
    fault: { kind: 'rate_limit', retry_after: 1 },
    line: 'ok',
  },
  {
    name: 'a 429 that lasts',
    at: 'exchange',
    fault: { kind: 'rate_limit', retry_after: 0, times: 3 },
    line: () => `the mytoken server rate-limited this runner. ${SERVER_HINT}`,
  },
  {
    name: 'a 429 with a Retry-After beyond the bound',
    at: 'discovery',
    fault: { kind: 'rate_limit', retry_after: 600 },
    line: () => `the mytoken server rate-limited this runner. ${SERVER_HINT}`,
  },
  {
    name: 'an HTML 502 page at discovery',
    at: 'discovery',
    fault: { kind: 'html', status: 502, times: 3 },
    line: (url) => `${at(url)} failed (502). ${SERVER_HINT}`,
  },
  {
    name: 'an HTML 502 page at the exchange: the outcome is unknown',
    at: 'exchange',
    fault: { kind: 'html', status: 502 },
    line: (url, s) => `${at(url)} failed (502). ${unknownOutcomeHint(s)}`,
  },
  {
    name: 'a plain-text 503 at the exchange',
    at: 'exchange',
    fault: { kind: 'text', status: 503 },
    line: (url, s) => `${at(url)} failed (503). ${unknownOutcomeHint(s)}`,
  },
  {
    name: 'invalid JSON at discovery',
    at: 'discovery',
    fault: { kind: 'invalid_json' },
    line: (url) =>
      `${at(url)} sent an unusable answer (answer is not a JSON object (status 200)). ${SERVER_HINT}`,
  },
  {
    name: 'invalid JSON at the exchange',
    at: 'exchange',
    fault: { kind: 'invalid_json' },
    line: (url) =>
      `${at(url)} sent an unusable answer (answer is not a JSON object (status 200)). ${SERVER_HINT}`,
  },
  {
    name: 'a discovery answer larger than the bound',
    at: 'discovery',
    fault: { kind: 'oversize', bytes: 2 * 1024 * 1024 },
    line: (url) =>
      `${at(url)} sent an unusable answer (response larger than 1048576 bytes). ${SERVER_HINT}`,
  },
  {
    name: 'an exchange answer larger than the bound',
    at: 'exchange',
    fault: { kind: 'oversize', bytes: 2 * 1024 * 1024 },
    line: (url) =>
      `${at(url)} sent an unusable answer (response larger than 1048576 bytes). ${SERVER_HINT}`,
  },
  {
    name: 'a slow body within the bound',
    at: 'exchange',
    fault: { kind: 'slow_body', ms: 300 },
    env: { ...FAST, MYTOKEN_ACTION_TIMEOUT_MS: '2000' },
    line: 'ok',
  },
  {
    name: 'a discovery body slower than the bound',
    at: 'discovery',
    fault: { kind: 'slow_body', ms: 3000, times: 3 },
    env: SHORT_TIMEOUT,
    line: (url) => `${at(url)} did not answer in time. ${NETWORK_HINT}`,
  },
  {
    name: 'the answer dropped after the rotation: the chain is broken',
    at: 'exchange',
    fault: { kind: 'drop_after_commit' },
    line: (_url, s) =>
      `the mytoken server rotated the mytoken but the new token never arrived, so the token chain is broken. ${staleAfterRotationHint(s)}`,
    lost: true,
  },
  {
    name: 'an exchange body slower than the bound, after the rotation: the chain is broken',
    at: 'exchange',
    // Gaps of 600 ms between pieces; 500 ms leaves the server ample time to answer the headers.
    fault: { kind: 'slow_body', ms: 6000 },
    env: { ...FAST, MYTOKEN_ACTION_TIMEOUT_MS: '500' },
    line: (_url, s) =>
      `the mytoken server rotated the mytoken but the new token never arrived, so the token chain is broken. ${staleAfterRotationHint(s)}`,
    lost: true,
  },
  {
    name: 'the answer dropped after the rotation of an auto_revoke token: never probed, outcome unknown',
    at: 'exchange',
    fault: { kind: 'drop_after_commit' },
    autoRevoke: true,
    line: (url, s) =>
      `the connection to ${at(url)} failed (UND_ERR_SOCKET). ${unknownOutcomeHint(s)}`,
    lost: true,
  },
];

/** One row, on a dev server and GitHub fake of its own. */
function runRow(row: Row): Promise<void> {
  return withFixture(async (f) => {
    const server = f.dev.urls.mytoken_server;
    const token = await f.seed('MYTOKEN', REPO_SCOPE, { autoRevoke: row.autoRevoke });
    const before = f.github.secret(REPO_SCOPE, 'MYTOKEN');
    f.dev.armFault({ path: PATHS[row.at], ...row.fault });
    const run = await f.run(token, { env: row.env ?? FAST });
    // A delayed request is still being handled; let it finish before the token's state is judged.
    if (row.fault.kind === 'delay') await sleep(row.fault.ms ?? 0);
    faultsFired += f.dev.stats().faults_fired;

    const stored = f.stored() as string;
    if (row.line === 'ok') {
      expect(run.code, errorLine(run)).toBe(0);
      expect(stored).not.toBe(token);
      expect(await isValid(server, stored)).toBe(true);
    } else {
      expectActionFailure(run, row.line(server, 'MYTOKEN'));
      expect(secretWrites(f.github, 'MYTOKEN'), 'writes of the secret').toBe(0);
      expect(f.github.secret(REPO_SCOPE, 'MYTOKEN')).toEqual(before);
      expect(await isValid(server, token), 'stored mytoken still valid').toBe(row.lost !== true);
    }
    const canaries = runCanaries(run, { 'input mytoken': token, 'stored mytoken': stored });
    await expectNoLeaks(run, canaries, { outputs: ['access-token'] });
  });
}

/** Rows whose outcome depends on a short per-attempt timeout run one at a time, away from other load. */
const timed = (row: Row) => row.env?.MYTOKEN_ACTION_TIMEOUT_MS !== undefined;

describe.concurrent('mytoken server faults', () => {
  test.each(ROWS.filter((row) => !timed(row)))('$name', runRow);
});

describe('mytoken server faults that need a short timeout', () => {
  test.each(ROWS.filter(timed))('$name', runRow);
});

describe('a server that goes down and comes back', () => {
  test('a run while it is down leaves the secret alone, and a re-run after it is back succeeds', () =>
    withFixture(async (f) => {
      const stateFile = join(await mkdtemp(join(tmpdir(), 'mytoken-action-down-')), 'state.json');
      let dev: DevServer | undefined = await startDevServer({ port: 0, stateFile });
      const port = dev.port;
      const url = dev.urls.mytoken_server;
      try {
        const token = await mint({ server: url, rotation: ['on_AT'] });
        f.github.setSecret(REPO_SCOPE, 'DOWN', token, { updatedAt: new Date(Date.now() - 60_000) });
        await dev.close();
        dev = undefined;

        const down = await f.run(token, {
          inputs: { 'secret-name': 'DOWN', 'mytoken-server': url },
          env: FAST,
        });
        expectActionFailure(
          down,
          `cannot reach the mytoken server ${url} (ECONNREFUSED). ${NETWORK_HINT}`,
        );
        expect(f.stored('DOWN')).toBe(token);

        dev = await startDevServer({ port, stateFile });
        const back = await f.run(token, {
          inputs: { 'secret-name': 'DOWN', 'mytoken-server': url },
          jobStartedAt: new Date(),
        });
        expect(back.code, errorLine(back)).toBe(0);
        expect(await isValid(url, f.stored('DOWN') as string)).toBe(true);
        for (const run of [down, back]) {
          const canaries = runCanaries(run, { 'input mytoken': token, stored: f.stored('DOWN') });
          await expectNoLeaks(run, canaries, { outputs: ['access-token'] });
        }
      } finally {
        await dev?.close();
      }
    }));
});

describe('after a lost answer of an auto_revoke token', () => {
  test('the next run finds the token superseded and says how to recover', () =>
    withFixture(async (f) => {
      const token = await f.seed('AFTER_LOSS', REPO_SCOPE, { autoRevoke: true });
      f.dev.armFault({ path: PATHS.exchange, kind: 'drop_after_commit' });
      const first = await f.run(token, { inputs: { 'secret-name': 'AFTER_LOSS' }, env: FAST });
      expect(first.code).toBe(1);

      const second = await f.run(token, { inputs: { 'secret-name': 'AFTER_LOSS' }, env: FAST });
      expectActionFailure(
        second,
        `the mytoken server refused the mytoken as expired, revoked or superseded. ${concurrencyHint('AFTER_LOSS')}`,
      );
    }));
});
