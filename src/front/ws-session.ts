/**
 * WebSocket sessions at /v1/ws: the JSON text ops of the contract, subscriptions
 * spread over the shards that can hold their messages, and deliveries written back
 * once per drained chunk (one cork per socket) with credit returned to the shard
 * only while the socket keeps up.
 */
import { isUtf8 } from 'node:buffer';
import type { TemplatedApp, WebSocket } from 'uWebSockets.js';
import type { BrokerContext } from './broker.js';
import { parseClientOp, type ClientOp } from '../protocol/ws-json.js';
import { BrokerError, ErrorCode } from '../protocol/errors.js';
import { DestinationError, DestinationType, parseDestination, type Destination } from '../protocol/destination.js';
import { AckModeCode, ConfirmStatus, NO_TOKEN, RecordKind, newDeliverRecord, type RecordReader } from '../protocol/ring-record-codec.js';
import { isLiteralPattern } from '../router/topic-matcher.js';
import { shardFor } from '../router/shard-map.js';
import { DEFAULT_PREFETCH } from '../config/defaults.js';

/** Above this a socket is closed rather than buffering more (uWS drops silently otherwise). */
const MAX_BACKPRESSURE_BYTES = 64 * 1024 * 1024;
/** Seconds without traffic before uWS closes a socket (it sends pings first). */
const IDLE_TIMEOUT_SECONDS = 120;

interface WsSubscription {
  readonly connection: Connection;
  readonly clientId: string;
  /** JSON-encoded clientId, computed once rather than per delivery. */
  readonly clientIdJson: string;
  readonly numericId: number;
  readonly destination: Destination;
  readonly ackMode: 'auto' | 'client';
  readonly prefetch: number;
  readonly shards: readonly number[];
  /** Deliveries taken from each shard whose credit is not yet returned. */
  readonly owedCredit: number[];
}

interface Connection {
  readonly id: number;
  readonly ws: WebSocket<ConnectionData>;
  readonly byClientId: Map<string, WsSubscription>;
  readonly byNumericId: Map<number, WsSubscription>;
  /** Frames gathered during the current outbound chunk, sent under one cork. */
  readonly frames: string[];
  nextSubscription: number;
  closed: boolean;
}

interface ConnectionData {
  connection?: Connection;
}

export class WsFront {
  readonly #ctx: BrokerContext;
  readonly #connections = new Map<number, Connection>();
  readonly #touched = new Set<Connection>();
  readonly #touchedSubs = new Set<WsSubscription>();
  readonly #deliver = newDeliverRecord();
  #nextConnection = 1;
  #sockets = 0;
  #undeliverable = 0;

  constructor(ctx: BrokerContext) {
    this.#ctx = ctx;
  }

  register(app: TemplatedApp): void {
    app.ws<ConnectionData>('/v1/ws', {
      compression: 0,
      maxPayloadLength: this.#ctx.config.maxFrameBytes,
      maxBackpressure: MAX_BACKPRESSURE_BYTES,
      closeOnBackpressureLimit: 1,
      idleTimeout: IDLE_TIMEOUT_SECONDS,
      open: (ws) => {
        const id = this.#nextConnection;
        // Connection ids are u32 in ring records; 0 is HTTP's.
        this.#nextConnection = this.#nextConnection >= 0xffff_fffe ? 1 : this.#nextConnection + 1;
        const connection: Connection = {
          id,
          ws,
          byClientId: new Map(),
          byNumericId: new Map(),
          frames: [],
          nextSubscription: 1,
          closed: false,
        };
        ws.getUserData().connection = connection;
        this.#connections.set(id, connection);
        this.#sockets++;
      },
      message: (ws, message, isBinary) => {
        const connection = ws.getUserData().connection;
        if (connection === undefined) return;
        if (isBinary) {
          this.#sendError(connection, ErrorCode.unsupported, 'binary frames are the batched protocol, not served by this version; send JSON text frames');
          return;
        }
        // uWS itself fails a text frame that is not UTF-8 (close 1007, RFC 6455 §8.1).
        let op: ClientOp;
        try {
          op = parseClientOp(Buffer.from(message).toString('utf8'));
        } catch (err) {
          this.#sendBrokerError(connection, err);
          return;
        }
        try {
          this.#process(connection, op);
        } catch (err) {
          this.#sendBrokerError(connection, err, op);
        }
      },
      drain: (ws) => {
        const connection = ws.getUserData().connection;
        if (connection !== undefined) this.#returnOwedCredit(connection);
      },
      close: (ws) => {
        const connection = ws.getUserData().connection;
        if (connection === undefined) return;
        connection.closed = true;
        this.#connections.delete(connection.id);
        this.#touched.delete(connection);
        this.#sockets--;
        if (connection.byNumericId.size === 0) return;
        // Tell every shard the connection holds subscriptions on: they drop its consumers
        // and requeue its unacked deliveries (redelivered: true).
        const shards = new Set<number>();
        for (const sub of connection.byNumericId.values()) {
          for (const s of sub.shards) shards.add(s);
          this.#touchedSubs.delete(sub);
        }
        for (const s of shards) this.#ctx.shards[s].writeControl((w) => w.connectionClosed(connection.id));
      },
    });
  }

