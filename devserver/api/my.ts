// POST /api/v0/token/my (§4): sub-tokens, the start of the OIDC flow, polling and transfer codes.
import { DEFAULT_CAPABILITIES, intersect } from '../capabilities.ts';
import { ApiError, badRequest } from '../errors.ts';
import { json, type Reply, type RequestContext } from '../http.ts';
import type { ProxyCode } from '../model.ts';
import { countUse, maxExp, parseRestrictions, tighten } from '../restrictions.ts';
import { CODE_LENGTH, randomLetters } from '../tokens.ts';
import {
  authenticate,
  bodyToken,
  nowSeconds,
  otherClause,
  recordEvent,
  requireCapability,
  type MytokenApp,
} from './app.ts';
import {
  optBool,
  optInt,
  optString,
  parseCapabilities,
  parseJsonBody,
  parseResponseType,
  parseRotation,
} from './body.ts';
import { CODE_LIFETIME, createToken, deliver, rotate } from './issue.ts';

/** The mytoken endpoint: JSON body regardless of Content-Type, grant type from query or body. */
export async function mytokenEndpoint(
  app: MytokenApp,
  ctx: RequestContext,
  raw: Buffer,
): Promise<Reply> {
  const body = parseJsonBody(raw);
  const grantType = ctx.query.get('grant_type') || optString(body, 'grant_type');
  switch (grantType) {
    case 'mytoken':
      return subToken(app, ctx, body);
    case 'oidc_flow':
      return startFlow(app, ctx, body);
    case 'polling_code':
      return exchangeCode(app, ctx, optString(body, 'polling_code'), 'polling');
    case 'transfer_code':
      return exchangeCode(app, ctx, optString(body, 'transfer_code'), 'transfer');
    default:
      throw new ApiError(400, 'invalid_grant', 'Unsupported grant_type');
  }
}

function rejectIncludes(value: unknown): void {
  if (value === undefined || value === null) return;
  if (Array.isArray(value) && value.length === 0) return;
  throw badRequest('profiles (include) are not supported by the dev server');
}

// §4.1, checks in the server's order: decode, token, capability, restrictions, issuer, refresh
// token, tightening, capabilities.
async function subToken(
  app: MytokenApp,
  ctx: RequestContext,
  body: Record<string, unknown>,
): Promise<Reply> {
  const now = nowSeconds();
  const token = bodyToken(app, body.mytoken, 'mytoken');
  const oidcIssuer = optString(body, 'oidc_issuer');
  const requestedCaps = parseCapabilities(body.capabilities);
  const requested = parseRestrictions(body.restrictions, now, ctx.ip);
  const strict = optBool(body, 'error_on_restrictions') ?? false;
  const rotation = parseRotation(body.rotation);
  const name = optString(body, 'name');
  const responseType = parseResponseType(body.response_type);
  const maxTokenLen = optInt(body, 'max_token_len');
  optString(body, 'application_name');
  rejectIncludes(body.include);

  const auth = await authenticate(app, ctx, token);
  const { rec, claims } = auth;
  requireCapability(rec, 'create_mytoken');
  const clause = otherClause(rec, ctx.ip);
  if (oidcIssuer && oidcIssuer !== claims.oidc_iss) {
    throw badRequest('token not for specified issuer');
  }
  if (!app.store.refreshTokens.has(rec.rtId)) throw new ApiError(400, 'invalid_token');
  const restrictions = tighten(requested, rec, strict);
  const capabilities = intersect(requestedCaps ?? rec.capabilities, rec.capabilities);
  if (capabilities.length === 0) {
    throw badRequest('mytoken to be issued cannot have any of the requested capabilities');
  }

  const { rec: child, jwt } = await createToken(app, {
    parent: rec.jti,
    rtId: rec.rtId,
    oidcSub: rec.oidcSub,
    oidcIss: rec.oidcIss,
    authTime: rec.authTime,
    name,
    ip: ctx.ip,
    capabilities,
    restrictions,
    rotation,
  });
  recordEvent(app, child.jti, ctx, 'inherited_RT');
  recordEvent(app, rec.jti, ctx, 'MT_created');
  if (clause) countUse(rec, clause, 'other');
  const response = deliver(app, child, jwt, responseType, maxTokenLen);
  if (!rec.rotation?.on_other) return json(200, response);

  const update = await rotate(app, auth, ctx);
  return json(200, { ...response, token_update: update.response }, update.headers);
}

