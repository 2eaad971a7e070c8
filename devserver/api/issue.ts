// Issuing, delivery and rotation of mytokens (§4.2, §7.4-7.5).
import type { OutgoingHttpHeaders } from 'node:http';

import { ApiError } from '../errors.ts';
import type { RequestContext } from '../http.ts';
import type {
  Clause,
  MytokenClaims,
  ProxyCode,
  ResponseType,
  Rotation,
  TokenRecord,
} from '../model.ts';
import { firstNbf, maxExp } from '../restrictions.ts';
import {
  CODE_LENGTH,
  SHORT_TOKEN_LENGTH,
  TOKEN_VERSION,
  momIdOf,
  newJti,
  randomLetters,
  subjectOf,
} from '../tokens.ts';
import { nowSeconds, recordEvent, type Authenticated, type MytokenApp } from './app.ts';

/** Lifetime of polling and transfer codes in seconds. */
export const CODE_LIFETIME = 300;
/** `Max-Age` of the `mytoken` cookie (the server's default web cookie lifetime). */
const COOKIE_MAX_AGE = 7 * 86400;

/** What a new token chain is made of. */
export interface NewToken {
  parent?: string;
  rtId: string;
  oidcSub: string;
  oidcIss: string;
  authTime?: number;
  name?: string;
  ip: string;
  capabilities: string[];
  restrictions?: Clause[];
  rotation?: Rotation;
}

/** Creates a token chain (seq_no 1) and signs its first JWT. */
export async function createToken(
  app: MytokenApp,
  input: NewToken,
): Promise<{ rec: TokenRecord; jwt: string }> {
  const now = nowSeconds();
  const jti = newJti();
  const rec: TokenRecord = {
    jti,
    momId: momIdOf(jti),
    seqNo: 1,
    lastRotated: now,
    created: now,
    parent: input.parent,
    rtId: input.rtId,
    sub: subjectOf(input.oidcSub, input.oidcIss),
    oidcSub: input.oidcSub,
    oidcIss: input.oidcIss,
    authTime: input.authTime,
    name: input.name,
    ip: input.ip,
    capabilities: input.capabilities,
    restrictions: input.restrictions,
    rotation: input.rotation,
    exp: maxExp(input.restrictions),
    usage: {},
  };
  const jwt = await app.signer.sign(claimsOf(app, rec, now, firstNbf(rec.restrictions, now)));
  app.store.addToken(rec);
  app.changed();
  return { rec, jwt };
}

function claimsOf(app: MytokenApp, rec: TokenRecord, iat: number, nbf: number): MytokenClaims {
  return {
    ver: TOKEN_VERSION,
    token_type: 'mytoken',
    iss: app.issuer,
    sub: rec.sub,
    aud: app.issuer,
    ...(rec.exp ? { exp: rec.exp } : {}),
    nbf,
    iat,
    ...(rec.authTime ? { auth_time: rec.authTime } : {}),
    jti: rec.jti,
    seq_no: rec.seqNo,
    ...(rec.name ? { name: rec.name } : {}),
    oidc_sub: rec.oidcSub,
    oidc_iss: rec.oidcIss,
    ...(rec.restrictions?.length ? { restrictions: rec.restrictions } : {}),
    capabilities: rec.capabilities,
    ...(rec.rotation ? { rotation: rec.rotation } : {}),
  };
}

/** The mytoken response object (§4.2 / §4.5) for a token string of a chain. */
export function tokenResponse(
  rec: TokenRecord,
  token: string,
  type: 'token' | 'short_token',
): Record<string, unknown> {
  return {
    mytoken: token,
    mytoken_type: type,
    ...describe(rec),
  };
}

function describe(rec: TokenRecord): Record<string, unknown> {
  const out: Record<string, unknown> = { mom_id: rec.momId };
  // Omitted rather than 0 once the token has expired (api MytokenResponse: omitempty).
  const left = rec.exp ? rec.exp - nowSeconds() : 0;
  if (left > 0) out.expires_in = left;
  if (rec.restrictions?.length) out.restrictions = rec.restrictions;
  out.capabilities = rec.capabilities;
  if (rec.rotation) out.rotation = rec.rotation;
  return out;
}

