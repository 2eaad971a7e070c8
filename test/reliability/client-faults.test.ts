/**
 * The client against a misbehaving mytoken server (issue #5): every fault the dev server can inject, at discovery
 * and at the exchange, for rotating, non-rotating and `auto_revoke` tokens. Each ends in the documented
 * `MytokenError.code`, leaves the store as it was (unless the use succeeded), leaves the stored token valid (except
 * where the server rotated and the answer was lost: the chain is then broken and the error says so), and leaks no
 * token into the error or the log.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { afterAll, describe, expect, test } from 'vitest';
import { mint, startDevServer, type DevServer, type FaultSpec } from '../../devserver/index.ts';
import {
  createTransport,
  MemoryTokenStore,
  MytokenClient,
  MytokenError,
  type MytokenErrorCode,
  type TransportOptions,
} from '../../src/client/index.ts';
import { Canaries, assertNoCanaries } from '../support/canary.ts';
import { isValid, sleep } from './helpers.ts';

let faultsFired = 0;

afterAll(() => {
  if (process.env.MYTOKEN_RELIABILITY_COUNTS) {
    console.info(`client-faults: ${faultsFired} faults fired`);
  }
});

/** Runs `fn` against a dev server of its own, so that rows (and their faults) can run concurrently. */
async function withDevServer(fn: (dev: DevServer) => Promise<void>): Promise<void> {
  const dev = await startDevServer({ port: 0 });
  try {
    await fn(dev);
  } finally {
    faultsFired += dev.stats().faults_fired;
    await dev.close();
  }
}

type Kind = 'rotating' | 'static' | 'auto_revoke';

const PATHS = {
  discovery: '/.well-known/mytoken-configuration',
  exchange: '/api/v0/token/access',
} as const;

/** Short enough that a hanging server costs a test little, long enough for a loopback answer. */
const SHORT: TransportOptions = { connectTimeoutMs: 150, timeoutMs: 150 };

function mintKind(server: string, kind: Kind): Promise<string> {
  if (kind === 'static') return mint({ server });
  return mint({ server, rotation: ['on_AT'], autoRevoke: kind === 'auto_revoke' });
}

/** A client that records every secret it obtains, every debug line it logs and every request it sends. */
function observed(server: string, token: string, http?: TransportOptions) {
  const canaries = new Canaries().add('input mytoken', token);
  const logs: string[] = [];
  const sent: string[] = [];
  const transport = createTransport(http);
  const store = new MemoryTokenStore(token);
  const client = new MytokenClient({
    server,
    store,
    transport: {
      send: (req) => {
        sent.push(new URL(req.url).pathname);
        return transport.send(req);
      },
      close: () => transport.close(),
    },
    retryDelayMs: 5,
    onSecret: (secret) => canaries.add('secret the client obtained', secret),
    logger: { debug: (message, fields) => logs.push(`${message} ${JSON.stringify(fields)}`) },
  });
  const count = (path: string) => sent.filter((p) => p === path).length;
  return { client, store, canaries, logs, count, close: () => transport.close() };
}

/** Every surface an error reaches when it is logged, printed or serialised. */
function errorSurfaces(error: unknown, logs: string[]): Record<string, string> {
  return {
    message: error instanceof Error ? error.message : String(error),
    inspect: inspect(error, { depth: 10 }),
    json: JSON.stringify(error) ?? '',
    cause: String((error as { cause?: unknown } | undefined)?.cause),
    log: logs.join('\n'),
  };
}

interface Row {
  name: string;
  kind: Kind;
  at: keyof typeof PATHS;
  fault: Omit<FaultSpec, 'path'>;
  http?: TransportOptions;
  /** The error's code, or `ok` when the use succeeds despite the fault. */
  code: MytokenErrorCode | 'ok';
  /** For exchange failures: whether the error says the token may have been spent. */
  spent?: boolean;
  status?: number;
  retryAfter?: number;
  message?: RegExp;
  /** The server rotated and the answer was lost: the stored token is dead afterwards. */
  lost?: boolean;
  /** How many access-token requests the client sent. */
  exchanges?: number;
}

