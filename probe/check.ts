/**
 * One run of one check: get the access token, send the request, judge the answer. The caller (the
 * scheduler's envelope) owns the deadline and passes it in as a `RunDeadline`; this module only
 * says what happened, with a reason from a small fixed set and a short message that is safe to log
 * and to show on `/status`.
 */
import { isDeepStrictEqual } from 'node:util';
import type { Dispatcher } from 'undici';
import { errorCode, redact } from '../src/client/index.ts';
import { formatDuration, type CheckConfig, type JsonAssertion } from './config.ts';
import type { FailureReason } from './metrics.ts';
import type { TokenSlot } from './tokens.ts';

export interface CheckOutcome {
  success: boolean;
  reason: FailureReason | undefined;
  /** HTTP status of the final answer; 0 when none arrived. */
  statusCode: number;
  /**
   * Why the check failed; never contains a token or a response body beyond a short quoted value.
   */
  error: string | undefined;
}

/** The reason an envelope aborts a run when its deadline passes. */
export class CheckTimeout extends Error {
  constructor(ms: number) {
    super(`timed out after ${formatDuration(ms)}`);
    this.name = 'CheckTimeout';
  }
}

/**
 * The deadline of one run: a lighter stand-in for an AbortController, which costs an EventTarget
 * per run. A run has at most one request in flight, so one listener slot is enough; a real signal
 * is made only when a run has to wait for an access token.
 */
export class RunDeadline {
  reason: Error | undefined;
  #listener: (() => void) | undefined;
  #controller: AbortController | undefined;

  get aborted(): boolean {
    return this.reason !== undefined;
  }

  abort(reason: Error): void {
    if (this.reason !== undefined) return;
    this.reason = reason;
    this.#controller?.abort(reason);
    const listener = this.#listener;
    this.#listener = undefined;
    listener?.();
  }

  /** Calls `listener` once on abort, unless `unlisten` comes first; replaces any earlier one. */
  listen(listener: () => void): void {
    this.#listener = listener;
  }

  unlisten(): void {
    this.#listener = undefined;
  }

  /** An abort signal that follows this deadline, for APIs that take one. */
  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.reason !== undefined) this.#controller.abort(this.reason);
    }
    return this.#controller.signal;
  }
}

const MAX_BODY_BYTES = 1024 * 1024;
const USER_AGENT = 'mytoken-probe';
const TLS_CODE = /CERT|TLS|SSL|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER/;

/** A check prepared once per config load, so that a run copies nothing it can share. */
export interface PreparedCheck {
  config: CheckConfig;
  origin: string;
  /** Path and query. */
  path: string;
  /** Header names and values, without Authorization, flattened for undici. */
  headers: string[];
  needsBody: boolean;
  /** The request of the last token used, reused while the token stays the same. */
  request: { token: string; options: Dispatcher.DispatchOptions } | undefined;
}

export function prepareCheck(config: CheckConfig): PreparedCheck {
  const url = new URL(config.url);
  const headers = ['user-agent', USER_AGENT];
  for (const [name, value] of Object.entries(config.headers)) headers.push(name, value);
  const { bodyMatches, json } = config.expect;
  return {
    config,
    origin: url.origin,
    path: `${url.pathname}${url.search}`,
    headers,
    needsBody: config.method !== 'HEAD' && (bodyMatches !== undefined || json.length > 0),
    request: undefined,
  };
}

/**
 * Runs one check. Never throws: every failure becomes an outcome.
 *
 * @example
 * const slot = tokens.slot(scope, audience);
 * const outcome = await runCheck(prepared, slot, agent, new RunDeadline());
 */
export async function runCheck(
  check: PreparedCheck,
  slot: TokenSlot,
  dispatcher: Dispatcher,
  deadline: RunDeadline,
): Promise<CheckOutcome> {
  let token: string;
  try {
    token = slot.current() ?? (await slot.fetch(deadline.signal));
  } catch (error) {
    return tokenFailure(error, deadline);
  }
  let res: Answer;
  try {
    res = await exchange(check, token, dispatcher, deadline);
    if (res.status === 401 && slot.invalidate(token)) {
      token = slot.current() ?? (await slot.fetch(deadline.signal));
      res = await exchange(check, token, dispatcher, deadline);
    }
  } catch (error) {
    // Only the second token wait (after a 401) throws anything but an ExchangeFailure.
    if (!(error instanceof ExchangeFailure)) return tokenFailure(error, deadline);
    return transportFailure(error.cause, deadline, error.status);
  }
  return judge(check, res);
}

