/** Stable codes of every error the dev server throws. */
export type DevServerErrorCode =
  | 'ERR_DEVSERVER_API'
  | 'ERR_DEVSERVER_USAGE'
  | 'ERR_DEVSERVER_MINT'
  | 'ERR_DEVSERVER_OP'
  | 'ERR_DEVSERVER_STATE_FILE';

/** Base class of the dev server's errors. Messages never contain token values. */
export class DevServerError extends Error {
  readonly code: DevServerErrorCode;

  constructor(code: DevServerErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'DevServerError';
    this.code = code;
  }
}

/**
 * A mytoken API error: answered as `{"error": …, "error_description"?: …}` with `status`. Thrown by
 * the endpoint handlers and turned into a response by the router.
 */
export class ApiError extends DevServerError {
  readonly status: number;
  readonly error: string;
  readonly description: string | undefined;

  constructor(status: number, error: string, description?: string, options?: ErrorOptions) {
    super('ERR_DEVSERVER_API', description ? `${error}: ${description}` : error, options);
    this.name = 'ApiError';
    this.status = status;
    this.error = error;
    this.description = description || undefined;
  }
}

/** Shorthand for a 400 `invalid_request`. */
export function badRequest(description: string): ApiError {
  return new ApiError(400, 'invalid_request', description);
}
