/** Renders the results as the Markdown report (`bench/results/latest.md`). */
import { CURL_STEP } from './action.ts';
import type { FailedStep, LadderStep, MeasuredStep, ProbeResult } from './probe.ts';
import { bestSustained, type Results } from './report.ts';
import { fmt, type Summary } from './stats.ts';
import { predictedGapSeconds } from './tokens.ts';

const row = (cells: (string | number)[]) => `| ${cells.join(' | ')} |`;
const table = (head: string[], rows: (string | number)[][]) =>
  [row(head), row(head.map(() => '---')), ...rows.map(row)].join('\n');
const ms = (s: Summary | undefined) =>
  s === undefined ? ['n/a', 'n/a', 'n/a'] : [fmt(s.p50, 0), fmt(s.p90, 0), fmt(s.max, 0)];
const pct = (x: number | undefined) => (x === undefined ? 'n/a' : `${fmt(x * 100, 1)}%`);

function header(r: Results): string {
  const m = r.machine;
  const load = (l: number[] | undefined) => (l === undefined ? 'n/a' : l.join(', '));
  return [
    '# Benchmark results',
    '',
    `Measured by \`npm run bench\` on ${r.startedAt.slice(0, 16).replace('T', ' ')} UTC in ` +
      `${fmt(r.durationSeconds / 60, 1)} minutes, at commit ${m.commit}. How to read this: ` +
      '[bench/README.md](../README.md).',
    r.partial ? '\n**Partial run** (`--quick` or `--only`): not the reference figures.\n' : '',
    table(
      ['Machine', ''],
      [
        ['CPU', `${m.cpuModel}, ${m.cores} cores`],
        ['Memory', `${m.memoryGiB} GiB`],
        ['OS', `${m.os}, ${m.kernel}`],
        ['Node.js', m.node],
        [
          'Load average (1, 5, 15 min) at start / end',
          `${load(m.loadAverageStart)} / ${load(m.loadAverageEnd)}`,
        ],
      ],
    ),
    '',
    'Everything runs on this one machine over loopback: the dev server (mytoken API and OpenID ' +
      'provider), the target, the prober under test and the load generator each in a process of ' +
      'its own. CPU is read from `/proc/<pid>/stat` of the process measured, memory from ' +
      '`/proc/<pid>/status` (VmRSS, VmHWM). The "other load" columns show the CPU that processes ' +
      'outside the benchmark used meanwhile: where it is high, figures are noisier.',
  ].join('\n');
}

function goals(r: Results): string {
  const list = r.goals ?? [];
  const why = list.filter((g) => g.why !== undefined);
  return [
    '## Goals',
    '',
    table(
      ['Goal', 'Measured', 'Verdict'],
      list.map((g) => [g.goal, g.measured, g.met === true ? `**${g.verdict}**` : g.verdict]),
    ),
    why.length === 0 ? '' : '\nWhy the missed goals are missed:\n',
    ...why.map((g) => `- **${g.goal}.** ${g.why}`),
  ].join('\n');
}

function failedRow(s: FailedStep): (string | number)[] {
  const head = [fmt(s.checks, 0), `${fmt(s.intervalMs, 0)} ms`, fmt(s.offeredPerSecond, 0)];
  return [
    ...head,
    'n/a',
    'n/a',
    `**no**: measurement failed (${s.error})`,
    ...STEP_HEAD.slice(6).map(() => 'n/a'),
  ];
}

function stepRow(s: MeasuredStep | ProbeResult, sustained: string): (string | number)[] {
  return [
    fmt(s.checks, 0),
    `${fmt(s.intervalMs, 0)} ms`,
    fmt(s.offeredPerSecond, 0),
    fmt(s.successPerSecond, 0),
    `${fmt(s.runs.failure, 0)} / ${fmt(s.runs.skipped, 0)}`,
    sustained,
    fmt(s.cpuPer1000, 3),
    pct(s.probeCores),
    `${fmt(s.lagMs.p50, 1)} / ${fmt(s.lagMs.p99, 1)}`,
    fmt(s.peakRssMiB, 0),
    `${fmt(s.heapUsedMiB, 0)} / ${fmt(s.heapTotalMiB, 0)}`,
    pct(s.targetCores),
    fmt(s.otherCores, 2),
  ];
}

