/**
 * Single-producer / single-consumer ring of variable-length records over SharedArrayBuffer.
 *
 * Contract (the ringbuf.js contract, with our framing):
 * - Exactly one thread owns the RingProducer and exactly one thread owns the RingConsumer of a
 *   storage. Roles never move without external synchronisation (e.g. the old owner has exited).
 * - The producer reserves records and writes their payloads in place, then publishes them all with
 *   commit(): plain stores first, then one Atomics.store of the write index. The consumer reads
 *   records in place during drain() and releases them with one Atomics.store of the read index.
 *   JS Atomics are sequentially consistent, so "publish the index last" is all the ordering needed.
 * - Neither side blocks in reserve/commit/drain. Waiting is explicit (the waitForData and
 *   waitForSpace families).
 * - Observers (ringOccupancy, hasData) read indexes the other side keeps moving: their answer can be
 *   late, never wrong about the past.
 *
 * Layout and framing: see layout.ts. Wakeups: see doorbell.ts.
 */
import { ParkingSpot, ringDoorbell } from './doorbell.js';
import {
  CONSUMER_PARKED_SLOT,
  CONTROL_BYTES,
  MAX_CAPACITY_BYTES,
  MIN_CAPACITY_BYTES,
  PRODUCER_PARKED_SLOT,
  READ_INDEX_SLOT,
  RECORD_ALIGN_BYTES,
  RECORD_HEADER_BYTES,
  WRAP_MARKER,
  WRITE_INDEX_SLOT,
} from './layout.js';

/**
 * Atomics.load spins a consumer does before parking in waitForData: ~20k loads is ~100–150 µs, which
 * cut parks from ~8k to ~15 per 10 M records in a one-off measurement of a bare ring (docs/engine-notes.md §2).
 */
export const DEFAULT_SPIN_LOADS = 20_000;

/**
 * Default spin for waitForDataAsync: none. It is meant for the main thread, whose time belongs to
 * uWS I/O; parking with waitAsync there still ran this ring at 18 M records/s worker → main
 * (benchmarks.md, native-bench; docs/engine-notes.md §2).
 */
export const DEFAULT_ASYNC_SPIN_LOADS = 0;

/** The two SharedArrayBuffers of one ring. Plain data: pass it to a worker in workerData or postMessage. */
export interface RingStorage {
  readonly control: SharedArrayBuffer;
  readonly data: SharedArrayBuffer;
}

/** Callback of RingConsumer.drain: the payload is `bytes[offset, offset + length)`, valid only during the call. */
export type RecordHandler = (kind: number, offset: number, length: number) => void;

function isValidCapacity(capacityBytes: number): boolean {
  return (
    Number.isInteger(capacityBytes) &&
    capacityBytes >= MIN_CAPACITY_BYTES &&
    capacityBytes <= MAX_CAPACITY_BYTES &&
    (capacityBytes & (capacityBytes - 1)) === 0
  );
}

function assertCapacity(capacityBytes: number): void {
  if (!isValidCapacity(capacityBytes)) {
    throw new RangeError(
      `ring capacityBytes must be a power of two from ${MIN_CAPACITY_BYTES} to ${MAX_CAPACITY_BYTES} (got ${String(capacityBytes)})`,
    );
  }
}

/** Allocates the shared memory of a ring with `capacityBytes` of record space (a power of two, 4 KiB to 1 GiB). */
export function createRingStorage(capacityBytes: number): RingStorage {
  assertCapacity(capacityBytes);
  return { control: new SharedArrayBuffer(CONTROL_BYTES), data: new SharedArrayBuffer(capacityBytes) };
}

/**
 * Largest payload one record may carry: a quarter of the ring minus the header. Bigger payloads must
 * travel another way (a transferred ArrayBuffer, or fragments; docs/engine-notes.md §2). With this bound a
 * record plus the tail it may skip at the wrap needs less than half the ring, so it fits as soon as
 * the consumer has released down to half full, and the consumer releases at least every quarter ring.
 */
export function maxRecordPayload(capacityBytes: number): number {
  assertCapacity(capacityBytes);
  return capacityBytes / 4 - RECORD_HEADER_BYTES;
}

/**
 * Committed bytes not yet released (records, headers, padding and skipped tails), from any thread.
 * Can be late: both sides keep moving while this reads. The read index is loaded first, so a racing
 * consumer can only make the answer too high, never negative; it is clamped to the capacity.
 * Allocates one Int32Array view, so it suits stats, not hot paths.
 */
