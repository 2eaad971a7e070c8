/**
 * A loopback fake of the GitHub REST routes the Action uses: public keys and secrets of
 * repositories, environments and organisations, `GET /repos/{owner}/{repo}`, and the jobs of a
 * workflow run attempt (`GET /repos/{owner}/{repo}/actions/runs/{id}/attempts/{n}/jobs`). It is the
 * project's one mock, so it keeps GitHub's wire behaviour where the Action can observe it: real
 * sealed boxes (libsodium X25519 key pairs, one per scope), 201 on create and 204 on update,
 * upper-cased names, timestamps truncated to seconds, JSON error bodies `{message,
 * documentation_url, status}`, rate-limit and request-id headers, and injectable faults.
 *
 * Permissions are simplified: a token is `none` (valid, but no secrets access, like a job's
 * GITHUB_TOKEN), `read` (GETs) or `write` (everything). Authorization values are never recorded.
 *
 * @example
 * const github = await startGitHubFake({ tokens: { ghs_writer: 'write' } });
 * // run the Action with GITHUB_API_URL=github.url, then:
 * expect(github.secret({ repo: 'acme/app' }, 'MYTOKEN')?.value).toBe(rotatedToken);
 * await github.close();
 */

import { randomBytes, randomInt } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import sodium from 'libsodium-wrappers';
import { FaultQueue } from './github-fake-faults.ts';
import type { GitHubFault, GitHubFaultKind, GitHubFaultRule } from './github-fake-faults.ts';

export type { GitHubFault, GitHubFaultKind, GitHubFaultRule } from './github-fake-faults.ts';

/** `none`: valid token without secrets access; `read`: GETs only; `write`: everything. */
export type TokenRight = 'none' | 'read' | 'write';

/** Where a secret lives: `{ repo: 'owner/name' }`, `{ repo, environment }` or `{ org }`. */
export type SecretScope = { repo: string; environment?: string } | { org: string };

export type OrgVisibility = 'all' | 'private' | 'selected';

export interface GitHubFakeOptions {
  /** Accepted tokens and what each may do. Any other token gets 401 `Bad credentials`. */
  tokens?: Readonly<Record<string, TokenRight>>;
  /**
   * `owner/name` of existing repositories (case-insensitive); any repository exists when left out.
   */
  repos?: readonly string[];
  /** `owner/name:environment` of existing environments; any environment exists when left out. */
  environments?: readonly string[];
  /** Existing organisations; any organisation exists when left out. */
  orgs?: readonly string[];
  /** Clock for `created_at` / `updated_at` and rate-limit resets; the wall clock by default. */
  now?: () => Date;
  /** Accepted `X-GitHub-Api-Version` values (the header itself is optional, as on GitHub). */
  apiVersions?: readonly string[];
  /** Path the API lives under, e.g. `/api/v3` as on GitHub Enterprise Server; `url` includes it. */
  pathPrefix?: string;
  /** Primary rate limit per token (requests); 5000 by default. */
  rateLimit?: number;
  /** Serve HTTPS with this key and certificate instead of plain HTTP (see `tls-cert.ts`). */
  tls?: { key: string | Buffer; cert: string | Buffer };
}

/** A stored secret, decrypted. Timestamps are ISO 8601 with second precision. */
export interface SecretView {
  name: string;
  value: string;
  createdAt: string;
  updatedAt: string;
  visibility?: OrgVisibility;
  selectedRepositoryIds?: number[];
}

export interface SeedOptions {
  createdAt?: Date | string;
  /** Set this to simulate a write by a concurrent run at a known time. */
  updatedAt?: Date | string;
  visibility?: OrgVisibility;
  selectedRepositoryIds?: number[];
}

/** A job of a workflow run attempt, for `addJob`. */
export interface JobSeed {
  runId: number | string;
  /** Default 1. */
  attempt?: number;
  /** `RUNNER_NAME` of the runner that runs the job. */
  runnerName: string;
  /** Default `in_progress`. */
  status?: 'queued' | 'in_progress' | 'completed';
  startedAt: Date | string;
  name?: string;
}

/** The body of the public-key routes. */
export interface PublicKey {
  key_id: string;
  key: string;
}

/** One request as the fake saw it. Never holds header values that carry credentials. */
export interface RecordedRequest {
  method: string;
  /** Path and query as requested, `pathPrefix` included. */
  path: string;
  /** Status sent (or decided, if the client left); 0 while pending and for reset connections. */
  status: number;
  /** Wall-clock arrival time, ISO 8601. */
  time: string;
  requestId: string;
  /** Authorization scheme only: `bearer`, `token`, `other` (e.g. Basic) or `none`. */
  auth: 'bearer' | 'token' | 'other' | 'none';
  apiVersion: string | undefined;
  userAgent: string | undefined;
  host: string | undefined;
  /** True when the request line carried an absolute URI, as clients send to a forward proxy. */
  absoluteForm: boolean;
  /** The `Via` header a forward proxy adds (see `http-proxy.ts`). */
  via: string | undefined;
  fault: GitHubFaultKind | undefined;
}

