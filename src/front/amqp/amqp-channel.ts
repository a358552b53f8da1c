/**
 * One AMQP channel: its methods mapped onto control/ (the same publish path, consume path and
 * management every other protocol uses), content assembly for basic.publish, consumers, delivery
 * tags (AMQP's own, per channel), publisher confirms and transactions.
 *
 * Order: AMQP replies come in the order of the requests on a channel, and a publish right after a
 * queue.declare must find the queue. A method that waits for a shard (declarations) makes the channel
 * busy; frames that arrive meanwhile wait, copied, in the channel's backlog and run when it is done.
 */
import { qualify } from '../../protocol/vhost-name.js';
import { randomBytes } from 'node:crypto';
import { AmqpError, isConnectionError } from '../../protocol/amqp/errors.js';
import { ClassId, FrameType, ReplyCode } from '../../protocol/amqp/constants.js';
import { decodeMethod, type AnyMethod, type MethodArgs } from '../../protocol/amqp/methods.js';
import { amqpToMessageProperties, decodeContentHeader, writeContentMethod } from '../../protocol/amqp/content.js';
import { encodeCheckedProperties } from '../../protocol/property-rules.js';
import { decodeProperties } from '../../protocol/properties.js';
import { AckModeCode, ConfirmStatus, NO_TOKEN, RecordKind, streamStartOf, type StreamStart } from '../../protocol/ring-record-codec.js';
import { confirmRefusal } from '../../control/confirm-tracker.js';
import { DeliveryTags } from '../../control/delivery-tags.js';
import { toAmqpError } from './amqp-errors.js';
import { BrokerError } from '../../protocol/errors.js';
import { crossesNodes, type PublishTarget } from '../../control/publish-path.js';
import { portOfTag } from '../shard-ports.js';
import { REMOTE_SHARD } from '../../shard/shard-handle.js';
import type { Principal } from '../../control/auth.js';
import type { Logger } from '../../log/logger.js';
import type { BrokerContext } from '../context.js';
import { WireWriter } from '../../protocol/amqp/wire.js';
import type { MethodName } from '../../protocol/amqp/methods.js';

/** What a channel needs of its connection (amqp-connection.ts implements it; no import back). */
export interface ChannelHost {
  readonly id: number;
  readonly ctx: BrokerContext;
  readonly log: Logger;
  readonly principal: Principal;
  readonly out: WireWriter;
  readonly frameMax: number;
  readonly cancelNotify: boolean;
  readonly closed: boolean;
  readonly holding: boolean;
  readonly mentionsReplyTo: boolean;
  published: number;
  send<N extends MethodName>(channel: number, name: N, args: MethodArgs[N]): void;
  sendClose(
    channel: number,
    name: 'channel.close' | 'connection.close',
    code: number,
    text: string,
    classId: number,
    methodId: number,
  ): void;
  channelClosed(ch: AmqpChannel): void;
  confirmsDue(ch: AmqpChannel): void;
  flushSoon(): void;
  fail(err: unknown): void;
  endOfInput(): void;
  properties(amqp: Uint8Array): Uint8Array | null;
  amqpProperties(bytes: Uint8Array | null, offset: number, length: number): Uint8Array;
  publishedTo(shard: number): void;
  holdPublish(
    channel: AmqpChannel,
    target: PublishTarget,
    from: number,
    token: number,
    properties: Uint8Array | null,
    body: Uint8Array,
    seq: number,
  ): void;
  addConsumer(
    channel: AmqpChannel,
    tag: string,
    queue: string,
    noAck: boolean,
    prefetch: number,
    get?: boolean,
    exclusive?: boolean,
    streamStart?: StreamStart | null,
  ): AmqpConsumer;
  /** Resolves once `shard` has processed everything written to it before. */
  ping(shard: number): Promise<void>;
  subscribe(consumer: AmqpConsumer): void;
  removeConsumer(consumer: AmqpConsumer, tellShard: boolean): void;
}

/** A consumer (basic.consume) as the shard knows it: a subscription of this connection on one queue. */
export interface AmqpConsumer {
  readonly channel: AmqpChannel;
  readonly tag: string;
  /** The tag's UTF-8, encoded once for every basic.deliver. */
  readonly tagBytes: Uint8Array;
  /** Connection-unique id in ring records. */
  readonly numericId: number;
  readonly queue: string;
  readonly shard: number;
  readonly noAck: boolean;
  readonly prefetch: number;
  /** basic.get's consumer: its one delivery per get becomes a get-ok, not a basic.deliver. */
  readonly get: boolean;
  /** basic.consume `exclusive`: the queue's only consumer (its shard enforces it). */
  readonly exclusive: boolean;
  /** Until its shard took it: its deliveries, written here to follow the consume-ok. */
  held: WireWriter | null;
  /** Why its shard refused it (exclusive use, a bad x-stream-offset): the AMQP reply code and text, or null. */
  refused: { readonly code: number; readonly message: string } | null;
  /** Deliveries written to the socket whose credit is not yet back at the shard, and their bytes. */
  owedCredit: number;
  owedBytes: number;
  /** A stream consumer's start from basic.consume's arguments (streamStartOf); null otherwise. */
  readonly streamStart: StreamStart | null;
}

