/**
 * Conformance of the client against the local mytoken server. The expected codes, statuses and rotation rules come
 * from the API reference (sections 3.2, 4, 7.4, 7.5 and the status table of section 8), not from what the local
 * server happens to answer: where the two disagree, one of them has misread the reference.
 */
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MytokenClient } from '../../src/client/client.ts';
import { createTransport } from '../../src/client/http.ts';
import { errorFromResponse } from '../../src/client/responses.ts';
import { MemoryTokenStore } from '../../src/client/store.ts';
import type { MytokenError } from '../../src/client/errors.ts';
import { startDevServer, mint } from '../../devserver/index.ts';

type Dev = Awaited<ReturnType<typeof startDevServer>>;
let dev: Dev;
let server: string;

beforeAll(async () => {
  dev = await startDevServer({ port: 0 });
  server = dev.urls.mytoken_server;
});
afterAll(async () => {
  await dev.close();
});

function client(
  token: string,
  extra: Partial<ConstructorParameters<typeof MytokenClient>[0]> = {},
) {
  const store = new MemoryTokenStore(token);
  return { store, client: new MytokenClient({ server, store, retryDelayMs: 10, ...extra }) };
}

async function failure(promise: Promise<unknown>): Promise<MytokenError> {
  const error = await promise.catch((e: unknown) => e);
  expect(error).toMatchObject({ name: 'MytokenError' });
  return error as MytokenError;
}

async function fault(spec: Record<string, unknown>): Promise<void> {
  const res = await fetch(`${server}/_dev/faults`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(spec),
  });
  expect(res.ok).toBe(true);
}

async function resourceAccepts(accessToken: string): Promise<number> {
  const res = await fetch(`${dev.urls.resource}/health`, {
    headers: { authorization: `Bearer ${accessToken}` },
  });
  await res.arrayBuffer();
  return res.status;
}

async function raw(path: string, body: string, token?: string) {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  const res = await createTransport().send({
    method: 'POST',
    url: `${server}${path}`,
    headers,
    body,
    operation: 'raw',
  });
  return { res, error: errorFromResponse('raw', res) };
}

describe('discovery', () => {
  it('takes every endpoint from the mytoken configuration', async () => {
    const config = await client('unused').client.configuration();
    expect(config.issuer).toBe(server);
    expect(config.accessTokenEndpoint).toBe(`${server}/api/v0/token/access`);
    expect(config.mytokenEndpoint).toBe(`${server}/api/v0/token/my`);
    expect(config.tokeninfoEndpoint).toBe(`${server}/api/v0/tokeninfo`);
    expect(config.revocationEndpoint).toBe(`${server}/api/v0/token/revoke`);
    expect(config.transferEndpoint).toBe(`${server}/api/v0/token/transfer`);
    expect(config.providers.map((p) => p.issuer)).toContain(dev.urls.oidc_issuer);
  });
});

