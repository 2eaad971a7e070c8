/**
 * Runs `mytoken-probe` (bin/mytoken-probe.js, as a user would) with N generated checks against the
 * target, and measures one window of its steady state: runs by result from its `/metrics`
 * counters, CPU and memory from /proc, schedule lag from its lag histogram, and how long
 * `/metrics` takes to serve.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

import { Agent, request, type Dispatcher } from 'undici';

import { BenchError } from './errors.ts';
import { CpuWindow, memory, sleep, start, type Proc } from './procs.ts';
import { bucketDelta, Exposition, histogramQuantile, summarize, type Summary } from './stats.ts';
import { jsonLine, NODE, ROOT, type World } from './world.ts';

const READY_MS = 60_000;
/** Prometheus's longest usual scrape timeout; a probe slower than that has broken down. */
const SCRAPE_TIMEOUT_MS = 30_000;
const LAG = 'mytoken_probe_schedule_lag_seconds';
const RUNS = 'mytoken_probe_check_runs_total';
const FAILURES = 'mytoken_probe_check_failures_total';
const TOKEN_REQUESTS = 'mytoken_probe_token_requests_total';

export interface ProbeLoad {
  checks: number;
  intervalMs: number;
  /** Per-run deadline; default the interval (the longest the probe allows), at most 10 s. */
  timeoutMs?: number;
  warmupMs: number;
  windowMs: number;
  /** Scrape `/metrics` this often during the window, as Prometheus would (default: never). */
  scrapeEveryMs?: number;
  /** Extra back-to-back scrapes after the window, only to time `/metrics` (default 0). */
  renderSamples?: number;
}

export interface ProbeResult {
  checks: number;
  intervalMs: number;
  timeoutMs: number;
  offeredPerSecond: number;
  windowSeconds: number;
  runs: { success: number; failure: number; skipped: number };
  failuresByReason: Record<string, number>;
  successPerSecond: number;
  /** CPU seconds of the probe process in the window. */
  cpuSeconds: number;
  /** CPU seconds per 1,000 finished runs (success or failure). */
  cpuPer1000: number;
  /** Share of one core the probe used in the window (1 = one full core). */
  probeCores: number;
  targetCores: number;
  devServerCores: number;
  /** CPU used by other processes of the machine in the window, in cores. */
  otherCores: number;
  lagMs: {
    p50: number | undefined;
    p99: number | undefined;
    p50Bucket: string;
    p99Bucket: string;
    /** Upper bounds of the probe's lag histogram buckets, in ms. */
    bucketsMs: number[];
  };
  rssMiB: number;
  peakRssMiB: number;
  /**
   * V8 heap in use and reserved, and memory outside it (buffers), at the end of the window, from
   * the probe's own `nodejs_*` metrics.
   */
  heapUsedMiB: number;
  heapTotalMiB: number;
  externalMiB: number;
  scrapeMs: Summary | undefined;
  metricsBytes: number;
  metricsSeries: number;
  tokenRequests: number;
  startupSeconds: number;
  logLines: number;
  /** CPU time of one `/metrics` render (back-to-back scrapes, the checks' own CPU taken out). */
  renderCpuMs: number | undefined;
}

/** Writes the config for `load` next to the token file in `dir`. */
async function writeConfig(world: World, dir: string, load: ProbeLoad): Promise<string> {
  const timeoutMs = load.timeoutMs ?? Math.min(load.intervalMs, 10_000);
  const lines = [
    'mytoken:',
    `  server: ${world.server}`,
    '  token_file: mytoken',
    'listen: 127.0.0.1:0',
    'defaults:',
    `  interval: ${load.intervalMs}ms`,
    `  timeout: ${timeoutMs}ms`,
    'checks:',
  ];
  for (let i = 1; i <= load.checks; i++) {
    lines.push(`  - name: check-${String(i).padStart(5, '0')}`, `    url: ${world.targetUrl}`);
    lines.push('    expect:', '      status: [200]');
  }
  const file = join(dir, 'probe.yml');
  await writeFile(file, `${lines.join('\n')}\n`);
  return file;
}

