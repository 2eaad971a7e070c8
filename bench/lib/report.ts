/**
 * The benchmark report: the results as JSON, the goals of issue #6 judged against them (met, or
 * missed by how much and why), and the Markdown page the README links to.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';

import type { ActionResult } from './action.ts';
import type { BlackboxResult } from './blackbox.ts';
import type { LimitResult } from './limit.ts';
import type { Plan } from './plan.ts';
import type { LadderStep, MeasuredStep, ProbeResult } from './probe.ts';
import { fmt } from './stats.ts';
import type { TokenResult } from './tokens.ts';
import { ROOT } from './world.ts';

export interface Machine {
  cpuModel: string;
  cores: number;
  memoryGiB: number;
  node: string;
  os: string;
  kernel: string;
  commit: string;
  loadAverageStart: number[];
  loadAverageEnd?: number[];
}

export interface Results {
  schema: 1;
  partial: boolean;
  startedAt: string;
  finishedAt: string;
  durationSeconds: number;
  machine: Machine;
  plan: Plan;
  world?: { devServer: string; target: string };
  sectionSeconds: Record<string, number>;
  limit?: LimitResult;
  ladders?: Record<number, LadderStep[]>;
  idle?: ProbeResult;
  /** Peak RSS of a bare Node.js process with a .js and with a .ts file. */
  nodeBaseline?: { jsMiB: number; tsMiB: number };
  goal?: ProbeResult;
  blackbox?: BlackboxResult;
  tokens?: TokenResult;
  action?: ActionResult;
  goals?: Goal[];
  errors: { section: string; message: string }[];
}

export interface Goal {
  goal: string;
  measured: string;
  /** true met, false missed, null not measured. */
  met: boolean | null;
  verdict: string;
  why?: string;
}

export function machine(): Machine {
  const cpus = os.cpus();
  return {
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    os: osName(),
    kernel: `${os.type()} ${os.release()} ${os.arch()}`,
    commit: commit(),
    loadAverageStart: os.loadavg().map((n) => Math.round(n * 100) / 100),
  };
}

function osName(): string {
  try {
    const text = readFileSync('/etc/os-release', 'utf8');
    return /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(text)?.[1] ?? os.type();
  } catch {
    return os.type();
  }
}

function commit(): string {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT }).toString();
    const dirty = execFileSync('git', ['status', '--porcelain'], { cwd: ROOT }).length > 0;
    return `${head.trim()}${dirty ? ' (with uncommitted changes)' : ''}`;
  } catch {
    return 'unknown';
  }
}

/** The best sustained step over all ladders (highest successful checks per second). */
export function bestSustained(results: Results): MeasuredStep | undefined {
  const steps = Object.values(results.ladders ?? {}).flat();
  return steps
    .filter((s): s is MeasuredStep => s.sustained && s.error === undefined)
    .sort((a, b) => b.successPerSecond - a.successPerSecond)[0];
}

const pct = (x: number) => `${fmt(x * 100, 1)}%`;
const missing = (goal: string): Goal => ({
  goal,
  measured: 'not measured',
  met: null,
  verdict: 'not measured (see errors)',
});

function limitGoal(r: Results): Goal {
  const goal = 'The probe sustains at least half of the physical limit';
  const best = bestSustained(r);
  if (r.limit === undefined || best === undefined) return missing(goal);
  const share = best.successPerSecond / r.limit.perSecond;
  return {
    goal,
    measured: `${fmt(best.successPerSecond, 0)} checks/s of ${fmt(r.limit.perSecond, 0)} requests/s = ${pct(share)}`,
    met: share >= 0.5,
    verdict: share >= 0.5 ? 'met' : `missed by ${fmt((0.5 - share) * 100, 1)} points`,
    why: share >= 0.5 ? undefined : limitWhy(r, best, r.limit),
  };
}

function limitWhy(r: Results, best: MeasuredStep, limit: LimitResult): string {
  const perCore = 1000 / best.cpuPer1000;
  const next = r.ladders?.[best.checks]?.find((s) => s.intervalMs < best.intervalMs);
  const cost =
    `At its best sustained rate a check costs the probe ${fmt(best.cpuPer1000 * 1000, 0)} µs ` +
    `of CPU: one core alone would allow about ${fmt(perCore, 0)} checks/s. The limit run uses ` +
    `two processes, the load generator (${fmt(limit.generatorCores, 2)} cores) and the target ` +
    `(${fmt(limit.targetCores, 2)} cores), on the machine's ${r.machine.cores} cores.`;
  const others = brokeDown(r, best.checks);
  if (next === undefined) {
    return (
      `${cost} ${fmt(best.offeredPerSecond, 0)}/s was the highest rate offered with ` +
      `${fmt(best.checks, 0)} checks (their interval is the probe's minimum): the probe's limit ` +
      `with them was not reached.${others}`
    );
  }
  if (next.error !== undefined) {
    return `${cost} The next step broke down: ${next.error}.${others}`;
  }
  return (
    `${cost} At the next step (${fmt(next.offeredPerSecond, 0)}/s, ${fmt(next.intervalMs, 0)} ms ` +
    `interval and timeout) the probe used ${pct(next.probeCores)} of a core, the target ` +
    `${pct(next.targetCores)} and other processes ${fmt(next.otherCores, 2)} cores: runs ` +
    `started late (schedule lag p99 ${fmt(next.lagMs.p99, 0)} ms), ` +
    `${fmt(next.runs.skipped, 0)} were skipped because the previous run of the check was still ` +
    `going, ${fmt(next.runs.failure, 0)} failed.${others}`
  );
}

