/**
 * Main-thread side of one shard: owns the producer end of its inbound ring and the
 * consumer end of its outbound ring. Both rings and the counters outlive the shard
 * thread, so a restarted shard re-attaches to the same memory.
 */
import { copyBytes } from '../protocol/bytes.js';
import { RingConsumer, RingProducer, createRingStorage, ringOccupancy, type RingStorage } from '../ring/spsc-ring.js';
import { InboundWriter, RecordReader } from '../protocol/ring-record-codec.js';
import { createCounterStorage } from '../metrics/shard-counters.js';

/** Receives what a shard sends back; implemented by the front end. */
export interface OutboundSink {
  /** One record of the outbound ring, read in place; valid only during the call. */
  onRecord(shard: number, kind: number, offset: number, length: number, reader: RecordReader): void;
  /** Called after each drained chunk: flush what was gathered (cork once per socket). */
  onChunkEnd(shard: number): void;
  /** A record's handling threw; the record is skipped. */
  onRecordError(shard: number, kind: number, err: unknown): void;
}

/** Records drained per chunk before the sockets touched by the chunk are flushed. */
const OUTBOUND_CHUNK = 2048;
/** Chunks in a row before the pump yields to the event loop, so socket I/O is not starved. */
const CHUNKS_PER_TURN = 4;
/** A parked pump re-checks this often even without a wake-up (belt and braces for a lost notify). */
const PUMP_PARK_TIMEOUT_MS = 1000;

export class ShardHandle {
  readonly index: number;
  readonly inboundStorage: RingStorage;
  readonly outboundStorage: RingStorage;
  readonly countersStorage: SharedArrayBuffer;
  readonly counters: Float64Array;
  readonly writer: InboundWriter;
  readonly #inbound: RingProducer;
  readonly #outbound: RingConsumer;
  readonly #reader: RecordReader;
  /**
   * Records that met a full ring, retried in order before anything else is written: control
   * records (always kept: they are tiny and must not be lost) and publishes (copied, and
   * bounded by `overflowLimit` bytes, past which publishers are refused).
   */
  readonly #backlog: Array<(w: InboundWriter) => boolean> = [];
  readonly #backlogBytes: number[] = [];
  #overflowBytes = 0;
  #overflowLimit = Infinity;
  #overflowed = 0;
  /** Publishers waiting for the overflow to drain (whenRoom), woken in order. */
  readonly #roomWaiters: Array<() => void> = [];
  #commitScheduled = false;
  #pumping = false;
  #alive = false;

  constructor(index: number, ringBytes: number) {
    this.index = index;
    this.inboundStorage = createRingStorage(ringBytes);
    this.outboundStorage = createRingStorage(ringBytes);
    this.countersStorage = createCounterStorage();
    this.counters = new Float64Array(this.countersStorage);
    this.#inbound = new RingProducer(this.inboundStorage);
    this.#outbound = new RingConsumer(this.outboundStorage);
    this.writer = new InboundWriter(this.#inbound);
    this.#reader = new RecordReader(this.#outbound.bytes, this.#outbound.view);
  }

  /** Bytes of publishes the main thread may hold for this shard while its ring is full. */
  set overflowLimit(bytes: number) {
    this.#overflowLimit = bytes;
  }

  /** Publishes waiting in the overflow for room in the ring (bytes), and how many ever waited. */
  get overflow(): { bytes: number; records: number; total: number } {
    return { bytes: this.#overflowBytes, records: this.#backlog.length, total: this.#overflowed };
  }

  /**
   * Writes one publish, or when the ring is full keeps a copy in the bounded overflow (in
   * order, behind anything already waiting). False only when the overflow is at its bound:
   * the publisher must then be refused (503).
   */
  publish(
    connectionId: number,
    token: number,
    exchange: string,
    routingKey: string,
    properties: Uint8Array | null,
    payload: Uint8Array,
    flags = 0,
  ): boolean {
    if (this.#backlog.length === 0 && this.writer.publish(connectionId, token, exchange, routingKey, properties, payload, flags)) {
      this.scheduleCommit();
      return true;
    }
    const size = payload.byteLength + (properties?.byteLength ?? 0) + 64;
    if (this.#overflowBytes + size > this.#overflowLimit) return false;
    const p = properties === null ? null : copyBytes(properties);
    const body = copyBytes(payload);
    this.#overflowBytes += size;
    this.#overflowed++;
    this.#push((w) => w.publish(connectionId, token, exchange, routingKey, p, body, flags), size);
    return true;
  }

  /**
   * Resolves true once the overflow has drained to half its bound (room for a publisher that was
   * refused to go on), false after `timeoutMs`. Never blocks: the drain runs on waitAsync.
   */
  whenRoom(timeoutMs: number): Promise<boolean> {
    if (this.#overflowBytes * 2 <= this.#overflowLimit) return Promise.resolve(true);
    if (timeoutMs <= 0) return Promise.resolve(false);
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        const i = this.#roomWaiters.indexOf(wake);
        if (i >= 0) this.#roomWaiters.splice(i, 1);
        resolve(false);
      }, timeoutMs);
      this.#roomWaiters.push(wake);
    });
  }

