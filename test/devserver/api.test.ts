import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  mint,
  mintResponse,
  OP_SERVICE_CLIENT,
  startDevServer,
  type DevServer,
} from '../../devserver/index.ts';
import { accessToken, answer, claimsOf, postJson } from './helpers.ts';

let dev: DevServer;
let S: string;

beforeAll(async () => {
  dev = await startDevServer({ port: 0 });
  S = dev.urls.mytoken_server;
});

afterAll(async () => {
  await dev.close();
});

const JWT = /^[\w-]+\.[\w-]+\.[\w-]+$/;

describe('discovery', () => {
  it('serves the mytoken configuration and its openid alias', async () => {
    const res = await answer(await fetch(`${S}/.well-known/mytoken-configuration`));
    const alias = await answer(await fetch(`${S}/.well-known/openid-configuration`));

    expect(res.status).toBe(200);
    expect(alias.json).toEqual(res.json);
    expect(res.json).toMatchObject({
      issuer: S,
      access_token_endpoint: `${S}/api/v0/token/access`,
      token_endpoint: `${S}/api/v0/token/access`,
      mytoken_endpoint: `${S}/api/v0/token/my`,
      tokeninfo_endpoint: `${S}/api/v0/tokeninfo`,
      revocation_endpoint: `${S}/api/v0/token/revoke`,
      token_transfer_endpoint: `${S}/api/v0/token/transfer`,
      jwks_uri: `${S}/jwks`,
      token_signing_alg_value: 'ES512',
      providers_supported: [{ issuer: dev.urls.oidc_issuer }],
    });
  });

  it('reports URLs without trailing slashes', () => {
    expect(dev.urls).toEqual({
      mytoken_server: S,
      oidc_issuer: `${S}/oidc`,
      resource: `${S}/resource`,
    });
    expect(S).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  });

  it('publishes an ES512 key at /jwks', async () => {
    const res = await answer(await fetch(`${S}/jwks`));
    expect(res.json?.keys).toHaveLength(1);
    expect(res.json?.keys[0]).toMatchObject({ kty: 'EC', crv: 'P-521', alg: 'ES512' });
    expect(res.json?.keys[0].d).toBeUndefined();
  });

  it('serves the OP discovery under /oidc', async () => {
    const res = await answer(
      await fetch(`${dev.urls.oidc_issuer}/.well-known/openid-configuration`),
    );
    expect(res.json?.issuer).toBe(dev.urls.oidc_issuer);
  });
});