/** Starts the probe on a fresh rotating mytoken; resolves once it serves. */
export async function startProbe(
  world: World,
  load: ProbeLoad,
): Promise<{ proc: Proc; base: string; startupSeconds: number }> {
  const dir = await world.tokenDir(await world.mint({ rotation: ['on_AT'] }));
  const config = await writeConfig(world, dir, load);
  const t0 = performance.now();
  const proc = start('mytoken-probe', NODE, [
    join(ROOT, 'bin/mytoken-probe.js'),
    '--config',
    config,
  ]);
  const address = await proc.waitFor((line) => {
    const entry = jsonLine<{ msg?: string; address?: string }>(line);
    return entry?.msg === 'Probe started' ? entry.address : undefined;
  }, READY_MS);
  if (address === undefined) throw new BenchError('ERR_BENCH_MISSING', 'probe gave no address');
  return { proc, base: `http://${address}`, startupSeconds: (performance.now() - t0) / 1000 };
}

// Shorter than the probe's server keeps idle sockets (Node's default, 5 s).
const agent = new Agent({ keepAliveTimeout: 4_000 });

/** GETs `/metrics`; returns the text and the time to the last byte. */
export async function scrape(base: string): Promise<{ text: string; ms: number }> {
  try {
    return await scrapeOnce(base);
  } catch (error) {
    // A kept-alive socket the probe closed just as it was reused: one retry, as Prometheus would
    // simply scrape again.
    if ((error as { code?: string }).code !== 'ECONNRESET') throw error;
    return scrapeOnce(base);
  }
}

async function scrapeOnce(base: string): Promise<{ text: string; ms: number }> {
  const t0 = performance.now();
  let res: Dispatcher.ResponseData;
  let text: string;
  try {
    res = await request(`${base}/metrics`, {
      dispatcher: agent,
      headersTimeout: SCRAPE_TIMEOUT_MS,
      bodyTimeout: SCRAPE_TIMEOUT_MS,
    });
    text = await res.body.text();
  } catch (cause) {
    if (!/TIMEOUT/.test((cause as { code?: string }).code ?? '')) throw cause;
    const s = SCRAPE_TIMEOUT_MS / 1000;
    throw new BenchError('ERR_BENCH_TIMEOUT', `probe /metrics gave no answer in ${s} s`, { cause });
  }
  const ms = performance.now() - t0;
  if (res.statusCode !== 200) {
    throw new BenchError('ERR_BENCH_HTTP', `probe /metrics answered ${res.statusCode}`);
  }
  return { text, ms };
}

/** Runs the probe under `load` and measures the window after the warm-up. */
export async function measureProbe(world: World, load: ProbeLoad): Promise<ProbeResult> {
  const { proc, base, startupSeconds } = await startProbe(world, load);
  try {
    await sleep(load.warmupMs);
    // The counters are read when a scrape arrives: runs are counted between the two scrapes'
    // starts, CPU between their ends; each is divided by its own span.
    const t0 = performance.now();
    const before = new Exposition((await scrape(base)).text);
    const cpu = new CpuWindow({ probe: proc.pid, target: world.target.pid, dev: world.dev.pid });
    const scrapes = await scrapeDuring(base, load.windowMs, load.scrapeEveryMs);
    const runsSeconds = (performance.now() - t0) / 1000;
    const after = await scrape(base);
    const used = cpu.end();
    const mem = memory(proc.pid);
    const render = await renderCost(proc.pid, base, load.renderSamples ?? 0, used);
    scrapes.push(...render.ms);
    return summarizeRun(load, before, after, used, mem, scrapes, {
      runsSeconds,
      startupSeconds,
      logLines: proc.lines,
      renderCpuMs: render.cpuMs,
    });
  } finally {
    await proc.stop();
  }
}

/** Times `samples` back-to-back scrapes and the CPU they cost beyond the probe's usual rate. */
async function renderCost(
  pid: number,
  base: string,
  samples: number,
  window: { seconds: number; cpu: Record<string, number> },
): Promise<{ ms: number[]; cpuMs: number | undefined }> {
  if (samples === 0) return { ms: [], cpuMs: undefined };
  const usual = (window.cpu.probe ?? 0) / window.seconds;
  const cpu = new CpuWindow({ probe: pid });
  const ms: number[] = [];
  for (let i = 0; i < samples; i++) ms.push((await scrape(base)).ms);
  const used = cpu.end();
  const extra = (used.cpu.probe ?? 0) - usual * used.seconds;
  return { ms, cpuMs: (Math.max(0, extra) * 1000) / samples };
}

