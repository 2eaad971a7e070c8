/**
 * The physical limit: how many authorised requests per second the target answers on this machine
 * when a load generator (autocannon, keep-alive) sends them as fast as it can, with the CPU of the
 * generator and of the target, so the report can say which of the two was the bottleneck.
 */
import { join } from 'node:path';

import { BenchError } from './errors.ts';
import { cleanEnv, CpuWindow, start } from './procs.ts';
import { jsonLine, NODE, ROOT, type World } from './world.ts';

export interface LimitResult {
  connections: number;
  seconds: number;
  /** Authorised requests per second of the best run. */
  perSecond: number;
  /** The rate of every run. */
  runRates: number[];
  requests: number;
  non2xx: number;
  errors: number;
  latencyMs: { p50: number; p99: number };
  generatorCores: number;
  targetCores: number;
  otherCores: number;
}

interface LoadOutput {
  perSecond: number;
  requests: number;
  non2xx: number;
  errors: number;
  seconds: number;
  latencyMs: { p50: number; p99: number };
}

async function runLoad(
  world: World,
  token: string,
  connections: number,
  seconds: number,
): Promise<{ out: LoadOutput; cpu: ReturnType<CpuWindow['end']> }> {
  const proc = start(
    'autocannon',
    NODE,
    [join(ROOT, 'bench/load.ts'), world.targetUrl, String(connections), String(seconds)],
    { env: cleanEnv({ BENCH_ACCESS_TOKEN: token }) },
  );
  try {
    const cpu = new CpuWindow({ load: proc.pid, target: world.target.pid });
    const out = await proc.waitFor(jsonLine<LoadOutput>, (seconds + 30) * 1000);
    return { out, cpu: cpu.end() };
  } finally {
    await proc.stop();
  }
}

/**
 * Best of `runs` short runs: the limit is a capacity, and other work on the machine can only
 * lower a run's rate, so the highest one is the best estimate (and the hardest goal to meet).
 */
export async function measureLimit(
  world: World,
  opts: { connections: number; seconds: number; warmupSeconds: number; runs: number },
): Promise<LimitResult> {
  const token = await world.accessToken(await world.mint());
  await runLoad(world, token, opts.connections, opts.warmupSeconds);
  let best: Awaited<ReturnType<typeof runLoad>> | undefined;
  const rates: number[] = [];
  for (let i = 0; i < opts.runs; i++) {
    const run = await runLoad(world, token, opts.connections, opts.seconds);
    rates.push(run.out.perSecond);
    if (best === undefined || run.out.perSecond > best.out.perSecond) best = run;
  }
  if (best === undefined || best.out.requests === 0) {
    throw new BenchError('ERR_BENCH_MISSING', 'autocannon sent nothing');
  }
  const { out, cpu } = best;
  return {
    connections: opts.connections,
    seconds: out.seconds,
    perSecond: out.perSecond,
    runRates: rates,
    requests: out.requests,
    non2xx: out.non2xx,
    errors: out.errors,
    latencyMs: out.latencyMs,
    generatorCores: (cpu.cpu.load ?? 0) / cpu.seconds,
    targetCores: (cpu.cpu.target ?? 0) / cpu.seconds,
    otherCores: cpu.otherCores,
  };
}

/** The better of two limit measurements, with the rates of every run. */
export function bestLimit(a: LimitResult | undefined, b: LimitResult): LimitResult {
  if (a === undefined) return b;
  const best = b.perSecond > a.perSecond ? b : a;
  return { ...best, runRates: [...a.runRates, ...b.runRates] };
}
