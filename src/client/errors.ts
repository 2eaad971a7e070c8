/**
 * Errors raised by the mytoken client. Every error carries a stable `code`; switch on it rather than on the
 * message. Messages name what failed and what to do, and never contain a token.
 */

export type MytokenErrorCode =
  | 'ERR_MYTOKEN_INVALID_TOKEN'
  | 'ERR_MYTOKEN_INSUFFICIENT_CAPABILITIES'
  | 'ERR_MYTOKEN_USAGE_RESTRICTED'
  | 'ERR_MYTOKEN_BAD_REQUEST'
  | 'ERR_MYTOKEN_CODE_EXPIRED'
  | 'ERR_MYTOKEN_ACCESS_DENIED'
  | 'ERR_MYTOKEN_AUTHORIZATION_PENDING'
  | 'ERR_MYTOKEN_NOT_SUPPORTED'
  | 'ERR_MYTOKEN_RATE_LIMITED'
  | 'ERR_MYTOKEN_SERVER_ERROR'
  | 'ERR_MYTOKEN_OIDC_ERROR'
  | 'ERR_MYTOKEN_NETWORK'
  | 'ERR_MYTOKEN_TIMEOUT'
  | 'ERR_MYTOKEN_MALFORMED_RESPONSE'
  | 'ERR_MYTOKEN_CHAIN_BROKEN'
  | 'ERR_MYTOKEN_TOKEN_STORE'
  | 'ERR_MYTOKEN_INVALID_INPUT';

/** Context attached to an error; every field is safe to log. */
export interface MytokenErrorDetails {
  /** Which API operation failed, e.g. `access_token`, `discovery`. */
  operation?: string | undefined;
  /** HTTP status, when the server answered. */
  status?: number | undefined;
  /** The `error` field of the server's JSON body. */
  serverError?: string | undefined;
  /** The `error_description` of the server's JSON body, with anything token-like removed. */
  serverDescription?: string | undefined;
  /** Seconds to wait, from `Retry-After`. */
  retryAfter?: number | undefined;
  /**
   * True when the request may have reached the server before it failed (a dropped connection or a timeout after
   * sending). A rotating token may then have been spent: such a request must not be repeated blindly. After such a
   * failure of a rotating token's use the client asks the server whether the token is still current and clears
   * the flag when it is (not after a timeout: the server may still be handling the request). It never asks with an
   * `auto_revoke` token or a short one, whose superseded copy would revoke the whole chain.
   */
  mayHaveReachedServer?: boolean | undefined;
  cause?: unknown;
}

const unsavedTokens = new WeakMap<MytokenError, string>();

export class MytokenError extends Error {
  readonly code: MytokenErrorCode;
  readonly operation: string | undefined;
  readonly status: number | undefined;
  readonly serverError: string | undefined;
  readonly serverDescription: string | undefined;
  readonly retryAfter: number | undefined;
  readonly mayHaveReachedServer: boolean;

  constructor(code: MytokenErrorCode, message: string, details: MytokenErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'MytokenError';
    this.code = code;
    this.operation = details.operation;
    this.status = details.status;
    this.serverError = details.serverError;
    this.serverDescription = details.serverDescription;
    this.retryAfter = details.retryAfter;
    this.mayHaveReachedServer = details.mayHaveReachedServer ?? false;
  }

  /**
   * For `ERR_MYTOKEN_TOKEN_STORE`: the rotated token that could not be saved. It is the only valid token of the
   * chain; a caller may hand it to another store. Kept outside the error's own properties so that logging or
   * serialising the error cannot reveal it.
   */
  takeUnsavedToken(): string | undefined {
    const token = unsavedTokens.get(this);
    unsavedTokens.delete(this);
    return token;
  }

  /** @internal */
  static withUnsavedToken(error: MytokenError, token: string): MytokenError {
    unsavedTokens.set(error, token);
    return error;
  }
}

/** True for errors after which the same request may be sent again (after `retryAfter`, if set). */
export function isRetryable(error: unknown): boolean {
  if (!(error instanceof MytokenError)) return false;
  if (error.mayHaveReachedServer) return false;
  return ['ERR_MYTOKEN_NETWORK', 'ERR_MYTOKEN_TIMEOUT', 'ERR_MYTOKEN_RATE_LIMITED'].includes(
    error.code,
  );
}
