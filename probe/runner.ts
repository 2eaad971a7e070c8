/**
 * The envelope around one check's runs: it owns the deadline, measures the run on the monotonic
 * clock, and records the outcome in the metrics, the short history behind `/status` and, for a
 * failure, one log line with the reason.
 */
import { performance } from 'node:perf_hooks';
import type { Dispatcher } from 'undici';
import { CheckTimeout, prepareCheck, runCheck, RunDeadline, type PreparedCheck } from './check.ts';
import { formatDuration, type CheckConfig } from './config.ts';
import type { Logger, SecretScrubber } from './log.ts';
import type { CheckSeries, FailureReason } from './metrics.ts';
import type { TokenSlot } from './tokens.ts';

/** One finished run, as shown on `/status`. */
export interface RunRecord {
  /** Unix time in milliseconds the run finished. */
  time: number;
  success: boolean;
  reason: FailureReason | undefined;
  statusCode: number;
  durationSeconds: number;
  error: string | undefined;
}

export interface RunnerOptions {
  config: CheckConfig;
  slot: TokenSlot;
  dispatcher: Dispatcher;
  /** Where results go; absent in `--once` mode. */
  series?: CheckSeries;
  logger: Logger;
  scrubber: SecretScrubber;
  /** Log one line per failed run (off in `--once` mode, which prints a table instead). */
  logFailures?: boolean;
  historySize?: number;
}

const DEFAULT_HISTORY = 10;

export class CheckRunner {
  readonly config: CheckConfig;
  readonly #prepared: PreparedCheck;
  readonly #options: RunnerOptions;
  readonly #history: RunRecord[] = [];
  readonly #inflight = new Set<RunDeadline>();
  /** Where the check points, without query or fragment (which may carry secrets). */
  readonly displayUrl: string;
  #lastSuccess: number | undefined;
  #retired = false;

  constructor(options: RunnerOptions) {
    this.config = options.config;
    this.#options = options;
    this.#prepared = prepareCheck(options.config);
    const url = new URL(options.config.url);
    this.displayUrl = `${url.origin}${url.pathname}`;
  }

  /** Runs the check once within its timeout and records the outcome (unless retired meanwhile). */
  async run(): Promise<RunRecord> {
    const { config, slot, dispatcher } = this.#options;
    const deadline = new RunDeadline();
    // Node keeps timers of equal duration in one list under one native timer, so a timer per run
    // is a list insert and unlink, not a timer wheel of its own.
    const timer = setTimeout(abortLate, config.timeoutMs, deadline, config.timeoutMs);
    this.#inflight.add(deadline);
    const started = performance.now();
    try {
      const outcome = await runCheck(this.#prepared, slot, dispatcher, deadline);
      const record: RunRecord = {
        time: Date.now(),
        success: outcome.success,
        reason: outcome.reason,
        statusCode: outcome.statusCode,
        durationSeconds: (performance.now() - started) / 1000,
        error:
          outcome.error === undefined ? undefined : this.#options.scrubber.scrub(outcome.error),
      };
      if (!this.#retired) this.#record(record);
      return record;
    } finally {
      clearTimeout(timer);
      this.#inflight.delete(deadline);
    }
  }

  /**
   * Stops recording and aborts runs in flight; the check's series belong to whoever takes it over.
   */
  retire(): void {
    this.#retired = true;
    for (const deadline of this.#inflight) deadline.abort(new Error('check retired'));
  }

  /** Hands the history of a runner this one replaces (same check name) over to this one. */
  adopt(previous: CheckRunner): void {
    const size = this.#options.historySize ?? DEFAULT_HISTORY;
    this.#history.push(...previous.#history.slice(-size));
    this.#lastSuccess = previous.#lastSuccess;
  }

  get running(): boolean {
    return this.#inflight.size > 0;
  }

  /** The check's state for `/status`; newest run first. */
  status(): Record<string, unknown> {
    const { config } = this;
    const schedule =
      config.schedule.kind === 'interval'
        ? { interval: formatDuration(config.schedule.intervalMs) }
        : { schedule: config.schedule.expression };
    const history = this.#history.map(recordJson).reverse();
    return {
      name: config.name,
      url: this.displayUrl,
      method: config.method,
      ...schedule,
      timeout: formatDuration(config.timeoutMs),
      scope: config.scope ?? null,
      audience: config.audience ?? null,
      running: this.running,
      last: history[0] ?? null,
      last_success:
        this.#lastSuccess === undefined ? null : new Date(this.#lastSuccess).toISOString(),
      history,
    };
  }

  #record(record: RunRecord): void {
    const { series, logger, logFailures = true, historySize = DEFAULT_HISTORY } = this.#options;
    series?.recordRun(record.success, record.reason, record.statusCode, record.durationSeconds);
    this.#history.push(record);
    if (this.#history.length > historySize) this.#history.shift();
    if (record.success) {
      this.#lastSuccess = record.time;
      return;
    }
    if (!logFailures) return;
    logger.error('Check failed', {
      check: this.config.name,
      reason: record.reason,
      status_code: record.statusCode,
      duration_seconds: round(record.durationSeconds),
      url: this.displayUrl,
      err: record.error,
    });
  }
}

function abortLate(deadline: RunDeadline, timeoutMs: number): void {
  deadline.abort(new CheckTimeout(timeoutMs));
}

function recordJson(r: RunRecord): Record<string, unknown> {
  return {
    time: new Date(r.time).toISOString(),
    success: r.success,
    reason: r.reason ?? null,
    status_code: r.statusCode,
    duration_seconds: round(r.durationSeconds),
    error: r.error ?? null,
  };
}

function round(seconds: number): number {
  return Math.round(seconds * 1e6) / 1e6;
}
