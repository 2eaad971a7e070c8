// The mytoken server's side of the OIDC protocol: it talks to the OP over real HTTP, like the real
// server does (discovery, token endpoint, revocation).
import { Agent, fetch } from 'undici';

import { DevServerError } from './errors.ts';

/** The fields of an OP token response the mytoken server uses. */
export interface OpTokenResponse {
  access_token: string;
  token_type: string;
  expires_in?: number;
  refresh_token?: string;
  id_token?: string;
  scope?: string;
}

/** The OP answered a token request with an error. */
export class OpRefusal extends DevServerError {
  readonly status: number;
  readonly error: string;
  readonly errorDescription: string;

  constructor(status: number, error: string, errorDescription: string) {
    super('ERR_DEVSERVER_OP', `op refused the request: ${error}`);
    this.name = 'OpRefusal';
    this.status = status;
    this.error = error;
    this.errorDescription = errorDescription;
  }
}

interface OpMetadata {
  authorization_endpoint: string;
  token_endpoint: string;
  revocation_endpoint?: string;
}

export interface OpClientOptions {
  issuer: string;
  clientId: string;
  clientSecret: string;
  redirectUri: string;
}

/** OIDC client of the mytoken server. */
export class OpClient {
  readonly #opts: OpClientOptions;
  readonly #agent = new Agent({ connections: 64, keepAliveTimeout: 10_000 });
  readonly #basic: string;
  #metadata: Promise<OpMetadata> | undefined;

  constructor(opts: OpClientOptions) {
    this.#opts = opts;
    const id = encodeURIComponent(opts.clientId);
    const secret = encodeURIComponent(opts.clientSecret);
    this.#basic = `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;
  }

  /** The OP authorization URL for an authorization-code request with PKCE. */
  async authorizationUrl(params: Record<string, string | string[]>): Promise<string> {
    const url = new URL((await this.#meta()).authorization_endpoint);
    url.searchParams.set('client_id', this.#opts.clientId);
    url.searchParams.set('redirect_uri', this.#opts.redirectUri);
    url.searchParams.set('response_type', 'code');
    for (const [key, value] of Object.entries(params)) {
      for (const v of Array.isArray(value) ? value : [value]) url.searchParams.append(key, v);
    }
    return url.href;
  }

  /** Exchanges an authorization code. */
  async exchangeCode(code: string, codeVerifier: string): Promise<OpTokenResponse> {
    const form = new URLSearchParams({
      grant_type: 'authorization_code',
      code,
      redirect_uri: this.#opts.redirectUri,
      code_verifier: codeVerifier,
    });
    return this.#token(form);
  }

  /** Refresh-token grant; each audience becomes an RFC 8707 `resource` parameter. */
  async refresh(
    refreshToken: string,
    scope: string,
    audiences: string[],
  ): Promise<OpTokenResponse> {
    const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken });
    if (scope) form.set('scope', scope);
    for (const aud of audiences) form.append('resource', aud);
    return this.#token(form);
  }

  /** Revokes a refresh token at the OP. */
  async revoke(refreshToken: string): Promise<void> {
    const endpoint = (await this.#meta()).revocation_endpoint;
    if (!endpoint) return;
    const form = new URLSearchParams({ token: refreshToken, token_type_hint: 'refresh_token' });
    const res = await this.#post(endpoint, form);
    await res.body?.cancel();
  }

  async close(): Promise<void> {
    await this.#agent.close();
  }

  async #token(form: URLSearchParams): Promise<OpTokenResponse> {
    const res = await this.#post((await this.#meta()).token_endpoint, form);
    const body = (await res.json().catch(() => ({}))) as Record<string, unknown>;
    if (!res.ok || typeof body.access_token !== 'string') {
      throw new OpRefusal(
        res.ok ? 500 : res.status,
        typeof body.error === 'string' ? body.error : 'server_error',
        typeof body.error_description === 'string' ? body.error_description : '',
      );
    }
    return body as unknown as OpTokenResponse;
  }

  #post(url: string, form: URLSearchParams) {
    return fetch(url, {
      method: 'POST',
      headers: {
        authorization: this.#basic,
        'content-type': 'application/x-www-form-urlencoded',
        accept: 'application/json',
      },
      body: form.toString(),
      dispatcher: this.#agent,
    });
  }

  #meta(): Promise<OpMetadata> {
    this.#metadata ??= this.#discover().catch((err: unknown) => {
      this.#metadata = undefined;
      throw err;
    });
    return this.#metadata;
  }

  async #discover(): Promise<OpMetadata> {
    const url = `${this.#opts.issuer}/.well-known/openid-configuration`;
    const res = await fetch(url, { dispatcher: this.#agent });
    if (!res.ok)
      throw new DevServerError('ERR_DEVSERVER_OP', `op discovery failed with ${res.status}`);
    return (await res.json()) as OpMetadata;
  }
}
