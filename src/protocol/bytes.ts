/**
 * A detached copy of `src[start, end)`.
 *
 * Not `src.slice()`: on a Node Buffer (and every ring and socket buffer here is viewed as
 * one) `slice` returns a view of the same memory, so a "copy" of a ring region would be
 * overwritten when the ring wraps.
 */
export function copyBytes(src: Uint8Array, start = 0, end = src.byteLength): Uint8Array {
  const out = new Uint8Array(end - start);
  out.set(src.subarray(start, end));
  return out;
}
