/**
 * The access-token cache and the mytoken's lifecycle. One slot per (scope, audience) holds the
 * current access token and hands it to every check that needs it; a slot refreshes shortly before
 * the token expires, one refresh at a time, while checks go on with the still-valid token. Uses of
 * the mytoken itself are serialised by the client, which saves each rotated mytoken (through
 * `ObservedStore`) before the access token it came with is handed out.
 *
 * A refresh is never aborted once sent: with a rotating mytoken an abandoned exchange can spend the
 * only valid copy of the credential. Checks stop waiting when their own deadline passes; the
 * refresh runs on.
 */
import { performance } from 'node:perf_hooks';
import {
  MytokenError,
  readMytokenClaims,
  type AccessToken,
  type MytokenClaims,
  type OpaqueMytoken,
  type TokenStore,
} from '../src/client/index.ts';
import type { Logger } from './log.ts';

/** What the token layer reports; implemented by the metrics module. */
export interface TokenEvents {
  tokenRequest(result: 'success' | 'failure'): void;
  rotation(): void;
  storeWrite(result: 'success' | 'failure'): void;
  /** Unix seconds the mytoken expires at; 0 when it never does or cannot tell. */
  mytokenExpiry(seconds: number): void;
  chainBroken(broken: boolean): void;
}

/** The subset of `MytokenClient` the cache needs. */
export interface AccessTokenClient {
  accessToken(request: { scope?: string; audience?: string }): Promise<AccessToken>;
  close(): Promise<void>;
}

export interface AccessTokensOptions {
  client: AccessTokenClient;
  logger: Logger;
  events: TokenEvents;
  /** Longest wait between attempts after failed refreshes, in ms. Default 60 000. */
  maxBackoffMs?: number;
  /** First wait after a failed refresh, in ms. Default 1 000. */
  minBackoffMs?: number;
}

/** Raised to a check that could not get an access token; `message` is safe to log and show. */
export class TokenUnavailableError extends Error {
  readonly code: string;

  constructor(message: string, code: string, cause?: unknown) {
    super(message, { cause });
    this.name = 'TokenUnavailableError';
    this.code = code;
  }
}

const ASSUMED_LIFETIME_MS = 60_000;
const MAX_TIMER_MS = 2_000_000_000;
const CHAIN_BROKEN_CODES = new Set(['ERR_MYTOKEN_CHAIN_BROKEN', 'ERR_MYTOKEN_INVALID_TOKEN']);

export class AccessTokens {
  readonly #options: AccessTokensOptions;
  readonly #slots = new Map<string, TokenSlot>();
  readonly #inflight = new Set<Promise<void>>();
  #closed = false;
  #keepAlive: NodeJS.Timeout | undefined;
  /** The mytoken in use is an `auto_revoke` one, which the client never presents to test it. */
  #autoRevoke = false;
  #chainBroken = false;

  constructor(options: AccessTokensOptions) {
    this.#options = options;
  }

  /** The slot shared by every check with this scope and audience. */
  slot(scope: string | undefined, audience: string | undefined): TokenSlot {
    const key = `${scope ?? ''}\u0000${audience ?? ''}`;
    let slot = this.#slots.get(key);
    if (slot === undefined) {
      slot = new TokenSlot(this, scope, audience);
      this.#slots.set(key, slot);
    }
    return slot;
  }

  /** Refreshes one slot so that a rotating mytoken is used (and renewed) before it dies unused. */
  keepAlive(): Promise<void> {
    const slot = this.#slots.values().next().value ?? this.slot(undefined, undefined);
    return slot.refreshNow();
  }

