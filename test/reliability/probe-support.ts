/**
 * Shared setup for the probe's reliability tests: a dev server (with a state file, so that it can
 * be stopped and started again on the same port without losing its tokens), a minted mytoken in a
 * 0600 token file, a loopback target that records every access token it is shown, and canaries
 * over everything the probe lets a reader see.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mint, startDevServer, type DevServer, type MintOptions } from '../../devserver/index.ts';
import { Canaries, assertNoCanaries } from '../support/canary.ts';

export interface ProbeBed {
  dev: DevServer;
  dir: string;
  tokenFile: string;
  configFile: string;
  minted: string;
  target: RecordingTarget;
  /** Every token seen so far: the minted one, each one read from the token file, every AT. */
  canaries: Canaries;
  /** Writes a config with one check (or `checks`) against the target; `mytoken` keys may be added. */
  writeConfig(options?: { mytoken?: string; checks?: string; extra?: string }): Promise<void>;
  /** Stops the dev server (its state is kept in the state file). */
  stopServer(): Promise<void>;
  /** Starts the dev server again on the same port, with the same state. */
  startServer(): Promise<void>;
  /** The token file's content (trimmed), added to the canaries. */
  readToken(): Promise<string>;
  close(): Promise<void>;
}

export async function probeBed(
  options: { atLifetime?: number; mint?: Omit<MintOptions, 'server'> } = {},
): Promise<ProbeBed> {
  const dir = await mkdtemp(join(tmpdir(), 'probe-rel-'));
  const stateFile = join(dir, 'dev-state.json');
  const atLifetime = options.atLifetime ?? 3600;
  let dev = await startDevServer({ port: 0, atLifetime, stateFile });
  const port = dev.port;
  const server = dev.urls.mytoken_server;
  const minted = await mint({ server, rotation: ['on_AT'], ...options.mint });
  const tokenFile = join(dir, 'mytoken');
  await writeFile(tokenFile, `${minted}\n`, { mode: 0o600 });
  await chmod(tokenFile, 0o600);
  const configFile = join(dir, 'probe.yml');
  const target = await recordingTarget();
  const canaries = new Canaries().add('minted mytoken', minted);
  target.onToken = (token) => canaries.add('access token', token);
  let running = true;
  return {
    get dev() {
      return dev;
    },
    dir,
    tokenFile,
    configFile,
    minted,
    target,
    canaries,
    writeConfig: (o = {}) =>
      writeFile(
        configFile,
        [
          'mytoken:',
          `  server: ${server}`,
          '  token_file: mytoken',
          ...(o.mytoken === undefined ? [] : [o.mytoken]),
          'listen: 127.0.0.1:0',
          ...(o.extra === undefined ? [] : [o.extra]),
          'checks:',
          o.checks ?? `  - { name: c, url: "${target.url}", interval: 100ms }`,
          '',
        ].join('\n'),
      ),
    stopServer: async () => {
      running = false;
      await dev.close();
    },
    startServer: async () => {
      dev = await startDevServer({ port, atLifetime, stateFile });
      running = true;
    },
    readToken: async () => {
      const token = (await readFile(tokenFile, 'utf8')).trim();
      canaries.add('stored mytoken', token);
      return token;
    },
    close: async () => {
      if (running) await dev.close();
      await target.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface RecordingTarget {
  url: string;
  tokens: string[];
  onToken: (token: string) => void;
  close(): Promise<void>;
}

/** A loopback service that accepts any bearer token and records it. */
export async function recordingTarget(): Promise<RecordingTarget> {
  const target: RecordingTarget = {
    url: '',
    tokens: [],
    onToken: () => undefined,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
  const server: Server = createServer((req, res) => {
    const token = (req.headers.authorization ?? '').replace(/^Bearer /, '');
    target.tokens.push(token);
    target.onToken(token);
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
  });
  server.keepAliveTimeout = 500;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  target.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/health`;
  const close = target.close;
  target.close = () => {
    server.closeAllConnections();
    return close();
  };
  return target;
}

/** Asserts that no canary appears in the probe's logs, `/metrics`, `/status` or other text. */
export function expectNoTokens(canaries: Canaries, surfaces: Record<string, string>): void {
  assertNoCanaries(canaries, surfaces);
}
