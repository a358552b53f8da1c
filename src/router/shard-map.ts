/**
 * Stable name → shard mapping: which shard owns a queue, or a topic routing key.
 *
 * Runs on the main thread for every publish, so it must be cheap for short ASCII names and must never
 * change silently: durable state lives on the shard that owned a name, so a different mapping after an
 * upgrade would strand it. Any change to the output for any (name, shardCount) must bump
 * {@link SHARD_MAP_VERSION}; test/router/shard-map.test.ts pins known outputs to catch that.
 *
 * Algorithm, version 1:
 * 1. h = FNV-1a 32-bit over the UTF-8 bytes of `name` (offset basis 0x811c9dc5, prime 16777619).
 *    The string is encoded by hand while hashing (no TextEncoder, no allocation); a lone surrogate is
 *    hashed as U+FFFD, exactly as TextEncoder / Buffer would encode it.
 * 2. shard = jump consistent hash (Lamping & Veach, "A Fast, Minimal Memory, Consistent Hash
 *    Algorithm", 2014) of h over `shardCount` buckets. The paper draws its random numbers from a 64-bit
 *    LCG, and JS has no cheap 64-bit multiply, so ours come from a 32-bit generator seeded with h: a
 *    Weyl sequence (step 0x9e3779b9) passed through the murmur3 fmix32 finaliser, giving r in (0, 1].
 *
 * Why not `h % shardCount`: FNV-1a mixes poorly into its low bits (bit 0 of the hash is just the parity
 * of bit 0 of every byte), and the common shard counts are powers of two, which read only low bits:
 * with two shards `q1`, `q3`, `q5` … would all land together. The fmix32 step fixes that. And when the
 * shard count changes from n to n + 1, jump hashing moves only ~1/(n + 1) of names (all of them to the
 * new shard), where a modulo moves ~n/(n + 1), so resharding a broker with durable queues moves the
 * least data. The cost is about ln(n) + 1 generator steps per call: 3 for 8 shards.
 */

/** Version of the mapping defined above; bump on any change to its outputs. */
export const SHARD_MAP_VERSION = 1;

/** Upper bound on shardCount: a shard is a thread, so anything larger is a bug (a byte count, a hash). */
export const MAX_SHARD_COUNT = 65_536;

const FNV_OFFSET_BASIS = 0x811c9dc5;
const FNV_PRIME = 0x01000193;
/** 2^32 / golden ratio: the Weyl-sequence step of splitmix-style generators (odd, so full period). */
const WEYL_STEP = 0x9e3779b9;
const TWO_POW_32 = 4_294_967_296;

/**
 * FNV-1a 32-bit hash of the UTF-8 encoding of `s`, as an unsigned 32-bit integer. Encodes UTF-16 code
 * units to UTF-8 on the fly (surrogate pairs → 4 bytes, lone surrogates → U+FFFD).
 */
export function fnv1a32(s: string): number {
  let h = FNV_OFFSET_BASIS | 0;
  const len = s.length;
  for (let i = 0; i < len; i++) {
    let c = s.charCodeAt(i);
    if (c < 0x80) {
      h = Math.imul(h ^ c, FNV_PRIME);
      continue;
    }
    if (c < 0x800) {
      h = Math.imul(h ^ (0xc0 | (c >>> 6)), FNV_PRIME);
      h = Math.imul(h ^ (0x80 | (c & 0x3f)), FNV_PRIME);
      continue;
    }
    if (c >= 0xd800 && c <= 0xdfff) {
      const low = i + 1 < len ? s.charCodeAt(i + 1) : 0;
      if (c <= 0xdbff && low >= 0xdc00 && low <= 0xdfff) {
        const cp = 0x10000 + ((c - 0xd800) << 10) + (low - 0xdc00);
        i++;
        h = Math.imul(h ^ (0xf0 | (cp >>> 18)), FNV_PRIME);
        h = Math.imul(h ^ (0x80 | ((cp >>> 12) & 0x3f)), FNV_PRIME);
        h = Math.imul(h ^ (0x80 | ((cp >>> 6) & 0x3f)), FNV_PRIME);
        h = Math.imul(h ^ (0x80 | (cp & 0x3f)), FNV_PRIME);
        continue;
      }
      c = 0xfffd; // lone surrogate
    }
    h = Math.imul(h ^ (0xe0 | (c >>> 12)), FNV_PRIME);
    h = Math.imul(h ^ (0x80 | ((c >>> 6) & 0x3f)), FNV_PRIME);
    h = Math.imul(h ^ (0x80 | (c & 0x3f)), FNV_PRIME);
  }
  return h >>> 0;
}

/**
 * The shard, in [0, shardCount), that owns `name` (a queue name or a topic routing key). Stable across
 * processes, platforms and releases with the same {@link SHARD_MAP_VERSION}.
 */
export function shardFor(name: string, shardCount: number): number {
  if (!Number.isInteger(shardCount) || shardCount < 1 || shardCount > MAX_SHARD_COUNT) {
    throw new RangeError(`shardCount must be an integer in [1, ${MAX_SHARD_COUNT}] (got ${String(shardCount)})`);
  }
  if (shardCount === 1) return 0; // what the loop below returns too, without hashing
  return jumpHash(fnv1a32(name), shardCount);
}

/** Jump consistent hash of a 32-bit key over `buckets` (≥ 1) buckets. See the module comment. */
function jumpHash(key: number, buckets: number): number {
  let state = key | 0;
  let b = -1;
  let j = 0;
  while (j < buckets) {
    b = j;
    state = (state + WEYL_STEP) | 0;
    // murmur3 fmix32: full avalanche of the Weyl state.
    let z = state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    z ^= z >>> 16;
    const r = ((z >>> 0) + 1) / TWO_POW_32; // (0, 1]
    j = Math.floor((b + 1) / r);
  }
  return b;
}
