import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { readMytokenClaims } from '../../src/client/index.ts';
import { GITHUB_TOKENS, REPO, errorLine, expectNoLeaks, runAction, wasMasked } from './harness.ts';
import { REPO_SCOPE, startFixture, type Fixture } from './fixture.ts';

let f: Fixture;

beforeAll(async () => {
  f = await startFixture();
});

afterAll(async () => {
  await f?.close();
});

const OUTPUTS = [
  'access-token',
  'audience',
  'expires-at',
  'expires-in',
  'rotated',
  'scope',
  'token-type',
];

describe('the action with a rotating mytoken', () => {
  test('sets every output and writes the rotated mytoken back', async () => {
    const token = await f.seed();
    const run = await f.run(token);

    expect(run.code, errorLine(run)).toBe(0);
    const stored = f.stored() as string;
    const before = readMytokenClaims(token);
    const after = readMytokenClaims(stored);
    expect(before.kind === 'jwt' && after.kind === 'jwt').toBe(true);
    if (before.kind !== 'jwt' || after.kind !== 'jwt') return;
    expect(after.jti).toBe(before.jti);
    expect(after.seqNo).toBe(before.seqNo + 1);
    expect(wasMasked(run, stored)).toBe(true);
    expect(Object.keys(run.outputs).sort()).toEqual(OUTPUTS);
    expect(run.outputs['access-token']?.length).toBeGreaterThan(10);
    expect(run.outputs['token-type']).toBe('Bearer');
    expect(Number(run.outputs['expires-in'])).toBeGreaterThan(0);
    expect(Date.parse(run.outputs['expires-at'] as string)).toBeGreaterThan(Date.now());
    expect(run.outputs.rotated).toBe('true');
  });

  test('yields an access token the resource accepts', async () => {
    const run = await f.run(await f.seed());

    const res = await fetch(`${f.dev.urls.resource}/health`, {
      headers: { authorization: `Bearer ${run.outputs['access-token']}` },
    });
    await res.body?.cancel();
    expect(res.status).toBe(200);
  });

  test('masks every token before it appears and leaks none', async () => {
    const token = await f.seed();
    const run = await f.run(token, { inputs: { 'export-variable': 'ACCESS_TOKEN' } });

    expect(run.code, errorLine(run)).toBe(0);
    const at = run.outputs['access-token'] as string;
    const secrets = [token, at, f.stored() as string, GITHUB_TOKENS.writer, GITHUB_TOKENS.job];
    for (const secret of secrets) expect(wasMasked(run, secret)).toBe(true);
    expect(run.exported.ACCESS_TOKEN).toBe(at);
    expectNoLeaks(run, secrets, { outputs: ['access-token'], exports: ['ACCESS_TOKEN'] });
  });

  test('masks a token given with surrounding whitespace in both forms', async () => {
    const token = await f.seed();
    const run = await f.run(`${token}\n`);

    expect(run.code, errorLine(run)).toBe(0);
    expect(wasMasked(run, token)).toBe(true);
    expect(run.stdout).toContain(`::add-mask::${token}%0A`);
  });

  test('writes a job summary without any token', async () => {
    const token = await f.seed();
    const run = await f.run(token);

    expect(run.summary).toContain('### mytoken: access token issued');
    expect(run.summary).toContain('| Rotated | yes |');
    expect(run.summary).toContain('| Written back | repository secret MYTOKEN |');
    expect(run.summary).toContain(`| OpenID issuer | ${f.dev.urls.oidc_issuer} |`);
    expect(run.summary).toMatch(/\| Access token expires \| \d{4}-\d\d-\d\dT[\d:.]+Z \|/);
    expect(run.summary).not.toContain(token);
    expect(run.summary).not.toContain(run.outputs['access-token']);
    expect(run.summary).not.toContain(f.stored());
  });

  test('ten runs in a row each use the secret the previous run left', async () => {
    let current = await f.seed('CHAIN');
    const seen = new Set([current]);
    for (let i = 0; i < 10; i++) {
      const run = await f.run(current, { inputs: { 'secret-name': 'CHAIN' } });
      expect(run.code, errorLine(run)).toBe(0);
      expect(run.outputs.rotated).toBe('true');
      current = f.stored('CHAIN') as string;
      expect(seen.has(current)).toBe(false);
      seen.add(current);
    }
  });

  test('accepts a short (opaque) mytoken and writes its successor back', async () => {
    const token = await f.mint({ responseType: 'short_token' });
    f.github.setSecret(REPO_SCOPE, 'SHORT', token, { updatedAt: new Date(Date.now() - 60_000) });
    const run = await f.run(token, { inputs: { 'secret-name': 'SHORT' } });

    expect(run.code, errorLine(run)).toBe(0);
    expect(f.stored('SHORT')).not.toBe(token);
    expectNoLeaks(run, [token, f.stored('SHORT') as string]);
  });
});

