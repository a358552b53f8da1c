/**
 * Detached copies of byte ranges.
 *
 * Not `src.slice()`: on a Node Buffer (and every ring and socket buffer here is viewed as
 * one) `slice` returns a view of the same memory, so a "copy" of a ring region would be
 * overwritten when the ring wraps.
 *
 * Small copies are carved out of shared slabs: a `new Uint8Array(128)` gets its own
 * off-heap backing store, and allocating and finalizing one per queued message was 27% of
 * a shard's time in the ws-fanout profile. A slab stays alive while any copy in it does, so
 * a long-lived small message pins at most SLAB_BYTES; queues free their messages roughly in
 * the order they were copied, so slabs are released together.
 */
const SLAB_BYTES = 16 * 1024;
/** Copies up to this size come from a slab; larger ones get their own buffer. */
const SLAB_MAX_COPY = 1024;

let slab = new Uint8Array(SLAB_BYTES);
let slabUsed = 0;

export function copyBytes(src: Uint8Array, start = 0, end = src.byteLength): Uint8Array {
  const n = end - start;
  if (n > SLAB_MAX_COPY) {
    const out = new Uint8Array(n);
    out.set(src.subarray(start, end));
    return out;
  }
  // Keep copies 8-aligned so later copies out of them stay fast (docs/engine-notes.md §2).
  const size = (n + 7) & ~7;
  if (slabUsed + size > SLAB_BYTES) {
    slab = new Uint8Array(SLAB_BYTES);
    slabUsed = 0;
  }
  const out = slab.subarray(slabUsed, slabUsed + n);
  slabUsed += size;
  for (let i = 0; i < n; i++) out[i] = src[start + i];
  return out;
}
