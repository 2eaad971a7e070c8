/**
 * Turns the server's HTTP answers into typed results or `MytokenError`s. Every field a caller relies on is checked
 * here, so that a malformed answer is rejected before it can reach a token store.
 */
import { MytokenError, type MytokenErrorCode } from './errors.ts';
import type { HttpResponse } from './http.ts';

export type Json = Record<string, unknown>;

/** Parses a 2xx answer as a JSON object; a 204 yields `{}`. */
export function parseSuccess(operation: string, res: HttpResponse): Json {
  if (res.status === 204 || (res.text === '' && res.status === 200)) return {};
  const body = tryJson(res.text);
  if (body === undefined) {
    throw malformed(operation, `answer is not a JSON object (status ${res.status})`, res.status);
  }
  return body;
}

/** Builds the error for a non-2xx answer. */
export function errorFromResponse(operation: string, res: HttpResponse): MytokenError {
  const body = tryJson(res.text);
  const serverError = typeof body?.error === 'string' ? body.error : undefined;
  const rawDescription = body?.error_description;
  const serverDescription =
    typeof rawDescription === 'string' && rawDescription !== ''
      ? redact(rawDescription)
      : undefined;
  const details = {
    operation,
    status: res.status,
    serverError,
    serverDescription,
    retryAfter: retryAfterSeconds(res.headers['retry-after']),
    // A JSON error from the mytoken server means it handled the request and rolled it back; any other answer
    // (a proxy's 502, an HTML page) says nothing about whether a rotation was committed behind it.
    mayHaveReachedServer: res.status >= 500 && serverError === undefined,
  };
  const [code, what] = classify(res.status, serverError, body !== undefined);
  const said = serverDescription === undefined ? '' : `: ${serverDescription}`;
  const label = serverError ?? `status ${res.status}`;
  return new MytokenError(code, `${operation}: ${what} (${label}${said})`, details);
}

function classify(
  status: number,
  serverError: string | undefined,
  isJson: boolean,
): [MytokenErrorCode, string] {
  if (status === 429) return ['ERR_MYTOKEN_RATE_LIMITED', 'rate limited by the mytoken server'];
  switch (serverError) {
    case 'invalid_token':
      return ['ERR_MYTOKEN_INVALID_TOKEN', 'mytoken is not valid: expired, revoked or superseded'];
    case 'expired_token':
      return ['ERR_MYTOKEN_CODE_EXPIRED', 'transfer or polling code has expired'];
    case 'access_denied':
      return ['ERR_MYTOKEN_ACCESS_DENIED', 'consent was declined'];
    case 'authorization_pending':
      return ['ERR_MYTOKEN_AUTHORIZATION_PENDING', 'authorization is still pending'];
    case 'insufficient_capabilities':
      return ['ERR_MYTOKEN_INSUFFICIENT_CAPABILITIES', 'mytoken lacks the capability for this'];
    case 'usage_restricted':
      return ['ERR_MYTOKEN_USAGE_RESTRICTED', "mytoken's restrictions do not allow this use"];
    case 'oidc_error':
      return ['ERR_MYTOKEN_OIDC_ERROR', 'the OpenID provider refused the request'];
    case 'not_found':
      return ['ERR_MYTOKEN_NOT_SUPPORTED', 'endpoint not found on the mytoken server'];
  }
  if (status >= 500) return ['ERR_MYTOKEN_SERVER_ERROR', 'mytoken server error'];
  if (!isJson) return ['ERR_MYTOKEN_MALFORMED_RESPONSE', 'unexpected non-JSON answer'];
  return ['ERR_MYTOKEN_BAD_REQUEST', 'request rejected by the mytoken server'];
}

function tryJson(text: string): Json | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return isObject(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

export function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Seconds from a `Retry-After` header (delta seconds or an HTTP date), capped at one hour. */
export function retryAfterSeconds(header: string | string[] | undefined): number | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  if (value === undefined || value.trim() === '') return undefined;
  const seconds = /^\d+$/.test(value.trim())
    ? Number(value.trim())
    : (Date.parse(value) - Date.now()) / 1000;
  if (!Number.isFinite(seconds)) return undefined;
  return Math.min(Math.max(Math.ceil(seconds), 0), 3600);
}

/** Removes anything that could be a token from server-supplied text and keeps it to one short line. */
export function redact(text: string): string {
  const oneLine = text.replace(/[\r\n\t]+/g, ' ').trim();
  const cleaned = oneLine.replace(/[A-Za-z0-9_\-+/=.~]{32,}/g, '[redacted]');
  return cleaned.length > 200 ? `${cleaned.slice(0, 200)}…` : cleaned;
}

export function malformed(operation: string, what: string, status?: number): MytokenError {
  return new MytokenError('ERR_MYTOKEN_MALFORMED_RESPONSE', `${operation}: ${what}`, {
    operation,
    status,
    mayHaveReachedServer: true,
  });
}

/** A token-shaped string: printable, no whitespace, not absurdly long. */
export function isTokenString(value: unknown): value is string {
  return typeof value === 'string' && /^[\x21-\x7e]{1,16384}$/.test(value);
}

export function optionalString(operation: string, body: Json, key: string): string | undefined {
  const value = body[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw malformed(operation, `"${key}" is not a string`);
  return value;
}

export function optionalSeconds(operation: string, body: Json, key: string): number | undefined {
  const value = body[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw malformed(operation, `"${key}" is not a non-negative number`);
  }
  return Math.floor(value);
}

export function optionalStrings(operation: string, body: Json, key: string): string[] | undefined {
  const value = body[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return value === '' ? [] : value.split(' ');
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) {
    throw malformed(operation, `"${key}" is not a list of strings`);
  }
  return value as string[];
}