const ROWS: Row[] = [
  {
    name: 'connections reset before discovery answers',
    kind: 'rotating',
    at: 'discovery',
    fault: { kind: 'reset', times: 3 },
    code: 'ERR_MYTOKEN_NETWORK',
  },
  {
    name: 'a connection reset at the exchange, before the server handled it',
    kind: 'rotating',
    at: 'exchange',
    fault: { kind: 'reset' },
    code: 'ERR_MYTOKEN_NETWORK',
    spent: false,
    exchanges: 1,
  },
  {
    name: 'a connection reset at the exchange of an auto_revoke token',
    kind: 'auto_revoke',
    at: 'exchange',
    fault: { kind: 'reset' },
    code: 'ERR_MYTOKEN_NETWORK',
    spent: true,
    exchanges: 1,
  },
  {
    name: 'discovery that never answers',
    kind: 'rotating',
    at: 'discovery',
    fault: { kind: 'delay', ms: 400, times: 3 },
    http: SHORT,
    code: 'ERR_MYTOKEN_TIMEOUT',
  },
  {
    name: 'an exchange that times out',
    kind: 'rotating',
    at: 'exchange',
    fault: { kind: 'delay', ms: 400 },
    http: SHORT,
    code: 'ERR_MYTOKEN_TIMEOUT',
    spent: true,
    exchanges: 1,
  },
  {
    name: 'an exchange of a non-rotating token that times out three times',
    kind: 'static',
    at: 'exchange',
    fault: { kind: 'delay', ms: 400, times: 3 },
    http: SHORT,
    code: 'ERR_MYTOKEN_TIMEOUT',
    exchanges: 3,
  },
  {
    name: 'a 503 at discovery, three times',
    kind: 'rotating',
    at: 'discovery',
    fault: { kind: 'status', status: 503, times: 3 },
    code: 'ERR_MYTOKEN_SERVER_ERROR',
    status: 503,
  },
  {
    name: "the server's own 500 at the exchange, not re-sent",
    kind: 'rotating',
    at: 'exchange',
    fault: { kind: 'status', status: 500 },
    code: 'ERR_MYTOKEN_SERVER_ERROR',
    status: 500,
    spent: false,
    exchanges: 1,
  },
  {
    name: 'a 429 with Retry-After 1, waited out',
    kind: 'rotating',
    at: 'exchange',
    fault: { kind: 'rate_limit', retry_after: 1 },
    code: 'ok',
    exchanges: 2,
  },
  {
    name: 'a 429 with a Retry-After beyond the bound',
    kind: 'rotating',
    at: 'exchange',
    fault: { kind: 'rate_limit', retry_after: 120 },
    code: 'ERR_MYTOKEN_RATE_LIMITED',
    status: 429,
    retryAfter: 120,
    spent: false,
    exchanges: 1,
  },
  {
    name: 'a 429 that lasts',
    kind: 'static',
    at: 'exchange',
    fault: { kind: 'rate_limit', retry_after: 0, times: 3 },
    code: 'ERR_MYTOKEN_RATE_LIMITED',
    retryAfter: 0,
    exchanges: 3,
  },
  {
    name: 'an HTML 502 page at discovery',
    kind: 'rotating',
    at: 'discovery',
    fault: { kind: 'html', status: 502, times: 3 },
    code: 'ERR_MYTOKEN_SERVER_ERROR',
    status: 502,
    message: /^discovery: mytoken server error \(status 502\)$/,
  },
  {
    name: 'an HTML 502 page at the exchange (a gateway: the outcome is unknown)',
    kind: 'rotating',
    at: 'exchange',
    fault: { kind: 'html', status: 502 },
    code: 'ERR_MYTOKEN_SERVER_ERROR',
    status: 502,
    spent: true,
    exchanges: 1,
  },
  {
    name: 'a plain-text 503 at the exchange',
    kind: 'rotating',
    at: 'exchange',
    fault: { kind: 'text', status: 503 },
    code: 'ERR_MYTOKEN_SERVER_ERROR',
    status: 503,
    spent: true,
  },
  {
    name: 'a plain-text 400 at the exchange',
    kind: 'rotating',
    at: 'exchange',
    fault: { kind: 'text', status: 400, body: 'Bad Request' },
    code: 'ERR_MYTOKEN_MALFORMED_RESPONSE',
    status: 400,
    message: /^access_token: unexpected non-JSON answer \(status 400\)$/,
    spent: false,
  },
  {
    name: 'invalid JSON at discovery',
    kind: 'rotating',
    at: 'discovery',
    fault: { kind: 'invalid_json' },
    code: 'ERR_MYTOKEN_MALFORMED_RESPONSE',
  },
  {
    name: 'invalid JSON at the exchange',
    kind: 'rotating',
    at: 'exchange',
    fault: { kind: 'invalid_json' },
    code: 'ERR_MYTOKEN_MALFORMED_RESPONSE',
    spent: false,
  },
  {
    name: 'a discovery answer larger than the bound',
    kind: 'rotating',
    at: 'discovery',
    fault: { kind: 'oversize', bytes: 2 * 1024 * 1024 },
    code: 'ERR_MYTOKEN_MALFORMED_RESPONSE',
    message: /^discovery: response larger than 1048576 bytes$/,
  },
  {
    name: 'an exchange answer larger than the bound',
    kind: 'rotating',
    at: 'exchange',
    fault: { kind: 'oversize', bytes: 2 * 1024 * 1024 },
    code: 'ERR_MYTOKEN_MALFORMED_RESPONSE',
    spent: false,
  },
  {
    name: 'a slow body within the bound',
    kind: 'rotating',
    at: 'exchange',
    fault: { kind: 'slow_body', ms: 300 },
    http: { timeoutMs: 2000 },
    code: 'ok',
  },
  {
    name: 'a discovery body slower than the bound',
    kind: 'rotating',
    at: 'discovery',
    fault: { kind: 'slow_body', ms: 3000, times: 3 },
    http: SHORT,
    code: 'ERR_MYTOKEN_TIMEOUT',
  },
  {
    name: 'an exchange body slower than the bound, after the rotation (a lost answer)',
    kind: 'rotating',
    at: 'exchange',
    // Gaps of 600 ms between pieces; 500 ms leaves the server ample time to answer the headers.
    fault: { kind: 'slow_body', ms: 6000 },
    http: { connectTimeoutMs: 500, timeoutMs: 500 },
    code: 'ERR_MYTOKEN_CHAIN_BROKEN',
    spent: true,
    lost: true,
  },
  {
    name: 'the answer dropped after the rotation',
    kind: 'rotating',
    at: 'exchange',
    fault: { kind: 'drop_after_commit' },
    code: 'ERR_MYTOKEN_CHAIN_BROKEN',
    message: /the token chain is broken: mint a new mytoken$/,
    spent: true,
    lost: true,
    exchanges: 1,
  },
  {
    name: 'the answer dropped after the rotation of an auto_revoke token (never probed)',
    kind: 'auto_revoke',
    at: 'exchange',
    fault: { kind: 'drop_after_commit' },
    code: 'ERR_MYTOKEN_NETWORK',
    spent: true,
    lost: true,
    exchanges: 1,
  },
  {
    name: 'the answer dropped for a non-rotating token, re-sent',
    kind: 'static',
    at: 'exchange',
    fault: { kind: 'drop_after_commit' },
    code: 'ok',
    exchanges: 2,
  },
];