export type GitHubFakeErrorCode =
  'ERR_GITHUB_FAKE_INVALID_SCOPE' | 'ERR_GITHUB_FAKE_INVALID_NAME' | 'ERR_GITHUB_FAKE_INVALID_DATE';

/** Misuse of the fake's helpers by a test. */
export class GitHubFakeError extends Error {
  readonly code: GitHubFakeErrorCode;

  constructor(code: GitHubFakeErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'GitHubFakeError';
    this.code = code;
  }
}

/** Starts a fake on 127.0.0.1 with an ephemeral port. */
export function startGitHubFake(options: GitHubFakeOptions = {}): Promise<GitHubFake> {
  return GitHubFake.start(options);
}

const DOCS = 'https://docs.github.com/rest';
const RATE_DOCS = `${DOCS}/using-the-rest-api/rate-limits-for-the-rest-api`;
const DEFAULT_API_VERSION = '2022-11-28';
const API_VERSIONS = [DEFAULT_API_VERSION, '2026-03-10'];
const MAX_SECRET_BYTES = 48 * 1024;
// The messages below are GitHub's wire values (clients match on some of them), not prose of ours.
const NAME_RULE =
  'Secret names can only contain alphanumeric characters ([a-z], [A-Z], [0-9]) or underscores (_). ' +
  'Spaces are not allowed. Must start with a letter ([a-z], [A-Z]) or underscores (_).';
const IMPROPERLY_ENCRYPTED =
  'Bad request - validation failed due to an improperly encrypted secret';
const NOT_INTEGRATION = 'Resource not accessible by integration';
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{4})$/;
const VISIBILITIES: readonly unknown[] = ['all', 'private', 'selected'];

type ScopeRef =
  | { kind: 'organization'; key: string; org: string }
  | { kind: 'repository'; key: string; repo: string }
  | { kind: 'environment'; key: string; repo: string; environment: string };

type SecretOp = 'get-secret' | 'put-secret' | 'delete-secret';

type Route =
  | { op: 'repo'; owner: string; name: string }
  | { op: 'jobs'; owner: string; name: string; runId: string; attempt: string }
  | { op: 'public-key'; scope: ScopeRef }
  | { op: SecretOp; scope: ScopeRef; name: string };

interface Reply {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

interface Exchange {
  req: http.IncomingMessage;
  res: http.ServerResponse;
  entry: RecordedRequest;
  /** Path without prefix and query; undefined when outside the prefix. */
  route: string | undefined;
  query: URLSearchParams;
  headers: Record<string, string>;
}

interface KeyPair {
  id: string;
  publicKey: Uint8Array;
  privateKey: Uint8Array;
}

interface ScopeState {
  key: KeyPair;
  secrets: Map<string, SecretView>;
}

interface PutBody {
  encryptedValue: string;
  keyId: string;
  visibility?: OrgVisibility;
  selectedRepositoryIds?: number[] | undefined;
}

export class GitHubFake {
  readonly #server: http.Server;
  readonly #scheme: 'http' | 'https';
  readonly #tokens: Map<string, TokenRight>;
  readonly #repos: Set<string> | undefined;
  readonly #environments: Set<string> | undefined;
  readonly #orgs: Set<string> | undefined;
  readonly #now: () => Date;
  readonly #apiVersions: readonly string[];
  readonly #prefix: string;
  readonly #rateLimit: number;
  readonly #rateReset: number;
  readonly #states = new Map<string, ScopeState>();
  readonly #faults = new FaultQueue();
  readonly #requests: RecordedRequest[] = [];
  readonly #sleepers = new Set<() => void>();
  readonly #repoIds = new Map<string, number>();
  readonly #used = new Map<string, number>();
  readonly #jobs = new Map<string, Record<string, unknown>[]>();
  #port = 0;
  #closed = false;

