import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { accessToken } from './helpers.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const BIN = join(ROOT, 'bin/mytoken-dev-server.js');
// Node 24 from the dev dependencies: the CLI runs TypeScript sources directly.
const NODE = join(ROOT, 'node_modules/.bin/node');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(args: string[]): Promise<Run> {
  return new Promise((done, fail) => {
    const child = spawn(NODE, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    child.on('error', fail);
    child.on('close', (code) => done({ code, stdout, stderr }));
  });
}

async function startServer(args: string[] = []) {
  const child = spawn(NODE, [BIN, '--port', '0', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines = createInterface({ input: child.stdout });
  const [line] = (await once(lines, 'line')) as [string];
  return { child, urls: JSON.parse(line) as Record<string, string> };
}

async function stop(child: ChildProcess): Promise<number | null> {
  const closed = once(child, 'close');
  child.kill('SIGTERM');
  const [code] = (await closed) as [number | null];
  return code;
}

describe('mytoken-dev-server CLI', () => {
  let server: Awaited<ReturnType<typeof startServer>>;

  beforeAll(async () => {
    server = await startServer();
  });

  afterAll(async () => {
    if (server.child.exitCode === null) await stop(server.child);
  });

  it('prints one JSON line with the three URLs when ready', async () => {
    const { urls } = server;
    const res = await fetch(`${urls.mytoken_server}/.well-known/mytoken-configuration`);

    expect(Object.keys(urls).sort()).toEqual(['mytoken_server', 'oidc_issuer', 'resource']);
    expect(urls.oidc_issuer).toBe(`${urls.mytoken_server}/oidc`);
    expect(urls.resource).toBe(`${urls.mytoken_server}/resource`);
    expect(res.status).toBe(200);
  });

  it('mint prints only the token', async () => {
    const { mytoken_server: S } = server.urls as { mytoken_server: string };
    const jwt = await run(['mint', '--server', S, '--capabilities', 'AT', '--rotation', 'on_AT']);
    const short = await run(['mint', '--server', S, '--short', '--exp', '+7d', '--usages-at', '3']);

    expect(jwt.code).toBe(0);
    expect(jwt.stdout).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+\n$/);
    expect(short.stdout).toMatch(/^[A-Za-z]{64}\n$/);
    expect((await accessToken(S, jwt.stdout.trim())).json?.token_update).toBeTruthy();
  });

  it('rejects bad flags with one line and exit code 2', async () => {
    const unknown = await run(['--bogus']);
    const badPort = await run(['--port', 'abc']);
    const noServer = await run(['mint']);

    for (const r of [unknown, badPort, noServer]) {
      expect(r.code).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
  });

  it('prints help for both commands', async () => {
    expect((await run(['--help'])).stdout).toMatch(/^Usage: mytoken-dev-server/);
    expect((await run(['mint', '--help'])).stdout).toMatch(/^Usage: mytoken-dev-server mint/);
  });

  it('stops cleanly on SIGTERM', async () => {
    expect(await stop(server.child)).toBe(0);
  });
});

describe('state file', () => {
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mytoken-dev-'));
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('keeps tokens across a restart on the same port', async () => {
    const file = join(dir, 'state.json');
    const first = await startServer(['--state', file]);
    const S = first.urls.mytoken_server as string;
    const port = new URL(S).port;
    const token = (await run(['mint', '--server', S])).stdout.trim();
    await stop(first.child);

    const second = await startServer(['--state', file, '--port', port]);
    const res = await accessToken(S, token);
    await stop(second.child);

    expect(res.status).toBe(200);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
  });
});
