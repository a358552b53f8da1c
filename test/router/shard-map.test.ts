import { describe, expect, it } from 'vitest';
import { fnv1a32, MAX_SHARD_COUNT, SHARD_MAP_VERSION, shardFor } from '../../src/router/shard-map.js';
import { Prng } from '../helpers/prng.js';

/** FNV-1a 32 over TextEncoder's UTF-8 bytes: the straightforward version the fast one must equal. */
const encoder = new TextEncoder();
function referenceFnv1a32(s: string): number {
  let h = 0x811c9dc5;
  for (const byte of encoder.encode(s)) h = Math.imul(h ^ byte, 0x01000193);
  return h >>> 0;
}

/** Random strings mixing ASCII, 2- and 3-byte BMP characters, astral pairs and lone surrogates. */
function randomUnicodeName(prng: Prng): string {
  const n = prng.int(1, 12);
  let s = '';
  for (let i = 0; i < n; i++) {
    const r = prng.float();
    if (r < 0.3) s += String.fromCharCode(0x21 + Math.floor(prng.float() * 0x5e));
    else if (r < 0.5) s += String.fromCharCode(0x80 + Math.floor(prng.float() * 0x780));
    else if (r < 0.7) s += String.fromCharCode(0x800 + Math.floor(prng.float() * (0xd800 - 0x800)));
    else if (r < 0.8) s += String.fromCharCode(0xe000 + Math.floor(prng.float() * 0x2000));
    else if (r < 0.92) s += String.fromCodePoint(0x10000 + Math.floor(prng.float() * 0xfffff));
    else s += String.fromCharCode(0xd800 + Math.floor(prng.float() * 0x800)); // lone surrogate
  }
  return s;
}

const names10k = Array.from({ length: 10_000 }, (_, i) => `queue-${i}`);

describe('shard-map - version 1 is pinned', () => {
  it('SHARD_MAP_VERSION is 1', () => {
    expect(SHARD_MAP_VERSION).toBe(1);
  });

  it('fnv1a32 matches the published FNV-1a 32-bit test vectors', () => {
    expect(fnv1a32('')).toBe(0x811c9dc5);
    expect(fnv1a32('a')).toBe(0xe40c292c);
    expect(fnv1a32('foobar')).toBe(0xbf9cf968);
  });

  it('fnv1a32 of non-ASCII names is pinned', () => {
    expect(fnv1a32('é')).toBe(0x1e9de8c1);
    expect(fnv1a32('😀')).toBe(0x33a29608);
    expect(fnv1a32('\ud800')).toBe(0x03479c4a); // lone surrogate, hashed as U+FFFD
  });

  // If any of these change, the mapping changed: bump SHARD_MAP_VERSION and plan the data move.
  it.each([
    ['orders', [0, 2, 2, 4, 15, 40]],
    ['audit.log', [0, 0, 0, 7, 7, 26]],
    ['q-0', [0, 0, 0, 6, 6, 51]],
    ['q-1', [0, 2, 3, 5, 5, 45]],
    ['stock.nyse.ibm', [1, 1, 1, 5, 9, 53]],
    ['élan', [1, 1, 3, 3, 15, 17]],
    ['日本語', [0, 0, 0, 6, 6, 39]],
    ['😀', [0, 2, 2, 2, 2, 47]],
  ] as const)('shardFor(%j, 2|3|4|8|16|64) is %j', (name, expected) => {
    expect([2, 3, 4, 8, 16, 64].map((n) => shardFor(name, n))).toEqual(expected);
  });
});

describe('shard-map - UTF-8 encoding', () => {
  it('hand-encoded hash equals the hash of TextEncoder bytes', () => {
    const fixed = [
      ...['', 'a', 'é', 'ß€', '日本語', '😀', 'a😀b', '\uffff', '\u0800', '\u07ff'],
      ...['\ud800', '\udc00', 'x\udc00y', '\ud83d', '\ud83d\ud83d\ude00'], // lone surrogates
    ];
    for (const s of fixed) expect(fnv1a32(s), JSON.stringify(s)).toBe(referenceFnv1a32(s));
    const seed = 0x7e57;
    const prng = new Prng(seed);
    for (let i = 0; i < 5_000; i++) {
      const s = randomUnicodeName(prng);
      expect(fnv1a32(s), `seed=${seed} name=${JSON.stringify(s)}`).toBe(referenceFnv1a32(s));
    }
  });

  it('non-ASCII names spread evenly too', () => {
    const prng = new Prng(0xface);
    const names = Array.from({ length: 10_000 }, () => randomUnicodeName(prng));
    for (let n = 2; n <= 8; n++) {
      const counts = new Array<number>(n).fill(0);
      for (const name of names) counts[shardFor(name, n)]++;
      const mean = names.length / n;
      for (const c of counts) {
        expect(Math.abs(c - mean) / mean, `n=${n} ${counts.join(',')}`).toBeLessThan(0.1);
      }
    }
  });
});

describe('shard-map - distribution and consistency', () => {
  it.each([1, 2, 3, 4, 5, 6, 7, 8])('10k names over %i shards: every shard within 10%% of even', (n) => {
    const counts = new Array<number>(n).fill(0);
    for (const name of names10k) {
      const shard = shardFor(name, n);
      expect(Number.isInteger(shard) && shard >= 0 && shard < n).toBe(true);
      counts[shard]++;
    }
    const mean = names10k.length / n;
    for (const c of counts) expect(Math.abs(c - mean) / mean, counts.join(',')).toBeLessThan(0.1);
  });

  it('names whose raw FNV-1a low bits agree still spread over 2 and 4 shards', () => {
    // Raw FNV-1a bit 0 is the parity of every byte's bit 0, so `h % 2` would put all of these on one
    // shard (and `h % 4` on two): the finaliser in the jump step must spread them anyway.
    const sameLowBits = names10k.filter((name) => (fnv1a32(name) & 3) === 0);
    expect(sameLowBits.length).toBeGreaterThan(1_000);
    for (const n of [2, 4]) {
      const counts = new Array<number>(n).fill(0);
      for (const name of sameLowBits) counts[shardFor(name, n)]++;
      const mean = sameLowBits.length / n;
      for (const c of counts) {
        expect(Math.abs(c - mean) / mean, `n=${n} ${counts.join(',')}`).toBeLessThan(0.15);
      }
    }
  });

  it.each([1, 2, 3, 4, 5, 6, 7, 8])('growing %i → n+1 shards moves ~1/(n+1) names, all to the new one', (n) => {
    let moved = 0;
    for (const name of names10k) {
      const before = shardFor(name, n);
      const after = shardFor(name, n + 1);
      if (before !== after) {
        expect(after).toBe(n);
        moved++;
      }
    }
    const expected = names10k.length / (n + 1);
    expect(Math.abs(moved - expected) / expected).toBeLessThan(0.1);
  });

  it('is deterministic and defined for the largest shard count', () => {
    expect(shardFor('orders', 1)).toBe(0);
    expect(shardFor('', 1)).toBe(0);
    const s = shardFor('orders', MAX_SHARD_COUNT);
    expect(s).toBeGreaterThanOrEqual(0);
    expect(s).toBeLessThan(MAX_SHARD_COUNT);
    expect(shardFor('orders', MAX_SHARD_COUNT)).toBe(s);
  });

  it.each([0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, MAX_SHARD_COUNT + 1])('rejects shardCount %s', (n) => {
    expect(() => shardFor('orders', n)).toThrow(RangeError);
    expect(() => shardFor('orders', n)).toThrow(/shardCount/);
  });
});
