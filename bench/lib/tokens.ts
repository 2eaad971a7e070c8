/**
 * Token efficiency: K checks sharing one (scope, audience) run for a bounded time with a short
 * access-token lifetime, while the dev server's counter of successful access-token requests is
 * polled to time each request. The minimum is one request per AT lifetime.
 */
import { performance } from 'node:perf_hooks';

import { sleep } from './procs.ts';
import { scrape, startProbe } from './probe.ts';
import { Exposition, summarize, type Summary } from './stats.ts';
import type { World } from './world.ts';

const POLL_MS = 100;
const DEFAULT_AT_LIFETIME = 3600;

export interface TokenResult {
  checks: number;
  intervalMs: number;
  atLifetimeSeconds: number;
  seconds: number;
  checkRuns: number;
  /** AT requests the dev server answered while the probe ran. */
  tokenRequests: number;
  /** The fewest possible in that time: one per AT lifetime, the first included. */
  minimum: number;
  /** Seconds between consecutive requests (steady state). */
  gapSeconds: Summary;
  measuredPerHour: number;
  minimumPerHour: number;
  /** Requests per hour predicted by the probe's refresh rule for a 1-hour AT, and the minimum. */
  oneHourLifetime: { predictedPerHour: number; minimumPerHour: number; gapSeconds: number };
}

/**
 * The refresh rule of the probe (probe/tokens.ts): an AT said to live `expires_in` seconds is
 * treated as living one second less, and refreshed a margin of 10% of that (at least 1 s, at most
 * 60 s) before it ends. Used only to carry the measured ratio over to a lifetime too long to wait
 * for; the measurement with a short lifetime checks it.
 */
export function predictedGapSeconds(lifetime: number): number {
  const usable = Math.max(1, lifetime - 1);
  return usable - Math.min(60, Math.max(1, usable * 0.1));
}

export async function measureTokens(
  world: World,
  opts: { checks: number; intervalMs: number; atLifetimeSeconds: number; seconds: number },
): Promise<TokenResult> {
  await world.setAtLifetime(opts.atLifetimeSeconds);
  try {
    const before = (await world.devStats()).at_success;
    const t0 = performance.now();
    const { proc, base } = await startProbe(world, { ...opts, warmupMs: 0, windowMs: 0 });
    let times: number[];
    let runs: number;
    try {
      times = await pollRequests(world, before, t0 + opts.seconds * 1000);
      runs = new Exposition((await scrape(base)).text).sum('mytoken_probe_check_runs_total');
    } finally {
      await proc.stop();
    }
    const seconds = (performance.now() - t0) / 1000;
    return result(opts, seconds, times, runs);
  } finally {
    await world.setAtLifetime(DEFAULT_AT_LIFETIME);
  }
}

/** Times (ms since start) at which the AT counter went up, one entry per request. */
async function pollRequests(world: World, base: number, until: number): Promise<number[]> {
  const times: number[] = [];
  let seen = base;
  const t0 = performance.now();
  while (performance.now() < until) {
    const now = (await world.devStats()).at_success;
    for (; seen < now; seen++) times.push(performance.now() - t0);
    await sleep(POLL_MS);
  }
  return times;
}

function result(
  opts: { checks: number; intervalMs: number; atLifetimeSeconds: number },
  seconds: number,
  times: number[],
  checkRuns: number,
): TokenResult {
  const gaps = times.slice(1).map((t, i) => (t - (times[i] as number)) / 1000);
  const gap = summarize(gaps);
  const lifetime = opts.atLifetimeSeconds;
  const oneHourGap = predictedGapSeconds(DEFAULT_AT_LIFETIME);
  return {
    checks: opts.checks,
    intervalMs: opts.intervalMs,
    atLifetimeSeconds: lifetime,
    seconds,
    checkRuns,
    tokenRequests: times.length,
    minimum: Math.ceil(seconds / lifetime),
    gapSeconds: gap,
    measuredPerHour: 3600 / gap.p50,
    minimumPerHour: 3600 / lifetime,
    oneHourLifetime: {
      predictedPerHour: 3600 / oneHourGap,
      minimumPerHour: 1,
      gapSeconds: oneHourGap,
    },
  };
}
