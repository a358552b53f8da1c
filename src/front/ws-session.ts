/**
 * WebSocket sessions at /v1/ws: connection life (upgrade with auth and limits, open, close),
 * and what comes back from the shards (deliveries, subscription errors, shard crashes and
 * restarts). Text frames go to the JSON protocol (`ws-json-session.ts`), binary frames to the
 * batched protocol (`ws-binary-session.ts`); what both do is in `ws-ops.ts`, and output is
 * gathered per outbound chunk and written once per socket by `delivery-flush.ts`.
 * A subscription is a consumer on one queue: `/queue/<name>` consumes that queue,
 * `/topic/<pattern>` and `/exchange/<x>/<pattern>` a private queue bound to the exchange.
 */
import type { TemplatedApp, WebSocket } from 'uWebSockets.js';
import type { BrokerContext } from './context.js';
import { BrokerError, ErrorCode } from '../protocol/errors.js';
import { newDeliverHead, type RecordReader } from '../protocol/ring-record-codec.js';
import { SUBPROTOCOL, VHOST_HEADER } from '../protocol/ws-binary.js';
import { tokenFrom, UNAUTHORIZED_MESSAGE, vhostRefused, type Principal } from '../control/auth.js';
import type { Vhost } from '../control/vhosts.js';
import { localName } from '../protocol/vhost-name.js';
import { queryVhost } from './http-auth.js';
import { DeliveryFlush } from './delivery-flush.js';
import { FIRST_WS_CONNECTION, LAST_WS_CONNECTION } from './connection-ids.js';
import { portOf, roomOf } from './shard-ports.js';
import { DeliveryGroups, GROUP_CONNECTION } from './delivery-groups.js';
import { DropNotices, destinationOf } from './drop-notices.js';
import { PublishCredit, type PublishWindow } from './publish-credit.js';
import { SessionOps } from './ws-ops.js';
import { JsonSession } from './ws-json-session.js';
import { BinarySession } from './ws-binary-session.js';
import {
  CLOSE_POLICY,
  CLOSE_TOO_BIG,
  detachSubscription,
  newConnection,
  type Connection,
  type ConnectionData,
  type WsSubscription,
} from './ws-connection.js';

/** A subscription that lost messages as a slow consumer, as /v1/stats and /metrics list it. */
export interface DroppedSubscription {
  readonly connection: number;
  readonly user: string;
  readonly subscription: string | number;
  readonly destination: string;
  readonly dropped: number;
  readonly slow: boolean;
}

/** Above this a socket is closed rather than buffering more (uWS drops silently otherwise). */
const MAX_BACKPRESSURE_BYTES = 64 * 1024 * 1024;
/** uWS's own frame limit, as a multiple of max-frame-bytes (see register()). */
const UWS_FRAME_HEADROOM = 4;
/** Connections listed one by one in /v1/stats. */
const MAX_STATS_CONNECTIONS = 1000;

export class WsFront {
  readonly #ctx: BrokerContext;
  readonly #connections = new Map<number, Connection>();
  readonly #flush: DeliveryFlush;
  readonly #ops: SessionOps;
  readonly #json: JsonSession;
  readonly #binary: BinarySession;
  readonly #notices: DropNotices;
  readonly #publishWindow: PublishWindow;
  readonly #deliver = newDeliverHead();
  #nextConnection = 1;
  #undeliverable = 0;
  /** Payload bytes delivered to sockets one by one (shared streams count theirs in DeliveryGroups). */
  #deliveredBytes = 0;
  #slowConsumerClosed = 0;
  #slowConnections = 0;
  #slowEpisodes = 0;
  /** Subscriptions that lost messages as slow consumers (listed in /v1/stats and /metrics). */
  readonly #droppedSubs = new Set<WsSubscription>();
  readonly #groups: DeliveryGroups;

