/**
 * Seeded pseudo-random numbers for property, stress and fuzz tests.
 *
 * mulberry32: 32-bit state, full 2^32 period, fast, good enough for choosing sizes and actions. Not
 * for cryptography. Every test that uses it should print its seed on failure so a run can be replayed
 * with `SHARDMQ_SEED=<seed>`.
 */

/** Returns a generator of uniformly distributed unsigned 32-bit integers, seeded with `seed`. */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return (t ^ (t >>> 14)) >>> 0;
  };
}

/** A seeded generator with the helpers tests need. Same seed, same sequence, on every thread. */
export class Prng {
  readonly seed: number;
  readonly #next: () => number;

  constructor(seed: number) {
    this.seed = seed >>> 0;
    this.#next = mulberry32(this.seed);
  }

  /** Uniform unsigned 32-bit integer. */
  u32(): number {
    return this.#next();
  }

  /** Uniform float in [0, 1). */
  float(): number {
    return this.#next() / 4294967296;
  }

  /** Uniform integer in [min, max] (both inclusive). */
  int(min: number, max: number): number {
    return min + Math.floor(this.float() * (max - min + 1));
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.float() < p;
  }

  /** A uniformly chosen element of a non-empty array. */
  pick<T>(items: readonly T[]): T {
    return items[this.int(0, items.length - 1)] as T;
  }

  /** Fills `bytes[offset, offset + length)` with random bytes. */
  fill(bytes: Uint8Array, offset = 0, length = bytes.length - offset): void {
    for (let i = 0; i < length; i++) bytes[offset + i] = this.#next() & 0xff;
  }

  /**
   * A size skewed towards small values, as message sizes are: with probability `pSmall` uniform in
   * [min, smallMax], otherwise uniform in [min, max].
   */
  skewedSize(min: number, smallMax: number, max: number, pSmall = 0.9): number {
    return this.chance(pSmall) ? this.int(min, Math.min(smallMax, max)) : this.int(min, max);
  }

  /** A new generator seeded from this one, for an independent stream (e.g. one per test case). */
  fork(): Prng {
    return new Prng(this.#next());
  }
}

/**
 * The seed for a test run: `SHARDMQ_SEED` from the environment when set (to replay a failure),
 * otherwise a fresh random one. Print it in assertion messages.
 */
export function testSeed(envName = 'SHARDMQ_SEED'): number {
  const fromEnv = process.env[envName];
  if (fromEnv !== undefined && fromEnv !== '') {
    const seed = Number(fromEnv);
    if (!Number.isInteger(seed)) throw new Error(`${envName} must be an integer (got ${fromEnv})`);
    return seed >>> 0;
  }
  return (Math.random() * 4294967296) >>> 0;
}
