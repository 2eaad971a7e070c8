// Fidelity of the dev server against the real oidc-mytoken server. Every expectation here comes
// from reading the real server (oidc-mytoken/server at 3d3f590, with the api, utils and lib
// versions it pins); the comment on each test names the file and function that decide it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { oidcErrorText } from '../../devserver/api/access.ts';
import { mint, mintResponse, startDevServer, type DevServer } from '../../devserver/index.ts';
import { accessToken, answer, claimsOf, postJson, type Answer } from './helpers.ts';

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

function subtoken(parent: string, extra: Record<string, unknown> = {}): Promise<Answer> {
  return postJson(`${S}/api/v0/token/my`, { grant_type: 'mytoken', mytoken: parent, ...extra });
}

function tokeninfo(mytoken: string, extra: Record<string, unknown>): Promise<Answer> {
  return postJson(`${S}/api/v0/tokeninfo`, { mytoken, ...extra });
}

function revoke(body: Record<string, unknown>): Promise<Answer> {
  return postJson(`${S}/api/v0/token/revoke`, body);
}

function startFlow(extra: Record<string, unknown> = {}): Promise<Answer> {
  return postJson(`${S}/api/v0/token/my`, {
    grant_type: 'oidc_flow',
    oidc_flow: 'authorization_code',
    oidc_issuer: dev.urls.oidc_issuer,
    ...extra,
  });
}

async function events(mytoken: string): Promise<string[]> {
  const res = await tokeninfo(mytoken, { action: 'event_history' });
  return (res.json?.events as { event: string }[]).map((e) => e.event);
}

describe('access-token endpoint', () => {
  // server access/pkg/accessTokenRequest.go + model/grantType.go (NewGrantType, UnmarshalJSON):
  // the grant-type enum has mytoken, oidc_flow, polling_code, transfer_code, ssh (and the
  // refresh_token alias); every other string, the empty one included, fails body decoding.
  it('answers grant types outside the server enum with invalid_request', async () => {
    const token = await mint({ server: S });
    for (const grantType of ['access_token', 'private_key_jwt', '']) {
      const res = await accessToken(S, token, { grant_type: grantType });
      expect(res).toMatchObject({ status: 400, json: { error: 'invalid_request' } });
    }
    const ssh = await accessToken(S, token, { grant_type: 'ssh' });
    expect(ssh).toMatchObject({ status: 400, json: { error: 'invalid_grant' } });
  });

  // fiber v2 Ctx.BodyParser: every media type ending in "json" is decoded as JSON.
  it('decodes any media type ending in json', async () => {
    const token = await mint({ server: S });
    const res = await postJson(
      `${S}/api/v0/token/access`,
      { grant_type: 'mytoken', mytoken: token },
      { 'content-type': 'application/vnd.example+json' },
    );
    expect(res.status).toBe(200);
  });

  // server universalmytoken.go (Parse) + shorttokenrepo/proxytoken.go (JWT): an unknown short token
  // is not a decoding error, it resolves to an empty JWT; auth/auther.go (requireMytoken) then fails
  // parsing that with 401 invalid_token.
  it('answers an unknown short token in the body with 401, not 400', async () => {
    const res = await accessToken(S, 'x'.repeat(40));
    expect(res.status).toBe(401);
    expect(res.json?.error).toBe('invalid_token');
    expect(res.json?.error_description).toBeTruthy();
  });

  // server model/apiError.go, OIDCError: no ": " when the OP sent no description.
  it('words an OP error without description as the bare OP error', () => {
    expect(oidcErrorText('invalid_grant', '')).toBe('invalid_grant');
    expect(oidcErrorText('invalid_grant', 'gone')).toBe('invalid_grant: gone');
  });
});