// §4.4: a native-client authorization-code flow; the user opens consent_uri, the client polls.
// Checks in the server's order (server mytokenEndpoint.go, handleOIDCFlow, and authcode_init.go,
// StartAuthCodeFlow): decoding (an omitted oidc_flow is the authorization-code flow, an unknown one
// fails decoding), issuer, redirect_uri of web clients, restrictions already expired. Every
// client_type but "web" is a native client.
function startFlow(app: MytokenApp, ctx: RequestContext, body: Record<string, unknown>): Reply {
  const now = nowSeconds();
  const flow = optString(body, 'oidc_flow') ?? 'authorization_code';
  if (flow !== 'authorization_code') throw badRequest(`value '${flow}' not valid for OIDCFlow`);
  const issuer = optString(body, 'oidc_issuer')?.replace(/\/$/, '');
  const clientType = optString(body, 'client_type');
  const redirectUri = optString(body, 'redirect_uri');
  const capabilities = parseCapabilities(body.capabilities) ?? DEFAULT_CAPABILITIES;
  const restrictions = parseRestrictions(body.restrictions, now, ctx.ip);
  const rotation = parseRotation(body.rotation);
  const name = optString(body, 'name');
  const responseType = parseResponseType(body.response_type);
  const maxTokenLen = optInt(body, 'max_token_len');
  optString(body, 'application_name');
  rejectIncludes(body.include);

  if (issuer !== app.opIssuer) throw badRequest('The provided issuer is not supported');
  if (clientType === 'web' && !redirectUri)
    throw badRequest('redirect_uri is required for web clients');
  if (clientType === 'web')
    throw badRequest("client_type 'web' is not supported by the dev server");
  const exp = maxExp(restrictions);
  if (exp !== undefined && exp < now) throw badRequest('token would already be expired');

  const pollingCode = randomLetters(CODE_LENGTH);
  const consentCode = randomLetters(24);
  const entry: ProxyCode = {
    kind: 'polling',
    state: 'pending',
    expiresAt: now + CODE_LIFETIME,
    flow: {
      consentCode,
      oauthState: randomLetters(32),
      codeVerifier: randomLetters(64),
      capabilities,
      restrictions,
      rotation,
      name,
      responseType,
      maxTokenLen,
      ip: ctx.ip,
    },
  };
  app.store.codes.set(pollingCode, entry);
  app.changed();
  return json(200, {
    consent_uri: `${app.issuer}/c/${consentCode}`,
    polling_code: pollingCode,
    expires_in: CODE_LIFETIME,
    interval: app.pollInterval,
  });
}

// Polling and transfer codes share one namespace; both are single use. Polling checks, in the
// server's order (server polling/pollingEndpoint.go, CheckPollingCodeReq): unknown, declined,
// expired, pending. A declined or expired code stays until it is swept, so asking again gives the
// same answer. The transfer-code grant checks only unknown and expired (server
// mytokenHandler.go, HandleMytokenFromTransferCode); a polling code that holds no token yet fails
// to parse there (400).
function exchangeCode(
  app: MytokenApp,
  ctx: RequestContext,
  code: string | undefined,
  grant: 'polling' | 'transfer',
): Reply {
  const entry = code ? app.store.codes.get(code) : undefined;
  if (!code || !entry) throw new ApiError(401, 'invalid_token', 'Bad polling or transfer code');
  const declined = entry.state === 'declined';
  if (grant === 'polling' && declined) {
    throw new ApiError(401, 'access_denied', 'user declined consent');
  }
  if (entry.expiresAt < nowSeconds()) {
    throw new ApiError(401, 'expired_token', 'polling or transfer code is expired');
  }
  if (entry.state !== 'ready') {
    if (grant === 'transfer') throw badRequest('token not valid');
    throw new ApiError(428, 'authorization_pending');
  }
  app.store.codes.delete(code);
  app.changed();
  // Redeeming either kind of code is logged as a transfer-code use on the token.
  if (entry.jti) recordEvent(app, entry.jti, ctx, 'transfer_code_used');
  if (entry.response) return json(200, entry.response);
  return transferResponse(app, entry);
}

function transferResponse(app: MytokenApp, entry: ProxyCode): Reply {
  const rec = entry.jti ? app.store.tokens.get(entry.jti) : undefined;
  if (!rec || !entry.token)
    throw new ApiError(401, 'invalid_token', 'Bad polling or transfer code');
  const out: Record<string, unknown> = {
    mytoken: entry.token,
    mytoken_type: entry.tokenType ?? 'token',
  };
  if (rec.exp && rec.exp > nowSeconds()) out.expires_in = rec.exp - nowSeconds();
  out.capabilities = rec.capabilities;
  if (rec.restrictions?.length) out.restrictions = rec.restrictions;
  out.mom_id = rec.momId;
  return json(200, out);
}
