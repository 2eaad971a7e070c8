/**
 * Errors raised by the Action itself (the mytoken client raises `MytokenError`). Every error carries a stable
 * `code`; `messages.ts` turns either kind into the one line the user sees. Messages never contain a token.
 */

export type ActionErrorCode =
  /** An input is malformed or inconsistent; `input` names it. */
  | 'ERR_ACTION_INVALID_INPUT'
  /** The `mytoken` input is empty (forks, Dependabot, a misnamed secret). */
  | 'ERR_ACTION_MYTOKEN_EMPTY'
  /** The mytoken's own `exp` claim lies in the past. */
  | 'ERR_ACTION_MYTOKEN_EXPIRED'
  /** The mytoken was issued by another server than `mytoken-server`. */
  | 'ERR_ACTION_WRONG_SERVER'
  /** The mytoken's claims lack a capability this run needs. */
  | 'ERR_ACTION_MISSING_CAPABILITY'
  /** The mytoken rotates but no secret to write it back to was configured. */
  | 'ERR_ACTION_NO_WRITE_BACK'
  /** GitHub refused the github-token (401) or its permissions (403). */
  | 'ERR_ACTION_GITHUB_PERMISSION'
  /** GitHub said 404 for the repository, environment, organization or secret. */
  | 'ERR_ACTION_GITHUB_NOT_FOUND'
  /** Any other GitHub failure that retries did not overcome. */
  | 'ERR_ACTION_GITHUB'
  /** The secret was written after this job received it: the copy in hand is superseded. */
  | 'ERR_ACTION_STALE_SECRET'
  /** The long-job helper could not read its files. */
  | 'ERR_ACTION_HELPER';

/** Context attached to an error; every field is safe to log. */
export interface ActionErrorDetails {
  input?: string | undefined;
  status?: number | undefined;
  /** Where the failure happened, e.g. `repository secret MYTOKEN`. */
  target?: string | undefined;
  attempts?: number | undefined;
  cause?: unknown;
}

export class ActionError extends Error {
  readonly code: ActionErrorCode;
  readonly input: string | undefined;
  readonly status: number | undefined;
  readonly target: string | undefined;
  readonly attempts: number | undefined;

  constructor(code: ActionErrorCode, message: string, details: ActionErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'ActionError';
    this.code = code;
    this.input = details.input;
    this.status = details.status;
    this.target = details.target;
    this.attempts = details.attempts;
  }
}

/** Shorthand for `ERR_ACTION_INVALID_INPUT`. */
export function invalidInput(input: string, problem: string, cause?: unknown): ActionError {
  return new ActionError('ERR_ACTION_INVALID_INPUT', `input "${input}" ${problem}`, {
    input,
    cause,
  });
}
