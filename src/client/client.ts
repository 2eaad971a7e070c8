/**
 * The mytoken client. Every operation that presents the mytoken runs through `#useToken`, which serialises uses of
 * the token, saves a rotated token (`token_update`) to the store before returning anything else from the response,
 * retries only where a retry cannot spend a rotating token twice, and recognises a rotation whose answer was lost.
 */
import { readMytokenClaims, type RotationPolicy } from './claims.ts';
import { checkServerUrl, discover, type MytokenConfiguration } from './discovery.ts';
import { MytokenError } from './errors.ts';
import {
  createTransport,
  type HttpResponse,
  type Transport,
  type TransportOptions,
} from './http.ts';
import {
  errorFromResponse,
  isObject,
  isTokenString,
  malformed,
  optionalSeconds,
  optionalString,
  optionalStrings,
  parseSuccess,
  type Json,
} from './responses.ts';
import type { TokenStore } from './store.ts';

export interface ClientLogger {
  debug(message: string, fields?: Record<string, unknown>): void;
}

export interface MytokenClientOptions {
  /** The mytoken server's issuer URL, e.g. `https://mytok.eu`. */
  server: string;
  /** Where the mytoken lives; required by every operation that presents it. */
  store?: TokenStore;
  /** Accept `http://` for hosts other than loopback. Off by default. */
  allowInsecureHttp?: boolean;
  /** Called with every secret the client obtains (access tokens, mytokens, codes) before anything else sees it. */
  onSecret?: (secret: string) => void;
  logger?: ClientLogger;
  http?: TransportOptions;
  transport?: Transport;
  /** Attempts for requests that are safe to repeat. Default 3. */
  attempts?: number;
  /** Base delay of the jittered exponential backoff, in milliseconds. Default 250. */
  retryDelayMs?: number;
  /** Longest wait for one retry, `Retry-After` included, in milliseconds. Default 30 000. */
  maxRetryDelayMs?: number;
  /** How long a discovered configuration is reused, in milliseconds. Default one hour. */
  discoveryTtlMs?: number;
}

export interface AccessTokenRequest {
  scope?: string | string[];
  audience?: string | string[];
  oidcIssuer?: string;
  comment?: string;
}

export interface AccessToken {
  accessToken: string;
  tokenType: string;
  /** Seconds the access token lives, as the server said. */
  expiresIn: number | undefined;
  expiresAt: Date | undefined;
  scope: string | undefined;
  audience: string[] | undefined;
  /** True when the mytoken was rotated by this request (and the new one saved). */
  rotated: boolean;
}

export interface RotationRequest {
  onAT?: boolean;
  onOther?: boolean;
  lifetime?: number;
  autoRevoke?: boolean;
}

export interface SubtokenRequest {
  capabilities?: string[];
  restrictions?: Record<string, unknown>[];
  rotation?: RotationRequest;
  name?: string;
  responseType?: 'token' | 'short_token' | 'transfer_code';
  oidcIssuer?: string;
  errorOnRestrictions?: boolean;
}

export interface IssuedMytoken {
  mytoken: string | undefined;
  transferCode: string | undefined;
  mytokenType: string;
  momId: string | undefined;
  expiresIn: number | undefined;
  capabilities: string[];
  restrictions: Record<string, unknown>[];
  rotation: RotationPolicy | undefined;
}

export interface TransferCode {
  transferCode: string;
  expiresIn: number | undefined;
}

interface TokenUse {
  operation: string;
  endpoint: (config: MytokenConfiguration) => string | undefined;
  body: Json;
  /** Which rotation flag this use triggers; `none` for uses that never rotate. */
  rotatesOn: 'AT' | 'other' | 'none';
  /**
   * The server rotates a token whose claims name the trigger on every such use (access tokens, sub-tokens); other
   * uses rotate only some tokens (tokeninfo actions only restricted ones), so a missing `token_update` proves
   * nothing there.
   */
  alwaysRotates?: boolean;
  /** Send the token in this body field instead of the Authorization header (revocation wants `token`). */
  tokenField?: 'token';
}