/** A basic.publish waiting for its content header and body frames. */
interface PendingContent {
  readonly exchange: string;
  readonly routingKey: string;
  readonly mandatory: boolean;
  bodySize: number;
  /** The AMQP properties as the broker's properties block (null: none). */
  properties: Uint8Array | null;
  /** The body when it comes in more than one frame. */
  body: Buffer | null;
  received: number;
  headerSeen: boolean;
}

/** A publish or settle held until tx.commit. */
type TxAction =
  | {
      readonly kind: 'publish';
      readonly exchange: string;
      readonly routingKey: string;
      readonly mandatory: boolean;
      readonly properties: Uint8Array | null;
      readonly body: Uint8Array;
    }
  | { readonly kind: 'settle'; readonly tag: number; readonly multiple: boolean; readonly ack: boolean; readonly requeue: boolean };

/** What a transaction may hold before commit: it lives in main-thread memory. */
const MAX_TX_BYTES = 64 * 1024 * 1024;
/** Frames a busy channel keeps before the connection stops reading its socket. */
const BACKLOG_PAUSE_FRAMES = 1024;

export class AmqpChannel {
  readonly number: number;
  readonly #conn: ChannelHost;
  readonly tags = new DeliveryTags();
  readonly consumers = new Map<string, AmqpConsumer>();
  /** The highest delivery tag given out, and the highest whose delivery was voided (cancel, shard crash): acks up to it are no error. */
  lastTag = 0;
  #voidUpTo = 0;
  /** Closing: we sent channel.close and discard all but close-ok. */
  closing = false;
  #prefetch = 0;
  #lastQueue = '';
  #content: PendingContent | null = null;
  #busy = false;
  readonly #backlog: Array<{ type: number; payload: Uint8Array }> = [];
  // Publisher confirms: sequence numbers, the immediate ones acked together at the end of a read.
  #confirming = false;
  #seq = 0;
  #ackUpTo = 0;
  #ackedUpTo = 0;
  #waitingOnShards = 0;
  #tx: TxAction[] | null = null;
  /** Direct reply-to: the queue behind `amq.rabbitmq.reply-to` for this channel. */
  #replyQueue: string | null = null;
  /** basic.get's consumers, one per queue and ack mode, and the message of the get in flight. */
  readonly #getConsumers = new Map<string, AmqpConsumer>();
  #got: { tag: number; redelivered: boolean; exchange: string; routingKey: string; properties: Uint8Array; body: Uint8Array } | null = null;
  #txBytes = 0;

  constructor(conn: ChannelHost, number: number) {
    this.#conn = conn;
    this.number = number;
  }

  get backlogged(): boolean {
    return this.#backlog.length >= BACKLOG_PAUSE_FRAMES;
  }

  get unacked(): number {
    return this.tags.open;
  }

  get prefetch(): number {
    return this.#prefetch;
  }

  get transactional(): boolean {
    return this.#tx !== null;
  }

  get confirming(): boolean {
    return this.#confirming;
  }

  /** A frame for this channel. Throws an AmqpError for a connection exception; channel exceptions close the channel here. */
  frame(type: number, payload: Uint8Array): void {
    if (this.#busy) {
      this.#backlog.push({ type, payload: Uint8Array.prototype.slice.call(payload) });
      return;
    }
    this.#run(type, payload);
  }

