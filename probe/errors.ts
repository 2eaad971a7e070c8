/**
 * Errors raised by the probe. Every error carries a stable `code`; messages are short fragments
 * that name the input and never contain a token.
 */

export type ProbeErrorCode =
  | 'ERR_PROBE_USAGE'
  | 'ERR_PROBE_CONFIG_UNREADABLE'
  | 'ERR_PROBE_CONFIG_INVALID'
  | 'ERR_PROBE_TOKEN_STORE'
  | 'ERR_PROBE_LISTEN';

export class ProbeError extends Error {
  readonly code: ProbeErrorCode;

  constructor(code: ProbeErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ProbeError';
    this.code = code;
  }
}

/** A configuration value that is missing, of the wrong type or out of range; `path` names it. */
export class ConfigError extends ProbeError {
  /**
   * The key path of the bad value, e.g. `checks[2].expect.status`; empty for the whole document.
   */
  readonly path: string;

  constructor(path: string, problem: string, options?: { cause?: unknown }) {
    super('ERR_PROBE_CONFIG_INVALID', path === '' ? problem : `${path}: ${problem}`, options);
    this.name = 'ConfigError';
    this.path = path;
  }
}