  private constructor(options: GitHubFakeOptions) {
    const lower = (list?: readonly string[]) => list && new Set(list.map((s) => s.toLowerCase()));
    this.#tokens = new Map(Object.entries(options.tokens ?? {}));
    this.#repos = lower(options.repos);
    this.#environments = lower(options.environments);
    this.#orgs = lower(options.orgs);
    this.#now = options.now ?? (() => new Date());
    this.#apiVersions = options.apiVersions ?? API_VERSIONS;
    this.#prefix = (options.pathPrefix ?? '').replace(/\/+$/, '');
    this.#rateLimit = options.rateLimit ?? 5000;
    this.#rateReset = Math.floor(this.#now().getTime() / 1000) + 3600;
    this.#scheme = options.tls ? 'https' : 'http';
    const listener: http.RequestListener = (req, res) => {
      this.#handle(req, res).catch((error: unknown) => this.#crash(res, error));
    };
    this.#server = options.tls
      ? https.createServer({ key: options.tls.key, cert: options.tls.cert }, listener)
      : http.createServer(listener);
  }

  static async start(options: GitHubFakeOptions): Promise<GitHubFake> {
    await sodium.ready;
    const fake = new GitHubFake(options);
    fake.#server.listen(0, '127.0.0.1');
    await once(fake.#server, 'listening');
    fake.#port = (fake.#server.address() as AddressInfo).port;
    return fake;
  }

  get port(): number {
    return this.#port;
  }

  /** Base URL for `GITHUB_API_URL`, `pathPrefix` included, no trailing slash. */
  get url(): string {
    return `${this.#scheme}://127.0.0.1:${this.port}${this.#prefix}`;
  }

  /** Every request so far, oldest first. */
  get requests(): readonly RecordedRequest[] {
    return this.#requests;
  }

  clearRequests(): void {
    this.#requests.length = 0;
  }

  /** The scope's current public key, as the public-key route serves it. */
  publicKey(scope: SecretScope): PublicKey {
    const { key } = this.#state(toScopeRef(scope));
    return {
      key_id: key.id,
      key: sodium.to_base64(key.publicKey, sodium.base64_variants.ORIGINAL),
    };
  }

  /** Replaces the scope's key pair; PUTs sealed for the old key then fail with 422. */
  rotateKey(scope: SecretScope): PublicKey {
    this.#state(toScopeRef(scope)).key = newKeyPair();
    return this.publicKey(scope);
  }

  /** The stored secret, decrypted, or undefined. Names are case-insensitive, as on GitHub. */
  secret(scope: SecretScope, name: string): SecretView | undefined {
    const stored = this.#states.get(toScopeRef(scope).key)?.secrets.get(name.toUpperCase());
    return stored && structuredClone(stored);
  }

  /** Seeds or overwrites a secret without going through HTTP. */
  setSecret(
    scope: SecretScope,
    name: string,
    value: string,
    options: SeedOptions = {},
  ): SecretView {
    if (nameProblem(name) !== undefined) {
      throw new GitHubFakeError('ERR_GITHUB_FAKE_INVALID_NAME', `invalid secret name "${name}"`);
    }
    const secrets = this.#state(toScopeRef(scope)).secrets;
    const updatedAt = seconds(options.updatedAt ?? this.#now());
    const createdAt = options.createdAt === undefined ? undefined : seconds(options.createdAt);
    const upper = name.toUpperCase();
    const view: SecretView = {
      name: upper,
      value,
      createdAt: createdAt ?? secrets.get(upper)?.createdAt ?? updatedAt,
      updatedAt,
      ...orgFields(options),
    };
    secrets.set(upper, view);
    return structuredClone(view);
  }

  /** The id `GET /repos/{owner}/{repo}` reports; stable for the fake's lifetime. */
  repoId(repo: string): number {
    const key = repo.toLowerCase();
    const id = this.#repoIds.get(key) ?? 700_000_001 + this.#repoIds.size;
    this.#repoIds.set(key, id);
    return id;
  }

  /**
   * Adds a job to a run attempt of `repo` (`owner/name`), as the jobs route lists it: GitHub's field
   * names, timestamps with second precision. A run without jobs is unknown to the route (404).
   */
  addJob(repo: string, job: JobSeed): Record<string, unknown> {
    const attempt = job.attempt ?? 1;
    const key = jobsKey(repo, String(job.runId), String(attempt));
    const jobs = this.#jobs.get(key) ?? [];
    const status = job.status ?? 'in_progress';
    const id = 900_000_001 + [...this.#jobs.values()].reduce((n, list) => n + list.length, 0);
    const view: Record<string, unknown> = {
      id,
      run_id: Number(job.runId),
      run_attempt: attempt,
      url: `${this.url}/repos/${repo}/actions/jobs/${id}`,
      status,
      conclusion: status === 'completed' ? 'success' : null,
      started_at: seconds(job.startedAt),
      completed_at: status === 'completed' ? seconds(this.#now()) : null,
      name: job.name ?? `job ${jobs.length + 1}`,
      labels: ['ubuntu-latest'],
      runner_name: status === 'queued' ? null : job.runnerName,
    };
    jobs.push(view);
    this.#jobs.set(key, jobs);
    return structuredClone(view);
  }

  /** Queues a fault; see `GitHubFaultRule`. */
  inject(rule: GitHubFaultRule): void {
    this.#faults.add(rule);
  }

  /** Fault uses not yet consumed. */
  pendingFaults(): number {
    return this.#faults.pending();
  }

  clearFaults(): void {
    this.#faults.clear();
  }

  /** Stops listening, drops open connections and releases delayed requests. Safe to call twice. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const wake of this.#sleepers) wake();
    const closed = once(this.#server, 'close');
    this.#server.close();
    this.#server.closeAllConnections();
    await closed;
  }

  async #handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const ex = this.#begin(req, res);
    const body = await readBody(req);
    if (body === undefined) return;

    const fault = ex.route === undefined ? undefined : this.#faults.take(ex.entry.method, ex.route);
    ex.entry.fault = fault?.kind;
    if (fault?.kind === 'delay') await this.#sleep(fault.ms);
    if (this.#closed) return;
    if (fault?.kind === 'reset' && fault.afterHandling !== true) return reset(ex);

    const reply = faultReply(fault, ex, this.#now()) ?? this.#dispatch(ex, body);
    if (fault?.kind === 'reset') return reset(ex);
    send(ex, reply);
  }

  #begin(req: http.IncomingMessage, res: http.ServerResponse): Exchange {
    const target = req.url ?? '/';
    const url = new URL(target, 'http://fake.invalid');
    const apiVersion = header(req, 'x-github-api-version');
    const entry: RecordedRequest = {
      method: (req.method ?? 'GET').toUpperCase(),
      path: url.pathname + url.search,
      status: 0,
      time: new Date().toISOString(),
      requestId: newRequestId(),
      auth: 'none',
      apiVersion,
      userAgent: header(req, 'user-agent'),
      host: header(req, 'host'),
      absoluteForm: /^[a-z][a-z0-9+.-]*:\/\//i.test(target),
      via: header(req, 'via'),
      fault: undefined,
    };
    this.#requests.push(entry);
    const headers = {
      'x-github-request-id': entry.requestId,
      'x-github-media-type': 'github.v3; format=json',
      'x-github-api-version-selected': apiVersion ?? DEFAULT_API_VERSION,
    };
    const route = stripPrefix(url.pathname, this.#prefix);
    return { req, res, entry, route, query: url.searchParams, headers };
  }

  #dispatch(ex: Exchange, body: Buffer): Reply {
    const version = ex.entry.apiVersion;
    if (version !== undefined && !this.#apiVersions.includes(version)) {
      return fail(
        400,
        `API version ${version} is not supported.`,
        `${DOCS}/about-the-rest-api/api-versions`,
      );
    }
    const auth = this.#authenticate(ex);
    if ('reply' in auth) return auth.reply;
    const limited = this.#countRequest(ex, auth.token);
    if (limited !== undefined) return limited;

    const route = ex.route === undefined ? undefined : matchRoute(ex.entry.method, ex.route);
    if (route === undefined) return fail(404, 'Not Found', DOCS);
    if (!this.#exists(route)) return fail(404, 'Not Found', docFor(route));
    const needed = neededRight(route);
    if (RANK[auth.right] < RANK[needed]) return forbidden(route, needed);
    return this.#serve(route, body, ex.query);
  }

  #authenticate(ex: Exchange): { token: string; right: TokenRight } | { reply: Reply } {
    const { scheme, token } = parseAuthorization(header(ex.req, 'authorization'));
    ex.entry.auth = scheme;
    // GitHub tells a missing credential apart from a wrong one.
    if (scheme === 'none') return { reply: fail(401, 'Requires authentication', DOCS) };
    const right = token === undefined ? undefined : this.#tokens.get(token);
    if (token === undefined || right === undefined) {
      return { reply: fail(401, 'Bad credentials', DOCS) };
    }
    return { token, right };
  }

  #countRequest(ex: Exchange, token: string): Reply | undefined {
    const used = (this.#used.get(token) ?? 0) + 1;
    this.#used.set(token, used);
    Object.assign(ex.headers, {
      'x-ratelimit-limit': String(this.#rateLimit),
      'x-ratelimit-remaining': String(Math.max(0, this.#rateLimit - used)),
      'x-ratelimit-used': String(Math.min(used, this.#rateLimit)),
      'x-ratelimit-reset': String(this.#rateReset),
      'x-ratelimit-resource': 'core',
    });
    if (used <= this.#rateLimit) return undefined;
    return fail(403, 'API rate limit exceeded.', RATE_DOCS);
  }

  #exists(route: Route): boolean {
    if (route.op === 'jobs') {
      const key = jobsKey(`${route.owner}/${route.name}`, route.runId, route.attempt);
      return allows(this.#repos, `${route.owner}/${route.name}`) && this.#jobs.has(key);
    }
    const scope = route.op === 'repo' ? repoScope(route.owner, route.name) : route.scope;
    if (scope.kind === 'organization') return allows(this.#orgs, scope.org);
    if (!allows(this.#repos, scope.repo)) return false;
    if (scope.kind === 'repository') return true;
    return allows(this.#environments, `${scope.repo}:${scope.environment}`);
  }

  #serve(route: Route, body: Buffer, query: URLSearchParams): Reply {
    switch (route.op) {
      case 'repo':
        return { status: 200, body: this.#repoJson(route.owner, route.name) };
      case 'jobs':
        return this.#listJobs(route, query);
      case 'public-key':
        return { status: 200, body: this.#publicKeyOf(route.scope) };
      case 'get-secret':
        return this.#getSecret(route.scope, route.name, docFor(route));
      case 'put-secret':
        return this.#putSecret(route.scope, route.name, body, docFor(route));
      case 'delete-secret':
        return this.#deleteSecret(route.scope, route.name, docFor(route));
    }
  }

  /** One page of the attempt's jobs; `per_page` (default 30, at most 100) and `page` as on GitHub. */
  #listJobs(route: Extract<Route, { op: 'jobs' }>, query: URLSearchParams): Reply {
    const all = this.#jobs.get(jobsKey(`${route.owner}/${route.name}`, route.runId, route.attempt));
    const jobs = all ?? [];
    const perPage = Math.min(100, Math.max(1, Number(query.get('per_page') ?? 30) || 30));
    const page = Math.max(1, Number(query.get('page') ?? 1) || 1);
    const slice = jobs.slice((page - 1) * perPage, page * perPage);
    return { status: 200, body: { total_count: jobs.length, jobs: structuredClone(slice) } };
  }

  #repoJson(owner: string, name: string): Record<string, unknown> {
    const id = this.repoId(`${owner}/${name}`);
    return {
      id,
      node_id: `R_${Buffer.from(String(id)).toString('base64url')}`,
      name,
      full_name: `${owner}/${name}`,
      private: true,
      owner: { login: owner },
      url: `${this.url}/repos/${owner}/${name}`,
      default_branch: 'main',
    };
  }

  #publicKeyOf(scope: ScopeRef): PublicKey {
    const { key } = this.#state(scope);
    return {
      key_id: key.id,
      key: sodium.to_base64(key.publicKey, sodium.base64_variants.ORIGINAL),
    };
  }

  #getSecret(scope: ScopeRef, name: string, doc: string): Reply {
    const stored = this.#states.get(scope.key)?.secrets.get(name.toUpperCase());
    if (stored === undefined) return fail(404, 'Not Found', doc);
    const body: Record<string, unknown> = {
      name: stored.name,
      created_at: stored.createdAt,
      updated_at: stored.updatedAt,
    };
    if (scope.kind !== 'organization') return { status: 200, body };
    body.visibility = stored.visibility;
    if (stored.visibility === 'selected') {
      body.selected_repositories_url = `${this.url}/orgs/${scope.org}/actions/secrets/${stored.name}/repositories`;
    }
    return { status: 200, body };
  }

