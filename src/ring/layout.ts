/**
 * Shared-memory layout of one SPSC ring (docs/engine-notes.md §2 and §5).
 *
 * A ring is two SharedArrayBuffers:
 *
 *   control  Int32 slots, each alone on its own 64-byte cache line:
 *
 *     byte   0  WRITE_INDEX_SLOT      writer: producer only
 *     byte  64  READ_INDEX_SLOT       writer: consumer only
 *     byte 128  CONSUMER_PARKED_SLOT  writer: consumer only (1 while it sleeps on the write index)
 *     byte 192  PRODUCER_PARKED_SLOT  writer: producer only (1 while it sleeps on the read index)
 *
 *   data     `capacity` bytes (a power of two) holding records back to back:
 *
 *     [u32 payloadLength][u32 kind][payload ...][padding to a multiple of 8]
 *
 *   A record never straddles the end of the data region: when one does not fit, the producer writes
 *   WRAP_MARKER in place of a length and the record starts again at offset 0, so every payload is one
 *   contiguous, 8-aligned byte range the consumer can read in place.
 *
 * Both indexes are free-running int32 byte counters (never masked when stored): the bytes in use are
 * `(writeIndex - readIndex) | 0`, and a byte position is `index & (capacity - 1)`. Header words are
 * host-endian (both sides of a ring always run on the same machine).
 */

/** Bytes per cache line on x86-64 and most arm64 cores: slots written by different threads must not share one. */
export const CACHE_LINE_BYTES = 64;

/** Int32 elements per cache line, the stride between control slots. */
const SLOT_STRIDE = CACHE_LINE_BYTES / Int32Array.BYTES_PER_ELEMENT;

/** Producer's published write index; the consumer may read up to it. Written only by the producer (Atomics.store). */
export const WRITE_INDEX_SLOT = 0 * SLOT_STRIDE;

/** Consumer's released read index; the producer may reuse bytes before it. Written only by the consumer (Atomics.store). */
export const READ_INDEX_SLOT = 1 * SLOT_STRIDE;

/** 1 while the consumer sleeps on WRITE_INDEX_SLOT, so the producer notifies only then (a notify costs ~35 ns idle, ~7 µs to a sleeper). Written only by the consumer. */
export const CONSUMER_PARKED_SLOT = 2 * SLOT_STRIDE;

/** 1 while the producer sleeps on READ_INDEX_SLOT waiting for space, so the consumer notifies only then. Written only by the producer. */
export const PRODUCER_PARKED_SLOT = 3 * SLOT_STRIDE;

/** Size of the control SharedArrayBuffer: four slots, one cache line each. */
export const CONTROL_BYTES = 4 * CACHE_LINE_BYTES;

/** Record header: u32 payload length + u32 kind; 8 bytes keeps every payload 8-aligned (misaligned SAB copies ran 2–8× slower, docs/engine-notes.md §2). */
export const RECORD_HEADER_BYTES = 8;

/** Records (header + payload + padding) are multiples of this, so the next header and payload stay 8-aligned. */
export const RECORD_ALIGN_BYTES = 8;

/** Written in place of a length where the rest of the data region is skipped; no real length can be this large. */
export const WRAP_MARKER = 0xffffffff;

/** Smallest accepted capacity: one page; smaller rings wrap and park constantly (64 KiB was already measurably too small). */
export const MIN_CAPACITY_BYTES = 4096;

/** Largest accepted capacity: 2^30 keeps `(writeIndex - readIndex) | 0` (at most the capacity) a non-negative int32. */
export const MAX_CAPACITY_BYTES = 1 << 30;

/** Bytes a record with `payloadLength` payload bytes occupies in the ring: header + payload, rounded up to 8. */
export function recordFootprint(payloadLength: number): number {
  return (RECORD_HEADER_BYTES + payloadLength + (RECORD_ALIGN_BYTES - 1)) & ~(RECORD_ALIGN_BYTES - 1);
}
