/**
 * A small log-linear latency histogram in the HDR style: exact buckets below 128 units, then 64
 * buckets per power of two, so any recorded value is reported within 1/64 (1.6%) of itself, in a
 * fixed 14 KiB whatever the count. Values are microseconds, kept at 0.1 µs resolution, up to about
 * 214 s (larger values land in the top bucket; `max` stays exact).
 *
 * Recording allocates nothing, so it can run inside a receive loop; histograms of several runs merge.
 */

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