describe('mint and access tokens', () => {
  it('mints a JWT mytoken with the claim set of the reference', async () => {
    const token = await mint({ server: S, capabilities: ['AT'], name: 'ci' });
    const [header] = token.split('.');

    expect(token).toMatch(JWT);
    expect(JSON.parse(Buffer.from(header!, 'base64url').toString())).toMatchObject({
      alg: 'ES512',
      typ: 'MT+JWT',
    });
    expect(claimsOf(token)).toMatchObject({
      ver: '0.7',
      token_type: 'mytoken',
      iss: S,
      aud: S,
      seq_no: 1,
      name: 'ci',
      oidc_sub: 'dev-user',
      oidc_iss: dev.urls.oidc_issuer,
      capabilities: ['AT'],
    });
  });

  it('returns an AT that the demo resource accepts', async () => {
    const token = await mint({ server: S });
    const res = await accessToken(S, token);
    const health = await fetch(`${dev.urls.resource}/health`, {
      headers: { authorization: `Bearer ${res.json?.access_token}` },
    });

    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ token_type: 'Bearer', audience: [dev.urls.resource] });
    expect(Number.isInteger(res.json?.expires_in)).toBe(true);
    expect(res.json?.token_update).toBeUndefined();
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok' });
  });

  it('accepts form bodies, the refresh_token alias, Bearer headers and the cookie', async () => {
    const token = await mint({ server: S });
    const form = await answer(
      await fetch(`${S}/api/v0/token/access`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: token }),
      }),
    );
    const header = await postJson(
      `${S}/api/v0/token/access`,
      { grant_type: 'mytoken' },
      { authorization: `bearer ${token}` },
    );
    const cookie = await postJson(
      `${S}/api/v0/token/access`,
      { grant_type: 'mytoken' },
      { cookie: `mytoken=${token}` },
    );

    expect([form.status, header.status, cookie.status]).toEqual([200, 200, 200]);
  });

  it('requests the restricted audience from the OP', async () => {
    const aud = 'https://storage.example.org';
    const token = await mint({ server: S, audience: aud });
    const res = await accessToken(S, token, { audience: aud });
    const health = await fetch(`${dev.urls.resource}/health`, {
      headers: { authorization: `Bearer ${res.json?.access_token}` },
    });

    expect(res.json?.audience).toEqual([aud]);
    expect(health.status).toBe(401);
  });

  it('counts usages_AT and refuses once they are used up', async () => {
    const token = await mint({ server: S, usagesAT: 1 });
    const first = await accessToken(S, token);
    const second = await accessToken(S, token);

    expect(first.status).toBe(200);
    expect(second.status).toBe(403);
    expect(second.json).toEqual({
      error: 'usage_restricted',
      error_description: 'The restrictions of this token does not allow this usage',
    });
  });

  it('uses the first clause that fits the client IP, CIDRs included', async () => {
    const token = await mint({
      server: S,
      restrictions: [{ hosts: ['10.0.0.0/8'] }, { hosts: ['127.0.0.0/8'], usages_AT: 1 }],
    });
    expect((await accessToken(S, token)).status).toBe(200);
    expect((await accessToken(S, token)).status).toBe(403);
  });

  it('issues short tokens that rotate into new short tokens', async () => {
    const token = await mint({ server: S, responseType: 'short_token', rotation: ['on_AT'] });
    const res = await accessToken(S, token);

    expect(token).toMatch(/^[A-Za-z]{64}$/);
    expect(res.status).toBe(200);
    expect(res.json?.token_update.mytoken_type).toBe('short_token');
    expect(res.json?.token_update.mytoken).toMatch(/^[A-Za-z]{64}$/);
    expect((await accessToken(S, token)).status).toBe(401);
  });
});