describe('status table (reference section 8)', () => {
  it('200: an access token the demo resource accepts', async () => {
    const { client: c } = client(await mint({ server }));
    const at = await c.accessToken();
    expect(at.tokenType.toLowerCase()).toBe('bearer');
    expect(at.expiresIn).toBeGreaterThan(0);
    expect(at.rotated).toBe(false);
    expect(await resourceAccepts(at.accessToken)).toBe(200);
  });

  it('204: self-revocation answers without a body and the token is dead afterwards', async () => {
    const { client: c } = client(await mint({ server }));
    await c.revoke();
    const error = await failure(c.accessToken());
    expect(error).toMatchObject({ code: 'ERR_MYTOKEN_INVALID_TOKEN', status: 401 });
    expect(error.serverDescription).toBeUndefined();
  });

  it('204 becomes 200 with token_update when revoking by mom_id rotates the parent', async () => {
    const parent = await mint({
      server,
      capabilities: ['AT', 'create_mytoken', 'tokeninfo'],
      rotation: ['on_other'],
    });
    const { client: c, store } = client(parent);
    const child = await c.createSubtoken({ capabilities: ['AT'] });
    expect(store.saves).toBe(1);
    await c.revoke({ momId: child.momId! });
    expect(store.saves).toBe(2);
  });

  it('400 invalid_request: a body that is not JSON', async () => {
    const { res, error } = await raw('/api/v0/token/my', '{not json');
    expect(res.status).toBe(400);
    expect(error).toMatchObject({
      code: 'ERR_MYTOKEN_BAD_REQUEST',
      serverError: 'invalid_request',
    });
  });

  it('400 invalid_request: an unknown tokeninfo action', async () => {
    const token = await mint({ server });
    const { res, error } = await raw('/api/v0/tokeninfo', '{"action":"nope"}', token);
    expect(res.status).toBe(400);
    expect(error.serverError).toBe('invalid_request');
  });

  it('400 invalid_grant: a known grant type the endpoint does not take', async () => {
    const token = await mint({ server });
    const { res, error } = await raw('/api/v0/token/access', '{"grant_type":"oidc_flow"}', token);
    expect(res.status).toBe(400);
    expect(error).toMatchObject({
      serverError: 'invalid_grant',
      serverDescription: 'Unsupported grant_type',
    });
  });

  it('400 invalid_request: an issuer that is not the token issuer', async () => {
    const { client: c } = client(await mint({ server }));
    const error = await failure(c.accessToken({ oidcIssuer: 'https://op.elsewhere.example' }));
    expect(error).toMatchObject({
      code: 'ERR_MYTOKEN_BAD_REQUEST',
      status: 400,
      serverError: 'invalid_request',
    });
  });

  it('400 invalid_request: a sub-token with none of the parent capabilities', async () => {
    const { client: c } = client(await mint({ server, capabilities: ['AT', 'create_mytoken'] }));
    const error = await failure(c.createSubtoken({ capabilities: ['settings'] }));
    expect(error).toMatchObject({
      code: 'ERR_MYTOKEN_BAD_REQUEST',
      status: 400,
      serverError: 'invalid_request',
    });
  });

  it('401 invalid_token: a header token that cannot be parsed', async () => {
    const { client: c } = client('x'.repeat(40) + '.not.a.token');
    const error = await failure(c.accessToken());
    expect(error).toMatchObject({ code: 'ERR_MYTOKEN_INVALID_TOKEN', status: 401 });
  });

  it('401 invalid_token: a JWT whose signature does not verify', async () => {
    const token = await mint({ server });
    const [h, p, s] = token.split('.');
    const flipped = `${h}.${p}.${s!.startsWith('A') ? 'B' : 'A'}${s!.slice(1)}`;
    const error = await failure(client(flipped).client.accessToken());
    expect(error).toMatchObject({ code: 'ERR_MYTOKEN_INVALID_TOKEN', status: 401 });
  });

  it('401 invalid_token without description: a token superseded by rotation', async () => {
    const first = await mint({ server, rotation: ['on_AT'] });
    await client(first).client.accessToken();
    const error = await failure(client(first).client.accessToken());
    expect(error).toMatchObject({ code: 'ERR_MYTOKEN_INVALID_TOKEN', status: 401 });
    expect(error.serverDescription).toBeUndefined();
  });

  it('401 invalid_token: an unknown transfer code', async () => {
    const error = await failure(client('unused').client.redeemTransferCode('ABCDEFGH'));
    expect(error).toMatchObject({ code: 'ERR_MYTOKEN_INVALID_TOKEN', status: 401 });
    expect(error.serverDescription).toBe('Bad polling or transfer code');
  });

  it('403 insufficient_capabilities: an access token from a token without AT', async () => {
    const { client: c } = client(await mint({ server, capabilities: ['tokeninfo'] }));
    const error = await failure(c.accessToken());
    expect(error).toMatchObject({
      code: 'ERR_MYTOKEN_INSUFFICIENT_CAPABILITIES',
      status: 403,
      serverError: 'insufficient_capabilities',
    });
  });

  it('403 usage_restricted: usages_AT exhausted', async () => {
    const { client: c } = client(await mint({ server, usagesAT: 1 }));
    await c.accessToken();
    const error = await failure(c.accessToken());
    expect(error).toMatchObject({ code: 'ERR_MYTOKEN_USAGE_RESTRICTED', status: 403 });
  });

  it('403 usage_restricted: a scope outside every clause', async () => {
    const { client: c } = client(await mint({ server, scope: 'openid' }));
    const error = await failure(c.accessToken({ scope: 'openid profile' }));
    expect(error).toMatchObject({ code: 'ERR_MYTOKEN_USAGE_RESTRICTED', status: 403 });
  });

  it('429: plain text with Retry-After, waited out once', async () => {
    const { client: c } = client(await mint({ server }));
    await fault({ path: '/api/v0/token/access', kind: 'rate_limit', retry_after: 1, times: 1 });
    const at = await c.accessToken();
    expect(at.accessToken).not.toBe('');
  });

  it('429: reported with its Retry-After when retries are spent', async () => {
    const { client: c } = client(await mint({ server }), { attempts: 1 });
    await fault({ path: '/api/v0/token/access', kind: 'rate_limit', retry_after: 7, times: 1 });
    const error = await failure(c.accessToken());
    expect(error).toMatchObject({ code: 'ERR_MYTOKEN_RATE_LIMITED', status: 429, retryAfter: 7 });
  });

  it('500 internal_server_error is retried when the token does not rotate', async () => {
    const { client: c } = client(await mint({ server }));
    await fault({ path: '/api/v0/token/access', kind: 'status', status: 500, times: 1 });
    expect((await c.accessToken()).accessToken).not.toBe('');
  });

  it('500 internal_server_error is reported, not re-sent, when the token rotates', async () => {
    const { client: c, store } = client(await mint({ server, rotation: ['on_AT'] }));
    const before = await store.load();
    await fault({ path: '/api/v0/token/access', kind: 'status', status: 500, times: 2 });
    const error = await failure(c.accessToken());
    expect(error).toMatchObject({ code: 'ERR_MYTOKEN_SERVER_ERROR', status: 500 });
    expect(await store.load()).toBe(before);
    await fetch(`${server}/_dev/faults`, { method: 'DELETE' });
  });

  it('404 not_found for an unknown API path', async () => {
    const { res, error } = await raw('/api/v0/nothing-here', '{}');
    expect(res.status).toBe(404);
    expect(error).toMatchObject({ code: 'ERR_MYTOKEN_NOT_SUPPORTED', serverError: 'not_found' });
  });

  it('an HTML error page is reported without its markup', async () => {
    const { client: c } = client(await mint({ server }), { attempts: 1 });
    await fault({ path: '/api/v0/token/access', kind: 'html', status: 502, times: 1 });
    const error = await failure(c.accessToken());
    expect(error.status).toBe(502);
    expect(error.message).not.toMatch(/<html/i);
  });
});

