/**
 * Output of the WebSocket sessions, gathered per outbound chunk: the connections a chunk
 * touched are written once each under one cork (JSON frames, then one binary frame), and the
 * subscriptions it delivered to return their credit to the shard once, and only while their
 * socket is below its high-water mark (nats-server's per-read-batch client flush).
 *
 * It also decides which subscribers are slow: a socket that stays above --socket-high-water for
 * --slow-consumer-ms is one whose reader does not keep up (the broker's own lag never fills a
 * socket), and its shards are told (a `slow` record) so its topic subscriptions' policy applies;
 * until then, and when it drains again, a full topic buffer holds the publishers instead.
 */
import type { BinaryFrameWriter } from '../protocol/ws-binary-encode.js';
import type { ControlPort } from '../shard/shard-handle.js';
import type { Connection, WsSubscription } from './ws-connection.js';
import { WriterPool } from './writer-pool.js';

export interface SlowConsumerSettings {
  readonly socketHighWater: number;
  readonly slowConsumerMs: number;
  /** --delivery-window and --delivery-window-bytes: credit goes back in eighths of them (creditDue). */
  readonly deliveryWindow: number;
  readonly deliveryWindowBytes: number;
  /** A connection became slow (true) or keeps up again (false): for logs and counters. */
  readonly onSlow?: (connection: Connection, slow: boolean) => void;
}

/** Credit goes back to a shard once it is this fraction (1/n) of the delivery window. */
const CREDIT_BATCH_DIVISOR = 8;

export class DeliveryFlush {
  readonly #port: (shard: number) => ControlPort;
  readonly #socketHighWater: number;
  readonly #slowConsumerMs: number;
  readonly #onSlow: ((connection: Connection, slow: boolean) => void) | undefined;
  readonly #creditBatch: number;
  readonly #creditBatchBytes: number;
  readonly #touched = new Set<Connection>();
  readonly #touchedSubs = new Set<WsSubscription>();
  /** Writers lent to connections until their flush and to shared streams until their publish. */
  readonly writers = new WriterPool();

  constructor(port: (shard: number) => ControlPort, settings: SlowConsumerSettings) {
    this.#port = port;
    this.#socketHighWater = settings.socketHighWater;
    this.#slowConsumerMs = settings.slowConsumerMs;
    this.#onSlow = settings.onSlow;
    this.#creditBatch = Math.max(1, Math.floor(settings.deliveryWindow / CREDIT_BATCH_DIVISOR));
    this.#creditBatchBytes = Math.max(1, Math.floor(settings.deliveryWindowBytes / CREDIT_BATCH_DIVISOR));
  }

  /**
   * Whether credit owed to a consumer is worth a record to its shard at a chunk's end: once it is an
   * eighth of the delivery window (messages or bytes). A credit record wakes the shard, and at light
   * load one per chunk was a second shard wake-up for every message batch (the hop trace's
   * shard parks doubled). The shard cannot stall on what is held back: it stops only with the whole
   * window outstanding, and then seven eighths are on their way here and will pass the mark.
   */
  creditDue(owed: number, owedBytes: number): boolean {
    return owed >= this.#creditBatch || owedBytes >= this.#creditBatchBytes;
  }

  /**
   * The connection's binary writer for this chunk; the connection is flushed at chunk end. Lent
   * until that flush: a caller keeps it no longer than its own ops, never across a flushConnection.
   */
  writer(connection: Connection): BinaryFrameWriter {
    connection.writer ??= this.writers.take();
    this.#touched.add(connection);
    return connection.writer;
  }

  /** A delivery of `bytes` payload bytes went into `sub`'s connection buffers: flush it and owe the shard its credit. */
  delivered(sub: WsSubscription, bytes: number): void {
    this.#touched.add(sub.connection);
    sub.owedCredit++;
    sub.owedBytes += bytes;
    this.#touchedSubs.add(sub);
  }