describe('rotation', () => {
  it('rotates on AT: same jti, seq_no + 1, cookie set, old token dead at once', async () => {
    const token = await mint({ server: S, rotation: ['on_AT'] });
    const res = await accessToken(S, token);
    const next = res.json?.token_update.mytoken as string;

    expect(res.status).toBe(200);
    expect(res.headers.get('set-cookie')).toContain(`mytoken=${next}`);
    expect(claimsOf(next).jti).toBe(claimsOf(token).jti);
    expect(claimsOf(next).seq_no).toBe(2);
    expect(await accessToken(S, token)).toMatchObject({
      status: 401,
      json: { error: 'invalid_token' },
    });
    expect((await accessToken(S, token)).json?.error_description).toBeUndefined();
    expect((await accessToken(S, next)).status).toBe(200);
  });

  it('auto_revoke kills the whole chain when a stale token is presented', async () => {
    const token = await mint({ server: S, rotation: ['on_AT'], autoRevoke: true });
    const next = (await accessToken(S, token)).json?.token_update.mytoken as string;

    expect((await accessToken(S, token)).status).toBe(401);
    expect((await accessToken(S, next)).status).toBe(401);
  });

  it('auto_revoke also revokes sub-tokens', async () => {
    const parent = await mint({
      server: S,
      capabilities: ['AT', 'create_mytoken'],
      rotation: ['on_other'],
      autoRevoke: true,
    });
    const sub = await postJson(`${S}/api/v0/token/my`, {
      grant_type: 'mytoken',
      mytoken: parent,
      capabilities: ['AT'],
    });
    const child = sub.json?.mytoken as string;

    expect(sub.json?.token_update.mytoken).toMatch(JWT);
    expect((await accessToken(S, child)).status).toBe(200);
    expect((await accessToken(S, parent)).status).toBe(401);
    expect((await accessToken(S, child)).status).toBe(401);
  });

  it('rotates on other uses and wraps a would-be 204 in token_update', async () => {
    const token = await mint({
      server: S,
      capabilities: ['AT', 'create_mytoken'],
      rotation: ['on_other'],
    });
    const child = await postJson(`${S}/api/v0/token/my`, { grant_type: 'mytoken', mytoken: token });
    const next = child.json?.token_update.mytoken as string;
    const revoke = await postJson(`${S}/api/v0/token/revoke`, {
      token: next,
      mom_id: child.json?.mom_id,
    });

    expect(child.status).toBe(200);
    expect(child.json?.capabilities).toEqual(['AT', 'create_mytoken']);
    expect(revoke.status).toBe(200);
    expect(revoke.json?.token_update.mytoken).toMatch(JWT);
    expect((await accessToken(S, child.json?.mytoken)).status).toBe(401);
  });

  it('gives exactly one of two concurrent uses of a rotating token the new token', async () => {
    const token = await mint({ server: S, rotation: ['on_AT'] });
    const results = await Promise.all([accessToken(S, token), accessToken(S, token)]);
    const statuses = results.map((r) => r.status).sort();

    expect(statuses[0]).toBe(200);
    expect([401, 500]).toContain(statuses[1]);
  });

  it('keeps usage counters across rotation', async () => {
    const token = await mint({ server: S, rotation: ['on_AT'], usagesAT: 1 });
    const next = (await accessToken(S, token)).json?.token_update.mytoken as string;

    expect((await accessToken(S, next)).status).toBe(403);
  });
});

