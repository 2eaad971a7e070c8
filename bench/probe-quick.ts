/**
 * Quick measurements of the probe (the full comparison with blackbox_exporter is `npm run bench`,
 * issue #6).
 *
 *   node bench/probe-quick.ts    # the default scenarios, then a Markdown table
 *   node bench/probe-quick.ts --checks 1000 --interval 6s --seconds 60 --warmup 10
 *
 * Each scenario starts the dev server and the probe as separate processes (so neither one's work is
 * counted for the other), lets every check run, then reads the probe's own /metrics twice, a window
 * apart: completed runs, skipped runs, CPU seconds and resident memory come from its counters and
 * process metrics. The checks GET the dev server's demo resource, which verifies the access token
 * on every request.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { mint } from '../devserver/index.ts';

const ROOT = resolve(import.meta.dirname, '..');

interface Scenario {
  name: string;
  checks: number;
  interval: string;
  timeout?: string;
  warmupSeconds: number;
  seconds: number;
  atLifetime?: number;
}

interface Sample {
  runs: number;
  failures: number;
  skipped: number;
  cpu: number;
  rss: number;
  tokenRequests: number;
  metricsMs: number;
  at: number;
}

interface Outcome {
  scenario: Scenario;
  runsPerSecond: number;
  failuresPerSecond: number;
  skippedPerSecond: number;
  cpuPercent: number;
  cpuSecondsPer1000: number;
  rssMb: number;
  metricsMs: number;
  tokenRequests: number;
}

const DEFAULTS: Scenario[] = [
  {
    name: 'saturation: 500 checks every 100ms',
    checks: 500,
    interval: '100ms',
    warmupSeconds: 5,
    seconds: 20,
  },
  {
    name: '10,000 checks/min: 1,000 every 6s',
    checks: 1000,
    interval: '6s',
    warmupSeconds: 8,
    seconds: 30,
  },
  {
    name: 'memory: 1,000 checks every 10s',
    checks: 1000,
    interval: '10s',
    warmupSeconds: 12,
    seconds: 10,
  },
  {
    name: '10,000 checks every 60s',
    checks: 10_000,
    interval: '60s',
    warmupSeconds: 65,
    seconds: 30,
  },
];

async function startDevServer(
  atLifetime: number,
): Promise<{ child: ChildProcess; urls: Record<string, string> }> {
  const bin = join(ROOT, 'bin/mytoken-dev-server.js');
  const child = spawn(process.execPath, [bin, '--port', '0', '--at-lifetime', String(atLifetime)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const [line] = (await once(createInterface({ input: child.stdout! }), 'line')) as [string];
  return { child, urls: JSON.parse(line) as Record<string, string> };
}

async function startProbe(configFile: string): Promise<{ child: ChildProcess; base: string }> {
  const bin = join(ROOT, 'bin/mytoken-probe.js');
  const child = spawn(process.execPath, [bin, '--config', configFile, '--log-level', 'info'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const base = await new Promise<string>((resolveBase, reject) => {
    createInterface({ input: child.stderr! }).on('line', (line) => {
      if (!line.includes('"Probe started"')) return;
      resolveBase(`http://${String((JSON.parse(line) as { address: string }).address)}`);
    });
    child.once('exit', (code) => reject(new Error(`probe exited with ${code}`)));
  });
  return { child, base };
}

async function sample(base: string): Promise<Sample> {
  const started = performance.now();
  const text = await (await fetch(`${base}/metrics`)).text();
  const metricsMs = performance.now() - started;
  const out: Sample = {
    runs: 0,
    failures: 0,
    skipped: 0,
    cpu: 0,
    rss: 0,
    tokenRequests: 0,
    metricsMs,
    at: started,
  };
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (line.startsWith('mytoken_probe_check_runs_total{')) {
      if (line.includes('result="skipped"')) out.skipped += value;
      else out.runs += value;
      if (line.includes('result="failure"')) out.failures += value;
    } else if (line.startsWith('process_cpu_seconds_total ')) out.cpu = value;
    else if (line.startsWith('process_resident_memory_bytes ')) out.rss = value;
    else if (line.startsWith('mytoken_probe_token_requests_total{result="success"}'))
      out.tokenRequests = value;
  }
  return out;
}

function config(server: string, resource: string, s: Scenario): string {
  const lines = [
    `mytoken:\n  server: ${server}\n  token_file: mytoken\nlisten: 127.0.0.1:0`,
    `defaults:\n  interval: ${s.interval}${s.timeout === undefined ? '' : `\n  timeout: ${s.timeout}`}`,
    'checks:',
  ];
  for (let i = 0; i < s.checks; i++) lines.push(`  - name: c${i}\n    url: ${resource}/health`);
  return `${lines.join('\n')}\n`;
}

async function run(s: Scenario): Promise<Outcome> {
  const dev = await startDevServer(s.atLifetime ?? 3600);
  const dir = await mkdtemp(join(tmpdir(), 'probe-bench-'));
  let probe: { child: ChildProcess; base: string } | undefined;
  try {
    const token = await mint({ server: dev.urls.mytoken_server!, rotation: ['on_AT'] });
    await writeFile(join(dir, 'mytoken'), `${token}\n`, { mode: 0o600 });
    await writeFile(
      join(dir, 'probe.yml'),
      config(dev.urls.mytoken_server!, dev.urls.resource!, s),
    );
    probe = await startProbe(join(dir, 'probe.yml'));
    await sleep(s.warmupSeconds * 1000);
    const a = await sample(probe.base);
    await sleep(s.seconds * 1000);
    const b = await sample(probe.base);
    const seconds = (b.at - a.at) / 1000;
    const runs = b.runs - a.runs;
    const cpu = b.cpu - a.cpu;
    return {
      scenario: s,
      runsPerSecond: runs / seconds,
      failuresPerSecond: (b.failures - a.failures) / seconds,
      skippedPerSecond: (b.skipped - a.skipped) / seconds,
      cpuPercent: (cpu / seconds) * 100,
      cpuSecondsPer1000: runs === 0 ? NaN : (cpu / runs) * 1000,
      rssMb: b.rss / 1e6,
      metricsMs: b.metricsMs,
      tokenRequests: b.tokenRequests,
    };
  } finally {
    probe?.child.kill('SIGTERM');
    if (probe !== undefined) await once(probe.child, 'exit');
    dev.child.kill('SIGTERM');
    await once(dev.child, 'exit');
    await rm(dir, { recursive: true, force: true });
  }
}

function row(o: Outcome): string {
  const f = (n: number, d = 1) => (Number.isFinite(n) ? n.toFixed(d) : '-');
  return `| ${o.scenario.name} | ${f(o.runsPerSecond)} | ${f(o.failuresPerSecond)} | ${f(o.skippedPerSecond)} | ${f(o.cpuPercent)} | ${f(o.cpuSecondsPer1000, 3)} | ${f(o.rssMb, 0)} | ${f(o.metricsMs)} | ${o.tokenRequests} |`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      checks: { type: 'string' },
      interval: { type: 'string' },
      timeout: { type: 'string' },
      seconds: { type: 'string' },
      warmup: { type: 'string' },
    },
  });
  const scenarios =
    values.checks === undefined
      ? DEFAULTS
      : [
          {
            name: `${values.checks} checks every ${values.interval ?? '1s'}`,
            checks: Number(values.checks),
            interval: values.interval ?? '1s',
            timeout: values.timeout,
            warmupSeconds: Number(values.warmup ?? 5),
            seconds: Number(values.seconds ?? 20),
          },
        ];
  const lines = [
    '| scenario | runs/s | failed/s | skipped/s | CPU % of a core | CPU s per 1,000 runs | RSS MB | /metrics ms | AT requests |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const s of scenarios) {
    const outcome = await run(s);
    process.stderr.write(`${JSON.stringify(outcome)}\n`);
    lines.push(row(outcome));
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

await main();
