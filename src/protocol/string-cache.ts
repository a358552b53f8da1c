/**
 * One-entry cache of the last string decoded in one position (a destination, an exchange, a
 * routing key). Publishers and subscriptions repeat their names, so comparing a name's bytes with
 * the last one's usually replaces a UTF-8 decode and a string allocation: in the shard, decoding
 * the exchange and key of every publish record was ~20% of its time in the 1→1 profile.
 */
export class StringCache {
  readonly #bytes: Uint8Array;
  #length = -1;
  #value = '';

  /** Names longer than `capacity` bytes are never cached. */
  constructor(capacity: number) {
    this.#bytes = new Uint8Array(capacity);
  }

  /** The last string remembered, if it was decoded from the same `n` bytes as `bytes[at, at + n)`. */
  lookup(bytes: Uint8Array, at: number, n: number): string | undefined {
    if (n !== this.#length) return undefined;
    const c = this.#bytes;
    for (let i = 0; i < n; i++) if (c[i] !== bytes[at + i]) return undefined;
    return this.#value;
  }

  /** `value` was decoded from `bytes[at, at + n)`. */
  remember(bytes: Uint8Array, at: number, n: number, value: string): void {
    if (n > this.#bytes.length) return;
    for (let i = 0; i < n; i++) this.#bytes[i] = bytes[at + i];
    this.#length = n;
    this.#value = value;
  }
}
