/**
 * Copies delivered payloads out of the socket's frame into slabs shared by many messages.
 *
 * A message must not alias the frame it came in (a kept message would pin the whole frame and
 * would see its bytes change if the buffer were reused), so each payload is copied. One fresh
 * `Uint8Array` per message costs an ArrayBuffer allocation with its own backing store, and V8's
 * sweeping of those was most of the subscriber's time at a million deliveries a second (the
 * `--cpu-prof` of the open-loop 1→16 subscriber: 39% in the copy, 22% GC). Small payloads are
 * therefore packed into one slab, as Node packs small Buffers into its pool: a kept message pins
 * at most one slab, never a frame, and its view is its own (nothing else writes to its bytes).
 */
export const SLAB_BYTES = 16 * 1024;
/** Payloads above this get a buffer of their own, so one large message cannot pin a slab or waste one. */
export const MAX_SHARED_BYTES = 1024;

export class PayloadSlab {
  #buffer = new ArrayBuffer(SLAB_BYTES);
  #bytes = new Uint8Array(this.#buffer);
  #pos = 0;

  /** A copy of `src` that no other message's bytes overlap. */
  copy(src: Uint8Array): Uint8Array {
    const n = src.length;
    if (n > MAX_SHARED_BYTES) return new Uint8Array(src);
    if (this.#pos + n > SLAB_BYTES) {
      this.#buffer = new ArrayBuffer(SLAB_BYTES);
      this.#bytes = new Uint8Array(this.#buffer);
      this.#pos = 0;
    }
    const at = this.#pos;
    this.#bytes.set(src, at);
    this.#pos = at + n;
    return new Uint8Array(this.#buffer, at, n);
  }
}
