/**
 * Reads what a mytoken says about itself without asking the server: expiry, rotation, capabilities. A JWT mytoken
 * carries its claims; a short (opaque) mytoken does not, and callers must then assume the worst (it may rotate).
 * The server remains the judge of validity: revocation, rotation state and usage counts live only there.
 */
import { decodeJwt, decodeProtectedHeader } from 'jose';

export interface RotationPolicy {
  onAT: boolean;
  onOther: boolean;
  /** Seconds a single token of the chain may live unused; 0 = no limit. */
  lifetime: number;
  autoRevoke: boolean;
}

export interface MytokenClaims {
  kind: 'jwt';
  issuer: string;
  /** Stable id of the token chain; unchanged by rotation. */
  jti: string;
  seqNo: number;
  oidcIssuer: string | undefined;
  name: string | undefined;
  capabilities: string[];
  rotation: RotationPolicy | undefined;
  restrictions: Record<string, unknown>[];
  issuedAt: Date | undefined;
  notBefore: Date | undefined;
  /** Absent when the token never expires. */
  expiresAt: Date | undefined;
}

export interface OpaqueMytoken {
  kind: 'opaque';
}

/**
 * Decodes a mytoken's claims. Never throws: a value that is not a mytoken JWT is reported as opaque.
 *
 * @example
 * const info = readMytokenClaims(token);
 * if (info.kind === 'jwt' && info.expiresAt) console.log(info.expiresAt.toISOString());
 */
export function readMytokenClaims(token: string): MytokenClaims | OpaqueMytoken {
  try {
    const header = decodeProtectedHeader(token);
    const claims = decodeJwt(token);
    if (header.typ !== 'MT+JWT' && claims.token_type !== 'mytoken') return { kind: 'opaque' };
    return {
      kind: 'jwt',
      issuer: typeof claims.iss === 'string' ? claims.iss : '',
      jti: typeof claims.jti === 'string' ? claims.jti : '',
      seqNo: typeof claims.seq_no === 'number' ? claims.seq_no : 1,
      oidcIssuer: typeof claims.oidc_iss === 'string' ? claims.oidc_iss : undefined,
      name: typeof claims.name === 'string' ? claims.name : undefined,
      capabilities: stringList(claims.capabilities),
      rotation: rotationPolicy(claims.rotation),
      restrictions: Array.isArray(claims.restrictions)
        ? claims.restrictions.filter(
            (c): c is Record<string, unknown> => typeof c === 'object' && c !== null,
          )
        : [],
      issuedAt: date(claims.iat),
      notBefore: date(claims.nbf),
      expiresAt: date(claims.exp),
    };
  } catch {
    return { kind: 'opaque' };
  }
}

/** Whether using the token to get an access token spends it; `undefined` when the token cannot tell. */
export function rotatesOnAccessToken(info: MytokenClaims | OpaqueMytoken): boolean | undefined {
  if (info.kind === 'opaque') return undefined;
  return info.rotation?.onAT ?? false;
}

/** Whether the token may be rotated by any use at all; `undefined` when the token cannot tell. */
export function mayRotate(info: MytokenClaims | OpaqueMytoken): boolean | undefined {
  if (info.kind === 'opaque') return undefined;
  return info.rotation !== undefined && (info.rotation.onAT || info.rotation.onOther);
}

/** Hierarchical capability match as the server does it: `tokeninfo` grants `tokeninfo:introspect`. */
export function hasCapability(held: readonly string[], required: string): boolean {
  return held.some((cap) => {
    if (cap.startsWith('read@')) {
      const base = cap.slice(5);
      return required.startsWith('read@') && covers(base, required.slice(5));
    }
    const target = required.startsWith('read@') ? required.slice(5) : required;
    return covers(cap, target);
  });
}

function covers(held: string, required: string): boolean {
  return required === held || required.startsWith(`${held}:`);
}

function rotationPolicy(value: unknown): RotationPolicy | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const r = value as Record<string, unknown>;
  return {
    onAT: r.on_AT === true,
    onOther: r.on_other === true,
    lifetime: typeof r.lifetime === 'number' ? r.lifetime : 0,
    autoRevoke: r.auto_revoke === true,
  };
}

function stringList(value: unknown): string[] {
  if (typeof value === 'string') return value.split(' ').filter(Boolean);
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
}

function date(value: unknown): Date | undefined {
  return typeof value === 'number' && value > 0 ? new Date(value * 1000) : undefined;
}