  /**
   * Follows the mytoken in use. A rotating token with a rotation lifetime dies if it is not used
   * within that lifetime; when access tokens are cached for longer than that, an exchange is made
   * just to renew it.
   */
  observeMytoken(claims: MytokenClaims | OpaqueMytoken): void {
    clearTimeout(this.#keepAlive);
    this.#keepAlive = undefined;
    this.#autoRevoke = claims.kind === 'jwt' && claims.rotation?.autoRevoke === true;
    if (this.#closed || claims.kind !== 'jwt' || claims.expiresAt === undefined) return;
    const rotation = claims.rotation;
    if (rotation === undefined || !rotation.onAT || rotation.lifetime <= 0) return;
    // Renew when a fifth of the rotation lifetime is left.
    const due = claims.expiresAt.getTime() - rotation.lifetime * 1000 * 0.2;
    this.#armKeepAlive(due);
  }

  #armKeepAlive(due: number): void {
    const delay = due - Date.now();
    // setTimeout overflows past about 24.8 days: re-arm in steps.
    this.#keepAlive = setTimeout(
      () => {
        if (delay > MAX_TIMER_MS) return this.#armKeepAlive(due);
        this.#keepAlive = undefined;
        this.#options.logger.info('Renewing mytoken before its rotation lifetime ends');
        void this.keepAlive().then(() => this.#retryKeepAlive());
      },
      Math.max(0, Math.min(delay, MAX_TIMER_MS)),
    );
    this.#keepAlive.unref();
  }

  /**
   * A renewal that rotated the token has armed the next one (through `observeMytoken`); else try
   * again soon.
   */
  #retryKeepAlive(): void {
    if (this.#keepAlive === undefined && !this.#closed) this.#armKeepAlive(Date.now() + 60_000);
  }

  /** Waits for exchanges in flight (never aborting one), then closes the client. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#keepAlive);
    await Promise.allSettled([...this.#inflight]);
    await this.#options.client.close();
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** @internal Runs one exchange for a slot and reports it. */
  async exchange(scope: string | undefined, audience: string | undefined): Promise<AccessToken> {
    const { client, events } = this.#options;
    const request: { scope?: string; audience?: string } = {};
    if (scope !== undefined) request.scope = scope;
    if (audience !== undefined) request.audience = audience;
    try {
      const at = await client.accessToken(request);
      events.tokenRequest('success');
      this.#setChainBroken(false);
      if (at.rotated) events.rotation();
      return at;
    } catch (error) {
      events.tokenRequest('failure');
      if (error instanceof MytokenError) this.#judgeChain(error);
      throw error;
    }
  }

  /**
   * A lost or rejected token breaks the chain. An `auto_revoke` token cannot be tested after a lost
   * answer (presenting a superseded copy would revoke the whole chain), so the client reports the
   * network error as it is: the chain may be broken, and counts as such until an exchange succeeds.
   */
  #judgeChain(error: MytokenError): void {
    if (CHAIN_BROKEN_CODES.has(error.code)) {
      this.#setChainBroken(
        true,
        error.code,
        'Mytoken chain broken: mint a new mytoken and replace the token file',
      );
    } else if (this.#autoRevoke && error.mayHaveReachedServer) {
      this.#setChainBroken(
        true,
        error.code,
        'Mytoken chain may be broken: the answer to an auto_revoke mytoken was lost; if the next exchanges fail, mint a new mytoken and replace the token file',
      );
    }
  }

  /** Reports the chain's state; logs once when it breaks (each failed exchange logs too). */
  #setChainBroken(broken: boolean, code?: string, message?: string): void {
    this.#options.events.chainBroken(broken);
    if (broken && !this.#chainBroken && message !== undefined) {
      this.#options.logger.error(message, { code });
    }
    if (!broken && this.#chainBroken) this.#options.logger.info('Mytoken chain restored');
    this.#chainBroken = broken;
  }

  /** @internal */
  track(promise: Promise<void>): void {
    this.#inflight.add(promise);
    void promise.finally(() => this.#inflight.delete(promise));
  }

  /** @internal */
  get options(): AccessTokensOptions {
    return this.#options;
  }
}

/**
 * One cached access token. `current()` is the hot path: a field read and a clock read. `fetch()`
 * waits for a refresh when there is no usable token.
 */
export class TokenSlot {
  readonly scope: string | undefined;
  readonly audience: string | undefined;
  readonly #owner: AccessTokens;
  #token: string | undefined;
  #obtainedAt = 0;
  #refreshAt = 0;
  #usableUntil = 0;
  #minAgeForRetryMs = 0;
  #inflight: Promise<void> | undefined;
  #failures = 0;
  #retryAt = 0;
  #lastError: TokenUnavailableError | undefined;

  constructor(owner: AccessTokens, scope: string | undefined, audience: string | undefined) {
    this.#owner = owner;
    this.scope = scope;
    this.audience = audience;
  }

