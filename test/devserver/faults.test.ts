import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { mint, startDevServer, type DevServer } from '../../devserver/index.ts';
import { accessToken, answer, postJson } from './helpers.ts';

let dev: DevServer;
let S: string;
const AT_PATH = '/api/v0/token/access';

beforeAll(async () => {
  dev = await startDevServer({ port: 0 });
  S = dev.urls.mytoken_server;
});

afterEach(async () => {
  await fetch(`${S}/_dev/faults`, { method: 'DELETE' });
});

afterAll(async () => {
  await dev.close();
});

function arm(spec: Record<string, unknown>) {
  return postJson(`${S}/_dev/faults`, spec);
}

describe('fault injection', () => {
  it('arms a fault and describes it', async () => {
    const res = await arm({ path: AT_PATH, kind: 'status', status: 503, times: 2 });
    const listed = await answer(await fetch(`${S}/_dev/faults`));

    expect(res.status).toBe(201);
    expect(res.json?.faults[0]).toMatchObject({
      id: expect.any(Number),
      kind: 'status',
      remaining: 2,
    });
    expect(listed.json?.faults).toHaveLength(1);
  });

  it('refuses an invalid fault', async () => {
    const res = await arm({ path: AT_PATH, kind: 'explode' });
    expect(res).toMatchObject({ status: 400, json: { error: 'invalid_request' } });
  });

  it('status: answers a 5xx with internal_server_error for `times` requests, then disarms', async () => {
    const token = await mint({ server: S });
    await arm({ path: AT_PATH, kind: 'status', status: 503, times: 2 });
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push(await accessToken(S, token));

    expect(statuses.map((r) => r.status)).toEqual([503, 503, 200]);
    expect(statuses[0]?.json).toEqual({
      error: 'internal_server_error',
      error_description: 'injected fault',
    });
  });

  it('rate_limit: answers 429 in plain text with Retry-After', async () => {
    await arm({ path: AT_PATH, kind: 'rate_limit', retry_after: 7 });
    const res = await accessToken(S, 'x');

    expect(res.status).toBe(429);
    expect(res.headers.get('retry-after')).toBe('7');
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(res.text).toBe('Too Many Requests');
  });

  it('html: answers an HTML error page', async () => {
    await arm({ path: AT_PATH, kind: 'html', status: 502 });
    const res = await accessToken(S, 'x');

    expect(res.status).toBe(502);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    expect(res.text).toMatch(/^<!DOCTYPE html>/);
  });

  it('text: answers a plain-text error body', async () => {
    await arm({ path: AT_PATH, kind: 'text', status: 500, body: 'upstream broke' });
    const res = await accessToken(S, 'x');
    expect(res).toMatchObject({ status: 500, text: 'upstream broke', json: undefined });
  });

  it('invalid_json: answers 200 with a broken JSON body', async () => {
    await arm({ path: AT_PATH, kind: 'invalid_json' });
    const res = await fetch(`${S}${AT_PATH}`, { method: 'POST' });

    expect(res.status).toBe(200);
    await expect(res.json()).rejects.toThrow();
  });

  it('oversize: answers a JSON body of the given size', async () => {
    await arm({ path: AT_PATH, kind: 'oversize', bytes: 100_000 });
    const res = await answer(await fetch(`${S}${AT_PATH}`, { method: 'POST' }));

    expect(res.status).toBe(200);
    expect(res.text).toHaveLength(100_000);
    expect(res.json?.padding).toHaveLength(100_000 - 14);
  });

  it('delay: handles the request normally afterwards', async () => {
    const token = await mint({ server: S });
    const before = dev.stats().faults_fired;
    await arm({ path: AT_PATH, kind: 'delay', ms: 30 });

    expect((await accessToken(S, token)).status).toBe(200);
    expect(dev.stats().faults_fired).toBe(before + 1);
  });

  it('slow_body: sends the real response in pieces', async () => {
    const token = await mint({ server: S });
    await arm({ path: AT_PATH, kind: 'slow_body', ms: 100 });
    const res = await fetch(`${S}${AT_PATH}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ grant_type: 'mytoken', mytoken: token }),
    });
    const reader = res.body!.getReader();
    const first = await reader.read();
    const chunks = [Buffer.from(first.value!)];
    for (let r = await reader.read(); !r.done; r = await reader.read())
      chunks.push(Buffer.from(r.value));
    const body = Buffer.concat(chunks);

    expect(res.status).toBe(200);
    expect(chunks[0]!.length).toBeLessThan(body.length);
    expect(JSON.parse(body.toString()).access_token).toBeTruthy();
  });

  it('reset: destroys the socket without an answer', async () => {
    await arm({ path: AT_PATH, kind: 'reset' });
    await expect(accessToken(S, 'x')).rejects.toThrow();
  });

  it('drop_after_commit: rotates the token, then loses the response', async () => {
    const token = await mint({ server: S, rotation: ['on_AT'] });
    const rotations = dev.stats().rotations;
    await arm({ path: AT_PATH, kind: 'drop_after_commit' });

    await expect(accessToken(S, token)).rejects.toThrow();
    expect(dev.stats().rotations).toBe(rotations + 1);
    expect((await accessToken(S, token)).status).toBe(401);
  });

  it('matches by path prefix and method, and works on the resource', async () => {
    await arm({ path: '/resource/', prefix: true, method: 'GET', kind: 'status', times: 0 });
    const a = await fetch(`${dev.urls.resource}/health`);
    const b = await fetch(`${dev.urls.resource}/fail`);
    const post = await fetch(`${dev.urls.resource}/health`, { method: 'POST' });

    expect([a.status, b.status, post.status]).toEqual([500, 500, 401]);
  });

  it('clears all faults on DELETE', async () => {
    await arm({ path: AT_PATH, kind: 'status', times: 0 });
    await fetch(`${S}/_dev/faults`, { method: 'DELETE' });
    const res = await accessToken(S, 'x');
    expect(res.status).toBe(400);
  });
});

describe('stats', () => {
  it('counts requests per endpoint and status, AT successes, refresh grants and rotations', async () => {
    await fetch(`${S}/_dev/stats`, { method: 'DELETE' });
    const token = await mint({ server: S, rotation: ['on_AT'] });
    const at = await accessToken(S, token);
    await accessToken(S, token);
    await fetch(`${dev.urls.resource}/health`, {
      headers: { authorization: `Bearer ${at.json?.access_token}` },
    });
    const stats = (await answer(await fetch(`${S}/_dev/stats`))).json;

    expect(stats?.requests[AT_PATH]).toEqual({ 200: 1, 401: 1 });
    expect(stats).toMatchObject({
      at_success: 1,
      op_refresh_grants: 1,
      op_client_credentials_grants: 0,
      rotations: 1,
      resource: { 200: 1 },
    });
  });
});
