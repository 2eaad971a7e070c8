/**
 * Log sink: a short message plus key-value fields. The dev server never passes token values to
 * it.
 */
export type Logger = (msg: string, fields?: Record<string, unknown>) => void;

/** Discards everything (the default of the programmatic API). */
export const silentLogger: Logger = () => {};

/** One JSON line per entry on stderr (the CLI's logger). */
export const stderrLogger: Logger = (msg, fields) => {
  process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), msg, ...fields })}\n`);
};
