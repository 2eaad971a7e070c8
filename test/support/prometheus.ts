// Test harness around Debian's Prometheus 2.42 and promtool (fetched by `npm run tools`).
//
// `startPrometheus()` runs a real server on a free loopback port with throwaway storage, scraping
// the given targets and evaluating the given rule files every second. The promtool helpers lint
// exposition text and check or unit-test rule files.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseDocument } from 'yaml';
import { prometheusPath, promtoolPath, requireTool } from './tools.ts';

export type PrometheusErrorCode =
  | 'ERR_PROMETHEUS_START_FAILED'
  | 'ERR_PROMETHEUS_QUERY_FAILED'
  | 'ERR_PROMETHEUS_WAIT_TIMEOUT'
  | 'ERR_PROMETHEUS_PROMTOOL_FAILED';

/** Raised by the Prometheus test harness. */
export class PrometheusError extends Error {
  readonly code: PrometheusErrorCode;

  constructor(code: PrometheusErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'PrometheusError';
    this.code = code;
  }
}

export interface PrometheusOptions {
  /** `host:port` of each target to scrape, all in one job. */
  targets: string[];
  /** Job name; the example rules select `job="mytoken-probe"`, the default. */
  jobName?: string;
  /** Path scraped on each target, `/metrics` by default. */
  metricsPath?: string;
  /** Rule files to load (absolute, or relative to the working directory). */
  ruleFiles?: string[];
  /**
   * Replaces the `for:` of alerting rules in copies of the rule files: one duration for every
   * alert, or durations by alert name (alerts not named keep theirs).
   */
  forDurations?: string | Record<string, string>;
  /** How long to wait for the server to become ready, 15 s by default. */
  startTimeoutMs?: number;
}

export type AlertState = 'pending' | 'firing';

/** An alert as reported by `/api/v1/alerts`. */
export interface Alert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  state: AlertState;
  activeAt: string;
  value: string;
}

/** One element of an instant-query result (a scalar result gives one sample without labels). */
export interface Sample {
  metric: Record<string, string>;
  value: number;
}

export interface PromtoolResult {
  ok: boolean;
  exitCode: number;
  output: string;
}

const POLL_MS = 200;
const LOG_LINES_KEPT = 200;

// Prometheus children still running, killed from the 'exit' hook if a test forgets to stop them.
const running = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const child of running) child.kill('SIGKILL');
  });
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((done, fail) => {
    server.once('error', fail);
    server.listen(0, '127.0.0.1', done);
  });
  const address = server.address();
  await new Promise((done) => server.close(done));
  if (address === null || typeof address === 'string') throw new Error('no port from listen(0)');
  return address.port;
}

// A SIGKILLed test worker runs no 'exit' hook. This shell child holds the read end of a pipe
// from the worker; when the worker dies the pipe closes, `read` returns, and the shell kills
// Prometheus and deletes its storage.
function startWatchdog(pid: number, dir: string): ChildProcess {
  const script = 'read -r _ignored; kill -KILL "$1" 2>/dev/null; rm -rf "$2"';
  const watchdog = spawn('sh', ['-c', script, 'sh', `${pid}`, dir], {
    stdio: ['pipe', 'ignore', 'ignore'],
  });
  watchdog.unref();
  (watchdog.stdin as Socket | null)?.unref();
  return watchdog;
}

function parseValue(text: string): number {
  if (text === '+Inf') return Infinity;
  if (text === '-Inf') return -Infinity;
  return Number(text);
}

async function rewriteFor(
  file: string,
  index: number,
  dir: string,
  durations: string | Record<string, string>,
): Promise<string> {
  const doc = parseDocument(await readFile(file, 'utf8'));
  const groups = (doc.toJS() as { groups?: { rules?: { alert?: string }[] }[] }).groups ?? [];
  groups.forEach((group, g) => {
    (group.rules ?? []).forEach((rule, r) => {
      if (rule.alert === undefined) return;
      const value = typeof durations === 'string' ? durations : durations[rule.alert];
      if (value !== undefined) doc.setIn(['groups', g, 'rules', r, 'for'], value);
    });
  });
  const copy = join(dir, `${index}-${basename(file)}`);
  await writeFile(copy, doc.toString());
  return copy;
}

/** A running Prometheus server; create one with {@link startPrometheus}. */
export class PrometheusServer {
  readonly url: string;
  readonly port: number;
  readonly dir: string;
  readonly pid: number | undefined;
  #child: ChildProcess;
  #log: string[];
  #exited: Promise<void>;
  #gone = false;

