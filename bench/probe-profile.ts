/**
 * Measures (and optionally profiles) the probe alone: the dev server and the bench target each run
 * in a process of their own, so the probe's CPU, memory and profile are its own.
 *
 *   node bench/probe-profile.ts --checks 1000 --interval 167ms --seconds 10
 *   node bench/probe-profile.ts --checks 10000 --interval 60s --warmup 65 --seconds 30 --scrapes 20
 *   node bench/probe-profile.ts ... --cpu-prof DIR     # writes the probe's .cpuprofile into DIR
 *   node bench/probe-profile.ts ... --node-flag --max-old-space-size=64   (repeatable)
 *
 * Prints one JSON object: runs/s, failed and skipped/s, CPU µs per run, CPU share of one core, RSS
 * and peak RSS (VmRSS, VmHWM from /proc), and /metrics time to last byte (p50, p90) and size.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { mint } from '../devserver/index.ts';

const ROOT = resolve(import.meta.dirname, '..');
const TICK = 100; // USER_HZ

async function startJsonLine(args: string[]): Promise<{ child: ChildProcess; line: unknown }> {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const [line] = (await once(createInterface({ input: child.stdout! }), 'line')) as [string];
  return { child, line: JSON.parse(line) };
}

async function procStat(pid: number): Promise<{ cpu: number; rss: number; hwm: number }> {
  const stat = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ');
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+)`).exec(status)?.[1] ?? 0) * 1024;
  return {
    cpu: (Number(stat[11]) + Number(stat[12])) / TICK,
    rss: kb('VmRSS'),
    hwm: kb('VmHWM'),
  };
}

async function scrape(base: string): Promise<{ ms: number; text: string }> {
  const started = performance.now();
  const text = await (await fetch(`${base}/metrics`)).text();
  return { ms: performance.now() - started, text };
}

function counters(text: string): { runs: number; failures: number; skipped: number } {
  const out = { runs: 0, failures: 0, skipped: 0 };
  for (const line of text.split('\n')) {
    if (!line.startsWith('mytoken_probe_check_runs_total{')) continue;
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (line.includes('result="skipped"')) out.skipped += value;
    else out.runs += value;
    if (line.includes('result="failure"')) out.failures += value;
  }
  return out;
}

function pct(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      checks: { type: 'string', default: '1000' },
      interval: { type: 'string', default: '1s' },
      timeout: { type: 'string' },
      seconds: { type: 'string', default: '10' },
      warmup: { type: 'string', default: '5' },
      scrapes: { type: 'string', default: '5' },
      'cpu-prof': { type: 'string' },
      'node-flag': { type: 'string', multiple: true, default: [] },
    },
  });
  const checks = Number(values.checks);
  const dev = await startJsonLine([join(ROOT, 'bin/mytoken-dev-server.js'), '--port', '0']);
  const urls = dev.line as Record<string, string>;
  const target = await startJsonLine([
    join(ROOT, 'bench/target.ts'),
    '--issuer',
    urls.oidc_issuer!,
    '--audience',
    urls.resource!,
  ]);
  const targetUrl = (target.line as { url: string }).url;
  const dir = await mkdtemp(join(tmpdir(), 'probe-profile-'));
  let probe: ChildProcess | undefined;
  try {
    const token = await mint({ server: urls.mytoken_server!, rotation: ['on_AT'] });
    await writeFile(join(dir, 'mytoken'), `${token}\n`, { mode: 0o600 });
    const lines = [
      `mytoken:\n  server: ${urls.mytoken_server}\n  token_file: mytoken\nlisten: 127.0.0.1:0`,
      `defaults:\n  interval: ${values.interval}${values.timeout ? `\n  timeout: ${values.timeout}` : ''}`,
      'checks:',
    ];
    for (let i = 0; i < checks; i++) {
      lines.push(`  - name: check-${String(i).padStart(5, '0')}\n    url: ${targetUrl}/health`);
    }
    await writeFile(join(dir, 'probe.yml'), `${lines.join('\n')}\n`);
    const flags = [...values['node-flag']];
    if (values['cpu-prof'] !== undefined)
      flags.push('--cpu-prof', `--cpu-prof-dir=${values['cpu-prof']}`);
    const spawned = performance.now();
    probe = spawn(
      process.execPath,
      [...flags, join(ROOT, 'bin/mytoken-probe.js'), '--config', join(dir, 'probe.yml')],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    const child = probe;
    const base = await new Promise<string>((ok, fail) => {
      createInterface({ input: child.stderr! }).on('line', (line) => {
        if (line.includes('"Probe started"'))
          ok(`http://${(JSON.parse(line) as { address: string }).address}`);
        else if (!line.includes('"Check failed"')) process.stderr.write(`${line}\n`);
      });
      child.once('exit', (code) => fail(new Error(`probe exited with ${code}`)));
    });
    const startupMs = performance.now() - spawned;
    const idle = await procStat(child.pid!);
    await sleep(Number(values.warmup) * 1000);
    const a = counters((await scrape(base)).text);
    const pa = await procStat(child.pid!);
    const t0 = performance.now();
    await sleep(Number(values.seconds) * 1000);
    const b = counters((await scrape(base)).text);
    const pb = await procStat(child.pid!);
    const seconds = (performance.now() - t0) / 1000;
    const runs = b.runs - a.runs;
    const times: number[] = [];
    let size = 0;
    let series = 0;
    const before = await procStat(child.pid!);
    for (let i = 0; i < Number(values.scrapes); i++) {
      const { ms, text } = await scrape(base);
      times.push(ms);
      size = Buffer.byteLength(text);
      series = text.split('\n').filter((l) => l !== '' && !l.startsWith('#')).length;
    }
    const after = await procStat(child.pid!);
    const cpu = pb.cpu - pa.cpu;
    process.stdout.write(
      `${JSON.stringify(
        {
          checks,
          interval: values.interval,
          startupMs: Math.round(startupMs),
          runsPerSecond: Math.round(runs / seconds),
          failedPerSecond: Math.round((b.failures - a.failures) / seconds),
          skippedPerSecond: Math.round((b.skipped - a.skipped) / seconds),
          cpuShare: +(cpu / seconds).toFixed(3),
          cpuMicrosPerRun: runs === 0 ? null : Math.round((cpu / runs) * 1e6),
          rssMiBAtStart: Math.round(idle.rss / 2 ** 20),
          rssMiB: Math.round(pb.rss / 2 ** 20),
          peakRssMiB: Math.round(after.hwm / 2 ** 20),
          metricsMs: {
            p50: Math.round(pct(times, 0.5)),
            p90: Math.round(pct(times, 0.9)),
            max: Math.round(Math.max(...times)),
          },
          metricsCpuMsPerScrape: Math.round(((after.cpu - before.cpu) / times.length) * 1000),
          metricsBytes: size,
          series,
        },
        null,
        1,
      )}\n`,
    );
  } finally {
    if (probe !== undefined && probe.exitCode === null) {
      probe.kill('SIGTERM');
      await once(probe, 'exit');
    }
    for (const c of [target.child, dev.child]) {
      c.kill('SIGTERM');
      await once(c, 'exit');
    }
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
