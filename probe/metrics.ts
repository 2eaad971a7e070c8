/**
 * Every metric the probe exports is declared here. The names are a contract: the alert rules in
 * `examples/prometheus/` and users' dashboards select on them.
 *
 * The probe runs checks on its own schedule rather than on scrape (unlike blackbox_exporter),
 * because access tokens are cached across runs; so next to the last-result gauges it counts every
 * run, and exports the last-run time so a stalled scheduler shows.
 *
 * Per-check series live in a column table rendered by hand: with 10,000 checks there are 150,000 of
 * them, and prom-client's generic label maps took about half a second to render that; the table
 * takes a fraction. Everything else (token, config, build and process metrics) goes through
 * prom-client, in the probe's own registry.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { TokenEvents } from './tokens.ts';

export const FAILURE_REASONS = ['token', 'connect', 'tls', 'timeout', 'status', 'body'] as const;
export type FailureReason = (typeof FAILURE_REASONS)[number];

/** The series of one check; recording a run writes a few array slots, no label lookup. */
export interface CheckSeries {
  recordRun(
    success: boolean,
    reason: FailureReason | undefined,
    statusCode: number,
    seconds: number,
  ): void;
  recordSkip(): void;
  remove(): void;
}

interface Family {
  name: string;
  type: 'gauge' | 'counter';
  help: string;
  /** Per series: the column it reads and the extra label, e.g. `result="success"`. */
  series: { column: number; extra: string }[];
}

// Columns of the check table.
const SUCCESS = 0;
const DURATION = 1;
const STATUS = 2;
const LAST_RUN = 3;
const LAST_SUCCESS = 4;
const INTERVAL = 5;
const RUNS_SUCCESS = 6;
const RUNS_FAILURE = 7;
const RUNS_SKIPPED = 8;
const FAILURES = 9; // one column per reason, in FAILURE_REASONS order
const COLUMNS = FAILURES + FAILURE_REASONS.length;

const gauge = (name: string, help: string, column: number): Family => ({
  name,
  type: 'gauge',
  help,
  series: [{ column, extra: '' }],
});

const CHECK_FAMILIES: Family[] = [
  gauge(
    'mytoken_probe_check_success',
    'Whether the last run of the check succeeded (1) or failed (0).',
    SUCCESS,
  ),
  gauge(
    'mytoken_probe_check_duration_seconds',
    'Duration of the last run of the check, waiting for its access token included.',
    DURATION,
  ),
  gauge(
    'mytoken_probe_check_http_status_code',
    'HTTP status of the last run of the check; 0 when no response arrived.',
    STATUS,
  ),
  {
    name: 'mytoken_probe_check_runs_total',
    type: 'counter',
    help: 'Runs of the check by result; a skipped run was due while the previous one still ran.',
    series: [
      { column: RUNS_SUCCESS, extra: ',result="success"' },
      { column: RUNS_FAILURE, extra: ',result="failure"' },
      { column: RUNS_SKIPPED, extra: ',result="skipped"' },
    ],
  },
  {
    name: 'mytoken_probe_check_failures_total',
    type: 'counter',
    help: 'Failed runs of the check by reason.',
    series: FAILURE_REASONS.map((r, i) => ({ column: FAILURES + i, extra: `,reason="${r}"` })),
  },
  gauge(
    'mytoken_probe_check_last_run_timestamp_seconds',
    'Unix time the last run of the check finished; 0 before the first run.',
    LAST_RUN,
  ),
  gauge(
    'mytoken_probe_check_last_success_timestamp_seconds',
    'Unix time of the last successful run of the check; 0 before the first.',
    LAST_SUCCESS,
  ),
  gauge(
    'mytoken_probe_check_interval_seconds',
    'Interval of the check; for a cron schedule, the longest gap between two runs.',
    INTERVAL,
  ),
];

interface Series {
  column: number;
  /** `family_name{` */
  head: string;
  /** `,extra="label"} ` */
  tail: string;
}

const SERIES: Series[][] = CHECK_FAMILIES.map((family) =>
  family.series.map(({ column, extra }) => ({
    column,
    head: `${family.name}{`,
    tail: `${extra}} `,
  })),
);

/**
 * The per-check values, and for each value its finished exposition line. A run only writes numbers
 * and drops the lines it made stale; the next render rebuilds those, once, however many runs came
 * in between. Between two scrapes only the checks that ran change, so rendering is mostly joining
 * strings that already exist. A removed check's row is reused by the next new one.
 */