  constructor(port: number, dir: string, child: ChildProcess, log: string[]) {
    this.port = port;
    this.url = `http://127.0.0.1:${port}`;
    this.dir = dir;
    this.pid = child.pid;
    this.#child = child;
    this.#log = log;
    this.#exited = new Promise((done) => {
      const gone = () => {
        this.#gone = true;
        done();
      };
      if (child.exitCode !== null || child.signalCode !== null) gone();
      child.once('exit', gone);
      child.once('error', (err) => {
        log.push(`spawn failed: ${err.message}`);
        gone();
      });
    });
    // No pid means the spawn failed; a watchdog given pid 0 would kill our own process group.
    const watchdog = child.pid === undefined ? undefined : startWatchdog(child.pid, dir);
    void this.#exited.then(() => {
      running.delete(child);
      watchdog?.kill('SIGKILL');
    });
  }

  /** True until the process has exited. */
  get alive(): boolean {
    return !this.#gone;
  }

  /** The last lines Prometheus logged (it logs no secrets of ours: there are none in its config). */
  logs(): string {
    return this.#log.join('\n');
  }

  async #api<T>(path: string): Promise<T> {
    let body: { status: string; data?: T; error?: string };
    try {
      const response = await fetch(`${this.url}${path}`);
      body = (await response.json()) as typeof body;
    } catch (err) {
      throw new PrometheusError('ERR_PROMETHEUS_QUERY_FAILED', `request to ${path} failed`, {
        cause: err,
      });
    }
    if (body.status !== 'success' || body.data === undefined) {
      throw new PrometheusError('ERR_PROMETHEUS_QUERY_FAILED', `prometheus said: ${body.error}`);
    }
    return body.data;
  }

  /** Runs an instant query and returns its samples (empty when nothing matches). */
  async query(expr: string): Promise<Sample[]> {
    type Result = { metric: Record<string, string>; value: [number, string] };
    const data = await this.#api<{ resultType: string; result: Result[] | [number, string] }>(
      `/api/v1/query?query=${encodeURIComponent(expr)}`,
    );
    if (data.resultType === 'scalar') {
      const [, value] = data.result as [number, string];
      return [{ metric: {}, value: parseValue(value) }];
    }
    return (data.result as Result[]).map((r) => ({
      metric: r.metric,
      value: parseValue(r.value[1]),
    }));
  }

  /** Pending and firing alerts. */
  async alerts(): Promise<Alert[]> {
    return (await this.#api<{ alerts: Alert[] }>('/api/v1/alerts')).alerts;
  }

  /** Polls until `check` returns a value other than undefined, or throws after `timeoutMs`. */
  async #poll<T>(what: string, timeoutMs: number, check: () => Promise<T | undefined>): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = await check();
      if (value !== undefined) return value;
      if (!this.alive) {
        throw new PrometheusError(
          'ERR_PROMETHEUS_QUERY_FAILED',
          `prometheus exited waiting for ${what}`,
        );
      }
      if (Date.now() >= deadline) {
        throw new PrometheusError(
          'ERR_PROMETHEUS_WAIT_TIMEOUT',
          `${what} not seen in ${timeoutMs} ms`,
        );
      }
      await sleep(POLL_MS);
    }
  }

  /**
   * Waits until alert `name` is in `state` (and has the given labels) and returns it.
   *
   * @example
   * const alert = await prometheus.waitForAlert('MytokenProbeCheckFailing', 'firing', 15_000);
   */
  waitForAlert(
    name: string,
    state: AlertState = 'firing',
    timeoutMs = 15_000,
    labels: Record<string, string> = {},
  ): Promise<Alert> {
    const wanted = { ...labels, alertname: name };
    return this.#poll(`alert ${name} ${state}`, timeoutMs, async () =>
      (await this.alerts()).find(
        (a) => a.state === state && Object.entries(wanted).every(([k, v]) => a.labels[k] === v),
      ),
    );
  }

  /** Waits until `expr` returns at least one sample, e.g. `up{job="mytoken-probe"} == 1`. */
  waitForQuery(expr: string, timeoutMs = 15_000): Promise<Sample[]> {
    return this.#poll(`query ${expr}`, timeoutMs, async () => {
      const samples = await this.query(expr);
      return samples.length > 0 ? samples : undefined;
    });
  }

  /** Ends the process (SIGTERM, then SIGKILL after `graceMs`) but keeps its storage. */
  async kill(graceMs = 5_000): Promise<void> {
    if (this.alive) {
      this.#child.kill(graceMs > 0 ? 'SIGTERM' : 'SIGKILL');
      const killer = setTimeout(() => this.#child.kill('SIGKILL'), graceMs);
      await this.#exited;
      clearTimeout(killer);
    }
  }

  /** Stops Prometheus and deletes its storage. Idempotent. */
  async stop(): Promise<void> {
    await this.kill();
    await rm(this.dir, { recursive: true, force: true });
  }
}

function collectLog(child: ChildProcess): string[] {
  const lines: string[] = [];
  const append = (chunk: Buffer) => {
    lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
    lines.splice(0, Math.max(0, lines.length - LOG_LINES_KEPT));
  };
  child.stdout?.on('data', append);
  child.stderr?.on('data', append);
  return lines;
}