describe('sub-tokens', () => {
  // api capability.go, TightenCapabilities: a requested capability is kept only if the parent
  // holds it (hierarchically); a broader request is dropped, never narrowed to the parent's.
  it('drops a requested capability broader than the parent holds', async () => {
    const parent = await mint({
      server: S,
      capabilities: ['AT', 'create_mytoken', 'tokeninfo:introspect'],
    });
    const mixed = await subtoken(parent, { capabilities: ['AT', 'tokeninfo'] });
    const broader = await subtoken(parent, { capabilities: ['tokeninfo'] });

    expect(mixed.json?.capabilities).toEqual(['AT']);
    expect(broader).toMatchObject({ status: 400, json: { error: 'invalid_request' } });
  });

  // server restrictions/restriction.go, Tighten + isTighterThan: limits are compared with the
  // parent clause's limit, not with what is left of it.
  it('compares usage limits with the parent limit, not its remaining budget', async () => {
    const parent = await mint({ server: S, capabilities: ['AT', 'create_mytoken'], usagesAT: 5 });
    for (let i = 0; i < 3; i++) expect((await accessToken(S, parent)).status).toBe(200);
    const child = await subtoken(parent, {
      restrictions: [{ usages_AT: 4 }],
      error_on_restrictions: true,
    });
    expect(child.status).toBe(200);
    expect(child.json?.restrictions).toEqual([{ usages_AT: 4 }]);
  });

  // server restrictions/restriction.go, Tighten: with nothing requested the child gets the parent
  // clauses as they are (its own counters start at zero).
  it('hands the parent clauses over unchanged when none are requested', async () => {
    const parent = await mint({ server: S, capabilities: ['AT', 'create_mytoken'], usagesAT: 5 });
    for (let i = 0; i < 3; i++) await accessToken(S, parent);
    const child = await subtoken(parent);
    expect(child.json?.restrictions).toEqual([{ usages_AT: 5 }]);
  });

  // server restrictions/restriction.go, Tighten: a kept clause consumes the usage budget of the
  // parent clause it matched, so a later clause compares against the rest.
  it('lets requested clauses share the parent usage budget', async () => {
    const parent = await mint({ server: S, capabilities: ['AT', 'create_mytoken'], usagesAT: 5 });
    const two = [{ usages_AT: 3 }, { usages_AT: 3, scope: 'openid' }];
    const lenient = await subtoken(parent, { restrictions: two });
    const strict = await subtoken(parent, { restrictions: two, error_on_restrictions: true });

    expect(lenient.json?.restrictions).toEqual([{ usages_AT: 3 }]);
    expect(strict).toMatchObject({ status: 400, json: { error: 'invalid_request' } });
  });

  // utils profile/restrictions.go, ParseRestrictionsTemplate: clauses equal to the zero clause are
  // dropped on input.
  it('drops empty restriction clauses', async () => {
    const parent = await mint({ server: S, capabilities: ['AT', 'create_mytoken'] });
    const child = await subtoken(parent, { restrictions: [{}, { scope: '' }] });
    expect(child.status).toBe(200);
    expect(child.json?.restrictions).toBeUndefined();
    expect(claimsOf(child.json?.mytoken).restrictions).toBeUndefined();
  });

  // utils timerestriction.go, ParseTime: a string of digits is absolute Unix seconds.
  it('reads a digit string in a time field as Unix seconds', async () => {
    const parent = await mint({ server: S, capabilities: ['AT', 'create_mytoken'] });
    const exp = Math.floor(Date.now() / 1000) + 3600;
    const child = await subtoken(parent, { restrictions: [{ exp: String(exp) }] });
    expect(child.json?.restrictions).toEqual([{ exp }]);
  });

  // server mytoken/pkg/mytoken.go, ExpiresIn (0 once expired) + api MytokenResponse (expires_in
  // omitempty). Sub-token creation does not refuse clauses that already ended.
  it('omits expires_in for a token that is already expired', async () => {
    const parent = await mint({ server: S, capabilities: ['AT', 'create_mytoken'] });
    const exp = Math.floor(Date.now() / 1000) - 60;
    const child = await subtoken(parent, { restrictions: [{ exp }] });
    expect(child.status).toBe(200);
    expect(child.json).not.toHaveProperty('expires_in');
  });

  // server mytoken/pkg/mytoken.go, ToTokenResponse: only a positive max_token_len overrides the
  // response type.
  it('ignores max_token_len 0', async () => {
    const parent = await mint({ server: S, capabilities: ['AT', 'create_mytoken'] });
    const child = await subtoken(parent, { max_token_len: 0 });
    expect(child.json).toMatchObject({ mytoken_type: 'token' });
    expect(child.json?.mytoken).toMatch(JWT);
  });
});