describe('rotation (reference sections 7.4 and 7.5)', () => {
  it('on_AT: twenty uses in a row, the store always holding the newest token', async () => {
    const first = await mint({ server, rotation: ['on_AT'] });
    const { client: c, store } = client(first);
    const seen = new Set([first]);
    for (let i = 0; i < 20; i++) {
      const at = await c.accessToken();
      expect(at.rotated).toBe(true);
      const current = await store.load();
      expect(seen.has(current)).toBe(false);
      seen.add(current);
      expect(decodeJwt(current).seq_no).toBe(i + 2);
    }
    expect(store.saves).toBe(20);
    expect(await resourceAccepts((await c.accessToken()).accessToken)).toBe(200);
  });

  it('keeps the jti and raises seq_no by one', async () => {
    const first = await mint({ server, rotation: ['on_AT'] });
    const { client: c, store } = client(first);
    await c.accessToken();
    const before = decodeJwt(first);
    const after = decodeJwt(await store.load());
    expect(after.jti).toBe(before.jti);
    expect(after.seq_no).toBe((before.seq_no as number) + 1);
  });

  it('on_other: a sub-token rotates the parent, introspection does not', async () => {
    const parent = await mint({
      server,
      capabilities: ['AT', 'create_mytoken', 'tokeninfo'],
      rotation: ['on_other'],
    });
    const { client: c, store } = client(parent);
    await c.introspect();
    expect(store.saves).toBe(0);
    await c.createTransferCode();
    expect(store.saves).toBe(0);
    await c.createSubtoken({ capabilities: ['AT'] });
    expect(store.saves).toBe(1);
    const at = await c.accessToken();
    expect(at.rotated).toBe(false);
  });

  it('usage counters survive rotation', async () => {
    const { client: c } = client(await mint({ server, rotation: ['on_AT'], usagesAT: 2 }));
    await c.accessToken();
    await c.accessToken();
    const error = await failure(c.accessToken());
    expect(error.code).toBe('ERR_MYTOKEN_USAGE_RESTRICTED');
  });

  it('auto_revoke: presenting a superseded token revokes the whole chain', async () => {
    const first = await mint({ server, rotation: ['on_AT'], autoRevoke: true });
    const { client: c, store } = client(first);
    await c.accessToken();
    const newest = await store.load();
    await failure(client(first).client.accessToken());
    const error = await failure(client(newest).client.accessToken());
    expect(error.code).toBe('ERR_MYTOKEN_INVALID_TOKEN');
  });

  it('without auto_revoke a superseded token leaves the newest one alive', async () => {
    const first = await mint({ server, rotation: ['on_AT'] });
    const { client: c, store } = client(first);
    await c.accessToken();
    await failure(client(first).client.accessToken());
    expect((await client(await store.load()).client.accessToken()).rotated).toBe(true);
  });

  it('a short token rotates into a new short token', async () => {
    const short = await mint({ server, rotation: ['on_AT'], responseType: 'short_token' });
    expect(short.split('.')).toHaveLength(1);
    const { client: c, store } = client(short);
    await c.accessToken();
    const next = await store.load();
    expect(next).not.toBe(short);
    expect(next.split('.')).toHaveLength(1);
  });

  it('lifetime: a token left unused longer than its lifetime is dead', async () => {
    const { client: c } = client(await mint({ server, rotation: ['on_AT'], lifetime: 1 }));
    await new Promise((resolve) => setTimeout(resolve, 2100));
    const error = await failure(c.accessToken());
    expect(error.code).toBe('ERR_MYTOKEN_INVALID_TOKEN');
  });
});

