import { createServer } from 'node:net';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mint } from '../../devserver/index.ts';
import { LOG_KEYS } from '../../probe/log.ts';
import { checkMetrics } from '../support/prometheus.ts';
import {
  check,
  readToken,
  scrape,
  startProbe,
  waitFor,
  workspace,
  type InProcessProbe,
  type Workspace,
} from './helpers.ts';

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const CHECKS = ['health', 'fail', 'wrong-json', 'wrong-body', 'refused', 'slow', 'accept-500'];

describe('probe checks against the dev server', () => {
  let ws: Workspace;
  let probe: InProcessProbe;

  beforeAll(async () => {
    ws = await workspace();
    const r = ws.dev.urls.resource;
    await ws.writeConfig(
      `defaults:\n  interval: 400ms\nchecks:\n` +
        check(
          { name: 'health', url: `${r}/health` },
          'json: [{path: status, equals: ok}]\nbody_matches: ok',
        ) +
        check({ name: 'fail', url: `${r}/fail` }) +
        check({ name: 'wrong-json', url: `${r}/health` }, 'json: [{path: status, equals: down}]') +
        check({ name: 'wrong-body', url: `${r}/health` }, "body_matches: '^nope$'") +
        check({ name: 'refused', url: `http://127.0.0.1:${await closedPort()}/` }) +
        check({ name: 'slow', url: `${r}/slow?ms=2000`, interval: '300ms', timeout: '150ms' }) +
        check({ name: 'accept-500', url: `${r}/fail` }, 'status: [500]'),
    );
    probe = await startProbe(ws.configFile);
    await waitFor(
      async () => {
        const m = await scrape(probe.base);
        return CHECKS.every((c) => {
          const runs =
            (m.get(`mytoken_probe_check_runs_total{check="${c}",result="success"}`) ?? 0) +
            (m.get(`mytoken_probe_check_runs_total{check="${c}",result="failure"}`) ?? 0);
          return runs >= 2;
        });
      },
      20_000,
      'two runs of every check',
    );
  });

  afterAll(async () => {
    await probe?.close();
    await ws?.close();
  });

  it('passes and fails checks as configured, each failure with its reason', async () => {
    const m = await scrape(probe.base);
    const success = Object.fromEntries(
      CHECKS.map((c) => [c, m.get(`mytoken_probe_check_success{check="${c}"}`)]),
    );
    expect(success).toEqual({
      health: 1,
      fail: 0,
      'wrong-json': 0,
      'wrong-body': 0,
      refused: 0,
      slow: 0,
      'accept-500': 1,
    });
    const reasonOf = (c: string) =>
      ['token', 'connect', 'tls', 'timeout', 'status', 'body'].filter(
        (r) => (m.get(`mytoken_probe_check_failures_total{check="${c}",reason="${r}"}`) ?? 0) > 0,
      );
    expect(CHECKS.map((c) => [c, reasonOf(c)])).toEqual([
      ['health', []],
      ['fail', ['status']],
      ['wrong-json', ['body']],
      ['wrong-body', ['body']],
      ['refused', ['connect']],
      ['slow', ['timeout']],
      ['accept-500', []],
    ]);
  });

  it('exports the status code, duration and run timestamps of the last run', async () => {
    const m = await scrape(probe.base);
    expect(m.get('mytoken_probe_check_http_status_code{check="health"}')).toBe(200);
    expect(m.get('mytoken_probe_check_http_status_code{check="fail"}')).toBe(500);
    expect(m.get('mytoken_probe_check_http_status_code{check="refused"}')).toBe(0);
    expect(m.get('mytoken_probe_check_interval_seconds{check="health"}')).toBe(0.4);
    expect(m.get('mytoken_probe_check_duration_seconds{check="slow"}')).toBeGreaterThanOrEqual(
      0.15,
    );
    const now = Date.now() / 1000;
    const lastRun = m.get('mytoken_probe_check_last_run_timestamp_seconds{check="health"}')!;
    expect(Math.abs(now - lastRun)).toBeLessThan(60);
    expect(
      m.get('mytoken_probe_check_last_success_timestamp_seconds{check="health"}'),
    ).toBeGreaterThan(0);
    expect(m.get('mytoken_probe_check_last_success_timestamp_seconds{check="fail"}')).toBe(0);
  });

  it('exports token and config metrics', async () => {
    const m = await scrape(probe.base);
    expect(m.get('mytoken_probe_token_requests_total{result="success"}')).toBe(1);
    expect(m.get('mytoken_probe_token_requests_total{result="failure"}')).toBe(0);
    expect(m.get('mytoken_probe_mytoken_rotations_total')).toBe(1);
    expect(m.get('mytoken_probe_token_store_writes_total{result="success"}')).toBe(1);
    expect(m.get('mytoken_probe_token_store_writes_total{result="failure"}')).toBe(0);
    expect(m.get('mytoken_probe_mytoken_chain_broken')).toBe(0);
    expect(m.get('mytoken_probe_mytoken_expiry_timestamp_seconds')).toBe(0);
    expect(m.get('mytoken_probe_config_last_reload_successful')).toBe(1);
    expect(m.get('mytoken_probe_config_last_reload_success_timestamp_seconds')).toBeGreaterThan(0);
    expect(
      m.get(
        'mytoken_probe_build_info{version="test",nodejs_version="' + process.versions.node + '"}',
      ),
    ).toBe(1);
    expect(m.has('process_cpu_seconds_total')).toBe(true);
  });

  it('serves metrics that pass promtool check metrics', async () => {
    const text = await (await fetch(`${probe.base}/metrics`)).text();
    expect(await checkMetrics(text)).toEqual([]);
  });

  it('shows the last result and a short history per check on /status', async () => {
    const status = (await (await fetch(`${probe.base}/status`)).json()) as {
      checks: { name: string; url: string; last: Record<string, unknown>; history: unknown[] }[];
    };
    expect(status.checks.map((c) => c.name)).toEqual(CHECKS);
    const fail = status.checks.find((c) => c.name === 'fail')!;
    expect(fail.url).toBe(`${ws.dev.urls.resource}/fail`);
    expect(fail.last).toMatchObject({
      success: false,
      reason: 'status',
      status_code: 500,
      error: 'status 500 is not one of 2xx',
    });
    expect(fail.history.length).toBeGreaterThanOrEqual(2);
    expect(fail.history.length).toBeLessThanOrEqual(10);
    const wrong = status.checks.find((c) => c.name === 'wrong-json')!;
    expect(wrong.last.error).toBe('json status: expected "down", got "ok"');
  });

  it('logs one line per failed run with its reason, using only the fixed keys', () => {
    const lines = probe.logs.map((l) => JSON.parse(l) as Record<string, unknown>);
    const failed = lines.filter((l) => l.msg === 'Check failed');
    expect(new Set(failed.map((l) => `${String(l.check)}:${String(l.reason)}`))).toEqual(
      new Set([
        'fail:status',
        'wrong-json:body',
        'wrong-body:body',
        'refused:connect',
        'slow:timeout',
      ]),
    );
    const allowed = new Set<string>(['ts', 'level', 'msg', ...LOG_KEYS]);
    expect(lines.flatMap((l) => Object.keys(l)).filter((k) => !allowed.has(k))).toEqual([]);
  });

  it('never shows a token in logs, /metrics or /status', async () => {
    const current = await readToken(ws.tokenFile);
    const seen = [
      probe.logs.join('\n'),
      await (await fetch(`${probe.base}/metrics`)).text(),
      await (await fetch(`${probe.base}/status`)).text(),
    ].join('\n');
    expect(current).not.toBe(ws.minted);
    for (const token of [ws.minted, current]) expect(seen).not.toContain(token);
    // Every token the dev server issues (mytokens and access tokens) is a JWT.
    expect(seen).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}/);
  });

  it('answers /healthz and /readyz, and 404 or 405 elsewhere', async () => {
    expect((await fetch(`${probe.base}/healthz`)).status).toBe(200);
    expect((await fetch(`${probe.base}/readyz`)).status).toBe(200);
    expect((await fetch(`${probe.base}/nope`)).status).toBe(404);
    expect((await fetch(`${probe.base}/metrics`, { method: 'POST' })).status).toBe(405);
  });
});

