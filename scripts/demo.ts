/**
 * `npm run demo`: the probe's main job, end to end on one machine. Starts the local mytoken dev
 * server, mints a rotating mytoken through its real OIDC flow into a 0600 token file in a fresh
 * state folder, renders
 * `examples/probe/demo.yml` (one passing and one failing check) next to it, and runs
 * `mytoken-probe` on it with metrics at http://127.0.0.1:9464/metrics. Ctrl-C stops the probe (it
 * finishes any exchange of the mytoken first), then the dev server, and removes the state folder.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { mint, startDevServer, type DevServer } from '../devserver/index.ts';

const ROOT = resolve(import.meta.dirname, '..');
const TEMPLATE = join(ROOT, 'examples/probe/demo.yml');
const BIN = join(ROOT, 'bin/mytoken-probe.js');

const HELP = `Usage: npm run demo [-- --listen HOST:PORT] [--at-lifetime SECONDS]

Runs the probe against a local mytoken dev server with examples/probe/demo.yml.
  --listen HOST:PORT       where the probe serves /metrics (default 127.0.0.1:9464)
  --at-lifetime SECONDS    lifetime of the dev server's access tokens (default 600)
`;

interface Options {
  listen: string | undefined;
  atLifetime: number;
}

function options(): Options | undefined {
  const { values } = parseArgs({
    options: {
      listen: { type: 'string' },
      'at-lifetime': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) return undefined;
  const atLifetime = Number(values['at-lifetime'] ?? 600);
  if (!Number.isSafeInteger(atLifetime) || atLifetime <= 0) {
    throw new Error('--at-lifetime must be a positive number of seconds');
  }
  return { listen: values.listen, atLifetime };
}

async function prepare(
  dev: DevServer,
): Promise<{ dir: string; configFile: string; tokenFile: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'mytoken-probe-demo-'));
  await chmod(dir, 0o700);
  const token = await mint({
    server: dev.urls.mytoken_server,
    rotation: ['on_AT'],
    name: 'mytoken-probe demo',
  });
  const tokenFile = join(dir, 'mytoken');
  await writeFile(tokenFile, `${token}\n`, { mode: 0o600 });
  const template = await readFile(TEMPLATE, 'utf8');
  const configFile = join(dir, 'probe.yml');
  await writeFile(
    configFile,
    template
      .replaceAll('{{mytoken_server}}', dev.urls.mytoken_server)
      .replaceAll('{{resource}}', dev.urls.resource),
  );
  return { dir, configFile, tokenFile };
}

/**
 * Starts the probe in its own process group, so that Ctrl-C reaches it once, through this script.
 */
function startProbe(configFile: string, listen: string | undefined): ChildProcess {
  const args = [BIN, '--config', configFile, ...(listen === undefined ? [] : ['--listen', listen])];
  const child = spawn(process.execPath, args, {
    stdio: ['ignore', 'inherit', 'pipe'],
    detached: true,
  });
  process.on('exit', () => child.kill('SIGTERM'));
  return child;
}

/** Passes the probe's log through and resolves with its address once it has started. */
function started(child: ChildProcess): Promise<string | undefined> {
  return new Promise((resolve) => {
    createInterface({ input: child.stderr! }).on('line', (line) => {
      process.stderr.write(`${line}\n`);
      const entry = parseLine(line);
      if (entry?.msg === 'Probe started') resolve(String(entry.address));
    });
    child.once('exit', () => resolve(undefined));
  });
}

function parseLine(line: string): Record<string, unknown> | undefined {
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

function banner(
  address: string,
  dev: DevServer,
  files: { configFile: string; tokenFile: string },
): string {
  const base = `http://${address}`;
  return `
mytoken probe demo is running
  metrics:         ${base}/metrics
  status:          ${base}/status
  config:          ${files.configFile} (from examples/probe/demo.yml)
  token file:      ${files.tokenFile} (0600, rewritten at every rotation)
  mytoken server:  ${dev.urls.mytoken_server} (local dev server)

Try:  curl -s ${base}/metrics | grep -E '^mytoken_probe_(check_success|token_requests_total|mytoken_rotations_total)'
Press Ctrl-C to stop.

`;
}

async function main(): Promise<number> {
  const opts = options();
  if (opts === undefined) {
    process.stdout.write(HELP);
    return 0;
  }
  const dev = await startDevServer({ port: 0, atLifetime: opts.atLifetime });
  const files = await prepare(dev);
  const child = startProbe(files.configFile, opts.listen);
  const exited = once(child, 'exit');
  const stop = () => child.kill('SIGTERM');
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);

  const address = await started(child);
  if (address !== undefined) process.stdout.write(banner(address, dev, files));
  else
    process.stderr.write(
      'mytoken-probe did not start; is port 9464 taken? Try: npm run demo -- --listen 127.0.0.1:9465\n',
    );
  const [code] = (await exited) as [number | null];
  await dev.close();
  await rm(files.dir, { recursive: true, force: true });
  process.stdout.write('demo stopped\n');
  return address === undefined ? 1 : (code ?? 1);
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`demo: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  },
);
