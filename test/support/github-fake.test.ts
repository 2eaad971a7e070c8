import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import sodium from 'libsodium-wrappers';
import { ProxyAgent, fetch as undiciFetch } from 'undici';
import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { startGitHubFake } from './github-fake.ts';
import type { GitHubFake, GitHubFakeOptions, PublicKey } from './github-fake.ts';
import { VIA, startHttpProxy } from './http-proxy.ts';
import { selfSignedCert } from './tls-cert.ts';

const TOKENS = { ghs_write: 'write', ghs_read: 'read', ghs_none: 'none' } as const;
const REPO = '/repos/acme/app/actions/secrets';
const ENV = '/repos/acme/app/environments/prod/secrets';
const ORG = '/orgs/acme/actions/secrets';
const IMPROPER = 'Bad request - validation failed due to an improperly encrypted secret';
const B64 = sodium.base64_variants.ORIGINAL;

let clock: Date;
let github: GitHubFake;

interface CallOptions {
  token?: string | null;
  scheme?: string;
  body?: unknown;
  headers?: Record<string, string>;
  fake?: GitHubFake;
}

async function call(method: string, path: string, options: CallOptions = {}) {
  const { token = 'ghs_write', scheme = 'Bearer', body, fake = github } = options;
  const headers: Record<string, string> = {
    accept: 'application/vnd.github+json',
    'x-github-api-version': '2022-11-28',
    ...(token === null ? {} : { authorization: `${scheme} ${token}` }),
    ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    ...options.headers,
  };
  const payload = body === undefined || typeof body === 'string' ? body : JSON.stringify(body);
  const res = await fetch(`${fake.url}${path}`, { method, headers, body: payload });
  const text = await res.text();
  const json = text === '' ? undefined : (JSON.parse(text) as Record<string, unknown>);
  return { status: res.status, headers: res.headers, json };
}

function sealFor(key: PublicKey, value: string): { key_id: string; encrypted_value: string } {
  const sealed = sodium.crypto_box_seal(
    sodium.from_string(value),
    sodium.from_base64(key.key, B64),
  );
  return { key_id: key.key_id, encrypted_value: sodium.to_base64(sealed, B64) };
}

async function seal(scopePath: string, value: string) {
  const { json } = await call('GET', `${scopePath}/public-key`);
  return sealFor(json as unknown as PublicKey, value);
}

async function startFake(options: GitHubFakeOptions = {}): Promise<GitHubFake> {
  return startGitHubFake({ tokens: TOKENS, now: () => clock, ...options });
}

beforeAll(async () => {
  await sodium.ready;
});

beforeEach(async () => {
  clock = new Date('2026-05-01T10:00:00.750Z');
  github = await startFake();
});

afterEach(async () => {
  await github.close();
});