/** Where the ladders of other check counts stopped, as a sentence (or nothing). */
function brokeDown(r: Results, except: number): string {
  const ends = Object.entries(r.ladders ?? {})
    .filter(([n]) => Number(n) !== except)
    .map(([n, steps]) => ({ n: Number(n), last: steps[steps.length - 1] }))
    .filter((e) => e.last !== undefined && !e.last.sustained);
  const parts = ends.map(({ n, last }) => {
    const how = last?.error === undefined ? 'was not sustained' : `broke down (${last.error})`;
    return `with ${fmt(n, 0)} checks, ${fmt(last?.offeredPerSecond, 0)}/s ${how}`;
  });
  return parts.length === 0 ? '' : ` Elsewhere: ${parts.join('; ')}.`;
}

function cpuGoal(r: Results): Goal {
  const goal = 'At 10,000 checks per minute the probe uses under 10% of one core';
  const g = r.goal;
  if (g === undefined) return missing(goal);
  const scrapeShare = ((g.renderCpuMs ?? 0) * 4) / 60_000;
  return {
    goal,
    measured: `${pct(g.probeCores)} of one core`,
    met: g.probeCores < 0.1,
    verdict: g.probeCores < 0.1 ? 'met' : `missed by ${fmt((g.probeCores - 0.1) * 100, 1)} points`,
    why:
      g.probeCores < 0.1
        ? undefined
        : `Rendering /metrics (4 scrapes a minute, ${fmt(g.renderCpuMs, 0)} ms CPU each) takes ` +
          `${pct(scrapeShare)} of a core; the checks take the rest, ${fmt(g.cpuPer1000, 3)} s ` +
          `per 1,000. ${rateNote(r)}`,
  };
}

function rssGoal(r: Results): Goal {
  const goal = 'At 10,000 checks per minute the probe stays under 200 MB RSS';
  const g = r.goal;
  if (g === undefined) return missing(goal);
  const mb = (g.peakRssMiB * 2 ** 20) / 1e6;
  return {
    goal,
    measured: `peak ${fmt(mb, 0)} MB (${fmt(g.peakRssMiB, 0)} MiB), ${fmt(g.rssMiB, 0)} MiB at the end`,
    met: mb < 200,
    verdict: mb < 200 ? 'met' : `missed by ${fmt(mb - 200, 0)} MB`,
    why:
      mb < 200
        ? undefined
        : `At the end of the window the V8 heap held ${fmt(g.heapUsedMiB, 0)} MiB in use of ` +
          `${fmt(g.heapTotalMiB, 0)} MiB reserved, plus ${fmt(g.externalMiB, 0)} MiB outside it; ` +
          `the probe with one check peaks at ${fmt(r.idle?.peakRssMiB, 0)} MiB, a bare Node.js ` +
          `process at ${fmt(r.nodeBaseline?.jsMiB, 0)} MiB, or ${fmt(r.nodeBaseline?.tsMiB, 0)} ` +
          'MiB when it strips the types of a TypeScript file as the probe does. Every scrape ' +
          `builds a ${fmt(g.metricsBytes / 1e6, 1)} MB exposition (${fmt(g.metricsSeries, 0)} series).`,
  };
}

function blackboxGoal(r: Results): Goal {
  const goal = "CPU per check at most a quarter of blackbox_exporter's";
  const g = r.goal;
  const b = r.blackbox;
  if (g === undefined || b === undefined) return missing(goal);
  const ratio = g.cpuPer1000 / b.cpuPer1000;
  return {
    goal,
    measured: `${fmt(g.cpuPer1000, 3)} s vs ${fmt(b.cpuPer1000, 3)} s per 1,000 at ${fmt(b.perSecond, 0)}/s: ratio ${fmt(ratio, 3)}`,
    met: ratio <= 0.25,
    verdict:
      ratio <= 0.25 ? 'met' : `missed by ${pct(ratio / 0.25 - 1)} (ratio ${fmt(ratio, 3)} > 0.25)`,
    why: ratio <= 0.25 ? undefined : blackboxWhy(r, g, b),
  };
}

