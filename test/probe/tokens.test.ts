import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../probe/config.ts';
import { nullLogger, SecretScrubber } from '../../probe/log.ts';
import { runOnce } from '../../probe/service.ts';
import {
  check,
  scrape,
  startProbe,
  waitFor,
  workspace,
  type InProcessProbe,
  type Samples,
  type Workspace,
} from './helpers.ts';

let ws: Workspace | undefined;
let probe: InProcessProbe | undefined;

afterEach(async () => {
  await probe?.close();
  await ws?.close();
  probe = undefined;
  ws = undefined;
});

function runs(m: Samples, name: string, result: 'success' | 'failure'): number {
  return m.get(`mytoken_probe_check_runs_total{check="${name}",result="${result}"}`) ?? 0;
}

function checks(count: number, make: (i: number) => Record<string, string | number>): string {
  return `checks:\n${Array.from({ length: count }, (_, i) => check(make(i))).join('')}`;
}

describe('access tokens', () => {
  it('requests one access token per (scope, audience), however many checks share it', async () => {
    ws = await workspace();
    const health = `${ws.dev.urls.resource}/health`;
    const names = Array.from({ length: 60 }, (_, i) => `c${i}`);
    await ws.writeConfig(
      checks(60, (i) => ({
        name: `c${i}`,
        url: health,
        interval: '1s',
        scope: i % 2 === 0 ? 'openid' : 'openid profile',
      })),
    );
    probe = await startProbe(ws.configFile);
    const m = await waitFor(
      async () => {
        const s = await scrape(probe!.base);
        return names.every((n) => runs(s, n, 'success') >= 2) && s;
      },
      20_000,
      'two successful runs of every check',
    );

    expect(ws.dev.stats().at_success).toBe(2);
    expect(m.get('mytoken_probe_token_requests_total{result="success"}')).toBe(2);
    expect(m.get('mytoken_probe_mytoken_rotations_total')).toBe(2);
    expect(names.reduce((sum, n) => sum + runs(m, n, 'failure'), 0)).toBe(0);
  });

  it('refreshes an access token before it expires, so no check presents an expired one', async () => {
    ws = await workspace({ atLifetime: 4 });
    await ws.writeConfig(
      checks(10, (i) => ({
        name: `c${i}`,
        url: `${ws!.dev.urls.resource}/health`,
        interval: '500ms',
      })),
    );
    probe = await startProbe(ws.configFile);
    const m = await waitFor(
      async () => {
        const s = await scrape(probe!.base);
        return (s.get('mytoken_probe_token_requests_total{result="success"}') ?? 0) >= 3 && s;
      },
      20_000,
      'three access-token refreshes',
    );

    const stats = ws.dev.stats();
    expect(stats.resource['401']).toBeUndefined();
    expect(stats.resource['200']).toBeGreaterThan(0);
    const failures = Array.from({ length: 10 }, (_, i) => runs(m, `c${i}`, 'failure'));
    expect(failures.every((f) => f === 0)).toBe(true);
  });

  it('gives 200 checks due at once one exchange of the rotating mytoken', async () => {
    ws = await workspace();
    await ws.writeConfig(
      checks(200, (i) => ({ name: `c${i}`, url: `${ws!.dev.urls.resource}/health` })),
    );
    const results = await runOnce(await loadConfig(ws.configFile), {
      logger: nullLogger,
      scrubber: new SecretScrubber(),
    });

    expect(results.filter((r) => r.record.success)).toHaveLength(200);
    const stats = ws.dev.stats();
    expect(stats.requests['/api/v0/token/access']).toEqual({ '200': 1 });
    expect(stats.rotations).toBe(1);
  });
});

describe('a target that answers 401', () => {
  let target: Server | undefined;

  afterEach(async () => {
    await new Promise((resolve) => target?.close(resolve) ?? resolve(undefined));
    target = undefined;
  });

  it('gets one fresh access token and one retry, not a token per run', async () => {
    const rejected = new Set<string>();
    const accepted: string[] = [];
    let requests = 0;
    target = createServer((req, res) => {
      requests++;
      const token = (req.headers.authorization ?? '').replace(/^Bearer /, '');
      if (rejected.has(token)) {
        res.writeHead(401).end();
        return;
      }
      accepted.push(token);
      res.writeHead(200).end('ok');
    });
    await new Promise<void>((resolve) => target!.listen(0, '127.0.0.1', resolve));
    const port = (target.address() as AddressInfo).port;

    // AT lifetime 4 s: a token at least 0.75 s old may be replaced after a 401; it is refreshed at
    // 2 s anyway.
    ws = await workspace({ atLifetime: 4 });
    await ws.writeConfig(
      checks(1, () => ({ name: 't', url: `http://127.0.0.1:${port}/`, interval: '100ms' })),
    );
    probe = await startProbe(ws.configFile);
    const first = await waitFor(() => accepted[0]);
    rejected.add(first);
    await waitFor(() => accepted.some((t) => t !== first), 10_000, 'a success with a new token');

    const m = await scrape(probe.base);
    const total = runs(m, 't', 'success') + runs(m, 't', 'failure');
    expect(ws.dev.stats().at_success).toBeLessThanOrEqual(3);
    expect(requests).toBeLessThanOrEqual(total * 2 + 1);
    const status = (await (await fetch(`${probe.base}/status`)).json()) as {
      checks: { history: { status_code: number }[] }[];
    };
    expect(status.checks[0]!.history.map((h) => h.status_code)).toContain(200);
  });
});