describe('introspection', () => {
  // server restrictions/usedRestriction.go, ToUsedRestriction: one counter row per clause, so a
  // used clause shows both counters, the unused kind as 0.
  it('shows both usage counters of a used clause', async () => {
    const token = await mint({ server: S, usagesAT: 5 });
    await accessToken(S, token);
    const res = await tokeninfo(token, { action: 'introspect' });
    expect(res.json?.token.restrictions[0]).toEqual({
      usages_AT: 5,
      usages_AT_done: 1,
      usages_other_done: 0,
    });
  });
});

describe('event history with mom_ids', () => {
  // server tokeninfo/history.go, HandleTokenInfoHistory: without manage_mytokens:history an
  // unknown mom_id fails the ancestor test (403 insufficient_capabilities).
  it('refuses an unknown mom_id', async () => {
    const token = await mint({ server: S });
    const res = await tokeninfo(token, { action: 'event_history', mom_ids: ['unknown'] });
    expect(res).toMatchObject({ status: 403, json: { error: 'insufficient_capabilities' } });
  });

  // Same function: with manage_mytokens:history the entry is checked as a mom_id as it stands, so
  // "this" names no token of the user (403 invalid_grant); without it, "this" passes unchecked.
  it('refuses "this" only to a token holding manage_mytokens:history', async () => {
    const plain = await mint({ server: S });
    const manager = await mint({
      server: S,
      capabilities: ['tokeninfo', 'manage_mytokens:history'],
    });
    const allowed = await tokeninfo(plain, { action: 'event_history', mom_ids: ['this'] });
    const refused = await tokeninfo(manager, { action: 'event_history', mom_ids: ['this'] });

    expect(allowed.status).toBe(200);
    expect(refused).toMatchObject({ status: 403, json: { error: 'invalid_grant' } });
  });

  // Same file, doTokenInfoHistory: with mom_ids the action is logged as
  // tokeninfo_history_other_token (restricted tokens only, as all "other" tokeninfo events).
  it('logs a history read with mom_ids under its own event name', async () => {
    const token = await mint({ server: S, restrictions: [{ usages_other: 10 }] });
    await tokeninfo(token, { action: 'event_history', mom_ids: ['this'] });
    expect(await events(token)).toContain('tokeninfo_history_other_token');
  });
});

describe('revocation', () => {
  // fiber v2 Ctx.BodyParser: no Content-Type is ErrUnprocessableEntity, even for an empty body
  // and a token in the cookie (server revocationEndpoint.go, HandleRevoke, parses first).
  it('refuses a body without content type', async () => {
    const token = await mint({ server: S });
    const res = await answer(
      await fetch(`${S}/api/v0/token/revoke`, {
        method: 'POST',
        headers: { cookie: `mytoken=${token}` },
      }),
    );
    expect(res).toMatchObject({ status: 400, json: { error: 'invalid_request' } });
    expect((await accessToken(S, token)).status).toBe(200);
  });

  // server revocationEndpoint.go, HandleRevoke: "no token given" comes before the mom_id branch.
  it('asks for a token before looking at the mom_id', async () => {
    const res = await revoke({ mom_id: 'x' });
    expect(res.json).toEqual({ error: 'invalid_request', error_description: 'no token given' });
  });

  // server revocationEndpoint.go, revokeByID + mytokenrepohelper CheckMytokensAreForSameUser: an
  // unknown mom_id is not a token of the same user (403 invalid_grant) for a token allowed to
  // revoke any; without that capability the ancestor test fails first.
  it('refuses an unknown mom_id', async () => {
    const manager = await mint({ server: S, capabilities: ['manage_mytokens:revoke'] });
    const plain = await mint({ server: S });
    const withCap = await revoke({ token: manager, mom_id: 'unknown' });
    const without = await revoke({ token: plain, mom_id: 'unknown' });

    expect(withCap).toMatchObject({ status: 403, json: { error: 'invalid_grant' } });
    expect(without).toMatchObject({ status: 403, json: { error: 'insufficient_capabilities' } });
  });

  // revokeByID: the event on the authorising token is stored after the revocation, in the same
  // transaction; when the authorising token is the one revoked that insert fails (its row is gone)
  // and everything rolls back with 500.
  it('fails and keeps the token when a token revokes itself by its mom_id', async () => {
    const res = await mintResponse({ server: S });
    const token = res.mytoken as string;
    const self = await revoke({ token, mom_id: res.mom_id });
    expect(self.status).toBe(500);
    expect((await accessToken(S, token)).status).toBe(200);
  });

  // revokeByID: a token no longer in the database is neither an ancestor (the ancestor query
  // starts from rows that exist) nor a token of the same user.
  it('refuses an authorising token that was revoked', async () => {
    const manager = await mint({
      server: S,
      capabilities: ['AT', 'create_mytoken', 'manage_mytokens:revoke'],
    });
    const child = await subtoken(manager);
    expect((await revoke({ token: manager })).status).toBe(204);
    const res = await revoke({ token: manager, mom_id: child.json?.mom_id });

    expect(res).toMatchObject({ status: 403, json: { error: 'invalid_grant' } });
    expect((await accessToken(S, child.json?.mytoken)).status).toBe(200);
  });

  // revokeByID + rotation/rotation.go (rotateMytoken re-wraps the key with the presented JWT): a
  // superseded on_other token cannot rotate, so the revocation rolls back with 500.
  it('rolls back when a superseded on_other token revokes by mom_id', async () => {
    const first = await mint({
      server: S,
      capabilities: ['AT', 'create_mytoken'],
      rotation: ['on_other'],
    });
    const child = await subtoken(first);
    expect(child.json?.token_update).toBeDefined();
    const res = await revoke({ token: first, mom_id: child.json?.mom_id });

    expect(res.status).toBe(500);
    expect((await accessToken(S, child.json?.mytoken)).status).toBe(200);
  });
});

