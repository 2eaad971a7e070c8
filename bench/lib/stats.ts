/** Small statistics and Prometheus-text helpers for the benchmark. */

export interface Summary {
  n: number;
  min: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

/** Nearest-rank quantile of sorted values. */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank] as number;
}

export function summarize(values: readonly number[]): Summary {
  const s = [...values].sort((a, b) => a - b);
  const mean = s.reduce((a, b) => a + b, 0) / (s.length || 1);
  return {
    n: s.length,
    min: s[0] ?? NaN,
    p50: quantile(s, 0.5),
    p90: quantile(s, 0.9),
    p99: quantile(s, 0.99),
    max: s[s.length - 1] ?? NaN,
    mean,
  };
}

/** One cumulative histogram bucket: observations at most `le`. */
export interface Bucket {
  le: number;
  count: number;
}

/**
 * A quantile from cumulative buckets, interpolated linearly inside the bucket it falls in (what
 * PromQL's histogram_quantile does), with the bucket's bounds: the true value lies between them.
 */
export function histogramQuantile(
  buckets: readonly Bucket[],
  q: number,
): { value: number; lower: number; upper: number } | undefined {
  const sorted = [...buckets].sort((a, b) => a.le - b.le);
  const total = sorted[sorted.length - 1]?.count ?? 0;
  if (total === 0) return undefined;
  const rank = q * total;
  let lower = 0;
  let below = 0;
  for (const bucket of sorted) {
    if (bucket.count >= rank) {
      if (bucket.le === Infinity) return { value: lower, lower, upper: Infinity };
      const inside = bucket.count - below;
      const value =
        inside === 0 ? bucket.le : lower + ((bucket.le - lower) * (rank - below)) / inside;
      return { value, lower, upper: bucket.le };
    }
    lower = bucket.le;
    below = bucket.count;
  }
  return undefined;
}

/** Bucket-wise difference of two snapshots of the same histogram. */
export function bucketDelta(after: readonly Bucket[], before: readonly Bucket[]): Bucket[] {
  return after.map((b) => ({
    le: b.le,
    count: b.count - (before.find((x) => x.le === b.le)?.count ?? 0),
  }));
}

/** A parsed Prometheus text exposition: samples by metric name. */
export class Exposition {
  readonly #samples = new Map<string, { labels: Record<string, string>; value: number }[]>();

  constructor(text: string) {
    for (const line of text.split('\n')) {
      if (line === '' || line.startsWith('#')) continue;
      const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)/.exec(line);
      if (m === null) continue;
      const list = this.#samples.get(m[1] as string) ?? [];
      list.push({ labels: parseLabels(m[2] ?? ''), value: parseValue(m[3] as string) });
      this.#samples.set(m[1] as string, list);
    }
  }

  /** Sum of the samples of `name` whose labels include `where`. */
  sum(name: string, where: Record<string, string> = {}): number {
    let total = 0;
    for (const s of this.#samples.get(name) ?? []) {
      if (Object.entries(where).every(([k, v]) => s.labels[k] === v)) total += s.value;
    }
    return total;
  }

  /** The buckets of histogram `name` (without a label filter). */
  buckets(name: string): Bucket[] {
    return (this.#samples.get(`${name}_bucket`) ?? []).map((s) => ({
      le: parseValue(s.labels.le ?? '+Inf'),
      count: s.value,
    }));
  }

  /** Number of samples (series) in the exposition. */
  get size(): number {
    let n = 0;
    for (const list of this.#samples.values()) n += list.length;
    return n;
  }
}

function parseLabels(text: string): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const m of text.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g))
    labels[m[1] as string] = m[2] as string;
  return labels;
}

function parseValue(text: string): number {
  if (text === '+Inf') return Infinity;
  if (text === '-Inf') return -Infinity;
  return Number(text);
}

/** Formats a number with a fixed count of significant decimals for the report. */
export function fmt(value: number | undefined, digits = 1): string {
  if (value === undefined || Number.isNaN(value)) return 'n/a';
  if (!Number.isFinite(value)) return value > 0 ? '∞' : '-∞';
  return value.toLocaleString('en-US', {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
}
