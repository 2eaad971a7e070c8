// JWT mytokens (ES512, header typ "MT+JWT") and the server's opaque identifiers.
import { createHash, randomBytes, randomUUID } from 'node:crypto';

import {
  SignJWT,
  exportJWK,
  generateKeyPair,
  importJWK,
  jwtVerify,
  type CryptoKey,
  type JWK,
} from 'jose';

import { ApiError } from './errors.ts';
import type { MytokenClaims } from './model.ts';

/** Token format version the dev server emits. */
export const TOKEN_VERSION = '0.7';
/** Length of short mytokens (server default). */
export const SHORT_TOKEN_LENGTH = 64;
/** Length of polling and transfer codes (server default). */
export const CODE_LENGTH = 8;
/** Shortest string the server treats as a mytoken at all. */
export const MIN_TOKEN_LENGTH = 32;

const ALG = 'ES512';
const LETTERS = 'ABCDEFGHJKLMNOPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz';
const VERIFIED_CACHE_MAX = 10_000;

/** Random string over the server's code alphabet (letters without `l` and `I`). */
export function randomLetters(length: number): string {
  let out = '';
  while (out.length < length) {
    for (const byte of randomBytes(length * 2)) {
      // Rejection sampling keeps the letters uniformly distributed.
      if (byte >= 250 || out.length === length) continue;
      out += LETTERS[byte % LETTERS.length];
    }
  }
  return out;
}

/** A new `jti` (UUIDv4). */
export function newJti(): string {
  return randomUUID();
}

/** mom_id: padded standard base64 of SHA-512 over the 16 raw bytes of the `jti` UUID. */
export function momIdOf(jti: string): string {
  return createHash('sha512')
    .update(Buffer.from(jti.replaceAll('-', ''), 'hex'))
    .digest('base64');
}

/** Mytoken `sub`: base64 SHA3-256 of the OIDC subject and issuer (opaque, stable per user). */
export function subjectOf(oidcSub: string, oidcIss: string): string {
  return createHash('sha3-256').update(`${oidcSub}@${oidcIss}`).digest('base64');
}

/**
 * How the server tells JWTs from short tokens: three dot-separated segments whose signature
 * segment decodes as padded base64url (true for ES512's 132-byte signatures, §1.3).
 */
export function looksLikeJwt(value: string): boolean {
  const parts = value.split('.');
  return parts.length === 3 && parts[2]!.length % 4 === 0 && /^[A-Za-z0-9_-]+$/.test(parts[2]!);
}

/** Signs and verifies the JWT mytokens of one server issuer. */
export class MytokenSigner {
  readonly issuer: string;
  readonly privateJwk: JWK;
  readonly publicJwk: JWK;
  #privateKey: CryptoKey;
  #publicKey: CryptoKey;
  // Verified token string -> claims; validity in the "database" is checked separately, so caching
  // the signature check is safe and keeps the AT endpoint fast.
  #verified = new Map<string, MytokenClaims>();

  private constructor(
    issuer: string,
    privateJwk: JWK,
    privateKey: CryptoKey,
    publicKey: CryptoKey,
  ) {
    this.issuer = issuer;
    this.privateJwk = privateJwk;
    const { d: _d, ...publicJwk } = privateJwk;
    this.publicJwk = { ...publicJwk, use: 'sig', alg: ALG };
    this.#privateKey = privateKey;
    this.#publicKey = publicKey;
  }

  /** Loads the given private JWK, or generates a new P-521 key. */
  static async create(issuer: string, jwk?: JWK): Promise<MytokenSigner> {
    let privateJwk = jwk;
    if (!privateJwk) {
      const pair = await generateKeyPair(ALG, { extractable: true });
      privateJwk = { ...(await exportJWK(pair.privateKey)), kid: randomLetters(16) };
    }
    const { d: _d, ...publicJwk } = privateJwk;
    const privateKey = (await importJWK(privateJwk, ALG)) as CryptoKey;
    const publicKey = (await importJWK(publicJwk, ALG)) as CryptoKey;
    return new MytokenSigner(issuer, privateJwk, privateKey, publicKey);
  }

  /** Signs a claim set as a JWT mytoken. */
  async sign(claims: MytokenClaims): Promise<string> {
    return new SignJWT({ ...claims })
      .setProtectedHeader({ alg: ALG, typ: 'MT+JWT', kid: this.publicJwk.kid })
      .sign(this.#privateKey);
  }

  /**
   * Verifies signature, time claims, `iss`/`aud`, `jti` and `sub`; throws 401 `invalid_token`
   * with a description otherwise.
   */
  async verify(token: string): Promise<MytokenClaims> {
    const cached = this.#verified.get(token);
    if (cached) {
      checkTimes(cached);
      return cached;
    }
    const claims = await this.#verifyFresh(token);
    if (this.#verified.size >= VERIFIED_CACHE_MAX) this.#verified.clear();
    this.#verified.set(token, claims);
    return claims;
  }

  async #verifyFresh(token: string): Promise<MytokenClaims> {
    let payload: unknown;
    try {
      ({ payload } = await jwtVerify(token, this.#publicKey, {
        algorithms: [ALG],
        issuer: this.issuer,
        audience: this.issuer,
      }));
    } catch (err) {
      throw new ApiError(401, 'invalid_token', (err as Error).message, { cause: err });
    }
    const claims = payload as MytokenClaims;
    if (typeof claims.jti !== 'string' || claims.jti === '') {
      throw new ApiError(401, 'invalid_token', 'token has no jti');
    }
    if (claims.sub !== subjectOf(claims.oidc_sub, claims.oidc_iss)) {
      throw new ApiError(401, 'invalid_token', 'token subject does not match its oidc subject');
    }
    return claims;
  }
}

function checkTimes(claims: MytokenClaims): void {
  const now = Math.floor(Date.now() / 1000);
  if (claims.exp !== undefined && now >= claims.exp) {
    throw new ApiError(401, 'invalid_token', 'token is expired');
  }
  if (now < claims.nbf) throw new ApiError(401, 'invalid_token', 'token is not valid yet');
}
