/**
 * The probe's own HTTP endpoints: `/metrics` for Prometheus, `/healthz` (the process answers),
 * `/readyz` (the probe has loaded its config and token and is not shutting down) and `/status`
 * (last results and a short history per check, as JSON). Read-only: only GET and HEAD are served.
 */
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TlsOptions } from 'node:tls';
import { ProbeError } from './errors.ts';
import type { Logger } from './log.ts';

export interface HttpHandlers {
  metrics(): Promise<{ contentType: string; body: string }>;
  status(): unknown;
  ready(): boolean;
}

/** Protection for the endpoints, read from a Prometheus-style web config file (`web-config.ts`). */
export interface WebOptions {
  /** Serve HTTPS with this certificate and key. */
  tls?: TlsOptions;
  /**
   * Decides whether a request may see `/metrics` and `/status`; `/healthz` and `/readyz` stay open.
   */
  authorize?: (req: IncomingMessage) => Promise<boolean>;
  /** The realm sent with a 401 when `authorize` refuses. */
  realm?: string;
}

export interface ProbeHttpServer {
  readonly address: { host: string; port: number };
  close(): Promise<void>;
}

const OPEN_PATHS = new Set(['/healthz', '/readyz']);

export async function startHttpServer(
  listen: { host: string; port: number },
  handlers: HttpHandlers,
  logger: Logger,
  web: WebOptions = {},
): Promise<ProbeHttpServer> {
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    route(req, res, handlers, web).catch((error: unknown) => {
      logger.error('HTTP handler failed', {
        err: error instanceof Error ? error.message : 'error',
      });
      if (!res.headersSent) send(res, 500, 'text/plain', 'internal error\n');
      else res.destroy();
    });
  };
  const server =
    web.tls === undefined ? createHttpServer(handle) : createHttpsServer(web.tls, handle);
  server.requestTimeout = 30_000;
  server.headersTimeout = 10_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (cause: NodeJS.ErrnoException) => {
      const where = `${listen.host === '' ? '*' : listen.host}:${listen.port}`;
      reject(
        new ProbeError('ERR_PROBE_LISTEN', `cannot listen on ${where} (${cause.code ?? 'error'})`, {
          cause,
        }),
      );
    });
    server.listen(listen.port, listen.host === '' ? undefined : listen.host, () => resolve());
  });
  const bound = server.address() as AddressInfo;
  return {
    address: { host: bound.address, port: bound.port },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function route(
  req: IncomingMessage,
  res: ServerResponse,
  handlers: HttpHandlers,
  web: WebOptions,
): Promise<void> {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('allow', 'GET, HEAD');
    return send(res, 405, 'text/plain', 'method not allowed\n');
  }
  const path = (req.url ?? '/').split('?', 1)[0];
  if (!OPEN_PATHS.has(path ?? '') && web.authorize !== undefined && !(await web.authorize(req))) {
    res.setHeader('www-authenticate', `Basic realm="${web.realm ?? 'mytoken-probe'}"`);
    return send(res, 401, 'text/plain', 'unauthorized\n');
  }
  switch (path) {
    case '/metrics': {
      const { contentType, body } = await handlers.metrics();
      return send(res, 200, contentType, body);
    }
    case '/healthz':
      return send(res, 200, 'text/plain', 'ok\n');
    case '/readyz':
      return handlers.ready()
        ? send(res, 200, 'text/plain', 'ready\n')
        : send(res, 503, 'text/plain', 'not ready\n');
    case '/status':
      return send(res, 200, 'application/json', `${JSON.stringify(handlers.status(), null, 1)}\n`);
    case '/':
      return send(res, 200, 'text/html; charset=utf-8', INDEX);
    default:
      return send(res, 404, 'text/plain', 'not found\n');
  }
}

function send(res: ServerResponse, status: number, contentType: string, body: string): void {
  // Encoded once: with 10,000 checks /metrics is 10 MB, and measuring and writing a string would
  // encode it twice.
  const bytes = Buffer.from(body, 'utf8');
  res.statusCode = status;
  res.setHeader('content-type', contentType);
  res.setHeader('cache-control', 'no-store');
  res.setHeader('content-length', bytes.length);
  res.end(res.req.method === 'HEAD' ? undefined : bytes);
}

const INDEX = `<!doctype html>
<title>mytoken probe</title>
<h1>mytoken probe</h1>
<ul>
<li><a href="metrics">metrics</a></li>
<li><a href="status">status</a> (last results per check, JSON)</li>
<li><a href="healthz">healthz</a>, <a href="readyz">readyz</a></li>
</ul>
`;