async function writeConfig(dir: string, options: PrometheusOptions): Promise<string> {
  const sources = (options.ruleFiles ?? []).map((f) => resolve(f));
  const durations = options.forDurations;
  const ruleFiles =
    durations === undefined
      ? sources
      : await Promise.all(sources.map((f, i) => rewriteFor(f, i, dir, durations)));
  const config = {
    global: { scrape_interval: '1s', scrape_timeout: '1s', evaluation_interval: '1s' },
    rule_files: ruleFiles,
    scrape_configs: [
      {
        job_name: options.jobName ?? 'mytoken-probe',
        metrics_path: options.metricsPath ?? '/metrics',
        static_configs: [{ targets: options.targets }],
      },
    ],
  };
  // JSON is valid YAML, and Prometheus reads its config as YAML.
  const file = join(dir, 'prometheus.yml');
  await writeFile(file, JSON.stringify(config, null, 2));
  return file;
}

function spawnPrometheus(dir: string, configFile: string, port: number): ChildProcess {
  const args = [
    `--config.file=${configFile}`,
    `--web.listen-address=127.0.0.1:${port}`,
    `--storage.tsdb.path=${join(dir, 'data')}`,
    // The Debian defaults point at /etc and /usr/share, which are absent: nothing is installed.
    `--web.console.templates=${dir}`,
    `--web.console.libraries=${dir}`,
    `--web.local-assets=${dir}`,
    '--storage.tsdb.retention.time=1h',
    '--log.level=info',
  ];
  const child = spawn(requireTool(prometheusPath), args, { stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  installExitHook();
  return child;
}

async function waitUntilReady(server: PrometheusServer, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (server.alive && Date.now() < deadline) {
    const ready = await fetch(`${server.url}/-/ready`).then(
      (r) => r.ok,
      () => false,
    );
    if (ready) return;
    await sleep(50);
  }
  const why = server.alive ? `not ready in ${timeoutMs} ms` : 'exited during startup';
  throw new PrometheusError('ERR_PROMETHEUS_START_FAILED', `prometheus ${why}\n${server.logs()}`);
}

/**
 * Starts Prometheus on a free loopback port, scraping `targets` and evaluating rules every second.
 * Always `stop()` it (an 'exit' hook and a watchdog kill it if a test does not).
 *
 * @example
 * const prometheus = await startPrometheus({ targets: ['127.0.0.1:9464'], ruleFiles: [rules] });
 * await prometheus.waitForAlert('MytokenProbeCheckFailing');
 * await prometheus.stop();
 */
export async function startPrometheus(options: PrometheusOptions): Promise<PrometheusServer> {
  const dir = await mkdtemp(join(tmpdir(), 'prometheus-harness-'));
  try {
    const configFile = await writeConfig(dir, options);
    // The port is free when probed but could be taken before Prometheus binds it: retry then.
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      const child = spawnPrometheus(dir, configFile, port);
      const server = new PrometheusServer(port, dir, child, collectLog(child));
      try {
        await waitUntilReady(server, options.startTimeoutMs ?? 15_000);
        return server;
      } catch (err) {
        await server.kill(0);
        if (attempt >= 3 || !server.logs().includes('address already in use')) throw err;
      }
    }
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

function runPromtool(args: string[], input?: string): Promise<PromtoolResult> {
  const child = spawn(requireTool(promtoolPath), args, { stdio: ['pipe', 'pipe', 'pipe'] });
  const chunks: Buffer[] = [];
  child.stdout.on('data', (c: Buffer) => chunks.push(c));
  child.stderr.on('data', (c: Buffer) => chunks.push(c));
  child.stdin.end(input ?? '');
  return new Promise((done, fail) => {
    child.once('error', (err) =>
      fail(
        new PrometheusError('ERR_PROMETHEUS_PROMTOOL_FAILED', 'promtool did not run', {
          cause: err,
        }),
      ),
    );
    child.once('close', (code) => {
      const exitCode = code ?? -1;
      done({ ok: exitCode === 0, exitCode, output: Buffer.concat(chunks).toString('utf8') });
    });
  });
}

/**
 * Lints exposition text with `promtool check metrics` and returns the problems it reports
 * (empty when the text is clean). Parse errors are reported as problems too.
 */
export async function checkMetrics(text: string): Promise<string[]> {
  const result = await runPromtool(['check', 'metrics'], text);
  // 0: clean, 3: lint problems, 1: unparsable input. Anything else means promtool itself failed.
  if (![0, 1, 3].includes(result.exitCode)) {
    throw new PrometheusError(
      'ERR_PROMETHEUS_PROMTOOL_FAILED',
      `promtool exited ${result.exitCode}`,
    );
  }
  return result.output.split('\n').filter((line) => line.trim() !== '');
}

/** Runs `promtool check rules` (syntax and PromQL) on rule files. */
export function checkRules(...files: string[]): Promise<PromtoolResult> {
  return runPromtool(['check', 'rules', ...files]);
}

/** Runs `promtool test rules` on rule unit-test files. */
export function testRules(...files: string[]): Promise<PromtoolResult> {
  return runPromtool(['test', 'rules', ...files]);
}

/** Runs `promtool check config` on a Prometheus configuration (and the rule files it names). */
export function checkConfig(file: string): Promise<PromtoolResult> {
  return runPromtool(['check', 'config', file]);
}
