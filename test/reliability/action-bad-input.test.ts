/**
 * A corpus of bad inputs for the Action (issue #5), beyond the thirteen of `test/action/errors.test.ts`: each gets
 * one line naming the input, and neither the mytoken server nor GitHub hears of the token. The whole corpus runs
 * against `run()` in-process (the code the bundle runs, with a recording runner core: milliseconds per case), and a
 * sample of it through `dist/index.js` as the runner runs it, for exit 1 and the absence of a stack trace.
 * Surrounding whitespace around a secret (the newline `echo` adds) is trimmed with a notice instead, and both forms
 * are masked.
 */
import { tmpdir } from 'node:os';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { SignJWT } from 'jose';
import type { ActionCore } from '../../src/action/core.ts';
import { FORKS_HINT, PERMISSION_HINT } from '../../src/action/messages.ts';
import { run } from '../../src/action/run.ts';
import {
  DIST,
  GITHUB_TOKENS,
  REPO,
  actionDefaults,
  errorLine,
  wasMasked,
} from '../action/harness.ts';
import { startFixture, type Fixture } from '../action/fixture.ts';
import { Canaries, assertNoCanaries } from '../support/canary.ts';
import { expectActionFailure, expectNoLeaks, isValid, runCanaries } from './helpers.ts';

let f: Fixture;
let tried = 0;

beforeAll(async () => {
  f = await startFixture();
});

afterAll(async () => {
  if (process.env.MYTOKEN_RELIABILITY_COUNTS) console.info(`action-bad-input: ${tried} bad inputs`);
  await f?.close();
});

const NOT_A_MYTOKEN = 'is not a mytoken: it contains spaces or control characters';
const SERVER_URL = 'must be an https URL without credentials, query or fragment';
const PLAIN_HTTP =
  'uses plain http for a host other than loopback: use https, or set "allow-insecure-http: true"';
const SECRET_NAME =
  'is not a valid secret name: use letters, digits and underscores, not starting with a digit';
const LIFETIME = 'must be a duration between 60s and 31d, e.g. "3600", "90m" or "6h"';

interface Case {
  name: string;
  /** Also run through dist/index.js. */
  blackBox?: boolean;
  /** Inputs over the fixture's; `mytoken` may use `{token}` for the seeded token. */
  inputs?: Record<string, string>;
  env?: Record<string, string>;
  line: string | RegExp;
  /** True when the failure comes from GitHub (so GitHub did see a request). */
  reachesGitHub?: boolean;
}

/** An OIDC-style access token (a JWT, but not a mytoken), as someone might store by mistake. */
async function accessTokenLike(): Promise<string> {
  const key = new TextEncoder().encode(
    'a key that only makes this a well-formed JWT, nothing more',
  );
  return new SignJWT({ scope: 'openid', client_id: 'x' })
    .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt' })
    .setIssuer('https://op.example')
    .setExpirationTime('1h')
    .sign(key);
}

