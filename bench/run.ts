/**
 * `npm run bench`: every benchmark of issue #6 in one go, on loopback only, each bounded in time,
 * then the report (`bench/results/latest.md` and `latest.json`). See bench/README.md.
 *
 *   node bench/run.ts [--quick] [--only limit,probe,goal,blackbox,tokens,action] [--render]
 *
 * `--quick` (short windows) and `--only` are for working on the benchmark itself: their report
 * goes to `bench/results/partial.*`, never over the committed one. `--render` only rewrites
 * `latest.md` from `latest.json`, after a change to the report's text.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';

import { actionAvailable, measureAction } from './lib/action.ts';
import { measureBlackbox } from './lib/blackbox.ts';
import { BenchError } from './lib/errors.ts';
import { bestLimit, measureLimit } from './lib/limit.ts';
import { ladder, measureProbe, nodeBaseline, type LadderStep } from './lib/probe.ts';
import { killAllNow, stopAll } from './lib/procs.ts';
import { judge, machine, render, type Results } from './lib/report.ts';
import { plan, type Plan } from './lib/plan.ts';
import { measureTokens } from './lib/tokens.ts';
import { ROOT, startWorld, type World } from './lib/world.ts';

const SECTIONS = ['limit', 'probe', 'goal', 'blackbox', 'tokens', 'action'] as const;
type Section = (typeof SECTIONS)[number];

/** Hard stop for the whole run (the issue allows 15 minutes). */
const DEADLINE_MS = 14 * 60_000;

async function runSection(
  results: Results,
  name: Section,
  body: () => Promise<void>,
  deadline: { passed: boolean },
): Promise<void> {
  if (deadline.passed) {
    results.errors.push({ section: name, message: 'skipped: the run hit its time limit' });
    return;
  }
  const t0 = performance.now();
  process.stderr.write(`bench: ${name}…\n`);
  try {
    await body();
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    results.errors.push({ section: name, message });
    process.stderr.write(`bench: ${name} failed: ${message}\n`);
  }
  results.sectionSeconds[name] =
    (results.sectionSeconds[name] ?? 0) + (performance.now() - t0) / 1000;
}

async function runAll(world: World, p: Plan, only: Set<Section>, results: Results) {
  const deadline = { passed: false };
  const timer = setTimeout(() => {
    deadline.passed = true;
    void stopAll();
  }, DEADLINE_MS);
  timer.unref();
  const run = (name: Section, body: () => Promise<void>) =>
    only.has(name) ? runSection(results, name, body, deadline) : Promise.resolve();

  await run('limit', async () => {
    results.limit = await measureLimit(world, p.limit);
  });
  await run('probe', async () => {
    const { checks, rates, ...timing } = p.ladder;
    const ladders: Record<number, LadderStep[]> = {};
    results.ladders = ladders;
    for (const n of checks) await ladder(world, n, rates, timing, (ladders[n] = []));
    results.idle = await measureProbe(world, p.idle);
    results.nodeBaseline = await nodeBaseline(world);
  });
  await run('goal', async () => {
    results.goal = await measureProbe(world, p.goal);
  });
  await run('blackbox', async () => {
    results.blackbox = await measureBlackbox(world, p.blackbox);
  });
  await run('tokens', async () => {
    results.tokens = await measureTokens(world, p.tokens);
  });
  await run('action', async () => {
    if (!actionAvailable()) throw new BenchError('ERR_BENCH_MISSING', 'dist/index.js missing');
    results.action = await measureAction(world, p.action);
  });
  // More runs of the limit at the end: other work on the machine comes and goes, and the best
  // run over the whole session is the fairest (and hardest) limit.
  await run('limit', async () => {
    const again = await measureLimit(world, { ...p.limit, runs: p.limit.runsAtEnd });
    results.limit = bestLimit(results.limit, again);
  });
  clearTimeout(timer);
}

function options(): { quick: boolean; only: Set<Section>; render: boolean } {
  const { values } = parseArgs({
    options: { quick: { type: 'boolean' }, only: { type: 'string' }, render: { type: 'boolean' } },
  });
  const only = new Set((values.only ?? SECTIONS.join(',')).split(',') as Section[]);
  for (const name of only) {
    if (!SECTIONS.includes(name)) {
      throw new BenchError('ERR_BENCH_USAGE', `unknown section "${name}" (${SECTIONS.join(', ')})`);
    }
  }
  return { quick: values.quick === true, only, render: values.render === true };
}

/** Judges and renders the last full run again from its JSON (after a change to the report). */
async function rerender(): Promise<number> {
  const file = join(ROOT, 'bench/results/latest.json');
  const results = JSON.parse(await readFile(file, 'utf8')) as Results;
  results.goals = judge(results);
  process.stderr.write(`bench: ${await write(results, 'latest')}\n`);
  return 0;
}

async function main(): Promise<number> {
  const { quick, only, render: again } = options();
  if (again) return rerender();
  const partial = quick || only.size < SECTIONS.length;
  const p = plan(quick);
  const t0 = performance.now();
  const results: Results = {
    schema: 1,
    partial,
    startedAt: new Date().toISOString(),
    finishedAt: '',
    durationSeconds: 0,
    machine: machine(),
    plan: p,
    sectionSeconds: {},
    errors: [],
  };
  const world = await startWorld();
  try {
    results.world = { devServer: world.server, target: world.targetUrl };
    await runAll(world, p, only, results);
  } finally {
    await world.close();
    await stopAll();
  }
  results.finishedAt = new Date().toISOString();
  results.durationSeconds = (performance.now() - t0) / 1000;
  results.machine.loadAverageEnd = machine().loadAverageStart;
  results.goals = judge(results);
  const out = await write(results, partial ? 'partial' : 'latest');
  process.stderr.write(`bench: done in ${Math.round(results.durationSeconds)} s: ${out}\n`);
  return results.errors.length === 0 ? 0 : 1;
}

async function write(results: Results, name: string): Promise<string> {
  const dir = join(ROOT, 'bench/results');
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, `${name}.json`), `${JSON.stringify(results, null, 2)}\n`);
  await writeFile(join(dir, `${name}.md`), render(results));
  return `bench/results/${name}.md`;
}

process.on('exit', killAllNow);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void stopAll().finally(() => process.exit(130));
  });
}

try {
  process.exitCode = await main();
} catch (error) {
  process.stderr.write(`bench: ${error instanceof Error ? error.message : String(error)}\n`);
  await stopAll();
  process.exitCode = 2;
}