interface Answer {
  status: number;
  /** The body, read only when an assertion needs it and the status is accepted. */
  body: string | undefined;
}

/**
 * Sends one request through undici's dispatcher with a minimal handler: no response stream, no
 * header object, and the body kept only when an assertion needs it. This is the probe's hot path.
 */
function exchange(
  check: PreparedCheck,
  token: string,
  dispatcher: Dispatcher,
  deadline: RunDeadline,
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const handler = new Exchange(check, deadline, resolve, reject);
    try {
      dispatcher.dispatch(requestOptions(check, token), handler);
    } catch (error) {
      handler.fail(error as Error);
    }
  });
}

/**
 * The dispatch options for `token`, built once per access token rather than per run (undici reads
 * them and copies the headers, never changes them).
 */
function requestOptions(check: PreparedCheck, token: string): Dispatcher.DispatchOptions {
  const cached = check.request;
  if (cached !== undefined && cached.token === token) return cached.options;
  const options: Dispatcher.DispatchOptions = {
    origin: check.origin,
    path: check.path,
    method: check.config.method,
    headers: [...check.headers, 'authorization', `Bearer ${token}`],
    body: check.config.body ?? null,
  };
  check.request = { token, options };
  return options;
}

/** The undici handler of one request; settles its promise exactly once. */
class Exchange implements Dispatcher.DispatchHandler {
  readonly #check: PreparedCheck;
  readonly #deadline: RunDeadline;
  readonly #resolve: (answer: Answer) => void;
  readonly #reject: (error: ExchangeFailure) => void;
  #controller: Dispatcher.DispatchController | undefined;
  #status = 0;
  #chunks: Buffer[] | undefined;
  #size = 0;
  #settled = false;

  constructor(
    check: PreparedCheck,
    deadline: RunDeadline,
    resolve: (answer: Answer) => void,
    reject: (error: ExchangeFailure) => void,
  ) {
    this.#check = check;
    this.#deadline = deadline;
    this.#resolve = resolve;
    this.#reject = reject;
    deadline.listen(this.#onAbort);
  }

  // Before the request is on a socket (while connecting) there is no controller: give up at once,
  // and abort the request should it start later.
  readonly #onAbort = () => {
    const reason = this.#deadline.reason!;
    if (this.#controller !== undefined) this.#controller.abort(reason);
    else this.fail(reason);
  };

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
    const { reason } = this.#deadline;
    if (reason !== undefined) controller.abort(reason);
  }

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number): void {
    if (statusCode < 200) return;
    this.#status = statusCode;
    const { needsBody, config } = this.#check;
    if (needsBody && config.expect.status.has(statusCode)) this.#chunks = [];
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.#chunks === undefined) return;
    this.#size += chunk.length;
    if (this.#size > MAX_BODY_BYTES) return controller.abort(new BodyTooLarge());
    this.#chunks.push(chunk);
  }

  onResponseEnd(): void {
    if (!this.#settle()) return;
    const chunks = this.#chunks;
    const body = chunks === undefined ? undefined : Buffer.concat(chunks).toString('utf8');
    this.#resolve({ status: this.#status, body });
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    this.fail(error);
  }

  fail(error: Error): void {
    if (this.#settle()) this.#reject(new ExchangeFailure(this.#status, error));
  }

  #settle(): boolean {
    if (this.#settled) return false;
    this.#settled = true;
    this.#deadline.unlisten();
    return true;
  }
}

function judge(check: PreparedCheck, res: Answer): CheckOutcome {
  const { status, body } = res;
  const { expect } = check.config;
  if (!expect.status.has(status)) {
    return failure('status', status, `status ${status} is not one of ${expect.status.text}`);
  }
  if (body === undefined)
    return { success: true, reason: undefined, statusCode: status, error: undefined };
  if (expect.bodyMatches !== undefined && !expect.bodyMatches.test(body)) {
    return failure('body', status, `body does not match /${expect.bodyMatches.source}/`);
  }
  const problem = expect.json.length === 0 ? undefined : checkJson(body, expect.json);
  if (problem !== undefined) return failure('body', status, problem);
  return { success: true, reason: undefined, statusCode: status, error: undefined };
}

/** A request that failed; `status` is set when the failure came after the response headers. */
class ExchangeFailure extends Error {
  readonly status: number;

  constructor(status: number, cause: Error) {
    super(cause.message, { cause });
    this.status = status;
  }
}

class BodyTooLarge extends Error {
  constructor() {
    super(`body larger than ${MAX_BODY_BYTES} bytes`);
  }
}

/** The first failed JSON assertion, described; undefined when all hold. */
export function checkJson(text: string, assertions: JsonAssertion[]): string | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return 'body is not JSON';
  }
  for (const a of assertions) {
    const [found, value] = lookup(doc, a.path);
    const where = a.pathText === '' ? 'body' : `json ${a.pathText}`;
    if (a.op === 'exists') {
      if (found !== a.value) return `${where}: ${a.value ? 'missing' : 'present'}`;
      continue;
    }
    if (!found) return `${where}: missing`;
    if (a.op === 'equals' && !isDeepStrictEqual(value, a.value)) {
      return `${where}: expected ${describe(a.value)}, got ${describe(value)}`;
    }
    if (a.op === 'matches') {
      const isScalar =
        typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean';
      if (!isScalar || !a.pattern.test(String(value))) {
        return `${where}: ${describe(value)} does not match /${a.pattern.source}/`;
      }
    }
  }
  return undefined;
}