const CASES: Case[] = [
  {
    name: 'a mytoken with a tab inside',
    blackBox: true,
    inputs: { mytoken: '{token}\tx' },
    line: `input "mytoken" ${NOT_A_MYTOKEN}`,
  },
  {
    name: 'two tokens pasted on two lines',
    inputs: { mytoken: '{token}\r\n{token}' },
    line: `input "mytoken" ${NOT_A_MYTOKEN}`,
  },
  {
    name: 'a mytoken with non-ASCII characters',
    inputs: { mytoken: 'mytöken-mytöken-mytöken-mytöken-mytöken' },
    line: `input "mytoken" ${NOT_A_MYTOKEN}`,
  },
  {
    name: 'a JWT that is not a mytoken (an access token stored by mistake)',
    blackBox: true,
    inputs: { mytoken: '{jwt}' },
    line: 'input "mytoken" is a JWT but not a mytoken (an access token or ID token?)',
  },
  {
    name: 'a mytoken of a newline only',
    inputs: { mytoken: '\n' },
    line: `input "mytoken" is empty. ${FORKS_HINT}`,
  },
  {
    name: 'a plain-http server whose name only starts like localhost',
    inputs: { 'mytoken-server': 'http://localhost.example.com' },
    line: `input "mytoken-server" ${PLAIN_HTTP}`,
  },
  {
    name: 'a plain-http server on a private address',
    inputs: { 'mytoken-server': 'http://10.0.0.1:8000' },
    line: `input "mytoken-server" ${PLAIN_HTTP}`,
  },
  {
    name: 'a server URL with credentials',
    blackBox: true,
    inputs: { 'mytoken-server': 'https://user:hunter2hunter2@mytok.example' },
    line: `input "mytoken-server" ${SERVER_URL}`,
  },
  {
    name: 'a server URL with a query',
    inputs: { 'mytoken-server': 'https://mytok.example/?x=1' },
    line: `input "mytoken-server" ${SERVER_URL}`,
  },
  {
    name: 'a server URL with another scheme',
    inputs: { 'mytoken-server': 'ftp://mytok.example' },
    line: `input "mytoken-server" ${SERVER_URL}`,
  },
  {
    name: 'a server URL without a host',
    inputs: { 'mytoken-server': 'https://' },
    line: `input "mytoken-server" ${SERVER_URL}`,
  },
  {
    name: 'a server of whitespace only',
    inputs: { 'mytoken-server': '  \n' },
    line: 'input "mytoken-server" is empty',
  },
  {
    name: 'a secret name starting with a digit',
    inputs: { 'secret-name': '1MYTOKEN' },
    line: `input "secret-name" ${SECRET_NAME}`,
  },
  {
    name: 'a secret name with a space',
    blackBox: true,
    inputs: { 'secret-name': 'MY TOKEN' },
    line: `input "secret-name" ${SECRET_NAME}`,
  },
  {
    name: 'a secret name with a non-ASCII letter',
    inputs: { 'secret-name': 'MYTÖKEN' },
    line: `input "secret-name" ${SECRET_NAME}`,
  },
  {
    name: 'an organization name starting with a hyphen',
    inputs: { 'secret-organization': '-acme' },
    line: 'input "secret-organization" is not an organization name',
  },
  {
    name: 'an organization given as owner/repo',
    inputs: { 'secret-organization': 'acme/app' },
    line: 'input "secret-organization" is not an organization name',
  },
  {
    name: 'an environment variable name starting with a digit',
    inputs: { 'export-variable': '1TOKEN' },
    line: 'input "export-variable" is not a valid environment variable name',
  },
  {
    name: 'GITHUB_TOKEN as the variable to export to',
    inputs: { 'export-variable': 'GITHUB_TOKEN' },
    line: 'input "export-variable" names a variable the runner or Node reserve',
  },
  {
    name: 'NODE_OPTIONS as the variable to export to',
    inputs: { 'export-variable': 'node_options' },
    line: 'input "export-variable" names a variable the runner or Node reserve',
  },
  {
    name: 'a sub-token lifetime below a minute',
    inputs: { 'sub-token-lifetime': '30' },
    line: `input "sub-token-lifetime" ${LIFETIME}`,
  },
  {
    name: 'a sub-token lifetime above a month',
    inputs: { 'sub-token-lifetime': '32d' },
    line: `input "sub-token-lifetime" ${LIFETIME}`,
  },
  {
    name: 'a fractional sub-token lifetime',
    inputs: { 'sub-token-lifetime': '1.5h' },
    line: `input "sub-token-lifetime" ${LIFETIME}`,
  },
  {
    name: 'an OpenID issuer that is not a URL',
    inputs: { 'oidc-issuer': 'op.example' },
    line: 'input "oidc-issuer" is not a URL',
  },
  {
    name: 'a boolean given as 1',
    inputs: { 'allow-insecure-http': '1' },
    line: 'input "allow-insecure-http" must be "true" or "false"',
  },
  {
    name: 'a secret name without GITHUB_REPOSITORY',
    env: { GITHUB_REPOSITORY: '' },
    line: 'input "secret-name" needs GITHUB_REPOSITORY (owner/name), which the runner sets',
  },
  {
    name: 'a plain-http GITHUB_API_URL for a remote host',
    blackBox: true,
    env: { GITHUB_API_URL: 'http://github.example' },
    line: 'GITHUB_API_URL "http://github.example" must use https (or set "allow-insecure-http: true")',
  },
  {
    name: 'a GITHUB_API_URL that is not a URL',
    env: { GITHUB_API_URL: 'github.example' },
    line: 'GITHUB_API_URL "github.example" is not a URL',
  },
  {
    name: 'a github-token with a space inside',
    blackBox: true,
    inputs: { 'github-token': `${GITHUB_TOKENS.writer} x` },
    line: `GitHub rejected "github-token" (401: Bad credentials). ${PERMISSION_HINT}`,
    reachesGitHub: true,
  },
];

/** The case's inputs with `{token}` and `{jwt}` filled in. */
function inputsOf(c: Case, token: string, jwt: string): Record<string, string> {
  return Object.fromEntries(
    Object.entries(c.inputs ?? {}).map(([k, v]) => [
      k,
      v.replaceAll('{token}', token).replaceAll('{jwt}', jwt),
    ]),
  );
}

describe('bad Action inputs, against run()', () => {
  test.each(CASES)('$name: one line naming it, the token unused', async (c) => {
    tried += 1;
    const token = await f.seed();
    const jwt = await accessTokenLike();
    const requests = f.dev.stats().requests;
    f.github.clearRequests();
    const rec = await runInProcess(f, { mytoken: token, ...inputsOf(c, token, jwt) }, c.env);

    expect(rec.failures).toEqual([c.line]);
    expect(rec.outputs).toEqual({});
    expect(f.dev.stats().requests, 'requests to the mytoken server').toEqual(requests);
    if (c.reachesGitHub !== true) expect(f.github.requests, 'requests to GitHub').toEqual([]);
    expect(f.stored()).toBe(token);
    const canaries = new Canaries()
      .add('input mytoken', token)
      .add('access-token-like JWT', jwt)
      .add('password in a URL', 'user:hunter2hunter2');
    for (const [label, value] of Object.entries(GITHUB_TOKENS)) canaries.add(label, value);
    for (const secret of rec.secrets) canaries.add('masked value', secret);
    assertNoCanaries(canaries, { log: rec.log.join('\n'), failure: rec.failures.join('\n') });
  });
});