  #run(type: number, payload: Uint8Array): void {
    if (this.closing) {
      // After our channel.close only its close-ok (or a crossing close) means anything.
      if (type === FrameType.method) {
        const m = decodeMethod(payload);
        if (m.name === 'channel.close-ok') this.#conn.channelClosed(this);
        else if (m.name === 'channel.close') this.#conn.send(this.number, 'channel.close-ok', {});
      }
      return;
    }
    let classId = 0;
    let methodId = 0;
    try {
      if (type === FrameType.method) {
        const m = decodeMethod(payload);
        classId = m.classId;
        methodId = m.methodId;
        if (this.#content !== null) {
          throw new AmqpError(ReplyCode.unexpectedFrame, `expected content for basic.publish, got ${m.name}`, classId, methodId);
        }
        this.#method(m);
      } else if (type === FrameType.header) {
        this.#header(payload);
      } else if (type === FrameType.body) {
        this.#body(payload);
      } else {
        throw new AmqpError(ReplyCode.frameError, `frame type ${type} is not allowed on channel ${this.number}`);
      }
    } catch (err) {
      this.fail(err, classId, methodId);
    }
  }

  /** Turns an error into a channel close (channel exception) or rethrows it (connection exception). */
  fail(err: unknown, classId: number, methodId: number): void {
    const e = toAmqpError(err, classId, methodId, (bug) => this.#conn.log.error({ err: bug }, 'unexpected error handling an AMQP method'));
    if (isConnectionError(e.code)) throw e;
    this.#conn.log.debug({ channel: this.number, code: e.code, message: e.message }, 'AMQP channel exception');
    this.closeWith(e.code, e.message, e.classId, e.methodId);
  }

  /** A server-side channel.close: consumers go (their unacked deliveries are requeued), then close-ok is awaited. */
  closeWith(code: number, text: string, classId: number, methodId: number): void {
    this.release();
    this.closing = true;
    this.#conn.sendClose(this.number, 'channel.close', code, text, classId, methodId);
  }

  #method(m: AnyMethod): void {
    const conn = this.#conn;
    switch (m.name) {
      case 'channel.close':
        this.release();
        conn.send(this.number, 'channel.close-ok', {});
        conn.channelClosed(this);
        return;
      case 'channel.close-ok':
        return;
      case 'channel.flow':
        // As RabbitMQ: a client may only say active=true (540 otherwise). A consumer that wants fewer
        // deliveries has basic.qos and its acks, which the shards honour exactly.
        if (!m.args.active) throw new AmqpError(ReplyCode.notImplemented, 'active=false', m.classId, m.methodId);
        conn.send(this.number, 'channel.flow-ok', { active: true });
        return;
      case 'channel.flow-ok':
        return;
      case 'channel.open':
        throw new AmqpError(ReplyCode.channelError, `second 'channel.open' seen on channel ${this.number}`, m.classId, m.methodId);
      case 'basic.publish':
        this.#content = {
          exchange: m.args.exchange,
          routingKey: m.args.routingKey,
          mandatory: m.args.mandatory,
          bodySize: 0,
          properties: null,
          body: null,
          received: 0,
          headerSeen: false,
        };
        return;
      case 'basic.ack':
        this.#settle(m.args.deliveryTag, m.args.multiple, true, false, m);
        return;
      case 'basic.nack':
        this.#settle(m.args.deliveryTag, m.args.multiple, false, m.args.requeue, m);
        return;
      case 'basic.reject':
        this.#settle(m.args.deliveryTag, false, false, m.args.requeue, m);
        return;
      case 'basic.qos':
        if (m.args.prefetchSize !== 0) {
          throw new AmqpError(ReplyCode.notImplemented, `prefetch_size!=0 (${m.args.prefetchSize})`, m.classId, m.methodId);
        }
        // global: RabbitMQ's per-channel limit is applied to each consumer the channel opens next.
        this.#prefetch = m.args.prefetchCount;
        conn.send(this.number, 'basic.qos-ok', {});
        return;
      case 'basic.consume':
        if (m.args.queue === DIRECT_REPLY_TO) this.#consumeReplies(m.args, m);
        else this.#consume(m.args, m);
        return;
      case 'basic.cancel': {
        const consumer = this.consumers.get(m.args.consumerTag);
        if (consumer !== undefined) this.#cancel(consumer);
        if (!m.args.noWait) conn.send(this.number, 'basic.cancel-ok', { consumerTag: m.args.consumerTag });
        return;
      }
      case 'basic.recover':
      case 'basic.recover-async':
        if (!m.args.requeue) throw new AmqpError(ReplyCode.notImplemented, 'requeue=false', m.classId, m.methodId);
        // Every unacked delivery of the channel goes back to its queue, redelivered.
        this.#settle(0, true, false, true, m);
        if (m.name === 'basic.recover') conn.send(this.number, 'basic.recover-ok', {});
        return;
      case 'basic.get':
        this.#get(m.args, m);
        return;
      case 'confirm.select':
        if (this.#tx !== null) {
          throw new AmqpError(ReplyCode.preconditionFailed, 'cannot switch from tx to confirm mode', m.classId, m.methodId);
        }
        this.#confirming = true;
        if (!m.args.noWait) conn.send(this.number, 'confirm.select-ok', {});
        return;
      case 'tx.select':
        if (this.#confirming) {
          throw new AmqpError(ReplyCode.preconditionFailed, 'cannot switch from confirm to tx mode', m.classId, m.methodId);
        }
        this.#tx ??= [];
        conn.send(this.number, 'tx.select-ok', {});
        return;
      case 'tx.commit':
      case 'tx.rollback': {
        if (this.#tx === null) throw new AmqpError(ReplyCode.preconditionFailed, 'channel is not transactional', m.classId, m.methodId);
        const actions = this.#tx;
        this.#tx = [];
        this.#txBytes = 0;
        if (m.name === 'tx.commit') {
          for (const a of actions) {
            if (a.kind === 'publish') this.#publish(a.exchange, a.routingKey, a.mandatory, a.properties, a.body);
            else this.#settleNow(a.tag, a.multiple, a.ack, a.requeue, m);
          }
          conn.send(this.number, 'tx.commit-ok', {});
        } else {
          conn.send(this.number, 'tx.rollback-ok', {});
        }
        return;
      }
      default:
        this.#topology(m);
    }
  }

  /** Declarations and bindings: they wait for the shards, so the channel is busy until the answer. */
  #topology(m: AnyMethod): void {
    const conn = this.#conn;
    const mgmt = conn.ctx.management;
    const principal = conn.principal;
    const mayManage = (): void => {
      if (principal.canManage) return;
      conn.log.warn({ user: principal.name, method: m.name }, 'AMQP topology change denied');
      throw new AmqpError(
        ReplyCode.accessRefused,
        `user '${principal.name}' may not change the topology (${m.name})`,
        m.classId,
        m.methodId,
      );
    };
    let work: (() => Promise<void>) | null = null;
    switch (m.name) {
      case 'exchange.declare': {
        const a = m.args;
        if (!a.passive) mayManage();
        work = async () => {
          await mgmt.declareExchange(principal.vhost, {
            name: a.exchange,
            type: a.type,
            durable: a.durable,
            autoDelete: a.autoDelete,
            internal: a.internal,
            arguments: a.arguments as Record<string, unknown>,
            passive: a.passive,
          });
          if (!a.noWait) conn.send(this.number, 'exchange.declare-ok', {});
        };
        break;
      }
      case 'exchange.delete': {
        const a = m.args;
        mayManage();
        work = async () => {
          await mgmt.deleteExchange(principal.vhost, a.exchange, a.ifUnused);
          if (!a.noWait) conn.send(this.number, 'exchange.delete-ok', {});
        };
        break;
      }
      case 'exchange.bind':
      case 'exchange.unbind': {
        const a = m.args;
        const bind = m.name === 'exchange.bind';
        mayManage();
        work = async () => {
          const args = a.arguments as Record<string, unknown>;
          if (bind) await mgmt.bindExchange(a.destination, a.source, a.routingKey, args, principal);
          else await mgmt.unbindExchange(principal.vhost, a.destination, a.source, a.routingKey, args);
          if (!a.noWait) conn.send(this.number, bind ? 'exchange.bind-ok' : 'exchange.unbind-ok', {});
        };
        break;
      }
      case 'queue.declare': {
        const a = m.args;
        // A server-named exclusive queue is a subscriber's own: no right to change the topology needed.
        if (!a.passive && !(a.queue === '' && a.exclusive)) mayManage();
        work = async () => {
          const ok = await mgmt.declareQueue(
            principal.vhost,
            {
              name: a.queue,
              passive: a.passive,
              durable: a.durable,
              exclusive: a.exclusive,
              autoDelete: a.autoDelete,
              arguments: a.arguments as Record<string, unknown>,
            },
            conn.id,
          );
          this.#lastQueue = ok.queue;
          if (!a.noWait)
            conn.send(this.number, 'queue.declare-ok', { queue: ok.queue, messageCount: ok.messageCount, consumerCount: ok.consumerCount });
        };
        break;
      }
      case 'queue.bind':
      case 'queue.unbind': {
        const a = m.args;
        const bind = m.name === 'queue.bind';
        const queue = this.#queueName(a.queue, m.classId, m.methodId);
        const key = a.queue === '' && a.routingKey === '' ? queue : a.routingKey;
        const owned = conn.ctx.topology.getQueue(qualify(principal.vhost.prefix, queue));
        if (!(owned?.exclusive && owned.owner === conn.id)) mayManage();
        work = async () => {
          const args = a.arguments as Record<string, unknown>;
          if (bind) await mgmt.bindQueue(a.exchange, queue, key, args, principal);
          else await mgmt.unbindQueue(principal.vhost, a.exchange, queue, key, args);
          if (bind && (a as MethodArgs['queue.bind']).noWait) return;
          conn.send(this.number, bind ? 'queue.bind-ok' : 'queue.unbind-ok', {});
        };
        break;
      }
      case 'queue.purge': {
        const a = m.args;
        const queue = this.#queueName(a.queue, m.classId, m.methodId);
        mayManage();
        work = async () => {
          const ok = await mgmt.purgeQueue(principal.vhost, queue);
          if (!a.noWait) conn.send(this.number, 'queue.purge-ok', { messageCount: ok.messageCount });
        };
        break;
      }
      case 'queue.delete': {
        const a = m.args;
        const queue = this.#queueName(a.queue, m.classId, m.methodId);
        const owned = conn.ctx.topology.getQueue(qualify(principal.vhost.prefix, queue));
        if (!(owned?.exclusive && owned.owner === conn.id)) mayManage();
        work = async () => {
          const ok = await mgmt.deleteQueue(principal.vhost, queue, a.ifUnused, a.ifEmpty, conn.id);
          if (!a.noWait) conn.send(this.number, 'queue.delete-ok', { messageCount: ok.messageCount });
        };
        break;
      }
      default:
        // Server-to-client methods and connection methods on a channel.
        throw new AmqpError(ReplyCode.commandInvalid, `${m.name} is not a method a client may send on a channel`, m.classId, m.methodId);
    }
    this.#rpc(m, work);
  }

  /**
   * basic.get: the shard hands the queue's head to this channel's get-consumer for the queue (its
   * delivery arrives before the answer, which carries the count left); get-ok or get-empty.
   */
  #get(a: MethodArgs['basic.get'], m: AnyMethod): void {
    const conn = this.#conn;
    const queue = this.#queueName(a.queue, m.classId, m.methodId);
    const key = `${a.noAck ? 1 : 0}:${queue}`;
    let consumer = this.#getConsumers.get(key);
    if (consumer === undefined) {
      consumer = conn.addConsumer(this, '', queue, a.noAck, 0, true);
      this.#getConsumers.set(key, consumer);
    }
    const c = consumer;
    this.#rpc(m, async () => {
      const answer = await conn.ctx.calls.call(
        c.shard,
        { op: 'get', queue: c.queue, subscription: c.numericId, ackMode: AmqpChannel.ackMode(c) },
        conn.id,
      );
      if (!answer.ok) throw BrokerError.from(answer.result.code ?? 'internal', answer.result.message ?? 'basic.get failed');
      const got = this.#got;
      this.#got = null;
      if (answer.result.delivered !== true || got === null) {
        conn.send(this.number, 'basic.get-empty', {});
        return;
      }
      writeContentMethod(
        conn.out,
        this.number,
        conn.frameMax,
        'basic.get-ok',
        {
          deliveryTag: got.tag,
          redelivered: got.redelivered,
          exchange: got.exchange,
          routingKey: got.routingKey,
          messageCount: answer.result.messageCount ?? 0,
        },
        got.properties,
        got.body,
        0,
        got.body.byteLength,
      );
      conn.flushSoon();
    });
  }

  /** The get-consumer's delivery, kept (copied) until the shard's answer says how many are left. */
  gotMessage(tag: number, redelivered: boolean, exchange: string, routingKey: string, properties: Uint8Array, body: Uint8Array): void {
    this.#got = { tag, redelivered, exchange, routingKey, properties, body };
  }

  /** Runs a method that waits for shards: the channel is busy until it answered. */
  #rpc(m: AnyMethod, work: () => Promise<void>): void {
    this.#busy = true;
    work().then(
      () => this.#done(),
      (err: unknown) => {
        try {
          this.fail(err, m.classId, m.methodId);
        } catch (connectionError) {
          this.#conn.fail(connectionError);
        }
        this.#done();
      },
    );
  }

  /** An RPC finished: its answer goes out, then what waited behind it runs (until the next RPC). */
  #done(): void {
    this.#busy = false;
    const conn = this.#conn;
    try {
      while (!this.#busy && this.#backlog.length > 0 && !conn.closed) {
        const f = this.#backlog.shift() as { type: number; payload: Uint8Array };
        this.#run(f.type, f.payload);
      }
    } catch (err) {
      conn.fail(err);
    }
    conn.endOfInput();
  }

  /** AMQP: an empty queue name means the last queue declared on the channel. */
  #queueName(name: string, classId: number, methodId: number): string {
    if (name !== '') return name;
    if (this.#lastQueue === '') throw new AmqpError(ReplyCode.notFound, 'no previously declared queue', classId, methodId);
    return this.#lastQueue;
  }

  // ---- content ---------------------------------------------------------------------------------

  #header(payload: Uint8Array): void {
    const c = this.#content;
    if (c === null || c.headerSeen)
      throw new AmqpError(ReplyCode.unexpectedFrame, 'content header without basic.publish', ClassId.basic, 40);
    const h = decodeContentHeader(payload);
    if (h.classId !== ClassId.basic) {
      throw new AmqpError(ReplyCode.unexpectedFrame, `content header for class ${h.classId}, expected basic (60)`, ClassId.basic, 40);
    }
    const max = this.#conn.ctx.config.maxMessageBytes;
    if (h.bodySize > max) {
      this.#content = null;
      throw new AmqpError(
        ReplyCode.preconditionFailed,
        `message size ${h.bodySize} is larger than configured max size ${max}`,
        ClassId.basic,
        40,
      );
    }
    c.headerSeen = true;
    c.bodySize = h.bodySize;
    c.properties = this.#conn.properties(h.properties);
    if (this.#conn.mentionsReplyTo) c.properties = this.#withReplyQueue(c.properties);
    if (h.bodySize === 0) this.#complete(c, EMPTY);
  }

  #body(payload: Uint8Array): void {
    const c = this.#content;
    if (c === null || !c.headerSeen)
      throw new AmqpError(ReplyCode.unexpectedFrame, 'content body without a content header', ClassId.basic, 40);
    if (c.received + payload.byteLength > c.bodySize) {
      throw new AmqpError(ReplyCode.frameError, `content body exceeds the header's body size ${c.bodySize}`, ClassId.basic, 40);
    }
    if (c.received === 0 && payload.byteLength === c.bodySize) {
      // The usual case: one body frame, written straight from the socket's buffer into the rings.
      this.#complete(c, payload);
      return;
    }
    c.body ??= Buffer.allocUnsafe(c.bodySize);
    c.body.set(payload, c.received);
    c.received += payload.byteLength;
    if (c.received === c.bodySize) this.#complete(c, c.body);
  }

  #complete(c: PendingContent, body: Uint8Array): void {
    this.#content = null;
    if (this.#tx !== null) {
      if (this.#txBytes + body.byteLength > MAX_TX_BYTES) {
        throw new AmqpError(
          ReplyCode.preconditionFailed,
          `transaction holds more than ${MAX_TX_BYTES} bytes; commit earlier`,
          ClassId.basic,
          40,
        );
      }
      this.#txBytes += body.byteLength;
      const owned = c.body === body ? body : Uint8Array.prototype.slice.call(body);
      this.#tx.push({
        kind: 'publish',
        exchange: c.exchange,
        routingKey: c.routingKey,
        mandatory: c.mandatory,
        properties: c.properties,
        body: owned,
      });
      return;
    }
    this.#publish(c.exchange, c.routingKey, c.mandatory, c.properties, body);
  }

  #publish(exchange: string, routingKey: string, mandatory: boolean, properties: Uint8Array | null, body: Uint8Array): void {
    const conn = this.#conn;
    const { publisher, confirms } = conn.ctx;
    const target = publisher.exchangeTarget(exchange, routingKey, conn.principal);
    const seq = this.#confirming ? ++this.#seq : 0;
    conn.published++;
    if (target.shards.length === 0 && target.remote === undefined) {
      publisher.write(target, conn.id, NO_TOKEN, properties, body);
      if (crossesNodes(target)) conn.publishedTo(REMOTE_SHARD);
      if (mandatory) this.#return(exchange, routingKey, properties, body);
      if (seq !== 0) this.#confirmed(seq, true);
      return;
    }
    // A confirm means the message is in a shard's ring; while a target shard holds publishes in
    // main-thread memory, or its queue may refuse or must fsync, the shard itself answers.
    let token = NO_TOKEN;
    if (seq !== 0 && publisher.wantsConfirm(target)) {
      this.#waitingOnShards++;
      token = confirms.allocate(publisher.confirmShards(target), (status) => {
        this.#waitingOnShards--;
        if (status !== ConfirmStatus.ok) {
          conn.log.debug({ seq, reason: confirmRefusal(status, exchange).message }, 'AMQP publish nacked');
        }
        this.#confirmed(seq, status === ConfirmStatus.ok);
        conn.flushSoon();
      });
    }
    // Behind publishes held above --max-memory, a publish waits its turn (order within the connection).
    const written = conn.holding ? 0 : publisher.write(target, conn.id, token, properties, body, 0, 0, true);
    for (let i = 0; i < written; i++) conn.publishedTo(target.shards[i]);
    // It crossed to other nodes: the socket stops being read while the cluster link has no room.
    if (!conn.holding && crossesNodes(target)) conn.publishedTo(REMOTE_SHARD);
    if (written < target.shards.length) {
      // Above --max-memory: the message is kept here, the socket stops being read, and it goes on
      // once memory is back (connection.blocked tells the client why).
      conn.holdPublish(this, target, written, token, properties, body, seq);
      return;
    }
    if (seq !== 0 && token === NO_TOKEN) this.#confirmed(seq, true);
  }

  /** basic.return for a mandatory message no queue took (then its confirm, as RabbitMQ orders them). */
  #return(exchange: string, routingKey: string, properties: Uint8Array | null, body: Uint8Array): void {
    const conn = this.#conn;
    writeContentMethod(
      conn.out,
      this.number,
      conn.frameMax,
      'basic.return',
      { replyCode: ReplyCode.noRoute, replyText: 'NO_ROUTE', exchange, routingKey },
      conn.amqpProperties(properties, 0, properties?.byteLength ?? 0),
      body,
      0,
      body.byteLength,
    );
  }

  /** A held publish (above --max-memory) went into its rings at last. */
  heldWritten(seq: number, token: number): void {
    if (seq !== 0 && token === NO_TOKEN) this.#confirmed(seq, true);
  }

  /**
   * Confirms `seq`. While no publish of the channel waits on a shard, every earlier one is settled,
   * so consecutive immediate acks gather into one `multiple` sent at the end of the read; anything
   * else goes out alone, after what was gathered.
   */
  #confirmed(seq: number, ok: boolean): void {
    if (ok && this.#waitingOnShards === 0) {
      if (this.#ackUpTo !== seq - 1) {
        this.flushConfirms();
        this.#ackedUpTo = seq - 1;
      }
      this.#ackUpTo = seq;
      this.#conn.confirmsDue(this);
      return;
    }
    this.flushConfirms();
    if (ok) this.#conn.send(this.number, 'basic.ack', { deliveryTag: seq, multiple: false });
    else this.#conn.send(this.number, 'basic.nack', { deliveryTag: seq, multiple: false, requeue: false });
  }

  /** Sends the gathered immediate confirms as one basic.ack (with `multiple` when more than one). */
  flushConfirms(): void {
    if (this.#ackUpTo <= this.#ackedUpTo) return;
    const upTo = this.#ackUpTo;
    this.#conn.send(this.number, 'basic.ack', { deliveryTag: upTo, multiple: upTo - this.#ackedUpTo > 1 });
    this.#ackedUpTo = upTo;
  }

  // ---- consumers -------------------------------------------------------------------------------

  /**
   * basic.consume. consume-ok waits for the shard to take the consumer (a ping behind the subscribe):
   * the shard refuses an exclusive consumer on a queue in use, or any consumer on a queue with an
   * exclusive one (403 ACCESS_REFUSED, as RabbitMQ). Deliveries that come meanwhile wait behind the
   * consume-ok, so the client never sees a delivery for a tag it does not know yet.
   */
  #consume(a: MethodArgs['basic.consume'], m: AnyMethod): void {
    const consumer = this.#addConsumer(a);
    if (a.noWait) {
      // No answer to wait for: a refusal closes the channel when it comes (refusedByShard).
      this.#conn.subscribe(consumer);
      return;
    }
    this.#rpc(m, () => this.#confirmConsumer(consumer));
  }

  #addConsumer(a: MethodArgs['basic.consume']): AmqpConsumer {
    const conn = this.#conn;
    const tag = a.consumerTag === '' ? `amq.ctag-${randomBytes(16).toString('base64url').slice(0, 22)}` : a.consumerTag;
    if (this.consumers.has(tag)) {
      throw new AmqpError(ReplyCode.notAllowed, `attempt to reuse consumer tag '${tag}'`, ClassId.basic, 20);
    }
    const queue = this.#queueName(a.queue, ClassId.basic, 20);
    const consumer = conn.addConsumer(
      this,
      tag,
      queue,
      a.noAck,
      a.noAck ? 0 : this.#prefetch,
      false,
      a.exclusive,
      streamStartOf(a.arguments, tag),
    );
    this.consumers.set(tag, consumer);
    return consumer;
  }

  /** Subscribes `consumer` with its deliveries held, waits for its shard, then consume-ok and what was held. */
  async #confirmConsumer(consumer: AmqpConsumer): Promise<void> {
    const conn = this.#conn;
    consumer.held = new WireWriter(256);
    conn.subscribe(consumer);
    await conn.ping(consumer.shard);
    const held = consumer.held;
    consumer.held = null;
    if (consumer.refused !== null) {
      this.consumers.delete(consumer.tag);
      conn.removeConsumer(consumer, false);
      throw new AmqpError(consumer.refused.code, consumer.refused.message, ClassId.basic, 20);
    }
    conn.send(this.number, 'basic.consume-ok', { consumerTag: consumer.tag });
    if (held.length > 0) conn.out.bytes(held.view());
  }

  /** The shard refused the consumer (exclusive use): the consume waiting for it fails, or, with no-wait, the channel closes. */
  refusedByShard(consumer: AmqpConsumer, code: number, message: string): void {
    if (consumer.held !== null) {
      consumer.refused = { code, message };
      return;
    }
    this.consumers.delete(consumer.tag);
    this.#conn.removeConsumer(consumer, false);
    if (!this.closing) this.closeWith(code, message, ClassId.basic, 20);
  }

  /**
   * Direct reply-to (RabbitMQ's `amq.rabbitmq.reply-to`): the channel's replies come to a queue of
   * its own, exclusive and auto-delete, whose name is what its publishes' `reply_to` says instead.
   */
  #consumeReplies(a: MethodArgs['basic.consume'], m: AnyMethod): void {
    if (!a.noAck) throw new AmqpError(ReplyCode.preconditionFailed, 'reply consumer cannot acknowledge', m.classId, m.methodId);
    if (this.#replyQueue !== null) throw new AmqpError(ReplyCode.preconditionFailed, 'reply consumer already set', m.classId, m.methodId);
    const conn = this.#conn;
    this.#rpc(m, async () => {
      const ok = await conn.ctx.management.declareQueue(
        conn.principal.vhost,
        {
          name: '',
          passive: false,
          durable: false,
          exclusive: true,
          autoDelete: true,
          arguments: {},
          serverNamePrefix: `${DIRECT_REPLY_TO}.`,
        },
        conn.id,
      );
      this.#replyQueue = ok.queue;
      await this.#confirmConsumer(this.#addConsumer({ ...a, queue: ok.queue }));
    });
  }

  /** A publish's properties with `reply_to: amq.rabbitmq.reply-to` pointing at this channel's reply queue. */
  #withReplyQueue(block: Uint8Array | null): Uint8Array | null {
    if (block === null) return null;
    const p = decodeProperties(block, 0, block.byteLength);
    if (p.replyTo !== DIRECT_REPLY_TO) return block;
    if (this.#replyQueue === null) {
      throw new AmqpError(ReplyCode.preconditionFailed, 'fast reply consumer does not exist', ClassId.basic, 40);
    }
    return encodeCheckedProperties({ ...p, replyTo: this.#replyQueue });
  }

  #cancel(consumer: AmqpConsumer): void {
    this.consumers.delete(consumer.tag);
    this.tags.dropSubscription(consumer.numericId);
    this.#voidUpTo = this.lastTag;
    this.#conn.removeConsumer(consumer, true);
  }

  /** The queue went away under a consumer: the client is told (basic.cancel) if it said it understands. */
  cancelledByServer(consumer: AmqpConsumer): void {
    this.consumers.delete(consumer.tag);
    this.tags.dropSubscription(consumer.numericId);
    this.#voidUpTo = this.lastTag;
    this.#conn.removeConsumer(consumer, false);
    if (this.#conn.cancelNotify && !this.closing) this.#conn.send(this.number, 'basic.cancel', { consumerTag: consumer.tag, noWait: true });
  }

  /** Deliveries from a shard that died are void: their acks are no error. */
  voidShard(shard: number, shardCount: number): void {
    if (this.tags.dropShard(shard, shardCount) > 0) this.#voidUpTo = this.lastTag;
  }

  #settle(tag: number, multiple: boolean, ack: boolean, requeue: boolean, m: AnyMethod): void {
    if (this.#tx !== null) {
      this.#tx.push({ kind: 'settle', tag, multiple, ack, requeue });
      return;
    }
    this.#settleNow(tag, multiple, ack, requeue, m);
  }

  #settleNow(tag: number, multiple: boolean, ack: boolean, requeue: boolean, m: AnyMethod): void {
    const shardTags = this.tags.settle(tag, multiple);
    if (shardTags.length === 0) {
      // Nothing outstanding for `multiple` up to 0 or an already voided tag: nothing to do, no error.
      if ((multiple && tag === 0) || tag <= this.#voidUpTo || (multiple && tag <= this.lastTag)) return;
      throw new AmqpError(ReplyCode.preconditionFailed, `unknown delivery tag ${tag}`, m.classId, m.methodId);
    }
    const conn = this.#conn;
    const kind = ack ? RecordKind.ack : RecordKind.nack;
    for (const shardTag of shardTags) portOfTag(conn.ctx, shardTag).writeControl((w) => w.settle(kind, conn.id, shardTag, requeue));
  }

  /** The channel ends: its consumers go, and the shards requeue what they delivered and was not acked. */
  release(): void {
    for (const consumer of this.consumers.values()) this.#conn.removeConsumer(consumer, true);
    this.consumers.clear();
    for (const consumer of this.#getConsumers.values()) this.#conn.removeConsumer(consumer, true);
    this.#getConsumers.clear();
    this.#content = null;
    this.#backlog.length = 0;
    this.#tx = null;
  }

  /** The ack mode a consumer's subscribe record carries. */
  static ackMode(consumer: AmqpConsumer): number {
    return consumer.noAck ? AckModeCode.auto : AckModeCode.client;
  }
}

const EMPTY = new Uint8Array(0);
/** RabbitMQ's pseudo-queue for direct reply-to. */
export const DIRECT_REPLY_TO = 'amq.rabbitmq.reply-to';

/** Checked properties block from decoded AMQP properties (RabbitMQ's 406 for a bad expiration, priority or delivery mode). */
export function propertiesBlock(amqp: Uint8Array): Uint8Array | null {
  // Flags word 0: no properties at all (what many publishers send).
  if (amqp.byteLength >= 2 && amqp[0] === 0 && amqp[1] === 0) return null;
  return encodeCheckedProperties(amqpToMessageProperties(amqp));
}
