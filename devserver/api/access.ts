// POST /api/v0/token/access (§3): checks in the order of §3.2, so that the same error wins as on
// the real server.
import { decodeJwt } from 'jose';

import { ApiError, badRequest } from '../errors.ts';
import { json, type Reply, type RequestContext } from '../http.ts';
import type { Clause } from '../model.ts';
import { OpRefusal, type OpTokenResponse } from '../op-client.ts';
import { countUse, selectForAT, splitScope } from '../restrictions.ts';
import {
  authenticate,
  bodyToken,
  nowSeconds,
  recordEvent,
  requireCapability,
  type Authenticated,
  type MytokenApp,
  type Presented,
  usageRestricted,
} from './app.ts';
import { mediaType, optString, parseJsonBody } from './body.ts';
import { rotate, type TokenUpdate } from './issue.ts';

// The server's GrantType enum (server model/grantType.go, NewGrantType): known but wrong ones get
// invalid_grant, any other string (the empty one included) fails body decoding.
const KNOWN_GRANT_TYPES = new Set([
  'mytoken',
  'refresh_token',
  'oidc_flow',
  'polling_code',
  'transfer_code',
  'ssh',
]);

interface AtRequest {
  token?: Presented;
  oidcIssuer?: string;
  scope: string[];
  audience: string[];
  comment?: string;
}

/** The access-token endpoint. */
export async function accessToken(
  app: MytokenApp,
  ctx: RequestContext,
  raw: Buffer,
): Promise<Reply> {
  const req = decode(app, ctx, raw);
  const auth = await authenticate(app, ctx, req.token);
  const { rec, claims } = auth;

  requireCapability(rec, 'AT');
  let clause: Clause | undefined;
  if (rec.restrictions?.length) {
    clause = selectForAT(rec, nowSeconds(), ctx.ip, req.scope, req.audience);
    if (!clause) throw usageRestricted();
  }
  if (req.oidcIssuer && req.oidcIssuer !== claims.oidc_iss) {
    throw badRequest('token not for specified issuer');
  }
  if (claims.oidc_iss !== app.opIssuer) throw badRequest('The provided issuer is not supported');
  if (!app.store.refreshTokens.has(rec.rtId)) {
    throw new ApiError(401, 'invalid_token', 'No refresh token attached');
  }
  // The refresh-token "row" stays locked until the request commits (§7.6).
  return app.locks.run(rec.rtId, () => mintAccessToken(app, ctx, auth, req, clause));
}

async function mintAccessToken(
  app: MytokenApp,
  ctx: RequestContext,
  auth: Authenticated,
  req: AtRequest,
  clause: Clause | undefined,
): Promise<Reply> {
  const { rec, claims } = auth;
  // A stale token that passed the checks cannot unwrap the refresh token any more.
  const rt = app.store.refreshTokens.get(rec.rtId);
  if (app.store.tokens.get(rec.jti) !== rec || rec.seqNo !== claims.seq_no || !rt) {
    throw new ApiError(500, 'internal_server_error', 'could not decrypt refresh token');
  }

  const { scope, audience } = opRequest(app, req, clause, rec.restrictions?.length ?? 0);
  const op = await callOp(app, rt.refreshToken, scope, audience);
  if (op.refresh_token && op.refresh_token !== rt.refreshToken) rt.refreshToken = op.refresh_token;

  recordEvent(app, rec.jti, ctx, 'AT_created', req.comment);
  if (clause) countUse(rec, clause, 'at');
  app.stats.atSuccess += 1;
  app.changed();
  const update: TokenUpdate | undefined = rec.rotation?.on_AT
    ? await rotate(app, auth, ctx)
    : undefined;
  return json(200, atResponse(op, scope, update), update?.headers);
}

