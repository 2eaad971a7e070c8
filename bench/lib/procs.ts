/**
 * Child processes of the benchmark, and what /proc says about them. Every process started here is
 * tracked, and `stopAll` ends each one by its own pid (SIGTERM, then SIGKILL after a grace period),
 * so nothing outlives a run, whether it ends normally, throws or is interrupted.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';

import { BenchError } from './errors.ts';

/** Kernel clock ticks per second for /proc/<pid>/stat (USER_HZ, 100 on Linux). */
const CLOCK_TICKS = 100;
const STOP_GRACE_MS = 10_000;
const KEEP_LINES = 20;

export interface Proc {
  name: string;
  pid: number;
  child: ChildProcess;
  /** The last lines of stdout and stderr, for a message when something goes wrong. */
  tail: string[];
  /** Lines seen so far on stdout and stderr. */
  lines: number;
  exited: Promise<number | null>;
  /** Resolves with the first line for which `match` returns a value, or rejects after `timeoutMs`. */
  waitFor<T>(match: (line: string) => T | undefined, timeoutMs: number): Promise<T>;
  stop(): Promise<void>;
}

const running = new Set<Proc>();

/** Starts a process whose output is read line by line (never echoed: it may name secrets). */
export function start(
  name: string,
  command: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Proc {
  const child = spawn(command, args, {
    env: options.env ?? cleanEnv(),
    cwd: options.cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (child.pid === undefined) throw new BenchError('ERR_BENCH_SPAWN', `cannot start ${name}`);
  const listeners = new Set<(line: string) => void>();
  const proc: Proc = {
    name,
    pid: child.pid,
    child,
    tail: [],
    lines: 0,
    exited: once(child, 'close').then(([code]) => code as number | null),
    waitFor: (match, timeoutMs) => waitForLine(proc, listeners, match, timeoutMs),
    stop: () => stop(proc),
  };
  for (const stream of [child.stdout, child.stderr]) {
    createInterface({ input: stream }).on('line', (line) => {
      proc.lines++;
      proc.tail.push(line.slice(0, 300));
      if (proc.tail.length > KEEP_LINES) proc.tail.shift();
      for (const listener of listeners) listener(line);
    });
  }
  running.add(proc);
  void proc.exited.then(() => running.delete(proc));
  return proc;
}

function waitForLine<T>(
  proc: Proc,
  listeners: Set<(line: string) => void>,
  match: (line: string) => T | undefined,
  timeoutMs: number,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const done = () => {
      clearTimeout(timer);
      listeners.delete(listener);
    };
    const timer = setTimeout(() => {
      done();
      reject(new BenchError('ERR_BENCH_TIMEOUT', `${proc.name} not ready in ${timeoutMs} ms`));
    }, timeoutMs);
    const listener = (line: string) => {
      const value = match(line);
      if (value === undefined) return;
      done();
      resolve(value);
    };
    listeners.add(listener);
    void proc.exited.then((code) => {
      done();
      reject(new BenchError('ERR_BENCH_EXITED', `${proc.name} exited early with ${code}`));
    });
  });
}

async function stop(proc: Proc): Promise<void> {
  if (proc.child.exitCode !== null || proc.child.signalCode !== null) return;
  proc.child.kill('SIGTERM');
  const timer = setTimeout(() => proc.child.kill('SIGKILL'), STOP_GRACE_MS);
  await proc.exited;
  clearTimeout(timer);
}

/** Stops every process this module started and that still runs. */
export async function stopAll(): Promise<void> {
  await Promise.allSettled([...running].map((p) => p.stop()));
}

/** Kills what is left, synchronously (for `exit` handlers). */
export function killAllNow(): void {
  for (const proc of running) proc.child.kill('SIGKILL');
}

/** PATH and HOME only: no proxy variables, nothing of the caller's secrets. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? '/tmp',
    ...extra,
  };
}

/** User plus system CPU seconds the process has used so far. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may contain spaces; the fields after it are fixed.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

/** Resident set size now and at its peak (VmHWM), in MiB. */
export function memory(pid: number): { rssMiB: number; peakMiB: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1]);
  return { rssMiB: kib('VmRSS') / 1024, peakMiB: kib('VmHWM') / 1024 };
}

/** Busy and total CPU seconds of the whole machine (all cores), from /proc/stat. */
export function machineCpu(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? '';
  const ticks = line.trim().split(/\s+/).slice(1).map(Number);
  const total = ticks.reduce((a, b) => a + b, 0);
  const idle = (ticks[3] ?? 0) + (ticks[4] ?? 0);
  return { busy: (total - idle) / CLOCK_TICKS, total: total / CLOCK_TICKS };
}

/**
 * CPU of some processes over a window, and of everything else on the machine (other users'
 * work makes figures noisy; the report shows how busy the machine was besides the benchmark).
 */
export class CpuWindow {
  readonly #pids: Map<string, number>;
  readonly #start: Map<string, number>;
  readonly #machine = machineCpu();
  readonly #t0 = performance.now();

  constructor(pids: Record<string, number>) {
    this.#pids = new Map(Object.entries(pids));
    this.#start = new Map([...this.#pids].map(([name, pid]) => [name, cpuSeconds(pid)]));
  }

  /** CPU seconds per process since the start, the wall time, and the rest of the machine's CPU. */
  end(): { seconds: number; cpu: Record<string, number>; otherCores: number } {
    const seconds = (performance.now() - this.#t0) / 1000;
    const cpu: Record<string, number> = {};
    let ours = 0;
    for (const [name, pid] of this.#pids) {
      cpu[name] = cpuSeconds(pid) - (this.#start.get(name) ?? 0);
      ours += cpu[name];
    }
    const machine = machineCpu();
    const busy = machine.busy - this.#machine.busy;
    return { seconds, cpu, otherCores: Math.max(0, busy - ours) / seconds };
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