  /** Writes everything gathered for one socket under one cork: JSON frames, then one binary frame. */
  flushConnection(connection: Connection): void {
    const { ws, frames, writer } = connection;
    const binary = writer !== null && writer.length > 0 && !connection.closed ? writer.finish() : null;
    if (!connection.closed && (frames.length > 0 || binary !== null)) {
      // uWS copies what it cannot write at once: the writer's bytes are free when send returns.
      ws.cork(() => {
        for (let i = 0; i < frames.length; i++) ws.send(frames[i], false);
        if (binary !== null) ws.send(binary, true);
      });
      frames.length = 0;
    }
    if (writer !== null) {
      connection.writer = null;
      this.writers.give(writer);
    }
  }

  sendText(connection: Connection, frame: string): void {
    if (connection.closed) return;
    connection.frames.push(frame);
    this.flushConnection(connection);
  }

  sendErrorText(connection: Connection, code: string, message: string, receipt?: string): void {
    let frame = `{"op":"error","code":${JSON.stringify(code)},"message":${JSON.stringify(message)}`;
    if (receipt !== undefined) frame += `,"receipt":${JSON.stringify(receipt)}`;
    this.sendText(connection, frame + '}');
  }

  /** End of an outbound chunk: one corked write per touched socket, then credit back to shards. */
  endChunk(): void {
    for (const connection of this.#touched) this.flushConnection(connection);
    this.#touched.clear();
    for (const sub of this.#touchedSubs) {
      // A socket past its high-water mark gets no more credit: the shard keeps the
      // messages in their queue until uWS reports a drain.
      if (!sub.connection.closed && this.sample(sub.connection) && this.creditDue(sub.owedCredit, sub.owedBytes)) this.#returnCredit(sub);
    }
    this.#touchedSubs.clear();
  }

  /** uWS drained the socket: credit owed to its subscriptions goes back, if it is below high water. */
  drained(connection: Connection): void {
    if (connection.closed || !this.sample(connection)) return;
    for (const sub of connection.byNumericId.values()) this.#returnCredit(sub);
  }

  /**
   * Samples the socket (at every chunk end that wrote to it, and every drain; shared streams sample
   * their members the same way): true when it is below high water, so it keeps up, its slow timer
   * stops and a slow verdict is lifted; above, the timer runs. Slow means it stayed above for
   * --slow-consumer-ms with no sample below in between.
   */
  sample(connection: Connection): boolean {
    if (connection.ws.getBufferedAmount() >= this.#socketHighWater) {
      this.#aboveHighWater(connection);
      return false;
    }
    if (connection.slowTimer !== null) {
      clearTimeout(connection.slowTimer);
      connection.slowTimer = null;
    }
    if (connection.slow) this.#setSlow(connection, false);
    return true;
  }

  forgetConnection(connection: Connection): void {
    this.#touched.delete(connection);
    for (const sub of connection.byNumericId.values()) this.#touchedSubs.delete(sub);
    if (connection.slowTimer !== null) clearTimeout(connection.slowTimer);
    connection.slowTimer = null;
    if (connection.writer !== null) {
      this.writers.give(connection.writer);
      connection.writer = null;
    }
  }

  /** The socket is above high water: slow once it stays there past the bound. */
  #aboveHighWater(connection: Connection): void {
    if (connection.slow || connection.slowTimer !== null) return;
    if (this.#slowConsumerMs === 0) {
      this.#setSlow(connection, true);
      return;
    }
    connection.slowTimer = setTimeout(() => {
      connection.slowTimer = null;
      if (!connection.closed && connection.ws.getBufferedAmount() >= this.#socketHighWater) this.#setSlow(connection, true);
    }, this.#slowConsumerMs);
  }

  #setSlow(connection: Connection, slow: boolean): void {
    connection.slow = slow;
    const shards = new Set<number>();
    for (const sub of connection.byNumericId.values()) shards.add(sub.shard);
    for (const s of shards) this.#port(s).writeControl((w) => w.slow(connection.id, slow));
    this.#onSlow?.(connection, slow);
  }

  forgetSubscription(sub: WsSubscription): void {
    this.#touchedSubs.delete(sub);
  }

  #returnCredit(sub: WsSubscription): void {
    const owed = sub.owedCredit;
    if (owed === 0) return;
    const bytes = sub.owedBytes;
    sub.owedCredit = 0;
    sub.owedBytes = 0;
    const { connection } = sub;
    this.#port(sub.shard).writeControl((w) => w.credit(connection.id, sub.numericId, owed, bytes));
  }
}
