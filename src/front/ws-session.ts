/**
 * WebSocket sessions at /v1/ws. Text frames are the JSON ops of the contract; binary
 * frames are the batched protocol (docs/protocol.md). A subscription is a consumer on
 * one queue: `/queue/<name>` consumes that queue, `/topic/<pattern>` and
 * `/exchange/<x>/<pattern>` consume a private server-named queue bound to the exchange.
 * Deliveries are gathered per socket while an outbound chunk drains and written under
 * one cork; credit goes back to the shard only while the socket keeps up.
 */
import type { TemplatedApp, WebSocket } from 'uWebSockets.js';
import { isUtf8 } from 'node:buffer';
import type { BrokerContext } from './broker.js';
import { ClientOpError, parseClientOp, type ClientOp } from '../protocol/ws-json.js';
import { BrokerError, ErrorCode } from '../protocol/errors.js';
import { DestinationError, DestinationType, formatDestination, parseDestination, type Destination } from '../protocol/destination.js';
import { AckModeCode, ConfirmStatus, NO_TOKEN, RecordKind, newDeliverRecord, type RecordReader } from '../protocol/ring-record-codec.js';
import { decodeProperties, PropertyFlag } from '../protocol/properties.js';
import { checkMessageProperties, encodeCheckedProperties } from '../protocol/property-rules.js';
import { propertiesToJson } from '../protocol/json-properties.js';
import { BinaryDecoder, Direction } from '../protocol/ws-binary-decode.js';
import { BinaryFrameWriter } from '../protocol/ws-binary-encode.js';
import { Opcode, ProtocolError } from '../protocol/ws-binary.js';
import type * as Bin from '../protocol/ws-binary.js';
import { DeliveryTags } from '../control/delivery-tags.js';
import { DEFAULT_PREFETCH } from '../config/defaults.js';
import { ANONYMOUS, tokenFrom, type Principal } from '../control/auth.js';
import { withBrokerErrors } from '../control/router-errors.js';
import type { PublishTarget } from '../control/publish-path.js';

/** Above this a socket is closed rather than buffering more (uWS drops silently otherwise). */
const MAX_BACKPRESSURE_BYTES = 64 * 1024 * 1024;
/** WebSocket close codes (RFC 6455 §7.4.1). */
const CLOSE_PROTOCOL_ERROR = 1002;
const CLOSE_POLICY = 1008;
const CLOSE_TOO_BIG = 1009;
/** The subprotocol of the binary protocol (docs/protocol.md); optional for clients. */
const SUBPROTOCOL = 'shardmq.v1';
/** uWS's own frame limit, as a multiple of max-frame-bytes (see register()). */
const UWS_FRAME_HEADROOM = 4;
/** Connections listed one by one in /v1/stats. */
const MAX_STATS_CONNECTIONS = 1000;

interface WsSubscription {
  readonly connection: Connection;
  /** The client's id: a string for JSON subscriptions, the u32 for binary ones. */
  readonly clientId: string | number;
  /** JSON-encoded client id, computed once rather than per delivery. */
  readonly clientIdJson: string;
  /** Connection-unique id used in ring records. */
  readonly numericId: number;
  readonly binary: boolean;
  readonly destination: Destination;
  readonly queue: string;
  readonly shard: number;
  /** A server-named queue of this subscription alone, deleted with it. */
  readonly privateQueue: boolean;
  readonly ackMode: 'auto' | 'client';
  readonly prefetch: number;
  /** Deliveries taken from the shard whose credit is not yet returned. */
  owedCredit: number;
}

interface Connection {
  readonly id: number;
  readonly principal: Principal;
  readonly ws: WebSocket<ConnectionData>;
  readonly jsonSubs: Map<string, WsSubscription>;
  readonly binarySubs: Map<number, WsSubscription>;
  readonly byNumericId: Map<number, WsSubscription>;
  readonly tags: DeliveryTags;
  /** JSON frames gathered during the current outbound chunk, sent under one cork. */
  readonly frames: string[];
  /** Binary ops gathered during the current chunk (one frame per chunk), created on first use. */
  writer: BinaryFrameWriter | null;
  decoder: BinaryDecoder | null;
  /** Publisher confirms (binary CONFIRM_SELECT): the last sequence number given out. */
  confirmSeq: number;
  confirming: boolean;
  /** Sequence numbers waiting for a shard confirm; while any, confirms are sent one by one. */
  pendingSeqs: number;
  /** Immediate confirms of the current frame: send one CONFIRM multiple up to here at its end. */
  confirmUpTo: number;
  nextSubscription: number;
  closed: boolean;
}

interface ConnectionData {
  connection?: Connection;
  principal?: Principal;
}

export class WsFront {
  readonly #ctx: BrokerContext;
  readonly #connections = new Map<number, Connection>();
  readonly #touched = new Set<Connection>();
  readonly #touchedSubs = new Set<WsSubscription>();
  readonly #deliver = newDeliverRecord();
  #nextConnection = 1;
  #undeliverable = 0;
  #slowConsumerClosed = 0;

  constructor(ctx: BrokerContext) {
    this.#ctx = ctx;
  }

