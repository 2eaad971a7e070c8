// Shared core of the mytoken API handlers: the server context, token lookup and validation
// (§1.3, §3.2 steps 3-4), revocation and events.
import { hasCapability } from '../capabilities.ts';
import { ApiError, badRequest } from '../errors.ts';
import { bearer, cookie, type RequestContext } from '../http.ts';
import type { KeyedLock } from '../lock.ts';
import type { Logger } from '../log.ts';
import type { Clause, MytokenClaims, TokenRecord } from '../model.ts';
import type { OpClient } from '../op-client.ts';
import { selectForOther } from '../restrictions.ts';
import type { Stats } from '../stats.ts';
import type { Store } from '../store.ts';
import { MIN_TOKEN_LENGTH, looksLikeJwt, type MytokenSigner } from '../tokens.ts';

/** Everything the mytoken API handlers share. */
export interface MytokenApp {
  issuer: string;
  opIssuer: string;
  opScopes: string[];
  resourceUrl: string;
  opClient: OpClient;
  store: Store;
  signer: MytokenSigner;
  stats: Stats;
  locks: KeyedLock;
  log: Logger;
  /** `interval` announced for polling codes. */
  pollInterval: number;
  /** Marks the state dirty (state file). */
  changed(): void;
  /** Work that outlives its request (OP revocations); awaited on close. */
  background: Set<Promise<void>>;
}

/** Unix seconds. */
export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

/** A token as presented: the string, the JWT it stands for, and whether it is a short token. */
export interface Presented {
  raw: string;
  jwt: string;
  short: boolean;
}

/**
 * Resolves a presented string: shorter than 32 characters is no token at all; JWT-looking strings
 * are JWTs; anything else is a short token. An unknown short token resolves to an empty JWT, as on
 * the server, whose lookup of a missing short token is not an error (server universalmytoken.go,
 * Parse): it fails later, in the JWT check, with 401.
 */
export function resolveRaw(app: MytokenApp, raw: string): Presented | undefined {
  if (raw.length < MIN_TOKEN_LENGTH) return undefined;
  if (looksLikeJwt(raw)) return { raw, jwt: raw, short: false };
  const entry = app.store.shortTokens.get(raw);
  return { raw, jwt: entry?.jwt ?? '', short: true };
}

/**
 * A token in a JSON body field: a string too short to be a token fails body decoding (400, §1.3);
 * an unknown short token does not (see {@link resolveRaw}).
 */
export function bodyToken(app: MytokenApp, value: unknown, field: string): Presented | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string') throw badRequest(`field '${field}' must be a string`);
  const presented = resolveRaw(app, value);
  if (!presented) throw badRequest('token not valid');
  return presented;
}

/** Body token, else `Authorization: Bearer`, else the `mytoken` cookie; 401 when none parses. */
export function locateToken(app: MytokenApp, ctx: RequestContext, fromBody?: Presented): Presented {
  if (fromBody) return fromBody;
  const raw = bearerOrCookie(ctx);
  if (raw === undefined) throw new ApiError(401, 'invalid_token', 'no mytoken found in request');
  const presented = resolveRaw(app, raw);
  if (!presented) throw new ApiError(401, 'invalid_token', 'token not valid');
  return presented;
}

function bearerOrCookie(ctx: RequestContext): string | undefined {
  return bearer(ctx.req) ?? cookie(ctx.req, 'mytoken');
}

/** A presented token that passed the signature and database checks. */
export interface Authenticated {
  rec: TokenRecord;
  claims: MytokenClaims;
  presented: Presented;
}

/**
 * Signature and claims (401 with description), then the database: the chain exists, `seq_no` is
 * the current one, the rotation lifetime has not run out (401 without description). A failing
 * token of an `auto_revoke` chain revokes the chain recursively.
 */
export async function authenticate(
  app: MytokenApp,
  ctx: RequestContext,
  fromBody?: Presented,
): Promise<Authenticated> {
  const presented = locateToken(app, ctx, fromBody);
  const claims = await app.signer.verify(presented.jwt);
  const rec = app.store.tokens.get(claims.jti);
  if (rec && isCurrent(rec, claims)) return { rec, claims, presented };

  if (rec?.rotation?.auto_revoke) {
    app.log('auto_revoke fired', { mom_id: rec.momId });
    revokeTokens(app, rec.jti, true);
  }
  throw new ApiError(401, 'invalid_token');
}

function isCurrent(rec: TokenRecord, claims: MytokenClaims): boolean {
  if (rec.seqNo !== claims.seq_no) return false;
  const lifetime = rec.rotation?.lifetime;
  return !lifetime || rec.lastRotated + lifetime >= nowSeconds();
}

/** 403 `insufficient_capabilities` unless the token holds (or inherits) the capability. */
export function requireCapability(rec: TokenRecord, capability: string): void {
  if (hasCapability(rec.capabilities, capability)) return;
  throw new ApiError(
    403,
    'insufficient_capabilities',
    'The provided token does not have the required capability for this operation',
  );
}

/** 403 `usage_restricted`: no restriction clause fits. */
export function usageRestricted(): ApiError {
  return new ApiError(
    403,
    'usage_restricted',
    'The restrictions of this token does not allow this usage',
  );
}

/**
 * The first clause fitting an "other" use (time, host, geo, `usages_other`); 403 when none fits.
 * Undefined for an unrestricted token.
 */
export function otherClause(rec: TokenRecord, ip: string): Clause | undefined {
  if (!rec.restrictions?.length) return undefined;
  const clause = selectForOther(rec, nowSeconds(), ip);
  if (!clause) throw usageRestricted();
  return clause;
}

/** Deletes tokens and revokes OP refresh tokens nobody references any more. */
export function revokeTokens(app: MytokenApp, jti: string, recursive: boolean): void {
  for (const refreshToken of app.store.revoke(jti, recursive)) {
    const task = app.opClient.revoke(refreshToken).catch((err: unknown) => {
      app.log('OP refresh token revocation failed', { err: String(err) });
    });
    app.background.add(task);
    void task.finally(() => app.background.delete(task));
  }
  app.changed();
}

/** Records an event in a token's history. */
export function recordEvent(
  app: MytokenApp,
  jti: string,
  ctx: RequestContext,
  event: string,
  comment?: string,
): void {
  app.store.addEvent(jti, {
    event,
    time: nowSeconds(),
    ...(comment ? { comment } : {}),
    ip: ctx.ip,
    ...(ctx.userAgent ? { user_agent: ctx.userAgent } : {}),
  });
}
