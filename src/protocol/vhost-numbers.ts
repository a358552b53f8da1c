/**
 * Vhost numbers: what a publish record carries instead of its vhost's prefix, so a message in a
 * vhost crosses the ring with the same bytes as one in `/` (its local exchange name) plus a u16.
 * The main thread numbers each vhost it creates and writes the prefix into a table in shared
 * memory before any record can carry the number; a shard reads a number's prefix from the table
 * the first time it meets it. The write happens before the ring commit that publishes the first
 * such record (an Atomics.store), and the shard reads it after loading that commit (an
 * Atomics.load), so the entry is always there when the shard looks.
 *
 * Number 0 means "no number": the record's exchange is the whole name, bare for `/`, qualified
 * otherwise. Numbers are never reused while the process lives (a deleted vhost's stays retired),
 * and past the table's capacity a new vhost gets 0: its messages carry their qualified names,
 * which is correct, only a few bytes longer.
 */

/** Vhosts one process can number; later ones go by qualified names (number 0). */
export const VHOST_NUMBERS = 1024;
/** One entry: u16 byte length, then the prefix (a ≤ 255-byte vhost name and the separator). */
const SLOT_BYTES = 264;

/** The table's shared memory: created by the main thread, handed to every shard at spawn. */
export function createVhostNumberTable(): SharedArrayBuffer {
  return new SharedArrayBuffer(VHOST_NUMBERS * SLOT_BYTES);
}

/** Main thread: numbers vhosts as they are created. */
export class VhostNumbering {
  readonly #bytes: Uint8Array;
  readonly #view: DataView;
  #next = 1;

  constructor(table: SharedArrayBuffer) {
    this.#bytes = new Uint8Array(table);
    this.#view = new DataView(table);
  }

  /** A new number for `prefix` (written to the table first), or 0 for `/` or when the table is full. */
  assign(prefix: string): number {
    if (prefix.length === 0 || this.#next >= VHOST_NUMBERS) return 0;
    const encoded = Buffer.from(prefix, 'utf8');
    if (encoded.byteLength > SLOT_BYTES - 2) return 0;
    const n = this.#next++;
    const at = n * SLOT_BYTES;
    this.#bytes.set(encoded, at + 2);
    this.#view.setUint16(at, encoded.byteLength, true);
    return n;
  }
}

/** Shard side: a number's prefix, read from the table once and kept. */
export class VhostPrefixes {
  readonly #table: SharedArrayBuffer | null;
  readonly #known: string[] = [''];

  /** `table` null: this reader never meets a number (records from shards, or from another node). */
  constructor(table: SharedArrayBuffer | null) {
    this.#table = table;
  }

  prefix(n: number): string {
    const known = this.#known[n];
    if (known !== undefined) return known;
    if (this.#table === null || n >= VHOST_NUMBERS)
      throw new RangeError(`a record names vhost number ${n}, which this reader has no table for`);
    const at = n * SLOT_BYTES;
    const view = new DataView(this.#table);
    const length = view.getUint16(at, true);
    if (length === 0) throw new RangeError(`vhost number ${n} was never assigned`);
    // Copied out of shared memory first: decoding reads a stable private copy.
    const prefix = Buffer.from(new Uint8Array(this.#table, at + 2, length)).toString('utf8');
    this.#known[n] = prefix;
    return prefix;
  }
}
