// Request-body decoding shared by the mytoken API handlers: typed field access that fails like
// the server's JSON decoding (400 invalid_request).
import { ApiError, badRequest } from '../errors.ts';
import type { RequestContext } from '../http.ts';
import type { ResponseType, Rotation } from '../model.ts';

/** Decodes a JSON object body (mytoken, tokeninfo and transfer endpoints ignore Content-Type). */
export function parseJsonBody(body: Buffer): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch (err) {
    // Not the parser's message: it quotes the body, which may hold a token.
    throw new ApiError(400, 'invalid_request', 'request body is not valid JSON', { cause: err });
  }
  if (value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw badRequest('request body must be a JSON object');
  }
  return value as Record<string, unknown>;
}

/** An optional string field; another type fails decoding (400). */
export function optString(body: Record<string, unknown>, key: string): string | undefined {
  const value = body[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw badRequest(`field '${key}' must be a string`);
  return value;
}

/** An optional boolean field (form bodies carry "true"/"false"). */
export function optBool(body: Record<string, unknown>, key: string): boolean | undefined {
  const value = body[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'boolean') return value;
  if (value === 'true' || value === '1') return true;
  if (value === 'false' || value === '0') return false;
  throw badRequest(`field '${key}' must be a boolean`);
}

/** An optional integer field. */
export function optInt(body: Record<string, unknown>, key: string): number | undefined {
  const value = body[key];
  if (value === undefined || value === null) return undefined;
  if (!Number.isSafeInteger(value)) throw badRequest(`field '${key}' must be an integer`);
  return value as number;
}

/** Capabilities as an array or a space-separated string; templates are not supported. */
export function parseCapabilities(value: unknown): string[] | undefined {
  if (value === undefined || value === null) return undefined;
  let list: unknown[];
  if (typeof value === 'string') list = value.split(' ').filter(Boolean);
  else if (Array.isArray(value)) list = value;
  else throw badRequest("field 'capabilities' must be an array or a string");
  if (list.some((c) => typeof c !== 'string')) throw badRequest('capabilities must be strings');
  const caps = list as string[];
  if (caps.some((c) => c.startsWith('@'))) {
    throw badRequest('capability templates are not supported by the dev server');
  }
  return caps.length > 0 ? caps : undefined;
}

/** Rotation object; templates are not supported. */
export function parseRotation(value: unknown): Rotation | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw badRequest('rotation templates are not supported by the dev server');
  }
  const input = value as Record<string, unknown>;
  const rotation: Rotation = {};
  for (const key of ['on_AT', 'on_other', 'auto_revoke'] as const) {
    const flag = input[key];
    if (flag === undefined || flag === null) continue;
    if (typeof flag !== 'boolean') throw badRequest(`rotation '${key}' must be a boolean`);
    if (flag) rotation[key] = true;
  }
  const lifetime = input.lifetime;
  if (lifetime !== undefined && lifetime !== null) {
    if (!Number.isSafeInteger(lifetime) || (lifetime as number) < 0) {
      throw badRequest("rotation 'lifetime' must be a non-negative integer");
    }
    if (lifetime) rotation.lifetime = lifetime as number;
  }
  return Object.keys(rotation).length > 0 ? rotation : undefined;
}

/** `response_type`; unknown values silently mean a JWT, as on the real server. */
export function parseResponseType(value: unknown): ResponseType {
  if (value === 'short_token' || value === 'transfer_code') return value;
  if (value !== undefined && value !== null && typeof value !== 'string') {
    throw badRequest("field 'response_type' must be a string");
  }
  return 'token';
}

/**
 * The media type as fiber's BodyParser sees it: lower case, without parameters. Every type ending in
 * "json" (`application/vnd.x+json`, `text/json`) is decoded as JSON.
 */
export function mediaType(ctx: RequestContext): string {
  return (ctx.req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
}