describe('bad Action inputs, through dist/index.js', () => {
  test.each(CASES.filter((c) => c.blackBox === true))(
    '$name: exit 1, no stack trace',
    async (c) => {
      const token = await f.seed();
      const jwt = await accessTokenLike();
      const inputs = inputsOf(c, token, jwt);
      const run = await f.run(inputs.mytoken ?? token, { inputs, env: c.env });

      expectActionFailure(run, c.line);
      expect(f.stored()).toBe(token);
      const canaries = runCanaries(run, { 'input mytoken': token, 'access-token-like JWT': jwt });
      canaries.add('password in a URL', 'user:hunter2hunter2');
      await expectNoLeaks(run, canaries);
    },
  );
});

interface Recorded {
  failures: string[];
  outputs: Record<string, string>;
  /** Values given to the masker. */
  secrets: string[];
  /** Everything else the run reported: log lines, notices, warnings, exported variables, the summary. */
  log: string[];
}

/** Runs the Action's `run()` in this process with a recording runner core, as the harness's runner would. */
async function runInProcess(
  f: Fixture,
  given: Record<string, string>,
  env: Record<string, string> = {},
): Promise<Recorded> {
  const inputs: Record<string, string> = {
    ...(await actionDefaults()),
    'mytoken-server': f.dev.urls.mytoken_server,
    'secret-name': 'MYTOKEN',
    'github-token': GITHUB_TOKENS.writer,
    ...given,
  };
  const rec: Recorded = { failures: [], outputs: {}, secrets: [], log: [] };
  const core: ActionCore = {
    getInput: (name) => inputs[name] ?? '',
    setSecret: (value) => rec.secrets.push(value),
    setOutput: (name, value) => (rec.outputs[name] = value),
    exportVariable: (name, value) => rec.log.push(`export ${name}=${value}`),
    addPath: (path) => rec.log.push(`path ${path}`),
    saveState: (name, value) => rec.log.push(`state ${name}=${value}`),
    getState: () => '',
    debug: (message) => rec.log.push(`debug ${message}`),
    info: (message) => rec.log.push(`info ${message}`),
    notice: (message) => rec.log.push(`notice ${message}`),
    warning: (message) => rec.log.push(`warning ${message}`),
    setFailed: (message) => rec.failures.push(message),
    appendSummary: async (markdown) => void rec.log.push(markdown),
  };
  await run({
    core,
    env: { ...baseEnv(f), ...env },
    entry: { node: process.execPath, script: DIST },
    retryBaseDelayMs: 5,
  });
  return rec;
}

function baseEnv(f: Fixture): Record<string, string> {
  return {
    GITHUB_REPOSITORY: REPO,
    GITHUB_API_URL: f.github.url,
    GITHUB_RUN_ID: '4242',
    GITHUB_RUN_ATTEMPT: '1',
    RUNNER_NAME: 'GitHub Actions 7',
    RUNNER_TEMP: tmpdir(),
  };
}

describe('surrounding whitespace around a secret', () => {
  test.each([
    { name: 'a trailing newline (from echo)', around: (t: string) => `${t}\n` },
    { name: 'a trailing CRLF', around: (t: string) => `${t}\r\n` },
    { name: 'leading and trailing spaces', around: (t: string) => `  ${t}  ` },
  ])('$name around the mytoken: trimmed with a notice, both forms masked', async ({ around }) => {
    tried += 1;
    const token = await f.seed();
    const raw = around(token);
    const run = await f.run(raw);

    expect(run.code, errorLine(run)).toBe(0);
    expect(run.stdout).toContain(
      '::notice::input "mytoken" had leading or trailing whitespace (such as the newline echo adds); it was removed',
    );
    expect(wasMasked(run, token)).toBe(true);
    const escaped = raw.replace(/%/g, '%25').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
    expect(run.stdout.split('\n')).toContain(`::add-mask::${escaped}`);
    const stored = f.stored() as string;
    expect(stored).not.toBe(token);
    expect(await isValid(f.dev.urls.mytoken_server, stored)).toBe(true);
    const canaries = runCanaries(run, { 'input mytoken': token, stored });
    await expectNoLeaks(run, canaries, { outputs: ['access-token'] });
  });

  test('a trailing newline around the github-token: trimmed with a notice', async () => {
    tried += 1;
    const token = await f.seed();
    const run = await f.run(token, { inputs: { 'github-token': `${GITHUB_TOKENS.writer}\n` } });

    expect(run.code, errorLine(run)).toBe(0);
    expect(run.stdout).toContain(
      '::notice::input "github-token" had leading or trailing whitespace',
    );
    expect(run.stdout).toContain(`::add-mask::${GITHUB_TOKENS.writer}%0A`);
    await expectNoLeaks(run, runCanaries(run, { 'input mytoken': token }), {
      outputs: ['access-token'],
    });
  });
});
