// Composition of the dev server: one HTTP server for the mytoken API, the OP (/oidc), the demo
// resource (/resource) and the dev-only admin routes (/_dev).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

import type { MytokenApp } from './api/app.ts';
import { handleMytoken } from './api/router.ts';
import { ApiError, DevServerError } from './errors.ts';
import {
  FAULT_KINDS,
  Faults,
  delayFor,
  faultReply,
  interceptResponse,
  type Fault,
  type FaultSpec,
} from './faults.ts';
import {
  contextFor,
  errorReply,
  json,
  readBody,
  send,
  type Reply,
  type RequestContext,
} from './http.ts';
import { KeyedLock } from './lock.ts';
import { silentLogger, type Logger } from './log.ts';
import { DevOp, OP_CLIENT_ID, OP_MOUNT, OP_SCOPES } from './op.ts';
import { OpClient } from './op-client.ts';
import { DemoResource, RESOURCE_MOUNT } from './resource.ts';
import { loadState, StateWriter, type PersistedState } from './state-file.ts';
import { Stats, type StatsSnapshot } from './stats.ts';
import { Store } from './store.ts';
import { MytokenSigner } from './tokens.ts';

/** Options of {@link startDevServer}. */
export interface DevServerOptions {
  /** Interface to listen on (default `127.0.0.1`). */
  host?: string;
  /** Port (default 0: any free port). */
  port?: number;
  /** Lifetime of OP access tokens in seconds (default 3600). */
  atLifetime?: number;
  /** JSON state file: loaded at start, rewritten (atomically, 0600) after changes. */
  stateFile?: string;
  /** `interval` the mytoken server announces for polling codes (default 5, as the real server). */
  pollInterval?: number;
  /** Log sink (default: silent). Log entries never contain tokens. */
  log?: Logger;
}

/** Base URLs of a running dev server, without trailing slashes. */
export interface DevServerUrls {
  /** Issuer of the mytoken server, `http://HOST:PORT`. */
  mytoken_server: string;
  /** Issuer of the OP, `http://HOST:PORT/oidc`. */
  oidc_issuer: string;
  /** The demo resource, `http://HOST:PORT/resource`. */
  resource: string;
}

/** A running dev server. */
export interface DevServer {
  urls: DevServerUrls;
  /** The bound port. */
  port: number;
  /** Current counters (same as `GET /_dev/stats`). */
  stats(): StatsSnapshot;
  /** Arms a fault (same as `POST /_dev/faults`). */
  armFault(spec: FaultSpec): Fault;
  /** Disarms all faults (same as `DELETE /_dev/faults`). */
  clearFaults(): void;
  /** Lifetime of access tokens the OP issues from now on. */
  setAtLifetime(seconds: number): void;
  /** Stops listening, drops connections, writes the state file. */
  close(): Promise<void>;
}

const SWEEP_INTERVAL_MS = 60_000;

/**
 * Starts the dev server: a mytoken-compatible API at the root, a real OpenID provider under
 * `/oidc`, a demo protected resource under `/resource` and admin routes under `/_dev`.
 *
 * @example
 *   const dev = await startDevServer({ port: 0 });
 *   const token = await mint({ server: dev.urls.mytoken_server, capabilities: ['AT'] });
 *   await dev.close();
 */
export async function startDevServer(opts: DevServerOptions = {}): Promise<DevServer> {
  const host = opts.host ?? '127.0.0.1';
  let handler: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => {
    send(res, json(503, { error: 'internal_server_error', error_description: 'starting' }));
  };
  const server = createServer((req, res) => handler(req, res));
  const port = await listen(server, host, opts.port ?? 0);
  const origin = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  try {
    const parts = await assemble(origin, opts);
    handler = (req, res) => void parts.handle(req, res);
    return parts.api(server, port);
  } catch (err) {
    server.close();
    throw err;
  }
}