// The rows wait (timeouts, Retry-After) far more than they compute: run them side by side.
describe.concurrent('client faults', () => {
  test.each(ROWS)('$name', (row) => withDevServer((dev) => runRow(dev, row)));
});

async function runRow(dev: DevServer, row: Row): Promise<void> {
  const server = dev.urls.mytoken_server;
  const token = await mintKind(server, row.kind);
  const { client, store, canaries, logs, count, close } = observed(server, token, row.http);
  dev.armFault({ path: PATHS[row.at], ...row.fault });

  const outcome = await client.accessToken().then(
    (at) => ({ at, error: undefined }),
    (error: unknown) => ({ at: undefined, error }),
  );
  // A delayed request is still being handled; let it finish before the token's state is judged.
  if (row.fault.kind === 'delay') await sleep(row.fault.ms ?? 0);
  await close();

  if (row.code === 'ok') {
    expect(outcome.error).toBeUndefined();
    expect(store.saves).toBe(row.kind === 'static' ? 0 : 1);
  } else {
    expectError(outcome.error, row);
    expect(await store.load(), 'stored token').toBe(token);
    expect(store.saves).toBe(0);
  }
  if (row.exchanges !== undefined) {
    expect(count(PATHS.exchange), 'access-token requests').toBe(row.exchanges);
  }
  if (row.kind === 'auto_revoke') {
    expect(count('/api/v0/tokeninfo'), 'auto_revoke token presented to probe').toBe(0);
  }
  expect(await isValid(server, await store.load()), 'stored token still valid').toBe(
    row.lost !== true,
  );
  canaries.add('stored mytoken', await store.load());
  assertNoCanaries(canaries, errorSurfaces(outcome.error, logs));
}

