import { afterEach, describe, expect, it } from 'vitest';
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

let ws: Workspace | undefined;
let probe: InProcessProbe | undefined;

afterEach(async () => {
  await probe?.close();
  await ws?.close();
  probe = undefined;
  ws = undefined;
});

const ACCESS = '/api/v0/token/access';

describe('probe when the mytoken server fails', () => {
  it('goes on with the cached access token, fails with reason token once it is used up, and recovers', async () => {
    // AT lifetime 4 s: refreshed from 2 s on, handed out until 2.5 s.
    ws = await workspace({ atLifetime: 4 });
    await ws.writeConfig(
      `checks:\n${check({ name: 'health', url: `${ws.dev.urls.resource}/health`, interval: '200ms' })}`,
    );
    probe = await startProbe(ws.configFile);
    const base = probe.base;
    await waitFor(
      async () => (await scrape(base)).get('mytoken_probe_check_success{check="health"}') === 1,
    );
    const stored = await readToken(ws.tokenFile);
    ws.dev.armFault({ path: ACCESS, kind: 'status', status: 503, times: 0 });

    const failing = await waitFor(async () => {
      const m = await scrape(base);
      return (
        (m.get('mytoken_probe_check_failures_total{check="health",reason="token"}') ?? 0) > 0 && m
      );
    });
    expect(failing.get('mytoken_probe_token_requests_total{result="failure"}')).toBeGreaterThan(0);
    // Runs kept succeeding with the cached token after the first refresh failed.
    expect(
      failing.get('mytoken_probe_check_runs_total{check="health",result="success"}'),
    ).toBeGreaterThan(5);
    expect(failing.get('mytoken_probe_mytoken_chain_broken')).toBe(0);
    expect(await readToken(ws.tokenFile)).toBe(stored);

    ws.dev.clearFaults();
    const recovered = await waitFor(async () => {
      const m = await scrape(base);
      return m.get('mytoken_probe_check_success{check="health"}') === 1 && m;
    });
    expect(recovered.get('mytoken_probe_mytoken_chain_broken')).toBe(0);
    expect(await readToken(ws.tokenFile)).not.toBe(stored);
  });

  it('raises the chain-broken metric when the answer of a rotation is lost', async () => {
    ws = await workspace();
    await ws.writeConfig(
      `checks:\n${check({ name: 'health', url: `${ws.dev.urls.resource}/health`, interval: '200ms' })}`,
    );
    ws.dev.armFault({ path: ACCESS, kind: 'drop_after_commit', times: 1 });
    probe = await startProbe(ws.configFile);
    const m = await waitFor(async () => {
      const s = await scrape(probe!.base);
      return s.get('mytoken_probe_mytoken_chain_broken') === 1 && s;
    });
    expect(m.get('mytoken_probe_check_success{check="health"}')).toBe(0);
    const line = probe.logs
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find(
        (l) => l.code === 'ERR_MYTOKEN_CHAIN_BROKEN' && l.msg === 'Access token request failed',
      );
    expect(line).toMatchObject({ level: 'error', msg: 'Access token request failed' });
    expect(String(line!.err)).toContain('the token chain is broken');
  });
});
