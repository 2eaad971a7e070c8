/**
 * GitHub faults around the write-back (issue #5), filling the gaps of `test/action/network.test.ts`: a missing
 * permission at the write, primary and secondary rate limits that reset too late to wait for, and timeouts (a
 * per-attempt timeout, shortened for tests with MYTOKEN_ACTION_TIMEOUT_MS). Transient faults are retried within a
 * bound; a fault before the exchange leaves the mytoken unused; a final failure after the rotation says that the
 * secret is stale (or, after a timeout, that GitHub may have stored the value after all) and how to recover.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  GITHUB_HINT,
  PERMISSION_HINT,
  staleAfterRotationHint,
  writeMayHaveLandedHint,
} from '../../src/action/messages.ts';
import type { GitHubFault } from '../support/github-fake.ts';
import { errorLine } from '../action/harness.ts';
import { startFixture, type Fixture } from '../action/fixture.ts';
import {
  expectActionFailure,
  expectNoLeaks,
  isValid,
  runCanaries,
  secretWrites,
  until,
} from './helpers.ts';

let f: Fixture;
let faultsInjected = 0;

beforeAll(async () => {
  f = await startFixture();
});

afterAll(async () => {
  if (process.env.MYTOKEN_RELIABILITY_COUNTS) {
    console.info(`action-github-faults: ${faultsInjected} GitHub faults fired`);
  }
  await f?.close();
});

const FAST = { MYTOKEN_ACTION_RETRY_BASE_MS: '5' };
/**
 * Per-attempt timeouts for GitHub and the mytoken server alike: long enough for the exchange under load, short
 * enough that hanging GitHub calls cost little. (Below a second, undici's own timers are coarse and the attempt
 * ends at connect + answer timeout, 400 ms here.)
 */
const SHORT_TIMEOUT = { ...FAST, MYTOKEN_ACTION_TIMEOUT_MS: '200' };
const WRITE_ATTEMPTS = 8;
const READ_ATTEMPTS = 5;

const secretPath = (name: string) => `/repos/acme/app/actions/secrets/${name}`;
const KEY_PATH = '/repos/acme/app/actions/secrets/public-key';
const inAnHour = () => Math.floor(Date.now() / 1000) + 3600;

interface Row {
  name: string;
  method: 'GET' | 'PUT';
  /** `key` for the public key, `secret` for the secret itself. */
  target: 'key' | 'secret';
  fault: () => GitHubFault;
  times: number;
  /** Faults queued before `fault` (the fake takes the oldest matching rule first). */
  first?: { fault: GitHubFault; times: number };
  env?: Record<string, string>;
  /** `ok`, or the one error line for secret `S` on a server at `url` (`port` is the fake's). */
  line: 'ok' | ((s: string, port: number) => string | RegExp);
  /** PUT attempts expected. */
  writes: number;
  /** The failed writes land late; the re-run the message advises then succeeds. */
  landsLate?: boolean;
}

const writeFailed = (s: string, why: string) =>
  `the mytoken was rotated but writing it back to repository secret ${s} failed: ` +
  `GitHub write repository secret ${s} ${why}`;

