/**
 * The Action against answers a correct mytoken server never gives (issue #5), put in its way by a proxy
 * (HTTP_PROXY) that passes the dev server's real answers on with one detail broken. The secret is never rewritten
 * with anything but the server's real new token, the token never goes to another host, and the line says what
 * happened.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { SERVER_HINT, staleAfterRotationHint } from '../../src/action/messages.ts';
import { startFixture, type Fixture } from '../action/fixture.ts';
import { errorLine } from '../action/harness.ts';
import {
  expectActionFailure,
  expectNoLeaks,
  isValid,
  runCanaries,
  secretWrites,
  startElsewhere,
  type Elsewhere,
} from './helpers.ts';
import {
  rewriteJson,
  startTamperProxy,
  type TamperProxy,
  type TamperRule,
} from './tamper-proxy.ts';

let f: Fixture;
let proxy: TamperProxy;
let elsewhere: Elsewhere;

beforeAll(async () => {
  f = await startFixture();
  proxy = await startTamperProxy();
  elsewhere = await startElsewhere();
});

afterAll(async () => {
  await proxy?.close();
  elsewhere?.server.close();
  await f?.close();
});

const DISCOVERY = '/.well-known/mytoken-configuration';
const EXCHANGE = '/api/v0/token/access';
const BROKEN =
  'the mytoken server rotated the mytoken but the new token never arrived, so the token chain is broken';

interface Case {
  name: string;
  rule: (removed: string[]) => TamperRule;
  line: (server: string, secret: string) => string | RegExp;
  /** The secret afterwards: untouched, or rewritten with the server's real new token. */
  afterwards: 'untouched' | 'rewritten';
  /** Whether the secret's token is still valid afterwards. */
  valid: boolean;
}

const removeUpdate =
  (change: (body: Record<string, unknown>) => void) =>
  (removed: string[]): TamperRule => ({
    path: EXCHANGE,
    rewrite: rewriteJson((body) => {
      const update = body.token_update as { mytoken?: string } | undefined;
      if (update?.mytoken !== undefined) removed.push(update.mytoken);
      change(body);
    }),
  });

const CASES: Case[] = [
  {
    name: 'discovery without the access-token endpoint',
    rule: () => ({
      path: DISCOVERY,
      rewrite: rewriteJson((body) => delete body.access_token_endpoint),
    }),
    line: (server) =>
      `the mytoken server ${server} sent an unusable answer (configuration lacks "access_token_endpoint"). ${SERVER_HINT}`,
    afterwards: 'untouched',
    valid: true,
  },
  {
    name: 'discovery that sends the token to another host',
    rule: () => ({
      path: DISCOVERY,
      rewrite: rewriteJson((body) => (body.access_token_endpoint = `${elsewhere.url}${EXCHANGE}`)),
    }),
    line: (server) =>
      `the mytoken server ${server} sent an unusable answer (configuration field "access_token_endpoint" points to another origin than ${server}). ${SERVER_HINT}`,
    afterwards: 'untouched',
    valid: true,
  },
  {
    name: 'a token_update without its token',
    rule: removeUpdate((body) => (body.token_update = {})),
    line: (_server, secret) => `${BROKEN}. ${staleAfterRotationHint(secret)}`,
    afterwards: 'untouched',
    valid: false,
  },
  {
    name: 'no token_update although the server rotated',
    rule: removeUpdate((body) => delete body.token_update),
    line: (_server, secret) => `${BROKEN}. ${staleAfterRotationHint(secret)}`,
    afterwards: 'untouched',
    valid: false,
  },
  {
    name: 'a rotation without the access token: the new mytoken is still written back',
    rule: () => ({ path: EXCHANGE, rewrite: rewriteJson((body) => delete body.access_token) }),
    line: (server) =>
      `the mytoken server ${server} sent an unusable answer (no usable "access_token"). ${SERVER_HINT}`,
    afterwards: 'rewritten',
    valid: true,
  },
];

describe('bad answers from the mytoken server', () => {
  test.each(CASES.map((c, i) => ({ ...c, secret: `ANSWER_${i}` })))('$name', async (c) => {
    const token = await f.seed(c.secret);
    const removed: string[] = [];
    proxy.tamper(c.rule(removed));
    const hits = elsewhere.hits;
    const run = await f.run(token, {
      inputs: { 'secret-name': c.secret },
      env: { HTTP_PROXY: proxy.url, MYTOKEN_ACTION_RETRY_BASE_MS: '5' },
    });

    expect(proxy.pending(), 'the answer was tampered with').toBe(0);
    expectActionFailure(run, c.line(f.dev.urls.mytoken_server, c.secret));
    expect(elsewhere.hits, 'requests to another host').toBe(hits);
    const stored = f.stored(c.secret) as string;
    if (c.afterwards === 'untouched') {
      expect(secretWrites(f.github, c.secret)).toBe(0);
      expect(stored).toBe(token);
    } else {
      expect(stored).not.toBe(token);
      expect(run.stdout).toContain(`::add-mask::${stored}`);
    }
    expect(await isValid(f.dev.urls.mytoken_server, stored), 'secret still valid').toBe(c.valid);
    const canaries = runCanaries(run, { 'input mytoken': token, stored });
    for (const value of removed) canaries.add('rotated mytoken the proxy removed', value);
    await expectNoLeaks(run, canaries);
  });
});

describe('the leak check itself', () => {
  test('catches the access token in an output it was not allowed in', async () => {
    const token = await f.seed('CONTROL');
    const run = await f.run(token, { inputs: { 'secret-name': 'CONTROL' } });
    expect(run.code, errorLine(run)).toBe(0);

    const canaries = runCanaries(run, { 'input mytoken': token });
    await expect(expectNoLeaks(run, canaries)).rejects.toThrow(
      /^secret leaked: masked value \(whole\) in output access-token, line 1/,
    );
    await expectNoLeaks(run, canaries, { outputs: ['access-token'] });
  });
});
