/**
 * One AMQP 0-9-1 connection over a node:net (or node:tls) socket: the handshake (protocol header,
 * start / start-ok with PLAIN or AMQPLAIN, tune / tune-ok, open), heartbeats, channel 0's close, the
 * channels, and everything written back (method replies, deliveries) gathered in one buffer and
 * written once per read or per outbound chunk.
 *
 * Backpressure is TCP's, as RabbitMQ does it: while a shard this connection published to has no
 * room, or a publish waits above --max-memory, the socket is not read. Deliveries are bounded by each
 * consumer's credit at its shard, returned only while the socket is below --socket-high-water.
 */
import type { Socket } from 'node:net';
import { AmqpFrameDecoder, BadProtocolHeader, type FrameSink } from '../../protocol/amqp/frame-decoder.js';
import { FRAME_MIN_SIZE, FrameType, PROTOCOL_HEADER, ReplyCode } from '../../protocol/amqp/constants.js';
import { AmqpError, replyText } from '../../protocol/amqp/errors.js';
import { decodeMethod, writeMethodFrame, type AnyMethod, type MethodArgs, type MethodName } from '../../protocol/amqp/methods.js';
import { messagePropertiesToAmqp, writeDeliverRaw } from '../../protocol/amqp/content.js';
import { WireWriter } from '../../protocol/amqp/wire.js';
import { decodeProperties } from '../../protocol/properties.js';
import { SUBSCRIBE_FLAG_EXCLUSIVE, type DeliverHead, type StreamStart } from '../../protocol/ring-record-codec.js';
import { pingShard } from '../shard-ping.js';
import type { HeaderTable } from '../../protocol/field-table.js';
import { BrokerError, ErrorCode } from '../../protocol/errors.js';
import type { PublishTarget } from '../../control/publish-path.js';
import { portOf, roomOf } from '../shard-ports.js';
import { vhostRefused, type Principal, type User } from '../../control/auth.js';
import type { Logger } from '../../log/logger.js';
import type { BrokerContext } from '../context.js';
import { AmqpChannel, DIRECT_REPLY_TO, propertiesBlock, type AmqpConsumer, type ChannelHost } from './amqp-channel.js';
import { toAmqpError } from './amqp-errors.js';

/** What the connection needs of the front that owns it. */
export interface AmqpHost {
  readonly ctx: BrokerContext;
  /** Flush this connection at the end of the current outbound chunk. */
  touch(connection: AmqpConnection): void;
  authenticate(mechanism: string, response: Uint8Array, peer: string): User | string;
  closed(connection: AmqpConnection): void;
  readonly blocked: boolean;
}

/** RabbitMQ's defaults, which clients expect to negotiate down from. */
export const SERVER_CHANNEL_MAX = 2047;
export const SERVER_FRAME_MAX = 131072;
export const SERVER_HEARTBEAT_S = 60;
/** How long we wait for close-ok after our connection.close before dropping the socket. */
const CLOSE_OK_TIMEOUT_MS = 2000;
/** The handshake must finish within this, or the socket is dropped (RabbitMQ's handshake_timeout). */
const HANDSHAKE_TIMEOUT_MS = 10_000;

enum State {
  Header,
  StartOk,
  TuneOk,
  Open,
  Running,
  Closing,
  Closed,
}

const MECHANISMS = Buffer.from('PLAIN AMQPLAIN');
const LOCALES = Buffer.from('en_US');

/** A heartbeat frame: type 8, channel 0, empty payload, frame-end. */
const HEARTBEAT_FRAME = Buffer.from([FrameType.heartbeat, 0, 0, 0, 0, 0, 0, 0xce]);

/** `00 00`: AMQP basic properties with none present. */
const NO_PROPERTIES = new Uint8Array(2);

interface HeldPublish {
  readonly channel: AmqpChannel;
  readonly target: PublishTarget;
  from: number;
  readonly token: number;
  readonly properties: Uint8Array | null;
  readonly body: Uint8Array;
  readonly seq: number;
}