function expectError(error: unknown, row: Row): void {
  expect(error).toBeInstanceOf(MytokenError);
  const e = error as MytokenError;
  expect(e.code).toBe(row.code);
  if (row.status !== undefined) expect(e.status).toBe(row.status);
  if (row.retryAfter !== undefined) expect(e.retryAfter).toBe(row.retryAfter);
  if (row.message !== undefined) expect(e.message).toMatch(row.message);
  if (row.spent !== undefined)
    expect(e.mayHaveReachedServer, 'may have spent the token').toBe(row.spent);
  expect(e.message).not.toMatch(/<|\n/);
}

describe('a server that goes down and comes back', () => {
  test('refused connections leave the token unused, and the same client goes on afterwards', async () => {
    const stateFile = join(await mkdtemp(join(tmpdir(), 'mytoken-client-faults-')), 'state.json');
    let down: DevServer | undefined = await startDevServer({ port: 0, stateFile });
    const port = down.port;
    const token = await mint({ server: down.urls.mytoken_server, rotation: ['on_AT'] });
    const canaries = new Canaries().add('input mytoken', token);
    const store = new MemoryTokenStore(token);
    const client = new MytokenClient({
      server: down.urls.mytoken_server,
      store,
      retryDelayMs: 5,
      onSecret: (secret) => canaries.add('secret the client obtained', secret),
    });
    try {
      await client.configuration();
      await down.close();
      down = undefined;

      const error = await client.accessToken().catch((e: unknown) => e);
      expect(error).toMatchObject({ code: 'ERR_MYTOKEN_NETWORK', mayHaveReachedServer: false });
      expect((error as Error).message).toMatch(
        /^access_token: cannot reach 127\.0\.0\.1:\d+ \(ECONNREFUSED\)$/,
      );
      expect(await store.load()).toBe(token);

      down = await startDevServer({ port, stateFile });
      const at = await client.accessToken();
      expect(at.rotated).toBe(true);
      expect(await store.load()).not.toBe(token);
      canaries.add('access token', at.accessToken);
      assertNoCanaries(canaries, errorSurfaces(error, []));
    } finally {
      await client.close();
      await down?.close();
    }
  });
});

describe('two clients using one rotating token at once', () => {
  test.each([
    { autoRevoke: false, losers: ['ERR_MYTOKEN_INVALID_TOKEN'] },
    { autoRevoke: true, losers: ['ERR_MYTOKEN_INVALID_TOKEN', 'ERR_MYTOKEN_SERVER_ERROR'] },
  ])('auto_revoke $autoRevoke: one wins, the other fails as superseded', ({ autoRevoke, losers }) =>
    withDevServer(async (dev) => {
      const server = dev.urls.mytoken_server;
      for (let round = 0; round < 5; round++) {
        const token = await mint({ server, rotation: ['on_AT'], autoRevoke });
        const a = observed(server, token);
        const b = observed(server, token);
        const results = await Promise.allSettled([a.client.accessToken(), b.client.accessToken()]);
        await Promise.all([a.close(), b.close()]);

        const won = results.filter((r) => r.status === 'fulfilled');
        const lost = results.flatMap((r) =>
          r.status === 'rejected' ? [r.reason as MytokenError] : [],
        );
        expect(won).toHaveLength(1);
        expect(losers).toContain(lost[0]?.code);
        const winner = results[0]?.status === 'fulfilled' ? a : b;
        const newest = await winner.store.load();
        // Without auto_revoke the loser cannot hurt the winner; with it, a loser that presented the superseded
        // token (401) revoked the chain, while one that lost inside the server (500) was not probed and did not.
        const expectValid = !autoRevoke || lost[0]?.code === 'ERR_MYTOKEN_SERVER_ERROR';
        expect(await isValid(server, newest)).toBe(expectValid);
        const canaries = new Canaries().addAll(a.canaries).addAll(b.canaries);
        assertNoCanaries(canaries, errorSurfaces(lost[0], [...a.logs, ...b.logs]));
      }
    }),
  );
});
