// Minting a mytoken the way a user does: the OIDC authorization-code flow through the mytoken
// server (oidc_flow -> consent_uri -> OP with the auto-consenting dev user -> poll).
import { DevServerError } from './errors.ts';
import { sleep } from './http.ts';

/** Options of {@link mint}. */
export interface MintOptions {
  /** Base URL of the mytoken server (`urls.mytoken_server`). */
  server: string;
  /** Capabilities (default on the server: `AT`, `tokeninfo`). */
  capabilities?: string[];
  /** Rotation triggers, e.g. `['on_AT']`. */
  rotation?: ('on_AT' | 'on_other')[];
  /** Rotation `lifetime` in seconds. */
  lifetime?: number;
  /** Rotation `auto_revoke`. */
  autoRevoke?: boolean;
  /** Restriction `usages_AT` (one clause). */
  usagesAT?: number;
  /** Restriction `scope` (space-separated). */
  scope?: string;
  /** Restriction `audience`. */
  audience?: string | string[];
  /** Restriction `exp`: Unix seconds or a relative time such as `"+7d"`. */
  exp?: number | string;
  /** Token name. */
  name?: string;
  /** `token` (JWT, default), `short_token` or `transfer_code`. */
  responseType?: 'token' | 'short_token' | 'transfer_code';
  /** Complete restriction clauses; used instead of usagesAT/scope/audience/exp. */
  restrictions?: Record<string, unknown>[];
  /** Give up after this many milliseconds (default 30000). */
  timeoutMs?: number;
}

const POLL_MS = 20;
const MAX_REDIRECTS = 10;

/**
 * Mints a mytoken through the real OIDC flow and returns it: the JWT, the short token, or (with
 * `responseType: 'transfer_code'`) the transfer code.
 *
 * @example
 *   const token = await mint({ server: dev.urls.mytoken_server, rotation: ['on_AT'] });
 */
export async function mint(opts: MintOptions): Promise<string> {
  const response = await mintResponse(opts);
  const token = response.mytoken ?? response.transfer_code;
  if (typeof token !== 'string') throw mintError('response carries no token');
  return token;
}

/** Like {@link mint}, but returns the whole mytoken response (`mom_id`, `expires_in`, …). */
export async function mintResponse(opts: MintOptions): Promise<Record<string, unknown>> {
  const signal = AbortSignal.timeout(opts.timeoutMs ?? 30_000);
  try {
    return await runFlow(opts, signal);
  } catch (err) {
    if (err instanceof DevServerError) throw err;
    if (signal.aborted) throw mintError('timed out', err);
    throw mintError(`request failed: ${(err as Error).message}`, err);
  }
}

async function runFlow(opts: MintOptions, signal: AbortSignal): Promise<Record<string, unknown>> {
  const server = opts.server.replace(/\/+$/, '');
  const config = await getJson(`${server}/.well-known/mytoken-configuration`, signal);
  const endpoint = String(config.mytoken_endpoint);
  const providers = config.providers_supported as { issuer: string }[] | undefined;
  const issuer = providers?.[0]?.issuer;
  if (!issuer) throw mintError('server lists no provider');

  const start = await postJson(endpoint, { ...flowRequest(opts), oidc_issuer: issuer }, signal);
  if (start.status !== 200) throw apiFailure('oidc_flow', start);
  await followConsent(String(start.body.consent_uri), signal);
  return poll(endpoint, String(start.body.polling_code), signal);
}

function flowRequest(opts: MintOptions): Record<string, unknown> {
  const body: Record<string, unknown> = {
    grant_type: 'oidc_flow',
    oidc_flow: 'authorization_code',
    client_type: 'native',
  };
  if (opts.capabilities) body.capabilities = opts.capabilities;
  const rotation: Record<string, unknown> = {};
  for (const trigger of opts.rotation ?? []) rotation[trigger] = true;
  if (opts.lifetime !== undefined) rotation.lifetime = opts.lifetime;
  if (opts.autoRevoke) rotation.auto_revoke = true;
  if (Object.keys(rotation).length > 0) body.rotation = rotation;
  const restrictions = opts.restrictions ?? clauseOf(opts);
  if (restrictions) body.restrictions = restrictions;
  if (opts.name) body.name = opts.name;
  if (opts.responseType) body.response_type = opts.responseType;
  return body;
}

function clauseOf(opts: MintOptions): Record<string, unknown>[] | undefined {
  const clause: Record<string, unknown> = {};
  if (opts.usagesAT !== undefined) clause.usages_AT = opts.usagesAT;
  if (opts.scope) clause.scope = opts.scope;
  if (opts.audience)
    clause.audience = Array.isArray(opts.audience) ? opts.audience : [opts.audience];
  if (opts.exp !== undefined) clause.exp = opts.exp;
  return Object.keys(clause).length > 0 ? [clause] : undefined;
}

// Plays the browser: follows redirects by hand, carrying the OP's cookies between them.
async function followConsent(consentUri: string, signal: AbortSignal): Promise<void> {
  const jar = new Map<string, string>();
  let url = consentUri;
  for (let i = 0; i < MAX_REDIRECTS; i++) {
    const headers: Record<string, string> = {};
    if (jar.size > 0) headers.cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
    const res = await fetch(url, { redirect: 'manual', headers, signal });
    for (const line of res.headers.getSetCookie()) {
      const pair = line.split(';')[0] ?? '';
      const eq = pair.indexOf('=');
      if (eq > 0) jar.set(pair.slice(0, eq), pair.slice(eq + 1));
    }
    await res.body?.cancel();
    const location = res.headers.get('location');
    if (res.status >= 300 && res.status < 400 && location) {
      url = new URL(location, url).href;
      continue;
    }
    if (res.ok) return;
    throw mintError(`consent step failed with status ${res.status}`);
  }
  throw mintError('too many redirects in the consent step');
}

async function poll(
  endpoint: string,
  pollingCode: string,
  signal: AbortSignal,
): Promise<Record<string, unknown>> {
  for (;;) {
    const body = { grant_type: 'polling_code', polling_code: pollingCode };
    const res = await postJson(endpoint, body, signal);
    if (res.status === 200) return res.body;
    if (res.status !== 428) throw apiFailure('polling', res);
    await sleep(POLL_MS);
  }
}

interface JsonResponse {
  status: number;
  body: Record<string, unknown>;
}

async function getJson(url: string, signal: AbortSignal): Promise<Record<string, unknown>> {
  const res = await fetch(url, { signal });
  if (!res.ok) throw mintError(`discovery failed with status ${res.status}`);
  return (await res.json()) as Record<string, unknown>;
}

async function postJson(url: string, body: unknown, signal: AbortSignal): Promise<JsonResponse> {
  const res = await fetch(url, {
    signal,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const parsed = (await res.json().catch(() => ({}))) as Record<string, unknown>;
  return { status: res.status, body: parsed };
}

function apiFailure(step: string, res: JsonResponse): DevServerError {
  const error = typeof res.body.error === 'string' ? res.body.error : 'unknown error';
  const description =
    typeof res.body.error_description === 'string' ? ` (${res.body.error_description})` : '';
  return mintError(`${step} failed with status ${res.status}: ${error}${description}`);
}

function mintError(message: string, cause?: unknown): DevServerError {
  return new DevServerError('ERR_DEVSERVER_MINT', `mint: ${message}`, { cause });
}
