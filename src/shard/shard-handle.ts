/**
 * Main-thread side of one shard: owns the producer end of its inbound ring and the
 * consumer end of its outbound ring. Both rings and the counters outlive the shard
 * thread, so a restarted shard re-attaches to the same memory.
 */
import { copyBytes } from '../protocol/bytes.js';
import { RingConsumer, RingProducer, createRingStorage, ringOccupancy, type RingStorage } from '../ring/spsc-ring.js';
import { InboundWriter, RecordReader } from '../protocol/ring-record-codec.js';
import { createCounterStorage } from '../metrics/shard-counters.js';
import { Deque } from '../queue/deque.js';
import { monotonicMs } from '../metrics/clock.js';
import type { HopTrace } from '../metrics/hop-trace.js';

/** Receives what a shard sends back; implemented by the front end. */
/** What a consumer's front writes to the shard of its queue (a ShardHandle, or in a cluster the queue's node). */
export type ControlWriter = Pick<InboundWriter, 'subscribe' | 'unsubscribe' | 'settle' | 'credit' | 'connectionClosed' | 'slow'>;

/** What publish credit waits on: a shard's held publishes, or in a cluster the link to the other nodes. */
export interface RoomSignal {
  readonly hasRoom: boolean;
  /** Calls `wake` once there is room (at once if there is). */
  onRoom(wake: () => void): void;
}

export interface ControlPort {
  writeControl(write: (w: ControlWriter) => boolean): void;
}

/**
 * The shard index of a subscription whose queue lives on another node of the cluster: its
 * control records go to that node (cluster/remote-consumers.ts), not to a local shard.
 */
export const REMOTE_SHARD = 0xffff;

