/**
 * A small log-linear latency histogram in the HDR style: exact buckets below 128 units, then 64
 * buckets per power of two, so any recorded value is reported within 1/64 (1.6%) of itself, in a
 * fixed 14 KiB whatever the count. Values are microseconds, kept at 0.1 µs resolution, up to about
 * 214 s (larger values land in the top bucket; `max` stays exact).
 *
 * Recording allocates nothing, so it can run inside a receive loop; histograms of several runs merge.
 * The broker keeps its hop latencies in these (src/metrics/hop-trace.ts) and exports them sparsely,
 * so a reader can subtract an earlier export and get the histogram of the time in between.
 */

/** A histogram as JSON: the non-empty buckets as `[index, count]` pairs, and the running totals. */
export interface ExportedHistogram {
  readonly count: number;
  readonly sum: number;
  readonly min: number | null;
  readonly max: number | null;
  readonly buckets: ReadonlyArray<readonly [number, number]>;
}

/** Sub-bucket bits: 2^7 = 128 exact units, then 64 log-linear buckets per power of two. */
const SUB_BITS = 7;
const SUB_COUNT = 1 << SUB_BITS;
const HALF = SUB_COUNT >> 1;
/** Units per microsecond (0.1 µs resolution). */
const UNITS_PER_US = 10;
const MAX_UNITS = 0x7fff_ffff;
const BUCKETS = (31 - (SUB_BITS - 1)) * HALF + SUB_COUNT;

function indexOf(units: number): number {
  if (units < SUB_COUNT) return units;
  const msb = 31 - Math.clz32(units);
  const shift = msb - (SUB_BITS - 1);
  return shift * HALF + (units >>> shift);
}

/** Midpoint of a bucket, in units. */
function bucketValue(index: number): number {
  if (index < SUB_COUNT) return index;
  const shift = Math.floor(index / HALF) - 1;
  const m = index - shift * HALF;
  return m * 2 ** shift + 2 ** (shift - 1);
}

export class LatencyHistogram {
  readonly #counts = new Float64Array(BUCKETS);
  #count = 0;
  #sum = 0;
  #min = Infinity;
  #max = -Infinity;

  /** Records one latency in microseconds (negative values, from clock skew, count as 0). */
  record(us: number): void {
    const v = us > 0 ? us : 0;
    let units = Math.round(v * UNITS_PER_US);
    if (units > MAX_UNITS) units = MAX_UNITS;
    this.#counts[indexOf(units)]++;
    this.#count++;
    this.#sum += v;
    if (v < this.#min) this.#min = v;
    if (v > this.#max) this.#max = v;
  }

  get count(): number {
    return this.#count;
  }

  get min(): number {
    return this.#count === 0 ? NaN : this.#min;
  }

  get max(): number {
    return this.#count === 0 ? NaN : this.#max;
  }

  get mean(): number {
    return this.#count === 0 ? NaN : this.#sum / this.#count;
  }

  /** The value at percentile `p` (0–100), µs: the bucket midpoint, clamped to the exact min/max. */
  percentile(p: number): number {
    if (this.#count === 0) return NaN;
    if (p >= 100) return this.#max;
    const rank = Math.max(1, Math.ceil((p / 100) * this.#count));
    let seen = 0;
    const counts = this.#counts;
    for (let i = 0; i < counts.length; i++) {
      seen += counts[i];
      if (seen >= rank) {
        const v = bucketValue(i) / UNITS_PER_US;
        return Math.min(this.#max, Math.max(this.#min, v));
      }
    }
    return this.#max;
  }

  /** The non-empty buckets and totals, for JSON (see `fromExport`, `since`). */
  export(): ExportedHistogram {
    const buckets: Array<[number, number]> = [];
    const counts = this.#counts;
    for (let i = 0; i < counts.length; i++) if (counts[i] > 0) buckets.push([i, counts[i]]);
    return {
      count: this.#count,
      sum: this.#sum,
      min: this.#count === 0 ? null : this.#min,
      max: this.#count === 0 ? null : this.#max,
      buckets,
    };
  }

  /** A histogram from an export (what another process or thread recorded). */
  static fromExport(e: ExportedHistogram): LatencyHistogram {
    const h = new LatencyHistogram();
    for (const [i, c] of e.buckets) if (Number.isInteger(i) && i >= 0 && i < BUCKETS) h.#counts[i] += c;
    h.#count = e.count;
    h.#sum = e.sum;
    h.#min = e.min ?? Infinity;
    h.#max = e.max ?? -Infinity;
    return h;
  }

  /**
   * What was recorded after `earlier`, an export of this same histogram taken before: the bucket
   * counts subtract exactly; min and max become the edges of the lowest and highest bucket left
   * (exact values of a window are not kept), clamped to the whole histogram's.
   */
  since(earlier: ExportedHistogram): LatencyHistogram {
    const h = new LatencyHistogram();
    for (let i = 0; i < BUCKETS; i++) h.#counts[i] = this.#counts[i];
    for (const [i, c] of earlier.buckets) if (Number.isInteger(i) && i >= 0 && i < BUCKETS) h.#counts[i] -= c;
    h.#count = this.#count - earlier.count;
    h.#sum = this.#sum - earlier.sum;
    let lo = -1;
    let hi = -1;
    for (let i = 0; i < BUCKETS; i++) {
      if (h.#counts[i] > 0) {
        if (lo < 0) lo = i;
        hi = i;
      }
    }
    if (lo >= 0) {
      h.#min = Math.max(this.#min, bucketValue(lo) / UNITS_PER_US);
      h.#max = Math.min(this.#max, bucketValue(hi + 1) / UNITS_PER_US);
    }
    return h;
  }

  /** Adds every recorded value of `other` into this histogram. */
  merge(other: LatencyHistogram): this {
    const theirs = other.#counts;
    for (let i = 0; i < theirs.length; i++) this.#counts[i] += theirs[i];
    this.#count += other.#count;
    this.#sum += other.#sum;
    if (other.#min < this.#min) this.#min = other.#min;
    if (other.#max > this.#max) this.#max = other.#max;
    return this;
  }
}