  stats(): { websocket: number; subscriptions: number; undeliverable: number } {
    let subscriptions = 0;
    for (const c of this.#connections.values()) subscriptions += c.byNumericId.size;
    return { websocket: this.#sockets, subscriptions, undeliverable: this.#undeliverable };
  }

  closeAll(code: number, reason: string): void {
    for (const c of [...this.#connections.values()]) c.ws.end(code, reason);
  }

  // ---- client ops --------------------------------------------------------------------------

  #process(connection: Connection, op: ClientOp): void {
    switch (op.op) {
      case 'subscribe':
        return this.#processSubscribe(connection, op);
      case 'unsubscribe':
        return this.#processUnsubscribe(connection, op.id, op.receipt);
      case 'publish':
        return this.#processPublish(connection, op.destination, op.payload, op.receipt);
      case 'ack':
      case 'nack': {
        const shard = op.tag % this.#ctx.shards.length;
        const kind = op.op === 'ack' ? RecordKind.ack : RecordKind.nack;
        const requeue = op.op === 'nack' && op.requeue;
        this.#ctx.shards[shard].writeControl((w) => w.settle(kind, connection.id, op.tag, requeue));
        return;
      }
    }
  }

  #processSubscribe(connection: Connection, op: Extract<ClientOp, { op: 'subscribe' }>): void {
    if (connection.byClientId.has(op.id)) {
      throw new BrokerError(ErrorCode.duplicateSubscription, `subscription id ${JSON.stringify(op.id)} is already in use on this connection`);
    }
    const destination = this.#parse(op.destination);
    const shardCount = this.#ctx.shards.length;
    let shards: number[];
    if (destination.type === DestinationType.queue) {
      shards = [shardFor(destination.name, shardCount)];
    } else if (isLiteralPattern(destination.name)) {
      shards = [shardFor(destination.name, shardCount)];
    } else {
      // A wildcard pattern can match keys owned by any shard: it is registered on all.
      shards = Array.from({ length: shardCount }, (_, i) => i);
    }
    const sub: WsSubscription = {
      connection,
      clientId: op.id,
      clientIdJson: JSON.stringify(op.id),
      numericId: connection.nextSubscription++,
      destination,
      ackMode: op.ack,
      prefetch: op.ack === 'client' ? (op.prefetch ?? DEFAULT_PREFETCH) : 0,
      shards,
      owedCredit: new Array<number>(shardCount).fill(0),
    };
    connection.byClientId.set(op.id, sub);
    connection.byNumericId.set(sub.numericId, sub);
    for (const s of shards) this.#writeSubscribe(connection, sub, s);
    if (op.receipt !== null) this.#receiptAfter(connection, shards, op.receipt);
  }

  #writeSubscribe(connection: Connection, sub: WsSubscription, shard: number): void {
    const { deliveryWindow } = this.#ctx.config;
    const ackMode = sub.ackMode === 'client' ? AckModeCode.client : AckModeCode.auto;
    const type = sub.destination.type === DestinationType.queue ? DestinationType.queue : DestinationType.topic;
    this.#ctx.shards[shard].writeControl((w) =>
      w.subscribe(connection.id, sub.numericId, type, ackMode, sub.prefetch, deliveryWindow, sub.destination.exchange, sub.destination.name),
    );
  }