describe('lost answers', () => {
  it('recognises a rotation whose answer was lost as a broken chain', async () => {
    const { client: c, store } = client(await mint({ server, rotation: ['on_AT'] }));
    const before = await store.load();
    await fault({ path: '/api/v0/token/access', kind: 'drop_after_commit', times: 1 });
    const error = await failure(c.accessToken());
    expect(error.code).toBe('ERR_MYTOKEN_CHAIN_BROKEN');
    expect(error.message).toMatch(/mint a new mytoken/);
    expect(await store.load()).toBe(before);
  });

  it('keeps a token the dropped request did not spend, and says the outcome plainly', async () => {
    const { client: c, store } = client(await mint({ server, rotation: ['on_AT'] }));
    const before = await store.load();
    await fault({ path: '/api/v0/token/access', kind: 'reset', times: 1 });
    const error = await failure(c.accessToken());
    expect(error.code).toBe('ERR_MYTOKEN_NETWORK');
    expect(await store.load()).toBe(before);
    expect((await c.accessToken()).rotated).toBe(true);
  });

  it('retries a dropped request freely when the token does not rotate', async () => {
    const { client: c } = client(await mint({ server }));
    await fault({ path: '/api/v0/tokeninfo', kind: 'reset', times: 1 });
    await expect(c.introspect()).resolves.toMatchObject({ valid: true });
  });

  it('never saves a malformed answer over the stored token', async () => {
    const { client: c, store } = client(await mint({ server }));
    const before = await store.load();
    await fault({ path: '/api/v0/token/access', kind: 'invalid_json', times: 1 });
    const error = await failure(c.accessToken());
    expect(error.code).toBe('ERR_MYTOKEN_MALFORMED_RESPONSE');
    expect(await store.load()).toBe(before);
  });
});

describe('transfer codes', () => {
  it('hands a token over through a single-use code', async () => {
    const token = await mint({ server });
    const { client: c } = client(token);
    const { transferCode } = await c.createTransferCode();
    const issued = await c.redeemTransferCode(transferCode);
    expect(issued.mytoken).toBe(token);
    const error = await failure(c.redeemTransferCode(transferCode));
    expect(error.code).toBe('ERR_MYTOKEN_INVALID_TOKEN');
  });
});

describe('tokeninfo', () => {
  it('introspects, lists history newest first, and shows sub-tokens', async () => {
    const { client: c } = client(
      await mint({ server, capabilities: ['AT', 'tokeninfo', 'create_mytoken'] }),
    );
    await c.accessToken();
    await c.createSubtoken({ capabilities: ['AT'], name: 'child' });
    expect(await c.introspect()).toMatchObject({ valid: true });
    const events = await c.eventHistory();
    expect(events.map((e) => e.event)).toContain('AT_created');
    const tree = await c.subtokens();
    expect(JSON.stringify(tree)).toContain('child');
  });
});