// §3.3: an unrestricted token ignores the requested scope and audience; otherwise the request's
// scope, else the clause's, else all OP scopes (plus offline_access), and only the request's
// audience.
function opRequest(
  app: MytokenApp,
  req: AtRequest,
  clause: Clause | undefined,
  clauseCount: number,
): { scope: string; audience: string[] } {
  if (clauseCount === 0) return { scope: app.opScopes.join(' '), audience: [] };
  const scopes = req.scope.length > 0 ? req.scope : splitScope(clause?.scope);
  const list = scopes.length > 0 ? [...scopes] : [...app.opScopes];
  if (!list.includes('offline_access')) list.push('offline_access');
  return { scope: list.join(' '), audience: req.audience };
}

async function callOp(
  app: MytokenApp,
  refreshToken: string,
  scope: string,
  audience: string[],
): Promise<OpTokenResponse> {
  try {
    return await app.opClient.refresh(refreshToken, scope, audience);
  } catch (err) {
    if (err instanceof OpRefusal) {
      const text = oidcErrorText(err.error, err.errorDescription);
      throw new ApiError(err.status, 'oidc_error', text, { cause: err });
    }
    app.log('OP refresh failed', { err: String(err) });
    throw new ApiError(500, 'internal_server_error', 'could not reach the OP', { cause: err });
  }
}

/**
 * `error_description` of an `oidc_error`: "<error>: <description>", or the bare OP error when the
 * OP sent no description (server model/apiError.go, OIDCError).
 */
export function oidcErrorText(error: string, description: string): string {
  return description ? `${error}: ${description}` : error;
}

function atResponse(
  op: OpTokenResponse,
  requestedScope: string,
  update: TokenUpdate | undefined,
): Record<string, unknown> {
  const out: Record<string, unknown> = {
    access_token: op.access_token,
    token_type: op.token_type,
    expires_in: op.expires_in ?? 0,
  };
  const scope = op.scope || requestedScope;
  if (scope) out.scope = scope;
  const audience = audienceOf(op.access_token);
  if (audience) out.audience = audience;
  if (update) out.token_update = update.response;
  return out;
}

function audienceOf(accessToken: string): string[] | undefined {
  try {
    const { aud } = decodeJwt(accessToken);
    if (typeof aud === 'string') return [aud];
    return Array.isArray(aud) ? aud : undefined;
  } catch {
    return undefined;
  }
}

// Step 1 and 2 of §3.2: body decoding (JSON or form by Content-Type) and the grant type.
function decode(app: MytokenApp, ctx: RequestContext, raw: Buffer): AtRequest {
  const body = decodeByContentType(ctx, raw);
  const grantType = optString(body, 'grant_type');
  if (grantType !== undefined && !KNOWN_GRANT_TYPES.has(grantType)) {
    throw badRequest(`value '${grantType}' not valid for GrantType`);
  }
  const mytoken = optString(body, 'mytoken');
  const token = mytoken
    ? bodyToken(app, mytoken, 'mytoken')
    : bodyToken(app, optString(body, 'refresh_token'), 'refresh_token');
  const req: AtRequest = {
    token,
    oidcIssuer: optString(body, 'oidc_issuer'),
    scope: splitScope(optString(body, 'scope')),
    audience: splitScope(optString(body, 'audience')),
    comment: optString(body, 'comment'),
  };
  if (grantType !== 'mytoken' && grantType !== 'refresh_token') {
    throw new ApiError(400, 'invalid_grant', 'Unsupported grant_type');
  }
  return req;
}

function decodeByContentType(ctx: RequestContext, raw: Buffer): Record<string, unknown> {
  const type = mediaType(ctx);
  if (type.endsWith('json')) return parseJsonBody(raw);
  if (type === 'application/x-www-form-urlencoded') {
    const form = Object.fromEntries(new URLSearchParams(raw.toString('utf8')));
    // The form name of the issuer field is `issuer` (Go struct tags, §1.2).
    const { issuer, oidc_issuer: _jsonName, ...rest } = form;
    return issuer === undefined ? rest : { ...rest, oidc_issuer: issuer };
  }
  if (type === 'multipart/form-data' || type.endsWith('/xml')) {
    throw badRequest('multipart and XML bodies are not supported by the dev server');
  }
  throw badRequest('Unprocessable Entity');
}
