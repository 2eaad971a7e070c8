/**
 * Each failure the Action knows ends in one `::error::` line naming the problem and the fix, exit code 1, and
 * leaves the stored mytoken untouched whenever the failure comes before the exchange.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { mint, startDevServer } from '../../devserver/index.ts';
import {
  CAPABILITY_HINT,
  FORKS_HINT,
  MINT_HINT,
  NETWORK_HINT,
  NOT_FOUND_HINT,
  PERMISSION_HINT,
  RESTRICTED_HINT,
  WRITE_BACK_HINT,
  WRONG_SERVER_HINT,
  concurrencyHint,
  staleAfterRotationHint,
} from '../../src/action/messages.ts';
import { GITHUB_TOKENS, errorLine, expectNoLeaks, runAction, type ActionRun } from './harness.ts';
import { startFixture, type Fixture } from './fixture.ts';

let f: Fixture;

beforeAll(async () => {
  f = await startFixture();
});

afterAll(async () => {
  await f?.close();
});

function expectFailure(run: ActionRun, message: string | RegExp): void {
  expect(run.code).toBe(1);
  const line = errorLine(run);
  if (typeof message === 'string') expect(line).toBe(message);
  else expect(line).toMatch(message);
  expect(run.stderr).toBe('');
  expect(run.outputs).toEqual({});
}

const LONG_GARBAGE = 'x'.repeat(64);

describe('bad inputs', () => {
  const cases: { name: string; inputs: Record<string, string>; message: string }[] = [
    {
      name: 'an empty mytoken',
      inputs: { mytoken: '' },
      message: `input "mytoken" is empty. ${FORKS_HINT}`,
    },
    {
      name: 'a mytoken of whitespace only',
      inputs: { mytoken: ' \n ' },
      message: `input "mytoken" is empty. ${FORKS_HINT}`,
    },
    {
      name: 'a mytoken with inner whitespace',
      inputs: { mytoken: `${LONG_GARBAGE} ${LONG_GARBAGE}` },
      message: 'input "mytoken" is not a mytoken: it contains spaces or control characters',
    },
    {
      name: 'a mytoken too short to be one',
      inputs: { mytoken: 'garbage' },
      message: 'input "mytoken" is not a mytoken: shorter than 32 characters',
    },
    {
      name: 'a plain-http server on a non-loopback host',
      inputs: { 'mytoken-server': 'http://mytoken.example.org' },
      message:
        'input "mytoken-server" uses plain http for a host other than loopback: use https, or set "allow-insecure-http: true"',
    },
    {
      name: 'a server that is not a URL',
      inputs: { 'mytoken-server': 'mytok.eu' },
      message: 'input "mytoken-server" must be an https URL without credentials, query or fragment',
    },
    {
      name: 'a secret name with a hyphen',
      inputs: { 'secret-name': 'MY-TOKEN' },
      message:
        'input "secret-name" is not a valid secret name: use letters, digits and underscores, not starting with a digit',
    },
    {
      name: 'a secret name starting with GITHUB_',
      inputs: { 'secret-name': 'github_mytoken' },
      message: 'input "secret-name" must not start with GITHUB_',
    },
    {
      name: 'an environment without a secret name',
      inputs: { 'secret-name': '', 'secret-environment': 'prod' },
      message: 'input "secret-environment" needs "secret-name"',
    },
    {
      name: 'both an environment and an organization',
      inputs: { 'secret-environment': 'prod', 'secret-organization': 'acme' },
      message: 'input "secret-organization" cannot be combined with "secret-environment"',
    },
    {
      name: 'a boolean that is not one',
      inputs: { 'allow-insecure-http': 'yes' },
      message: 'input "allow-insecure-http" must be "true" or "false"',
    },
    {
      name: 'a reserved variable name to export to',
      inputs: { 'export-variable': 'PATH' },
      message: 'input "export-variable" names a variable the runner or Node reserve',
    },
    {
      name: 'a sub-token lifetime that is not a duration',
      inputs: { 'sub-token-lifetime': 'forever' },
      message:
        'input "sub-token-lifetime" must be a duration between 60s and 31d, e.g. "3600", "90m" or "6h"',
    },
  ];

  test.each(cases)('$name is refused', async ({ inputs, message }) => {
    const token = await f.seed();
    const run = await f.run(token, { inputs });

    expectFailure(run, message);
    expect(f.stored()).toBe(token);
  });

  test('http for a non-loopback host passes validation with the explicit opt-in', async () => {
    const token = await f.mint({ rotation: [] });
    const run = await runAction({
      inputs: {
        mytoken: token,
        'mytoken-server': 'http://mytoken.example.org',
        'allow-insecure-http': 'true',
      },
    });

    expectFailure(
      run,
      `the mytoken was issued by "${f.dev.urls.mytoken_server}", not by "mytoken-server" (http://mytoken.example.org). ${WRONG_SERVER_HINT}`,
    );
  });
});

describe('mytoken problems', () => {
  test('a superseded mytoken names concurrent runs and the concurrency setting', async () => {
    const token = await f.seed();
    expect((await f.run(token)).code).toBe(0);
    const run = await f.run(token);

    expectFailure(
      run,
      `the mytoken server refused the mytoken as expired, revoked or superseded. ${concurrencyHint('MYTOKEN')}`,
    );
    expectNoLeaks(run, [token, f.stored() as string]);
  });

  test('a revoked mytoken gets the same message', async () => {
    const token = await f.seed();
    const config = (await (
      await fetch(`${f.dev.urls.mytoken_server}/.well-known/mytoken-configuration`)
    ).json()) as { revocation_endpoint: string };
    const res = await fetch(config.revocation_endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token }),
    });
    expect(res.status).toBe(204);

    expectFailure(
      await f.run(token),
      /^the mytoken server refused the mytoken as expired, revoked or superseded(: .*)?\. Two runs probably/,
    );
  });

  test('garbage of token length is refused by the server', async () => {
    f.github.setSecret({ repo: 'acme/app' }, 'GARBAGE', LONG_GARBAGE, {
      updatedAt: new Date(Date.now() - 60_000),
    });
    const run = await f.run(LONG_GARBAGE, { inputs: { 'secret-name': 'GARBAGE' } });

    expectFailure(run, /^the mytoken server refused the mytoken as expired, revoked or superseded/);
  });

  test('an expired mytoken is refused before it is sent', async () => {
    const exp = Math.floor(Date.now() / 1000) + 1;
    const token = await f.seed('MYTOKEN', undefined, { exp });
    await new Promise((resolve) => setTimeout(resolve, (exp + 1) * 1000 - Date.now()));
    const before = f.dev.stats().requests;
    const run = await f.run(token);

    expectFailure(
      run,
      `the mytoken expired at ${new Date(exp * 1000).toISOString()}. ${MINT_HINT}`,
    );
    expect(f.dev.stats().requests).toEqual(before);
  });

  test('restrictions that do not allow the request', async () => {
    const token = await f.seed('MYTOKEN', undefined, { scope: 'openid' });
    const run = await f.run(token, { inputs: { scope: 'openid profile' } });

    expectFailure(run, `the mytoken's restrictions do not allow this request. ${RESTRICTED_HINT}`);
    expect(f.stored()).toBe(token);
  });

  test('a missing AT capability is found in the claims', async () => {
    const token = await f.seed('MYTOKEN', undefined, { capabilities: ['tokeninfo'] });
    expectFailure(await f.run(token), `the mytoken lacks the "AT" capability. ${CAPABILITY_HINT}`);
  });

  test('a mytoken from another server is never sent to the configured one', async () => {
    const other = await startDevServer({ port: 0 });
    try {
      const token = await mint({ server: other.urls.mytoken_server, rotation: ['on_AT'] });
      const run = await f.run(token);

      expectFailure(
        run,
        `the mytoken was issued by "${other.urls.mytoken_server}", not by "mytoken-server" (${f.dev.urls.mytoken_server}). ${WRONG_SERVER_HINT}`,
      );
    } finally {
      await other.close();
    }
  });

  test('an unreachable server', async () => {
    const gone = await startDevServer({ port: 0 });
    const token = await mint({ server: gone.urls.mytoken_server });
    await gone.close();
    const run = await runAction({
      inputs: { mytoken: token, 'mytoken-server': gone.urls.mytoken_server },
    });

    expectFailure(
      run,
      `cannot reach the mytoken server ${gone.urls.mytoken_server} (ECONNREFUSED). ${NETWORK_HINT}`,
    );
  });
});

describe('write-back problems', () => {
  test('a rotating mytoken without secret-name', async () => {
    const token = await f.seed();
    const run = await f.run(token, { inputs: { 'secret-name': '' } });

    expectFailure(
      run,
      `the mytoken rotates on use but "secret-name" is not set, so the new mytoken would be lost. ${WRITE_BACK_HINT}`,
    );
  });

  test('a rotating mytoken without github-token', async () => {
    const token = await f.seed();
    const run = await f.run(token, { inputs: { 'github-token': '' } });

    expectFailure(
      run,
      `the mytoken rotates on use but "github-token" is not set, so the new mytoken would be lost. ${WRITE_BACK_HINT}`,
    );
  });

  test('a short mytoken may rotate, so it needs a write-back target too', async () => {
    const token = await f.mint({ rotation: [], responseType: 'short_token' });
    const run = await f.run(token, { inputs: { 'secret-name': '' } });

    expectFailure(
      run,
      `the mytoken may rotate on use (a short token does not say) but "secret-name" is not set, so the new mytoken would be lost. ${WRITE_BACK_HINT}`,
    );
  });

  test('a github-token without access to secrets fails before the exchange', async () => {
    const token = await f.seed();
    const before = f.dev.stats().at_success;
    const run = await f.run(token, { inputs: { 'github-token': GITHUB_TOKENS.none } });

    expectFailure(
      run,
      `"github-token" may not read the public key for repository secret MYTOKEN (403: Resource not accessible by integration). ${PERMISSION_HINT}`,
    );
    expect(f.dev.stats().at_success).toBe(before);
    expect(f.stored()).toBe(token);
  });

  test('a github-token GitHub does not know', async () => {
    const token = await f.seed();
    const run = await f.run(token, {
      inputs: { 'github-token': 'ghp_unknown0000000000000000000000000000' },
    });

    expectFailure(run, `GitHub rejected "github-token" (401: Bad credentials). ${PERMISSION_HINT}`);
  });

  test('a secret that does not exist', async () => {
    const token = await f.mint();
    const run = await f.run(token, { inputs: { 'secret-name': 'NO_SUCH_SECRET' } });

    expectFailure(
      run,
      `GitHub read repository secret NO_SUCH_SECRET: not found (404). ${NOT_FOUND_HINT}`,
    );
  });

  test('a github-token that may read but not write: the secret is stale and the line says so', async () => {
    const token = await f.seed();
    const run = await f.run(token, { inputs: { 'github-token': GITHUB_TOKENS.reader } });

    expectFailure(
      run,
      `the mytoken was rotated but writing it back to repository secret MYTOKEN failed: "github-token" may not write repository secret MYTOKEN (403: Resource not accessible by integration). ${staleAfterRotationHint('MYTOKEN')}`,
    );
    expect(f.stored()).toBe(token);
    expectNoLeaks(run, [token]);
  });
});
