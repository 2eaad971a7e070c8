// Command line of the dev server: `mytoken-dev-server [serve flags]` and `mytoken-dev-server mint …`.
import { parseArgs } from 'node:util';

import { DevServerError } from './errors.ts';
import { stderrLogger } from './log.ts';
import { mint, type MintOptions } from './mint.ts';
import type { DevServerOptions } from './server.ts';

const NAME = 'mytoken-dev-server';

const SERVE_HELP = `Usage: ${NAME} [--host H] [--port P] [--at-lifetime S] [--state FILE]
       ${NAME} mint --server URL [options]   (see: ${NAME} mint --help)

Starts a local mytoken-compatible server with a real OpenID provider and a demo resource, and
prints one JSON line when ready: {"mytoken_server": …, "oidc_issuer": …, "resource": …}.

  --host H          interface to listen on (default 127.0.0.1)
  --port P          port, 0 = any free port (default 0)
  --at-lifetime S   lifetime of OP access tokens in seconds (default 3600)
  --state FILE      keep tokens in FILE (JSON, 0600) across restarts; use a fixed --port with it
  --help            this text
`;

const MINT_HELP = `Usage: ${NAME} mint --server URL [options]

Runs the OIDC authorization-code flow through the mytoken server with the dev user, and prints
only the new token on stdout.

  --server URL            mytoken server (the "mytoken_server" URL)
  --capabilities A,B      capabilities (server default: AT,tokeninfo)
  --rotation on_AT,on_other
  --lifetime S            rotation lifetime in seconds
  --auto-revoke           revoke the chain when a stale token is used
  --usages-at N           restriction: number of AT requests
  --scope S               restriction: scope (space-separated)
  --audience A            restriction: audience (comma-separated for several)
  --exp T                 restriction: expiry, Unix seconds or relative like +7d
  --name N                token name
  --short                 return a short token instead of a JWT
  --transfer-code         return a transfer code instead of a token
  --help                  this text
`;

/** Runs the CLI; resolves with the exit code (serve resolves only after a signal). */
export async function main(argv: string[]): Promise<number> {
  try {
    if (argv[0] === 'mint') return await mintCommand(argv.slice(1));
    return await serveCommand(argv);
  } catch (err) {
    const usage = err instanceof DevServerError && err.code === 'ERR_DEVSERVER_USAGE';
    process.stderr.write(`${NAME}: ${firstLine(err)}\n`);
    return usage ? 2 : 1;
  }
}

async function serveCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    host: { type: 'string' },
    port: { type: 'string' },
    'at-lifetime': { type: 'string' },
    state: { type: 'string' },
    help: { type: 'boolean' },
  });
  if (values.help) {
    await out(SERVE_HELP);
    return 0;
  }
  const opts: DevServerOptions = { log: stderrLogger };
  if (values.host !== undefined) opts.host = String(values.host);
  if (values.port !== undefined) opts.port = integer('--port', values.port, 0, 65535);
  if (values['at-lifetime'] !== undefined) {
    opts.atLifetime = integer('--at-lifetime', values['at-lifetime'], 1);
  }
  if (values.state !== undefined) opts.stateFile = String(values.state);

  // Loaded only here: the OP stack takes a while to import, and mint or a usage error need none
  // of it.
  const { startDevServer } = await import('./server.ts');
  const dev = await startDevServer(opts);
  await out(`${JSON.stringify(dev.urls)}\n`);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await dev.close();
  return 0;
}

async function mintCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    server: { type: 'string' },
    capabilities: { type: 'string' },
    rotation: { type: 'string' },
    lifetime: { type: 'string' },
    'auto-revoke': { type: 'boolean' },
    'usages-at': { type: 'string' },
    scope: { type: 'string' },
    audience: { type: 'string' },
    exp: { type: 'string' },
    name: { type: 'string' },
    short: { type: 'boolean' },
    'transfer-code': { type: 'boolean' },
    help: { type: 'boolean' },
  });
  if (values.help) {
    await out(MINT_HELP);
    return 0;
  }
  const token = await mint(mintOptions(values));
  await out(`${token}\n`);
  return 0;
}

function mintOptions(values: Record<string, string | boolean | undefined>): MintOptions {
  if (typeof values.server !== 'string' || !URL.canParse(values.server)) {
    throw usage('mint needs --server URL');
  }
  if (values.short && values['transfer-code'])
    throw usage('--short and --transfer-code exclude each other');
  const opts: MintOptions = { server: values.server };
  if (typeof values.capabilities === 'string') opts.capabilities = list(values.capabilities);
  if (typeof values.rotation === 'string') opts.rotation = rotationList(values.rotation);
  if (values.lifetime !== undefined) opts.lifetime = integer('--lifetime', values.lifetime, 0);
  if (values['auto-revoke']) opts.autoRevoke = true;
  if (values['usages-at'] !== undefined)
    opts.usagesAT = integer('--usages-at', values['usages-at'], 0);
  if (typeof values.scope === 'string') opts.scope = values.scope;
  if (typeof values.audience === 'string') opts.audience = list(values.audience);
  if (typeof values.exp === 'string')
    opts.exp = /^\d+$/.test(values.exp) ? Number(values.exp) : values.exp;
  if (typeof values.name === 'string') opts.name = values.name;
  if (values.short) opts.responseType = 'short_token';
  if (values['transfer-code']) opts.responseType = 'transfer_code';
  return opts;
}

function rotationList(value: string): ('on_AT' | 'on_other')[] {
  const items = list(value);
  for (const item of items) {
    if (item !== 'on_AT' && item !== 'on_other') throw usage(`--rotation: unknown trigger ${item}`);
  }
  return items as ('on_AT' | 'on_other')[];
}

function list(value: string): string[] {
  return value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

type OptionSpec = Record<string, { type: 'string' | 'boolean' }>;

function parse(argv: string[], options: OptionSpec) {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals: false });
  } catch (err) {
    throw usage(firstLine(err), err);
  }
}

function integer(flag: string, value: unknown, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const n = Number(value);
  if (typeof value !== 'string' || !/^\d+$/.test(value) || n < min || n > max) {
    throw usage(`${flag} must be an integer between ${min} and ${max}`);
  }
  return n;
}

function usage(message: string, cause?: unknown): DevServerError {
  return new DevServerError('ERR_DEVSERVER_USAGE', message, { cause });
}

// Resolves once the text is handed to the OS, so that exiting right after loses nothing.
function out(text: string): Promise<void> {
  return new Promise((resolve) => process.stdout.write(text, () => resolve()));
}

function firstLine(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.split('\n')[0]!.split('. To specify')[0]!;
}