  register(app: TemplatedApp): void {
    app.ws<ConnectionData>('/v1/ws', {
      compression: 0,
      // uWS cuts frames above its limit without a close frame (1006 at the client). Give it
      // headroom and enforce max-frame-bytes here, so an oversized frame gets a precise 1009.
      maxPayloadLength: this.#ctx.config.maxFrameBytes * UWS_FRAME_HEADROOM,
      maxBackpressure: MAX_BACKPRESSURE_BYTES,
      closeOnBackpressureLimit: 1,
      idleTimeout: this.#ctx.config.idleTimeoutS,
      upgrade: (res, req, context) => {
        // Headers live only during this callback: read everything first.
        const key = req.getHeader('sec-websocket-key');
        const protocols = req.getHeader('sec-websocket-protocol');
        const extensions = req.getHeader('sec-websocket-extensions');
        const principal = this.#ctx.auth.authenticate(tokenFrom(req.getHeader('authorization'), req.getQuery('token')));
        const refuse = (status: string, code: string, message: string): void => {
          res.cork(() => res.writeStatus(status).writeHeader('content-type', 'application/json').end(JSON.stringify({ error: code, message })));
        };
        if (principal === null) {
          refuse('401 Unauthorized', ErrorCode.unauthorized, 'missing or invalid token (Authorization: Bearer <token>, or ?token=)');
          return;
        }
        if (this.#connections.size >= this.#ctx.config.maxConnections) {
          refuse('503 Service Unavailable', ErrorCode.limitExceeded, `the broker holds max-connections ${this.#ctx.config.maxConnections} connections`);
          return;
        }
        const protocol = protocols.split(',').some((p) => p.trim() === SUBPROTOCOL) ? SUBPROTOCOL : '';
        res.upgrade<ConnectionData>({ principal }, key, protocol, extensions, context);
      },
      open: (ws) => this.#open(ws),
      message: (ws, message, isBinary) => {
        const connection = ws.getUserData().connection;
        if (connection === undefined || connection.closed) return;
        if (message.byteLength > this.#ctx.config.maxFrameBytes) {
          ws.end(CLOSE_TOO_BIG, `frame of ${message.byteLength} bytes exceeds max-frame-bytes ${this.#ctx.config.maxFrameBytes}`);
          return;
        }
        if (isBinary) this.#binaryFrame(connection, new Uint8Array(message));
        else this.#textFrame(connection, message);
      },
      drain: (ws) => {
        const connection = ws.getUserData().connection;
        if (connection !== undefined) this.#returnOwedCredit(connection);
      },
      close: (ws) => {
        const connection = ws.getUserData().connection;
        if (connection !== undefined) this.#close(connection);
      },
    });
  }

  /** The connections `principal` holds, with their subscriptions (bounded like stats()). */
  connectionsOf(principal: Principal): Array<Record<string, unknown>> {
    const out: Array<Record<string, unknown>> = [];
    for (const c of this.#connections.values()) {
      if (c.principal !== principal || out.length >= MAX_STATS_CONNECTIONS) continue;
      const subscriptions = [...c.byNumericId.values()].map((s) => ({
        id: s.clientId,
        destination: formatDestination(s.destination.type, s.destination.exchange, s.destination.name),
        queue: s.queue,
        ack: s.ackMode,
      }));
      out.push({ id: c.id, bufferedBytes: c.ws.getBufferedAmount(), unacked: c.tags.open, subscriptions });
    }
    return out;
  }