  /** The cached token if it may still be used; starts a background refresh when it is due. */
  current(): string | undefined {
    if (this.#token === undefined) return undefined;
    const now = performance.now();
    if (now < this.#refreshAt) return this.#token;
    if (now >= this.#usableUntil) return undefined;
    if (this.#inflight === undefined && now >= this.#retryAt) this.#startRefresh();
    return this.#token;
  }

  /**
   * A usable token, refreshing if needed; rejects with `TokenUnavailableError` or the signal's
   * reason.
   */
  async fetch(signal?: AbortSignal): Promise<string> {
    const cached = this.current();
    if (cached !== undefined) return cached;
    let pending = this.#inflight;
    if (pending === undefined) {
      if (performance.now() < this.#retryAt && this.#lastError !== undefined) throw this.#lastError;
      pending = this.#startRefresh();
    }
    await waitFor(pending, signal);
    const token = this.current();
    if (token !== undefined) return token;
    throw this.#lastError ?? new TokenUnavailableError('no access token', 'ERR_PROBE_TOKEN');
  }

  /**
   * The target refused `token` (401): drop it so that the next `fetch` gets a fresh one. A token
   * younger than a quarter of its lifetime (at most 10 s) is kept, so a target that always answers
   * 401 cannot make the probe spend the mytoken on every run.
   */
  invalidate(token: string): boolean {
    if (token !== this.#token) return true;
    if (performance.now() - this.#obtainedAt < this.#minAgeForRetryMs) return false;
    this.#token = undefined;
    this.#refreshAt = 0;
    this.#usableUntil = 0;
    return true;
  }

  /** Refreshes now (for the mytoken keep-alive) unless a refresh is already running. */
  refreshNow(): Promise<void> {
    return this.#inflight ?? this.#startRefresh();
  }

  #startRefresh(): Promise<void> {
    if (this.#owner.closed) {
      this.#lastError = new TokenUnavailableError('probe is shutting down', 'ERR_PROBE_CLOSED');
      return Promise.resolve();
    }
    const started = performance.now();
    const run = this.#owner
      .exchange(this.scope, this.audience)
      .then((at) => this.#accept(at, started))
      .catch((error: unknown) => this.#reject(error))
      .finally(() => {
        this.#inflight = undefined;
      });
    this.#inflight = run;
    this.#owner.track(run);
    return run;
  }

  #accept(at: AccessToken, started: number): void {
    // `expires_in` is in whole seconds and the token's `exp` is too: a second may already be gone.
    const lifetime =
      at.expiresIn === undefined ? ASSUMED_LIFETIME_MS : Math.max(1, at.expiresIn - 1) * 1000;
    // Refresh at 90% of the lifetime (at most a minute early, at least a second), and stop handing
    // the token out halfway through that margin, so a check never starts with a token about to
    // expire in flight.
    const margin = Math.min(60_000, Math.max(1_000, lifetime * 0.1));
    this.#token = at.accessToken;
    this.#obtainedAt = started;
    this.#refreshAt = started + lifetime - margin;
    this.#usableUntil = started + lifetime - margin / 2;
    this.#minAgeForRetryMs = Math.min(10_000, lifetime / 4);
    this.#failures = 0;
    this.#retryAt = 0;
    this.#lastError = undefined;
  }

  #reject(error: unknown): void {
    const { logger, minBackoffMs = 1_000, maxBackoffMs = 60_000 } = this.#owner.options;
    this.#failures++;
    const base = Math.min(maxBackoffMs, minBackoffMs * 2 ** (this.#failures - 1));
    const wait = base / 2 + (Math.random() * base) / 2;
    this.#retryAt = performance.now() + wait;
    const code = error instanceof MytokenError ? error.code : 'ERR_PROBE_TOKEN';
    const message = error instanceof Error ? error.message : 'access token request failed';
    this.#lastError = new TokenUnavailableError(message, code, error);
    logger.error('Access token request failed', {
      code,
      err: message,
      scope: this.scope,
      audience: this.audience,
      retry_in_seconds: Math.round(wait / 100) / 10,
    });
  }
}

function waitFor(promise: Promise<void>, signal: AbortSignal | undefined): Promise<void> {
  if (signal === undefined) return promise;
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    void promise.then(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    });
  });
}

/**
 * Wraps the token store to report writes and expiry, and to keep a rotated mytoken in memory when
 * it cannot be written: the save still fails (so its access token is not used, as the client
 * guarantees), but the next use presents the newest token instead of the dead one on disk, and
 * tries to save again.
 */
export class ObservedStore implements TokenStore {
  readonly description: string;
  readonly #inner: TokenStore;
  readonly #events: TokenEvents;
  readonly #onToken: (token: string, claims: MytokenClaims | OpaqueMytoken) => void;
  #unsaved: string | undefined;
  #last: string | undefined;

  constructor(
    inner: TokenStore,
    events: TokenEvents,
    onToken: (token: string, claims: MytokenClaims | OpaqueMytoken) => void = () => undefined,
  ) {
    this.#inner = inner;
    this.#events = events;
    this.#onToken = onToken;
    this.description = inner.description;
  }

  async load(): Promise<string> {
    const token = this.#unsaved ?? (await this.#inner.load());
    this.#observe(token);
    return token;
  }

  async save(token: string): Promise<void> {
    try {
      await this.#inner.save(token);
    } catch (error) {
      this.#unsaved = token;
      this.#observe(token);
      this.#events.storeWrite('failure');
      throw error;
    }
    this.#unsaved = undefined;
    this.#observe(token);
    this.#events.storeWrite('success');
  }

  #observe(token: string): void {
    if (token === this.#last) return;
    this.#last = token;
    const claims = readMytokenClaims(token);
    const exp = claims.kind === 'jwt' ? claims.expiresAt : undefined;
    this.#events.mytokenExpiry(exp === undefined ? 0 : Math.floor(exp.getTime() / 1000));
    this.#onToken(token, claims);
  }
}