describe('status table', () => {
  it('answers a missing grant_type with invalid_grant', async () => {
    const token = await mint({ server: S });
    expect(await postJson(`${S}/api/v0/token/access`, { mytoken: token })).toMatchObject({
      status: 400,
      json: { error: 'invalid_grant', error_description: 'Unsupported grant_type' },
    });
  });

  it('answers an unknown grant_type string with invalid_request', async () => {
    const res = await postJson(`${S}/api/v0/token/access`, { grant_type: 'nope' });
    expect(res).toMatchObject({ status: 400, json: { error: 'invalid_request' } });
  });

  it('answers a request without token with 401 and a description', async () => {
    const res = await postJson(`${S}/api/v0/token/access`, { grant_type: 'mytoken' });
    expect(res.status).toBe(401);
    expect(res.json?.error).toBe('invalid_token');
    expect(res.json?.error_description).toBeTruthy();
  });

  it('tells a malformed token in the body (400) from one in the header (401)', async () => {
    // Shorter than 32 characters: no token at all. Longer strings are unknown short tokens, which
    // the server answers with 401 in the body too (see fidelity.test.ts).
    const bad = 'x'.repeat(20);
    const inBody = await accessToken(S, bad);
    const inHeader = await postJson(
      `${S}/api/v0/token/access`,
      { grant_type: 'mytoken' },
      { authorization: `Bearer ${bad}` },
    );

    expect(inBody).toMatchObject({ status: 400, json: { error: 'invalid_request' } });
    expect(inHeader).toMatchObject({ status: 401, json: { error: 'invalid_token' } });
  });

  it('answers a JWT with a bad signature with 401 and a description', async () => {
    const token = await mint({ server: S });
    const [h, p, sig] = token.split('.') as [string, string, string];
    const forged = `${h}.${p}.${sig.startsWith('A') ? 'B' : 'A'}${sig.slice(1)}`;
    const res = await accessToken(S, forged);

    expect(res.status).toBe(401);
    expect(res.json?.error_description).toBeTruthy();
  });

  it('refuses the AT endpoint without a JSON or form content type', async () => {
    const token = await mint({ server: S });
    const res = await answer(
      await fetch(`${S}/api/v0/token/access`, {
        method: 'POST',
        body: JSON.stringify({ grant_type: 'mytoken', mytoken: token }),
      }),
    );
    expect(res).toMatchObject({ status: 400, json: { error: 'invalid_request' } });
  });

  it('answers a missing capability with insufficient_capabilities', async () => {
    const token = await mint({ server: S, capabilities: ['tokeninfo'] });
    const res = await accessToken(S, token);
    expect(res.status).toBe(403);
    expect(res.json?.error).toBe('insufficient_capabilities');
  });

  it('answers an issuer mismatch with invalid_request', async () => {
    const token = await mint({ server: S });
    const res = await accessToken(S, token, { oidc_issuer: 'https://other.example.org' });
    expect(res).toMatchObject({
      status: 400,
      json: { error: 'invalid_request', error_description: 'token not for specified issuer' },
    });
  });

  it('passes an OP refusal on as oidc_error with the OP status', async () => {
    const token = await mint({ server: S, usagesAT: 5 });
    const res = await accessToken(S, token, { audience: 'https://unknown.example.org' });

    expect(res.status).toBe(400);
    expect(res.json?.error).toBe('oidc_error');
    expect(res.json?.error_description).toMatch(/^invalid_target: /);
  });

  it('answers unknown codes with 401 and pending consent with 428', async () => {
    const unknown = await postJson(`${S}/api/v0/token/my`, {
      grant_type: 'transfer_code',
      transfer_code: 'ABCDEFGH',
    });
    const start = await postJson(`${S}/api/v0/token/my`, {
      grant_type: 'oidc_flow',
      oidc_flow: 'authorization_code',
      oidc_issuer: dev.urls.oidc_issuer,
    });
    const pending = await postJson(`${S}/api/v0/token/my`, {
      grant_type: 'polling_code',
      polling_code: start.json?.polling_code,
    });

    expect(unknown.json).toEqual({
      error: 'invalid_token',
      error_description: 'Bad polling or transfer code',
    });
    expect(start.json).toMatchObject({ expires_in: 300, interval: 5 });
    expect(start.json?.consent_uri).toMatch(new RegExp(`^${S}/c/`));
    expect(pending).toMatchObject({ status: 428, json: { error: 'authorization_pending' } });
  });

  it('answers a declined consent with access_denied', async () => {
    const start = await postJson(`${S}/api/v0/token/my`, {
      grant_type: 'oidc_flow',
      oidc_flow: 'authorization_code',
      oidc_issuer: dev.urls.oidc_issuer,
    });
    await fetch(`${start.json?.consent_uri}?decline=1`);
    const res = await postJson(`${S}/api/v0/token/my`, {
      grant_type: 'polling_code',
      polling_code: start.json?.polling_code,
    });
    expect(res).toMatchObject({ status: 401, json: { error: 'access_denied' } });
  });

  it('answers unknown API paths with not_found and bad JSON with invalid_request', async () => {
    const missing = await postJson(`${S}/api/v0/nothing`, {});
    const badJson = await postJson(`${S}/api/v0/token/my`, '{not json');

    expect(missing).toMatchObject({
      status: 404,
      json: { error: 'not_found', error_description: '/api/v0/nothing' },
    });
    expect(badJson).toMatchObject({ status: 400, json: { error: 'invalid_request' } });
  });

  it('reads JSON on the mytoken endpoint whatever the content type says', async () => {
    const res = await answer(
      await fetch(`${S}/api/v0/token/my?grant_type=oidc_flow`, {
        method: 'POST',
        headers: { 'content-type': 'text/plain' },
        body: JSON.stringify({
          oidc_flow: 'authorization_code',
          oidc_issuer: dev.urls.oidc_issuer,
        }),
      }),
    );
    expect(res.status).toBe(200);
  });
});