  /** Whether the shard thread is up (set by the supervisor). */
  get alive(): boolean {
    return this.#alive;
  }

  set alive(value: boolean) {
    this.#alive = value;
  }

  /**
   * Writes a record that must not be lost (subscribe, ack, close...). When the ring is
   * full it waits in a backlog, in order, and is written as soon as there is room.
   */
  writeControl(write: (w: InboundWriter) => boolean): void {
    if (this.#backlog.length === 0 && write(this.writer)) {
      this.scheduleCommit();
      return;
    }
    this.#push(write, 0);
  }

  #push(write: (w: InboundWriter) => boolean, bytes: number): void {
    this.#backlog.push(write);
    this.#backlogBytes.push(bytes);
    if (this.#backlog.length === 1) void this.#drainBacklog();
  }

  /** True when records go straight into the ring (nothing is waiting in the backlog). */
  get writable(): boolean {
    return this.#backlog.length === 0;
  }

  /**
   * Publishes what was written this turn with one store of the write index, at the end
   * of the current event-loop turn: many uWS callbacks' records share one commit and
   * at most one wake-up (per-record commit and notify ran a bare ring ~4× slower than one per 1000:
   * docs/engine-notes.md §2).
   */
  scheduleCommit(): void {
    if (this.#commitScheduled) return;
    this.#commitScheduled = true;
    setImmediate(this.#commit);
  }

  readonly #commit = (): void => {
    this.#commitScheduled = false;
    this.#inbound.commit();
  };

  occupancy(): { inbound: { usedBytes: number; capacityBytes: number }; outbound: { usedBytes: number; capacityBytes: number } } {
    return { inbound: ringOccupancy(this.inboundStorage), outbound: ringOccupancy(this.outboundStorage) };
  }

  /** Drains the outbound ring for as long as the handle lives; parks with waitAsync when empty. */
  async pump(sink: OutboundSink, isRunning: () => boolean): Promise<void> {
    if (this.#pumping) return;
    this.#pumping = true;
    const reader = this.#reader;
    const index = this.index;
    const onRecord = (kind: number, offset: number, length: number): void => {
      try {
        sink.onRecord(index, kind, offset, length, reader);
      } catch (err) {
        // One bad record must not stop this shard's output for good: report it, go on.
        sink.onRecordError(index, kind, err);
      }
    };
    let chunks = 0;
    try {
      while (isRunning()) {
        const n = this.#outbound.drain(onRecord, OUTBOUND_CHUNK);
        if (n > 0) {
          sink.onChunkEnd(index);
          if (++chunks >= CHUNKS_PER_TURN) {
            chunks = 0;
            await new Promise<void>((resolve) => setImmediate(resolve));
          }
          continue;
        }
        chunks = 0;
        // The main thread never blocks and never spins: it parks on the write index.
        await this.#outbound.waitForDataAsync(PUMP_PARK_TIMEOUT_MS, 0);
      }
    } finally {
      this.#pumping = false;
    }
  }

  async #drainBacklog(): Promise<void> {
    while (this.#backlog.length > 0) {
      while (this.#backlog.length > 0 && this.#backlog[0](this.writer)) {
        this.#backlog.shift();
        this.#overflowBytes -= this.#backlogBytes.shift() ?? 0;
      }
      this.#inbound.commit();
      if (this.#roomWaiters.length > 0 && this.#overflowBytes * 2 <= this.#overflowLimit) {
        for (const wake of this.#roomWaiters.splice(0)) wake();
      }
      // Never block the main thread: wait for the shard to release space (Atomics.waitAsync).
      if (this.#backlog.length > 0) await this.#inbound.waitForSpace(50);
    }
  }
}