describe('github fake secrets', () => {
  it('serves a distinct X25519 public key per scope', async () => {
    const keys = [];
    for (const scope of [REPO, ENV, ORG]) {
      const { status, json } = await call('GET', `${scope}/public-key`);
      expect(status).toBe(200);
      keys.push(json as unknown as PublicKey);
    }

    for (const key of keys) expect(sodium.from_base64(key.key, B64)).toHaveLength(32);
    expect(new Set(keys.map((k) => k.key_id)).size).toBe(3);
    expect(new Set(keys.map((k) => k.key)).size).toBe(3);
    expect(keys[0]).toEqual(github.publicKey({ repo: 'acme/app' }));
    expect(keys[1]).toEqual(github.publicKey({ repo: 'acme/app', environment: 'prod' }));
    expect(keys[2]).toEqual(github.publicKey({ org: 'acme' }));
  });

  it('stores a sealed repository secret under its upper-cased name with 201', async () => {
    const put = await call('PUT', `${REPO}/mytoken`, { body: await seal(REPO, 'mt-1') });
    const get = await call('GET', `${REPO}/MyToken`);

    expect(put).toMatchObject({ status: 201, json: {} });
    expect(github.secret({ repo: 'acme/app' }, 'mytoken')).toEqual({
      name: 'MYTOKEN',
      value: 'mt-1',
      createdAt: '2026-05-01T10:00:00Z',
      updatedAt: '2026-05-01T10:00:00Z',
    });
    expect(get.json).toEqual({
      name: 'MYTOKEN',
      created_at: '2026-05-01T10:00:00Z',
      updated_at: '2026-05-01T10:00:00Z',
    });
  });

  it('answers 204 on update and moves updated_at but not created_at', async () => {
    await call('PUT', `${REPO}/MYTOKEN`, { body: await seal(REPO, 'mt-1') });
    clock = new Date('2026-05-01T10:01:31.150Z');

    const put = await call('PUT', `${REPO}/MYTOKEN`, { body: await seal(REPO, 'mt-2') });
    const get = await call('GET', `${REPO}/MYTOKEN`);

    expect(put.status).toBe(204);
    expect(put.json).toBeUndefined();
    expect(get.json).toMatchObject({
      created_at: '2026-05-01T10:00:00Z',
      updated_at: '2026-05-01T10:01:31Z',
    });
    expect(github.secret({ repo: 'acme/app' }, 'MYTOKEN')?.value).toBe('mt-2');
  });

  it('serves a seeded secret as written by a concurrent run', async () => {
    github.setSecret({ repo: 'acme/app' }, 'MYTOKEN', 'theirs', {
      createdAt: '2026-04-01T00:00:00Z',
      updatedAt: '2026-05-01T09:59:59.999Z',
    });

    const get = await call('GET', `${REPO}/MYTOKEN`);

    expect(get.json).toEqual({
      name: 'MYTOKEN',
      created_at: '2026-04-01T00:00:00Z',
      updated_at: '2026-05-01T09:59:59Z',
    });
  });

  it('rejects seeding a secret with an invalid name', () => {
    expect(() => github.setSecret({ repo: 'acme/app' }, 'GITHUB_X', 'v')).toThrow(
      expect.objectContaining({ code: 'ERR_GITHUB_FAKE_INVALID_NAME' }),
    );
  });

  it('keeps environment secrets apart, with their own key pair', async () => {
    const put = await call('PUT', `${ENV}/MYTOKEN`, { body: await seal(ENV, 'env-1') });
    const wrongKey = await call('PUT', `${ENV}/OTHER`, { body: await seal(REPO, 'x') });

    expect(put.status).toBe(201);
    expect(github.secret({ repo: 'acme/app', environment: 'prod' }, 'MYTOKEN')?.value).toBe(
      'env-1',
    );
    expect(github.secret({ repo: 'acme/app' }, 'MYTOKEN')).toBeUndefined();
    expect((await call('GET', `${REPO}/MYTOKEN`)).status).toBe(404);
    expect(wrongKey).toMatchObject({ status: 422, json: { message: IMPROPER, status: '422' } });
  });

  it('keeps organisation visibility and selected repositories', async () => {
    const body = {
      ...(await seal(ORG, 'org-1')),
      visibility: 'selected',
      selected_repository_ids: [7, 9],
    };
    const put = await call('PUT', `${ORG}/MYTOKEN`, { body });
    const get = await call('GET', `${ORG}/MYTOKEN`);

    expect(put.status).toBe(201);
    expect(get.json).toMatchObject({
      name: 'MYTOKEN',
      visibility: 'selected',
      selected_repositories_url: `${github.url}/orgs/acme/actions/secrets/MYTOKEN/repositories`,
    });
    expect(github.secret({ org: 'acme' }, 'MYTOKEN')).toMatchObject({
      value: 'org-1',
      visibility: 'selected',
      selectedRepositoryIds: [7, 9],
    });

    const update = { ...(await seal(ORG, 'org-2')), visibility: 'private' };
    expect((await call('PUT', `${ORG}/MYTOKEN`, { body: update })).status).toBe(204);
    expect(github.secret({ org: 'acme' }, 'MYTOKEN')?.selectedRepositoryIds).toBeUndefined();
  });

  it.each([
    [undefined, 'Invalid request.\n\n"visibility" wasn\'t supplied.'],
    [
      'public',
      'Invalid request.\n\nFor \'properties/visibility\', "public" is not one of ["all", "private", "selected"].',
    ],
  ])('rejects an organisation secret with visibility %s', async (visibility, message) => {
    const body = { ...(await seal(ORG, 'org-1')), visibility };

    const put = await call('PUT', `${ORG}/MYTOKEN`, { body });

    expect(put).toMatchObject({ status: 422, json: { message } });
    expect(github.secret({ org: 'acme' }, 'MYTOKEN')).toBeUndefined();
  });

  it('rejects a key_id that is not the scope key', async () => {
    const sealed = await seal(REPO, 'mt-1');

    const forged = await call('PUT', `${REPO}/MYTOKEN`, { body: { ...sealed, key_id: '1' } });
    github.rotateKey({ repo: 'acme/app' });
    const stale = await call('PUT', `${REPO}/MYTOKEN`, { body: sealed });

    expect(forged).toMatchObject({ status: 422, json: { message: IMPROPER } });
    expect(stale).toMatchObject({ status: 422, json: { message: IMPROPER } });
    expect(github.secret({ repo: 'acme/app' }, 'MYTOKEN')).toBeUndefined();
  });

  it.each([
    [
      'a value that does not open',
      (key: string) => ({ key_id: key, encrypted_value: 'AAAA'.repeat(20) }),
      422,
      IMPROPER,
    ],
    [
      'a value that is not base64',
      (key: string) => ({ key_id: key, encrypted_value: 'not base64!' }),
      422,
      "Invalid request.\n\nFor 'properties/encrypted_value', the value does not match the base64 pattern.",
    ],
    [
      'a missing key_id',
      () => ({ encrypted_value: 'AAAA' }),
      422,
      'Invalid request.\n\n"key_id" wasn\'t supplied.',
    ],
    ['a body that is not JSON', () => '{', 400, 'Problems parsing JSON'],
  ])('rejects %s', async (_case, makeBody, status, message) => {
    const { key_id } = github.publicKey({ repo: 'acme/app' });

    const put = await call('PUT', `${REPO}/MYTOKEN`, { body: makeBody(key_id) });

    expect(put).toMatchObject({ status, json: { message, status: String(status) } });
    expect(put.json?.documentation_url).toBe(
      'https://docs.github.com/rest/actions/secrets#create-or-update-a-repository-secret',
    );
  });

  it.each(['1ABC', 'GITHUB_TOKEN', 'github_mine', 'MY-TOKEN', 'MY TOKEN'])(
    'rejects the secret name %j',
    async (name) => {
      const put = await call('PUT', `${REPO}/${encodeURIComponent(name)}`, {
        body: await seal(REPO, 'v'),
      });

      expect(put.status).toBe(422);
      expect(put.json?.message).toMatch(/^Secret names/);
    },
  );

  it('answers 404 for an unknown secret, route, repository or environment', async () => {
    const strict = await startFake({ repos: ['acme/app'], environments: ['acme/app:prod'] });

    const missing = await call('GET', `${REPO}/NOPE`, { fake: strict });
    const route = await call('GET', '/repos/acme/app/hooks', { fake: strict });
    const repo = await call('GET', '/repos/acme/other/actions/secrets/public-key', {
      fake: strict,
    });
    const env = await call('GET', '/repos/acme/app/environments/dev/secrets/public-key', {
      fake: strict,
    });
    await strict.close();

    expect(missing).toMatchObject({
      status: 404,
      json: {
        message: 'Not Found',
        documentation_url: 'https://docs.github.com/rest/actions/secrets#get-a-repository-secret',
      },
    });
    expect([route.status, repo.status, env.status]).toEqual([404, 404, 404]);
  });

  it('deletes a secret with 204', async () => {
    github.setSecret({ repo: 'acme/app' }, 'MYTOKEN', 'v');

    expect((await call('DELETE', `${REPO}/MYTOKEN`)).status).toBe(204);
    expect((await call('DELETE', `${REPO}/MYTOKEN`)).status).toBe(404);
  });

  it('serves a minimal repository object with a stable id', async () => {
    const { status, json } = await call('GET', '/repos/acme/app', { token: 'ghs_none' });

    expect(status).toBe(200);
    expect(json).toMatchObject({
      id: github.repoId('acme/app'),
      full_name: 'acme/app',
      name: 'app',
    });
  });
});