/** Shard tags handed out for deliveries from another node start here (local shards' tags never get near it). */
export const REMOTE_TAG_BASE = 2 ** 51;

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
   * Control records (subscribe, ack, credit, close…) that met a full ring: always kept (they are
   * tiny and must not be lost) and written before anything else, so acks and credit still reach
   * a shard whose publishes are held.
   */
  readonly #control = new Deque<(w: InboundWriter) => boolean>();
  /**
   * Publishes waiting in the main thread, in order: the ring was full, or the shard asked for them
   * to be held (a `flow` record: a subscription that keeps up is past its buffer). Copied; bounded
   * by `overflowLimit` bytes for publishers that can wait (HTTP), by their credit for the others.
   */
  readonly #held = new Deque<(w: InboundWriter) => boolean>();
  readonly #heldBytes = new Deque<number>();
  #overflowBytes = 0;
  #overflowLimit = Infinity;
  #overflowed = 0;
  /** The shard asked for publishes to be held (flow control). */
  #flowHeld = false;
  #flowHolds = 0;
  /** Waiting for the held publishes to drain to half the bound (whenRoom), woken in order. */
  readonly #roomWaiters: Array<() => void> = [];
  #draining = false;
  #commitScheduled = false;
  #pumping = false;
  #alive = false;
  /** Samples publishes for the hop trace (the broker's, shared by every shard), null: none. */
  tracer: HopTrace | null = null;

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

  /** Bytes of publishes the main thread may hold for this shard before refusing publishers that cannot wait for credit. */
  set overflowLimit(bytes: number) {
    this.#overflowLimit = bytes;
  }

  /** Publishes held for this shard (bytes, records), how many ever were, and flow-control holds so far. */
  get overflow(): { bytes: number; records: number; total: number; flowHeld: boolean; flowHolds: number } {
    return {
      bytes: this.#overflowBytes,
      records: this.#held.length,
      total: this.#overflowed,
      flowHeld: this.#flowHeld,
      flowHolds: this.#flowHolds,
    };
  }

  /**
   * True while publishes for this shard are being held (ring full, or flow control): a publisher
   * that is told "done" now would only be told a message waits in main-thread memory.
   */
  get holding(): boolean {
    return this.#flowHeld || this.#held.length > 0;
  }

  /** Room for more held publishes: at most half the bound is in use (publish credit flows while true). */
  get hasRoom(): boolean {
    return this.#overflowBytes * 2 <= this.#overflowLimit;
  }

  /**
   * Writes one publish, or keeps a copy, in order, while publishes are held. With `credited` false
   * (HTTP) the copy must fit the bound, else false: the publisher waits (whenRoom) or is refused.
   * With `credited` true (WebSocket publishes within their credit) it is always kept: the credit
   * the front grants, stopped while !hasRoom, bounds it. `vhost`: InboundWriter.publish's.
   */
  publish(
    connectionId: number,
    token: number,
    exchange: string,
    routingKey: string,
    properties: Uint8Array | null,
    payload: Uint8Array,
    flags = 0,
    credited = false,
    vhost = 0,
  ): boolean {
    if (
      !this.#flowHeld &&
      this.#held.length === 0 &&
      this.#control.length === 0 &&
      this.writer.publish(connectionId, token, exchange, routingKey, properties, payload, flags, vhost)
    ) {
      // Only publishes that go straight in are traced: a held one's wait is flow control, not a hop.
      if (this.tracer?.due()) this.writer.trace(monotonicMs());
      this.scheduleCommit();
      return true;
    }
    const size = payload.byteLength + (properties?.byteLength ?? 0) + 64;
    if (!credited && this.#overflowBytes + size > this.#overflowLimit) return false;
    const p = properties === null ? null : copyBytes(properties);
    const body = copyBytes(payload);
    this.#overflowBytes += size;
    this.#overflowed++;
    this.#held.push((w) => w.publish(connectionId, token, exchange, routingKey, p, body, flags, vhost));
    this.#heldBytes.push(size);
    this.#kick();
    return true;
  }

  /**
   * A control record that must come after every publish written or held before it (a ping that
   * answers "routed", a FLUSH): it joins the held publishes when there are any.
   */
  writeAfterPublishes(write: (w: InboundWriter) => boolean): void {
    if (this.#held.length === 0) {
      this.writeControl(write);
      return;
    }
    this.#held.push(write);
    this.#heldBytes.push(0);
  }

  /**
   * Resolves true once the held publishes have drained to half their bound (room for a publisher
   * that was refused to go on), false after `timeoutMs`. Never blocks: the drain runs on waitAsync.
   */
  whenRoom(timeoutMs: number): Promise<boolean> {
    if (this.hasRoom) return Promise.resolve(true);
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

  /** Calls `wake` once the held publishes are at most half their bound (at once if they are). */
  onRoom(wake: () => void): void {
    if (this.hasRoom) wake();
    else this.#roomWaiters.push(wake);
  }

  /** The shard's flow record: hold publishes (true) or write them again (false). */
  setFlowHeld(held: boolean): void {
    if (held === this.#flowHeld) return;
    this.#flowHeld = held;
    if (held) this.#flowHolds++;
    else this.#kick();
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
   * full it waits, in order with other control records, and is written as soon as there is room.
   */
  writeControl(write: (w: InboundWriter) => boolean): void {
    if (this.#control.length === 0 && write(this.writer)) {
      this.scheduleCommit();
      return;
    }
    this.#control.push(write);
    this.#kick();
  }

  /** True when records go straight into the ring (nothing is waiting). */
  get writable(): boolean {
    return this.#control.length === 0 && this.#held.length === 0;
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

  /** Times the main thread's pump of this shard went to sleep on the empty outbound ring. */
  get pumpParks(): number {
    return this.#outbound.parks;
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

  #kick(): void {
    if (!this.#draining) void this.#drain();
  }

  /** Writes waiting control records, then (unless flow control holds them) held publishes, as the ring makes room. */
  async #drain(): Promise<void> {
    this.#draining = true;
    try {
      for (;;) {
        const control = this.#control;
        while (control.length > 0 && (control.peekFirst() as (w: InboundWriter) => boolean)(this.writer)) control.shift();
        if (control.length === 0 && !this.#flowHeld) {
          const held = this.#held;
          while (held.length > 0 && (held.peekFirst() as (w: InboundWriter) => boolean)(this.writer)) {
            held.shift();
            this.#overflowBytes -= this.#heldBytes.shift() ?? 0;
          }
        }
        this.#inbound.commit();
        if (this.#roomWaiters.length > 0 && this.hasRoom) {
          for (const wake of this.#roomWaiters.splice(0)) wake();
        }
        const blocked = control.length > 0 || (this.#held.length > 0 && !this.#flowHeld);
        // Only held publishes under flow control left: setFlowHeld(false) starts the drain again.
        if (!blocked) return;
        // Never block the main thread: wait for the shard to release space (Atomics.waitAsync).
        await this.#inbound.waitForSpace(50);
      }
    } finally {
      this.#draining = false;
    }
  }
}
