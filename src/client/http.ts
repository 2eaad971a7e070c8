/**
 * The HTTP transport under the client: undici with connect and response timeouts, a bound on the response size
 * and proxy support from HTTP_PROXY / HTTPS_PROXY / NO_PROXY. It tells apart failures that happened before the
 * request could reach the server from those after, because only the former are safe to repeat with a rotating token.
 */
import { EnvHttpProxyAgent, errors as undiciErrors, request, type Dispatcher } from 'undici';
import { MytokenError } from './errors.ts';

export interface TransportOptions {
  /** Milliseconds to establish the connection (TCP and TLS). Default 10 000. */
  connectTimeoutMs?: number;
  /** Milliseconds for the whole exchange once connected, headers and body. Default 30 000. */
  timeoutMs?: number;
  /** Largest response body accepted, in bytes. Default 1 MiB. */
  maxResponseBytes?: number;
  /** A dispatcher to use instead of the proxy-aware default (tests, custom TLS). */
  dispatcher?: Dispatcher;
  userAgent?: string;
}

export interface HttpRequest {
  method: 'GET' | 'POST' | 'PUT';
  url: string;
  headers?: Record<string, string>;
  body?: string;
  /** Name of the API operation, for error messages. */
  operation: string;
}

export interface HttpResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

export interface Transport {
  send(req: HttpRequest): Promise<HttpResponse>;
  close(): Promise<void>;
}

const DEFAULTS = { connectTimeoutMs: 10_000, timeoutMs: 30_000, maxResponseBytes: 1024 * 1024 };

/** Error codes that undici and Node raise before any byte of the request was written. */
const NOT_SENT_CODES = new Set([
  'UND_ERR_CONNECT_TIMEOUT',
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EADDRNOTAVAIL',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'CERT_HAS_EXPIRED',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
]);

const TIMEOUT_CODES = new Set([
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'ETIMEDOUT',
]);

export function createTransport(options: TransportOptions = {}): Transport {
  const opts = { ...DEFAULTS, ...options };
  const owned = options.dispatcher === undefined;
  const dispatcher =
    options.dispatcher ??
    new EnvHttpProxyAgent({
      connect: { timeout: opts.connectTimeoutMs },
      headersTimeout: opts.timeoutMs,
      bodyTimeout: opts.timeoutMs,
    });
  const userAgent = options.userAgent ?? 'mytoken-toolkit';

  return {
    send: (req) => send(dispatcher, req, opts, userAgent),
    close: async () => {
      if (owned) await dispatcher.close();
    },
  };
}

async function send(
  dispatcher: Dispatcher,
  req: HttpRequest,
  opts: typeof DEFAULTS,
  userAgent: string,
): Promise<HttpResponse> {
  const signal = AbortSignal.timeout(opts.connectTimeoutMs + opts.timeoutMs);
  let res: Dispatcher.ResponseData;
  try {
    res = await request(req.url, {
      method: req.method,
      headers: { 'user-agent': userAgent, accept: 'application/json', ...req.headers },
      body: req.body,
      dispatcher,
      signal,
    });
  } catch (error) {
    throw transportError(req, error);
  }
  const text = await readBounded(req, res, opts.maxResponseBytes);
  return { status: res.statusCode, headers: res.headers, text };
}

async function readBounded(
  req: HttpRequest,
  res: Dispatcher.ResponseData,
  max: number,
): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of res.body) {
      size += (chunk as Buffer).length;
      if (size > max) {
        res.body.destroy();
        throw new MytokenError(
          'ERR_MYTOKEN_MALFORMED_RESPONSE',
          `${req.operation}: response larger than ${max} bytes`,
          { operation: req.operation, status: res.statusCode, mayHaveReachedServer: true },
        );
      }
      chunks.push(chunk as Buffer);
    }
  } catch (error) {
    if (error instanceof MytokenError) throw error;
    throw transportError(req, error, true);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function transportError(req: HttpRequest, error: unknown, afterHeaders = false): MytokenError {
  const code = errorCode(error);
  const notSent = !afterHeaders && code !== undefined && NOT_SENT_CODES.has(code);
  const where = new URL(req.url).host;
  const details = { operation: req.operation, mayHaveReachedServer: !notSent, cause: error };
  if ((code !== undefined && TIMEOUT_CODES.has(code)) || isAbort(error)) {
    return new MytokenError('ERR_MYTOKEN_TIMEOUT', `${req.operation}: ${where} timed out`, details);
  }
  const reason = notSent ? 'cannot reach' : 'connection to';
  const tail = notSent ? '' : ' failed';
  return new MytokenError(
    'ERR_MYTOKEN_NETWORK',
    `${req.operation}: ${reason} ${where}${tail} (${code ?? 'network error'})`,
    details,
  );
}

/** The first `code` along an error's cause chain (undici wraps Node's socket errors). */
export function errorCode(error: unknown): string | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 4 && current instanceof Error; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && code !== 'UND_ERR') return code;
    current = current.cause;
  }
  return undefined;
}

function isAbort(error: unknown): boolean {
  return (
    error instanceof undiciErrors.RequestAbortedError ||
    (error instanceof Error && (error.name === 'AbortError' || error.name === 'TimeoutError'))
  );
}
