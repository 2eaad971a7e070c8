// POST /api/v0/token/revoke (§5) and POST /api/v0/token/transfer (§4.3).
import { hasCapability } from '../capabilities.ts';
import { ApiError, badRequest } from '../errors.ts';
import { cookie, json, type Reply, type RequestContext } from '../http.ts';
import type { MytokenClaims, TokenRecord } from '../model.ts';
import { MIN_TOKEN_LENGTH } from '../tokens.ts';
import {
  authenticate,
  bodyToken,
  recordEvent,
  resolveRaw,
  revokeTokens,
  type MytokenApp,
} from './app.ts';
import { mediaType, optBool, optString, parseJsonBody } from './body.ts';
import { CLEAR_COOKIE, CODE_LIFETIME, rotate, newTransferCode } from './issue.ts';

interface RevokeRequest {
  token?: string;
  fromCookie: boolean;
  recursive: boolean;
  oidcIssuer?: string;
  momId?: string;
}

/**
 * The revocation endpoint: RFC 7009 style 204 for the presented token, or revoke by mom_id. A
 * request without any token is refused before the mom_id is looked at (server
 * revocationEndpoint.go, HandleRevoke).
 */
export async function revoke(app: MytokenApp, ctx: RequestContext, raw: Buffer): Promise<Reply> {
  const req = decode(ctx, raw);
  if (!req.token) throw badRequest('no token given');
  if (req.momId !== undefined) return revokeByMomId(app, ctx, req, req.momId);
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

// fiber's BodyParser: JSON for any media type ending in "json", form encoding, anything else
// (a missing Content-Type included, even with an empty body) is refused with 400.
function decode(ctx: RequestContext, raw: Buffer): RevokeRequest {
  const type = mediaType(ctx);
  const body =
    type === 'application/x-www-form-urlencoded'
      ? Object.fromEntries(new URLSearchParams(raw.toString('utf8')))
      : type.endsWith('json')
        ? parseJsonBody(raw)
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

// Revoking by mom_id (server revocationEndpoint.go, revokeByID): the authorising token is parsed
// (400 when it fails) but neither its revocation state nor its restrictions are checked. It may
// revoke itself and its descendants (the server's ancestor test counts a token as its own parent),
// anything else needs manage_mytokens:revoke; a target that is not a token of the same user (an
// unknown mom_id, or an authorising token no longer in the database) is 403 invalid_grant.
async function revokeByMomId(
  app: MytokenApp,
  ctx: RequestContext,
  req: RevokeRequest,
  momId: string,
): Promise<Reply> {
  const presented = resolveRaw(app, req.token ?? '');
  if (!presented) throw badRequest('token not valid');
  let claims: MytokenClaims;
  try {
    claims = await app.signer.verify(presented.jwt);
  } catch (err) {
    const description = (err as ApiError).description ?? 'token not valid';
    throw new ApiError(400, 'invalid_request', description, { cause: err });
  }

  const self = app.store.tokens.get(claims.jti);
  const target = app.store.byMom(momId);
  const isParent =
    !!self && !!target && (target.jti === self.jti || app.store.isDescendant(target.jti, self.jti));
  if (!isParent && !hasCapability(claims.capabilities, 'manage_mytokens:revoke')) {
    throw new ApiError(
      403,
      'insufficient_capabilities',
      "The provided token is neither a parent of the token to be revoked nor does it have the 'manage_mytokens:revoke' capability",
    );
  }
  if (!self || !target || target.sub !== self.sub) {
    throw new ApiError(
      403,
      'invalid_grant',
      'The provided token cannot be used to revoke this mom_id',
    );
  }
  checkCommittable(app, self, claims, target.jti, req.recursive);
  revokeTokens(app, target.jti, req.recursive);
  recordEvent(app, self.jti, ctx, 'revoked_other_token');
  app.changed();
  if (!claims.rotation?.on_other) return { status: 204 };
  const update = await rotate(app, { rec: self, claims, presented }, ctx);
  return json(200, { token_update: update.response }, update.headers);
}

// The server revokes, logs an event on the authorising token and rotates it in one transaction.
// When the authorising token is among the revoked ones the event cannot be stored, and a stale
// token cannot be rotated: either way the transaction rolls back with 500 and nothing is revoked.
function checkCommittable(
  app: MytokenApp,
  self: TokenRecord,
  claims: MytokenClaims,
  targetJti: string,
  recursive: boolean,
): void {
  const selfRevoked =
    self.jti === targetJti || (recursive && app.store.isDescendant(self.jti, targetJti));
  const staleRotation = claims.rotation?.on_other === true && self.seqNo !== claims.seq_no;
  if (selfRevoked || staleRotation) {
    throw new ApiError(500, 'internal_server_error', 'could not complete the revocation');
  }
}

/**
 * Creates a transfer code for a valid token: no capability, no restriction check, no rotation. The
 * code stands for the JWT even when a short token was presented, so redeeming it yields the JWT
 * (server transferEndpoint.go, HandleCreateTransferCodeForExistingMytoken, stores the JWT).
 */
export async function transfer(app: MytokenApp, ctx: RequestContext, raw: Buffer): Promise<Reply> {
  const body = parseJsonBody(raw);
  const token = bodyToken(app, body.mytoken, 'mytoken');
  const { rec, presented } = await authenticate(app, ctx, token);
  const code = newTransferCode(app, rec, presented.jwt, 'token', false);
  recordEvent(app, rec.jti, ctx, 'transfer_code_created');
  return json(200, {
    mytoken_type: 'transfer_code',
    transfer_code: code,
    expires_in: CODE_LIFETIME,
  });
}
