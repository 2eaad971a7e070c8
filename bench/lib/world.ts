/**
 * The fixed parts every benchmark uses: the dev server (mytoken API and OpenID provider) and the
 * target, each in a process of its own so that their CPU is never counted as the prober's, and
 * helpers to mint mytokens, get access tokens and read the counters.
 */
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

import { mint, type MintOptions, type StatsSnapshot } from '../../devserver/index.ts';
import { BenchError } from './errors.ts';
import { start, type Proc } from './procs.ts';

export const ROOT = resolve(import.meta.dirname, '../..');
/** Node 24 from the dev dependencies (the sources are TypeScript run by type stripping). */
export const NODE = join(ROOT, 'node_modules/.bin/node');

const READY_MS = 30_000;

export interface World {
  /** Scratch folder, removed by `close`. */
  tmp: string;
  dev: Proc;
  server: string;
  opIssuer: string;
  /** The demo resource URL: the audience of the OP's access tokens. */
  audience: string;
  target: Proc;
  /** `http://127.0.0.1:PORT/health` of the benchmark target. */
  targetUrl: string;
  devStats(): Promise<StatsSnapshot>;
  /** Requests the target answered so far, by status. */
  targetStats(): Promise<Record<string, number>>;
  setAtLifetime(seconds: number): Promise<void>;
  mint(opts?: Omit<MintOptions, 'server'>): Promise<string>;
  /** One access token for the load generator (never logged). */
  accessToken(mytoken: string): Promise<string>;
  /** Writes a 0600 token file in a fresh folder under `tmp` and returns the folder. */
  tokenDir(mytoken: string): Promise<string>;
  close(): Promise<void>;
}

export async function startWorld(): Promise<World> {
  const tmp = await mkdtemp(join(tmpdir(), 'mytoken-bench-'));
  const dev = start('dev server', NODE, [join(ROOT, 'bin/mytoken-dev-server.js'), '--port', '0']);
  const urls = await dev.waitFor(jsonLine<{ mytoken_server: string; resource: string }>, READY_MS);
  const opIssuer = `${urls.mytoken_server}/oidc`;
  const target = start('target', NODE, [
    join(ROOT, 'bench/target.ts'),
    '--issuer',
    opIssuer,
    '--audience',
    urls.resource,
  ]);
  const { url } = await target.waitFor(jsonLine<{ url: string }>, READY_MS);
  const server = urls.mytoken_server;
  let dirs = 0;
  return {
    tmp,
    dev,
    server,
    opIssuer,
    audience: urls.resource,
    target,
    targetUrl: `${url}/health`,
    devStats: async () => (await getJson(`${server}/_dev/stats`)) as unknown as StatsSnapshot,
    targetStats: async () => (await getJson(`${url}/_stats`)) as Record<string, number>,
    setAtLifetime: async (seconds) => {
      await postJson(`${server}/_dev/config`, { at_lifetime: seconds });
    },
    mint: (opts = {}) => mint({ server, ...opts }),
    accessToken: async (mytoken) => {
      const body = await postJson(`${server}/api/v0/token/access`, {
        grant_type: 'mytoken',
        mytoken,
      });
      return String(body.access_token);
    },
    tokenDir: async (mytoken) => {
      const dir = join(tmp, `probe-${++dirs}`);
      await mkdir(dir, { mode: 0o700 });
      const file = join(dir, 'mytoken');
      await writeFile(file, `${mytoken}\n`, { mode: 0o600 });
      await chmod(file, 0o600);
      return dir;
    },
    close: async () => {
      await Promise.allSettled([dev.stop(), target.stop()]);
      await rm(tmp, { recursive: true, force: true });
    },
  };
}

/** Parses a line that is a JSON object, or returns undefined. */
export function jsonLine<T>(line: string): T | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    return JSON.parse(line) as T;
  } catch {
    return undefined;
  }
}

export async function getJson(url: string): Promise<Record<string, unknown>> {
  const res = await fetch(url);
  if (!res.ok) throw new BenchError('ERR_BENCH_HTTP', `GET ${pathOf(url)} answered ${res.status}`);
  return (await res.json()) as Record<string, unknown>;
}

export async function postJson(url: string, body: unknown): Promise<Record<string, unknown>> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (!res.ok) throw new BenchError('ERR_BENCH_HTTP', `POST ${pathOf(url)} answered ${res.status}`);
  return (await res.json()) as Record<string, unknown>;
}

// URLs in messages without query strings, which could carry secrets.
function pathOf(url: string): string {
  const u = new URL(url);
  return u.pathname;
}
