/**
 * JSON-lines logging with one fixed vocabulary of keys. Every line is
 * `{"ts","level","msg",...fields}`; the field names below are the only ones allowed, so that log
 * queries keep working across releases. Nothing that reaches a log line may carry a token: messages
 * come from errors whose text is token-free by contract, and every line is also scrubbed of the
 * secrets the probe has seen, as a second line of defence.
 */

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** The allowed log keys, besides `ts`, `level` and `msg`. */
export const LOG_KEYS = [
  'check',
  'reason',
  'status_code',
  'duration_seconds',
  'err',
  'code',
  'url',
  'address',
  'config_file',
  'token_store',
  'scope',
  'audience',
  'checks',
  'signal',
  'version',
  'operation',
  'attempt',
  'delay_ms',
  'rotated',
  'expires_in',
  'retry_in_seconds',
] as const;

export type LogKey = (typeof LOG_KEYS)[number];
export type LogFields = Partial<Record<LogKey, string | number | boolean | undefined>>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
}

const LEVELS: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };
const MAX_SECRETS = 256;

/**
 * The secrets the probe holds (access tokens, mytokens), kept so that text bound for a log line or
 * `/status` can be scrubbed of them. Bounded: the oldest are forgotten first, and they are long
 * dead by then.
 */
export class SecretScrubber {
  readonly #secrets = new Set<string>();

  add(secret: string): void {
    if (secret.length < 8 || this.#secrets.has(secret)) return;
    this.#secrets.add(secret);
    if (this.#secrets.size > MAX_SECRETS) {
      const oldest = this.#secrets.values().next().value;
      if (oldest !== undefined) this.#secrets.delete(oldest);
    }
  }

  scrub(text: string): string {
    let out = text;
    for (const secret of this.#secrets) {
      if (out.includes(secret)) out = out.replaceAll(secret, '[redacted]');
    }
    return out;
  }
}

export interface LoggerOptions {
  level?: LogLevel;
  /** Where lines go; one call per line, without the newline. Default: standard error. */
  write?: (line: string) => void;
  scrubber?: SecretScrubber;
  /** Clock for `ts`, injectable for tests. */
  now?: () => Date;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const min = LEVELS[options.level ?? 'info'];
  const write = options.write ?? ((line: string) => process.stderr.write(`${line}\n`));
  const now = options.now ?? (() => new Date());
  const emit = (level: LogLevel, msg: string, fields?: LogFields) => {
    if (LEVELS[level] < min) return;
    const line = JSON.stringify({ ts: now().toISOString(), level, msg, ...fields });
    write(options.scrubber === undefined ? line : options.scrubber.scrub(line));
  };
  return {
    debug: (msg, fields) => emit('debug', msg, fields),
    info: (msg, fields) => emit('info', msg, fields),
    warn: (msg, fields) => emit('warn', msg, fields),
    error: (msg, fields) => emit('error', msg, fields),
  };
}

/** A logger that drops everything. */
export const nullLogger: Logger = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};

export function isLogLevel(value: string): value is LogLevel {
  return Object.hasOwn(LEVELS, value);
}

/**
 * Adapts the client library's debug logger: its field names are mapped onto this vocabulary, and
 * fields without a counterpart are dropped rather than let in.
 */
export function clientLogger(logger: Logger): {
  debug(message: string, fields?: Record<string, unknown>): void;
} {
  const renamed: Record<string, LogKey> = {
    operation: 'operation',
    store: 'token_store',
    status: 'status_code',
    attempt: 'attempt',
    delay_ms: 'delay_ms',
    err: 'code',
  };
  return {
    debug(message, fields = {}) {
      const out: LogFields = {};
      for (const [key, value] of Object.entries(fields)) {
        const name = renamed[key];
        if (name === undefined) continue;
        if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') {
          out[name] = value;
        }
      }
      logger.debug(message, out);
    },
  };
}