const ROWS: Row[] = [
  {
    name: 'a 403 without permission at the write: not retried, the secret is stale',
    method: 'PUT',
    target: 'secret',
    fault: () => ({ kind: 'forbidden' }),
    times: 1,
    line: (s) =>
      `the mytoken was rotated but writing it back to repository secret ${s} failed: ` +
      `"github-token" may not write repository secret ${s} (403: Resource not accessible by integration). ` +
      staleAfterRotationHint(s),
    writes: 1,
  },
  {
    name: 'a 403 without permission when reading the secret: the mytoken is not used',
    method: 'GET',
    target: 'secret',
    fault: () => ({ kind: 'forbidden' }),
    times: 1,
    line: (s) =>
      `"github-token" may not read repository secret ${s} (403: Resource not accessible by integration). ${PERMISSION_HINT}`,
    writes: 0,
  },
  {
    name: 'a primary rate limit (403) at the write that resets in a second: waited out',
    method: 'PUT',
    target: 'secret',
    fault: () => ({ kind: 'primary-rate-limit', resetAt: Math.floor(Date.now() / 1000) + 1 }),
    times: 1,
    line: 'ok',
    writes: 2,
  },
  {
    name: 'a primary rate limit at the write that resets in an hour: fails at once',
    method: 'PUT',
    target: 'secret',
    fault: () => ({ kind: 'primary-rate-limit', resetAt: inAnHour() }),
    times: 1,
    line: (s) =>
      `${writeFailed(s, 'failed (403: API rate limit exceeded.)')}. ${staleAfterRotationHint(s)}`,
    writes: 1,
  },
  {
    name: 'a secondary rate limit at the write with a Retry-After of ten minutes: fails at once',
    method: 'PUT',
    target: 'secret',
    fault: () => ({ kind: 'secondary-rate-limit', status: 429, retryAfter: 600 }),
    times: 1,
    line: (s) =>
      new RegExp(
        `^${escape(writeFailed(s, 'failed (429: You have exceeded a secondary rate limit.'))}.*\\. ${escape(staleAfterRotationHint(s))}$`,
      ),
    writes: 1,
  },
  {
    name: 'a primary rate limit on the public key that resets in an hour: the mytoken is not used',
    method: 'GET',
    target: 'key',
    fault: () => ({ kind: 'primary-rate-limit', status: 429, resetAt: inAnHour() }),
    times: 1,
    line: (s) =>
      `GitHub read the public key for repository secret ${s} failed (429: API rate limit exceeded.). ${GITHUB_HINT}`,
    writes: 0,
  },
  {
    name: 'a public key read that times out once: retried',
    method: 'GET',
    target: 'key',
    fault: () => ({ kind: 'delay', ms: 600 }),
    times: 1,
    env: SHORT_TIMEOUT,
    line: 'ok',
    writes: 1,
  },
  {
    name: 'a 502 when reading the secret, lasting: the mytoken is not used',
    method: 'GET',
    target: 'secret',
    fault: () => ({ kind: 'status', status: 502 }),
    times: READ_ATTEMPTS,
    line: (s) =>
      `GitHub read repository secret ${s} failed after ${READ_ATTEMPTS} attempts (502: Bad Gateway). ${GITHUB_HINT}`,
    writes: 0,
  },
  {
    name: 'a write that times out once: retried (the late write lands with the same value)',
    method: 'PUT',
    target: 'secret',
    fault: () => ({ kind: 'delay', ms: 600 }),
    times: 1,
    env: SHORT_TIMEOUT,
    line: 'ok',
    writes: 2,
  },
  {
    name: 'writes that always fail, the last by a timeout: GitHub may have stored the value after all',
    method: 'PUT',
    target: 'secret',
    first: { fault: { kind: 'reset' }, times: WRITE_ATTEMPTS - 1 },
    fault: () => ({ kind: 'delay', ms: 600 }),
    times: 1,
    env: SHORT_TIMEOUT,
    line: (s, port) =>
      `${writeFailed(s, `failed after ${WRITE_ATTEMPTS} attempts: 127.0.0.1:${port} timed out`)}. ${writeMayHaveLandedHint(s)}`,
    writes: WRITE_ATTEMPTS,
    landsLate: true,
  },
  {
    name: 'writes whose connections are always reset',
    method: 'PUT',
    target: 'secret',
    fault: () => ({ kind: 'reset' }),
    times: WRITE_ATTEMPTS,
    env: FAST,
    line: (s, port) =>
      `${writeFailed(s, `failed after ${WRITE_ATTEMPTS} attempts: connection to 127.0.0.1:${port} failed (ECONNRESET)`)}. ${writeMayHaveLandedHint(s)}`,
    writes: WRITE_ATTEMPTS,
  },
];

describe('GitHub faults around the write-back', () => {
  test.each(ROWS.map((row, i) => ({ ...row, secret: `GH_FAULT_${i}` })))('$name', async (row) => {
    const token = await f.seed(row.secret);
    const atBefore = f.dev.stats().at_success;
    const path = row.target === 'key' ? KEY_PATH : secretPath(row.secret);
    if (row.first !== undefined) f.github.inject({ method: row.method, path, ...row.first });
    f.github.inject({ method: row.method, path, fault: row.fault(), times: row.times });
    faultsInjected += row.times + (row.first?.times ?? 0);
    const run = await f.run(token, {
      inputs: { 'secret-name': row.secret },
      env: row.env ?? FAST,
    });

    expect(f.github.pendingFaults(), 'every fault was hit').toBe(0);
    expect(secretWrites(f.github, row.secret), 'write attempts').toBe(row.writes);
    if (row.line === 'ok') {
      expect(run.code, errorLine(run)).toBe(0);
      await until(() => noPendingRequests(), 'late writes to land');
      const stored = f.stored(row.secret) as string;
      expect(stored).not.toBe(token);
      expect(run.stdout).toContain(`::add-mask::${stored}`);
      expect(await isValid(f.dev.urls.mytoken_server, stored)).toBe(true);
    } else {
      expectActionFailure(run, row.line(row.secret, f.github.port));
      if (row.landsLate === true) await expectLateWriteRecovers(row.secret, token);
      if (row.writes === 0) {
        expect(f.dev.stats().at_success, 'exchanges').toBe(atBefore);
        expect(f.stored(row.secret)).toBe(token);
        expect(await isValid(f.dev.urls.mytoken_server, token)).toBe(true);
      }
    }
    const canaries = runCanaries(run, { 'input mytoken': token, stored: f.stored(row.secret) });
    await expectNoLeaks(run, canaries, { outputs: ['access-token'] });
  });
});

/** The writes that timed out land after all, and a re-run with the value they stored succeeds. */
async function expectLateWriteRecovers(secret: string, token: string): Promise<void> {
  await until(() => noPendingRequests(), 'late writes to land');
  const landed = f.stored(secret) as string;
  expect(landed).not.toBe(token);
  const rerun = await f.run(landed, {
    inputs: { 'secret-name': secret },
    jobStartedAt: new Date(),
  });
  expect(rerun.code, errorLine(rerun)).toBe(0);
}

/** True when the fake has answered (or dropped) every request it received. */
function noPendingRequests(): boolean {
  return f.github.requests.every((r) => r.status !== 0 || r.fault === 'reset');
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