const STEP_HEAD = [
  'Checks',
  'Interval',
  'Offered/s',
  'Succeeded/s',
  'Failed / skipped',
  'Sustained',
  'CPU s per 1,000',
  'Probe CPU (one core)',
  'Lag p50 / p99 ms',
  'Peak RSS MiB',
  'Heap used / total MiB',
  'Target CPU',
  'Other load (cores)',
];

function lagBuckets(ladders: Record<number, LadderStep[]>): string {
  const step = Object.values(ladders)
    .flat()
    .find((s): s is MeasuredStep => s.error === undefined);
  return step === undefined
    ? 'n/a'
    : step.lagMs.bucketsMs.map((b) => String(Math.round(b * 1000) / 1000)).join(', ');
}

function throughput(r: Results): string {
  const ladders = r.ladders;
  if (ladders === undefined) return '## Probe throughput and cost\n\nNot measured.';
  const rows: (string | number)[][] = [];
  for (const steps of Object.values(ladders)) {
    for (const s of steps) {
      const mark = `${s.sustained ? 'yes' : '**no**'}${s.attempts > 1 ? ' (2nd try)' : ''}`;
      rows.push(s.error === undefined ? stepRow(s, mark) : failedRow(s));
    }
  }
  if (r.idle !== undefined) rows.push(stepRow(r.idle, 'idle baseline'));
  const best = bestSustained(r);
  const w = r.plan.ladder;
  return [
    '## Probe throughput and cost',
    '',
    `For each number of checks, the offered rate is raised (by shortening the interval; the ` +
      `probe's minimum is 100 ms) through ${w.rates.map((x) => fmt(x, 0)).join(', ')} checks/s ` +
      `until a step is not sustained: at least 97% of the runs due must succeed and at most 1% ` +
      `fail or be skipped. Each step is a fresh \`mytoken-probe\` process, measured over ` +
      `${w.windowMs / 1000} s after a warm-up of one interval (${w.warmupMs.min / 1000} to ` +
      `${w.warmupMs.max / 1000} s); the timeout is the interval. A step that is not sustained is run ` +
      `once more if it was a near miss (half the runs due succeeded) or if other processes used ` +
      `more than half a core meanwhile. Lag is the probe's own ` +
      `\`mytoken_probe_schedule_lag_seconds\` histogram, interpolated inside its buckets ` +
      `(${lagBuckets(ladders)} ms), so it is only as fine as they are.`,
    '',
    table(STEP_HEAD, rows),
    '',
    best === undefined
      ? 'No step was sustained.'
      : `Best sustained: **${fmt(best.successPerSecond, 0)} checks/s** with ${fmt(best.checks, 0)} ` +
        `checks, ${fmt(best.cpuPer1000 * 1000, 0)} µs of CPU per check.`,
  ].join('\n');
}