function lookup(doc: unknown, path: (string | number)[]): [boolean, unknown] {
  let current = doc;
  for (const key of path) {
    if (typeof current !== 'object' || current === null) return [false, undefined];
    if (typeof key === 'number') {
      if (!Array.isArray(current) || key >= current.length) return [false, undefined];
      current = current[key];
    } else {
      if (Array.isArray(current) || !Object.hasOwn(current, key)) return [false, undefined];
      current = (current as Record<string, unknown>)[key];
    }
  }
  return [true, current];
}

/** A short rendering of a value from a response; long or token-like text is cut or redacted. */
function describe(value: unknown): string {
  if (value === null || typeof value === 'number' || typeof value === 'boolean')
    return String(value);
  if (typeof value === 'string') {
    const cut = value.length > 40 ? `${value.slice(0, 40)}…` : value;
    return JSON.stringify(redact(cut));
  }
  return Array.isArray(value) ? 'an array' : typeof value === 'object' ? 'an object' : typeof value;
}

function tokenFailure(error: unknown, deadline: RunDeadline): CheckOutcome {
  if (deadline.reason instanceof CheckTimeout) {
    return failure('token', 0, `no access token before the deadline (${deadline.reason.message})`);
  }
  const message = error instanceof Error ? error.message : 'no access token';
  return failure('token', 0, `access token: ${message}`);
}

function transportFailure(error: unknown, deadline: RunDeadline, status: number): CheckOutcome {
  if (deadline.reason instanceof CheckTimeout) {
    return failure('timeout', status, deadline.reason.message);
  }
  if (error instanceof BodyTooLarge) return failure('body', status, error.message);
  const code = errorCode(error);
  if (
    code === 'UND_ERR_CONNECT_TIMEOUT' ||
    code === 'UND_ERR_HEADERS_TIMEOUT' ||
    code === 'UND_ERR_BODY_TIMEOUT'
  ) {
    return failure('timeout', status, `timed out (${code})`);
  }
  if (code !== undefined && TLS_CODE.test(code))
    return failure('tls', status, `tls failed (${code})`);
  if (deadline.aborted) return failure('connect', status, 'aborted');
  return failure('connect', status, `connection failed (${code ?? 'network error'})`);
}

function failure(reason: FailureReason, statusCode: number, error: string): CheckOutcome {
  return { success: false, reason, statusCode, error };
}