  #putSecret(scope: ScopeRef, name: string, raw: Buffer, doc: string): Reply {
    const json = parseObject(raw);
    if (json === undefined) return fail(400, 'Problems parsing JSON', doc);
    const body = parsePutBody(json, scope.kind === 'organization');
    if (typeof body === 'string') return fail(422, `Invalid request.\n\n${body}`, doc);
    const nameError = nameProblem(name);
    if (nameError !== undefined) return fail(422, nameError, doc);
    const value = this.#open(scope, body);
    if (value === undefined) return fail(422, IMPROPERLY_ENCRYPTED, doc);
    // TODO(#3): GitHub's exact wording for an oversized secret is unknown; only the 422 is relied
    // on.
    if (Buffer.byteLength(value) > MAX_SECRET_BYTES)
      return fail(422, 'Secret value is too large', doc);

    const secrets = this.#state(scope).secrets;
    const upper = name.toUpperCase();
    const existing = secrets.get(upper);
    const now = seconds(this.#now());
    const createdAt = existing?.createdAt ?? now;
    secrets.set(upper, { name: upper, value, createdAt, updatedAt: now, ...orgFields(body) });
    return existing === undefined ? { status: 201, body: {} } : { status: 204 };
  }

  #deleteSecret(scope: ScopeRef, name: string, doc: string): Reply {
    const deleted = this.#states.get(scope.key)?.secrets.delete(name.toUpperCase()) ?? false;
    return deleted ? { status: 204 } : fail(404, 'Not Found', doc);
  }

