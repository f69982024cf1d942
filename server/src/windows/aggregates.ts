/**
 * Mergeable accumulators for window aggregates. Each keeps what it needs to merge with another of
 * its kind, which session windows do when an event bridges two sessions.
 */
import tdigest from 'tdigest';

export type AggregateOp = 'count' | 'sum' | 'min' | 'max' | 'avg' | 'first' | 'last' | 'stddev' | 'p50' | 'p90' | 'p95' | 'p99';
export const aggregateOps: readonly AggregateOp[] = ['count', 'sum', 'min', 'max', 'avg', 'first', 'last', 'stddev', 'p50', 'p90', 'p95', 'p99'];

const quantiles: Partial<Record<AggregateOp, number>> = { p50: 0.5, p90: 0.9, p95: 0.95, p99: 0.99 };

/** Percentiles come from a t-digest (the tdigest package): a small, mergeable sketch. */
export const isPercentile = (op: AggregateOp) => op in quantiles;
export type Digest = InstanceType<typeof tdigest.TDigest>;
export const newDigest = (): Digest => new tdigest.TDigest();

/** One field's running statistics: enough for every op above. */
export interface FieldStats {
  n: number;
  sum: number;
  min: number;
  max: number;
  /** Welford: running mean and sum of squared deviations. */
  mean: number;
  m2: number;
  firstTs: number;
  first: number;
  lastTs: number;
  last: number;
  /** Only for percentile aggregates. */
  digest?: Digest;
}

export function emptyStats(withDigest = false): FieldStats {
  const s: FieldStats = { n: 0, sum: 0, min: Infinity, max: -Infinity, mean: 0, m2: 0, firstTs: Infinity, first: NaN, lastTs: -Infinity, last: NaN };
  if (withDigest) s.digest = newDigest();
  return s;
}

export function addValue(s: FieldStats, x: number, ts: number): void {
  s.n++;
  s.sum += x;
  if (x < s.min) s.min = x;
  if (x > s.max) s.max = x;
  const d = x - s.mean;
  s.mean += d / s.n;
  s.m2 += d * (x - s.mean);
  takeFirst(s, ts, x);
  takeLast(s, ts, x);
  s.digest?.push(x);
}

/** Merges b into a (Chan et al. for the variance). */
export function mergeStats(a: FieldStats, b: FieldStats): void {
  if (b.n === 0) return;
  if (b.digest) (a.digest ??= newDigest()).push_centroid(b.digest.toArray());
  if (a.n === 0) { Object.assign(a, { ...b, digest: a.digest }); return; }
  const n = a.n + b.n;
  const d = b.mean - a.mean;
  a.m2 += b.m2 + (d * d * a.n * b.n) / n;
  a.mean += (d * b.n) / n;
  a.n = n;
  a.sum += b.sum;
  a.min = Math.min(a.min, b.min);
  a.max = Math.max(a.max, b.max);
  takeFirst(a, b.firstTs, b.first);
  takeLast(a, b.lastTs, b.last);
}

// Values with the same time tie-break by value (first: the smaller, last: the larger), so that
// results never depend on the order events arrived in.
function takeFirst(s: FieldStats, ts: number, x: number): void {
  if (ts < s.firstTs || (ts === s.firstTs && x < s.first)) { s.firstTs = ts; s.first = x; }
}

function takeLast(s: FieldStats, ts: number, x: number): void {
  if (ts > s.lastTs || (ts === s.lastTs && x > s.last)) { s.lastTs = ts; s.last = x; }
}

/** The value of one op; null where there is nothing to say (no values, or stddev of one). */
export function result(s: FieldStats, op: AggregateOp): number | null {
  if (op === 'count') return s.n;
  if (s.n === 0) return null;
  switch (op) {
    case 'sum': return s.sum;
    case 'min': return s.min;
    case 'max': return s.max;
    case 'avg': return s.sum / s.n;
    case 'first': return s.first;
    case 'last': return s.last;
    case 'stddev': return s.n < 2 ? null : Math.sqrt(s.m2 / (s.n - 1));
    default: return s.digest ? (s.digest.percentile(quantiles[op]!) as number) : null;
  }
}