function goalCase(r: Results): string {
  const g = r.goal;
  if (g === undefined) return '## 10,000 checks per minute\n\nNot measured.';
  return [
    '## 10,000 checks per minute',
    '',
    `10,000 checks with a 60 s interval, measured over ${fmt(g.windowSeconds, 0)} s after a ` +
      `${r.plan.goal.warmupMs / 1000} s warm-up, \`/metrics\` scraped every 15 s as Prometheus ` +
      `would (included in the CPU), then ${r.plan.goal.renderSamples} scrapes back to back to ` +
      `time the rendering.`,
    '',
    table(
      ['Figure', 'Value'],
      [
        ['Checks succeeded per second', fmt(g.successPerSecond, 1)],
        ['Failed / skipped runs', `${fmt(g.runs.failure, 0)} / ${fmt(g.runs.skipped, 0)}`],
        ['CPU, share of one core', pct(g.probeCores)],
        ['CPU seconds per 1,000 checks', fmt(g.cpuPer1000, 3)],
        ['RSS at the end / peak (MiB)', `${fmt(g.rssMiB, 0)} / ${fmt(g.peakRssMiB, 0)}`],
        [
          'V8 heap used / total, external (MiB)',
          `${fmt(g.heapUsedMiB, 0)} / ${fmt(g.heapTotalMiB, 0)}, ${fmt(g.externalMiB, 0)}`,
        ],
        ['Schedule lag p50 / p99 (ms)', `${fmt(g.lagMs.p50, 1)} / ${fmt(g.lagMs.p99, 1)}`],
        ['`/metrics` time p50 / p90 / max (ms)', ms(g.scrapeMs).join(' / ')],
        ['`/metrics` CPU per render (ms)', fmt(g.renderCpuMs, 0)],
        [
          '`/metrics` size',
          `${fmt(g.metricsBytes / 1e6, 2)} MB, ${fmt(g.metricsSeries, 0)} series`,
        ],
        [
          'Peak RSS: probe with one check; bare Node.js (.js / .ts file)',
          `${fmt(r.idle?.peakRssMiB, 0)}; ${fmt(r.nodeBaseline?.jsMiB, 0)} / ${fmt(r.nodeBaseline?.tsMiB, 0)} MiB`,
        ],
        ['Access-token requests in the window', fmt(g.tokenRequests, 0)],
        ['Start-up (spawn to serving)', `${fmt(g.startupSeconds, 1)} s`],
        ['Target CPU / other load (cores)', `${pct(g.targetCores)} / ${fmt(g.otherCores, 2)}`],
      ],
    ),
  ].join('\n');
}

function blackbox(r: Results): string {
  const b = r.blackbox;
  const g = r.goal;
  if (b === undefined || g === undefined) return '## Against blackbox_exporter\n\nNot measured.';
  const ratio = (ours: number, theirs: number) => fmt(ours / theirs, 3);
  const ourRuns = g.runs.success + g.runs.failure;
  return [
    '## Against blackbox_exporter',
    '',
    `Debian's blackbox_exporter ${b.version}, driven at ${fmt(b.perSecond, 1)} probes/s (the same ` +
      `rate as 10,000 checks a minute) through \`/probe\` for ${fmt(b.windowSeconds, 0)} s after a ` +
      `warm-up, against the same target, with an \`oauth2\` (client credentials) module against ` +
      `the dev OpenID provider. The driver stands in for Prometheus; its own CPU is not counted, ` +
      `as the probe's scrapes are not either.`,
    '',
    table(
      ['', 'mytoken-probe', 'blackbox_exporter', 'ours / theirs'],
      [
        ['Checks or probes in the window', fmt(ourRuns, 0), fmt(b.probes, 0), ''],
        ['Succeeded', fmt(g.runs.success, 0), fmt(b.succeeded, 0), ''],
        [
          'CPU seconds per 1,000',
          fmt(g.cpuPer1000, 3),
          fmt(b.cpuPer1000, 3),
          ratio(g.cpuPer1000, b.cpuPer1000),
        ],
        ['CPU, share of one core', pct(g.probeCores), pct(b.cores), ratio(g.probeCores, b.cores)],
        ['RSS at the end (MiB)', fmt(g.rssMiB, 0), fmt(b.rssMiB, 0), ratio(g.rssMiB, b.rssMiB)],
        [
          'Peak RSS (MiB)',
          fmt(g.peakRssMiB, 0),
          fmt(b.peakRssMiB, 0),
          ratio(g.peakRssMiB, b.peakRssMiB),
        ],
        [
          'Token requests',
          fmt(g.tokenRequests, 0),
          fmt(b.tokenRequests, 0),
          ratio(g.tokenRequests, b.tokenRequests),
        ],
        ['Target CPU', pct(g.targetCores), pct(b.targetCores), ''],
        ['OP / mytoken server CPU', pct(g.devServerCores), pct(b.devServerCores), ''],
        ['Other load (cores)', fmt(g.otherCores, 2), fmt(b.otherCores, 2), ''],
      ],
    ),
    '',
    `blackbox_exporter's probe time (request to answer at the driver): p50 ${fmt(b.probeMs.p50, 1)} ms, ` +
      `p99 ${fmt(b.probeMs.p99, 1)} ms. Its module:`,
    '',
    '```yaml',
    b.module.trimEnd(),
    '```',
  ].join('\n');
}