  /** Opens the sealed box with the key `key_id` names; undefined when that fails for any reason. */
  #open(scope: ScopeRef, body: PutBody): string | undefined {
    const { key } = this.#state(scope);
    if (body.keyId !== key.id) return undefined;
    try {
      const sealed = sodium.from_base64(body.encryptedValue, sodium.base64_variants.ORIGINAL);
      const plain = sodium.crypto_box_seal_open(sealed, key.publicKey, key.privateKey);
      return new TextDecoder('utf-8', { fatal: true }).decode(plain);
    } catch {
      return undefined;
    }
  }

  #state(scope: ScopeRef): ScopeState {
    let state = this.#states.get(scope.key);
    if (state === undefined) {
      state = { key: newKeyPair(), secrets: new Map() };
      this.#states.set(scope.key, state);
    }
    return state;
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.#sleepers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.#sleepers.add(wake);
    });
  }

  #crash(res: http.ServerResponse, error: unknown): void {
    if (res.headersSent || res.destroyed) return;
    const text = JSON.stringify({ message: `github fake failed: ${String(error)}` });
    res.writeHead(500, { 'content-type': 'application/json; charset=utf-8' }).end(text);
  }
}

const RANK: Record<TokenRight, number> = { none: 0, read: 1, write: 2 };