describe('sub-tokens, transfer codes, tokeninfo, revocation', () => {
  it('intersects capabilities hierarchically and refuses an empty result', async () => {
    const parent = await mint({ server: S, capabilities: ['AT', 'create_mytoken', 'tokeninfo'] });
    const narrow = await postJson(`${S}/api/v0/token/my`, {
      grant_type: 'mytoken',
      mytoken: parent,
      capabilities: ['tokeninfo:introspect', 'settings'],
    });
    const none = await postJson(`${S}/api/v0/token/my`, {
      grant_type: 'mytoken',
      mytoken: parent,
      capabilities: ['settings'],
    });

    expect(narrow.json?.capabilities).toEqual(['tokeninfo:introspect']);
    expect(none).toMatchObject({ status: 400, json: { error: 'invalid_request' } });
  });

  it('gives a sub-token asking for looser restrictions the parent clauses', async () => {
    const parent = await mint({ server: S, capabilities: ['AT', 'create_mytoken'], usagesAT: 5 });
    const loose = { grant_type: 'mytoken', mytoken: parent, restrictions: [{ usages_AT: 10 }] };
    const child = await postJson(`${S}/api/v0/token/my`, loose);
    const strict = await postJson(`${S}/api/v0/token/my`, {
      ...loose,
      error_on_restrictions: true,
    });

    expect(child.json?.restrictions).toEqual([{ usages_AT: 5 }]);
    expect(strict).toMatchObject({ status: 400, json: { error: 'invalid_request' } });
  });

  it('exchanges a transfer code exactly once', async () => {
    const token = await mint({ server: S });
    const created = await postJson(`${S}/api/v0/token/transfer`, { mytoken: token });
    const code = created.json?.transfer_code as string;
    const exchange = () =>
      postJson(`${S}/api/v0/token/my`, { grant_type: 'transfer_code', transfer_code: code });
    const first = await exchange();
    const second = await exchange();

    expect(created.json).toMatchObject({ mytoken_type: 'transfer_code', expires_in: 300 });
    expect(code).toMatch(/^[A-Za-z]{8}$/);
    expect(first.json).toMatchObject({ mytoken: token, mytoken_type: 'token' });
    expect(second.status).toBe(401);
  });

  it('mints straight into a transfer code', async () => {
    const code = await mint({ server: S, responseType: 'transfer_code' });
    const res = await postJson(`${S}/api/v0/token/my`, {
      grant_type: 'transfer_code',
      transfer_code: code,
    });
    expect(res.json?.mytoken).toMatch(JWT);
  });

  it('introspects with usage counters', async () => {
    const token = await mint({ server: S, usagesAT: 5 });
    await accessToken(S, token);
    const res = await postJson(`${S}/api/v0/tokeninfo`, { action: 'introspect', mytoken: token });

    expect(res.json).toMatchObject({ valid: true, token_type: 'token' });
    expect(res.json?.token.restrictions[0]).toMatchObject({ usages_AT: 5, usages_AT_done: 1 });
    expect(res.json?.mom_id).toHaveLength(88);
  });

  it('lists the event history newest first and the sub-token tree', async () => {
    const token = await mint({ server: S, capabilities: ['AT', 'tokeninfo', 'create_mytoken'] });
    await accessToken(S, token, { comment: 'first' });
    const child = await postJson(`${S}/api/v0/token/my`, { grant_type: 'mytoken', mytoken: token });
    const history = await postJson(`${S}/api/v0/tokeninfo`, {
      action: 'event_history',
      mytoken: token,
    });
    const tree = await postJson(`${S}/api/v0/tokeninfo`, { action: 'subtokens', mytoken: token });
    const events = (history.json?.events as { event: string }[]).map((e) => e.event);

    expect(events).toContain('AT_created');
    expect(events).toContain('MT_created');
    expect(events.at(-1)).toBe('created');
    expect(tree.json?.mytokens.children[0].token.mom_id).toBe(child.json?.mom_id);
  });

  it('revokes with 204, also for unknown tokens, and recursively', async () => {
    const parent = await mint({ server: S, capabilities: ['AT', 'create_mytoken'] });
    const child = await postJson(`${S}/api/v0/token/my`, {
      grant_type: 'mytoken',
      mytoken: parent,
    });
    const unknown = await postJson(`${S}/api/v0/token/revoke`, { token: 'y'.repeat(64) });
    const revoked = await postJson(`${S}/api/v0/token/revoke`, { token: parent, recursive: true });

    expect(unknown.status).toBe(204);
    expect(revoked.status).toBe(204);
    expect((await accessToken(S, parent)).status).toBe(401);
    expect((await accessToken(S, child.json?.mytoken)).status).toBe(401);
  });
});