  stats(): {
    websocket: number;
    subscriptions: number;
    undeliverable: number;
    slowConsumerClosed: number;
    connections: Array<{ id: number; user: string; bufferedBytes: number; subscriptions: number; unacked: number; owedCredit: number }>;
  } {
    let subscriptions = 0;
    const connections = [];
    for (const c of this.#connections.values()) {
      subscriptions += c.byNumericId.size;
      // Bounded: a stats call must not build megabytes for a broker with many connections.
      if (connections.length < MAX_STATS_CONNECTIONS) {
        let owed = 0;
        for (const sub of c.byNumericId.values()) owed += sub.owedCredit;
        connections.push({ id: c.id, user: c.principal.name, bufferedBytes: c.ws.getBufferedAmount(), subscriptions: c.byNumericId.size, unacked: c.tags.open, owedCredit: owed });
      }
    }
    return { websocket: this.#connections.size, subscriptions, undeliverable: this.#undeliverable, slowConsumerClosed: this.#slowConsumerClosed, connections };
  }

  closeAll(code: number, reason: string): void {
    for (const c of [...this.#connections.values()]) c.ws.end(code, reason);
  }

  #open(ws: WebSocket<ConnectionData>): void {
    const id = this.#nextConnection;
    // Connection ids are u32 in ring records; 0 is HTTP's.
    this.#nextConnection = this.#nextConnection >= 0xffff_fffe ? 1 : this.#nextConnection + 1;
    const connection: Connection = {
      id,
      principal: ws.getUserData().principal ?? ANONYMOUS,
      ws,
      jsonSubs: new Map(),
      binarySubs: new Map(),
      byNumericId: new Map(),
      tags: new DeliveryTags(),
      frames: [],
      writer: null,
      decoder: null,
      confirmSeq: 0,
      confirming: false,
      pendingSeqs: 0,
      confirmUpTo: 0,
      nextSubscription: 1,
      closed: false,
    };
    ws.getUserData().connection = connection;
    this.#connections.set(id, connection);
  }

  #close(connection: Connection): void {
    connection.closed = true;
    this.#connections.delete(connection.id);
    this.#touched.delete(connection);
    const shards = new Set<number>();
    for (const sub of connection.byNumericId.values()) {
      shards.add(sub.shard);
      this.#touchedSubs.delete(sub);
    }
    // Every shard the connection consumes from drops its consumers and requeues its unacked
    // deliveries (redelivered: true); its exclusive queues go with it.
    for (const s of shards) this.#ctx.shards[s].writeControl((w) => w.connectionClosed(connection.id));
    for (const q of this.#ctx.topology.exclusiveQueuesOf(connection.id)) this.#dropQueue(q.name, q.shard);
  }

  /** Forgets a queue on the main thread at once (routing stops) and deletes it on its shard. */
  #dropQueue(name: string, shard: number): void {
    void this.#ctx.management.forgetQueue(name);
    this.#ctx.shards[shard].writeControl((w) => w.manage(0, NO_TOKEN, { op: 'deleteQueue', name, ifUnused: false, ifEmpty: false }));
  }

  // ---- JSON text frames --------------------------------------------------------------------

  #textFrame(connection: Connection, message: ArrayBuffer): void {
    // uWS itself fails a text frame that is not UTF-8 (RFC 6455 §8.1), so this decodes cleanly.
    let op: ClientOp;
    try {
      op = parseClientOp(Buffer.from(message).toString('utf8'));
    } catch (err) {
      this.#sendJsonError(connection, err);
      return;
    }
    try {
      this.#processJson(connection, op);
    } catch (err) {
      this.#sendJsonError(connection, err, op);
    }
  }