const SECRET_OPS: Partial<Record<string, SecretOp>> = {
  GET: 'get-secret',
  PUT: 'put-secret',
  DELETE: 'delete-secret',
};

const DOC_ANCHORS: Record<
  ScopeRef['kind'],
  Record<Exclude<Route['op'], 'repo' | 'jobs'>, string>
> = {
  repository: {
    'public-key': 'get-a-repository-public-key',
    'get-secret': 'get-a-repository-secret',
    'put-secret': 'create-or-update-a-repository-secret',
    'delete-secret': 'delete-a-repository-secret',
  },
  environment: {
    'public-key': 'get-an-environment-public-key',
    'get-secret': 'get-an-environment-secret',
    'put-secret': 'create-or-update-an-environment-secret',
    'delete-secret': 'delete-an-environment-secret',
  },
  organization: {
    'public-key': 'get-an-organization-public-key',
    'get-secret': 'get-an-organization-secret',
    'put-secret': 'create-or-update-an-organization-secret',
    'delete-secret': 'delete-an-organization-secret',
  },
};

function matchRoute(method: string, path: string): Route | undefined {
  const jobs = captures(
    /^\/repos\/([^/]+)\/([^/]+)\/actions\/runs\/(\d+)\/attempts\/(\d+)\/jobs$/,
    path,
  );
  if (jobs !== undefined) {
    const [owner = '', name = '', runId = '', attempt = ''] = jobs;
    return method === 'GET' ? { op: 'jobs', owner, name, runId, attempt } : undefined;
  }
  const repo = captures(/^\/repos\/([^/]+)\/([^/]+)$/, path);
  if (repo !== undefined) {
    const [owner = '', name = ''] = repo;
    return method === 'GET' ? { op: 'repo', owner, name } : undefined;
  }
  const scoped = matchScoped(path);
  if (scoped === undefined) return undefined;
  const { scope, tail } = scoped;
  if (tail === 'public-key') return method === 'GET' ? { op: 'public-key', scope } : undefined;
  const op = SECRET_OPS[method];
  return op === undefined ? undefined : { op, scope, name: tail };
}

function matchScoped(path: string): { scope: ScopeRef; tail: string } | undefined {
  const org = captures(/^\/orgs\/([^/]+)\/actions\/secrets\/([^/]+)$/, path);
  if (org !== undefined) {
    const [name = '', tail = ''] = org;
    return { scope: orgScope(name), tail };
  }
  const repo = captures(/^\/repos\/([^/]+)\/([^/]+)\/actions\/secrets\/([^/]+)$/, path);
  if (repo !== undefined) {
    const [owner = '', name = '', tail = ''] = repo;
    return { scope: repoScope(owner, name), tail };
  }
  const env = captures(
    /^\/repos\/([^/]+)\/([^/]+)\/environments\/([^/]+)\/secrets\/([^/]+)$/,
    path,
  );
  if (env === undefined) return undefined;
  const [owner = '', name = '', environment = '', tail = ''] = env;
  return { scope: envScope(owner, name, environment), tail };
}

/** Decoded capture groups, or undefined when the path does not match or is badly escaped. */
function captures(pattern: RegExp, path: string): string[] | undefined {
  const match = pattern.exec(path);
  if (match === null) return undefined;
  try {
    return match.slice(1).map((part) => decodeURIComponent(part));
  } catch {
    return undefined;
  }
}