function listen(server: Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

async function assemble(origin: string, opts: DevServerOptions) {
  const log = opts.log ?? silentLogger;
  const urls: DevServerUrls = {
    mytoken_server: origin,
    oidc_issuer: `${origin}${OP_MOUNT}`,
    resource: `${origin}${RESOURCE_MOUNT}`,
  };
  const state = await usableState(opts.stateFile, origin, log);
  let writer: StateWriter | undefined;
  const changed = () => writer?.schedule();
  const stats = new Stats();
  const op = await DevOp.create({
    issuer: urls.oidc_issuer,
    resourceUrl: urls.resource,
    redirectUri: `${origin}/redirect`,
    atLifetime: opts.atLifetime ?? 3600,
    state: state?.op,
    onChange: changed,
    onRefreshGrant: () => (stats.opRefreshGrants += 1),
    onClientCredentialsGrant: () => (stats.opClientCredentialsGrants += 1),
    log,
  });
  const app = await mytokenApp({ urls, op, state, stats, log, changed, opts });
  if (opts.stateFile) writer = stateWriter(opts.stateFile, app, op);

  const parts: Parts = {
    app,
    op,
    resource: new DemoResource({ resourceUrl: urls.resource, opIssuer: urls.oidc_issuer, stats }),
    faults: new Faults(),
    stats,
    log,
  };
  return {
    handle: requestHandler(parts),
    api: (server: Server, port: number) => devServerApi(server, port, urls, parts, writer),
  };
}

interface AppDeps {
  urls: DevServerUrls;
  op: DevOp;
  state: PersistedState | undefined;
  stats: Stats;
  log: Logger;
  changed: () => void;
  opts: DevServerOptions;
}

async function mytokenApp(deps: AppDeps): Promise<MytokenApp> {
  const { urls, op, state } = deps;
  const redirectUri = `${urls.mytoken_server}/redirect`;
  return {
    issuer: urls.mytoken_server,
    opIssuer: urls.oidc_issuer,
    opScopes: OP_SCOPES,
    resourceUrl: urls.resource,
    opClient: new OpClient({
      issuer: urls.oidc_issuer,
      clientId: OP_CLIENT_ID,
      clientSecret: op.clientSecret,
      redirectUri,
    }),
    store: state ? Store.fromSnapshot(state.store) : new Store(),
    signer: await MytokenSigner.create(urls.mytoken_server, state?.mytokenKey),
    stats: deps.stats,
    locks: new KeyedLock(),
    log: deps.log,
    pollInterval: deps.opts.pollInterval ?? 5,
    changed: deps.changed,
    background: new Set(),
  };
}

function stateWriter(file: string, app: MytokenApp, op: DevOp): StateWriter {
  const writer = new StateWriter(
    file,
    () => ({
      issuer: app.issuer,
      mytokenKey: app.signer.privateJwk,
      store: app.store.snapshot(),
      op: op.snapshot(),
    }),
    (err) => app.log('state file write failed', { err: String(err) }),
  );
  writer.schedule();
  return writer;
}

function devServerApi(
  server: Server,
  port: number,
  urls: DevServerUrls,
  parts: Parts,
  writer: StateWriter | undefined,
): DevServer {
  const { app, op, faults, stats } = parts;
  const sweeper = setInterval(() => {
    app.store.sweep(Math.floor(Date.now() / 1000));
    op.sweep();
  }, SWEEP_INTERVAL_MS).unref();
  return {
    urls,
    port,
    stats: () => stats.snapshot(),
    armFault: (spec) => faults.arm(spec),
    clearFaults: () => faults.clear(),
    setAtLifetime: (seconds) => setAtLifetime(op, seconds),
    close: async () => {
      clearInterval(sweeper);
      await Promise.allSettled([...app.background]);
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await writer?.flush();
      await app.opClient.close();
    },
  };
}

// State of another issuer (the port changed) is useless: its tokens name the old issuer.
async function usableState(
  file: string | undefined,
  origin: string,
  log: Logger,
): Promise<PersistedState | undefined> {
  if (!file) return undefined;
  const state = await loadState(file);
  if (state && state.issuer !== origin) {
    log('state file belongs to another issuer, starting fresh', { file, issuer: state.issuer });
    return undefined;
  }
  return state;
}

function setAtLifetime(op: DevOp, seconds: number): void {
  if (!Number.isSafeInteger(seconds) || seconds <= 0) {
    throw new DevServerError('ERR_DEVSERVER_USAGE', 'at lifetime must be a positive integer');
  }
  op.atLifetime = seconds;
}

interface Parts {
  app: MytokenApp;
  op: DevOp;
  resource: DemoResource;
  faults: Faults;
  stats: Stats;
  log: Logger;
}

function requestHandler(parts: Parts) {
  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    try {
      await route(parts, req, res);
    } catch (err) {
      parts.log('request failed', { path: req.url?.split('?')[0], err: String(err) });
      if (!res.headersSent) send(res, json(500, { error: 'internal_server_error' }));
      else res.destroy();
    }
  };
}