class CheckTable {
  readonly values: number[][] = Array.from({ length: COLUMNS }, () => []);
  /** Per column and row: the line, '' for no series, undefined when stale. */
  readonly #lines: (string | undefined)[][] = Array.from({ length: COLUMNS }, () => []);
  readonly #heads: string[] = [];
  readonly #tails: string[] = [];
  /** Per row: `check="name"`, or undefined for a free row. */
  readonly #labels: (string | undefined)[] = [];
  readonly #rows = new Map<string, number>();
  readonly #free: number[] = [];

  constructor() {
    for (const family of SERIES) {
      for (const series of family) {
        this.#heads[series.column] = series.head;
        this.#tails[series.column] = series.tail;
      }
    }
  }

  /** The row of `name`, created with counters at 0 and no last result if new. */
  row(name: string): number {
    const existing = this.#rows.get(name);
    if (existing !== undefined) return existing;
    const row = this.#free.pop() ?? this.#labels.length;
    this.#labels[row] = `check="${escapeLabel(name)}"`;
    for (let column = 0; column < COLUMNS; column++) this.set(column, row, 0);
    for (const column of [SUCCESS, DURATION, STATUS]) this.unset(column, row);
    // A failure reason's series appears with its first failure: zero series for all six reasons of
    // every check were 40% of the exposition with 10,000 checks, for a breakdown no alert relies on.
    for (let i = 0; i < FAILURE_REASONS.length; i++) this.unset(FAILURES + i, row);
    this.#rows.set(name, row);
    return row;
  }

  set(column: number, row: number, value: number): void {
    const values = this.values[column]!;
    if (values[row] === value) return;
    values[row] = value;
    this.#lines[column]![row] = undefined;
  }

  add(column: number, row: number, delta: number): void {
    const current = this.values[column]![row]!;
    this.set(column, row, (Number.isNaN(current) ? 0 : current) + delta);
  }

  /** No series for this cell until the next `set`. */
  unset(column: number, row: number): void {
    this.values[column]![row] = NaN;
    this.#lines[column]![row] = '';
  }

  remove(name: string): void {
    const row = this.#rows.get(name);
    if (row === undefined) return;
    this.#rows.delete(name);
    this.#labels[row] = undefined;
    for (let column = 0; column < COLUMNS; column++) this.unset(column, row);
    this.#free.push(row);
  }

  render(): string {
    let out = '';
    CHECK_FAMILIES.forEach((family, f) => {
      out += `# HELP ${family.name} ${family.help}\n# TYPE ${family.name} ${family.type}\n`;
      for (const { column } of SERIES[f]!) out += this.#column(column);
    });
    return out;
  }

  /** The lines of one column, rebuilding the stale ones. */
  #column(column: number): string {
    const lines = this.#lines[column]!;
    const values = this.values[column]!;
    const head = this.#heads[column]!;
    const tail = this.#tails[column]!;
    for (let row = 0; row < lines.length; row++) {
      if (lines[row] !== undefined) continue;
      // A stale cell always has a label: removing a row marks its cells '' rather than stale.
      const line = head + this.#labels[row]! + tail + formatValue(values[row]!) + '\n';
      flatten(line);
      lines[row] = line;
    }
    return lines.join('');
  }
}

const MISNAMED_DEFAULT_METRICS = [
  'nodejs_active_handles_total',
  'nodejs_active_requests_total',
  'nodejs_active_resources_total',
];

export class ProbeMetrics implements TokenEvents {
  readonly registry = new Registry();
  readonly #table = new CheckTable();
  readonly #scheduleLag: Histogram;
  readonly #tokenRequests: Counter<'result'>;
  readonly #rotations: Counter;
  readonly #mytokenExpiry: Gauge;
  readonly #storeWrites: Counter<'result'>;
  readonly #chainBroken: Gauge;
  readonly #reloadOk: Gauge;
  readonly #reloadTime: Gauge;