function neededRight(route: Route): TokenRight {
  // Listing jobs needs `actions: read`, which every job's GITHUB_TOKEN has by default.
  if (route.op === 'repo' || route.op === 'jobs') return 'none';
  return route.op === 'public-key' || route.op === 'get-secret' ? 'read' : 'write';
}

function docFor(route: Route): string {
  if (route.op === 'repo') return `${DOCS}/repos/repos#get-a-repository`;
  if (route.op === 'jobs')
    return `${DOCS}/actions/workflow-jobs#list-jobs-for-a-workflow-run-attempt`;
  return `${DOCS}/actions/secrets#${DOC_ANCHORS[route.scope.kind][route.op]}`;
}

function forbidden(route: Route, needed: TokenRight): Reply {
  const org = 'scope' in route && route.scope.kind === 'organization';
  const permission = `${org ? 'organization_secrets' : 'secrets'}=${needed}`;
  return fail(403, NOT_INTEGRATION, docFor(route), { 'x-accepted-github-permissions': permission });
}

function faultReply(fault: GitHubFault | undefined, ex: Exchange, now: Date): Reply | undefined {
  switch (fault?.kind) {
    case 'status':
      return fail(fault.status, fault.message ?? statusMessage(fault.status), DOCS);
    case 'forbidden':
      return fail(403, NOT_INTEGRATION, DOCS);
    case 'secondary-rate-limit': {
      const message =
        'You have exceeded a secondary rate limit. Please wait a few minutes before you try again. ' +
        `If you reach out to GitHub Support for help, please include the request ID ${ex.entry.requestId}.`;
      const retryAfter = String(fault.retryAfter ?? 1);
      return fail(fault.status ?? 403, message, RATE_DOCS, { 'retry-after': retryAfter });
    }
    case 'primary-rate-limit': {
      const reset = fault.resetAt ?? Math.floor(now.getTime() / 1000) + 1;
      return fail(fault.status ?? 403, 'API rate limit exceeded.', RATE_DOCS, {
        'x-ratelimit-remaining': '0',
        'x-ratelimit-reset': String(reset),
        'x-ratelimit-resource': 'core',
      });
    }
    default:
      return undefined;
  }
}

function statusMessage(status: number): string {
  if (status === 500) return 'Server Error';
  return http.STATUS_CODES[status] ?? 'Error';
}

function fail(
  status: number,
  message: string,
  doc: string,
  headers?: Record<string, string>,
): Reply {
  return { status, body: { message, documentation_url: doc, status: String(status) }, headers };
}

function send(ex: Exchange, reply: Reply): void {
  ex.entry.status = reply.status;
  if (ex.res.destroyed) return;
  const headers = { ...ex.headers, ...reply.headers };
  if (reply.body === undefined) {
    ex.res.writeHead(reply.status, headers).end();
    return;
  }
  const text = JSON.stringify(reply.body);
  const length = String(Buffer.byteLength(text));
  const json = { 'content-type': 'application/json; charset=utf-8', 'content-length': length };
  ex.res.writeHead(reply.status, { ...headers, ...json }).end(text);
}

function reset(ex: Exchange): void {
  ex.entry.status = 0;
  if (!ex.req.socket.destroyed) ex.req.socket.resetAndDestroy();
}

async function readBody(req: http.IncomingMessage): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  try {
    for await (const chunk of req) chunks.push(chunk as Buffer);
  } catch {
    return undefined;
  }
  return Buffer.concat(chunks);
}

function parseObject(raw: Buffer): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(raw.toString('utf8'));
    const isObject = typeof value === 'object' && value !== null && !Array.isArray(value);
    return isObject ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The body's fields, or the schema complaint GitHub would give (without echoing the ciphertext).
 */
function parsePutBody(json: Record<string, unknown>, org: boolean): PutBody | string {
  const valueProblem = stringProblem(json, 'encrypted_value');
  if (valueProblem !== undefined) return valueProblem;
  const encryptedValue = json.encrypted_value as string;
  if (!BASE64.test(encryptedValue)) {
    return `For 'properties/encrypted_value', the value does not match the base64 pattern.`;
  }
  const keyProblem = stringProblem(json, 'key_id');
  if (keyProblem !== undefined) return keyProblem;
  const keyId = json.key_id as string;
  if (!org) return { encryptedValue, keyId };

  const visibilityProblem = orgProblem(json);
  if (visibilityProblem !== undefined) return visibilityProblem;
  const visibility = json.visibility as OrgVisibility;
  const selectedRepositoryIds = json.selected_repository_ids as number[] | undefined;
  return { encryptedValue, keyId, visibility, selectedRepositoryIds };
}