/** A new short token standing for a JWT of a chain. */
export function newShortToken(app: MytokenApp, rec: TokenRecord, jwt: string): string {
  const short = randomLetters(SHORT_TOKEN_LENGTH);
  app.store.shortTokens.set(short, { jwt, jti: rec.jti, exp: rec.exp });
  return short;
}

/** A new transfer code for a token string. */
export function newTransferCode(
  app: MytokenApp,
  rec: TokenRecord,
  token: string,
  tokenType: 'token' | 'short_token',
  withNewToken: boolean,
): string {
  const code = randomLetters(CODE_LENGTH);
  const entry: ProxyCode = {
    kind: 'transfer',
    state: 'ready',
    expiresAt: nowSeconds() + CODE_LIFETIME,
    token,
    tokenType,
    jti: rec.jti,
  };
  if (withNewToken) entry.withNewToken = true;
  app.store.codes.set(code, entry);
  app.changed();
  return code;
}

/**
 * Hands out a new token in the requested form. A positive `max_token_len` overrides the response
 * type: JWT if it fits, else a short token if long enough, else a transfer code; 0 means no limit
 * (server mytoken.go, ToTokenResponse).
 */
export function deliver(
  app: MytokenApp,
  rec: TokenRecord,
  jwt: string,
  responseType: ResponseType,
  maxTokenLen?: number,
): Record<string, unknown> {
  let type = responseType;
  if (maxTokenLen !== undefined && maxTokenLen > 0) {
    if (jwt.length <= maxTokenLen) type = 'token';
    else type = maxTokenLen >= SHORT_TOKEN_LENGTH ? 'short_token' : 'transfer_code';
  }
  if (type === 'short_token')
    return tokenResponse(rec, newShortToken(app, rec, jwt), 'short_token');
  if (type === 'token') return tokenResponse(rec, jwt, 'token');

  const code = newTransferCode(app, rec, jwt, 'token', true);
  return {
    transfer_code: code,
    mytoken_type: 'transfer_code',
    ...describe(rec),
    expires_in: CODE_LIFETIME,
  };
}

/** A rotated token: the `token_update` object plus the cookie that carries it. */
export interface TokenUpdate {
  response: Record<string, unknown>;
  headers: OutgoingHttpHeaders;
}

/**
 * Rotates a chain: same `jti`, `seq_no + 1`, `iat = nbf = now`, `exp = now + lifetime` when the
 * rotation has a lifetime. The previous token dies at once. A chain rotated by a concurrent request
 * since `auth` was checked answers 500, like the real server failing to unwrap its key.
 */
export async function rotate(
  app: MytokenApp,
  auth: Authenticated,
  ctx: RequestContext,
): Promise<TokenUpdate> {
  const { rec, claims } = auth;
  if (app.store.tokens.get(rec.jti) !== rec || rec.seqNo !== claims.seq_no) {
    throw new ApiError(500, 'internal_server_error', 'token was rotated concurrently');
  }
  const now = nowSeconds();
  rec.seqNo += 1;
  rec.lastRotated = now;
  if (rec.rotation?.lifetime) rec.exp = now + rec.rotation.lifetime;
  const jwt = await app.signer.sign(claimsOf(app, rec, now, now));
  const type = auth.presented.short ? 'short_token' : 'token';
  const token = type === 'short_token' ? newShortToken(app, rec, jwt) : jwt;
  recordEvent(app, rec.jti, ctx, 'token_rotated');
  app.stats.rotations += 1;
  app.changed();
  return { response: tokenResponse(rec, token, type), headers: { 'set-cookie': cookieFor(token) } };
}

function cookieFor(token: string): string {
  return `mytoken=${token}; Path=/api; Max-Age=${COOKIE_MAX_AGE}; HttpOnly; SameSite=Strict`;
}

/** Clears the `mytoken` cookie. */
export const CLEAR_COOKIE = 'mytoken=; Path=/api; Max-Age=0; HttpOnly; SameSite=Strict';