const DEFAULT_DISCOVERY_TTL_MS = 3_600_000;

/**
 * A client for one mytoken server and one token.
 *
 * @example
 * const client = new MytokenClient({ server: 'https://mytok.eu', store: new FileTokenStore('mytoken') });
 * const at = await client.accessToken({ scope: 'openid storage.read' });
 */
export class MytokenClient {
  readonly server: string;
  readonly #store: TokenStore | undefined;
  readonly #transport: Transport;
  readonly #ownsTransport: boolean;
  readonly #options: MytokenClientOptions;
  #config: { value: MytokenConfiguration; at: number } | undefined;
  #queue: Promise<unknown> = Promise.resolve();

  constructor(options: MytokenClientOptions) {
    this.server = checkServerUrl(options.server, options.allowInsecureHttp);
    this.#store = options.store;
    this.#options = options;
    this.#ownsTransport = options.transport === undefined;
    this.#transport = options.transport ?? createTransport(options.http);
  }

  /** The server's configuration, fetched once and reused for `discoveryTtlMs`. */
  async configuration(): Promise<MytokenConfiguration> {
    const ttl = this.#options.discoveryTtlMs ?? DEFAULT_DISCOVERY_TTL_MS;
    if (this.#config !== undefined && Date.now() - this.#config.at < ttl) return this.#config.value;
    const value = await this.#withRetries(() => discover(this.#transport, this.server));
    this.#config = { value, at: Date.now() };
    return value;
  }

  /** Exchanges the mytoken for an OIDC access token. */
  async accessToken(request: AccessTokenRequest = {}): Promise<AccessToken> {
    const body: Json = { grant_type: 'mytoken' };
    if (request.scope !== undefined) body.scope = joined(request.scope);
    if (request.audience !== undefined) body.audience = joined(request.audience);
    if (request.oidcIssuer !== undefined) body.oidc_issuer = request.oidcIssuer;
    if (request.comment !== undefined) body.comment = request.comment;
    const use: TokenUse = {
      operation: 'access_token',
      endpoint: (c) => c.accessTokenEndpoint,
      body,
      rotatesOn: 'AT',
      alwaysRotates: true,
    };
    const { body: res, rotated } = await this.#useToken(use);
    return settled(() => parseAccessToken(res, rotated, this.#options.onSecret));
  }

  /** Creates a restricted sub-mytoken (needs the `create_mytoken` capability). */
  async createSubtoken(request: SubtokenRequest = {}): Promise<IssuedMytoken> {
    const body: Json = { grant_type: 'mytoken' };
    if (request.capabilities !== undefined) body.capabilities = request.capabilities;
    if (request.restrictions !== undefined) body.restrictions = request.restrictions;
    if (request.rotation !== undefined) body.rotation = rotationBody(request.rotation);
    if (request.name !== undefined) body.name = request.name;
    if (request.responseType !== undefined) body.response_type = request.responseType;
    if (request.oidcIssuer !== undefined) body.oidc_issuer = request.oidcIssuer;
    if (request.errorOnRestrictions !== undefined) {
      body.error_on_restrictions = request.errorOnRestrictions;
    }
    const use: TokenUse = {
      operation: 'create_subtoken',
      endpoint: (c) => c.mytokenEndpoint,
      body,
      rotatesOn: 'other',
      alwaysRotates: true,
    };
    const { body: res } = await this.#useToken(use);
    return settled(() => parseIssuedMytoken('create_subtoken', res, this.#options.onSecret));
  }

  /** The token's claims as the server sees them, with usage counters. Never rotates the token. */
  async introspect(): Promise<Json> {
    const { body } = await this.#tokeninfo('introspect', 'none');
    return body;
  }

  /** The token's event history, newest first. */
  async eventHistory(): Promise<Json[]> {
    const { body } = await this.#tokeninfo('event_history', 'other');
    return Array.isArray(body.events) ? body.events.filter(isObject) : [];
  }

  /** The tree of sub-tokens below this token. */
  async subtokens(): Promise<Json> {
    const { body } = await this.#tokeninfo('subtokens', 'other');
    return isObject(body.mytokens) ? body.mytokens : {};
  }

  /** Revokes this token (or, with `momId`, another token it may manage). */
  async revoke(options: { recursive?: boolean; momId?: string } = {}): Promise<void> {
    const body: Json = { recursive: options.recursive ?? false };
    if (options.momId !== undefined) body.mom_id = options.momId;
    await this.#useToken({
      operation: 'revoke',
      endpoint: (c) => c.revocationEndpoint,
      body,
      rotatesOn: options.momId === undefined ? 'none' : 'other',
      tokenField: 'token',
    });
  }

  /** Creates a one-time transfer code for this token (valid for minutes). */
  async createTransferCode(): Promise<TransferCode> {
    const { body } = await this.#useToken({
      operation: 'create_transfer_code',
      endpoint: (c) => c.transferEndpoint,
      body: {},
      rotatesOn: 'none',
    });
    const code = body.transfer_code;
    if (!isTokenString(code)) throw malformed('create_transfer_code', 'no "transfer_code"');
    this.#options.onSecret?.(code);
    return {
      transferCode: code,
      expiresIn: optionalSeconds('create_transfer_code', body, 'expires_in'),
    };
  }

  /** Redeems a transfer code for the mytoken behind it. Does not touch the store. */
  async redeemTransferCode(transferCode: string): Promise<IssuedMytoken> {
    const operation = 'redeem_transfer_code';
    const config = await this.configuration();
    const res = await this.#send(operation, config.mytokenEndpoint, {
      grant_type: 'transfer_code',
      transfer_code: transferCode,
    });
    if (res.status !== 200) throw errorFromResponse(operation, res);
    return parseIssuedMytoken(operation, parseSuccess(operation, res), this.#options.onSecret);
  }