describe('the action with a non-rotating mytoken', () => {
  test('needs no write-back target and leaves GitHub alone', async () => {
    const token = await f.mint({ rotation: [] });
    f.github.clearRequests();
    const run = await runAction({
      inputs: { mytoken: token, 'mytoken-server': f.dev.urls.mytoken_server },
      env: { GITHUB_API_URL: f.github.url },
    });

    expect(run.code, errorLine(run)).toBe(0);
    expect(run.outputs.rotated).toBe('false');
    expect(f.github.requests).toEqual([]);
    expect(run.summary).toContain('| Written back | not needed |');
    expectNoLeaks(run, [token, run.outputs['access-token'] as string], {
      outputs: ['access-token'],
    });
  });

  test('passes scope and audience to the server and reports them', async () => {
    const token = await f.mint({ rotation: [], scope: 'openid profile' });
    const run = await runAction({
      inputs: {
        mytoken: token,
        'mytoken-server': f.dev.urls.mytoken_server,
        scope: ' openid \n profile ',
        audience: f.dev.urls.resource,
      },
    });

    expect(run.code, errorLine(run)).toBe(0);
    expect(run.outputs.scope?.split(' ')).toContain('profile');
    expect(run.outputs.audience).toBe(f.dev.urls.resource);
  });
});

describe('the stale-secret check', () => {
  test('refuses a secret updated after the job started, without presenting the token', async () => {
    const token = await f.seed('RACED');
    f.github.setSecret(REPO_SCOPE, 'RACED', token, { updatedAt: new Date(Date.now() - 5_000) });
    const before = f.dev.stats().at_success;
    const run = await f.run(token, {
      inputs: { 'secret-name': 'RACED' },
      jobStartedAt: new Date(Date.now() - 30_000),
    });

    expect(run.code).toBe(1);
    expect(errorLine(run)).toMatch(
      /^repository secret RACED was updated at \S+, after this job started \(\S+, from the event file\), so the mytoken in hand is superseded and was not used\. .*"concurrency: \{ group: mytoken-RACED, cancel-in-progress: false \}"/,
    );
    expect(f.dev.stats().at_success).toBe(before);
    expect(f.stored('RACED')).toBe(token);
  });

  test('accepts a secret updated before the job started (a run that waited in a queue)', async () => {
    const token = await f.seed('QUEUED');
    f.github.setSecret(REPO_SCOPE, 'QUEUED', token, { updatedAt: new Date(Date.now() - 20_000) });
    const run = await f.run(token, {
      inputs: { 'secret-name': 'QUEUED' },
      jobStartedAt: new Date(Date.now() - 10_000),
    });

    expect(run.code, errorLine(run)).toBe(0);
    expect(f.stored('QUEUED')).not.toBe(token);
  });

  test('warns and goes on when the job start cannot be told', async () => {
    const token = await f.seed();
    const run = await f.run(token, { env: { GITHUB_EVENT_PATH: '' } });

    expect(run.code, errorLine(run)).toBe(0);
    expect(run.stdout).toContain(
      '::warning::cannot tell when this job started; skipped the check for a concurrent update of repository secret MYTOKEN',
    );
  });
});

describe('write-back targets', () => {
  test('writes an environment secret', async () => {
    const envScope = { repo: REPO, environment: 'production' };
    const token = await f.seed('MYTOKEN', envScope);
    const run = await f.run(token, { inputs: { 'secret-environment': 'production' } });

    expect(run.code, errorLine(run)).toBe(0);
    expect(f.stored('MYTOKEN', envScope)).not.toBe(token);
    expect(run.summary).toContain('environment secret MYTOKEN (environment "production")');
  });

  test('writes an organization secret and keeps its visibility', async () => {
    const orgScope = { org: 'acme' };
    const token = await f.mint();
    f.github.setSecret(orgScope, 'ORG_MYTOKEN', token, {
      updatedAt: new Date(Date.now() - 60_000),
      visibility: 'all',
    });
    const run = await f.run(token, {
      inputs: { 'secret-name': 'org_mytoken', 'secret-organization': 'acme' },
    });

    expect(run.code, errorLine(run)).toBe(0);
    const stored = f.github.secret(orgScope, 'ORG_MYTOKEN');
    expect(stored?.value).not.toBe(token);
    expect(stored?.visibility).toBe('all');
  });
});