export function ringOccupancy(storage: RingStorage): { usedBytes: number; capacityBytes: number } {
  const control = new Int32Array(storage.control);
  const read = Atomics.load(control, READ_INDEX_SLOT);
  const write = Atomics.load(control, WRITE_INDEX_SLOT);
  const capacityBytes = storage.data.byteLength;
  const used = (write - read) | 0;
  return { usedBytes: used < 0 ? 0 : used > capacityBytes ? capacityBytes : used, capacityBytes };
}

/** Validates a storage received from elsewhere (workerData, a message) before either side attaches. */
function attachControl(storage: RingStorage): Int32Array {
  if (
    !(storage.control instanceof SharedArrayBuffer) ||
    storage.control.byteLength !== CONTROL_BYTES ||
    !(storage.data instanceof SharedArrayBuffer) ||
    !isValidCapacity(storage.data.byteLength)
  ) {
    throw new TypeError(
      `ring storage must be { control: SharedArrayBuffer(${CONTROL_BYTES}), data: SharedArrayBuffer(power of two ${MIN_CAPACITY_BYTES}..${MAX_CAPACITY_BYTES}) }, as made by createRingStorage`,
    );
  }
  const control = new Int32Array(storage.control);
  // A side may re-attach to a ring that outlived a thread: refuse indexes no ring could produce.
  const read = Atomics.load(control, READ_INDEX_SLOT);
  const write = Atomics.load(control, WRITE_INDEX_SLOT);
  const used = (write - read) | 0;
  if (used < 0 || used > storage.data.byteLength || (read & (RECORD_ALIGN_BYTES - 1)) !== 0 || (write & (RECORD_ALIGN_BYTES - 1)) !== 0) {
    throw new Error(`ring control is inconsistent: writeIndex ${write}, readIndex ${read}, capacity ${storage.data.byteLength}`);
  }
  return control;
}

// Kept out of line so that reserve() stays small enough to inline.
function throwBadLength(length: number, maxPayload: number): never {
  throw new RangeError(
    `ring record payload length must be an integer from 0 to maxRecordPayload ${maxPayload} (got ${String(length)}); larger payloads must not go through the ring`,
  );
}

function throwCorruptRecord(position: number, length: number, maxPayload: number): never {
  throw new Error(`ring data is corrupt: record at byte ${position} claims payload length ${length} (max ${maxPayload})`);
}

/**
 * What both ends of a ring hold once attached to its storage. The producer writes records into
 * `bytes`/`view` in place; the consumer reads them there during drain().
 *
 * The fields reserve() and drain() read are protected rather than `#private` so that one attach
 * step serves both ends; optimized code loads either kind as a map check and a field load, so the
 * hot paths do not pay for the sharing.
 */
export abstract class RingEnd {
  /** The data region: payloads live at the offsets reserve() returns and drain() hands out. */
  readonly bytes: Uint8Array;
  /** The same region, for integers in payloads. */
  readonly view: DataView;
  /** Bytes of record space (a power of two). */
  readonly capacity: number;

  protected readonly control: Int32Array;
  /** Header words; offsets are 8-aligned, so header word i is at byte 4i. */
  protected readonly words: Uint32Array;
  protected readonly mask: number;
  protected readonly maxPayload: number;

  constructor(storage: RingStorage) {
    this.control = attachControl(storage);
    this.bytes = new Uint8Array(storage.data);
    this.view = new DataView(storage.data);
    this.words = new Uint32Array(storage.data);
    this.capacity = storage.data.byteLength;
    this.mask = this.capacity - 1;
    this.maxPayload = maxRecordPayload(this.capacity);
  }
}

/**
 * Producer side of a ring: exactly one thread (main or worker) may own it.
 *
 * Usage per batch: `off = reserve(len, kind)`, write the payload into `bytes`/`view` at `off`, repeat,
 * then `commit()` once. On -1: `commit()`, then wait for space (waitForSpace on the main thread,
 * waitForSpaceSync on a worker) and retry.
 */
export class RingProducer extends RingEnd {
  /** Producer-local write index, including reserved records not yet committed. */
  #writeIndex: number;
  /** Last read index loaded from the consumer; refreshed only when the ring looks full (saves a load per record). */
  #readIndexSeen: number;
  #pendingRecords = 0;
  readonly #parking: ParkingSpot;

  constructor(storage: RingStorage) {
    super(storage);
    this.#writeIndex = Atomics.load(this.control, WRITE_INDEX_SLOT);
    this.#readIndexSeen = Atomics.load(this.control, READ_INDEX_SLOT);
    this.#parking = new ParkingSpot(this.control, PRODUCER_PARKED_SLOT, READ_INDEX_SLOT);
  }

