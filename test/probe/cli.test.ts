import { chmod, stat, writeFile } from 'node:fs/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { readMytokenClaims } from '../../src/client/index.ts';
import {
  check,
  readToken,
  runBin,
  scrape,
  spawnProbe,
  waitFor,
  workspace,
  type ChildProbe,
  type Workspace,
} from './helpers.ts';

let ws: Workspace | undefined;
let probe: ChildProbe | undefined;

afterEach(async () => {
  await probe?.stop('SIGKILL');
  await ws?.close();
  probe = undefined;
  ws = undefined;
});

function seqNo(token: string): number {
  const claims = readMytokenClaims(token);
  if (claims.kind !== 'jwt') throw new Error('not a JWT mytoken');
  return claims.seqNo;
}

describe('mytoken-probe as a service', () => {
  it('keeps the newest token in the file through 50 rotations, and a restarted probe goes on with it', async () => {
    ws = await workspace();
    const health = `${ws.dev.urls.resource}/health`;
    // Fifty checks with fifty different scopes: fifty access-token requests, so fifty rotations.
    const checks = Array.from({ length: 50 }, (_, i) =>
      check({ name: `c${i}`, url: health, interval: '2s', scope: `openid s${i}` }),
    );
    await ws.writeConfig(`checks:\n${checks.join('')}`);
    probe = await spawnProbe(ws.configFile);
    await waitFor(
      async () => (await scrape(probe!.base)).get('mytoken_probe_mytoken_rotations_total') === 50,
    );
    expect(await probe.stop('SIGTERM')).toBe(0);
    expect(probe.logs.at(-1)).toMatchObject({ msg: 'Probe stopped' });

    const newest = await readToken(ws.tokenFile);
    expect(seqNo(newest)).toBe(51);
    expect(ws.dev.stats().rotations).toBe(50);
    expect((await stat(ws.tokenFile)).mode & 0o777).toBe(0o600);

    await ws.writeConfig(`checks:\n${check({ name: 'again', url: health, interval: '200ms' })}`);
    probe = await spawnProbe(ws.configFile);
    const m = await waitFor(async () => {
      const s = await scrape(probe!.base);
      return s.get('mytoken_probe_check_success{check="again"}') === 1 && s;
    });
    expect(m.get('mytoken_probe_mytoken_chain_broken')).toBe(0);
    expect(await probe.stop('SIGTERM')).toBe(0);
    expect(seqNo(await readToken(ws.tokenFile))).toBe(52);
  });

  it('reloads on SIGHUP, rejecting a bad config and keeping the running one', async () => {
    ws = await workspace();
    const r = ws.dev.urls.resource;
    await ws.writeConfig(`checks:\n${check({ name: 'a', url: `${r}/health`, interval: '200ms' })}`);
    probe = await spawnProbe(ws.configFile);
    await waitFor(
      async () => (await scrape(probe!.base)).get('mytoken_probe_check_success{check="a"}') === 1,
    );

    await ws.writeConfig(`checks:\n${check({ name: 'a', url: `${r}/health` }, 'status: 200')}`);
    probe.child.kill('SIGHUP');
    const rejected = await waitFor(() =>
      probe!.logs.find((l) => l.msg?.toString().startsWith('Configuration rejected')),
    );
    expect(rejected.err).toBe('checks[0].expect.status: must be a list');
    const before = await scrape(probe.base);
    expect(before.get('mytoken_probe_config_last_reload_successful')).toBe(0);
    const runsOf = (m: Map<string, number>) =>
      m.get('mytoken_probe_check_runs_total{check="a",result="success"}') ?? 0;
    await waitFor(
      async () => runsOf(await scrape(probe!.base)) > runsOf(before),
      5_000,
      'check a running on',
    );

    await ws.writeConfig(`checks:\n${check({ name: 'b', url: `${r}/fail`, interval: '200ms' })}`);
    probe.child.kill('SIGHUP');
    const after = await waitFor(async () => {
      const s = await scrape(probe!.base);
      return s.get('mytoken_probe_check_success{check="b"}') === 0 && s;
    });
    expect(after.get('mytoken_probe_config_last_reload_successful')).toBe(1);
    expect([...after.keys()].filter((k) => k.includes('check="a"'))).toEqual([]);
    expect(await probe.stop('SIGTERM')).toBe(0);
  });

  it('refuses to start on a token file that others can read', async () => {
    ws = await workspace();
    await ws.writeConfig(`checks:\n${check({ name: 'a', url: `${ws.dev.urls.resource}/health` })}`);
    await chmod(ws.tokenFile, 0o640);
    const result = await runBin(['--config', ws.configFile]);
    expect(result.code).toBe(2);
    const lines = result.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({
      level: 'error',
      msg: 'Probe did not start',
      code: 'ERR_PROBE_TOKEN_STORE',
      err: `token file ${ws.tokenFile} is readable by others: run chmod 600 on it`,
    });
  });
});

describe('mytoken-probe --once and --check-config', () => {
  it('prints a table and exits 1 when a check fails', async () => {
    ws = await workspace();
    const r = ws.dev.urls.resource;
    await ws.writeConfig(
      `checks:\n${check({ name: 'health', url: `${r}/health` })}${check({ name: 'fail', url: `${r}/fail` })}`,
    );
    const result = await runBin(['--config', ws.configFile, '--once']);
    expect(result.code).toBe(1);
    const lines = result.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^CHECK\s+RESULT\s+REASON\s+STATUS\s+DURATION\s+DETAIL$/);
    expect(lines[1]).toMatch(/^health\s+ok\s+-\s+200\s+\d+\.\d{3}s$/);
    expect(lines[2]).toMatch(
      /^fail\s+FAIL\s+status\s+500\s+\d+\.\d{3}s\s+status 500 is not one of 2xx$/,
    );
    expect(lines[3]).toBe('2 checks, 1 failed');
    expect(result.stderr).toBe('');
  });

  it('exits 0 when every check passes', async () => {
    ws = await workspace();
    await ws.writeConfig(
      `checks:\n${check({ name: 'health', url: `${ws.dev.urls.resource}/health` })}`,
    );
    const result = await runBin(['--config', ws.configFile, '--once']);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('1 check, 0 failed');
  });

  it('validates a config and exits 0', async () => {
    ws = await workspace();
    await ws.writeConfig(
      `checks:\n${check({ name: 'health', url: `${ws.dev.urls.resource}/health` })}`,
    );
    const result = await runBin(['--config', ws.configFile, '--check-config']);
    expect(result).toEqual({ code: 0, stdout: `${ws.configFile}: valid, 1 check\n`, stderr: '' });
  });

  it('reports a bad config in one line naming the key, and exits 2', async () => {
    ws = await workspace();
    await writeFile(
      ws.configFile,
      'mytoken:\n  server: https://x.example\n  token_file: t\nchecks:\n  - name: a\n    url: https://x.example/\n    timeout: soon\n',
    );
    const result = await runBin(['--config', ws.configFile, '--check-config']);
    expect(result).toEqual({
      code: 2,
      stdout: '',
      stderr: `mytoken-probe: ${ws.configFile}: checks[0].timeout: "soon" is not a duration (use a unit: 500ms, 30s, 5m, 1h)\n`,
    });
  });

  it('rejects unknown arguments with the usage text', async () => {
    const result = await runBin(['--bogus']);
    expect(result.code).toBe(2);
    expect(result.stderr.split('\n')[0]).toBe("mytoken-probe: unknown option '--bogus'");
    expect(result.stderr).toContain('Usage: mytoken-probe --config FILE');
  });
});
