// Shared setup for the probe tests: a dev server with a minted mytoken in a 0600 token file, a
// config written next to it, the probe run in-process or as a child through its bin, and readers
// for /metrics and the JSON log.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { mint, startDevServer, type DevServer, type MintOptions } from '../../devserver/index.ts';
import { createLogger, SecretScrubber } from '../../probe/log.ts';
import { ProbeService } from '../../probe/service.ts';

export const ROOT = resolve(import.meta.dirname, '../..');
export const BIN = join(ROOT, 'bin/mytoken-probe.js');
// Node 24 from the dev dependencies: the bin runs TypeScript sources directly.
export const NODE = join(ROOT, 'node_modules/.bin/node');

export interface Workspace {
  dev: DevServer;
  dir: string;
  tokenFile: string;
  configFile: string;
  /** The token as minted (sequence 1 of a rotating chain). */
  minted: string;
  /**
   * Writes the config file: the `mytoken` block and `listen` are filled in, `body` is the rest
   * (checks…).
   */
  writeConfig(body: string): Promise<void>;
  close(): Promise<void>;
}

export async function workspace(
  options: { atLifetime?: number; mint?: Omit<MintOptions, 'server'> } = {},
): Promise<Workspace> {
  const dev = await startDevServer({ port: 0, atLifetime: options.atLifetime ?? 3600 });
  const minted = await mint({
    server: dev.urls.mytoken_server,
    rotation: ['on_AT'],
    ...options.mint,
  });
  const dir = await mkdtemp(join(tmpdir(), 'probe-test-'));
  const tokenFile = join(dir, 'mytoken');
  await writeFile(tokenFile, `${minted}\n`, { mode: 0o600 });
  await chmod(tokenFile, 0o600);
  const configFile = join(dir, 'probe.yml');
  return {
    dev,
    dir,
    tokenFile,
    configFile,
    minted,
    writeConfig: (body) =>
      writeFile(
        configFile,
        `mytoken:\n  server: ${dev.urls.mytoken_server}\n  token_file: mytoken\nlisten: 127.0.0.1:0\n${body}`,
      ),
    close: async () => {
      await dev.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A check block in YAML (two-space indented under `checks:`). */
export function check(
  fields: Record<string, string | number | undefined>,
  expect?: string,
): string {
  const lines = Object.entries(fields)
    .filter(([, v]) => v !== undefined)
    .map(
      ([k, v], i) =>
        `${i === 0 ? '  - ' : '    '}${k}: ${typeof v === 'string' ? JSON.stringify(v) : v}`,
    );
  if (expect !== undefined) lines.push(`    expect:\n${indent(expect, 6)}`);
  return `${lines.join('\n')}\n`;
}

function indent(text: string, n: number): string {
  return text
    .trim()
    .split('\n')
    .map((l) => `${' '.repeat(n)}${l}`)
    .join('\n');
}

export interface InProcessProbe {
  service: ProbeService;
  base: string;
  logs: string[];
  close(): Promise<void>;
}

/** Starts the probe in this process, logging (at debug level) into `logs`. */
export async function startProbe(configFile: string): Promise<InProcessProbe> {
  const logs: string[] = [];
  const scrubber = new SecretScrubber();
  const logger = createLogger({ level: 'debug', scrubber, write: (line) => logs.push(line) });
  const service = await ProbeService.start({
    configFile,
    logger,
    scrubber,
    version: 'test',
    tokenBackoffMs: { min: 100, max: 500 },
  });
  return {
    service,
    base: `http://127.0.0.1:${service.address.port}`,
    logs,
    close: () => service.close(),
  };
}

export interface ChildProbe {
  child: ChildProcess;
  base: string;
  /** Every JSON log line so far, parsed. */
  logs: Record<string, unknown>[];
  exited: Promise<number | null>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Runs `mytoken-probe --config FILE` as a child and waits for its "Probe started" line. */
export async function spawnProbe(configFile: string, extra: string[] = []): Promise<ChildProbe> {
  const child = spawn(NODE, [BIN, '--config', configFile, ...extra], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Record<string, unknown>[] = [];
  const exited = once(child, 'close').then(([code]) => code as number | null);
  createInterface({ input: child.stderr! }).on('line', (line) => {
    try {
      logs.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      logs.push({ msg: line });
    }
  });
  const started = await Promise.race([
    waitFor(async () => logs.find((l) => l.msg === 'Probe started'), 20_000),
    exited.then((code) => {
      throw new Error(`probe exited (${code}) before starting: ${JSON.stringify(logs)}`);
    }),
  ]);
  return {
    child,
    base: `http://${String(started.address)}`,
    logs,
    exited,
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

export interface CommandResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the bin to completion. */
export function runBin(args: string[]): Promise<CommandResult> {
  return new Promise((done, fail) => {
    const child = spawn(NODE, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', fail);
    child.on('close', (code) => done({ code, stdout, stderr }));
  });
}

/**
 * Samples of an exposition text by `name{labels}` exactly as written, e.g.
 * `x{check="a",result="success"}`.
 */
export type Samples = Map<string, number>;

export async function scrape(base: string): Promise<Samples> {
  return parseMetrics(await (await fetch(`${base}/metrics`)).text());
}

export function parseMetrics(text: string): Samples {
  const out: Samples = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const cut = line.lastIndexOf(' ');
    out.set(line.slice(0, cut), Number(line.slice(cut + 1)));
  }
  return out;
}

/** Polls `probe` until it returns something other than undefined (or false). */
export async function waitFor<T>(
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 15_000,
  what = 'condition',
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`${what} not reached in ${timeoutMs} ms`);
    await sleep(50);
  }
}

export async function readToken(file: string): Promise<string> {
  return (await readFile(file, 'utf8')).trim();
}
