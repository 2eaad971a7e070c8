/**
 * A small GitHub REST client for the secrets routes and the jobs listing. It runs on the mytoken client's transport
 * (undici with connect/response timeouts, a body bound and HTTP(S)_PROXY / NO_PROXY support), honours
 * GITHUB_API_URL (GitHub Enterprise Server puts the API under `/api/v3`), and retries what GitHub documents as
 * transient: 5xx, 429, secondary rate limits and network failures, with jittered backoff inside a time budget.
 */
import { MytokenError, isLoopback, type Transport } from '../client/index.ts';
import { ActionError } from './errors.ts';

export interface GitHubApiOptions {
  /** GITHUB_API_URL, e.g. `https://api.github.com` or `https://ghes.example/api/v3`. */
  apiUrl: string;
  token: string;
  /** The input the token came from, for messages. Default `github-token`. */
  tokenInput?: string;
  transport: Transport;
  allowInsecureHttp?: boolean;
  debug?: (message: string) => void;
  /** Attempts per GET, the first included. Default 5. */
  attempts?: number;
  /**
   * Attempts per PUT. Default 8 (about 40 s of backoff): a PUT writes back a mytoken that was already rotated,
   * and giving up means the chain is lost, so it is worth waiting out a short GitHub outage.
   */
  writeAttempts?: number;
  /** First backoff step in milliseconds; doubles per attempt, ±50 % jitter. Default 300. */
  baseDelayMs?: number;
  /** Total time the retries of one request may wait, in milliseconds. Default 120 000. */
  budgetMs?: number;
  sleep?: (ms: number) => Promise<void>;
}

export interface GitHubResponse {
  status: number;
  body: Record<string, unknown>;
  headers: Record<string, string | string[] | undefined>;
}

const API_VERSION = '2022-11-28';
const MAX_SINGLE_WAIT_MS = 30_000;

export class GitHubApi {
  readonly apiUrl: string;
  readonly #options: GitHubApiOptions;

  constructor(options: GitHubApiOptions) {
    this.apiUrl = checkApiUrl(options.apiUrl, options.allowInsecureHttp ?? false);
    this.#options = options;
  }

  /** GET; resolves for 2xx, rejects with an `ActionError` otherwise. */
  get(path: string, operation: string): Promise<GitHubResponse> {
    return this.#request('GET', path, undefined, operation);
  }

  /** PUT with a JSON body. PUTs of a secret are idempotent, so they are retried like GETs. */
  put(path: string, body: unknown, operation: string): Promise<GitHubResponse> {
    return this.#request('PUT', path, JSON.stringify(body), operation);
  }

  async #request(
    method: 'GET' | 'PUT',
    path: string,
    body: string | undefined,
    operation: string,
  ): Promise<GitHubResponse> {
    const attempts =
      method === 'PUT' ? (this.#options.writeAttempts ?? 8) : (this.#options.attempts ?? 5);
    const deadline = Date.now() + (this.#options.budgetMs ?? 120_000);
    for (let n = 1; ; n++) {
      const outcome = await this.#attempt(method, path, body, operation);
      if ('response' in outcome) return outcome.response;
      const wait = this.#retryWait(outcome, n);
      const retry = wait !== undefined && n < attempts && Date.now() + wait <= deadline;
      if (!retry)
        throw finalError(outcome, operation, n, this.#options.tokenInput ?? 'github-token');
      this.#options.debug?.(
        `GitHub ${operation}: attempt ${n} failed (${outcome.res?.status ?? outcome.error?.code}), retrying in ${wait} ms`,
      );
      await (this.#options.sleep ?? delay)(wait);
    }
  }

  async #attempt(
    method: 'GET' | 'PUT',
    path: string,
    body: string | undefined,
    operation: string,
  ): Promise<Outcome> {
    const headers: Record<string, string> = {
      accept: 'application/vnd.github+json',
      authorization: `Bearer ${this.#options.token}`,
      'x-github-api-version': API_VERSION,
    };
    if (body !== undefined) headers['content-type'] = 'application/json';
    try {
      const res = await this.#options.transport.send({
        method,
        url: `${this.apiUrl}${path}`,
        headers,
        body,
        operation,
      });
      const parsed = { status: res.status, body: parseJson(res.text), headers: res.headers };
      if (res.status >= 200 && res.status < 300) return { response: parsed };
      return { res: parsed };
    } catch (error) {
      if (error instanceof MytokenError) return { error };
      throw error;
    }
  }

  /** Milliseconds to wait before the next attempt, or undefined when the failure is not transient. */
  #retryWait(outcome: Failure, n: number): number | undefined {
    const base = (this.#options.baseDelayMs ?? 300) * 2 ** (n - 1);
    const backoff = Math.round(base / 2 + Math.random() * base);
    if (outcome.error !== undefined) {
      const transient = ['ERR_MYTOKEN_NETWORK', 'ERR_MYTOKEN_TIMEOUT'].includes(outcome.error.code);
      return transient ? backoff : undefined;
    }
    const res = outcome.res;
    if (res === undefined) return undefined;
    const limited = rateLimitWait(res);
    // A limit that resets later than we are willing to wait fails now, with GitHub's reason.
    if (limited !== undefined)
      return limited > MAX_SINGLE_WAIT_MS ? undefined : Math.max(limited, backoff);
    if (res.status >= 500 || res.status === 429) return backoff;
    return undefined;
  }
}

