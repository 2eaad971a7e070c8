/**
 * Discovery: the server's endpoints come from `/.well-known/mytoken-configuration`, never from hard-coded paths.
 */
import { MytokenError } from './errors.ts';
import type { Transport } from './http.ts';
import { errorFromResponse, isObject, malformed, parseSuccess, type Json } from './responses.ts';

export interface MytokenProvider {
  issuer: string;
  name: string | undefined;
  scopes: string[];
}

export interface MytokenConfiguration {
  issuer: string;
  accessTokenEndpoint: string;
  mytokenEndpoint: string;
  tokeninfoEndpoint: string | undefined;
  revocationEndpoint: string | undefined;
  transferEndpoint: string | undefined;
  jwksUri: string | undefined;
  providers: MytokenProvider[];
  tokeninfoActions: string[];
  responseTypes: string[];
  version: string | undefined;
}

const OPERATION = 'discovery';

/** Fetches and checks a server's configuration. `server` is the issuer URL, e.g. `https://mytok.eu`. */
export async function discover(
  transport: Transport,
  server: string,
): Promise<MytokenConfiguration> {
  const url = `${server.replace(/\/+$/, '')}/.well-known/mytoken-configuration`;
  const res = await transport.send({ method: 'GET', url, operation: OPERATION });
  if (res.status !== 200) throw errorFromResponse(OPERATION, res);
  const config = parseConfiguration(parseSuccess(OPERATION, res));
  checkSameOrigin(config, new URL(url).origin);
  return config;
}

/**
 * The endpoints the token is sent to must live on the server the caller named: a configuration that points
 * elsewhere (a tampered or misconfigured answer) would hand the token to another host, perhaps over plain http.
 */
function checkSameOrigin(config: MytokenConfiguration, origin: string): void {
  const endpoints: [string, string | undefined][] = [
    ['access_token_endpoint', config.accessTokenEndpoint],
    ['mytoken_endpoint', config.mytokenEndpoint],
    ['tokeninfo_endpoint', config.tokeninfoEndpoint],
    ['revocation_endpoint', config.revocationEndpoint],
    ['token_transfer_endpoint', config.transferEndpoint],
  ];
  for (const [key, value] of endpoints) {
    if (value === undefined || new URL(value).origin === origin) continue;
    throw malformed(
      OPERATION,
      `configuration field "${key}" points to another origin than ${origin}`,
    );
  }
}

function parseConfiguration(body: Json): MytokenConfiguration {
  return {
    issuer: requiredUrl(body, 'issuer'),
    accessTokenEndpoint: requiredUrl(body, 'access_token_endpoint'),
    mytokenEndpoint: requiredUrl(body, 'mytoken_endpoint'),
    tokeninfoEndpoint: optionalUrl(body, 'tokeninfo_endpoint'),
    revocationEndpoint: optionalUrl(body, 'revocation_endpoint'),
    transferEndpoint: optionalUrl(body, 'token_transfer_endpoint'),
    jwksUri: optionalUrl(body, 'jwks_uri'),
    providers: providers(body.providers_supported),
    tokeninfoActions: strings(body.tokeninfo_endpoint_actions_supported),
    responseTypes: strings(body.response_types_supported),
    version: typeof body.version === 'string' ? body.version : undefined,
  };
}

function requiredUrl(body: Json, key: string): string {
  const value = optionalUrl(body, key);
  if (value === undefined) throw malformed(OPERATION, `configuration lacks "${key}"`);
  return value;
}

function optionalUrl(body: Json, key: string): string | undefined {
  const value = body[key];
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string' || !URL.canParse(value)) {
    throw malformed(OPERATION, `configuration field "${key}" is not a URL`);
  }
  return value;
}

function providers(value: unknown): MytokenProvider[] {
  if (!Array.isArray(value)) return [];
  return value.filter(isObject).flatMap((p) =>
    typeof p.issuer === 'string'
      ? [
          {
            issuer: p.issuer,
            name: typeof p.name === 'string' ? p.name : undefined,
            scopes: strings(p.scopes_supported),
          },
        ]
      : [],
  );
}

function strings(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
}

/** Checks a server URL: https, or http only for loopback hosts unless explicitly allowed. */
export function checkServerUrl(server: string, allowInsecureHttp = false): string {
  if (!URL.canParse(server)) {
    throw new MytokenError('ERR_MYTOKEN_INVALID_INPUT', `mytoken server "${server}" is not a URL`);
  }
  const url = new URL(server);
  if (url.username !== '' || url.password !== '' || url.search !== '' || url.hash !== '') {
    throw new MytokenError(
      'ERR_MYTOKEN_INVALID_INPUT',
      'mytoken server URL must not carry credentials, a query or a fragment',
    );
  }
  if (url.protocol === 'https:') return url.href.replace(/\/+$/, '');
  if (url.protocol !== 'http:') {
    throw new MytokenError(
      'ERR_MYTOKEN_INVALID_INPUT',
      `mytoken server "${url.href}" must use https`,
    );
  }
  if (!allowInsecureHttp && !isLoopback(url.hostname)) {
    throw new MytokenError(
      'ERR_MYTOKEN_INVALID_INPUT',
      `mytoken server "${url.href}" uses plain http: use https (http is only accepted for loopback hosts)`,
    );
  }
  return url.href.replace(/\/+$/, '');
}

export function isLoopback(hostname: string): boolean {
  return (
    hostname === 'localhost' ||
    hostname === '[::1]' ||
    /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname)
  );
}
