/**
 * What each benchmark does, how many and for how long: the one place to change the loads.
 * `quick` shortens every window, for working on the benchmark itself.
 */
export function plan(quick: boolean) {
  const q = (full: number, short: number) => (quick ? short : full);
  return {
    limit: {
      connections: 50,
      seconds: q(5, 2),
      warmupSeconds: q(2, 1),
      runs: q(2, 1),
      /** Runs again after everything else; the best run of the session is the limit. */
      runsAtEnd: q(2, 1),
    },
    ladder: {
      checks: [100, 1_000, 10_000],
      rates: quick ? [1_000, 2_000] : [1_000, 2_000, 4_000, 6_000, 8_000, 10_000, 12_000, 15_000],
      /** The warm-up is one interval, within these bounds. */
      warmupMs: { min: q(3_000, 2_000), max: q(5_000, 3_000) },
      windowMs: q(6_000, 3_000),
    },
    idle: { checks: 1, intervalMs: 60_000, warmupMs: q(5_000, 2_000), windowMs: q(5_000, 2_000) },
    goal: {
      checks: 10_000,
      intervalMs: 60_000,
      warmupMs: q(15_000, 5_000),
      windowMs: q(60_000, 15_000),
      scrapeEveryMs: 15_000,
      renderSamples: q(20, 5),
    },
    blackbox: { perSecond: 10_000 / 60, warmupMs: q(5_000, 2_000), windowMs: q(60_000, 15_000) },
    tokens: { checks: 100, intervalMs: 1_000, atLifetimeSeconds: 10, seconds: q(60, 25) },
    action: { runs: q(15, 3), rotatingRuns: q(10, 2) },
  };
}

export type Plan = ReturnType<typeof plan>;