function limit(r: Results): string {
  const l = r.limit;
  if (l === undefined) return '## The physical limit\n\nNot measured.';
  const best = bestSustained(r);
  return [
    '## The physical limit',
    '',
    `autocannon, ${l.connections} keep-alive connections, one valid access token, against the ` +
      `same target: the best of ${l.runRates.length} runs of ${fmt(l.seconds, 0)} s, made at ` +
      `the start and at the end of the session after a warm-up run (they gave ` +
      `${l.runRates.map((x) => fmt(x, 0)).join(', ')} requests/s). ` +
      'The target verifies the JWT once and caches it, as for the probe.',
    '',
    table(
      ['Figure', 'Value'],
      [
        ['Authorised requests per second', fmt(l.perSecond, 0)],
        ['Non-2xx / errors', `${fmt(l.non2xx, 0)} / ${fmt(l.errors, 0)}`],
        ['Latency p50 / p99 (ms)', `${l.latencyMs.p50} / ${l.latencyMs.p99}`],
        ['Load generator CPU (cores)', fmt(l.generatorCores, 2)],
        ['Target CPU (cores)', fmt(l.targetCores, 2)],
        ['Other load (cores)', fmt(l.otherCores, 2)],
        [
          "The probe's best sustained rate, as a share",
          best === undefined ? 'n/a' : pct(best.successPerSecond / l.perSecond),
        ],
      ],
    ),
  ].join('\n');
}

function tokens(r: Results): string {
  const t = r.tokens;
  if (t === undefined) return '## Token efficiency\n\nNot measured.';
  const h = t.oneHourLifetime;
  return [
    '## Token efficiency',
    '',
    `${fmt(t.checks, 0)} checks sharing one (scope, audience), every ${t.intervalMs / 1000} s, ` +
      `for ${fmt(t.seconds, 0)} s with the OP's access-token lifetime set to ` +
      `${t.atLifetimeSeconds} s; the dev server's count of access-token requests was polled ` +
      `every 100 ms to time each request.`,
    '',
    table(
      ['Figure', 'Value'],
      [
        ['Check runs', fmt(t.checkRuns, 0)],
        ['Access-token requests (minimum: one per lifetime)', `${t.tokenRequests} (${t.minimum})`],
        [
          'Time between requests p50 (min–max)',
          `${fmt(t.gapSeconds.p50, 2)} s (${fmt(t.gapSeconds.min, 2)}–${fmt(t.gapSeconds.max, 2)})`,
        ],
        [
          'Requests per hour, measured / minimum',
          `${fmt(t.measuredPerHour, 0)} / ${fmt(t.minimumPerHour, 0)}`,
        ],
        [
          'With 1-hour ATs, predicted / minimum',
          `${fmt(h.predictedPerHour, 3)} / ${h.minimumPerHour} (one every ${fmt(h.gapSeconds, 0)} s)`,
        ],
        [
          'blackbox_exporter, same checks',
          `${fmt((t.checks * 3_600_000) / t.intervalMs, 0)} per hour (one per probe)`,
        ],
      ],
    ),
    '',
    'How the hour is extrapolated: the measured time between requests (steady state, the first ' +
      'request excluded) is scaled to an hour. For the default 1-hour lifetime, which cannot be ' +
      "waited for, the probe's documented refresh rule (an AT is taken to live `expires_in` − 1 s " +
      'and refreshed 10% of that, between 1 s and 60 s, before it ends) gives the gap; the short ' +
      'run checks the rule: it predicts ' +
      `${fmt(predictedGapSeconds(t.atLifetimeSeconds), 2)} s for ${t.atLifetimeSeconds} s ATs.`,
  ].join('\n');
}