  constructor(ctx: BrokerContext) {
    this.#ctx = ctx;
    const { config } = ctx;
    this.#flush = new DeliveryFlush((shard) => portOf(ctx, shard), {
      socketHighWater: config.socketHighWater,
      slowConsumerMs: config.slowConsumerMs,
      deliveryWindow: config.deliveryWindow,
      deliveryWindowBytes: config.deliveryWindowBytes,
      onSlow: (connection, slow) => {
        this.#slowConnections += slow ? 1 : -1;
        if (slow) this.#slowEpisodes++;
        ctx.log.info(
          { connection: connection.id, user: connection.principal.name, bufferedBytes: connection.ws.getBufferedAmount() },
          slow ? `slow consumer: socket above high water for ${config.slowConsumerMs} ms` : 'slow consumer keeps up again',
        );
        this.#groups.slowChanged(connection, slow);
      },
    });
    this.#notices = new DropNotices(this.#flush, ctx.log);
    this.#groups = new DeliveryGroups(ctx, this.#flush, {
      dropped: (sub, count) => {
        this.#notices.record(sub, count);
        this.#droppedSubs.add(sub);
      },
      disconnect: (connection) => this.#disconnectSlow(connection, undefined),
    });
    this.#ops = new SessionOps(ctx, this.#flush, this.#groups);
    this.#json = new JsonSession(ctx, this.#ops, this.#flush);
    this.#binary = new BinarySession(ctx, this.#ops, this.#flush);
    this.#publishWindow = { messages: config.publishWindow, bytes: config.publishWindowBytes };
    const credit = new PublishCredit(
      (shard) => roomOf(ctx, shard),
      this.#publishWindow,
      (connection, messages, bytes) => {
        // A connection speaks one protocol in practice; credit goes back in the one it published with.
        if (connection.decoder !== null) this.#binary.sendCredit(connection, messages, bytes);
        else this.#json.sendCredit(connection, messages, bytes);
      },
    );
    this.#binary.credit = credit;
    this.#json.credit = credit;
  }

  register(app: TemplatedApp): void {
    this.#groups.register(app);
    // The upgrade is a GET: another method on this path is 405, not 404.
    this.#ctx.routes.note('GET', '/v1/ws');
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
        const user = this.#ctx.auth.authenticate(tokenFrom(req.getHeader('authorization'), req.getQuery('token')));
        // The binary protocol's handshake is the upgrade: the vhost rides in a header or, for browsers, the URL.
        const vhostName = headerVhost(req.getHeader(VHOST_HEADER)) ?? queryVhost(req);
        const refuse = (status: string, code: string, message: string): void => {
          res.cork(() =>
            res
              .writeStatus(status)
              .writeHeader('content-type', 'application/json')
              .end(JSON.stringify({ error: code, message })),
          );
        };
        if (user === null) {
          refuse('401 Unauthorized', ErrorCode.unauthorized, UNAUTHORIZED_MESSAGE);
          return;
        }
        const vhost = this.#ctx.vhosts.get(vhostName);
        if (vhost === undefined) {
          refuse('404 Not Found', ErrorCode.notFound, `no vhost '${vhostName}'`);
          return;
        }
        const principal = user.principalIn(vhost);
        if (principal === null) {
          refuse('403 Forbidden', ErrorCode.accessRefused, vhostRefused(user.name, vhostName).message);
          return;
        }
        const limited = vhost.connectionRefusal();
        if (limited !== null) {
          refuse('403 Forbidden', limited.code, limited.message);
          return;
        }
        if (this.#connections.size >= this.#ctx.config.maxConnections) {
          refuse(
            '503 Service Unavailable',
            ErrorCode.limitExceeded,
            `the broker holds max-connections ${this.#ctx.config.maxConnections} connections`,
          );
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
        if (isBinary) this.#binary.frame(connection, new Uint8Array(message));
        else this.#json.frame(connection, message);
      },
      drain: (ws) => {
        const connection = ws.getUserData().connection;
        if (connection !== undefined) {
          this.#flush.drained(connection);
          this.#groups.drained(connection);
        }
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
        destination: destinationOf(s),
        queue: localName(s.queue),
        ack: s.ackMode,
      }));
      out.push({ id: c.id, bufferedBytes: c.ws.getBufferedAmount(), unacked: c.tags.open, subscriptions });
    }
    return out;
  }

  stats(): {
    websocket: number;
    /** Connections that spoke the binary protocol (the rest JSON, or nothing yet). */
    binaryConnections: number;
    /** Payload bytes delivered to subscribers so far (a shared stream's once per member). */
    deliveredBytes: number;
    subscriptions: number;
    undeliverable: number;
    slowConsumerClosed: number;
    slowConnections: number;
    slowEpisodes: number;
    slowConsumerDropped: number;
    streamDropped: number;
    streams: number;
    droppedSubscriptions: DroppedSubscription[];
    connections: Array<{
      id: number;
      user: string;
      protocol: 'ws_binary' | 'ws_json';
      peer: string;
      bufferedBytes: number;
      subscriptions: number;
      unacked: number;
      owedCredit: number;
      published: number;
      delivered: number;
      slow: boolean;
      held: boolean;
      dropped: number;
    }>;
  } {
    let subscriptions = 0;
    let binary = 0;
    const connections = [];
    for (const c of this.#connections.values()) {
      subscriptions += c.byNumericId.size;
      if (c.decoder !== null) binary++;
      // Bounded: a stats call must not build megabytes for a broker with many connections.
      if (connections.length < MAX_STATS_CONNECTIONS) {
        let owed = 0;
        let dropped = 0;
        for (const sub of c.byNumericId.values()) {
          owed += sub.owedCredit;
          dropped += sub.dropped;
        }
        connections.push({
          id: c.id,
          user: c.principal.name,
          vhost: c.principal.vhost.name,
          protocol: c.decoder !== null ? ('ws_binary' as const) : ('ws_json' as const),
          peer: c.peer,
          bufferedBytes: c.ws.getBufferedAmount(),
          subscriptions: c.byNumericId.size,
          unacked: c.tags.open,
          owedCredit: owed,
          published: c.published,
          delivered: c.delivered,
          slow: c.slow,
          // Its publish credit is held back (a shard it publishes to has no room): flow control on this publisher.
          held: c.creditWaiting,
          dropped,
        });
      }
    }
    return {
      websocket: this.#connections.size,
      binaryConnections: binary,
      deliveredBytes: this.#deliveredBytes + this.#groups.deliveredBytes,
      subscriptions,
      undeliverable: this.#undeliverable,
      slowConsumerClosed: this.#slowConsumerClosed,
      slowConnections: this.#slowConnections,
      slowEpisodes: this.#slowEpisodes,
      slowConsumerDropped: this.#notices.total,
      streamDropped: this.#groups.dropped,
      streams: this.#groups.groups,
      droppedSubscriptions: this.#droppedSubscriptions(),
      connections,
    };
  }

  #droppedSubscriptions(): DroppedSubscription[] {
    const out: DroppedSubscription[] = [];
    for (const sub of this.#droppedSubs) {
      if (sub.connection.closed || !sub.connection.byNumericId.has(sub.numericId)) {
        this.#droppedSubs.delete(sub);
        continue;
      }
      if (out.length >= MAX_STATS_CONNECTIONS) break;
      out.push({
        connection: sub.connection.id,
        user: sub.connection.principal.name,
        subscription: sub.clientId,
        destination: destinationOf(sub),
        dropped: sub.dropped,
        slow: sub.connection.slow,
      });
    }
    return out;
  }

  closeAll(code: number, reason: string): void {
    for (const c of [...this.#connections.values()]) c.ws.end(code, reason);
  }

  /** Closes every connection in `vhost` (it was deleted); returns how many. */
  closeVhost(vhost: Vhost, code: number, reason: string): number {
    let n = 0;
    for (const c of [...this.#connections.values()]) {
      if (c.principal.vhost !== vhost) continue;
      c.ws.end(code, reason);
      n++;
    }
    return n;
  }

  #open(ws: WebSocket<ConnectionData>): void {
    const id = this.#nextConnection;
    // Connection ids are u32 in ring records; the WebSocket range is front/connection-ids.ts's.
    this.#nextConnection = this.#nextConnection >= LAST_WS_CONNECTION ? FIRST_WS_CONNECTION : this.#nextConnection + 1;
    const peer = Buffer.from(ws.getRemoteAddressAsText()).toString();
    const principal = ws.getUserData().principal;
    if (principal === undefined) throw new Error('a WebSocket opened without the principal its upgrade found');
    const connection = newConnection(id, principal, ws, this.#publishWindow, peer);
    ws.getUserData().connection = connection;
    this.#connections.set(id, connection);
    principal.vhost.connections++;
  }

  #close(connection: Connection): void {
    connection.closed = true;
    this.#connections.delete(connection.id);
    connection.principal.vhost.connections--;
    this.#groups.connectionClosed(connection);
    if (connection.slow) this.#slowConnections--;
    this.#flush.forgetConnection(connection);
    for (const sub of connection.byNumericId.values()) {
      this.#notices.forget(sub);
      this.#droppedSubs.delete(sub);
    }
    const shards = new Set<number>();
    for (const sub of connection.byNumericId.values()) shards.add(sub.shard);
    // Every shard the connection consumes from drops its consumers and requeues its unacked
    // deliveries (redelivered: true); its exclusive queues go with it.
    for (const s of shards) portOf(this.#ctx, s).writeControl((w) => w.connectionClosed(connection.id));
    this.#ctx.consume.dropExclusiveQueuesOf(connection.id);
  }

  // ---- from the shards -----------------------------------------------------------------------

  onDeliver(_shard: number, offset: number, reader: RecordReader): void {
    const rec = reader.deliverHead(offset, this.#deliver);
    if (rec.connectionId === GROUP_CONNECTION) {
      // One record for every member of a shared stream: encoded once, published at chunk end.
      if (!this.#groups.onDeliver(rec, reader.bytes, reader.deliverKey(rec))) this.#undeliverable++;
      return;
    }
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
      this.#flush.writer(connection).deliverRecord(sub.clientId as number, tag, rec, reader.bytes);
    } else {
      connection.frames.push(
        this.#json.delivery(
          sub,
          tag,
          rec.redelivered,
          rec.exchangeLength === 0 ? '' : buf.toString('utf8', rec.exchangeOffset, rec.exchangeOffset + rec.exchangeLength),
          rec.keyLength === 0 ? '' : buf.toString('utf8', rec.keyOffset, rec.keyOffset + rec.keyLength),
          buf,
          rec.propsOffset,
          rec.propsLength,
          rec.payloadOffset,
          rec.payloadLength,
        ),
      );
    }
    connection.delivered++;
    connection.deliveredBytes += rec.payloadLength;
    this.#deliveredBytes += rec.payloadLength;
    this.#flush.delivered(sub, rec.payloadLength);
  }

  /** A shard discarded `count` messages of a slow subscription: count them and tell its client. */
  onDropped(connectionId: number, subscriptionId: number, count: number): void {
    const sub = this.#connections.get(connectionId)?.byNumericId.get(subscriptionId);
    if (sub === undefined) return;
    this.#notices.record(sub, count);
    this.#droppedSubs.add(sub);
  }

  onShardError(connectionId: number, subscriptionId: number, code: string, message: string): void {
    if (connectionId === GROUP_CONNECTION) {
      // A shared stream's queue went away (deleted through the management API): every member is cancelled.
      if (code === ErrorCode.consumerCancelled) {
        for (const sub of this.#groups.cancel(subscriptionId)) this.onShardCancel(sub, code, message);
      }
      return;
    }
    const connection = this.#connections.get(connectionId);
    if (connection === undefined) return;
    const sub = connection.byNumericId.get(subscriptionId);
    if (code === ErrorCode.slowConsumer) {
      this.#disconnectSlow(connection, sub);
      return;
    }
    if (code === ErrorCode.consumerCancelled && sub !== undefined) {
      this.onShardCancel(sub, code, message);
      return;
    }
    if (sub?.pendingOk) {
      // Refused at subscribe: the request waiting for its OK or receipt fails with this (SessionOps.whenTaken), and the subscription is gone.
      sub.pendingOk.refused = BrokerError.from(code, message);
      detachSubscription(sub);
      return;
    }
    if (sub?.binary) {
      this.#flush.writer(connection).error(0, code, message);
      this.#flush.flushConnection(connection);
      return;
    }
    this.#json.subscriptionError(connection, code, message, sub);
  }

  /** The queue went away under the consumer: the subscription is over, and its client is told. */
  onShardCancel(sub: WsSubscription, code: string, message: string): void {
    const { connection } = sub;
    detachSubscription(sub);
    if (connection.closed) return;
    if (sub.binary) {
      this.#flush.writer(connection).cancel(sub.clientId as number, code, message);
      this.#flush.flushConnection(connection);
      return;
    }
    this.#json.subscriptionError(connection, code, message, sub);
  }

  /**
   * --slow-consumer disconnect: a subscriber whose buffer overflowed (or a shared stream's member
   * that stayed slow) loses its connection, with a close code and reason that say why (its
   * queue-bound messages are requeued).
   */
  #disconnectSlow(connection: Connection, sub: WsSubscription | undefined): void {
    if (connection.closed) return;
    this.#slowConsumerClosed++;
    this.#ctx.log.warn(
      { connection: connection.id, user: connection.principal.name, subscription: sub?.clientId },
      'slow consumer disconnected',
    );
    connection.ws.end(CLOSE_POLICY, 'slow consumer: topic buffer overflowed');
  }

  /** End of an outbound chunk: one corked write per touched socket, then credit back to shards; shared streams to uWS. */
  flush(_shard: number): void {
    this.#flush.endChunk();
    this.#groups.endChunk();
  }

  onShardCrash(shard: number): void {
    this.#groups.onShardCrash(shard);
    const n = this.#ctx.shards.length;
    for (const connection of this.#connections.values()) {
      connection.tags.dropShard(shard, n);
      for (const sub of connection.byNumericId.values()) {
        if (sub.shard !== shard) continue;
        sub.owedCredit = 0;
        const message = `shard ${shard} died; unacked deliveries from it are void and it is being restarted; the subscription is restored when it is back`;
        if (sub.binary) {
          this.#flush.writer(connection).error(0, ErrorCode.shardRestarted, message);
          this.#flush.flushConnection(connection);
        } else {
          this.#json.subscriptionError(connection, ErrorCode.shardRestarted, message, sub);
        }
      }
    }
  }

  /** After the topology was replayed on a restarted shard: register its consumers again. */
  onShardRestart(shard: number): void {
    this.#groups.onShardRestart(shard);
    for (const connection of this.#connections.values()) {
      for (const sub of connection.byNumericId.values()) if (sub.shard === shard) this.#ops.writeSubscribe(sub);
    }
  }
}

/** The handshake's vhost header, percent-decoded (a header carries ASCII); null when absent. */
function headerVhost(raw: string): string | null {
  if (raw === '') return null;
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}