  async close(): Promise<void> {
    if (this.#ownsTransport) await this.#transport.close();
  }

  #tokeninfo(action: string, rotatesOn: TokenUse['rotatesOn']) {
    return this.#useToken({
      operation: `tokeninfo_${action}`,
      endpoint: (c) => c.tokeninfoEndpoint,
      body: { action },
      rotatesOn,
    });
  }

  /** Runs one use of the token; uses never overlap, so a rotation always starts from the newest token. */
  #useToken(use: TokenUse): Promise<{ body: Json; rotated: boolean }> {
    const run = this.#queue.then(() => this.#useTokenNow(use));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #useTokenNow(use: TokenUse): Promise<{ body: Json; rotated: boolean }> {
    const store = this.#requireStore(use.operation);
    const config = await this.configuration();
    const url = use.endpoint(config);
    if (url === undefined) {
      throw new MytokenError(
        'ERR_MYTOKEN_NOT_SUPPORTED',
        `${use.operation}: not offered by the server`,
      );
    }
    const token = await store.load();
    const mayRotate = use.rotatesOn !== 'none' && this.#mayRotate(token, use.rotatesOn);
    const body = use.tokenField === undefined ? use.body : { ...use.body, [use.tokenField]: token };
    const auth = use.tokenField === undefined ? token : undefined;

    let res: HttpResponse;
    try {
      res = await this.#sendWithRetries(use.operation, url, body, auth, !mayRotate);
    } catch (error) {
      if (mayRotate && error instanceof MytokenError && error.mayHaveReachedServer) {
        throw await this.#diagnoseLostAnswer(use.operation, token, error);
      }
      throw error;
    }
    if (res.status < 200 || res.status > 299) {
      const error = errorFromResponse(use.operation, res);
      // A 5xx may hide a rotation (a proxy's page) or a concurrent one (the server's own 500 for the loser of
      // two simultaneous uses): the token's state tells which.
      if (mayRotate && res.status >= 500) {
        throw await this.#diagnoseLostAnswer(use.operation, token, error);
      }
      throw error;
    }

    let parsed: Json;
    try {
      parsed = parseSuccess(use.operation, res);
    } catch (error) {
      if (mayRotate)
        throw await this.#diagnoseLostAnswer(use.operation, token, error as MytokenError);
      throw error;
    }
    const rotated = await this.#saveRotation(use.operation, store, parsed);
    if (!rotated && use.alwaysRotates === true && this.#claimsRotate(token, use.rotatesOn)) {
      await this.#checkNotRotated(use.operation, token);
    }
    return { body: parsed, rotated };
  }

  /** True when the token's own claims say this kind of use rotates it (false for a short token). */
  #claimsRotate(token: string, on: TokenUse['rotatesOn']): boolean {
    const info = readMytokenClaims(token);
    if (info.kind === 'opaque' || on === 'none') return false;
    return on === 'AT' ? info.rotation?.onAT === true : info.rotation?.onOther === true;
  }

  /**
   * A use that should have rotated the token answered without `token_update`. If the server rotated anyway, the
   * new token is lost: say so now rather than let the next use fail with a superseded token.
   */
  async #checkNotRotated(operation: string, token: string): Promise<void> {
    if ((await this.#probe(token)) !== 401) return;
    throw new MytokenError(
      'ERR_MYTOKEN_CHAIN_BROKEN',
      `${operation}: the server rotated the mytoken but sent no new token; mint a new mytoken`,
      { operation, mayHaveReachedServer: true },
    );
  }

  /**
   * The status of an introspection of `token` (a use that never rotates it), or undefined when the token must not
   * be presented (see `mayProbe`) or the question could not be asked.
   */
  async #probe(token: string): Promise<number | undefined> {
    const endpoint = this.#config?.value.tokeninfoEndpoint;
    if (endpoint === undefined || !mayProbe(token)) return undefined;
    try {
      const res = await this.#send(
        'tokeninfo_introspect',
        endpoint,
        { action: 'introspect' },
        token,
      );
      return res.status;
    } catch {
      return undefined;
    }
  }

  #mayRotate(token: string, on: 'AT' | 'other'): boolean {
    const info = readMytokenClaims(token);
    if (info.kind === 'opaque') return true;
    return on === 'AT' ? info.rotation?.onAT === true : info.rotation?.onOther === true;
  }

  /** Saves `token_update`, if the response carries one, before anything else of the response is used. */
  async #saveRotation(operation: string, store: TokenStore, body: Json): Promise<boolean> {
    if (body.token_update === undefined || body.token_update === null) return false;
    const update = body.token_update;
    const next = isObject(update) ? update.mytoken : undefined;
    if (!isTokenString(next)) {
      throw new MytokenError(
        'ERR_MYTOKEN_CHAIN_BROKEN',
        `${operation}: the server rotated the mytoken but sent no usable new token; mint a new mytoken`,
        { operation, mayHaveReachedServer: true },
      );
    }
    this.#options.onSecret?.(next);
    try {
      await store.save(next);
    } catch (cause) {
      const error = new MytokenError(
        'ERR_MYTOKEN_TOKEN_STORE',
        `${operation}: the mytoken was rotated but saving it to ${store.description} failed`,
        { operation, cause },
      );
      throw MytokenError.withUnsavedToken(error, next);
    }
    this.#options.logger?.debug('Rotated mytoken saved', { operation, store: store.description });
    return true;
  }

  /**
   * A request that may have rotated the token failed without a readable answer. Asks the server, with a request
   * that never rotates, whether the token in hand is still current: if it is, nothing was spent and the original
   * error stands (marked as not having spent the token, except after a timeout, as the server may still be
   * working on the request); if it was superseded, the new token is gone and the chain is broken. After the
   * server's own 5xx (it rolled back), a superseded token means another user of the token rotated it meanwhile.
   */
  async #diagnoseLostAnswer(
    operation: string,
    token: string,
    original: MytokenError,
  ): Promise<MytokenError> {
    const status = await this.#probe(token);
    this.#options.logger?.debug('Checked token after lost answer', { operation, status });
    if (status === 200 || status === 403) return unspent(original);
    if (status !== 401) return original;
    if (original.code === 'ERR_MYTOKEN_SERVER_ERROR' && original.serverError !== undefined) {
      return new MytokenError(
        'ERR_MYTOKEN_INVALID_TOKEN',
        `${operation}: the mytoken was superseded while this request ran: another user of the token rotated it`,
        { operation, status: original.status, cause: original },
      );
    }
    return new MytokenError(
      'ERR_MYTOKEN_CHAIN_BROKEN',
      `${operation}: the server rotated the mytoken but its answer was lost; the token chain is broken: ` +
        'mint a new mytoken',
      { operation, mayHaveReachedServer: true, cause: original },
    );
  }

  #requireStore(operation: string): TokenStore {
    if (this.#store === undefined) {
      throw new MytokenError(
        'ERR_MYTOKEN_INVALID_INPUT',
        `${operation}: the client has no token store`,
      );
    }
    return this.#store;
  }

  #sendWithRetries(
    operation: string,
    url: string,
    body: Json,
    token: string | undefined,
    idempotent: boolean,
  ): Promise<HttpResponse> {
    return this.#withRetries(async () => {
      const res = await this.#send(operation, url, body, token);
      if (res.status === 429 || (idempotent && res.status >= 500)) {
        throw errorFromResponse(operation, res);
      }
      return res;
    }, idempotent);
  }

  #send(operation: string, url: string, body: Json, token?: string): Promise<HttpResponse> {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (token !== undefined) headers.authorization = `Bearer ${token}`;
    return this.#transport.send({
      method: 'POST',
      url,
      headers,
      body: JSON.stringify(body),
      operation,
    });
  }

  /**
   * Repeats `attempt` on failures that a repeat cannot make worse: the request never left (connect failures),
   * the server refused it before handling it (429), or the request is idempotent anyway.
   */
  async #withRetries<T>(attempt: () => Promise<T>, idempotent = true): Promise<T> {
    const attempts = this.#options.attempts ?? 3;
    for (let n = 1; ; n++) {
      try {
        return await attempt();
      } catch (error) {
        const delay = this.#retryDelay(error, n, attempts, idempotent);
        if (delay === undefined) throw error;
        this.#options.logger?.debug('Retrying request', {
          attempt: n,
          delay_ms: delay,
          err: (error as MytokenError).code,
        });
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
  }

  #retryDelay(
    error: unknown,
    n: number,
    attempts: number,
    idempotent: boolean,
  ): number | undefined {
    if (!(error instanceof MytokenError) || n >= attempts) return undefined;
    const max = this.#options.maxRetryDelayMs ?? 30_000;
    const transient =
      (error.code === 'ERR_MYTOKEN_NETWORK' || error.code === 'ERR_MYTOKEN_TIMEOUT') &&
      (idempotent || !error.mayHaveReachedServer);
    const serverBusy =
      error.code === 'ERR_MYTOKEN_RATE_LIMITED' ||
      (idempotent && error.code === 'ERR_MYTOKEN_SERVER_ERROR');
    if (!transient && !serverBusy) return undefined;
    if (error.retryAfter !== undefined) {
      const wait = error.retryAfter * 1000;
      return wait <= max ? wait : undefined;
    }
    const base = (this.#options.retryDelayMs ?? 250) * 2 ** (n - 1);
    return Math.min(max, base / 2 + Math.random() * base);
  }
}

