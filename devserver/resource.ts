// The demo protected resource under /resource: accepts JWT access tokens of the dev OP whose
// audience includes the resource URL. Built for load tests: verified tokens are cached until they
// expire, and the answers are preallocated.
import type { IncomingMessage, ServerResponse } from 'node:http';

import { createLocalJWKSet, jwtVerify, type JWTVerifyGetKey } from 'jose';
import { fetch } from 'undici';

import { bearer, sleep } from './http.ts';
import type { Stats } from './stats.ts';

/** Mount path of the demo resource. */
export const RESOURCE_MOUNT = '/resource';

const CACHE_MAX = 10_000;
const MAX_SLOW_MS = 60_000;
const OK_BODY = Buffer.from('{"status":"ok"}');
const FAIL_BODY = Buffer.from(
  '{"error":"internal_server_error","error_description":"demo failure"}',
);
const UNAUTHORIZED_BODY = Buffer.from('{"error":"invalid_token"}');
const NOT_FOUND_BODY = Buffer.from('{"error":"not_found"}');

export interface ResourceOptions {
  /** `http://HOST:PORT/resource`: the audience the tokens must carry. */
  resourceUrl: string;
  opIssuer: string;
  stats: Stats;
}

/** The demo resource server. */
export class DemoResource {
  readonly #opts: ResourceOptions;
  #keys: Promise<JWTVerifyGetKey> | undefined;
  // Token string -> exp (Unix seconds) of tokens that verified.
  readonly #verified = new Map<string, number>();

  constructor(opts: ResourceOptions) {
    this.#opts = opts;
  }

  /** Handles a request whose path starts with {@link RESOURCE_MOUNT}. */
  async handle(req: IncomingMessage, res: ServerResponse, path: string, query: URLSearchParams) {
    const sub = path.slice(RESOURCE_MOUNT.length);
    if (sub !== '/health' && sub !== '/fail' && sub !== '/slow') {
      return this.#send(res, 404, NOT_FOUND_BODY);
    }
    const token = bearer(req);
    if (!token) return this.#send(res, 401, UNAUTHORIZED_BODY, 'Bearer realm="resource"');
    if (!(await this.#valid(token))) {
      return this.#send(res, 401, UNAUTHORIZED_BODY, 'Bearer error="invalid_token"');
    }

    if (sub === '/fail') return this.#send(res, 500, FAIL_BODY);
    if (sub === '/slow')
      await sleep(Math.min(MAX_SLOW_MS, Math.max(0, Number(query.get('ms')) || 0)));
    return this.#send(res, 200, OK_BODY);
  }

  async #valid(token: string): Promise<boolean> {
    const now = Math.floor(Date.now() / 1000);
    const exp = this.#verified.get(token);
    if (exp !== undefined) return now < exp;
    try {
      const { payload } = await jwtVerify(token, await this.#jwks(), {
        issuer: this.#opts.opIssuer,
        audience: this.#opts.resourceUrl,
        typ: 'at+jwt',
      });
      if (this.#verified.size >= CACHE_MAX) this.#verified.clear();
      this.#verified.set(token, payload.exp ?? Number.MAX_SAFE_INTEGER);
      return true;
    } catch {
      return false;
    }
  }

  // The OP's key set, fetched once over HTTP (the OP keeps its keys for the process lifetime).
  #jwks(): Promise<JWTVerifyGetKey> {
    this.#keys ??= this.#fetchJwks().catch((err: unknown) => {
      this.#keys = undefined;
      throw err;
    });
    return this.#keys;
  }

  async #fetchJwks(): Promise<JWTVerifyGetKey> {
    const meta = await (
      await fetch(`${this.#opts.opIssuer}/.well-known/openid-configuration`)
    ).json();
    const jwks = await (await fetch((meta as { jwks_uri: string }).jwks_uri)).json();
    return createLocalJWKSet(jwks as Parameters<typeof createLocalJWKSet>[0]);
  }

  #send(res: ServerResponse, status: number, body: Buffer, challenge?: string): void {
    this.#opts.stats.countResource(status);
    const headers: Record<string, string | number> = {
      'content-type': 'application/json',
      'content-length': body.length,
    };
    if (challenge) headers['www-authenticate'] = challenge;
    res.writeHead(status, headers);
    res.end(body);
  }
}