async function scrapeDuring(base: string, windowMs: number, everyMs?: number): Promise<number[]> {
  const times: number[] = [];
  const end = performance.now() + windowMs;
  if (everyMs === undefined) {
    await sleep(windowMs);
    return times;
  }
  while (performance.now() + everyMs <= end) {
    await sleep(everyMs);
    times.push((await scrape(base)).ms);
  }
  await sleep(Math.max(0, end - performance.now()));
  return times;
}

function summarizeRun(
  load: ProbeLoad,
  before: Exposition,
  after: { text: string; ms: number },
  used: ReturnType<CpuWindow['end']>,
  mem: { rssMiB: number; peakMiB: number },
  scrapes: number[],
  extra: {
    runsSeconds: number;
    startupSeconds: number;
    logLines: number;
    renderCpuMs: number | undefined;
  },
): ProbeResult {
  const { runsSeconds, ...rest } = extra;
  const end = new Exposition(after.text);
  const delta = (name: string, where: Record<string, string> = {}) =>
    end.sum(name, where) - before.sum(name, where);
  const runs = {
    success: delta(RUNS, { result: 'success' }),
    failure: delta(RUNS, { result: 'failure' }),
    skipped: delta(RUNS, { result: 'skipped' }),
  };
  const failuresByReason: Record<string, number> = {};
  for (const reason of ['token', 'connect', 'tls', 'timeout', 'status', 'body']) {
    const n = delta(FAILURES, { reason });
    if (n > 0) failuresByReason[reason] = n;
  }
  const lag = bucketDelta(end.buckets(LAG), before.buckets(LAG));
  const p50 = histogramQuantile(lag, 0.5);
  const p99 = histogramQuantile(lag, 0.99);
  const finished = runs.success + runs.failure;
  const cpuSeconds = used.cpu.probe ?? 0;
  return {
    checks: load.checks,
    intervalMs: load.intervalMs,
    timeoutMs: load.timeoutMs ?? Math.min(load.intervalMs, 10_000),
    offeredPerSecond: (load.checks * 1000) / load.intervalMs,
    windowSeconds: runsSeconds,
    runs,
    failuresByReason,
    successPerSecond: runs.success / runsSeconds,
    cpuSeconds,
    // CPU per second over runs per second: the two spans differ by the scrapes' durations.
    cpuPer1000:
      finished === 0 ? NaN : (cpuSeconds / used.seconds / (finished / runsSeconds)) * 1000,
    probeCores: cpuSeconds / used.seconds,
    targetCores: (used.cpu.target ?? 0) / used.seconds,
    devServerCores: (used.cpu.dev ?? 0) / used.seconds,
    otherCores: used.otherCores,
    lagMs: {
      p50: p50 === undefined ? undefined : p50.value * 1000,
      p99: p99 === undefined ? undefined : p99.value * 1000,
      p50Bucket: bucketText(p50),
      p99Bucket: bucketText(p99),
      bucketsMs: lag.map((b) => b.le * 1000).filter((le) => Number.isFinite(le)),
    },
    rssMiB: mem.rssMiB,
    peakRssMiB: mem.peakMiB,
    heapUsedMiB: end.sum('nodejs_heap_size_used_bytes') / 2 ** 20,
    heapTotalMiB: end.sum('nodejs_heap_size_total_bytes') / 2 ** 20,
    externalMiB: end.sum('nodejs_external_memory_bytes') / 2 ** 20,
    scrapeMs: scrapes.length === 0 ? undefined : summarize(scrapes),
    metricsBytes: Buffer.byteLength(after.text),
    metricsSeries: end.size,
    tokenRequests: delta(TOKEN_REQUESTS),
    ...rest,
  };
}

