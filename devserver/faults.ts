// Fault injection for the dev server (`POST /_dev/faults`): armed faults fire on matching requests
// a given number of times, then disarm.
import type { ServerResponse } from 'node:http';

import { badRequest } from './errors.ts';
import { json, sleep, text, type Reply } from './http.ts';

/** Kinds of fault. */
export const FAULT_KINDS = [
  'delay',
  'status',
  'rate_limit',
  'html',
  'text',
  'invalid_json',
  'oversize',
  'slow_body',
  'reset',
  'drop_after_commit',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/**
 * Request body of `POST /_dev/faults`.
 *
 * @example
 *   { "path": "/api/v0/token/access", "kind": "rate_limit", "retry_after": 2, "times": 3 }
 */
export interface FaultSpec {
  /** Request path to match (without query), e.g. `/api/v0/token/access`. */
  path: string;
  /** Match every path starting with `path` (default false: exact match). */
  prefix?: boolean;
  /** Only this HTTP method (default: any). */
  method?: string;
  kind: FaultKind;
  /** How many matching requests the fault hits before it disarms; 0 = until cleared. Default 1. */
  times?: number;
  /** `delay`: wait before handling; `slow_body`: total time to dribble the body. */
  ms?: number;
  /** `status` (5xx, default 500), `html` (default 502), `text` (default 503). */
  status?: number;
  /** `rate_limit`: Retry-After seconds (default 1). */
  retry_after?: number;
  /** `oversize`: body size in bytes (default 8 MiB). */
  bytes?: number;
  /** `text`: the body (default "Service Unavailable"). */
  body?: string;
}

/** An armed fault. */
export interface Fault {
  id: number;
  kind: FaultKind;
  /** As armed; 0 = until cleared. */
  times: number;
  remaining: number;
  spec: FaultSpec;
}

/** The set of armed faults of one server. */
export class Faults {
  #armed: Fault[] = [];
  #nextId = 1;

  /** Validates and arms a fault. */
  arm(input: unknown): Fault {
    const spec = validate(input);
    const times = spec.times ?? 1;
    const fault: Fault = { id: this.#nextId++, kind: spec.kind, times, remaining: times, spec };
    this.#armed.push(fault);
    return fault;
  }

  clear(): void {
    this.#armed = [];
  }

  list(): Fault[] {
    return [...this.#armed];
  }

  /** The first armed fault matching the request, counted as fired. */
  take(method: string, path: string): Fault | undefined {
    if (this.#armed.length === 0) return undefined;
    const i = this.#armed.findIndex((f) => matches(f.spec, method, path));
    if (i === -1) return undefined;
    const fault = this.#armed[i]!;
    if (fault.times > 0 && --fault.remaining <= 0) this.#armed.splice(i, 1);
    return fault;
  }
}

function matches(spec: FaultSpec, method: string, path: string): boolean {
  if (spec.method && spec.method.toUpperCase() !== method) return false;
  return spec.prefix ? path.startsWith(spec.path) : path === spec.path;
}

function validate(input: unknown): FaultSpec {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw badRequest('fault must be a JSON object');
  }
  const spec = input as FaultSpec;
  if (typeof spec.path !== 'string' || !spec.path.startsWith('/')) {
    throw badRequest("fault 'path' must be an absolute path");
  }
  if (!FAULT_KINDS.includes(spec.kind)) {
    throw badRequest(`fault 'kind' must be one of ${FAULT_KINDS.join(', ')}`);
  }
  for (const key of ['times', 'ms', 'retry_after', 'bytes'] as const) {
    const v = spec[key];
    if (v !== undefined && (!Number.isSafeInteger(v) || v < 0)) {
      throw badRequest(`fault '${key}' must be a non-negative integer`);
    }
  }
  if (
    spec.status !== undefined &&
    (!Number.isSafeInteger(spec.status) || spec.status < 100 || spec.status > 599)
  ) {
    throw badRequest("fault 'status' must be an HTTP status");
  }
  if (spec.kind === 'status' && spec.status !== undefined && spec.status < 500) {
    throw badRequest("fault 'status' of kind status must be a 5xx");
  }
  return spec;
}

/** Replies a fault answers with instead of handling the request (undefined: handle it). */
export function faultReply(fault: Fault): Reply | undefined {
  const { spec } = fault;
  switch (spec.kind) {
    case 'status':
      return json(spec.status ?? 500, {
        error: 'internal_server_error',
        error_description: 'injected fault',
      });
    case 'rate_limit':
      return text(429, 'Too Many Requests', { 'retry-after': String(spec.retry_after ?? 1) });
    case 'html':
      return htmlPage(spec.status ?? 502);
    case 'text':
      return text(spec.status ?? 503, spec.body ?? 'Service Unavailable');
    case 'invalid_json':
      return {
        status: 200,
        headers: { 'content-type': 'application/json' },
        body: '{"access_token": "tru',
      };
    case 'oversize':
      return oversize(spec.bytes ?? 8 * 1024 * 1024);
    default:
      return undefined;
  }
}

function htmlPage(status: number): Reply {
  const title = `${status} Gateway Error`;
  return {
    status,
    headers: { 'content-type': 'text/html' },
    body: `<!DOCTYPE html>\n<html><head><title>${title}</title></head><body><h1>${title}</h1><p>The upstream server did not answer.</p></body></html>\n`,
  };
}

// A syntactically valid JSON object of exactly `bytes` bytes (at least its minimal frame).
function oversize(bytes: number): Reply {
  const frame = '{"padding":""}';
  const body = Buffer.alloc(Math.max(bytes, frame.length), 'x');
  body.write('{"padding":"', 0, 'latin1');
  body.write('"}', body.length - 2, 'latin1');
  return { status: 200, headers: { 'content-type': 'application/json' }, body };
}

/** `delay`: waits before the request is handled normally. */
export async function delayFor(fault: Fault): Promise<void> {
  await sleep(fault.spec.ms ?? 1000);
}

/**
 * Wraps `res` so that the complete response is captured and then either dropped
 * (`drop_after_commit`: the socket is destroyed after the request took effect) or dribbled out
 * slowly (`slow_body`). Works for every route, the OP included.
 */
export function interceptResponse(res: ServerResponse, fault: Fault): void {
  const chunks: Buffer[] = [];
  const write = res.write.bind(res);
  const end = res.end.bind(res);
  const collect = (chunk: unknown, encoding?: unknown): void => {
    if (chunk === undefined || chunk === null || typeof chunk === 'function') return;
    const enc = typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8';
    if (typeof chunk === 'string') chunks.push(Buffer.from(chunk, enc));
    else chunks.push(Buffer.from(chunk as Uint8Array));
  };
  res.write = ((chunk: unknown, encoding?: unknown) => {
    collect(chunk, encoding);
    return true;
  }) as typeof res.write;
  res.end = ((chunk?: unknown, encoding?: unknown) => {
    collect(chunk, encoding);
    const body = Buffer.concat(chunks);
    if (fault.kind === 'drop_after_commit') res.socket?.destroy();
    else void dribble(res, body, fault.spec.ms ?? 3000, write, end);
    return res;
  }) as typeof res.end;
}

async function dribble(
  res: ServerResponse,
  body: Buffer,
  totalMs: number,
  write: (chunk: Buffer) => boolean,
  end: () => void,
): Promise<void> {
  if (!res.headersSent && !res.hasHeader('transfer-encoding'))
    res.setHeader('content-length', body.length);
  res.flushHeaders();
  const pieces = Math.max(1, Math.min(body.length, 10));
  const size = Math.ceil(body.length / pieces);
  for (let offset = 0; offset < body.length; offset += size) {
    await sleep(totalMs / pieces);
    if (res.destroyed) return;
    write(body.subarray(offset, offset + size));
  }
  end();
}
