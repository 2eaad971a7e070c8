/**
 * The probe against a misbehaving mytoken server (issue #5): every fault the dev server can inject,
 * the server stopped, and the lost answer, for rotating and `auto_revoke` mytokens. Each fault
 * ends in a token failure (metric, check reason `token`, a log line with the documented code), the
 * token file stays as it was, the probe keeps serving, and it recovers once the server does. No
 * token reaches a log line, `/metrics` or `/status`.
 */
import { rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { mint, type FaultSpec } from '../../devserver/index.ts';
import { scrape, startProbe, waitFor, type InProcessProbe } from '../probe/helpers.ts';
import { isValid } from './helpers.ts';
import { expectNoTokens, probeBed, type ProbeBed } from './probe-support.ts';

const ACCESS = '/api/v0/token/access';
const DISCOVERY = '/.well-known/mytoken-configuration';
let faultsFired = 0;

afterAll(() => {
  if (process.env.MYTOKEN_RELIABILITY_COUNTS) console.info(`probe-faults: ${faultsFired} faults`);
});

interface Row {
  name: string;
  /** The fault, armed until cleared; undefined: the server is stopped instead. */
  fault?: FaultSpec;
  code: string;
}

const ROWS: Row[] = [
  { name: 'the server is down (connection refused)', code: 'ERR_MYTOKEN_NETWORK' },
  {
    name: 'discovery outlasts the timeout',
    fault: { path: DISCOVERY, kind: 'delay', ms: 2000, times: 0 },
    code: 'ERR_MYTOKEN_TIMEOUT',
  },
  {
    name: 'the exchange answers 503',
    fault: { path: ACCESS, kind: 'status', status: 503, times: 0 },
    code: 'ERR_MYTOKEN_SERVER_ERROR',
  },
  {
    name: 'the exchange answers 429 with Retry-After',
    fault: { path: ACCESS, kind: 'rate_limit', retry_after: 1, times: 0 },
    code: 'ERR_MYTOKEN_RATE_LIMITED',
  },
  {
    name: 'the exchange answers an HTML error page',
    fault: { path: ACCESS, kind: 'html', status: 502, times: 0 },
    code: 'ERR_MYTOKEN_SERVER_ERROR',
  },
  {
    name: 'the exchange answers a plain-text error',
    fault: { path: ACCESS, kind: 'text', status: 503, times: 0 },
    code: 'ERR_MYTOKEN_SERVER_ERROR',
  },
  {
    name: 'the exchange answers invalid JSON',
    fault: { path: ACCESS, kind: 'invalid_json', times: 0 },
    code: 'ERR_MYTOKEN_MALFORMED_RESPONSE',
  },
  {
    name: 'the exchange answers more than the size bound',
    fault: { path: ACCESS, kind: 'oversize', bytes: 2 * 1024 * 1024, times: 0 },
    code: 'ERR_MYTOKEN_MALFORMED_RESPONSE',
  },
  {
    name: 'discovery dribbles its body past the timeout',
    fault: { path: DISCOVERY, kind: 'slow_body', ms: 2000, times: 0 },
    code: 'ERR_MYTOKEN_TIMEOUT',
  },
  {
    name: 'the connection is reset before the exchange is processed',
    fault: { path: ACCESS, kind: 'reset', times: 0 },
    code: 'ERR_MYTOKEN_NETWORK',
  },
];

function logLines(probe: InProcessProbe): Record<string, unknown>[] {
  return probe.logs.map((l) => JSON.parse(l) as Record<string, unknown>);
}

async function surfaces(probe: InProcessProbe): Promise<Record<string, string>> {
  return {
    logs: probe.logs.join('\n'),
    metrics: await (await fetch(`${probe.base}/metrics`)).text(),
    status: await (await fetch(`${probe.base}/status`)).text(),
  };
}

async function withBed(
  fn: (bed: ProbeBed) => Promise<void>,
  options: Parameters<typeof probeBed>[0] = {},
): Promise<void> {
  const bed = await probeBed(options);
  try {
    await fn(bed);
  } finally {
    faultsFired += bed.dev.stats().faults_fired;
    await bed.close();
  }
}

describe.concurrent('the probe under each fault of the mytoken server', () => {
  test.each(ROWS)('$name: token failure, token file unchanged, recovery', async (row) => {
    const bed = await probeBed();
    let probe: InProcessProbe | undefined;
    try {
      await bed.writeConfig({ mytoken: '  timeout: 300ms' });
      if (row.fault === undefined) await bed.stopServer();
      else bed.dev.armFault(row.fault);
      probe = await startProbe(bed.configFile);
      const base = probe.base;

      const failing = await waitFor(async () => {
        const m = await scrape(base);
        const reason = m.get('mytoken_probe_check_failures_total{check="c",reason="token"}') ?? 0;
        return (
          reason > 0 &&
          (m.get('mytoken_probe_token_requests_total{result="failure"}') ?? 0) > 0 &&
          m
        );
      });
      expect(failing.get('mytoken_probe_check_success{check="c"}')).toBe(0);
      expect(failing.get('mytoken_probe_mytoken_chain_broken')).toBe(0);
      const line = await waitFor(() =>
        logLines(probe!).find((l) => l.msg === 'Access token request failed'),
      );
      expect(line).toMatchObject({ level: 'error', code: row.code });
      expect(logLines(probe).find((l) => l.msg === 'Check failed')).toMatchObject({
        reason: 'token',
      });
      expect(await bed.readToken()).toBe(bed.minted);
      expect((await fetch(`${base}/healthz`)).status).toBe(200);

      if (row.fault === undefined) await bed.startServer();
      else bed.dev.clearFaults();
      await waitFor(
        async () => (await scrape(base)).get('mytoken_probe_check_success{check="c"}') === 1,
        15_000,
        'recovery',
      );
      const stored = await bed.readToken();
      expect(stored).not.toBe(bed.minted);
      expect(await isValid(bed.dev.urls.mytoken_server, stored)).toBe(true);
      expect((await scrape(base)).get('mytoken_probe_mytoken_chain_broken')).toBe(0);
      expectNoTokens(bed.canaries, await surfaces(probe));
    } finally {
      await probe?.close();
      faultsFired += row.fault === undefined ? 1 : bed.dev.stats().faults_fired;
      await bed.close();
    }
  });
});

/** Replaces the token file atomically with a newly minted token, as the docs tell an operator. */
async function replaceToken(
  bed: ProbeBed,
  options: { autoRevoke?: boolean } = {},
): Promise<string> {
  const fresh = await mint({
    server: bed.dev.urls.mytoken_server,
    rotation: ['on_AT'],
    autoRevoke: options.autoRevoke,
  });
  bed.canaries.add('newly minted mytoken', fresh);
  const temp = join(bed.dir, 'mytoken.new');
  await writeFile(temp, `${fresh}\n`, { mode: 0o600 });
  await rename(temp, bed.tokenFile);
  return fresh;
}

async function chainBroken(base: string): Promise<number | undefined> {
  return (await scrape(base)).get('mytoken_probe_mytoken_chain_broken');
}

describe.concurrent('the lost answer', () => {
  test('raises the chain-broken metric with one line on how to recover, and clears it once a new mytoken is in place', async () => {
    await withBed(async (bed) => {
      await bed.writeConfig();
      bed.dev.armFault({ path: ACCESS, kind: 'drop_after_commit', times: 1 });
      const probe = await startProbe(bed.configFile);
      try {
        await waitFor(async () => (await chainBroken(probe.base)) === 1);
        // Several more failed exchanges, each logged, but the chain's breaking is said once.
        await waitFor(
          () => logLines(probe).filter((l) => l.msg === 'Access token request failed').length >= 3,
        );
        const lines = logLines(probe).filter((l) => String(l.msg).startsWith('Mytoken chain'));
        expect(lines).toEqual([
          expect.objectContaining({
            level: 'error',
            msg: 'Mytoken chain broken: mint a new mytoken and replace the token file',
          }),
        ]);
        // The stored token is the one the server rotated away: dead, and left as it was.
        expect(await bed.readToken()).toBe(bed.minted);
        expect(await isValid(bed.dev.urls.mytoken_server, bed.minted)).toBe(false);

        await replaceToken(bed);
        await waitFor(async () => (await chainBroken(probe.base)) === 0, 15_000, 'restored');
        await waitFor(
          async () =>
            (await scrape(probe.base)).get('mytoken_probe_check_success{check="c"}') === 1,
        );
        expect(await isValid(bed.dev.urls.mytoken_server, await bed.readToken())).toBe(true);
        expectNoTokens(bed.canaries, await surfaces(probe));
      } finally {
        await probe.close();
      }
    });
  });

  test('counts a lost answer to an auto_revoke mytoken as a possibly broken chain, which the server then confirms', async () => {
    await withBed(
      async (bed) => {
        await bed.writeConfig();
        bed.dev.armFault({ path: ACCESS, kind: 'drop_after_commit', times: 1 });
        const probe = await startProbe(bed.configFile);
        try {
          await waitFor(async () => (await chainBroken(probe.base)) === 1);
          const first = await waitFor(() =>
            logLines(probe).find((l) => String(l.msg).startsWith('Mytoken chain')),
          );
          expect(first).toMatchObject({ level: 'error', code: 'ERR_MYTOKEN_NETWORK' });
          expect(String(first.msg)).toContain('may be broken');
          // The next exchange presents the superseded token: the server revokes the chain.
          await waitFor(() => logLines(probe).find((l) => l.code === 'ERR_MYTOKEN_INVALID_TOKEN'));
          expect(await chainBroken(probe.base)).toBe(1);
          expect(await bed.readToken()).toBe(bed.minted);

          await replaceToken(bed, { autoRevoke: true });
          await waitFor(async () => (await chainBroken(probe.base)) === 0, 15_000, 'restored');
          expectNoTokens(bed.canaries, await surfaces(probe));
        } finally {
          await probe.close();
        }
      },
      { mint: { autoRevoke: true } },
    );
  });

  test('clears the possibly-broken state of an auto_revoke mytoken when the next exchange succeeds', async () => {
    await withBed(
      async (bed) => {
        await bed.writeConfig();
        // A reset before the request is processed: nothing was spent, but the client cannot know.
        bed.dev.armFault({ path: ACCESS, kind: 'reset', times: 1 });
        const probe = await startProbe(bed.configFile);
        try {
          await waitFor(() =>
            logLines(probe).find((l) => String(l.msg).startsWith('Mytoken chain may')),
          );
          await waitFor(async () => (await chainBroken(probe.base)) === 0, 15_000, 'restored');
          expect(logLines(probe).some((l) => l.msg === 'Mytoken chain restored')).toBe(true);
          expect(await isValid(bed.dev.urls.mytoken_server, await bed.readToken())).toBe(true);
          expectNoTokens(bed.canaries, await surfaces(probe));
        } finally {
          await probe.close();
        }
      },
      { mint: { autoRevoke: true } },
    );
  });
});
