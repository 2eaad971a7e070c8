// Routing of the mytoken server's own paths (everything but /oidc, /resource and /_dev).
import { ApiError } from '../errors.ts';
import { errorReply, json, readBody, type Reply, type RequestContext } from '../http.ts';
import { accessToken } from './access.ts';
import type { MytokenApp } from './app.ts';
import { consent, redirect } from './flow.ts';
import { mytokenEndpoint } from './my.ts';
import { revoke, transfer } from './revoke.ts';
import { tokeninfo } from './tokeninfo.ts';

/** Version the discovery document reports. */
export const SERVER_VERSION = '0.10.1-dev';

type BodyHandler = (app: MytokenApp, ctx: RequestContext, body: Buffer) => Promise<Reply>;

const POST_ROUTES: Record<string, BodyHandler> = {
  '/api/v0/token/access': accessToken,
  '/api/v0/token/my': mytokenEndpoint,
  '/api/v0/token/revoke': revoke,
  '/api/v0/token/transfer': transfer,
  '/api/v0/tokeninfo': tokeninfo,
};

const CORS_HEADERS = { 'access-control-allow-origin': '*' };
const PREFLIGHT_HEADERS = {
  ...CORS_HEADERS,
  'access-control-allow-methods': 'GET,POST,HEAD,PUT,DELETE,PATCH',
  'access-control-allow-headers': 'authorization,content-type',
};

/** A reply plus the route name the statistics count it under. */
export interface Routed {
  route: string;
  reply: Reply;
}

/** Handles a mytoken-server request; API errors become the mytoken error shape. */
export async function handleMytoken(app: MytokenApp, ctx: RequestContext): Promise<Routed> {
  const route = routeName(ctx.path);
  try {
    const reply = await dispatch(app, ctx, route);
    if (isCorsPath(ctx.path)) reply.headers = { ...reply.headers, ...CORS_HEADERS };
    return { route, reply };
  } catch (err) {
    if (err instanceof ApiError) return { route, reply: errorReply(err) };
    app.log('request failed', { route, err: String(err) });
    return { route, reply: json(500, { error: 'internal_server_error' }) };
  }
}

function routeName(path: string): string {
  if (path.startsWith('/c/')) return '/c/:code';
  if (path in POST_ROUTES || KNOWN_GET.has(path)) return path;
  return 'not_found';
}

const KNOWN_GET = new Set([
  '/.well-known/mytoken-configuration',
  '/.well-known/openid-configuration',
  '/jwks',
  '/api/v0/settings',
  '/redirect',
]);

async function dispatch(app: MytokenApp, ctx: RequestContext, route: string): Promise<Reply> {
  const { method, path } = ctx;
  if (method === 'OPTIONS' && isCorsPath(path)) return { status: 204, headers: PREFLIGHT_HEADERS };

  const handler = POST_ROUTES[path];
  if (handler && method === 'POST') return handler(app, ctx, await readBody(ctx.req));
  if (method === 'GET' || method === 'HEAD') {
    const reply = await get(app, ctx, route);
    if (reply) return reply;
  }
  return json(404, { error: 'not_found', error_description: path });
}

async function get(
  app: MytokenApp,
  ctx: RequestContext,
  route: string,
): Promise<Reply | undefined> {
  switch (route) {
    case '/.well-known/mytoken-configuration':
    case '/.well-known/openid-configuration':
      return json(200, discovery(app));
    case '/jwks':
      return json(200, { keys: [app.signer.publicJwk] });
    case '/api/v0/settings':
      return json(200, {
        grant_type_endpoint: `${app.issuer}/api/v0/settings/grants`,
        email_endpoint: `${app.issuer}/api/v0/settings/email`,
      });
    case '/redirect':
      return redirect(app, ctx);
    case '/c/:code':
      return consent(app, ctx, decodeURIComponent(ctx.path.slice(3)));
    default:
      return undefined;
  }
}

function isCorsPath(path: string): boolean {
  return (
    path.startsWith('/api') ||
    path === '/.well-known/mytoken-configuration' ||
    path === '/.well-known/openid-configuration' ||
    path === '/jwks'
  );
}

/** The discovery document (§2). */
export function discovery(app: MytokenApp): Record<string, unknown> {
  const base = app.issuer;
  return {
    issuer: base,
    access_token_endpoint: `${base}/api/v0/token/access`,
    mytoken_endpoint: `${base}/api/v0/token/my`,
    tokeninfo_endpoint: `${base}/api/v0/tokeninfo`,
    revocation_endpoint: `${base}/api/v0/token/revoke`,
    usersettings_endpoint: `${base}/api/v0/settings`,
    notifications_endpoint: `${base}/api/v0/notifications`,
    token_transfer_endpoint: `${base}/api/v0/token/transfer`,
    profiles_endpoint: `${base}/api/v0/pt`,
    jwks_uri: `${base}/jwks`,
    providers_supported: [
      { issuer: app.opIssuer, name: 'mytoken dev OP', scopes_supported: app.opScopes },
    ],
    token_signing_alg_value: 'ES512',
    tokeninfo_endpoint_actions_supported: [
      'introspect',
      'event_history',
      'subtokens',
      'list_mytokens',
    ],
    access_token_endpoint_grant_types_supported: ['mytoken'],
    mytoken_endpoint_grant_types_supported: [
      'oidc_flow',
      'mytoken',
      'transfer_code',
      'polling_code',
    ],
    mytoken_endpoint_oidc_flows_supported: ['authorization_code'],
    response_types_supported: ['token', 'short_token', 'transfer_code'],
    restriction_claims_supported: [
      'nbf',
      'exp',
      'scope',
      'audience',
      'hosts',
      'geoip_allow',
      'geoip_disallow',
      'usages_AT',
      'usages_other',
    ],
    service_documentation: 'https://mytoken-docs.data.kit.edu/',
    version: SERVER_VERSION,
    token_endpoint: `${base}/api/v0/token/access`,
  };
}