describe('transfer codes', () => {
  // server transferEndpoint.go, HandleCreateTransferCodeForExistingMytoken: the code stores the
  // JWT behind a short token; mytokenHandler.go, HandleMytokenFromTransferCode, hands out a JWT.
  it('redeems a code made from a short token as the JWT', async () => {
    const short = await mint({ server: S, responseType: 'short_token' });
    const created = await postJson(`${S}/api/v0/token/transfer`, { mytoken: short });
    const res = await postJson(`${S}/api/v0/token/my`, {
      grant_type: 'transfer_code',
      transfer_code: created.json?.transfer_code,
    });
    expect(res.json).toMatchObject({ mytoken_type: 'token' });
    expect(res.json?.mytoken).toMatch(JWT);
  });

  // mytokenHandler.go, HandleMytokenFromTransferCode: a polling code without a token yet passes
  // the found/expired checks, yields an empty token and fails parsing it with 400.
  it('refuses a pending polling code redeemed as a transfer code with 400', async () => {
    const start = await startFlow();
    const res = await postJson(`${S}/api/v0/token/my`, {
      grant_type: 'transfer_code',
      transfer_code: start.json?.polling_code,
    });
    expect(res).toMatchObject({ status: 400, json: { error: 'invalid_request' } });
  });
});

describe('OIDC flow and polling', () => {
  // server mytoken/pkg/oidcFlowRequest.go + model/oidcFlow.go: oidc_flow decodes into an enum
  // whose zero value is authorization_code, so omitting it starts that flow; an unknown value
  // fails decoding (400 invalid_request). authcode_init.go, Native: every client_type but "web".
  it('defaults oidc_flow, refuses unknown flows and treats other client types as native', async () => {
    const omitted = await startFlow({ oidc_flow: undefined, client_type: 'cli' });
    const unknown = await startFlow({ oidc_flow: 'device' });

    expect(omitted.status).toBe(200);
    expect(omitted.json?.polling_code).toMatch(/^[A-Za-z]{8}$/);
    expect(unknown).toMatchObject({ status: 400, json: { error: 'invalid_request' } });
  });

  // polling/pollingEndpoint.go, CheckPollingCodeReq: a declined code is not consumed; every poll
  // answers access_denied (until the code is cleaned up).
  it('answers access_denied to every poll of a declined code', async () => {
    const start = await startFlow();
    await fetch(`${start.json?.consent_uri}?decline=1`);
    const poll = () =>
      postJson(`${S}/api/v0/token/my`, {
        grant_type: 'polling_code',
        polling_code: start.json?.polling_code,
      });
    expect(await poll()).toMatchObject({ status: 401, json: { error: 'access_denied' } });
    expect(await poll()).toMatchObject({ status: 401, json: { error: 'access_denied' } });
  });

  // transfercoderepo/pollingCodeTmpMT.go, PopTokenForTransferCode: redeeming a polling code logs
  // transfer_code_used on the new token.
  it('logs the redeemed polling code on the new token', async () => {
    const token = await mint({ server: S });
    expect(await events(token)).toContain('transfer_code_used');
  });
});