describe('github fake auth', () => {
  it('answers 401 without a token, with an unknown one, or with Basic', async () => {
    const none = await call('GET', `${REPO}/public-key`, { token: null });
    const unknown = await call('GET', `${REPO}/public-key`, { token: 'ghs_nope' });
    const basic = await call('GET', `${REPO}/public-key`, { scheme: 'Basic' });

    expect(none).toMatchObject({ status: 401, json: { message: 'Requires authentication' } });
    expect(unknown).toMatchObject({
      status: 401,
      json: {
        message: 'Bad credentials',
        documentation_url: 'https://docs.github.com/rest',
        status: '401',
      },
    });
    expect(basic).toMatchObject({ status: 401, json: { message: 'Bad credentials' } });
  });

  it('accepts the Bearer and token schemes', async () => {
    const bearer = await call('GET', `${REPO}/public-key`, { scheme: 'Bearer' });
    const token = await call('GET', `${REPO}/public-key`, { scheme: 'token' });

    expect([bearer.status, token.status]).toEqual([200, 200]);
    expect(github.requests.map((r) => r.auth)).toEqual(['bearer', 'token']);
  });

  it('refuses writes to a read-only token with 403', async () => {
    const key = await call('GET', `${REPO}/public-key`, { token: 'ghs_read' });
    const body = sealFor(key.json as unknown as PublicKey, 'mt-1');

    const put = await call('PUT', `${REPO}/MYTOKEN`, { token: 'ghs_read', body });

    expect(key.status).toBe(200);
    expect(put).toMatchObject({
      status: 403,
      json: { message: 'Resource not accessible by integration', status: '403' },
    });
    expect(put.headers.get('x-accepted-github-permissions')).toBe('secrets=write');
    expect(github.secret({ repo: 'acme/app' }, 'MYTOKEN')).toBeUndefined();
  });

  it('refuses all secrets routes to a token without secrets access', async () => {
    const key = await call('GET', `${REPO}/public-key`, { token: 'ghs_none' });
    const org = await call('GET', `${ORG}/public-key`, { token: 'ghs_none' });

    expect(key).toMatchObject({
      status: 403,
      json: { message: 'Resource not accessible by integration' },
    });
    expect(org.headers.get('x-accepted-github-permissions')).toBe('organization_secrets=read');
  });

  it('rejects an unsupported API version with 400', async () => {
    const res = await call('GET', `${REPO}/public-key`, {
      headers: { 'x-github-api-version': '2020-01-01' },
    });

    expect(res.status).toBe(400);
  });
});