  #processJson(connection: Connection, op: ClientOp): void {
    switch (op.op) {
      case 'subscribe': {
        if (connection.jsonSubs.has(op.id)) {
          throw new BrokerError(ErrorCode.duplicateSubscription, `subscription id ${JSON.stringify(op.id)} is already in use on this connection`);
        }
        const prefetch = op.ack === 'client' ? (op.prefetch ?? DEFAULT_PREFETCH) : 0;
        const sub = this.#subscribe(connection, op.id, false, op.destination, op.ack, prefetch);
        if (op.receipt !== null) this.#receiptAfter(connection, sub.shard, op.receipt);
        return;
      }
      case 'unsubscribe': {
        const sub = connection.jsonSubs.get(op.id);
        if (sub === undefined) throw new BrokerError(ErrorCode.unknownSubscription, `no subscription ${JSON.stringify(op.id)} on this connection`);
        this.#unsubscribe(sub);
        if (op.receipt !== null) this.#receiptAfter(connection, sub.shard, op.receipt);
        return;
      }
      case 'publish': {
        const receipt = op.receipt;
        const properties = op.properties === null ? null : encodeCheckedProperties(op.properties);
        this.#publish(connection, op.destination, properties, op.payload, (status) => {
          if (receipt === null) return;
          if (status === ConfirmStatus.ok) this.#sendText(connection, `{"op":"receipt","receipt":${JSON.stringify(receipt)}}`);
          else this.#sendErrorText(connection, ...refusal(status), receipt);
        });
        return;
      }
      case 'ack':
      case 'nack':
        if (!this.#settle(connection, op.tag, op.multiple, op.op === 'ack', op.op === 'nack' && op.requeue)) {
          throw new BrokerError(ErrorCode.unknownTag, `delivery tag ${op.tag} is not an unacked delivery of this connection`);
        }
        return;
    }
  }

  // ---- binary frames -----------------------------------------------------------------------

  #binaryFrame(connection: Connection, bytes: Uint8Array): void {
    connection.decoder ??= new BinaryDecoder(Direction.toServer, this.#binaryDispatcher(connection), {
      maxOpBodyBytes: this.#ctx.config.maxFrameBytes,
    });
    connection.confirmUpTo = 0;
    try {
      connection.decoder.decodeFrame(bytes);
    } catch (err) {
      if (err instanceof ProtocolError) {
        // A length-prefixed stream cannot resynchronise: say why, then close (docs/protocol.md).
        const writer = this.#writer(connection);
        writer.error(0, err.code, err.message);
        this.#flushConnection(connection);
        connection.ws.end(err.code === 'too_large' ? CLOSE_TOO_BIG : CLOSE_PROTOCOL_ERROR, err.code);
        return;
      }
      throw err;
    } finally {
      if (connection.confirmUpTo > 0 && !connection.closed) {
        this.#writer(connection).confirm(connection.confirmUpTo, true, false);
        connection.confirmUpTo = 0;
      }
    }
    this.#flushConnection(connection);
  }

  #binaryDispatcher(connection: Connection): Bin.BinaryDispatcher {
    const manage = (requestId: number, op: Opcode, work: () => Promise<Bin.OkEvent | void> | void): void =>
      answer(requestId, op, () => {
        if (!connection.principal.canManage) {
          this.#ctx.log.warn({ user: connection.principal.name, op }, 'management op denied');
          throw new BrokerError(ErrorCode.accessRefused, `user ${connection.principal.name} may not manage the broker`);
        }
        return work();
      });
    const answer = (requestId: number, op: Opcode, work: () => Promise<Bin.OkEvent | void> | void): void => {
      const fail = (err: unknown): void => {
        const e = toBrokerError(err, this.#ctx);
        this.#writer(connection).error(requestId, e.code, e.message);
        this.#flushConnection(connection);
      };
      try {
        const result = work();
        if (result instanceof Promise) {
          result.then((r) => {
            if (connection.closed || requestId === 0) return;
            this.#writer(connection).ok(requestId, op, r ?? undefined);
            this.#flushConnection(connection);
          }, fail);
        } else if (requestId !== 0) {
          this.#writer(connection).ok(requestId, op);
        }
      } catch (err) {
        fail(err);
      }
    };
    const mgmt = this.#ctx.management;
    return {
      processPublish: (ev) => this.#binaryPublish(connection, ev.destination, ev.properties, [ev.payload]),
      processPublishBatch: (ev) => this.#binaryPublish(connection, ev.destination, ev.properties, ev.payloads),
      processConfirmSelect: (ev) =>
        answer(ev.requestId, Opcode.CONFIRM_SELECT, () => {
          connection.confirming = true;
        }),
      processSubscribe: (ev) =>
        answer(ev.requestId, Opcode.SUBSCRIBE, () => {
          if (connection.binarySubs.has(ev.subscriptionId)) {
            throw new BrokerError(ErrorCode.duplicateSubscription, `subscription id ${ev.subscriptionId} is already in use on this connection`);
          }
          const sub = this.#subscribe(connection, ev.subscriptionId, true, ev.destination, ev.ackMode, ev.prefetch);
          // The OK goes out once the shard has the consumer (a ping behind the subscribe).
          return this.#pingShard(sub.shard).then(() => undefined);
        }),
      processUnsubscribe: (ev) =>
        answer(ev.requestId, Opcode.UNSUBSCRIBE, () => {
          const sub = connection.binarySubs.get(ev.subscriptionId);
          if (sub === undefined) throw new BrokerError(ErrorCode.unknownSubscription, `no subscription ${ev.subscriptionId} on this connection`);
          this.#unsubscribe(sub);
          return this.#pingShard(sub.shard).then(() => undefined);
        }),
      processAck: (ev) => {
        if (!this.#settle(connection, ev.tag, ev.multiple, true, false)) {
          this.#writer(connection).error(0, ErrorCode.unknownTag, `delivery tag ${ev.tag} is not an unacked delivery of this connection`);
        }
      },
      processNack: (ev) => {
        if (!this.#settle(connection, ev.tag, ev.multiple, false, ev.requeue)) {
          this.#writer(connection).error(0, ErrorCode.unknownTag, `delivery tag ${ev.tag} is not an unacked delivery of this connection`);
        }
      },
      processDeclareExchange: (ev) =>
        manage(ev.requestId, Opcode.DECLARE_EXCHANGE, async () => {
          await mgmt.declareExchange({ ...ev, arguments: ev.arguments as Record<string, unknown> });
        }),
      processDeleteExchange: (ev) =>
        manage(ev.requestId, Opcode.DELETE_EXCHANGE, async () => {
          await mgmt.deleteExchange(ev.name, ev.ifUnused);
        }),
      processDeclareQueue: (ev) =>
        manage(ev.requestId, Opcode.DECLARE_QUEUE, async () => {
          const ok = await mgmt.declareQueue({ ...ev, arguments: ev.arguments as Record<string, unknown> }, connection.id);
          return { requestId: ev.requestId, op: Opcode.DECLARE_QUEUE, name: ok.queue, messageCount: ok.messageCount, consumerCount: ok.consumerCount };
        }),
      processDeleteQueue: (ev) =>
        manage(ev.requestId, Opcode.DELETE_QUEUE, async () => {
          const ok = await mgmt.deleteQueue(ev.name, ev.ifUnused, ev.ifEmpty, connection.id);
          return { requestId: ev.requestId, op: Opcode.DELETE_QUEUE, name: ev.name, messageCount: ok.messageCount, consumerCount: 0 };
        }),
      processPurgeQueue: (ev) =>
        manage(ev.requestId, Opcode.PURGE_QUEUE, async () => {
          const ok = await mgmt.purgeQueue(ev.name);
          return { requestId: ev.requestId, op: Opcode.PURGE_QUEUE, name: ev.name, messageCount: ok.messageCount, consumerCount: 0 };
        }),
      processBindQueue: (ev) =>
        manage(ev.requestId, Opcode.BIND_QUEUE, () => mgmt.bindQueue(ev.exchange, ev.queue, ev.routingKey, ev.arguments as Record<string, unknown>, connection.principal)),
      processUnbindQueue: (ev) =>
        manage(ev.requestId, Opcode.UNBIND_QUEUE, () => mgmt.unbindQueue(ev.exchange, ev.queue, ev.routingKey, ev.arguments as Record<string, unknown>)),
      processBindExchange: (ev) =>
        manage(ev.requestId, Opcode.BIND_EXCHANGE, () => mgmt.bindExchange(ev.destination, ev.source, ev.routingKey, ev.arguments as Record<string, unknown>, connection.principal)),
      processUnbindExchange: (ev) =>
        manage(ev.requestId, Opcode.UNBIND_EXCHANGE, () => mgmt.unbindExchange(ev.destination, ev.source, ev.routingKey, ev.arguments as Record<string, unknown>)),
    };
  }

  #binaryPublish(connection: Connection, destinationText: string, properties: Uint8Array | null, payloads: readonly Uint8Array[]): void {
    const first = connection.confirming ? connection.confirmSeq + 1 : 0;
    if (connection.confirming) connection.confirmSeq += payloads.length;
    const last = connection.confirmSeq;
    const report = (status: ConfirmStatus, immediate: boolean): void => {
      if (connection.closed) return;
      if (status !== ConfirmStatus.ok) this.#writer(connection).error(0, ...refusal(status));
      if (!connection.confirming || first === 0) {
        if (!immediate) this.#flushConnection(connection);
        return;
      }
      const writer = this.#writer(connection);
      if (immediate && status === ConfirmStatus.ok && connection.pendingSeqs === 0) {
        connection.confirmUpTo = last;
        return;
      }
      if (connection.confirmUpTo > 0) {
        writer.confirm(connection.confirmUpTo, true, false);
        connection.confirmUpTo = 0;
      }
      for (let seq = first; seq <= last; seq++) writer.confirm(seq, false, status !== ConfirmStatus.ok);
      if (!immediate) {
        connection.pendingSeqs -= last - first + 1;
        this.#flushConnection(connection);
      }
    };
    let target: PublishTarget;
    try {
      if (properties !== null) checkPropertiesBlock(properties);
      target = this.#target(destinationText, connection);
    } catch (err) {
      const e = toBrokerError(err, this.#ctx);
      if (connection.confirming && first > 0) for (let seq = first; seq <= last; seq++) this.#writer(connection).confirm(seq, false, true);
      this.#writer(connection).error(0, e.code, e.message);
      return;
    }
    const max = this.#ctx.config.maxMessageBytes - (properties?.byteLength ?? 0);
    for (const p of payloads) {
      if (p.byteLength > max) {
        if (first > 0) for (let seq = first; seq <= last; seq++) this.#writer(connection).confirm(seq, false, true);
        this.#writer(connection).error(0, ErrorCode.tooLarge, `message of ${p.byteLength} bytes exceeds max-message-bytes ${this.#ctx.config.maxMessageBytes}`);
        return;
      }
    }
    const wantToken = target.confirmFromShard && target.shards.length > 0 && first > 0;
    if (wantToken) connection.pendingSeqs += last - first + 1;
    const token = wantToken ? this.#ctx.confirms.allocate(target.shards, (status) => report(status, false)) : NO_TOKEN;
    for (let i = 0; i < payloads.length; i++) {
      const t = i === payloads.length - 1 ? token : NO_TOKEN;
      if (this.#ctx.publisher.write(target, connection.id, t, properties, payloads[i]) < target.shards.length) {
        if (token !== NO_TOKEN) this.#ctx.confirms.fail(token, ConfirmStatus.rejected);
        else report(ConfirmStatus.rejected, true);
        return;
      }
    }
    if (token === NO_TOKEN) report(ConfirmStatus.ok, true);
  }

  // ---- shared op logic ---------------------------------------------------------------------

  #target(destinationText: string, connection: Connection): PublishTarget {
    const destination = this.#parse(destinationText);
    const canonical = formatDestination(destination.type, destination.exchange, destination.name);
    if (!connection.principal.canPublish(canonical)) {
      this.#ctx.log.warn({ user: connection.principal.name, destination: canonical }, 'publish denied');
      throw new BrokerError(ErrorCode.accessRefused, `user ${connection.principal.name} may not publish to ${canonical}`);
    }
    return this.#ctx.publisher.target(destination);
  }

  /** Publishes one message; `done` gets the outcome once the broker holds it (or refused it). */
  #publish(connection: Connection, destinationText: string, properties: Uint8Array | null, payload: Uint8Array, done: (s: ConfirmStatus) => void): void {
    const max = this.#ctx.config.maxMessageBytes;
    if (payload.byteLength + (properties?.byteLength ?? 0) > max) {
      throw new BrokerError(ErrorCode.tooLarge, `message of ${payload.byteLength} bytes exceeds max-message-bytes ${max}`, 413);
    }
    const target = this.#target(destinationText, connection);
    const token = target.confirmFromShard && target.shards.length > 0 ? this.#ctx.confirms.allocate(target.shards, done) : NO_TOKEN;
    if (this.#ctx.publisher.write(target, connection.id, token, properties, payload) < target.shards.length) {
      if (token !== NO_TOKEN) this.#ctx.confirms.fail(token, ConfirmStatus.rejected);
      throw new BrokerError(ErrorCode.saturated, 'the broker is saturated; message not accepted, retry later', 503);
    }
    // Held once it is in the rings (they outlive a shard thread), unless a shard must confirm.
    if (token === NO_TOKEN) done(ConfirmStatus.ok);
  }

  /**
   * Creates a consumer: on the named queue for `/queue/`, or on a private server-named
   * queue bound to the exchange for `/topic/` and `/exchange/`. Everything is written to the
   * queue's shard in order (declare, bind, subscribe), so nothing waits for an answer.
   */
  #subscribe(connection: Connection, clientId: string | number, binary: boolean, destinationText: string, ackMode: 'auto' | 'client', prefetch: number): WsSubscription {
    const destination = this.#parse(destinationText);
    const max = this.#ctx.config.maxSubscriptions;
    if (connection.byNumericId.size >= max) {
      throw new BrokerError(ErrorCode.limitExceeded, `this connection already holds max-subscriptions ${max} subscriptions`);
    }
    const canonical = formatDestination(destination.type, destination.exchange, destination.name);
    if (!connection.principal.canSubscribe(canonical)) {
      this.#ctx.log.warn({ user: connection.principal.name, destination: canonical }, 'subscribe denied');
      throw new BrokerError(ErrorCode.accessRefused, `user ${connection.principal.name} may not subscribe to ${canonical}`);
    }
    const { topology, publisher, shards, config } = this.#ctx;
    let queue: string;
    let shard: number;
    let privateQueue = false;
    if (destination.type === DestinationType.queue) {
      if (destination.declare) shard = publisher.ensureQueue(destination.name);
      else {
        const existing = topology.getQueue(destination.name);
        if (existing === undefined) throw new BrokerError(ErrorCode.notFound, `no queue '${destination.name}' in vhost '/'`);
        if (existing.exclusive && existing.owner !== connection.id) {
          throw new BrokerError(ErrorCode.resourceLocked, `cannot obtain exclusive access to locked queue '${destination.name}' in vhost '/'`);
        }
        shard = existing.shard;
      }
      queue = destination.name;
    } else {
      // RabbitMQ's STOMP plugin does the same: a private queue per subscription, bounded here
      // by --topic-buffer (drop-head) so a subscriber that does not keep up costs bounded memory.
      const args: Record<string, unknown> = { 'x-max-length': config.topicBuffer };
      if (config.slowConsumer === 'disconnect') args['x-shardmq-slow-consumer'] = 'disconnect';
      const created = withBrokerErrors(() => topology.declareQueue('', { durable: false, exclusive: true, autoDelete: true, arguments: args }, false, connection.id));
      queue = created.queue.name;
      shard = created.queue.shard;
      try {
        withBrokerErrors(() => topology.registry.bindQueue(destination.exchange, queue, destination.name, {}));
      } catch (err) {
        topology.removeQueue(queue);
        throw err;
      }
      privateQueue = true;
      const handle = shards[shard];
      const exchange = destination.exchange;
      const pattern = destination.name;
      handle.writeControl((w) => w.manage(0, NO_TOKEN, { op: 'declareQueue', name: queue, durable: false, exclusive: true, autoDelete: true, arguments: args }));
      handle.writeControl((w) => w.manage(0, NO_TOKEN, { op: 'bindQueue', exchange, queue, routingKey: pattern, arguments: {} }));
    }
    const sub: WsSubscription = {
      connection,
      clientId,
      clientIdJson: JSON.stringify(clientId),
      numericId: connection.nextSubscription++,
      binary,
      destination,
      queue,
      shard,
      privateQueue,
      ackMode,
      prefetch,
      owedCredit: 0,
    };
    if (binary) connection.binarySubs.set(clientId as number, sub);
    else connection.jsonSubs.set(clientId as string, sub);
    connection.byNumericId.set(sub.numericId, sub);
    this.#writeSubscribe(sub);
    return sub;
  }

  #writeSubscribe(sub: WsSubscription): void {
    const ackMode = sub.ackMode === 'client' ? AckModeCode.client : AckModeCode.auto;
    const { deliveryWindow } = this.#ctx.config;
    this.#ctx.shards[sub.shard].writeControl((w) => w.subscribe(sub.connection.id, sub.numericId, sub.queue, ackMode, sub.prefetch, deliveryWindow));
  }

  #unsubscribe(sub: WsSubscription): void {
    const { connection } = sub;
    if (sub.binary) connection.binarySubs.delete(sub.clientId as number);
    else connection.jsonSubs.delete(sub.clientId as string);
    connection.byNumericId.delete(sub.numericId);
    connection.tags.dropSubscription(sub.numericId);
    this.#touchedSubs.delete(sub);
    this.#ctx.shards[sub.shard].writeControl((w) => w.unsubscribe(connection.id, sub.numericId));
    if (sub.privateQueue) this.#dropQueue(sub.queue, sub.shard);
  }

  /** Settles connection tag(s); false when the tag is unknown. */
  #settle(connection: Connection, tag: number, multiple: boolean, ack: boolean, requeue: boolean): boolean {
    const shardTags = connection.tags.settle(tag, multiple);
    if (shardTags.length === 0) return multiple && tag === 0;
    const kind = ack ? RecordKind.ack : RecordKind.nack;
    const n = this.#ctx.shards.length;
    for (const shardTag of shardTags) this.#ctx.shards[shardTag % n].writeControl((w) => w.settle(kind, connection.id, shardTag, requeue));
    return true;
  }

  #pingShard(shard: number): Promise<ConfirmStatus> {
    return new Promise((resolve, reject) => {
      const token = this.#ctx.confirms.allocate([shard], (status) => {
        if (status === ConfirmStatus.ok) resolve(status);
        else reject(new BrokerError(ErrorCode.shardUnavailable, `shard ${shard} restarted before answering`));
      });
      this.#ctx.shards[shard].writeControl((w) => w.ping(token));
    });
  }

  /** Sends a receipt once the shard has processed what this connection wrote before it. */
  #receiptAfter(connection: Connection, shard: number, receipt: string): void {
    this.#pingShard(shard).then(
      () => this.#sendText(connection, `{"op":"receipt","receipt":${JSON.stringify(receipt)}}`),
      () => this.#sendErrorText(connection, ErrorCode.shardUnavailable, 'a shard restarted before confirming', receipt),
    );
  }

  #parse(text: string): Destination {
    try {
      return parseDestination(text);
    } catch (err) {
      if (err instanceof DestinationError) throw new BrokerError(ErrorCode.badDestination, err.message);
      throw err;
    }
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
    const tag = connection.tags.assign(rec.tag, sub.ackMode === 'client', sub.numericId);
    const buf = reader.buffer;
    if (sub.binary) {
      const props = rec.propsLength > 0 ? buf.subarray(rec.propsOffset, rec.propsOffset + rec.propsLength) : null;
      this.#writer(connection).deliver(sub.clientId as number, tag, rec.redelivered, rec.exchange, rec.routingKey, props, buf, rec.payloadOffset, rec.payloadLength);
    } else {
      connection.frames.push(this.#jsonDelivery(sub, tag, rec.redelivered, rec.exchange, rec.routingKey, buf, rec.propsOffset, rec.propsLength, rec.payloadOffset, rec.payloadLength));
    }
    this.#touched.add(connection);
    sub.owedCredit++;
    this.#touchedSubs.add(sub);
  }

  #jsonDelivery(
    sub: WsSubscription,
    tag: number,
    redelivered: boolean,
    exchange: string,
    routingKey: string,
    buf: Buffer,
    propsOffset: number,
    propsLength: number,
    start: number,
    length: number,
  ): string {
    const end = start + length;
    const text = isUtf8(buf.subarray(start, end));
    const payload = text ? JSON.stringify(buf.toString('utf8', start, end)) : `"${buf.toString('base64', start, end)}","encoding":"base64"`;
    const d = sub.destination;
    const destination =
      d.type === DestinationType.queue ? '/queue/' + sub.queue : d.type === DestinationType.topic ? '/topic/' + routingKey : `/exchange/${exchange}/${routingKey}`;
    const props = propsLength > 0 ? `,"properties":${JSON.stringify(propertiesToJson(decodeProperties(buf, propsOffset, propsLength)))}` : '';
    return `{"op":"message","subscription":${sub.clientIdJson},"destination":${JSON.stringify(destination)},"tag":${tag},"redelivered":${redelivered}${props},"payload":${payload}}`;
  }

  onShardError(connectionId: number, subscriptionId: number, code: string, message: string): void {
    const connection = this.#connections.get(connectionId);
    if (connection === undefined) return;
    const sub = connection.byNumericId.get(subscriptionId);
    if (code === ErrorCode.slowConsumer) {
      // --slow-consumer disconnect: a subscriber whose buffer overflowed loses its connection,
      // with a close code and reason that say why (its queue-bound messages are requeued).
      this.#slowConsumerClosed++;
      this.#ctx.log.warn({ connection: connectionId, user: connection.principal.name, subscription: sub?.clientId }, 'slow consumer disconnected');
      connection.ws.end(CLOSE_POLICY, 'slow consumer: topic buffer overflowed');
      return;
    }
    if (code === 'slow_consumer_dropped') {
      this.#ctx.log.warn({ connection: connectionId, user: connection.principal.name, subscription: sub?.clientId }, 'slow consumer: its topic buffer overflowed, dropping oldest messages');
      return;
    }
    if (code === ErrorCode.consumerCancelled && sub !== undefined) {
      // The queue went away under the consumer: the subscription is over.
      if (sub.binary) connection.binarySubs.delete(sub.clientId as number);
      else connection.jsonSubs.delete(sub.clientId as string);
      connection.byNumericId.delete(sub.numericId);
      connection.tags.dropSubscription(sub.numericId);
    }
    if (sub?.binary) {
      if (code === ErrorCode.consumerCancelled) this.#writer(connection).cancel(sub.clientId as number, code, message);
      else this.#writer(connection).error(0, code, message);
      this.#flushConnection(connection);
      return;
    }
    const extra = sub === undefined ? '' : `,"subscription":${sub.clientIdJson}`;
    this.#sendText(connection, `{"op":"error","code":${JSON.stringify(code)},"message":${JSON.stringify(message)}${extra}}`);
  }

  /** End of an outbound chunk: one corked write per touched socket, then credit back to shards. */
  flush(_shard: number): void {
    for (const connection of this.#touched) this.#flushConnection(connection);
    this.#touched.clear();
    const highWater = this.#ctx.config.socketHighWater;
    for (const sub of this.#touchedSubs) {
      const { connection } = sub;
      if (connection.closed) continue;
      // A socket past its high-water mark gets no more credit: the shard keeps the
      // messages in their queue until uWS reports a drain.
      if (connection.ws.getBufferedAmount() < highWater) this.#returnCredit(sub);
    }
    this.#touchedSubs.clear();
  }

  #returnOwedCredit(connection: Connection): void {
    if (connection.ws.getBufferedAmount() >= this.#ctx.config.socketHighWater) return;
    for (const sub of connection.byNumericId.values()) this.#returnCredit(sub);
  }

  #returnCredit(sub: WsSubscription): void {
    const owed = sub.owedCredit;
    if (owed === 0) return;
    sub.owedCredit = 0;
    const { connection } = sub;
    this.#ctx.shards[sub.shard].writeControl((w) => w.credit(connection.id, sub.numericId, owed));
  }

  // ---- shard faults ------------------------------------------------------------------------

  onShardCrash(shard: number): void {
    const n = this.#ctx.shards.length;
    for (const connection of this.#connections.values()) {
      connection.tags.dropShard(shard, n);
      for (const sub of connection.byNumericId.values()) {
        if (sub.shard !== shard) continue;
        sub.owedCredit = 0;
        const message = `shard ${shard} died; unacked deliveries from it are void and it is being restarted; the subscription is restored when it is back`;
        if (sub.binary) {
          this.#writer(connection).error(0, ErrorCode.shardRestarted, message);
          this.#flushConnection(connection);
        } else {
          this.#sendText(connection, `{"op":"error","code":"${ErrorCode.shardRestarted}","message":${JSON.stringify(message)},"subscription":${sub.clientIdJson}}`);
        }
      }
    }
  }

  /** After the topology was replayed on a restarted shard: register its consumers again. */
  onShardRestart(shard: number): void {
    for (const connection of this.#connections.values()) {
      for (const sub of connection.byNumericId.values()) if (sub.shard === shard) this.#writeSubscribe(sub);
    }
  }

  // ---- output helpers ----------------------------------------------------------------------

  #writer(connection: Connection): BinaryFrameWriter {
    connection.writer ??= new BinaryFrameWriter();
    this.#touched.add(connection);
    return connection.writer;
  }

  /** Writes everything gathered for one socket under one cork: JSON frames, then one binary frame. */
  #flushConnection(connection: Connection): void {
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

  #sendText(connection: Connection, frame: string): void {
    if (connection.closed) return;
    connection.frames.push(frame);
    this.#flushConnection(connection);
  }

  #sendErrorText(connection: Connection, code: string, message: string, receipt?: string): void {
    let frame = `{"op":"error","code":${JSON.stringify(code)},"message":${JSON.stringify(message)}`;
    if (receipt !== undefined) frame += `,"receipt":${JSON.stringify(receipt)}`;
    this.#sendText(connection, frame + '}');
  }

  #sendJsonError(connection: Connection, err: unknown, op?: ClientOp): void {
    const receipt = err instanceof ClientOpError ? err.receipt : op !== undefined && 'receipt' in op && op.receipt !== null ? op.receipt : undefined;
    const e = toBrokerError(err, this.#ctx);
    this.#sendErrorText(connection, e.code, e.message, receipt);
  }
}

function refusal(status: ConfirmStatus): [string, string] {
  if (status === ConfirmStatus.notFound) return [ErrorCode.notFound, 'the exchange no longer exists'];
  if (status === ConfirmStatus.storageFailed) return [ErrorCode.storageFailed, 'the message could not be written to disk; it was not accepted (retry later)'];
  return [ErrorCode.saturated, 'a queue refused the message (x-overflow reject-publish), or its shard restarted before confirming'];
}

function toBrokerError(err: unknown, ctx: BrokerContext): BrokerError {
  if (err instanceof BrokerError) return err;
  ctx.log.error({ err }, 'unexpected error handling a WebSocket frame');
  return new BrokerError(ErrorCode.internal, 'internal error; see the broker log');
}

/**
 * The value rules (`property-rules.ts`) for a binary properties block, whose structure the decoder
 * already checked. Only `expiration` needs a look the decoder does not take (delivery mode and
 * priority are bytes it bounds), so the block is decoded only when that flag is set.
 */
function checkPropertiesBlock(block: Uint8Array): void {
  const flags = block[0] | (block[1] << 8);
  if ((flags & PropertyFlag.expiration) !== 0) checkMessageProperties(decodeProperties(block, 0, block.byteLength));
}
