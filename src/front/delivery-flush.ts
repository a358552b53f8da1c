/**
 * Output of the WebSocket sessions, gathered per outbound chunk: the connections a chunk
 * touched are written once each under one cork (JSON frames, then one binary frame), and the
 * subscriptions it delivered to return their credit to the shard once, and only while their
 * socket is below its high-water mark (nats-server's per-read-batch client flush).
 */
import { BinaryFrameWriter } from '../protocol/ws-binary-encode.js';
import type { ShardHandle } from '../shard/shard-handle.js';
import type { Connection, WsSubscription } from './ws-connection.js';

export class DeliveryFlush {
  readonly #shards: readonly ShardHandle[];
  readonly #socketHighWater: number;
  readonly #touched = new Set<Connection>();
  readonly #touchedSubs = new Set<WsSubscription>();

  constructor(shards: readonly ShardHandle[], socketHighWater: number) {
    this.#shards = shards;
    this.#socketHighWater = socketHighWater;
  }

  /** The connection's binary writer for this chunk; the connection is flushed at chunk end. */
  writer(connection: Connection): BinaryFrameWriter {
    connection.writer ??= new BinaryFrameWriter();
    this.#touched.add(connection);
    return connection.writer;
  }

  /** A delivery went into `sub`'s connection buffers: flush it and owe the shard one credit. */
  delivered(sub: WsSubscription): void {
    this.#touched.add(sub.connection);
    sub.owedCredit++;
    this.#touchedSubs.add(sub);
  }

  /** Writes everything gathered for one socket under one cork: JSON frames, then one binary frame. */
  flushConnection(connection: Connection): void {
    if (connection.closed) return;
    const { ws, frames, writer } = connection;
    const binary = writer !== null && writer.length > 0 ? writer.finish() : null;
    if (frames.length === 0 && binary === null) return;
    ws.cork(() => {
      for (let i = 0; i < frames.length; i++) ws.send(frames[i], false);
      if (binary !== null) ws.send(binary, true);
    });
    frames.length = 0;
    writer?.reset();
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
      if (!sub.connection.closed && sub.connection.ws.getBufferedAmount() < this.#socketHighWater) this.#returnCredit(sub);
    }
    this.#touchedSubs.clear();
  }

  /** uWS drained the socket: credit owed to its subscriptions goes back, if it is below high water. */
  drained(connection: Connection): void {
    if (connection.ws.getBufferedAmount() >= this.#socketHighWater) return;
    for (const sub of connection.byNumericId.values()) this.#returnCredit(sub);
  }

  forgetConnection(connection: Connection): void {
    this.#touched.delete(connection);
    for (const sub of connection.byNumericId.values()) this.#touchedSubs.delete(sub);
  }

  forgetSubscription(sub: WsSubscription): void {
    this.#touchedSubs.delete(sub);
  }

  #returnCredit(sub: WsSubscription): void {
    const owed = sub.owedCredit;
    if (owed === 0) return;
    sub.owedCredit = 0;
    const { connection } = sub;
    this.#shards[sub.shard].writeControl((w) => w.credit(connection.id, sub.numericId, owed));
  }
}
