/** Stable codes of the errors the benchmark raises. */
export type BenchErrorCode =
  | 'ERR_BENCH_SPAWN'
  | 'ERR_BENCH_TIMEOUT'
  | 'ERR_BENCH_EXITED'
  | 'ERR_BENCH_HTTP'
  | 'ERR_BENCH_MISSING'
  | 'ERR_BENCH_USAGE';

/** Base class of the benchmark's errors. Messages never contain token values. */
export class BenchError extends Error {
  readonly code: BenchErrorCode;

  constructor(code: BenchErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'BenchError';
    this.code = code;
  }
}