async function route(parts: Parts, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const ctx = contextFor(req);
  const { path } = ctx;
  if (path.startsWith('/_dev/')) return send(res, await admin(parts, ctx));

  const fault = parts.faults.take(ctx.method, path);
  if (fault && !(await applyFault(parts, fault, res))) return;

  if (path === OP_MOUNT || path.startsWith(`${OP_MOUNT}/`)) return parts.op.handle(req, res, path);
  if (path.startsWith(`${RESOURCE_MOUNT}/`))
    return parts.resource.handle(req, res, path, ctx.query);
  const { route: name, reply } = await handleMytoken(parts.app, ctx);
  parts.stats.count(name, reply.status);
  send(res, reply);
}

/** Applies a fault; false when it answered (or dropped) the request itself. */
async function applyFault(parts: Parts, fault: Fault, res: ServerResponse): Promise<boolean> {
  parts.stats.faultsFired += 1;
  switch (fault.kind) {
    case 'delay':
      await delayFor(fault);
      return true;
    case 'reset':
      res.socket?.destroy();
      return false;
    case 'slow_body':
    case 'drop_after_commit':
      interceptResponse(res, fault);
      return true;
    default:
      send(res, faultReply(fault) as Reply);
      return false;
  }
}

// Dev-only routes; a real mytoken server has nothing like them.
async function admin(parts: Parts, ctx: RequestContext): Promise<Reply> {
  try {
    return await adminRoute(parts, ctx);
  } catch (err) {
    if (err instanceof ApiError) return errorReply(err);
    if (err instanceof DevServerError)
      return json(400, { error: 'invalid_request', error_description: err.message });
    throw err;
  }
}

async function adminRoute(parts: Parts, ctx: RequestContext): Promise<Reply> {
  const key = `${ctx.method} ${ctx.path}`;
  switch (key) {
    case 'POST /_dev/faults': {
      const input = parseAdminJson(await readBody(ctx.req));
      const armed = (Array.isArray(input) ? input : [input]).map((spec) => parts.faults.arm(spec));
      return json(201, { faults: armed.map(describeFault) });
    }
    case 'GET /_dev/faults':
      return json(200, { faults: parts.faults.list().map(describeFault), kinds: FAULT_KINDS });
    case 'DELETE /_dev/faults':
      parts.faults.clear();
      return { status: 204 };
    case 'GET /_dev/stats':
      return json(200, parts.stats.snapshot());
    case 'DELETE /_dev/stats':
      parts.stats.reset();
      return { status: 204 };
    case 'GET /_dev/config':
      return json(200, { at_lifetime: parts.op.atLifetime });
    case 'POST /_dev/config': {
      const input = (parseAdminJson(await readBody(ctx.req)) ?? {}) as { at_lifetime?: number };
      if (input.at_lifetime !== undefined) setAtLifetime(parts.op, input.at_lifetime);
      return json(200, { at_lifetime: parts.op.atLifetime });
    }
    default:
      return json(404, { error: 'not_found', error_description: ctx.path });
  }
}

function parseAdminJson(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new ApiError(400, 'invalid_request', 'body must be JSON', { cause: err });
  }
}

function describeFault(f: Fault): Record<string, unknown> {
  return { id: f.id, remaining: f.times > 0 ? f.remaining : null, ...f.spec };
}