  constructor(version: string) {
    const registers = [this.registry];
    this.#scheduleLag = new Histogram({
      name: 'mytoken_probe_schedule_lag_seconds',
      help: 'How late check runs started compared with their schedule.',
      // A healthy probe starts nearly every run within 1 ms: fine buckets keep p50 and p99 useful.
      buckets: [
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
      ],
      registers,
    });
    this.#tokenRequests = new Counter({
      name: 'mytoken_probe_token_requests_total',
      help: 'Access-token requests made with the mytoken, by result.',
      labelNames: ['result'],
      registers,
    });
    this.#rotations = new Counter({
      name: 'mytoken_probe_mytoken_rotations_total',
      help: 'Times the mytoken was rotated and the new one saved.',
      registers,
    });
    this.#mytokenExpiry = new Gauge({
      name: 'mytoken_probe_mytoken_expiry_timestamp_seconds',
      help: 'Unix time the current mytoken expires; 0 when it never expires or cannot tell.',
      registers,
    });
    this.#storeWrites = new Counter({
      name: 'mytoken_probe_token_store_writes_total',
      help: 'Writes of a rotated mytoken to the token store, by result.',
      labelNames: ['result'],
      registers,
    });
    this.#chainBroken = new Gauge({
      name: 'mytoken_probe_mytoken_chain_broken',
      help: '1 when the mytoken was lost or rejected and a new one must be minted, else 0.',
      registers,
    });
    this.#reloadOk = new Gauge({
      name: 'mytoken_probe_config_last_reload_successful',
      help: 'Whether the last configuration load succeeded (1) or not (0).',
      registers,
    });
    this.#reloadTime = new Gauge({
      name: 'mytoken_probe_config_last_reload_success_timestamp_seconds',
      help: 'Unix time of the last successful configuration load.',
      registers,
    });
    const build = new Gauge({
      name: 'mytoken_probe_build_info',
      help: 'Build information of the probe; always 1.',
      labelNames: ['version', 'nodejs_version'],
      registers,
    });
    build.labels(version, process.versions.node).set(1);
    for (const result of ['success', 'failure'] as const) {
      this.#tokenRequests.labels(result).inc(0);
      this.#storeWrites.labels(result).inc(0);
    }
    this.#chainBroken.set(0);
    // Sampling the event-loop delay every 10 ms (the default) costs an idle probe 1% of a core.
    collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: 100 });
    // These three are gauges named like counters, which `promtool check metrics` rejects; the
    // per-type `nodejs_active_handles` and friends carry the same information.
    for (const name of MISNAMED_DEFAULT_METRICS) this.registry.removeSingleMetric(name);
  }

  /**
   * Creates (or takes over, on reload) the series of a check. Counters start at 0, so none is
   * missing.
   */
  check(name: string, intervalSeconds: number): CheckSeries {
    const table = this.#table;
    const row = table.row(name);
    table.set(INTERVAL, row, intervalSeconds);
    return {
      recordRun: (ok, reason, statusCode, seconds) => {
        const now = Date.now() / 1000;
        table.set(SUCCESS, row, ok ? 1 : 0);
        table.set(DURATION, row, Math.round(seconds * 1e6) / 1e6);
        table.set(STATUS, row, statusCode);
        table.set(LAST_RUN, row, now);
        if (ok) {
          table.add(RUNS_SUCCESS, row, 1);
          table.set(LAST_SUCCESS, row, now);
          return;
        }
        table.add(RUNS_FAILURE, row, 1);
        if (reason !== undefined) table.add(FAILURES + FAILURE_REASONS.indexOf(reason), row, 1);
      },
      recordSkip: () => table.add(RUNS_SKIPPED, row, 1),
      remove: () => table.remove(name),
    };
  }

  /** Drops every series of a check that is no longer configured. */
  removeCheck(name: string): void {
    this.#table.remove(name);
  }

  scheduleLag(seconds: number): void {
    this.#scheduleLag.observe(seconds);
  }

  tokenRequest(result: 'success' | 'failure'): void {
    this.#tokenRequests.labels(result).inc();
  }

  rotation(): void {
    this.#rotations.inc();
  }

  mytokenExpiry(seconds: number): void {
    this.#mytokenExpiry.set(seconds);
  }

  storeWrite(result: 'success' | 'failure'): void {
    this.#storeWrites.labels(result).inc();
  }

  chainBroken(broken: boolean): void {
    this.#chainBroken.set(broken ? 1 : 0);
  }

  configLoaded(ok: boolean): void {
    this.#reloadOk.set(ok ? 1 : 0);
    if (ok) this.#reloadTime.set(Date.now() / 1000);
  }

  /** The exposition text for `/metrics`: the check table, then everything in the registry. */
  async render(): Promise<string> {
    const rest = await this.registry.metrics();
    return this.#table.render() + rest;
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function formatValue(value: number): string {
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}

let _sink = 0;

/**
 * Makes V8 flatten a freshly concatenated string now, by reading from it; otherwise every render
 * would walk the same five-piece rope again.
 */
function flatten(s: string): void {
  _sink ^= s.charCodeAt(s.length - 1);
}