function action(r: Results): string {
  const a = r.action;
  if (a === undefined) return '## The Action\n\nNot measured.';
  const line = (name: string, s: Summary, runs: number) => [name, runs, ...ms(s)];
  return [
    '## The Action',
    '',
    `Wall time from spawning the step to its outputs file being written (last write) and to the ` +
      `process exit, ${a.runs} runs each, the Action and the baseline alternating. The ` +
      `baseline is what a composite step would run (\`bash --noprofile --norc -eo pipefail\`, ` +
      `${a.tools.curl.split(' ').slice(0, 2).join(' ')}, ${a.tools.jq}); it cannot write a ` +
      'rotated token back, so the rotating case has no baseline.',
    '',
    table(
      ['Step', 'Runs', 'p50 ms', 'p90 ms', 'max ms'],
      [
        line('`node dist/index.js`, start → outputs', a.action.outputsMs, a.runs),
        line('`node dist/index.js`, start → exit', a.action.exitMs, a.runs),
        line('curl + jq, start → outputs', a.curl.outputsMs, a.runs),
        line('curl + jq, start → exit', a.curl.exitMs, a.runs),
        line(
          'rotating mytoken + write-back, start → outputs',
          a.rotating.outputsMs,
          a.rotatingRuns,
        ),
        line('rotating mytoken + write-back, start → exit', a.rotating.exitMs, a.rotatingRuns),
        line('`node -e 0` (Node start-up alone), start → exit', a.nodeStartMs, a.runs),
      ],
    ),
    '',
    `Bundle: \`dist/index.js\` ${fmt(a.bundle.indexBytes / 1e6, 2)} MB ` +
      `(${fmt(a.bundle.indexGzipBytes / 1e6, 2)} MB gzipped), \`dist/\` ` +
      `${fmt(a.bundle.distBytes / 1e6, 2)} MB.`,
    '',
    'The baseline step:',
    '',
    '```sh',
    CURL_STEP.trimEnd(),
    '```',
  ].join('\n');
}

function commands(r: Results): string {
  const p = r.plan;
  return [
    '## Commands',
    '',
    '- `node bin/mytoken-dev-server.js --port 0` (its own process for the whole run)',
    '- `node bench/target.ts --issuer <OP> --audience <demo resource>`: the target',
    `- \`BENCH_ACCESS_TOKEN=… node bench/load.ts <target> ${p.limit.connections} ${p.limit.seconds}\`: autocannon`,
    '- `node bin/mytoken-probe.js --config probe.yml`, with N checks of the form ' +
      '`{name: check-00001, url: <target>, expect: {status: [200]}}` and `defaults: {interval, timeout}`; ' +
      'a fresh rotating mytoken in a 0600 token file for each run',
    '- `.tools/bin/blackbox_exporter --config.file=blackbox.yml --web.listen-address=127.0.0.1:0`, ' +
      'driven with `GET /probe?module=mytoken_bench_oauth2&target=<target>`',
    '- `node dist/index.js` with `INPUT_*` variables (every action.yml default, plus `mytoken`, ' +
      '`mytoken-server`, and for the rotating case `secret-name` and `github-token`) against the ' +
      'loopback GitHub fake of `test/support/github-fake.ts`',
    '',
    `Plan (from \`bench/lib/plan.ts\`): \`${JSON.stringify(p)}\``,
  ].join('\n');
}

function errors(r: Results): string {
  const timing = Object.entries(r.sectionSeconds)
    .map(([name, s]) => `${name} ${fmt(s, 0)} s`)
    .join(', ');
  const list = r.errors.map((e) => `- ${e.section}: ${e.message}`);
  return [
    '## Run',
    '',
    `Time per section: ${timing}.`,
    list.length === 0 ? '' : `\nErrors:\n\n${list.join('\n')}`,
  ].join('\n');
}

export function render(r: Results): string {
  return `${[
    header(r),
    goals(r),
    throughput(r),
    goalCase(r),
    blackbox(r),
    limit(r),
    tokens(r),
    action(r),
    commands(r),
    errors(r),
  ].join('\n\n')}\n`;
}
