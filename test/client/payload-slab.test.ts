import { describe, expect, it } from 'vitest';
import { MAX_SHARED_BYTES, PayloadSlab, SLAB_BYTES } from '../../src/client/payload-slab.js';

function bytes(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (seed * 31 + i * 7) & 0xff;
  return b;
}

describe('PayloadSlab', () => {
  it('copies: equal bytes, and neither the source nor later copies change them', () => {
    const slab = new PayloadSlab();
    const frame = new Uint8Array(4096);
    const kept: Array<{ copy: Uint8Array; want: Uint8Array }> = [];
    // Random sizes, many slabs' worth, the frame reused for every payload as a socket buffer is.
    let seed = 1;
    for (let i = 0; i < 5000; i++) {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      const n = seed % (MAX_SHARED_BYTES + 200); // some above the shared limit
      const want = bytes(n, i);
      frame.set(want, 17);
      const copy = slab.copy(frame.subarray(17, 17 + n));
      frame.fill(0xee);
      kept.push({ copy, want });
    }
    for (const { copy, want } of kept) expect(copy).toEqual(want);
  });

  it('packs small payloads into one slab and gives large ones a buffer of their own', () => {
    const slab = new PayloadSlab();
    const a = slab.copy(bytes(100, 1));
    const b = slab.copy(bytes(100, 2));
    expect(a.buffer).toBe(b.buffer);
    expect(a.buffer.byteLength).toBe(SLAB_BYTES);
    expect(b.byteOffset).toBe(a.byteOffset + 100);
    const big = slab.copy(bytes(MAX_SHARED_BYTES + 1, 3));
    expect(big.buffer).not.toBe(a.buffer);
    expect(big.buffer.byteLength).toBe(MAX_SHARED_BYTES + 1);
  });

  it('starts a new slab when a payload does not fit in what is left of the current one', () => {
    const slab = new PayloadSlab();
    const first = slab.copy(bytes(MAX_SHARED_BYTES, 0));
    let last = first;
    for (let used = MAX_SHARED_BYTES; used + MAX_SHARED_BYTES <= SLAB_BYTES; used += MAX_SHARED_BYTES) {
      last = slab.copy(bytes(MAX_SHARED_BYTES, used));
    }
    expect(last.buffer).toBe(first.buffer);
    const next = slab.copy(bytes(MAX_SHARED_BYTES, 99));
    expect(next.buffer).not.toBe(first.buffer);
    expect(next.byteOffset).toBe(0);
    expect(slab.copy(new Uint8Array(0))).toHaveLength(0);
  });
});