function blackboxWhy(r: Results, g: ProbeResult, b: BlackboxResult): string {
  // CPU of the 4 scrapes a minute, spread over the checks of that minute.
  const checksPerMinute = g.successPerSecond * 60;
  const scrapePer1000 = (((g.renderCpuMs ?? 0) / 1000) * 4 * 1000) / checksPerMinute;
  return (
    `Of the probe's ${fmt(g.cpuPer1000, 3)} s per 1,000 checks at ${fmt(b.perSecond, 0)}/s, ` +
    `${fmt(scrapePer1000, 3)} s are the four /metrics scrapes a minute. ${rateNote(r)}`
  );
}

/** How the CPU per check depends on the rate, from the ladder. */
function rateNote(r: Results): string {
  const best = bestSustained(r);
  const at1000 = Object.values(r.ladders ?? {})
    .flat()
    .find((s): s is MeasuredStep => s.error === undefined && s.offeredPerSecond === 1000);
  return (
    'The cost per check falls as the rate rises, whatever the number of checks: ' +
    `${fmt(at1000?.cpuPer1000, 3)} s per 1,000 at 1,000/s, ${fmt(best?.cpuPer1000, 3)} s at ` +
    `${fmt(best?.offeredPerSecond, 0)}/s. That points at the event loop's cost per wake-up (at ` +
    "a low rate each check's timer and socket events wake it on their own) more than at the " +
    'work of a check; a CPU profile would tell.'
  );
}

function tokenGoal(r: Results): Goal {
  const goal = 'Token requests at the minimum possible (one per AT lifetime)';
  const t = r.tokens;
  if (t === undefined) return missing(goal);
  const short = t.measuredPerHour / t.minimumPerHour;
  const hour = t.oneHourLifetime.predictedPerHour;
  return {
    goal,
    measured:
      `${fmt(t.measuredPerHour, 0)}/h with ${t.atLifetimeSeconds} s ATs (minimum ` +
      `${fmt(t.minimumPerHour, 0)}/h); ${fmt(hour, 3)}/h predicted with 1-hour ATs (minimum 1/h)`,
    met: short <= 1,
    verdict:
      short <= 1
        ? 'met'
        : `missed by ${pct(hour - 1)} (1-hour ATs), ${pct(short - 1)} (${t.atLifetimeSeconds} s ATs)`,
    why:
      short <= 1
        ? undefined
        : 'By design: the probe counts an AT as living 1 s less than `expires_in` and refreshes ' +
          'it 10% of that (1 s to 60 s) before it ends, so that no check starts with a token ' +
          'about to expire. blackbox_exporter makes one request per probe ' +
          `(${fmt(r.blackbox?.tokenRequests, 0)} for ${fmt(r.blackbox?.probes, 0)} probes here).`,
  };
}

function metricsGoal(r: Results): Goal {
  const goal = '/metrics with 10,000 checks renders in under 100 ms';
  const s = r.goal?.scrapeMs;
  if (r.goal === undefined || s === undefined) return missing(goal);
  return {
    goal,
    measured: `p50 ${fmt(s.p50, 0)} ms, p90 ${fmt(s.p90, 0)} ms, max ${fmt(s.max, 0)} ms (${s.n} scrapes)`,
    met: s.p90 < 100,
    verdict: s.p90 < 100 ? 'met (p90)' : `missed by ${fmt(s.p90 - 100, 0)} ms (p90)`,
    why:
      s.p90 < 100
        ? undefined
        : `${fmt(r.goal.metricsSeries, 0)} series, ${fmt(r.goal.metricsBytes / 1e6, 1)} MB per ` +
          `scrape; ${fmt(r.goal.renderCpuMs, 0)} ms of the probe's CPU per render. Timed at the ` +
          'client, to the last byte, while the probe runs its checks.',
  };
}

function actionGoal(r: Results): Goal {
  const goal = 'The Action adds under 150 ms over the curl baseline';
  const a = r.action;
  if (a === undefined) return missing(goal);
  const added = a.action.outputsMs.p50 - a.curl.outputsMs.p50;
  const exitAdded = a.action.exitMs.p50 - a.curl.exitMs.p50;
  return {
    goal,
    measured: `+${fmt(added, 0)} ms to outputs written (median); +${fmt(exitAdded, 0)} ms to exit`,
    met: added < 150,
    verdict: added < 150 ? 'met' : `missed by ${fmt(added - 150, 0)} ms`,
    why:
      added < 150
        ? undefined
        : `Starting Node alone takes ${fmt(a.nodeStartMs.p50, 0)} ms here; the bundle is ` +
          `${fmt(a.bundle.indexBytes / 1e6, 2)} MB to load and compile.`,
  };
}

export function judge(r: Results): Goal[] {
  return [
    limitGoal(r),
    cpuGoal(r),
    rssGoal(r),
    blackboxGoal(r),
    tokenGoal(r),
    metricsGoal(r),
    actionGoal(r),
  ];
}

export { render } from './markdown.ts';
