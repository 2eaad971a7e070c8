/**
 * The benchmark target: a small HTTP server, run in a process of its own, that answers
 * `GET /health` with 200 only for a valid JWT access token of the dev OP (signature, issuer,
 * audience and `typ` checked with jose), like a real resource server would. Verified tokens are
 * cached until they expire, so the probe's shared token costs one verification while
 * blackbox_exporter's fresh token per probe costs one each: the target stays far from being the
 * bottleneck either way (the benchmark measures its CPU to show it).
 *
 *   node bench/target.ts --issuer URL --audience URL
 *
 * Prints one JSON line `{"url": "http://127.0.0.1:PORT"}` when ready. `GET /_stats` answers the
 * requests counted so far by status; SIGTERM stops it.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';

import { createLocalJWKSet, jwtVerify, type JWTVerifyGetKey } from 'jose';

const OK = Buffer.from('{"status":"ok"}');
const UNAUTHORIZED = Buffer.from('{"error":"invalid_token"}');
const NOT_FOUND = Buffer.from('{"error":"not_found"}');
const CACHE_MAX = 50_000;

interface Target {
  issuer: string;
  audience: string;
  keys: JWTVerifyGetKey;
  /** Token -> exp (Unix seconds) of tokens that verified. */
  verified: Map<string, number>;
  counts: Map<number, number>;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { issuer: { type: 'string' }, audience: { type: 'string' } },
  });
  if (values.issuer === undefined || values.audience === undefined) {
    process.stderr.write('usage: node bench/target.ts --issuer URL --audience URL\n');
    process.exit(2);
  }
  const target: Target = {
    issuer: values.issuer,
    audience: values.audience,
    keys: await fetchKeys(values.issuer),
    verified: new Map(),
    counts: new Map(),
  };
  const server = createServer((req, res) => void handle(target, req, res));
  server.keepAliveTimeout = 60_000;
  server.listen(0, '127.0.0.1', () => {
    const { port } = server.address() as AddressInfo;
    process.stdout.write(`${JSON.stringify({ url: `http://127.0.0.1:${port}` })}\n`);
  });
  process.once('SIGTERM', () => {
    server.close();
    server.closeAllConnections();
  });
}

async function fetchKeys(issuer: string): Promise<JWTVerifyGetKey> {
  const meta = (await (await fetch(`${issuer}/.well-known/openid-configuration`)).json()) as {
    jwks_uri: string;
  };
  const jwks = await (await fetch(meta.jwks_uri)).json();
  return createLocalJWKSet(jwks as Parameters<typeof createLocalJWKSet>[0]);
}

async function handle(target: Target, req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (req.url === '/_stats') {
    const body = Buffer.from(JSON.stringify(Object.fromEntries(target.counts)));
    return send(res, 200, body, false);
  }
  if (req.url !== '/health') return send(res, 404, NOT_FOUND, target);
  const auth = req.headers.authorization;
  const token = auth?.startsWith('Bearer ') ? auth.slice(7) : undefined;
  const ok = token !== undefined && (await valid(target, token));
  return send(res, ok ? 200 : 401, ok ? OK : UNAUTHORIZED, target);
}

async function valid(target: Target, token: string): Promise<boolean> {
  const now = Math.floor(Date.now() / 1000);
  const exp = target.verified.get(token);
  if (exp !== undefined) return now < exp;
  try {
    const { payload } = await jwtVerify(token, target.keys, {
      issuer: target.issuer,
      audience: target.audience,
      typ: 'at+jwt',
    });
    if (target.verified.size >= CACHE_MAX) target.verified.clear();
    target.verified.set(token, payload.exp ?? Number.MAX_SAFE_INTEGER);
    return true;
  } catch {
    return false;
  }
}

function send(res: ServerResponse, status: number, body: Buffer, count: Target | false): void {
  if (count) count.counts.set(status, (count.counts.get(status) ?? 0) + 1);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': body.length });
  res.end(body);
}

await main();
