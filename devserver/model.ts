// Data model of the dev mytoken server: the shapes of §7 of the API reference, kept independent of
// the client library on purpose (the dev server is an oracle for it).

/** One restriction clause (§7.3); time fields are already resolved to Unix seconds. */
export interface Clause {
  nbf?: number;
  exp?: number;
  scope?: string;
  audience?: string[];
  hosts?: string[];
  geoip_allow?: string[];
  geoip_disallow?: string[];
  usages_AT?: number;
  usages_other?: number;
}

/** Rotation policy (§7.4). */
export interface Rotation {
  on_AT?: boolean;
  on_other?: boolean;
  lifetime?: number;
  auto_revoke?: boolean;
}

/** Claims of a JWT mytoken (§7.1), in the server's order. */
export interface MytokenClaims {
  ver: string;
  token_type: 'mytoken';
  iss: string;
  sub: string;
  aud: string;
  exp?: number;
  nbf: number;
  iat: number;
  auth_time?: number;
  jti: string;
  seq_no: number;
  name?: string;
  oidc_sub: string;
  oidc_iss: string;
  restrictions?: Clause[];
  capabilities: string[];
  rotation?: Rotation;
}

/** Usage counters of one clause, keyed by the clause content. */
export interface ClauseUsage {
  at: number;
  other: number;
}

/** The "database row" of one mytoken chain (one `jti`). */
export interface TokenRecord {
  jti: string;
  momId: string;
  seqNo: number;
  /** Unix seconds of creation or of the last rotation. */
  lastRotated: number;
  created: number;
  /** `jti` of the token this one was created from. */
  parent?: string;
  /** Key of the shared OP refresh token. */
  rtId: string;
  sub: string;
  oidcSub: string;
  oidcIss: string;
  authTime?: number;
  name?: string;
  ip: string;
  capabilities: string[];
  restrictions?: Clause[];
  rotation?: Rotation;
  /** `exp` of the current JWT of the chain. */
  exp?: number;
  usage: Record<string, ClauseUsage>;
}

/** An OP refresh token shared by a token and its sub-tokens. */
export interface RefreshTokenEntry {
  refreshToken: string;
}

/** A short mytoken: an opaque letter string standing for one JWT. */
export interface ShortTokenEntry {
  jwt: string;
  jti: string;
  exp?: number;
}

export type ResponseType = 'token' | 'short_token' | 'transfer_code';

/** What an OIDC flow asked for, kept until the OP calls back. */
export interface FlowRequest {
  consentCode: string;
  oauthState: string;
  codeVerifier: string;
  capabilities: string[];
  restrictions?: Clause[];
  rotation?: Rotation;
  name?: string;
  responseType: ResponseType;
  maxTokenLen?: number;
  ip: string;
}

/**
 * A polling or transfer code (one namespace, as on the real server). Polling codes start
 * `pending`; transfer codes are `ready` at once.
 */
export interface ProxyCode {
  kind: 'polling' | 'transfer';
  state: 'pending' | 'ready' | 'declined';
  expiresAt: number;
  /** Ready polling code: the complete mytoken response to hand out. */
  response?: Record<string, unknown>;
  /** Ready transfer code: the token string (JWT or short) and its chain. */
  token?: string;
  tokenType?: 'token' | 'short_token';
  jti?: string;
  /** Created together with a new mytoken: revoking the code revokes that token too. */
  withNewToken?: boolean;
  flow?: FlowRequest;
}

/** One entry of the event history (§6). */
export interface TokenEvent {
  event: string;
  time: number;
  comment?: string;
  ip?: string;
  user_agent?: string;
}
