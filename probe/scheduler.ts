/**
 * When checks run. An interval check runs at a fixed rate from a random start offset (so that
 * checks loaded together do not all fire together), measured on the monotonic clock; a cron check
 * runs when node-cron says, in UTC. A run never overlaps the previous run of the same check: a slot
 * that comes due while the check still runs is skipped and counted, as are slots lost to a stalled
 * event loop.
 */
import { performance } from 'node:perf_hooks';
import cron from 'node-cron';
import type { ScheduledTask } from 'node-cron';
import type { Schedule } from './config.ts';
import type { Logger } from './log.ts';

/** Runs a check once; `lagMs` is how late the run starts compared with its slot. */
export type Job = (lagMs: number) => Promise<void>;

export interface ScheduleHooks {
  job: Job;
  /** A due run was not started: the previous one still ran, or the slot was missed. */
  skipped: () => void;
  logger: Logger;
  /** Random source in [0, 1), injectable for tests. */
  random?: () => number;
}

/**
 * The first run of an interval check comes within this long of the start, spreading load (as
 * Grafana SM does).
 */
const MAX_START_OFFSET_MS = 120_000;

export interface ScheduledCheck {
  start(): void;
  stop(): void;
  readonly busy: boolean;
}

export function scheduleCheck(schedule: Schedule, hooks: ScheduleHooks): ScheduledCheck {
  return schedule.kind === 'interval'
    ? new IntervalSchedule(schedule.intervalMs, hooks)
    : new CronSchedule(schedule.expression, hooks);
}

/** An interval check's place in the queue: when it is next due. */
interface Due {
  due: number;
  stopped: boolean;
  fire(now: number): void;
}

/**
 * All interval checks share one timer and a min-heap ordered by due time, instead of a timer per
 * check: no long-lived timer object per check, and checks due in the same millisecond run in one
 * wake-up.
 */
class DueQueue {
  readonly #heap: Due[] = [];
  #live = 0;
  #timer: NodeJS.Timeout | undefined;
  #timerAt = Infinity;
  #waking = false;

  add(entry: Due): void {
    this.#live++;
    this.push(entry);
  }

  push(entry: Due): void {
    const heap = this.#heap;
    heap.push(entry);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (heap[parent]!.due <= entry.due) break;
      heap[i] = heap[parent]!;
      i = parent;
    }
    heap[i] = entry;
    if (!this.#waking && entry.due < this.#timerAt) this.#arm();
  }

  /** Called once per stopped entry; the entry itself leaves the heap when it comes due. */
  release(): void {
    if (--this.#live > 0) return;
    this.#heap.length = 0;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Infinity;
  }

  #pop(): Due {
    const heap = this.#heap;
    const top = heap[0]!;
    const last = heap.pop()!;
    if (heap.length === 0) return top;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= heap.length) break;
      const right = left + 1;
      const child = right < heap.length && heap[right]!.due < heap[left]!.due ? right : left;
      if (heap[child]!.due >= last.due) break;
      heap[i] = heap[child]!;
      i = child;
    }
    heap[i] = last;
    return top;
  }

  #arm(): void {
    clearTimeout(this.#timer);
    const next = this.#heap[0];
    if (next === undefined) {
      this.#timer = undefined;
      this.#timerAt = Infinity;
      return;
    }
    this.#timerAt = next.due;
    this.#timer = setTimeout(this.#wake, Math.max(0, next.due - performance.now()));
  }

  readonly #wake = () => {
    this.#timer = undefined;
    this.#timerAt = Infinity;
    this.#waking = true;
    // Timers run on a millisecond clock and may fire a fraction of one early: that is on time.
    const now = performance.now();
    try {
      while (this.#heap.length > 0 && this.#heap[0]!.due <= now + 1) {
        const entry = this.#pop();
        if (!entry.stopped) entry.fire(now);
      }
    } finally {
      this.#waking = false;
      this.#arm();
    }
  };
}

const queue = new DueQueue();

class IntervalSchedule implements ScheduledCheck, Due {
  due = 0;
  stopped = false;
  readonly #intervalMs: number;
  readonly #hooks: ScheduleHooks;
  #started = false;
  #busy = false;

  constructor(intervalMs: number, hooks: ScheduleHooks) {
    this.#intervalMs = intervalMs;
    this.#hooks = hooks;
  }

  get busy(): boolean {
    return this.#busy;
  }

  start(): void {
    if (this.#started) return;
    this.#started = true;
    const random = this.#hooks.random ?? Math.random;
    this.due = performance.now() + random() * Math.min(this.#intervalMs, MAX_START_OFFSET_MS);
    queue.add(this);
  }

  stop(): void {
    if (!this.#started || this.stopped) return;
    this.stopped = true;
    queue.release();
  }

  fire(now: number): void {
    const lag = Math.max(0, now - this.due);
    // Slots that passed entirely while the loop was blocked are not made up: they count as skipped.
    const missed = Math.floor(lag / this.#intervalMs);
    for (let i = 0; i < missed; i++) this.#hooks.skipped();
    this.due += (missed + 1) * this.#intervalMs;
    queue.push(this);
    this.#runOrSkip(lag - missed * this.#intervalMs);
  }

  #runOrSkip(lagMs: number): void {
    if (this.#busy) {
      this.#hooks.skipped();
      return;
    }
    this.#busy = true;
    void this.#hooks.job(lagMs).finally(() => {
      this.#busy = false;
    });
  }
}

class CronSchedule implements ScheduledCheck {
  readonly #task: ScheduledTask;
  readonly #hooks: ScheduleHooks;
  #busy = false;

  constructor(expression: string, hooks: ScheduleHooks) {
    this.#hooks = hooks;
    const { logger } = hooks;
    this.#task = cron.createTask(expression, (context) => this.#fire(context.date), {
      timezone: 'UTC',
      // Overlap is handled here, so that a skipped run is counted rather than only logged.
      noOverlap: false,
      logger: {
        info: (m) => logger.debug(String(m)),
        warn: (m) => logger.debug(String(m)),
        error: (m) => logger.warn(m instanceof Error ? m.message : String(m)),
        debug: (m) => logger.debug(m instanceof Error ? m.message : String(m)),
      },
    });
    this.#task.on('execution:missed', () => hooks.skipped());
  }

  get busy(): boolean {
    return this.#busy;
  }

  start(): void {
    void this.#task.start();
  }

  stop(): void {
    void this.#task.destroy();
  }

  #fire(due: Date): void {
    if (this.#busy) {
      this.#hooks.skipped();
      return;
    }
    this.#busy = true;
    // node-cron hands over the wall-clock slot: the only wall-clock measurement in the probe.
    const lag = Math.max(0, Date.now() - due.getTime());
    void this.#hooks.job(lag).finally(() => {
      this.#busy = false;
    });
  }
}