  #processUnsubscribe(connection: Connection, id: string, receipt: string | null): void {
    const sub = connection.byClientId.get(id);
    if (sub === undefined) {
      throw new BrokerError(ErrorCode.unknownSubscription, `no subscription ${JSON.stringify(id)} on this connection`);
    }
    connection.byClientId.delete(id);
    connection.byNumericId.delete(sub.numericId);
    this.#touchedSubs.delete(sub);
    for (const s of sub.shards) this.#ctx.shards[s].writeControl((w) => w.unsubscribe(connection.id, sub.numericId));
    if (receipt !== null) this.#receiptAfter(connection, sub.shards, receipt);
  }

  #processPublish(connection: Connection, destinationText: string, payload: Uint8Array, receipt: string | null): void {
    const destination = this.#parse(destinationText);
    const max = this.#ctx.config.maxMessageBytes;
    if (payload.byteLength > max) {
      throw new BrokerError(ErrorCode.tooLarge, `message of ${payload.byteLength} bytes exceeds max-message-bytes ${max}`, 413);
    }
    const shard = this.#ctx.shardOf(destination);
    const handle = this.#ctx.shards[shard];
    const token =
      receipt === null
        ? NO_TOKEN
        : this.#ctx.confirms.allocate([shard], (status) => {
            if (connection.closed) return;
            if (status === ConfirmStatus.ok) this.#send(connection, `{"op":"receipt","receipt":${JSON.stringify(receipt)}}`);
            else if (status === ConfirmStatus.notFound) {
              this.#sendError(connection, ErrorCode.notFound, `no exchange ${JSON.stringify(destination.exchange)}`, receipt);
            } else {
              this.#sendError(connection, ErrorCode.shardUnavailable, `shard ${shard} restarted before confirming; the message may not have been accepted`, receipt);
            }
          });
    if (!handle.writable || !handle.writer.publish(connection.id, token, destination.type, destination.exchange, destination.name, payload)) {
      if (token !== NO_TOKEN) this.#ctx.confirms.fail(token, ConfirmStatus.rejected);
      throw new BrokerError(ErrorCode.saturated, `shard ${shard} is saturated; message not accepted, retry later`, 503);
    }
    handle.scheduleCommit();
  }

  /** Sends a receipt once every listed shard has processed what this connection wrote before it. */
  #receiptAfter(connection: Connection, shards: readonly number[], receipt: string): void {
    const token = this.#ctx.confirms.allocate(shards, (status) => {
      if (connection.closed) return;
      if (status === ConfirmStatus.ok) this.#send(connection, `{"op":"receipt","receipt":${JSON.stringify(receipt)}}`);
      else this.#sendError(connection, ErrorCode.shardUnavailable, 'a shard restarted before confirming', receipt);
    });
    for (const s of shards) this.#ctx.shards[s].writeControl((w) => w.ping(token));
  }

  #parse(text: string): Destination {
    let destination: Destination;
    try {
      destination = parseDestination(text);
    } catch (err) {
      if (err instanceof DestinationError) throw new BrokerError(ErrorCode.badDestination, err.message);
      throw err;
    }
    if (destination.type === DestinationType.exchange && destination.exchange !== 'amq.topic') {
      throw new BrokerError(ErrorCode.notFound, `no exchange ${JSON.stringify(destination.exchange)}`, 404);
    }
    return destination;
  }

  // ---- deliveries from shards --------------------------------------------------------------

  onDeliver(shard: number, offset: number, reader: RecordReader): void {
    const rec = reader.deliver(offset, this.#deliver);
    const connection = this.#connections.get(rec.connectionId);
    const sub = connection?.byNumericId.get(rec.subscriptionId);
    if (connection === undefined || sub === undefined) {
      // The socket or subscription went away while this was in flight; the shard requeues
      // client-ack deliveries when it learns of the close.
      this.#undeliverable++;
      return;
    }
    const buf = reader.buffer;
    const start = rec.payloadOffset;
    const end = start + rec.payloadLength;
    const text = isUtf8(buf.subarray(start, end));
    const payload = text ? JSON.stringify(buf.toString('utf8', start, end)) : `"${buf.toString('base64', start, end)}","encoding":"base64"`;
    const destination = rec.type === DestinationType.queue ? '/queue/' + rec.key : '/topic/' + rec.key;
    connection.frames.push(
      `{"op":"message","subscription":${sub.clientIdJson},"destination":${JSON.stringify(destination)},"tag":${rec.tag},"redelivered":${rec.redelivered},"payload":${payload}}`,
    );
    this.#touched.add(connection);
    sub.owedCredit[shard]++;
    this.#touchedSubs.add(sub);
  }

  onShardError(connectionId: number, subscriptionId: number, code: string, message: string): void {
    const connection = this.#connections.get(connectionId);
    if (connection === undefined) return;
    const sub = connection.byNumericId.get(subscriptionId);
    const extra = sub === undefined ? '' : `,"subscription":${sub.clientIdJson}`;
    this.#send(connection, `{"op":"error","code":${JSON.stringify(code)},"message":${JSON.stringify(message)}${extra}}`);
  }

  /** End of an outbound chunk: one corked write per touched socket, then credit back to shards. */
  flush(_shard: number): void {
    for (const connection of this.#touched) {
      const { ws, frames } = connection;
      ws.cork(() => {
        for (let i = 0; i < frames.length; i++) ws.send(frames[i], false);
      });
      frames.length = 0;
    }
    this.#touched.clear();
    const highWater = this.#ctx.config.socketHighWater;
    for (const sub of this.#touchedSubs) {
      const { connection } = sub;
      if (connection.closed) continue;
      // A socket past its high-water mark gets no more credit: the shard keeps the
      // messages in their queue until uWS reports a drain.
      if (connection.ws.getBufferedAmount() < highWater) this.#returnCredit(connection, sub);
    }
    this.#touchedSubs.clear();
  }

  #returnOwedCredit(connection: Connection): void {
    if (connection.ws.getBufferedAmount() >= this.#ctx.config.socketHighWater) return;
    for (const sub of connection.byNumericId.values()) this.#returnCredit(connection, sub);
  }

  #returnCredit(connection: Connection, sub: WsSubscription): void {
    for (let s = 0; s < sub.owedCredit.length; s++) {
      const owed = sub.owedCredit[s];
      if (owed === 0) continue;
      sub.owedCredit[s] = 0;
      this.#ctx.shards[s].writeControl((w) => w.credit(connection.id, sub.numericId, owed));
    }
  }

  // ---- shard faults ------------------------------------------------------------------------

  onShardCrash(shard: number): void {
    for (const connection of this.#connections.values()) {
      for (const sub of connection.byNumericId.values()) {
        if (!sub.shards.includes(shard)) continue;
        sub.owedCredit[shard] = 0;
        this.#sendError(
          connection,
          ErrorCode.shardRestarted,
          `shard ${shard} died; unacked deliveries from it are void and it is being restarted; the subscription is restored when it is back`,
          undefined,
          sub.clientIdJson,
        );
      }
    }
  }

  onShardRestart(shard: number): void {
    // Subscriptions outlive a shard thread: register them again on the new one.
    for (const connection of this.#connections.values()) {
      for (const sub of connection.byNumericId.values()) {
        if (sub.shards.includes(shard)) this.#writeSubscribe(connection, sub, shard);
      }
    }
  }

  // ---- output helpers ----------------------------------------------------------------------

  #send(connection: Connection, frame: string): void {
    if (connection.closed) return;
    connection.ws.cork(() => connection.ws.send(frame, false));
  }

  #sendError(connection: Connection, code: string, message: string, receipt?: string, subscriptionJson?: string): void {
    let frame = `{"op":"error","code":${JSON.stringify(code)},"message":${JSON.stringify(message)}`;
    if (receipt !== undefined) frame += `,"receipt":${JSON.stringify(receipt)}`;
    if (subscriptionJson !== undefined) frame += `,"subscription":${subscriptionJson}`;
    this.#send(connection, frame + '}');
  }

  #sendBrokerError(connection: Connection, err: unknown, op?: ClientOp): void {
    const receipt = op !== undefined && 'receipt' in op && op.receipt !== null ? op.receipt : undefined;
    if (err instanceof BrokerError) {
      this.#sendError(connection, err.code, err.message, receipt);
      return;
    }
    this.#ctx.log.error({ err, connection: connection.id }, 'unexpected error handling a WebSocket frame');
    this.#sendError(connection, ErrorCode.internal, 'internal error; see the broker log', receipt);
  }
}