function bucketText(q: { lower: number; upper: number } | undefined): string {
  if (q === undefined) return 'n/a';
  const ms = (s: number) => (s === Infinity ? '∞' : `${s * 1000}`);
  return `${ms(q.lower)}–${ms(q.upper)} ms`;
}

/** A step of the ladder that was measured. */
export interface MeasuredStep extends ProbeResult {
  sustained: boolean;
  /** Attempts at this rate: see {@link ladder} for when a step is run again. */
  attempts: number;
  error?: undefined;
}

/** A step whose measurement broke down (e.g. the probe stopped answering `/metrics`). */
export interface FailedStep {
  checks: number;
  intervalMs: number;
  offeredPerSecond: number;
  sustained: false;
  attempts: number;
  error: string;
}

export type LadderStep = MeasuredStep | FailedStep;

const MIN_INTERVAL_MS = 100;
/** Other processes using more than this many cores during a failed step earn it a second try. */
const BUSY_CORES = 0.5;

/**
 * Raises the offered rate for a fixed number of checks (by shortening their interval) until the
 * probe no longer keeps up: a step is sustained when at least 97% of the runs due in the window
 * succeeded and at most 1% of the runs were skipped or failed. A step that is not sustained is
 * run once more when it was a near miss (half the runs due succeeded) or when the rest of the
 * machine was busy meanwhile; the ladder stops at the first step not sustained, or when the
 * interval would drop below the probe's minimum. Steps are appended to `steps` as they finish.
 */
export async function ladder(
  world: World,
  checks: number,
  rates: readonly number[],
  timing: { warmupMs: { min: number; max: number }; windowMs: number },
  steps: LadderStep[],
): Promise<void> {
  for (const rate of rates) {
    const intervalMs = Math.round((checks * 1000) / rate);
    if (intervalMs < MIN_INTERVAL_MS) break;
    // A warm-up of one interval (within bounds) lets every check run once before the window.
    const warmupMs = Math.min(timing.warmupMs.max, Math.max(timing.warmupMs.min, intervalMs));
    const load = { checks, intervalMs, warmupMs, windowMs: timing.windowMs };
    let step = await measureStep(world, load, 1);
    if (worthRetry(step)) step = await measureStep(world, load, 2);
    steps.push(step);
    if (!step.sustained) break;
  }
}

async function measureStep(world: World, load: ProbeLoad, attempts: number): Promise<LadderStep> {
  try {
    return judgeStep(await measureProbe(world, load), attempts);
  } catch (error) {
    return {
      checks: load.checks,
      intervalMs: load.intervalMs,
      offeredPerSecond: (load.checks * 1000) / load.intervalMs,
      sustained: false,
      attempts,
      error: error instanceof Error ? error.message : String(error),
    };
  }
}

function worthRetry(step: LadderStep): boolean {
  if (step.sustained || step.error !== undefined || step.attempts > 1) return false;
  const nearMiss = step.runs.success >= 0.5 * step.offeredPerSecond * step.windowSeconds;
  return nearMiss || step.otherCores > BUSY_CORES;
}

function judgeStep(result: ProbeResult, attempts: number): MeasuredStep {
  const { success, failure, skipped } = result.runs;
  const due = result.offeredPerSecond * result.windowSeconds;
  const sustained =
    success >= 0.97 * due && failure + skipped <= 0.01 * (success + failure + skipped);
  return { ...result, sustained, attempts };
}

/** Peak RSS of a bare Node.js process idling for a moment, running a .js and a .ts file. */
export async function nodeBaseline(world: World): Promise<{ jsMiB: number; tsMiB: number }> {
  const code = 'const wait: number = 800;\nsetTimeout(() => undefined, wait);\n';
  const ts = join(world.tmp, 'idle.ts');
  const js = join(world.tmp, 'idle.js');
  await writeFile(ts, code);
  await writeFile(js, code.replace(': number', ''));
  const peak = async (file: string) => {
    const proc = start('node', NODE, [file]);
    await sleep(500);
    const { peakMiB } = memory(proc.pid);
    await proc.exited;
    return peakMiB;
  };
  return { jsMiB: await peak(js), tsMiB: await peak(ts) };
}