export class AmqpConnection implements FrameSink, ChannelHost {
  readonly id: number;
  readonly socket: Socket;
  readonly peer: string;
  readonly log: Logger;
  readonly #host: AmqpHost;
  readonly #decoder: AmqpFrameDecoder;
  readonly out = new WireWriter();
  #state = State.Header;
  /** Who logged in (start-ok); its principal in the vhost connection.open names. */
  #user: User | null = null;
  #principal: Principal | null = null;
  frameMax = FRAME_MIN_SIZE;
  channelMax = SERVER_CHANNEL_MAX;
  heartbeatS = 0;
  cancelNotify = false;
  #blockedNotify = false;
  /** The user's rights in the connection's vhost; there from connection.open on (channels come after). */
  get principal(): Principal {
    if (this.#principal === null) throw new AmqpError(ReplyCode.channelError, 'no vhost is open on this connection yet', 0, 0);
    return this.#principal;
  }

  /** The user's name, once logged in ('' before). */
  get user(): string {
    return this.#user?.name ?? '';
  }

  /** The connection's vhost, null before connection.open. */
  get vhost(): Principal['vhost'] | null {
    return this.#principal?.vhost ?? null;
  }

  readonly channels = new Map<number, AmqpChannel>();
  readonly consumers = new Map<number, AmqpConsumer>();
  /** Shards its consumers were on: each is told when the connection goes (requeue, exclusive queues). */
  readonly #consumedShards = new Set<number>();
  #nextSubscription = 1;
  readonly #publishShards = new Set<number>();
  readonly #confirmChannels = new Set<AmqpChannel>();
  readonly #touchedConsumers = new Set<AmqpConsumer>();
  readonly #held: HeldPublish[] = [];
  readonly #pauses = new Set<string>();
  #lastRead = Date.now();
  #lastWrite = Date.now();
  #timer: NodeJS.Timeout | null = null;
  #sentBlocked = false;
  // One-entry caches: a publisher repeats its properties, a queue's messages share theirs.
  #inAmqp: Uint8Array | null = null;
  #inBlock: Uint8Array | null = null;
  #outBlock: Uint8Array | null = null;
  #outAmqp: Uint8Array = NO_PROPERTIES;
  published = 0;
  delivered = 0;
  closed = false;
  readonly connectedAt = Date.now();
  /** What the client said of itself in start-ok (product, version, capabilities), for the management API. */
  clientProperties: HeaderTable = {};

  constructor(id: number, socket: Socket, host: AmqpHost) {
    this.id = id;
    this.socket = socket;
    this.#host = host;
    this.peer = `${socket.remoteAddress ?? ''}:${socket.remotePort ?? 0}`;
    this.log = host.ctx.log.child({ amqpConnection: id, peer: this.peer });
    this.#decoder = new AmqpFrameDecoder(SERVER_FRAME_MAX);
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.#read(chunk));
    socket.on('drain', () => this.#drained());
    socket.on('error', (err) => this.log.debug({ err }, 'AMQP socket error'));
    socket.on('close', () => this.#closed());
    this.#timer = setTimeout(() => {
      if (this.#state < State.Running) {
        this.log.info('AMQP handshake not finished in time; closing');
        this.socket.destroy();
      }
    }, HANDSHAKE_TIMEOUT_MS);
  }

  get ctx(): BrokerContext {
    return this.#host.ctx;
  }

  get state(): string {
    if (this.#pauses.has('memory')) return 'blocked';
    if (this.#pauses.size > 0) return 'flow';
    return this.#state === State.Running ? 'running' : this.#state === State.Closing ? 'closing' : 'starting';
  }

  /** Whether publishes wait above --max-memory: later ones queue behind them. */
  get holding(): boolean {
    return this.#held.length > 0;
  }

  // ---- input -----------------------------------------------------------------------------------

  #read(chunk: Buffer): void {
    if (this.closed) return;
    this.#lastRead = Date.now();
    try {
      this.#decoder.push(chunk, this);
    } catch (err) {
      if (err instanceof BadProtocolHeader) {
        // The spec's answer to a header we do not speak: ours, then close.
        this.socket.end(PROTOCOL_HEADER);
        this.closed = true;
        return;
      }
      // The byte stream itself is broken (framing): nothing after this can be read, close-ok
      // included, so the close goes out and the socket is ended at once.
      this.fail(err);
      this.socket.end();
      return;
    }
    this.endOfInput();
  }

  /** FrameSink: one whole frame. A connection exception is handled here, so the decoder goes on and close-ok can be read. */
  frame(type: number, channel: number, payload: Uint8Array): void {
    try {
      this.#frame(type, channel, payload);
    } catch (err) {
      this.fail(err);
    }
  }

  #frame(type: number, channel: number, payload: Uint8Array): void {
    if (this.#state === State.Closed) return;
    if (type === FrameType.heartbeat) {
      if (channel !== 0) throw new AmqpError(ReplyCode.frameError, `heartbeat frame on channel ${channel}`);
      return;
    }
    if (channel === 0) {
      if (type !== FrameType.method) throw new AmqpError(ReplyCode.commandInvalid, `content frame on channel 0`);
      this.#connectionMethod(decodeMethod(payload));
      return;
    }
    if (this.#state === State.Closing) return; // after our close only close-ok on channel 0 counts
    if (this.#state !== State.Running) {
      throw new AmqpError(ReplyCode.commandInvalid, `frame on channel ${channel} before connection.open`);
    }
    const ch = this.channels.get(channel);
    if (ch !== undefined) {
      ch.frame(type, payload);
      if (ch.backlogged) this.pause('backlog');
      return;
    }
    if (type !== FrameType.method) throw new AmqpError(ReplyCode.channelError, `expected 'channel.open' on channel ${channel}`);
    const m = decodeMethod(payload);
    if (m.name !== 'channel.open') {
      throw new AmqpError(ReplyCode.channelError, `expected 'channel.open' on channel ${channel}, got ${m.name}`, m.classId, m.methodId);
    }
    if (channel > this.channelMax) {
      throw new AmqpError(ReplyCode.channelError, `channel ${channel} is above channel_max ${this.channelMax}`, m.classId, m.methodId);
    }
    this.channels.set(channel, new AmqpChannel(this, channel));
    this.send(channel, 'channel.open-ok', {});
  }

  #connectionMethod(m: AnyMethod): void {
    switch (m.name) {
      case 'connection.start-ok': {
        this.#expect(State.StartOk, m);
        this.clientProperties = m.args.clientProperties;
        const caps = m.args.clientProperties.capabilities;
        if (caps !== null && typeof caps === 'object' && !Array.isArray(caps) && !(caps instanceof Uint8Array)) {
          const c = caps as Record<string, unknown>;
          this.cancelNotify = c.consumer_cancel_notify === true;
          this.#blockedNotify = c['connection.blocked'] === true;
        }
        const who = this.#host.authenticate(m.args.mechanism, toBytes(m.args.response), this.socket.remoteAddress ?? '');
        if (typeof who === 'string') {
          // authentication_failure_close: a close with the reason, then the socket goes.
          this.log.warn({ mechanism: m.args.mechanism, reason: who }, 'AMQP login refused');
          throw new AmqpError(ReplyCode.accessRefused, who, m.classId, m.methodId);
        }
        this.#user = who;
        this.#state = State.TuneOk;
        this.send(0, 'connection.tune', { channelMax: SERVER_CHANNEL_MAX, frameMax: SERVER_FRAME_MAX, heartbeat: SERVER_HEARTBEAT_S });
        return;
      }
      case 'connection.secure-ok':
        throw new AmqpError(ReplyCode.commandInvalid, 'connection.secure-ok without connection.secure', m.classId, m.methodId);
      case 'connection.tune-ok': {
        this.#expect(State.TuneOk, m);
        const { channelMax, frameMax, heartbeat } = m.args;
        if (frameMax !== 0 && (frameMax < FRAME_MIN_SIZE || frameMax > SERVER_FRAME_MAX)) {
          throw new AmqpError(
            ReplyCode.notAllowed,
            `frame_max ${frameMax} outside ${FRAME_MIN_SIZE}..${SERVER_FRAME_MAX}`,
            m.classId,
            m.methodId,
          );
        }
        this.frameMax = frameMax === 0 ? SERVER_FRAME_MAX : frameMax;
        this.#decoder.frameMax = this.frameMax;
        this.channelMax = channelMax === 0 ? SERVER_CHANNEL_MAX : Math.min(channelMax, SERVER_CHANNEL_MAX);
        this.heartbeatS = heartbeat;
        this.#state = State.Open;
        return;
      }
      case 'connection.open': {
        this.#expect(State.Open, m);
        // RabbitMQ's answers: 530 NOT_ALLOWED for a vhost that is not there, refused, or full.
        const name = m.args.virtualHost;
        const vhost = this.ctx.vhosts.get(name);
        if (vhost === undefined) throw new AmqpError(ReplyCode.notAllowed, `vhost '${name}' not found`, m.classId, m.methodId);
        const principal = (this.#user as User).principalIn(vhost);
        if (principal === null) {
          this.log.warn({ user: this.#user?.name, vhost: name }, 'AMQP vhost refused');
          throw new AmqpError(ReplyCode.notAllowed, vhostRefused((this.#user as User).name, name).message, m.classId, m.methodId);
        }
        const limited = vhost.connectionRefusal();
        if (limited !== null) throw new AmqpError(ReplyCode.notAllowed, limited.message, m.classId, m.methodId);
        this.#principal = principal;
        vhost.connections++;
        this.#state = State.Running;
        this.send(0, 'connection.open-ok', {});
        this.#startHeartbeat();
        this.log.debug({ user: principal.name, vhost: name }, 'AMQP connection open');
        if (this.#host.blocked) this.blocked(true);
        return;
      }
      case 'connection.close':
        this.#releaseAll();
        this.send(0, 'connection.close-ok', {});
        this.#flushOut();
        this.#state = State.Closed;
        this.socket.end();
        return;
      case 'connection.close-ok':
        if (this.#state === State.Closing) {
          this.#state = State.Closed;
          this.socket.end();
        }
        return;
      case 'connection.update-secret':
        this.send(0, 'connection.update-secret-ok', {});
        return;
      default:
        throw new AmqpError(ReplyCode.commandInvalid, `${m.name} is not a method a client may send on channel 0`, m.classId, m.methodId);
    }
  }

  #expect(state: State, m: AnyMethod): void {
    if (this.#state !== state)
      throw new AmqpError(ReplyCode.commandInvalid, `unexpected ${m.name} during the handshake`, m.classId, m.methodId);
  }

  /** connection.start: sent once the client's protocol header was read (nothing goes out before it). */
  #sendStart(): void {
    this.#state = State.StartOk;
    this.send(0, 'connection.start', {
      versionMajor: 0,
      versionMinor: 9,
      serverProperties: {
        product: 'shardmq',
        version: '0.1.0',
        platform: `Node.js ${process.version}`,
        copyright: 'shardmq contributors',
        information: 'https://github.com/shardmq (AMQP 0-9-1 front of a sharded broker)',
        capabilities: {
          publisher_confirms: true,
          exchange_exchange_bindings: true,
          'basic.nack': true,
          consumer_cancel_notify: true,
          'connection.blocked': true,
          authentication_failure_close: true,
          per_consumer_qos: true,
        },
      },
      mechanisms: MECHANISMS,
      locales: LOCALES,
    });
  }

  /** A connection exception (or a bug): connection.close with its code, then the socket goes. */
  fail(err: unknown): void {
    if (this.closed || this.#state === State.Closed || this.#state === State.Closing) return;
    const e = toAmqpError(err, 0, 0, (bug) => this.log.error({ err: bug }, 'unexpected error on an AMQP connection'));
    this.log.info({ code: e.code, message: e.message }, 'AMQP connection exception');
    this.#releaseAll();
    if (this.#state === State.Header) {
      this.socket.destroy();
      return;
    }
    this.sendClose(0, 'connection.close', e.code, e.message, e.classId, e.methodId);
    this.#flushOut();
    this.#state = State.Closing;
    // The decoder failed (or will ignore the rest): wait for close-ok only briefly.
    setTimeout(() => this.socket.destroy(), CLOSE_OK_TIMEOUT_MS).unref();
  }

  /** The end of one read (or an RPC's answer): gathered confirms, then one write, then backpressure. */
  endOfInput(): void {
    if (this.#state === State.Header && this.#decoder.headerDone) this.#sendStart();
    this.#flushConfirms();
    this.#flushOut();
    if (this.#publishShards.size > 0) this.#checkRoom();
    if (this.#pauses.has('backlog')) {
      let backlogged = false;
      for (const ch of this.channels.values()) if (ch.backlogged) backlogged = true;
      if (!backlogged) this.resume('backlog');
    }
  }

  // ---- output ----------------------------------------------------------------------------------

  send<N extends MethodName>(channel: number, name: N, args: MethodArgs[N]): void {
    writeMethodFrame(this.out, channel, name, args);
    this.#host.touch(this);
  }

  sendClose(
    channel: number,
    name: 'channel.close' | 'connection.close',
    code: number,
    text: string,
    classId: number,
    methodId: number,
  ): void {
    writeMethodFrame(this.out, channel, name, { replyCode: code, replyText: replyText(code, text), classId, methodId });
    this.#host.touch(this);
  }

  /** Flush at the end of the current outbound chunk (a confirm settled by a shard). */
  flushSoon(): void {
    this.#host.touch(this);
  }

  confirmsDue(ch: AmqpChannel): void {
    this.#confirmChannels.add(ch);
    this.#host.touch(this);
  }

  /** Writes what was gathered; called by the front at the end of each outbound chunk. */
  flush(): void {
    this.#flushConfirms();
    this.#flushOut();
    const below = this.socket.writableLength < this.ctx.config.socketHighWater;
    if (below) {
      for (const c of this.#touchedConsumers) this.#returnCredit(c, false);
    }
    this.#touchedConsumers.clear();
  }

  /** The immediate publisher confirms gathered per channel, each as one `multiple` ack. */
  #flushConfirms(): void {
    for (const ch of this.#confirmChannels) ch.flushConfirms();
    this.#confirmChannels.clear();
  }

  #flushOut(): void {
    if (this.out.length === 0 || this.socket.destroyed) {
      this.out.reset();
      return;
    }
    this.socket.write(this.out.take());
    this.out.reset();
    this.#lastWrite = Date.now();
  }

  // ---- deliveries ------------------------------------------------------------------------------

  deliver(rec: DeliverHead, bytes: Uint8Array): boolean {
    const consumer = this.consumers.get(rec.subscriptionId);
    if (consumer === undefined || this.#state !== State.Running) return false;
    const ch = consumer.channel;
    const tag = ch.tags.assign(rec.tag, !consumer.noAck, consumer.numericId);
    ch.lastTag = tag;
    if (consumer.get) {
      ch.gotMessage(
        tag,
        rec.redelivered,
        this.#text(bytes, rec.exchangeOffset, rec.exchangeLength),
        this.#text(bytes, rec.keyOffset, rec.keyLength),
        this.amqpProperties(bytes, rec.propsOffset, rec.propsLength),
        bytes.slice(rec.payloadOffset, rec.payloadOffset + rec.payloadLength),
      );
      this.delivered++;
      return true;
    }
    writeDeliverRaw(
      consumer.held ?? this.out,
      ch.number,
      this.frameMax,
      consumer.tagBytes,
      tag,
      rec.redelivered,
      bytes,
      rec.exchangeOffset,
      rec.exchangeLength,
      rec.keyOffset,
      rec.keyLength,
      this.amqpProperties(bytes, rec.propsOffset, rec.propsLength),
      bytes,
      rec.payloadOffset,
      rec.payloadLength,
    );
    this.delivered++;
    consumer.owedCredit++;
    consumer.owedBytes += rec.payloadLength;
    this.#touchedConsumers.add(consumer);
    this.#host.touch(this);
    return true;
  }

  #text(bytes: Uint8Array, offset: number, length: number): string {
    return length === 0 ? '' : Buffer.from(bytes.buffer, bytes.byteOffset + offset, length).toString('utf8');
  }

  /** The broker's properties block as AMQP's flags + list (one-entry cache). */
  amqpProperties(bytes: Uint8Array | null, offset: number, length: number): Uint8Array {
    if (bytes === null || length === 0) return NO_PROPERTIES;
    const last = this.#outBlock;
    if (last !== null && sameBytes(last, bytes, offset, length)) return this.#outAmqp;
    const amqp = messagePropertiesToAmqp(decodeProperties(bytes, offset, length));
    this.#outBlock = bytes.slice(offset, offset + length);
    this.#outAmqp = amqp;
    return amqp;
  }

  /** An incoming content header's AMQP properties as the broker's block (one-entry cache). */
  properties(amqp: Uint8Array): Uint8Array | null {
    const last = this.#inAmqp;
    if (last !== null && sameBytes(last, amqp, 0, amqp.byteLength)) return this.#inBlock;
    const block = propertiesBlock(amqp);
    this.#inAmqp = amqp.slice();
    this.#inBlock = block;
    // Direct reply-to rewrites reply_to per channel; only such publishes pay a second look.
    this.mentionsReplyTo = block !== null && Buffer.from(amqp).includes(DIRECT_REPLY_TO);
    return block;
  }

  /** The last properties properties() converted may carry `reply_to: amq.rabbitmq.reply-to`. */
  mentionsReplyTo = false;

  #returnCredit(c: AmqpConsumer, force: boolean): void {
    if (c.owedCredit === 0) return;
    if (!force && !creditDue(c, this.ctx.config.deliveryWindow, this.ctx.config.deliveryWindowBytes)) return;
    const owed = c.owedCredit;
    const bytes = c.owedBytes;
    c.owedCredit = 0;
    c.owedBytes = 0;
    portOf(this.ctx, c.shard).writeControl((w) => w.credit(this.id, c.numericId, owed, bytes));
  }

  #drained(): void {
    if (this.closed || this.socket.writableLength >= this.ctx.config.socketHighWater) return;
    for (const c of this.consumers.values()) this.#returnCredit(c, true);
  }

  // ---- consumers -------------------------------------------------------------------------------

  addConsumer(
    channel: AmqpChannel,
    tag: string,
    queue: string,
    noAck: boolean,
    prefetch: number,
    get = false,
    exclusive = false,
    streamStart: StreamStart | null = null,
  ): AmqpConsumer {
    const max = this.ctx.config.maxSubscriptions;
    if (this.consumers.size >= max)
      throw new BrokerError(ErrorCode.limitExceeded, `this connection already holds max-subscriptions ${max} consumers`);
    const target = this.ctx.consume.queueTarget(queue, this.principal, this.id);
    const consumer: AmqpConsumer = {
      channel,
      tag,
      tagBytes: Buffer.from(tag, 'utf8'),
      numericId: this.#nextSubscription++,
      queue: target.queue,
      shard: target.shard,
      noAck,
      prefetch,
      get,
      exclusive,
      held: null,
      refused: null,
      streamStart,
      owedCredit: 0,
      owedBytes: 0,
    };
    this.consumers.set(consumer.numericId, consumer);
    this.#consumedShards.add(consumer.shard);
    return consumer;
  }

  /** Registers the consumer on its shard (again, after the shard restarted). */
  subscribe(c: AmqpConsumer): void {
    const { deliveryWindow, deliveryWindowBytes } = this.ctx.config;
    const flags = c.exclusive ? SUBSCRIBE_FLAG_EXCLUSIVE : 0;
    portOf(this.ctx, c.shard).writeControl((w) =>
      w.subscribe(
        this.id,
        c.numericId,
        c.queue,
        AmqpChannel.ackMode(c),
        c.prefetch,
        deliveryWindow,
        deliveryWindowBytes,
        flags,
        c.streamStart === null ? null : JSON.stringify(c.streamStart),
      ),
    );
  }

  ping(shard: number): Promise<void> {
    return pingShard(this.ctx, shard);
  }

  removeConsumer(c: AmqpConsumer, tellShard: boolean): void {
    this.consumers.delete(c.numericId);
    this.#touchedConsumers.delete(c);
    if (tellShard) portOf(this.ctx, c.shard).writeControl((w) => w.unsubscribe(this.id, c.numericId));
  }

  channelClosed(ch: AmqpChannel): void {
    this.channels.delete(ch.number);
    this.#confirmChannels.delete(ch);
  }

  // ---- publishing backpressure ------------------------------------------------------------------

  publishedTo(shard: number): void {
    this.#publishShards.add(shard);
  }

  /** A shard this connection published to has no room: stop reading until it has. */
  #checkRoom(): void {
    for (const s of this.#publishShards) {
      const shard = roomOf(this.ctx, s);
      if (shard.hasRoom) continue;
      const reason = `room:${s}`;
      if (this.#pauses.has(reason)) continue;
      this.pause(reason);
      shard.onRoom(() => this.resume(reason));
    }
    this.#publishShards.clear();
  }

  holdPublish(
    channel: AmqpChannel,
    target: PublishTarget,
    from: number,
    token: number,
    properties: Uint8Array | null,
    body: Uint8Array,
    seq: number,
  ): void {
    this.#held.push({ channel, target, from, token, properties, body: body.slice(), seq });
    this.pause('memory');
  }

  /** Memory is back under --max-memory (or a retry): the held publishes go into their rings, in order. */
  retryHeld(): void {
    const publisher = this.ctx.publisher;
    while (this.#held.length > 0) {
      const h = this.#held[0];
      const written = publisher.write(h.target, this.id, h.token, h.properties, h.body, 0, h.from, true);
      for (let i = h.from; i < written; i++) this.publishedTo(h.target.shards[i]);
      if (written < h.target.shards.length) {
        h.from = written;
        return;
      }
      this.#held.shift();
      h.channel.heldWritten(h.seq, h.token);
    }
    this.resume('memory');
    this.endOfInput();
  }

  /** The broker went above (or back under) --max-memory. */
  blocked(on: boolean): void {
    if (this.#state !== State.Running) return;
    if (!on) this.retryHeld();
    if (!this.#blockedNotify || on === this.#sentBlocked) return;
    this.#sentBlocked = on;
    if (on) this.send(0, 'connection.blocked', { reason: 'low on memory' });
    else this.send(0, 'connection.unblocked', {});
    this.#flushOut();
  }

  pause(reason: string): void {
    if (this.#pauses.size === 0) this.socket.pause();
    this.#pauses.add(reason);
  }

  resume(reason: string): void {
    if (!this.#pauses.delete(reason) || this.#pauses.size > 0 || this.closed) return;
    this.socket.resume();
  }

  // ---- heartbeats and the end ------------------------------------------------------------------

  #startHeartbeat(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    if (this.heartbeatS === 0) return;
    const ms = this.heartbeatS * 1000;
    // Half the interval, as RabbitMQ sends them; two silent intervals from the peer end it.
    this.#timer = setInterval(() => {
      const now = Date.now();
      if (now - this.#lastRead > 2 * ms) {
        this.log.info({ heartbeatS: this.heartbeatS }, 'AMQP client missed two heartbeats; closing');
        this.socket.destroy();
        return;
      }
      if (now - this.#lastWrite >= ms / 2 && !this.socket.destroyed) {
        this.socket.write(HEARTBEAT_FRAME);
        this.#lastWrite = now;
      }
    }, ms / 2);
    this.#timer.unref();
  }

  /** Every channel's consumers go; shards requeue their unacked deliveries. */
  #releaseAll(): void {
    for (const ch of this.channels.values()) ch.release();
  }

  #closed(): void {
    if (this.#timer !== null) {
      clearTimeout(this.#timer);
      clearInterval(this.#timer);
      this.#timer = null;
    }
    this.closed = true;
    this.#state = State.Closed;
    if (this.#principal !== null) this.#principal.vhost.connections--;
    for (const ch of this.channels.values()) ch.release();
    this.channels.clear();
    this.consumers.clear();
    this.#held.length = 0;
    // Every shard it consumed from drops what is left of its consumers and requeues their unacked
    // deliveries (redelivered: true); its exclusive queues go with it.
    for (const s of this.#consumedShards) portOf(this.ctx, s).writeControl((w) => w.connectionClosed(this.id));
    this.ctx.consume.dropExclusiveQueuesOf(this.id);
    this.#host.closed(this);
  }

  /** The broker stops: connection.close 320 CONNECTION_FORCED, then the socket goes. */
  forceClose(reason: string): void {
    if (this.closed) return;
    if (this.#state !== State.Header && this.#state !== State.Closed) {
      this.sendClose(0, 'connection.close', ReplyCode.connectionForced, reason, 0, 0);
      this.#flushOut();
    }
    this.#state = State.Closed;
    this.socket.end();
    setTimeout(() => this.socket.destroy(), CLOSE_OK_TIMEOUT_MS).unref();
  }

  /** A shard died: deliveries from it are void; its consumers come back when it restarts. */
  shardCrashed(shard: number): void {
    const n = this.ctx.shards.length;
    for (const ch of this.channels.values()) ch.voidShard(shard, n);
    for (const c of this.consumers.values()) if (c.shard === shard) c.owedCredit = 0;
  }

  shardRestarted(shard: number): void {
    for (const c of this.consumers.values()) if (c.shard === shard) this.subscribe(c);
  }
}

function creditDue(c: AmqpConsumer, window: number, windowBytes: number): boolean {
  // An eighth of the window, as the WebSocket fronts return it (front/delivery-flush.ts).
  return c.owedCredit >= Math.max(1, window >> 3) || c.owedBytes >= Math.max(1, windowBytes >> 3);
}

function sameBytes(a: Uint8Array, b: Uint8Array, offset: number, length: number): boolean {
  if (a.byteLength !== length) return false;
  for (let i = 0; i < length; i++) if (a[i] !== b[offset + i]) return false;
  return true;
}

function toBytes(v: Uint8Array | string): Uint8Array {
  return typeof v === 'string' ? Buffer.from(v, 'utf8') : v;
}