describe('github fake headers and log', () => {
  it('sends JSON with request id and rate-limit headers', async () => {
    const first = await call('GET', `${REPO}/public-key`);
    const second = await call('GET', `${REPO}/public-key`);

    expect(first.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect(first.headers.get('x-github-request-id')).toMatch(/^[0-9A-F]{4}(:[0-9A-F]+){4}$/);
    expect(first.headers.get('x-ratelimit-limit')).toBe('5000');
    expect(first.headers.get('x-ratelimit-remaining')).toBe('4999');
    expect(second.headers.get('x-ratelimit-remaining')).toBe('4998');
  });

  it('runs out of primary rate limit like GitHub', async () => {
    const limited = await startFake({ rateLimit: 1 });

    const ok = await call('GET', `${REPO}/public-key`, { fake: limited });
    const refused = await call('GET', `${REPO}/public-key`, { fake: limited });
    await limited.close();

    expect(ok.status).toBe(200);
    expect(refused.status).toBe(403);
    expect(refused.headers.get('x-ratelimit-remaining')).toBe('0');
  });

  it('logs method, path and status but never the token', async () => {
    await call('GET', `${REPO}/public-key`);
    await call('PUT', `${REPO}/MYTOKEN`, { body: await seal(REPO, 'mt-1'), token: 'ghs_read' });

    expect(github.requests.map((r) => [r.method, r.path, r.status])).toEqual([
      ['GET', `${REPO}/public-key`, 200],
      ['GET', `${REPO}/public-key`, 200],
      ['PUT', `${REPO}/MYTOKEN`, 403],
    ]);
    expect(github.requests[0]).toMatchObject({ apiVersion: '2022-11-28', absoluteForm: false });
    expect(JSON.stringify(github.requests)).not.toMatch(/ghs_/);
  });

  it('serves under a path prefix like GitHub Enterprise Server', async () => {
    const ghes = await startFake({ pathPrefix: '/api/v3' });

    const inside = await call('GET', `${REPO}/public-key`, { fake: ghes });
    const outside = await fetch(`${ghes.url.replace('/api/v3', '')}${REPO}/public-key`, {
      headers: { authorization: 'Bearer ghs_write' },
    });
    await ghes.close();

    expect(ghes.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/api\/v3$/);
    expect([inside.status, outside.status]).toEqual([200, 404]);
  });
});

describe('github fake faults', () => {
  it.each([
    [500, 'Server Error'],
    [502, 'Bad Gateway'],
    [503, 'Service Unavailable'],
  ])('answers %i with a JSON body as often as asked', async (status, message) => {
    github.inject({
      method: 'GET',
      path: `${REPO}/public-key`,
      fault: { kind: 'status', status },
      times: 2,
    });

    const first = await call('GET', `${REPO}/public-key`);
    const second = await call('GET', `${REPO}/public-key`);
    const third = await call('GET', `${REPO}/public-key`);

    expect(first).toMatchObject({ status, json: { message, status: String(status) } });
    expect(second.status).toBe(status);
    expect(third.status).toBe(200);
    expect(github.requests.map((r) => r.fault)).toEqual(['status', 'status', undefined]);
  });

  it('answers 403 not accessible even to a write token', async () => {
    const body = await seal(REPO, 'mt-1');
    github.inject({ path: `${REPO}/*`, fault: { kind: 'forbidden' } });

    const put = await call('PUT', `${REPO}/MYTOKEN`, { body });

    expect(put).toMatchObject({
      status: 403,
      json: { message: 'Resource not accessible by integration' },
    });
    expect(github.secret({ repo: 'acme/app' }, 'MYTOKEN')).toBeUndefined();
  });

  it.each([403, 429] as const)(
    'answers a secondary rate limit as %i with retry-after',
    async (status) => {
      github.inject({
        path: `${REPO}/public-key`,
        fault: { kind: 'secondary-rate-limit', status, retryAfter: 7 },
      });

      const res = await call('GET', `${REPO}/public-key`);

      expect(res.status).toBe(status);
      expect(res.headers.get('retry-after')).toBe('7');
      expect(res.json?.message).toMatch(/secondary rate limit/);
      expect(res.json?.message).toContain(res.headers.get('x-github-request-id'));
    },
  );

  it('answers a primary rate limit with remaining 0 and a reset time', async () => {
    github.inject({ path: `${REPO}/public-key`, fault: { kind: 'primary-rate-limit' } });

    const res = await call('GET', `${REPO}/public-key`);

    expect(res.status).toBe(403);
    expect(res.headers.get('x-ratelimit-remaining')).toBe('0');
    expect(res.headers.get('x-ratelimit-reset')).toBe(
      String(Date.parse('2026-05-01T10:00:01Z') / 1000),
    );
  });

  it('delays a response and then handles the request', async () => {
    const body = await seal(REPO, 'mt-1');
    github.inject({ method: 'PUT', path: `${REPO}/MYTOKEN`, fault: { kind: 'delay', ms: 1 } });

    const put = await call('PUT', `${REPO}/MYTOKEN`, { body });

    expect(put.status).toBe(201);
    expect(github.requests.at(-1)).toMatchObject({ method: 'PUT', status: 201, fault: 'delay' });
  });

  it('delays a response past a client timeout and still closes promptly', async () => {
    const body = JSON.stringify(await seal(REPO, 'mt-1'));
    github.inject({
      method: 'PUT',
      path: `${REPO}/MYTOKEN`,
      fault: { kind: 'delay', ms: 600_000 },
    });

    const put = fetch(`${github.url}${REPO}/MYTOKEN`, {
      method: 'PUT',
      headers: { authorization: 'Bearer ghs_write' },
      body,
      signal: AbortSignal.timeout(100),
    });

    await expect(put).rejects.toMatchObject({ name: 'TimeoutError' });
    expect(github.requests.at(-1)).toMatchObject({ method: 'PUT', status: 0, fault: 'delay' });
    await github.close();
  });

  it('keeps a delayed write whose client gave up', async () => {
    const body = JSON.stringify(await seal(REPO, 'mt-1'));
    github.inject({ method: 'PUT', path: `${REPO}/MYTOKEN`, fault: { kind: 'delay', ms: 300 } });

    const put = fetch(`${github.url}${REPO}/MYTOKEN`, {
      method: 'PUT',
      headers: { authorization: 'Bearer ghs_write' },
      body,
      signal: AbortSignal.timeout(20),
    });

    await expect(put).rejects.toMatchObject({ name: 'TimeoutError' });
    const stored = () => expect(github.secret({ repo: 'acme/app' }, 'MYTOKEN')?.value).toBe('mt-1');
    await vi.waitFor(stored, { timeout: 10_000 });
    expect(github.requests.at(-1)).toMatchObject({ status: 201, fault: 'delay' });
  });

  it('resets the connection without handling the request', async () => {
    const body = await seal(REPO, 'mt-1');
    github.inject({ method: 'PUT', path: `${REPO}/*`, fault: { kind: 'reset' } });

    const put = call('PUT', `${REPO}/MYTOKEN`, { body });

    await expect(put).rejects.toThrow(TypeError);
    expect(github.secret({ repo: 'acme/app' }, 'MYTOKEN')).toBeUndefined();
    expect(github.requests.at(-1)).toMatchObject({ method: 'PUT', status: 0, fault: 'reset' });
  });

  it('resets the connection after storing the write', async () => {
    const body = await seal(REPO, 'mt-1');
    github.inject({
      method: 'PUT',
      path: `${REPO}/*`,
      fault: { kind: 'reset', afterHandling: true },
    });

    const put = call('PUT', `${REPO}/MYTOKEN`, { body });

    await expect(put).rejects.toThrow(TypeError);
    expect(github.secret({ repo: 'acme/app' }, 'MYTOKEN')?.value).toBe('mt-1');
  });

  it('matches faults by method and path and uses them in order', async () => {
    github.inject({ method: 'PUT', path: `${REPO}/*`, fault: { kind: 'status', status: 502 } });
    github.inject({ method: 'PUT', path: /\/MYTOKEN$/, fault: { kind: 'status', status: 503 } });

    const get = await call('GET', `${REPO}/public-key`);
    const body = await seal(REPO, 'mt-1');
    const statuses = [];
    for (let i = 0; i < 3; i += 1)
      statuses.push((await call('PUT', `${REPO}/MYTOKEN`, { body })).status);

    expect(get.status).toBe(200);
    expect(statuses).toEqual([502, 503, 201]);
    expect(github.pendingFaults()).toBe(0);
  });
});

describe('http proxy', () => {
  it('relays absolute-form HTTP and marks it with Via', async () => {
    const proxy = await startHttpProxy();
    const agent = new ProxyAgent({ uri: proxy.url });

    const res = await undiciFetch(`${github.url}${REPO}/public-key`, {
      dispatcher: agent,
      headers: { authorization: 'Bearer ghs_write' },
    });
    await res.text();
    await agent.close();
    await proxy.close();

    expect(res.status).toBe(200);
    expect([proxy.forwards, proxy.connects, proxy.relayed]).toEqual([1, 0, 1]);
    expect(proxy.records[0]).toMatchObject({
      kind: 'forward',
      method: 'GET',
      path: `${REPO}/public-key`,
    });
    expect(github.requests[0]).toMatchObject({ via: VIA, status: 200 });
  });

  it('tunnels CONNECT and counts the tunnel', async () => {
    const proxy = await startHttpProxy();
    const agent = new ProxyAgent({ uri: proxy.url, proxyTunnel: true });

    const res = await undiciFetch(`${github.url}/repos/acme/app`, {
      dispatcher: agent,
      headers: { authorization: 'token ghs_write' },
    });
    await res.text();
    await agent.close();
    await proxy.close();

    expect(res.status).toBe(200);
    expect([proxy.forwards, proxy.connects, proxy.relayed]).toEqual([0, 1, 1]);
    expect(proxy.records[0]).toMatchObject({ kind: 'connect', target: `127.0.0.1:${github.port}` });
    expect(github.requests[0]).toMatchObject({ via: undefined, absoluteForm: false });
  });

  it('tunnels to an HTTPS fake as HTTPS_PROXY would', async () => {
    const tls = await selfSignedCert();
    const secure = await startFake({ tls });
    const proxy = await startHttpProxy();
    const agent = new ProxyAgent({ uri: proxy.url, requestTls: { ca: tls.cert } });

    const res = await undiciFetch(`${secure.url}${ORG}/public-key`, {
      dispatcher: agent,
      headers: { authorization: 'Bearer ghs_write' },
    });
    const key = (await res.json()) as PublicKey;
    await agent.close();
    await Promise.all([proxy.close(), secure.close(), tls.remove()]);

    expect(secure.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(key).toEqual(secure.publicKey({ org: 'acme' }));
    expect(proxy.connects).toBe(1);
  });

  it('refuses targets that are not loopback', async () => {
    const proxy = await startHttpProxy();

    const connect = http.request({
      port: proxy.port,
      host: '127.0.0.1',
      method: 'CONNECT',
      path: 'example.invalid:443',
    });
    connect.end();
    const [answer, socket] = (await once(connect, 'connect')) as [
      http.IncomingMessage,
      NodeJS.Socket,
    ];
    socket.end();
    const forward = await fetchViaProxy(proxy.port, 'http://example.invalid/');
    await proxy.close();

    expect([answer.statusCode, forward]).toEqual([403, 403]);
    expect(proxy.records.map((r) => [r.kind, r.status, r.relayed])).toEqual([
      ['connect', 403, false],
      ['forward', 403, false],
    ]);
  });

  it('answers 502 when the origin is unreachable', async () => {
    const port = await closedPort();
    const proxy = await startHttpProxy();

    const status = await fetchViaProxy(proxy.port, `http://127.0.0.1:${port}/`);
    await proxy.close();

    expect(status).toBe(502);
    expect(proxy.forwards).toBe(0);
  });

  it('closes open tunnels on close', async () => {
    const proxy = await startHttpProxy();
    const connect = http.request({
      port: proxy.port,
      host: '127.0.0.1',
      method: 'CONNECT',
      path: `127.0.0.1:${github.port}`,
    });
    connect.end();
    const [answer, socket] = (await once(connect, 'connect')) as [
      http.IncomingMessage,
      NodeJS.Socket,
    ];

    const closed = once(socket, 'close');
    await proxy.close();
    await closed;

    expect(answer.statusCode).toBe(200);
    expect(proxy.connects).toBe(1);
  });
});

/** Sends an absolute-form GET to the proxy and returns the status. */
async function fetchViaProxy(proxyPort: number, target: string): Promise<number> {
  const req = http.request({
    host: '127.0.0.1',
    port: proxyPort,
    method: 'GET',
    path: target,
    agent: false,
  });
  req.end();
  const [res] = (await once(req, 'response')) as [http.IncomingMessage];
  res.resume();
  return res.statusCode ?? 0;
}

async function closedPort(): Promise<number> {
  const server = http.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  server.close();
  await once(server, 'close');
  return port;
}
