// Browser side of the OIDC flow: the consent page (which, on the dev server, forwards straight to
// the OP) and the OIDC callback that exchanges the code and completes the polling code.
import { createHash, randomUUID } from 'node:crypto';

import { decodeJwt } from 'jose';

import { json, type Reply, type RequestContext } from '../http.ts';
import type { FlowRequest, ProxyCode } from '../model.ts';
import { OpRefusal, type OpTokenResponse } from '../op-client.ts';
import { nowSeconds, recordEvent, type MytokenApp } from './app.ts';
import { createToken, deliver } from './issue.ts';

const PAGE = (message: string): Reply => ({
  status: 200,
  headers: { 'content-type': 'text/html; charset=utf-8' },
  body: `<!DOCTYPE html><html><head><title>mytoken dev server</title></head><body><p>${message}</p></body></html>`,
});

/**
 * `GET /c/<code>`: the real server shows a consent page; the dev server redirects to the OP at once.
 * `?decline=1` declines instead (the polling code then answers 401 `access_denied`).
 */
export async function consent(app: MytokenApp, ctx: RequestContext, code: string): Promise<Reply> {
  const found = findPending(app, (f) => f.consentCode === code);
  if (!found) return json(404, { error: 'not_found', error_description: 'unknown consent code' });
  const [, entry, flow] = found;
  if (ctx.query.has('decline')) {
    entry.state = 'declined';
    delete entry.flow;
    app.changed();
    return PAGE('Consent declined.');
  }

  const location = await app.opClient.authorizationUrl({
    scope: app.opScopes.join(' '),
    state: flow.oauthState,
    nonce: randomUUID(),
    prompt: 'consent',
    code_challenge: createHash('sha256').update(flow.codeVerifier).digest('base64url'),
    code_challenge_method: 'S256',
    resource: resourcesFor(app, flow),
  });
  return { status: 302, headers: { location } };
}

// RFC 8707 resources asked for at authorization: the demo resource plus every audience the
// restrictions name (the OP only issues ATs for resources granted here). Audiences that are not
// absolute URIs cannot be resource indicators and are left out.
function resourcesFor(app: MytokenApp, flow: FlowRequest): string[] {
  const out = new Set([app.resourceUrl]);
  for (const clause of flow.restrictions ?? []) {
    for (const aud of clause.audience ?? [])
      if (URL.canParse(aud) && !aud.includes('#')) out.add(aud);
  }
  return [...out];
}

/** `GET /redirect`: the OIDC callback. */
export async function redirect(app: MytokenApp, ctx: RequestContext): Promise<Reply> {
  const state = ctx.query.get('state') ?? '';
  const found = findPending(app, (f) => f.oauthState === state);
  if (!found) return json(400, { error: 'invalid_request', error_description: 'unknown state' });
  const [, entry, flow] = found;

  const opError = ctx.query.get('error');
  if (opError === 'access_denied') {
    entry.state = 'declined';
    delete entry.flow;
    app.changed();
    return PAGE('Consent declined.');
  }
  if (opError) return opFailure(opError, ctx.query.get('error_description') ?? '');

  let tokens: OpTokenResponse;
  try {
    tokens = await app.opClient.exchangeCode(ctx.query.get('code') ?? '', flow.codeVerifier);
  } catch (err) {
    if (err instanceof OpRefusal) return opFailure(err.error, err.errorDescription);
    throw err;
  }
  await complete(app, ctx, entry, flow, tokens);
  return PAGE('The mytoken has been issued; you can close this page.');
}

// 555 is the real server's status for an OP error on the redirect step.
function opFailure(error: string, description: string): Reply {
  return json(555, { error: 'oidc_error', error_description: `${error}: ${description}` });
}

async function complete(
  app: MytokenApp,
  ctx: RequestContext,
  entry: ProxyCode,
  flow: FlowRequest,
  tokens: OpTokenResponse,
): Promise<void> {
  if (!tokens.refresh_token) {
    entry.state = 'declined';
    delete entry.flow;
    app.log('OP issued no refresh token');
    return;
  }
  const identity = identityOf(tokens);
  const rtId = randomUUID();
  app.store.refreshTokens.set(rtId, { refreshToken: tokens.refresh_token });
  const { rec, jwt } = await createToken(app, {
    rtId,
    oidcSub: identity.sub,
    oidcIss: app.opIssuer,
    authTime: identity.authTime,
    name: flow.name,
    ip: flow.ip,
    capabilities: flow.capabilities,
    restrictions: flow.restrictions,
    rotation: flow.rotation,
  });
  recordEvent(app, rec.jti, { ...ctx, ip: flow.ip }, 'created');
  entry.response = deliver(app, rec, jwt, flow.responseType, flow.maxTokenLen);
  entry.jti = rec.jti;
  entry.state = 'ready';
  delete entry.flow;
  app.changed();
}

function identityOf(tokens: OpTokenResponse): { sub: string; authTime: number } {
  const claims = decodeJwt(tokens.id_token ?? tokens.access_token);
  return {
    sub: String(claims.sub),
    authTime: typeof claims.auth_time === 'number' ? claims.auth_time : nowSeconds(),
  };
}

function findPending(
  app: MytokenApp,
  match: (flow: FlowRequest) => boolean,
): [string, ProxyCode, FlowRequest] | undefined {
  const now = nowSeconds();
  for (const [code, entry] of app.store.codes) {
    if (entry.state === 'pending' && entry.flow && entry.expiresAt >= now && match(entry.flow)) {
      return [code, entry, entry.flow];
    }
  }
  return undefined;
}
