/**
 * Concurrency (issue #5), complementing `test/probe/tokens.test.ts` (200 checks run once, one
 * exchange): 200 checks due at the same second, again and again, across several access-token
 * lifetimes and ten (scope) slots, share one rotating mytoken. Every exchange is watched at the
 * HTTP level: never two in flight, never an `invalid_token`, and every check gets an access token
 * the resource accepts.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { mint, startDevServer } from '../../devserver/index.ts';
import {
  createTransport,
  FileTokenStore,
  MytokenClient,
  type Transport,
} from '../../src/client/index.ts';
import { nullLogger } from '../../probe/log.ts';
import { AccessTokens, ObservedStore, type TokenEvents } from '../../probe/tokens.ts';
import { scrape, startProbe, waitFor } from '../probe/helpers.ts';
import { probeBed } from './probe-support.ts';

const ACCESS = '/api/v0/token/access';
const CHECKS = 200;
const SLOTS = 10;

const events: TokenEvents = {
  tokenRequest: () => undefined,
  rotation: () => undefined,
  storeWrite: () => undefined,
  mytokenExpiry: () => undefined,
  chainBroken: () => undefined,
};

/** A transport that counts exchanges in flight and keeps the largest count. */
function countingTransport(): Transport & { max: number; exchanges: number } {
  const inner = createTransport();
  let inflight = 0;
  const t = {
    max: 0,
    exchanges: 0,
    send: async (req: Parameters<Transport['send']>[0]) => {
      const exchange = new URL(req.url).pathname === ACCESS;
      if (exchange) {
        t.exchanges++;
        t.max = Math.max(t.max, ++inflight);
      }
      try {
        return await inner.send(req);
      } finally {
        if (exchange) inflight--;
      }
    },
    close: () => inner.close(),
  };
  return t;
}

describe('200 checks due at once sharing one rotating mytoken', () => {
  test('never have two exchanges in flight, and each gets an access token the resource accepts', async () => {
    // Access tokens live 3 s: five rounds of 200 simultaneous requests over ten slots, through
    // several refreshes, with every exchange slowed so that overlaps would show.
    const dev = await startDevServer({ port: 0, atLifetime: 3 });
    const dir = await mkdtemp(join(tmpdir(), 'probe-conc-'));
    const tokenFile = join(dir, 'mytoken');
    await writeFile(
      tokenFile,
      `${await mint({ server: dev.urls.mytoken_server, rotation: ['on_AT'] })}\n`,
      {
        mode: 0o600,
      },
    );
    dev.armFault({ path: ACCESS, kind: 'delay', ms: 40, times: 0 });
    const transport = countingTransport();
    const client = new MytokenClient({
      server: dev.urls.mytoken_server,
      store: new ObservedStore(new FileTokenStore(tokenFile), events),
      transport,
    });
    const tokens = new AccessTokens({ client, logger: nullLogger, events });
    try {
      for (let round = 0; round < 5; round++) {
        const ats = await Promise.all(
          Array.from({ length: CHECKS }, (_, i) =>
            tokens.slot(`openid s${i % SLOTS}`, undefined).fetch(),
          ),
        );
        const answers = await Promise.all(
          [...new Set(ats)].map(async (at) => {
            const res = await fetch(`${dev.urls.resource}/health`, {
              headers: { authorization: `Bearer ${at}` },
            });
            await res.arrayBuffer();
            return res.status;
          }),
        );
        expect(answers.every((s) => s === 200)).toBe(true);
        await new Promise((resolve) => setTimeout(resolve, 800));
      }
      const stats = dev.stats();
      expect(transport.max).toBe(1);
      expect(transport.exchanges).toBeGreaterThanOrEqual(SLOTS * 2);
      expect(Object.keys(stats.requests[ACCESS] ?? {})).toEqual(['200']);
      expect(stats.rotations).toBe(transport.exchanges);
    } finally {
      await tokens.close();
      await dev.close();
      await rm(dir, { recursive: true, force: true });
    }
  }, 30_000);

  test('run in the probe on one cron second with no failed run and no refused token', async () => {
    // Four slots: with access tokens living 4 s, the four refreshes due together finish inside the
    // half-second in which a due token is still handed out (a margin that is a minute in practice).
    const bed = await probeBed({ atLifetime: 4 });
    const checks = Array.from(
      { length: CHECKS },
      (_, i) =>
        `  - { name: c${i}, url: "${bed.dev.urls.resource}/health", schedule: "* * * * * *", scope: "openid s${i % 4}" }`,
    );
    await bed.writeConfig({ checks: checks.join('\n') });
    const probe = await startProbe(bed.configFile);
    try {
      // Two access-token lifetimes: each slot refreshed at least once.
      const m = await waitFor(
        async () => {
          const s = await scrape(probe.base);
          return (
            (s.get('mytoken_probe_token_requests_total{result="success"}') ?? 0) >= SLOTS * 3 && s
          );
        },
        20_000,
        'a refresh per slot',
      );
      const failed = [...m].filter(([k, v]) => k.includes('failures_total') && v > 0);
      expect(failed).toEqual([]);
      let runs = 0;
      for (let i = 0; i < CHECKS; i++) {
        expect(m.get(`mytoken_probe_check_runs_total{check="c${i}",result="failure"}`)).toBe(0);
        runs += m.get(`mytoken_probe_check_runs_total{check="c${i}",result="success"}`) ?? 0;
      }
      expect(runs).toBeGreaterThanOrEqual(CHECKS * 2);
      expect(m.get('mytoken_probe_token_requests_total{result="failure"}')).toBe(0);
      const stats = bed.dev.stats();
      expect(Object.keys(stats.requests[ACCESS] ?? {})).toEqual(['200']);
      expect(stats.resource['401']).toBeUndefined();
      expect(m.get('mytoken_probe_mytoken_chain_broken')).toBe(0);
    } finally {
      await probe.close();
      await bed.close();
    }
  }, 30_000);
});