/**
 * Whether the token may be presented to find out if it is still current. Never for an `auto_revoke` chain: if
 * another user rotated the token meanwhile, presenting the superseded copy would revoke the whole chain, their
 * good token included. Never for a short token either, whose rotation policy cannot be read.
 */
function mayProbe(token: string): boolean {
  const claims = readMytokenClaims(token);
  return claims.kind === 'jwt' && claims.rotation?.autoRevoke !== true;
}

/**
 * The same error, marked as one that did not spend the token (the token was found current after it), when the
 * exchange had ended: a dropped connection or a complete but unusable answer. A timeout or a gateway's 5xx stays
 * marked: the server may still be handling the request and rotate the token after the check.
 */
function unspent(error: MytokenError): MytokenError {
  const ended =
    error.code === 'ERR_MYTOKEN_NETWORK' || error.code === 'ERR_MYTOKEN_MALFORMED_RESPONSE';
  if (!error.mayHaveReachedServer || !ended) return error;
  return new MytokenError(error.code, error.message, {
    operation: error.operation,
    status: error.status,
    serverError: error.serverError,
    serverDescription: error.serverDescription,
    retryAfter: error.retryAfter,
    mayHaveReachedServer: false,
    cause: error.cause,
  });
}

/**
 * Runs a parser of a completed use's answer. The store is current by then (a rotation was saved, or checked not to
 * have happened), so a malformed answer here never leaves a spent token behind.
 */
