/**
 * The client against answers a correct server never gives (issue #5): the real dev server's answers, a real
 * rotation included, with one detail broken by a proxy on the way. None of them may put anything but a real, newer
 * mytoken into the store, and none may send the token anywhere but the server the client was given.
 */
import { inspect } from 'node:util';
import { ProxyAgent } from 'undici';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { mint, startDevServer, type DevServer } from '../../devserver/index.ts';
import {
  MemoryTokenStore,
  MytokenClient,
  MytokenError,
  createTransport,
  type MytokenErrorCode,
} from '../../src/client/index.ts';
import { Canaries, assertNoCanaries } from '../support/canary.ts';
import { startElsewhere, type Elsewhere } from './helpers.ts';
import {
  rewriteJson,
  startTamperProxy,
  type TamperProxy,
  type TamperRule,
} from './tamper-proxy.ts';

let dev: DevServer;
let proxy: TamperProxy;
/** A server that must never be contacted: discovery answers that point elsewhere point here. */
let elsewhere: Elsewhere;

beforeAll(async () => {
  dev = await startDevServer({ port: 0 });
  proxy = await startTamperProxy();
  elsewhere = await startElsewhere();
});

afterAll(async () => {
  await proxy?.close();
  elsewhere?.server.close();
  await dev?.close();
});

const DISCOVERY = '/.well-known/mytoken-configuration';
const EXCHANGE = '/api/v0/token/access';

interface Case {
  name: string;
  rotating: boolean;
  rule: (lost: Canaries) => TamperRule;
  code: MytokenErrorCode;
  message: RegExp;
  /** What the store holds afterwards: the input token, or the server's real new one. */
  stored: 'input' | 'rotated';
  /** Whether the stored token is still accepted by the server. */
  valid: boolean;
}

const CASES: Case[] = [
  {
    name: 'a discovery document without the access-token endpoint',
    rotating: true,
    rule: () => ({
      path: DISCOVERY,
      rewrite: rewriteJson((body) => delete body.access_token_endpoint),
    }),
    code: 'ERR_MYTOKEN_MALFORMED_RESPONSE',
    message: /^discovery: configuration lacks "access_token_endpoint"$/,
    stored: 'input',
    valid: true,
  },
  {
    name: 'a discovery document that is a JSON array',
    rotating: true,
    rule: () => ({ path: DISCOVERY, rewrite: (a) => ({ ...a, body: '[]' }) }),
    code: 'ERR_MYTOKEN_MALFORMED_RESPONSE',
    message: /^discovery: answer is not a JSON object \(status 200\)$/,
    stored: 'input',
    valid: true,
  },
  {
    name: 'a discovery document with an endpoint that is not a URL',
    rotating: true,
    rule: () => ({
      path: DISCOVERY,
      rewrite: rewriteJson((body) => (body.access_token_endpoint = 'not a url')),
    }),
    code: 'ERR_MYTOKEN_MALFORMED_RESPONSE',
    message: /^discovery: configuration field "access_token_endpoint" is not a URL$/,
    stored: 'input',
    valid: true,
  },
  {
    name: 'a discovery document that sends the token to another server',
    rotating: true,
    rule: () => ({
      path: DISCOVERY,
      rewrite: rewriteJson((body) => (body.access_token_endpoint = `${elsewhere.url}${EXCHANGE}`)),
    }),
    code: 'ERR_MYTOKEN_MALFORMED_RESPONSE',
    message:
      /^discovery: configuration field "access_token_endpoint" points to another origin than/,
    stored: 'input',
    valid: true,
  },
  {
    name: 'a token_update without its token, after a real rotation',
    rotating: true,
    rule: (lost) => ({
      path: EXCHANGE,
      rewrite: rewriteJson((body) => {
        lost.add('rotated mytoken the proxy removed', mytokenOf(body));
        body.token_update = {};
      }),
    }),
    code: 'ERR_MYTOKEN_CHAIN_BROKEN',
    message: /^access_token: the server rotated the mytoken but sent no usable new token/,
    stored: 'input',
    valid: false,
  },
  {
    name: 'a token_update whose token is not a string',
    rotating: true,
    rule: (lost) => ({
      path: EXCHANGE,
      rewrite: rewriteJson((body) => {
        lost.add('rotated mytoken the proxy removed', mytokenOf(body));
        body.token_update = { mytoken: 42 };
      }),
    }),
    code: 'ERR_MYTOKEN_CHAIN_BROKEN',
    message: /sent no usable new token/,
    stored: 'input',
    valid: false,
  },
  {
    name: 'no token_update at all, although the server rotated',
    rotating: true,
    rule: (lost) => ({
      path: EXCHANGE,
      rewrite: rewriteJson((body) => {
        lost.add('rotated mytoken the proxy removed', mytokenOf(body));
        delete body.token_update;
      }),
    }),
    code: 'ERR_MYTOKEN_CHAIN_BROKEN',
    message: /^access_token: the server rotated the mytoken but sent no new token/,
    stored: 'input',
    valid: false,
  },
  {
    name: 'a rotation without the access token: the new mytoken is kept',
    rotating: true,
    rule: () => ({ path: EXCHANGE, rewrite: rewriteJson((body) => delete body.access_token) }),
    code: 'ERR_MYTOKEN_MALFORMED_RESPONSE',
    message: /^access_token: no usable "access_token"$/,
    stored: 'rotated',
    valid: true,
  },
  {
    name: 'an access token with a negative lifetime',
    rotating: false,
    rule: () => ({ path: EXCHANGE, rewrite: rewriteJson((body) => (body.expires_in = -5)) }),
    code: 'ERR_MYTOKEN_MALFORMED_RESPONSE',
    message: /^access_token: "expires_in" is not a non-negative number$/,
    stored: 'input',
    valid: true,
  },
  {
    name: 'an access token answer that is not JSON',
    rotating: false,
    rule: () => ({ path: EXCHANGE, rewrite: (a) => ({ ...a, body: 'OK' }) }),
    code: 'ERR_MYTOKEN_MALFORMED_RESPONSE',
    message: /^access_token: answer is not a JSON object \(status 200\)$/,
    stored: 'input',
    valid: true,
  },
];