describe('demo resource', () => {
  it('answers 401 with a Bearer challenge without a valid AT', async () => {
    const none = await fetch(`${dev.urls.resource}/health`);
    const bad = await fetch(`${dev.urls.resource}/health`, {
      headers: { authorization: 'Bearer nope' },
    });

    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect(bad.status).toBe(401);
  });

  it('fails on /fail and answers /slow for a valid AT', async () => {
    const at = (await accessToken(S, await mint({ server: S }))).json?.access_token as string;
    const headers = { authorization: `Bearer ${at}` };

    expect((await fetch(`${dev.urls.resource}/fail`, { headers })).status).toBe(500);
    expect((await fetch(`${dev.urls.resource}/slow?ms=20`, { headers })).status).toBe(200);
  });

  it('issues ATs with the lifetime set at runtime', async () => {
    await postJson(`${S}/_dev/config`, { at_lifetime: 60 });
    const res = await accessToken(S, await mint({ server: S }));
    await postJson(`${S}/_dev/config`, { at_lifetime: 3600 });

    expect(res.json?.expires_in).toBeLessThanOrEqual(60);
  });
});

describe('service client', () => {
  const basic = (id: string, secret: string) =>
    `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;
  const grant = (authorization: string) =>
    fetch(`${dev.urls.oidc_issuer}/token`, {
      method: 'POST',
      headers: { authorization, 'content-type': 'application/x-www-form-urlencoded' },
      body: 'grant_type=client_credentials',
    }).then(answer);

  it('gets a JWT AT for the demo resource with client_credentials, and counts the grant', async () => {
    const before = dev.stats().op_client_credentials_grants;
    const res = await grant(basic(OP_SERVICE_CLIENT.id, OP_SERVICE_CLIENT.secret));
    const at = res.json?.access_token as string;
    const health = await fetch(`${dev.urls.resource}/health`, {
      headers: { authorization: `Bearer ${at}` },
    });

    expect(res.status).toBe(200);
    expect(at).toMatch(JWT);
    expect(claimsOf(at)).toMatchObject({ aud: dev.urls.resource, sub: OP_SERVICE_CLIENT.id });
    expect(health.status).toBe(200);
    expect(dev.stats().op_client_credentials_grants).toBe(before + 1);
  });

  it('refuses a wrong secret and the mytoken server client', async () => {
    const wrong = await grant(basic(OP_SERVICE_CLIENT.id, 'nope'));
    const mytokenClient = await grant(basic('mytoken-dev-server', 'nope'));

    expect(wrong.status).toBe(401);
    expect(mytokenClient.status).toBe(401);
  });
});

describe('mintResponse', () => {
  it('returns the whole response with mom_id and restrictions', async () => {
    const res = await mintResponse({ server: S, exp: '+1h', scope: 'openid' });
    expect(res.mom_id).toHaveLength(88);
    expect(res.restrictions).toEqual([{ exp: expect.any(Number), scope: 'openid' }]);
    expect(res.expires_in).toBeGreaterThan(3500);
  });
});
