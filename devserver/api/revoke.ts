// POST /api/v0/token/revoke (§5) and POST /api/v0/token/transfer (§4.3).
import { hasCapability } from '../capabilities.ts';
import { ApiError, badRequest } from '../errors.ts';
import { cookie, json, type Reply, type RequestContext } from '../http.ts';
import type { MytokenClaims } from '../model.ts';
import { MIN_TOKEN_LENGTH } from '../tokens.ts';
import {
  authenticate,
  bodyToken,
  recordEvent,
  resolveRaw,
  revokeTokens,
  type MytokenApp,
} from './app.ts';
import { optBool, optString, parseJsonBody } from './body.ts';
import { CLEAR_COOKIE, CODE_LIFETIME, rotate, newTransferCode } from './issue.ts';

interface RevokeRequest {
  token?: string;
  fromCookie: boolean;
  recursive: boolean;
  oidcIssuer?: string;
  momId?: string;
}

/** The revocation endpoint: RFC 7009 style 204 for the presented token, or revoke by mom_id. */
export async function revoke(app: MytokenApp, ctx: RequestContext, raw: Buffer): Promise<Reply> {
  const req = decode(ctx, raw);
  if (req.momId !== undefined) return revokeByMomId(app, ctx, req, req.momId);
  if (!req.token) throw badRequest('no token given');
  const clear = req.fromCookie ? { 'set-cookie': CLEAR_COOKIE } : undefined;

  if (req.token.length < MIN_TOKEN_LENGTH) {
    revokeTransferCode(app, req.token);
    return { status: 204, headers: clear };
  }
  const claims = await verifiedOrUndefined(app, req.token);
  if (req.oidcIssuer && claims && req.oidcIssuer !== claims.oidc_iss) {
    throw badRequest('token not for specified issuer');
  }
  if (claims) revokeChain(app, claims, req.recursive);
  return { status: 204, headers: clear };
}

function decode(ctx: RequestContext, raw: Buffer): RevokeRequest {
  const type = (ctx.req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  const body =
    type === 'application/x-www-form-urlencoded'
      ? Object.fromEntries(new URLSearchParams(raw.toString('utf8')))
      : type === 'application/json'
        ? parseJsonBody(raw)
        : raw.length === 0
          ? {}
          : badType();
  const token = optString(body, 'token') || undefined;
  const fromCookie = token === undefined;
  return {
    token: token ?? cookie(ctx.req, 'mytoken'),
    fromCookie,
    recursive: optBool(body, 'recursive') ?? false,
    oidcIssuer: optString(body, 'oidc_issuer'),
    momId: optString(body, 'mom_id') || undefined,
  };
}

function badType(): never {
  throw badRequest('Unprocessable Entity');
}

function revokeTransferCode(app: MytokenApp, code: string): void {
  const entry = app.store.codes.get(code);
  if (!entry) return;
  app.store.codes.delete(code);
  if (entry.withNewToken && entry.jti) revokeTokens(app, entry.jti, true);
  app.changed();
}

async function verifiedOrUndefined(
  app: MytokenApp,
  raw: string,
): Promise<MytokenClaims | undefined> {
  const presented = resolveRaw(app, raw);
  if (!presented) return undefined;
  try {
    return await app.signer.verify(presented.jwt);
  } catch {
    return undefined;
  }
}

// A stale (rotated) token cannot decrypt the refresh token any more: the real server most likely
// fails with 500 there (§5).
function revokeChain(app: MytokenApp, claims: MytokenClaims, recursive: boolean): void {
  const rec = app.store.tokens.get(claims.jti);
  if (!rec) return;
  if (rec.seqNo !== claims.seq_no) {
    throw new ApiError(500, 'internal_server_error', 'could not decrypt refresh token');
  }
  revokeTokens(app, rec.jti, recursive);
}

// Neither the authorising token's revocation state nor its restrictions are checked (§5).
async function revokeByMomId(
  app: MytokenApp,
  ctx: RequestContext,
  req: RevokeRequest,
  momId: string,
): Promise<Reply> {
  const presented = req.token ? resolveRaw(app, req.token) : undefined;
  if (!presented) throw badRequest('token not valid');
  let claims: MytokenClaims;
  try {
    claims = await app.signer.verify(presented.jwt);
  } catch (err) {
    throw badRequest((err as ApiError).description ?? 'token not valid');
  }

  const target = app.store.byMom(momId);
  const isParent = target !== undefined && app.store.isDescendant(target.jti, claims.jti);
  if (!isParent && !hasCapability(claims.capabilities, 'manage_mytokens:revoke')) {
    throw new ApiError(
      403,
      'insufficient_capabilities',
      "The provided token is neither a parent of the token to be revoked nor does it have the 'manage_mytokens:revoke' capability",
    );
  }
  if (target && target.sub !== claims.sub) {
    throw new ApiError(
      403,
      'invalid_grant',
      'The provided token cannot be used to revoke this mom_id',
    );
  }
  if (target) revokeTokens(app, target.jti, req.recursive);

  const rec = app.store.tokens.get(claims.jti);
  if (!rec) return { status: 204 };
  recordEvent(app, rec.jti, ctx, 'revoked_other_token');
  app.changed();
  if (!rec.rotation?.on_other) return { status: 204 };
  const update = await rotate(
    app,
    { rec, claims: { ...claims, seq_no: rec.seqNo }, presented },
    ctx,
  );
  return json(200, { token_update: update.response }, update.headers);
}

/** Creates a transfer code for a valid token: no capability, no restriction check, no rotation. */
export async function transfer(app: MytokenApp, ctx: RequestContext, raw: Buffer): Promise<Reply> {
  const body = parseJsonBody(raw);
  const token = bodyToken(app, body.mytoken, 'mytoken');
  const { rec, presented } = await authenticate(app, ctx, token);
  const type = presented.short ? 'short_token' : 'token';
  const code = newTransferCode(app, rec, presented.raw, type, false);
  recordEvent(app, rec.jti, ctx, 'transfer_code_created');
  return json(200, {
    mytoken_type: 'transfer_code',
    transfer_code: code,
    expires_in: CODE_LIFETIME,
  });
}