function stringProblem(json: Record<string, unknown>, field: string): string | undefined {
  const value = json[field];
  if (value === undefined) return `"${field}" wasn't supplied.`;
  if (typeof value !== 'string')
    return `For 'properties/${field}', ${JSON.stringify(value)} is not a string.`;
  return undefined;
}

function orgProblem(json: Record<string, unknown>): string | undefined {
  const { visibility, selected_repository_ids: ids } = json;
  if (visibility === undefined) return `"visibility" wasn't supplied.`;
  if (!VISIBILITIES.includes(visibility)) {
    return `For 'properties/visibility', ${JSON.stringify(visibility)} is not one of ["all", "private", "selected"].`;
  }
  const integers = Array.isArray(ids) && ids.every((id) => Number.isInteger(id));
  if (ids !== undefined && !integers) {
    return `For 'properties/selected_repository_ids', ${JSON.stringify(ids)} is not an array of integers.`;
  }
  return undefined;
}

/** Organisation fields to store; repository ids only count for `selected`, as on GitHub. */
function orgFields(source: {
  visibility?: OrgVisibility;
  selectedRepositoryIds?: number[] | undefined;
}): Partial<SecretView> {
  if (source.visibility === undefined) return {};
  if (source.visibility !== 'selected') return { visibility: source.visibility };
  return {
    visibility: 'selected',
    selectedRepositoryIds: [...(source.selectedRepositoryIds ?? [])],
  };
}

/** GitHub's rule: letters, digits and underscores, no leading digit, no `GITHUB_` prefix. */
function nameProblem(name: string): string | undefined {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) return NAME_RULE;
  if (/^GITHUB_/i.test(name)) return 'Secret names must not start with GITHUB_.';
  return undefined;
}

function parseAuthorization(value: string | undefined): {
  scheme: RecordedRequest['auth'];
  token?: string;
} {
  if (value === undefined || value.trim() === '') return { scheme: 'none' };
  const match = /^(bearer|token)\s+(\S+)\s*$/i.exec(value);
  if (match === null) return { scheme: 'other' };
  const scheme = match[1]?.toLowerCase() === 'bearer' ? 'bearer' : 'token';
  return { scheme, token: match[2] };
}

function header(req: http.IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value.join(', ') : value;
}

function stripPrefix(pathname: string, prefix: string): string | undefined {
  if (prefix === '') return pathname;
  if (pathname !== prefix && !pathname.startsWith(`${prefix}/`)) return undefined;
  return pathname.slice(prefix.length) || '/';
}

function allows(allowed: Set<string> | undefined, name: string): boolean {
  return allowed === undefined || allowed.has(name.toLowerCase());
}

function toScopeRef(scope: SecretScope): ScopeRef {
  if ('org' in scope) return orgScope(scope.org);
  const [owner, name, ...rest] = scope.repo.split('/');
  if (!owner || !name || rest.length > 0) {
    throw new GitHubFakeError(
      'ERR_GITHUB_FAKE_INVALID_SCOPE',
      `invalid repository "${scope.repo}"`,
    );
  }
  return scope.environment === undefined
    ? repoScope(owner, name)
    : envScope(owner, name, scope.environment);
}

function jobsKey(repo: string, runId: string, attempt: string): string {
  return `${repo.toLowerCase()}#${Number(runId)}#${Number(attempt)}`;
}

function orgScope(org: string): ScopeRef {
  return { kind: 'organization', key: `org:${org.toLowerCase()}`, org };
}

function repoScope(owner: string, name: string): ScopeRef {
  const repo = `${owner}/${name}`;
  return { kind: 'repository', key: `repo:${repo.toLowerCase()}`, repo };
}

function envScope(owner: string, name: string, environment: string): ScopeRef {
  const repo = `${owner}/${name}`;
  const key = `env:${repo}:${environment}`.toLowerCase();
  return { kind: 'environment', key, repo, environment };
}

function newKeyPair(): KeyPair {
  const { publicKey, privateKey } = sodium.crypto_box_keypair();
  // GitHub's key ids are long decimal strings.
  const id = `${randomInt(100_000_000, 999_999_999)}${randomInt(100_000_000, 999_999_999)}`;
  return { id, publicKey, privateKey };
}

function newRequestId(): string {
  const hex = (bytes: number) => randomBytes(bytes).toString('hex').toUpperCase();
  return [hex(2), hex(3), hex(3), hex(3), hex(4)].join(':');
}

/** ISO 8601 truncated to seconds, as GitHub reports secret timestamps. */
function seconds(value: Date | string): string {
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) {
    throw new GitHubFakeError('ERR_GITHUB_FAKE_INVALID_DATE', `invalid date "${String(value)}"`);
  }
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}
