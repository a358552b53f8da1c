/**
 * CRC-32C against published check values (RFC 3720 §B.4, the "123456789" check) and against a
 * one-byte-at-a-time reference over random lengths and offsets, so the slicing-by-8 loop and its
 * tail are both covered.
 */
import { describe, expect, it } from 'vitest';
import { crc32c } from '../../src/store/crc32c.js';
import { Prng, testSeed } from '../helpers/prng.js';

/** The textbook bitwise definition: no tables. */
function reference(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  }
  return ~c >>> 0;
}

describe('crc32c', () => {
  it('crc32c - published check values', () => {
    expect(crc32c(new TextEncoder().encode('123456789'))).toBe(0xe3069283);
    expect(crc32c(new Uint8Array(32))).toBe(0x8a9136aa);
    expect(crc32c(new Uint8Array(32).fill(0xff))).toBe(0x62a8ab43);
    expect(crc32c(Uint8Array.from({ length: 32 }, (_, i) => i))).toBe(0x46dd794e);
    expect(crc32c(Uint8Array.from({ length: 32 }, (_, i) => 31 - i))).toBe(0x113fdb5c);
    expect(crc32c(new Uint8Array(0))).toBe(0);
  });

  it('crc32c - matches the bitwise definition over random ranges, and continues across splits', () => {
    const rng = new Prng(testSeed());
    for (let n = 0; n < 300; n++) {
      const bytes = new Uint8Array(rng.int(0, 100));
      rng.fill(bytes);
      const start = rng.int(0, bytes.length);
      const end = rng.int(start, bytes.length);
      const split = rng.int(start, end);
      const label = `seed ${rng.seed} case ${n}`;
      const whole = crc32c(bytes, start, end);
      expect(whole, label).toBe(reference(bytes.subarray(start, end)));
      expect(crc32c(bytes, split, end, crc32c(bytes, start, split)), label).toBe(whole);
    }
  });
});