function settled<T>(parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    throw error instanceof MytokenError ? unspent(error) : error;
  }
}

function parseAccessToken(
  body: Json,
  rotated: boolean,
  onSecret: ((s: string) => void) | undefined,
): AccessToken {
  const operation = 'access_token';
  if (!isTokenString(body.access_token)) throw malformed(operation, 'no usable "access_token"');
  onSecret?.(body.access_token);
  const expiresIn = optionalSeconds(operation, body, 'expires_in');
  return {
    accessToken: body.access_token,
    tokenType: optionalString(operation, body, 'token_type') ?? 'Bearer',
    expiresIn,
    expiresAt: expiresIn === undefined ? undefined : new Date(Date.now() + expiresIn * 1000),
    scope: optionalString(operation, body, 'scope'),
    audience: optionalStrings(operation, body, 'audience'),
    rotated,
  };
}

function parseIssuedMytoken(
  operation: string,
  body: Json,
  onSecret: ((s: string) => void) | undefined,
): IssuedMytoken {
  const mytoken = body.mytoken;
  const transferCode = body.transfer_code;
  if (!isTokenString(mytoken) && !isTokenString(transferCode)) {
    throw malformed(operation, 'neither "mytoken" nor "transfer_code" in the answer');
  }
  if (isTokenString(mytoken)) onSecret?.(mytoken);
  if (isTokenString(transferCode)) onSecret?.(transferCode);
  const rotation = isObject(body.rotation) ? body.rotation : undefined;
  return {
    mytoken: isTokenString(mytoken) ? mytoken : undefined,
    transferCode: isTokenString(transferCode) ? transferCode : undefined,
    mytokenType: optionalString(operation, body, 'mytoken_type') ?? 'token',
    momId: optionalString(operation, body, 'mom_id'),
    expiresIn: optionalSeconds(operation, body, 'expires_in'),
    capabilities: optionalStrings(operation, body, 'capabilities') ?? [],
    restrictions: Array.isArray(body.restrictions) ? body.restrictions.filter(isObject) : [],
    rotation:
      rotation === undefined
        ? undefined
        : {
            onAT: rotation.on_AT === true,
            onOther: rotation.on_other === true,
            lifetime: typeof rotation.lifetime === 'number' ? rotation.lifetime : 0,
            autoRevoke: rotation.auto_revoke === true,
          },
  };
}

function rotationBody(rotation: RotationRequest): Json {
  const body: Json = {};
  if (rotation.onAT !== undefined) body.on_AT = rotation.onAT;
  if (rotation.onOther !== undefined) body.on_other = rotation.onOther;
  if (rotation.lifetime !== undefined) body.lifetime = rotation.lifetime;
  if (rotation.autoRevoke !== undefined) body.auto_revoke = rotation.autoRevoke;
  return body;
}

function joined(value: string | string[]): string {
  return Array.isArray(value) ? value.join(' ') : value;
}
