/**
 * The mytoken client library: discovery, access tokens, sub-tokens, tokeninfo, revocation and transfer codes, with
 * rotation handled through a token store. Shared by the GitHub Action and the probe.
 */
export { MytokenClient } from './client.ts';
export type {
  AccessToken,
  AccessTokenRequest,
  ClientLogger,
  IssuedMytoken,
  MytokenClientOptions,
  RotationRequest,
  SubtokenRequest,
  TransferCode,
} from './client.ts';
export { hasCapability, mayRotate, readMytokenClaims, rotatesOnAccessToken } from './claims.ts';
export type { MytokenClaims, OpaqueMytoken, RotationPolicy } from './claims.ts';
export { checkServerUrl, isLoopback } from './discovery.ts';
export type { MytokenConfiguration, MytokenProvider } from './discovery.ts';
export { MytokenError, isRetryable } from './errors.ts';
export type { MytokenErrorCode, MytokenErrorDetails } from './errors.ts';
export { FileTokenStore } from './file-store.ts';
export { createTransport, errorCode } from './http.ts';
export type { Transport, TransportOptions } from './http.ts';
export { MemoryTokenStore } from './store.ts';
export type { TokenStore } from './store.ts';
export { redact } from './responses.ts';