type Failure = { res?: GitHubResponse; error?: MytokenError };
type Outcome = { response: GitHubResponse } | Failure;

/**
 * For a rate-limited answer, how long GitHub asks us to wait; undefined when it is not a rate limit. GitHub marks
 * secondary limits with `retry-after` (403 or 429) and primary ones with `x-ratelimit-remaining: 0`.
 */
function rateLimitWait(res: GitHubResponse): number | undefined {
  if (res.status !== 403 && res.status !== 429) return undefined;
  const retryAfter = Number(headerValue(res, 'retry-after'));
  if (headerValue(res, 'retry-after') !== undefined && Number.isFinite(retryAfter)) {
    return retryAfter * 1000;
  }
  if (headerValue(res, 'x-ratelimit-remaining') === '0') {
    const reset = Number(headerValue(res, 'x-ratelimit-reset'));
    return Number.isFinite(reset) ? Math.max(0, reset * 1000 - Date.now()) : 60_000;
  }
  const message = typeof res.body.message === 'string' ? res.body.message : '';
  return /rate limit/i.test(message) ? 0 : undefined;
}

function finalError(
  outcome: Failure,
  operation: string,
  attempts: number,
  tokenInput: string,
): ActionError {
  const tries = attempts > 1 ? ` after ${attempts} attempts` : '';
  if (outcome.error !== undefined) {
    const what = outcome.error.message.replace(`${operation}: `, '');
    return new ActionError('ERR_ACTION_GITHUB', `GitHub ${operation} failed${tries}: ${what}`, {
      attempts,
      cause: outcome.error,
    });
  }
  const res = outcome.res as GitHubResponse;
  const said = githubMessage(res);
  const details = { status: res.status, attempts };
  if (res.status === 401) {
    return new ActionError(
      'ERR_ACTION_GITHUB_PERMISSION',
      `GitHub rejected "${tokenInput}" (401${said})`,
      details,
    );
  }
  if (res.status === 403 && rateLimitWait(res) === undefined) {
    return new ActionError(
      'ERR_ACTION_GITHUB_PERMISSION',
      `"${tokenInput}" may not ${operation} (403${said})`,
      details,
    );
  }
  if (res.status === 404) {
    return new ActionError(
      'ERR_ACTION_GITHUB_NOT_FOUND',
      `GitHub ${operation}: not found (404)`,
      details,
    );
  }
  return new ActionError(
    'ERR_ACTION_GITHUB',
    `GitHub ${operation} failed${tries} (${res.status}${said})`,
    details,
  );
}

/** GitHub's `message`, first line only and bounded, as it may be long and is shown to users. */
function githubMessage(res: GitHubResponse): string {
  const message = res.body.message;
  if (typeof message !== 'string' || message === '') return '';
  const line = message.split('\n')[0]?.trim() ?? '';
  return `: ${line.length > 120 ? `${line.slice(0, 117)}...` : line}`;
}

function headerValue(res: GitHubResponse, name: string): string | undefined {
  const value = res.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function parseJson(text: string): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : {};
  } catch {
    return {};
  }
}

function checkApiUrl(value: string, allowInsecureHttp: boolean): string {
  if (!URL.canParse(value)) {
    throw new ActionError('ERR_ACTION_INVALID_INPUT', `GITHUB_API_URL "${value}" is not a URL`, {
      input: 'GITHUB_API_URL',
    });
  }
  const url = new URL(value);
  const insecure = url.protocol === 'http:' && !isLoopback(url.hostname) && !allowInsecureHttp;
  if ((url.protocol !== 'https:' && url.protocol !== 'http:') || insecure) {
    throw new ActionError(
      'ERR_ACTION_INVALID_INPUT',
      `GITHUB_API_URL "${url.origin}" must use https (or set "allow-insecure-http: true")`,
      { input: 'GITHUB_API_URL' },
    );
  }
  return url.href.replace(/\/+$/, '');
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