  /** Records reserved since the last commit (invisible to the consumer until then). */
  get pendingRecords(): number {
    return this.#pendingRecords;
  }

  /**
   * Reserves a record of `length` payload bytes with a u32 `kind` (kinds below 2^31 stay small
   * integers on the consumer side, so they cost no allocation there). Returns the payload's byte
   * offset in `bytes` (always 8-aligned, and the payload is contiguous), or -1 when the ring lacks
   * room right now. Never blocks; throws only a RangeError for a length that is not an integer in
   * 0..maxRecordPayload. The record becomes visible to the consumer at the next commit().
   */
  reserve(length: number, kind: number): number {
    if ((length | 0) !== length || length < 0 || length > this.maxPayload) throwBadLength(length, this.maxPayload);
    const footprint = (RECORD_HEADER_BYTES + length + (RECORD_ALIGN_BYTES - 1)) & ~(RECORD_ALIGN_BYTES - 1);
    const capacity = this.capacity;
    let write = this.#writeIndex;
    let position = write & this.mask;
    const tailRoom = capacity - position; // always ≥ 8: positions are 8-aligned, so a marker always fits
    // A record that does not fit before the end also consumes the tail it skips.
    const needed = footprint <= tailRoom ? footprint : footprint + tailRoom;
    if (capacity - ((write - this.#readIndexSeen) | 0) < needed) {
      this.#readIndexSeen = Atomics.load(this.control, READ_INDEX_SLOT);
      if (capacity - ((write - this.#readIndexSeen) | 0) < needed) return -1;
    }
    const words = this.words;
    if (footprint > tailRoom) {
      words[position >> 2] = WRAP_MARKER;
      write = (write + tailRoom) | 0;
      position = 0;
    }
    words[position >> 2] = length;
    words[(position >> 2) + 1] = kind;
    this.#writeIndex = (write + footprint) | 0;
    this.#pendingRecords++;
    return position + RECORD_HEADER_BYTES;
  }

  /**
   * Publishes every record reserved since the last commit with one Atomics.store of the write index,
   * then rings the doorbell only if the consumer advertised it is parked. No-op when nothing is
   * pending. Commit per batch, not per record: per-record publish + notify ran ~4× slower (docs/engine-notes.md §2).
   * Returns true when it woke the consumer.
   */
  commit(): boolean {
    if (this.#pendingRecords === 0) return false;
    this.#pendingRecords = 0;
    Atomics.store(this.control, WRITE_INDEX_SLOT, this.#writeIndex);
    return ringDoorbell(this.control, WRITE_INDEX_SLOT, CONSUMER_PARKED_SLOT);
  }

  /**
   * Main thread (or any event-loop thread): resolves once the consumer has released space since the
   * last time reserve() looked (call it after reserve() returned -1), or after `timeoutMs`. Never
   * blocks: it awaits Atomics.waitAsync on the read index with PRODUCER_PARKED raised so the
   * consumer notifies. Commits pending records first, since the consumer cannot free space for
   * records it cannot see. Holds the event loop open while pending (see doorbell.ts).
   * Resolves true if space was released, false on timeout (an addition: callers may ignore it).
   */
  waitForSpace(timeoutMs: number): Promise<boolean> {
    this.commit();
    return this.#parking.parkAsync(this.#readIndexSeen, timeoutMs);
  }

  /**
   * Worker thread: blocks in Atomics.wait until the consumer has released space since reserve() last
   * looked, or `timeoutMs` passes. Commits pending records first (as waitForSpace does).
   * Returns true if space was released, false on timeout (an addition: callers may ignore it).
   */
  waitForSpaceSync(timeoutMs: number): boolean {
    this.commit();
    return this.#parking.parkSync(this.#readIndexSeen, timeoutMs);
  }
}

/**
 * Consumer side of a ring: exactly one thread (worker or main) may own it.
 *
 * Usage: `drain(onRecord)` until it returns 0, then wait (waitForData on a worker with no async work
 * pending, waitForDataAsync on the main thread) and drain again.
 */
export class RingConsumer extends RingEnd {
  /** Release the read index at least this often within one drain: a quarter ring (docs/engine-notes.md §5). */
  readonly #releaseStride: number;
  /** Consumer-local read index: everything before it has been handed to onRecord. */
  #readIndex: number;
  readonly #parking: ParkingSpot;

  constructor(storage: RingStorage) {
    super(storage);
    this.#releaseStride = this.capacity / 4;
    this.#readIndex = Atomics.load(this.control, READ_INDEX_SLOT);
    this.#parking = new ParkingSpot(this.control, CONSUMER_PARKED_SLOT, WRITE_INDEX_SLOT);
  }

  /**
   * Calls `onRecord(kind, offset, length)` for each committed record in order, up to `maxRecords`
   * (default: all committed when drain starts). The payload is `bytes[offset, offset + length)` and
   * is valid only during the callback: read it in place, copy what you keep. Releases the read index
   * at least every capacity/4 bytes and at the end (one Atomics.store each), notifying the producer
   * only if it is parked. Returns the number of records handled. Allocates nothing per record.
   *
   * If onRecord throws, the records before it and the throwing record itself stay consumed (so a
   * poison record cannot wedge the ring), and the error propagates.
   */
  drain(onRecord: RecordHandler, maxRecords: number = Infinity): number {
    const control = this.control;
    const write = Atomics.load(control, WRITE_INDEX_SLOT);
    let read = this.#readIndex;
    if (read === write) return 0;
    const words = this.words;
    const capacity = this.capacity;
    const mask = this.mask;
    const maxPayload = this.maxPayload;
    const releaseStride = this.#releaseStride;
    let released = read;
    let handled = 0;
    try {
      while (read !== write && handled < maxRecords) {
        const position = read & mask;
        const length = words[position >> 2];
        if (length === WRAP_MARKER) {
          read = (read + capacity - position) | 0;
          continue;
        }
        if (length > maxPayload) throwCorruptRecord(position, length, maxPayload);
        // Advance before the callback so that a throwing record counts as consumed; the bytes are
        // released (made reusable) only after the callback returns, below or in `finally`.
        read = (read + ((RECORD_HEADER_BYTES + length + (RECORD_ALIGN_BYTES - 1)) & ~(RECORD_ALIGN_BYTES - 1))) | 0;
        handled++;
        onRecord(words[(position >> 2) + 1], position + RECORD_HEADER_BYTES, length);
        if (((read - released) | 0) >= releaseStride) {
          released = read;
          this.#release(read);
        }
      }
    } finally {
      this.#readIndex = read;
      if (read !== released) this.#release(read);
    }
    return handled;
  }

  /** Times this consumer went to sleep waiting for data (see ParkingSpot.parks). */
  get parks(): number {
    return this.#parking.parks;
  }

  /** True when committed records are waiting. Can be late: the producer may commit right after. */
  hasData(): boolean {
    return Atomics.load(this.control, WRITE_INDEX_SLOT) !== this.#readIndex;
  }

  /**
   * Worker thread: returns true as soon as data is available. Spins up to `spinLoads` Atomics.loads,
   * then raises CONSUMER_PARKED, re-checks and blocks in Atomics.wait on the write index; returns
   * false only once `timeoutMs` has passed with no data. Blocking stops the worker's event loop, so
   * use it only when the worker has no async work pending.
   */
  waitForData(timeoutMs: number, spinLoads: number = DEFAULT_SPIN_LOADS): boolean {
    const control = this.control;
    const read = this.#readIndex;
    for (let i = 0; i <= spinLoads; i++) {
      if (Atomics.load(control, WRITE_INDEX_SLOT) !== read) return true;
    }
    return this.#parking.parkSync(read, timeoutMs);
  }

  /**
   * Any thread, never blocks (beyond `spinLoads` Atomics.loads, default none): the same park
   * protocol through Atomics.waitAsync. Resolves true when data is available (committed since the
   * call), false once `timeoutMs` has passed with none. Holds the event loop open while pending
   * (see doorbell.ts). Allocates nothing when data is already there.
   */
  waitForDataAsync(timeoutMs: number, spinLoads: number = DEFAULT_ASYNC_SPIN_LOADS): Promise<boolean> {
    const control = this.control;
    const read = this.#readIndex;
    for (let i = 0; i < spinLoads; i++) {
      if (Atomics.load(control, WRITE_INDEX_SLOT) !== read) break;
    }
    return this.#parking.parkAsync(read, timeoutMs);
  }

  /** Makes bytes before `read` reusable by the producer, waking it only if it is parked on them. */
  #release(read: number): void {
    Atomics.store(this.control, READ_INDEX_SLOT, read);
    ringDoorbell(this.control, READ_INDEX_SLOT, PRODUCER_PARKED_SLOT);
  }
}