describe('bad server answers', () => {
  test.each(CASES)('$name', async (c) => {
    const server = dev.urls.mytoken_server;
    const token = await mint({ server, rotation: c.rotating ? ['on_AT'] : [] });
    const canaries = new Canaries().add('input mytoken', token);
    const logs: string[] = [];
    const store = new MemoryTokenStore(token);
    const transport = createTransport({ dispatcher: new ProxyAgent(proxy.url) });
    const client = new MytokenClient({
      server,
      store,
      transport,
      retryDelayMs: 5,
      onSecret: (secret) => canaries.add('secret the client obtained', secret),
      logger: { debug: (message, fields) => logs.push(`${message} ${JSON.stringify(fields)}`) },
    });
    proxy.tamper(c.rule(canaries));
    const hits = elsewhere.hits;

    const error = await client.accessToken().catch((e: unknown) => e);
    await transport.close();

    expect(proxy.pending(), 'the answer was tampered with').toBe(0);
    expect(error).toBeInstanceOf(MytokenError);
    expect((error as MytokenError).code).toBe(c.code);
    expect((error as MytokenError).message).toMatch(c.message);
    const stored = await store.load();
    if (c.stored === 'input') expect(stored).toBe(token);
    else expect(stored).not.toBe(token);
    expect(await isValid(stored), 'stored token accepted by the server').toBe(c.valid);
    expect(elsewhere.hits, 'requests to another server').toBe(hits);
    canaries.add('stored mytoken', stored);
    assertNoCanaries(canaries, {
      message: (error as Error).message,
      inspect: inspect(error, { depth: 10 }),
      log: logs.join('\n'),
    });
  });
});

function mytokenOf(body: Record<string, unknown>): string | undefined {
  const update = body.token_update as { mytoken?: unknown } | undefined;
  return typeof update?.mytoken === 'string' ? update.mytoken : undefined;
}

async function isValid(token: string): Promise<boolean> {
  const client = new MytokenClient({
    server: dev.urls.mytoken_server,
    store: new MemoryTokenStore(token),
  });
  try {
    await client.introspect();
    return true;
  } catch (error) {
    if (error instanceof MytokenError && error.code === 'ERR_MYTOKEN_INVALID_TOKEN') return false;
    throw error;
  } finally {
    await client.close();
  }
}
