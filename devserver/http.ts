import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';

import { ApiError } from './errors.ts';

/** What a handler answers; the router writes it (possibly through an armed fault). */
export interface Reply {
  status: number;
  headers?: OutgoingHttpHeaders;
  body?: string | Buffer;
}

/** Per-request facts the handlers need. */
export interface RequestContext {
  req: IncomingMessage;
  method: string;
  path: string;
  query: URLSearchParams;
  /** Client IP as the restriction checks see it (IPv4-mapped IPv6 unwrapped). */
  ip: string;
  userAgent: string | undefined;
}

const MAX_BODY_BYTES = 1024 * 1024;

/** Builds the request context from the raw request. */
export function contextFor(req: IncomingMessage): RequestContext {
  const raw = req.url ?? '/';
  const q = raw.indexOf('?');
  return {
    req,
    method: req.method ?? 'GET',
    path: q === -1 ? raw : raw.slice(0, q),
    query: new URLSearchParams(q === -1 ? '' : raw.slice(q + 1)),
    ip: normalizeIp(req.socket.remoteAddress ?? ''),
    userAgent: req.headers['user-agent'],
  };
}

/** Unwraps `::ffff:a.b.c.d` so that IPv4 clauses match IPv4 clients on dual-stack sockets. */
export function normalizeIp(ip: string): string {
  return ip.startsWith('::ffff:') && ip.includes('.') ? ip.slice(7) : ip;
}

/** Reads the whole request body; a body over 1 MiB is refused with 400. */
export async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new ApiError(400, 'invalid_request', 'request body too large');
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** A JSON reply. */
export function json(status: number, body: unknown, headers?: OutgoingHttpHeaders): Reply {
  return {
    status,
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  };
}

/** The mytoken error shape for an ApiError (description omitted when empty). */
export function errorReply(err: ApiError): Reply {
  const body: Record<string, string> = { error: err.error };
  if (err.description) body.error_description = err.description;
  return json(err.status, body);
}

/** A plain-text reply. */
export function text(status: number, body: string, headers?: OutgoingHttpHeaders): Reply {
  return { status, headers: { 'content-type': 'text/plain; charset=utf-8', ...headers }, body };
}

/** Writes a reply, with Content-Length (except on 204) so keep-alive connections get reused. */
export function send(res: ServerResponse, reply: Reply): void {
  if (reply.status === 204) {
    res.writeHead(204, reply.headers);
    res.end();
    return;
  }
  const body = reply.body ?? '';
  res.writeHead(reply.status, { ...reply.headers, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** Cookie value by name, or undefined. */
export function cookie(req: IncomingMessage, name: string): string | undefined {
  const header = req.headers.cookie;
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq === -1) continue;
    if (part.slice(0, eq).trim() === name) return decodeURIComponent(part.slice(eq + 1).trim());
  }
  return undefined;
}

/** The credential of an `Authorization: Bearer` header (scheme compared case-insensitively). */
export function bearer(req: IncomingMessage): string | undefined {
  const header = req.headers.authorization;
  if (!header || header.length < 7 || header.slice(0, 7).toLowerCase() !== 'bearer ')
    return undefined;
  return header.slice(7);
}

/** Promise-based sleep. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