describe('probe with an unusable mytoken', () => {
  let ws: Workspace;
  let probe: InProcessProbe;

  beforeAll(async () => {
    ws = await workspace();
    await writeFile(join(ws.dir, 'mytoken'), 'not-a-valid-mytoken\n', { mode: 0o600 });
    await ws.writeConfig(
      `checks:\n${check({ name: 'health', url: `${ws.dev.urls.resource}/health`, interval: '200ms' })}`,
    );
    probe = await startProbe(ws.configFile);
  });

  afterAll(async () => {
    await probe?.close();
    await ws?.close();
  });

  it('fails checks with reason token and raises the chain-broken metric', async () => {
    const m = await waitFor(async () => {
      const s = await scrape(probe.base);
      return (
        (s.get('mytoken_probe_check_failures_total{check="health",reason="token"}') ?? 0) > 0 && s
      );
    });
    expect(m.get('mytoken_probe_check_success{check="health"}')).toBe(0);
    expect(m.get('mytoken_probe_mytoken_chain_broken')).toBe(1);
    expect(m.get('mytoken_probe_token_requests_total{result="failure"}')).toBeGreaterThan(0);
    const status = (await (await fetch(`${probe.base}/status`)).json()) as {
      checks: { last: { error: string } }[];
    };
    expect(status.checks[0]!.last.error).toMatch(
      /^access token: access_token: mytoken is not valid/,
    );
  });

  it('recovers without a restart once a new mytoken is put in the token file', async () => {
    const fresh = await mint({ server: ws.dev.urls.mytoken_server, rotation: ['on_AT'] });
    await writeFile(join(ws.dir, 'mytoken.new'), `${fresh}\n`, { mode: 0o600 });
    const { rename } = await import('node:fs/promises');
    await rename(join(ws.dir, 'mytoken.new'), ws.tokenFile);
    const m = await waitFor(async () => {
      const s = await scrape(probe.base);
      return s.get('mytoken_probe_check_success{check="health"}') === 1 && s;
    });
    expect(m.get('mytoken_probe_mytoken_chain_broken')).toBe(0);
  });
});
