/**
 * Records exchanged between the main thread and a shard through its two rings,
 * laid out field by field. Shared by both sides so they cannot drift.
 *
 * Every record is `[ring header: len, kind][fixed fields][strings][pad to 8][payload]`.
 * Integers are little-endian. Payloads start 8-aligned in the ring because copies
 * into a SharedArrayBuffer are 2-8x slower when misaligned (docs/engine-notes.md §2).
 *
 * Writers encode straight into ring memory (one copy); readers decode in place
 * into a reusable object, so neither side allocates per record beyond the strings
 * it needs as strings.
 */
import type { RingProducer } from '../ring/spsc-ring.js';
import { utf8Length, writeUtf8 } from './ws-binary.js';
import { StringCache } from './string-cache.js';
import { localName, qualifiedFlat } from './vhost-name.js';
import { VhostPrefixes } from './vhost-numbers.js';

/** Main → shard kinds are < 64, shard → main kinds ≥ 64, so a misrouted record is caught at once. */
export const RecordKind = {
  publish: 1,
  subscribe: 2,
  unsubscribe: 3,
  ack: 4,
  nack: 5,
  connectionClosed: 6,
  ping: 7,
  credit: 8,
  /** Topology operations (declare, bind, delete...): rare, so a small JSON body. */
  manage: 9,
  /** The front's verdict on a connection's socket: 1 = slow (above high water past the bound), 0 = keeping up. */
  slow: 10,
  /**
   * Hop tracing (src/metrics/hop-trace.ts): the publish written just before this record is traced;
   * f64 front-in time (monotonic ms). Sampled, one publish in `--latency-sample`.
   */
  trace: 11,
  deliver: 64,
  confirm: 65,
  error: 66,
  pong: 67,
  /** Answer to a `manage` record, or an unsolicited topology event (token 0). */
  manageReply: 68,
  /** A dead-lettered message the shard hands back for routing (its targets may be on other shards). */
  republish: 69,
  /**
   * Flow control: 1 = a subscription queue that keeps up is past its bound and the main thread must
   * hold further publishes for this shard; 0 = it drained, publish again.
   */
  flow: 70,
  /** A slow subscription's private queue discarded `count` messages (since its previous record). */
  dropped: 71,
  /**
   * A traced publish's deliveries were written just before this record: f64 front-in, shard-in
   * (its batch was picked up) and shard-out (written) times, monotonic ms.
   */
  traced: 72,
} as const;
export type RecordKind = (typeof RecordKind)[keyof typeof RecordKind];

/** Publish flag: the message is a dead-lettered copy (the shard drops dead-letter cycles). */
export const PUBLISH_FLAG_DEAD_LETTERED = 1;
/**
 * Publish flag: a light subscription's pattern matches the message (control/light-routes.ts): the
 * shard also puts it into its exchange's carrier queue.
 */
export const PUBLISH_FLAG_LIGHT = 2;
/** Queue argument of a light subscriptions' carrier queue: the (qualified) exchange it carries. */
export const CARRIER_ARG = 'x-shardmq-carries';

/** Connection id the HTTP front uses: HTTP publishes belong to no connection. */
export const HTTP_CONNECTION = 0;
/** Confirm token meaning "no confirm wanted". */
export const NO_TOKEN = 0;

export const AckModeCode = { auto: 0, client: 1 } as const;

export const ConfirmStatus = {
  ok: 0,
  /** The destination does not exist (unknown exchange). */
  notFound: 1,
  /** The shard refused the message (a limit). */
  rejected: 2,
  /** The message could not be written to disk (ENOSPC, EIO): not durable, publisher told. */
  storageFailed: 3,
  /** Main thread only: the cluster node of its queue did not say it has it (NATS or the node away, its buffer full). */
  nodeUnavailable: 4,
} as const;
export type ConfirmStatus = (typeof ConfirmStatus)[keyof typeof ConfirmStatus];

const PUBLISH_FIXED = 24;
const SUBSCRIBE_FIXED = 28;
const DELIVER_FIXED = 32;

const pad8 = (n: number): number => (n + 7) & ~7;

/**
 * What both writers hold: the ring they produce into, and its bytes as a Buffer (for strings) and
 * a DataView (for integers). Protected rather than `#private` so one constructor serves both sides;
 * optimized code loads either kind the same way, so the per-record paths do not pay for it.
 */
export abstract class RingRecordWriter {
  protected readonly producer: RingProducer;
  protected readonly buf: Buffer;
  protected readonly view: DataView;

  constructor(ring: RingProducer) {
    this.producer = ring;
    this.buf = Buffer.from(ring.bytes.buffer, ring.bytes.byteOffset, ring.bytes.byteLength);
    this.view = ring.view;
  }

  get ring(): RingProducer {
    return this.producer;
  }

  /** The records that are just two u32s. */
  protected pair(kind: RecordKind, a: number, b: number): boolean {
    const at = this.producer.reserve(8, kind);
    if (at < 0) return false;
    this.view.setUint32(at, a, true);
    this.view.setUint32(at + 4, b, true);
    return true;
  }
}

/** Main-thread side: writes main → shard records into a shard's inbound ring. */
export class InboundWriter extends RingRecordWriter {
  /**
   * The most a message's record adds to its payload + properties: the deliver header (the
   * larger of publish's and deliver's), a 255-byte exchange and key (AMQP shortstr limits)
   * and padding to 8. max-message-bytes (payload + properties) must leave room for it.
   */
  static readonly MAX_RECORD_OVERHEAD = pad8(DELIVER_FIXED + 255 + 255) + 8;

  /** Bytes a publish record needs, so callers can check limits before copying. */
  static publishSize(exchangeBytes: number, keyBytes: number, payloadBytes: number, propsBytes = 0): number {
    return pad8(PUBLISH_FIXED + exchangeBytes + keyBytes + propsBytes) + payloadBytes;
  }

  /**
   * Writes one publish: `exchange` + `routingKey` say where it goes ('' + queue name for the
   * default exchange), `properties` is an encoded AMQP properties block (src/protocol/properties.ts)
   * or empty. The payload is copied once, from the socket's buffer into the ring. `vhost` is the
   * exchange's vhost number (protocol/vhost-numbers.ts) with `exchange` its local name, or 0 with
   * `exchange` its whole name. Returns false when the ring has no room (nothing was written).
   */
  publish(
    connectionId: number,
    token: number,
    exchange: string,
    routingKey: string,
    properties: Uint8Array | null,
    payload: Uint8Array,
    flags = 0,
    vhost = 0,
  ): boolean {
    return writeMessage(
      this.producer,
      RecordKind.publish,
      connectionId,
      token,
      exchange,
      routingKey,
      properties,
      payload,
      0,
      payload.byteLength,
      flags,
      vhost,
    );
  }

  /** Adds a consumer to `queue`, which this shard owns (declared before, in the same ring). */
  subscribe(
    connectionId: number,
    subscriptionId: number,
    queue: string,
    ackMode: number,
    prefetch: number,
    credit: number,
    creditBytes: number,
    flags = 0,
    streamOffsetJson: string | null = null,
  ): boolean {
    const nameLen = Buffer.byteLength(queue);
    const offsetLen = streamOffsetJson === null ? 0 : Buffer.byteLength(streamOffsetJson);
    const at = this.producer.reserve(SUBSCRIBE_FIXED + nameLen + (streamOffsetJson === null ? 0 : 4 + offsetLen), RecordKind.subscribe);
    if (at < 0) return false;
    if (streamOffsetJson !== null) flags |= SUBSCRIBE_FLAG_STREAM_OFFSET;
    const v = this.view;
    v.setUint32(at, connectionId, true);
    v.setUint32(at + 4, subscriptionId, true);
    v.setUint8(at + 8, flags);
    v.setUint8(at + 9, ackMode);
    v.setUint16(at + 10, 0, true);
    v.setUint16(at + 12, nameLen, true);
    v.setUint16(at + 14, 0, true);
    v.setUint32(at + 16, prefetch, true);
    v.setUint32(at + 20, credit, true);
    v.setUint32(at + 24, creditBytes, true);
    if (nameLen > 0) this.buf.write(queue, at + SUBSCRIBE_FIXED, nameLen, 'utf8');
    if (streamOffsetJson !== null) {
      v.setUint32(at + SUBSCRIBE_FIXED + nameLen, offsetLen, true);
      this.buf.write(streamOffsetJson, at + SUBSCRIBE_FIXED + nameLen + 4, offsetLen, 'utf8');
    }
    return true;
  }

  /** A topology operation for the shard, answered by a manageReply carrying `token`. */
  manage(connectionId: number, token: number, op: ManageOp | GetOp | StreamOp): boolean {
    return writeJson(this.producer, this.buf, RecordKind.manage, connectionId, token, 0, JSON.stringify(op));
  }

  unsubscribe(connectionId: number, subscriptionId: number): boolean {
    return this.pair(RecordKind.unsubscribe, connectionId, subscriptionId);
  }

  /** Acks (or, with `nack`, rejects) one delivery tag of this connection. */
  settle(kind: typeof RecordKind.ack | typeof RecordKind.nack, connectionId: number, tag: number, requeue: boolean): boolean {
    const at = this.producer.reserve(16, kind);
    if (at < 0) return false;
    this.view.setUint32(at, connectionId, true);
    this.view.setUint32(at + 4, requeue ? 1 : 0, true);
    this.view.setFloat64(at + 8, tag, true);
    return true;
  }

  connectionClosed(connectionId: number): boolean {
    return this.pair(RecordKind.connectionClosed, connectionId, 0);
  }

  ping(token: number): boolean {
    return this.pair(RecordKind.ping, token, 0);
  }

  /** Returns delivery credit for one subscription: the socket took `count` more deliveries of `bytes` bytes. */
  credit(connectionId: number, subscriptionId: number, count: number, bytes: number): boolean {
    const at = this.producer.reserve(16, RecordKind.credit);
    if (at < 0) return false;
    this.view.setUint32(at, connectionId, true);
    this.view.setUint32(at + 4, subscriptionId, true);
    this.view.setUint32(at + 8, count, true);
    this.view.setUint32(at + 12, Math.min(bytes, 0xffff_ffff), true);
    return true;
  }

  /** The publish written just before is traced; it reached the front at `frontInMs` (monotonic ms). */
  trace(frontInMs: number): boolean {
    const at = this.producer.reserve(8, RecordKind.trace);
    if (at < 0) return false;
    this.view.setFloat64(at, frontInMs, true);
    return true;
  }

  /** The connection's socket is slow (true) or keeps up again (false). */
  slow(connectionId: number, slow: boolean): boolean {
    return this.pair(RecordKind.slow, connectionId, slow ? 1 : 0);
  }
}

/** Shard side: writes shard → main records into the outbound ring. */
export class OutboundWriter extends RingRecordWriter {
  /** deliver()'s memo of the last exchange: its local name and that name's UTF-8 length. */
  #exchange = '';
  #local = '';
  #localBytes = 0;

  /**
   * Writes one delivery. The properties block and the payload each come either from a
   * Uint8Array the shard owns (a queued message) or from a region of the inbound ring
   * (direct fan-out), given as source + range. `exchange` is the qualified name the shard knows;
   * the record carries its local name, as the vhost's clients (and a cluster peer's) name it.
   */
  deliver(
    connectionId: number,
    subscriptionId: number,
    tag: number,
    redelivered: boolean,
    exchange: string,
    routingKey: string,
    propsSource: Uint8Array,
    propsStart: number,
    propsLength: number,
    source: Uint8Array,
    start: number,
    length: number,
  ): boolean {
    // A delivered message's exchange is usually the last one's (the same string from the decoder's
    // cache, or from the queued message), so its local name and length are worked out once.
    if (exchange !== this.#exchange) {
      this.#exchange = exchange;
      this.#local = localName(exchange);
      this.#localBytes = utf8Length(this.#local);
    }
    const local = this.#local;
    const exLen = this.#localBytes;
    const keyLen = utf8Length(routingKey);
    const head = pad8(DELIVER_FIXED + exLen + keyLen + propsLength);
    const at = this.producer.reserve(head + length, RecordKind.deliver);
    if (at < 0) return false;
    const v = this.view;
    v.setUint32(at, connectionId, true);
    v.setUint32(at + 4, subscriptionId, true);
    v.setFloat64(at + 8, tag, true);
    v.setUint8(at + 16, redelivered ? 1 : 0);
    v.setUint8(at + 17, 0);
    v.setUint16(at + 18, exLen, true);
    v.setUint16(at + 20, keyLen, true);
    v.setUint16(at + 22, 0, true);
    v.setUint32(at + 24, propsLength, true);
    v.setUint32(at + 28, length, true);
    const s0 = at + DELIVER_FIXED;
    const bytes = this.producer.bytes;
    // In JS for ASCII names (writeUtf8): a Buffer.write per string crosses into C++, and a message
    // fanned out to N subscriptions writes its names N times (~20% of a shard's time in the W2 profile).
    if (exLen > 0) writeUtf8(local, bytes, s0);
    if (keyLen > 0) writeUtf8(routingKey, bytes, s0 + exLen);
    if (propsLength > 0) bytes.set(propsSource.subarray(propsStart, propsStart + propsLength), s0 + exLen + keyLen);
    bytes.set(source.subarray(start, start + length), at + head);
    return true;
  }

  /** A dead-lettered copy for the main thread to route (the DLX's queues may live on any shard). */
  republish(exchange: string, routingKey: string, properties: Uint8Array | null, payload: Uint8Array): boolean {
    return writeMessage(this.producer, RecordKind.republish, 0, 0, exchange, routingKey, properties, payload, 0, payload.byteLength);
  }

  /** Answers a manage record (status 0 = ok) or reports a topology event (token 0). */
  manageReply(connectionId: number, token: number, status: number, body: ManageResult): boolean {
    return writeJson(this.producer, this.buf, RecordKind.manageReply, connectionId, token, status, JSON.stringify(body));
  }

  confirm(connectionId: number, token: number, status: ConfirmStatus, count: number): boolean {
    const at = this.producer.reserve(16, RecordKind.confirm);
    if (at < 0) return false;
    const v = this.view;
    v.setUint32(at, connectionId, true);
    v.setUint32(at + 4, token, true);
    v.setUint32(at + 8, status, true);
    v.setUint32(at + 12, count, true);
    return true;
  }

  error(connectionId: number, subscriptionId: number, code: string, message: string): boolean {
    const codeLen = Buffer.byteLength(code);
    const msgLen = Math.min(Buffer.byteLength(message), 1024);
    const at = this.producer.reserve(12 + codeLen + msgLen, RecordKind.error);
    if (at < 0) return false;
    const v = this.view;
    v.setUint32(at, connectionId, true);
    v.setUint32(at + 4, subscriptionId, true);
    v.setUint16(at + 8, codeLen, true);
    this.buf.write(code, at + 12, codeLen, 'utf8');
    // Buffer.write never writes half a character, so a cut message may be shorter than msgLen:
    // the header records what was actually written.
    v.setUint16(at + 10, this.buf.write(message, at + 12 + codeLen, msgLen, 'utf8'), true);
    return true;
  }

  pong(token: number): boolean {
    return this.pair(RecordKind.pong, token, 0);
  }

  /** Flow control on (hold publishes for this shard) or off. */
  flow(on: boolean): boolean {
    return this.pair(RecordKind.flow, on ? 1 : 0, 0);
  }

  /** A traced publish's deliveries were written just before this: its three times so far (monotonic ms). */
  traced(frontInMs: number, shardInMs: number, shardOutMs: number): boolean {
    const at = this.producer.reserve(24, RecordKind.traced);
    if (at < 0) return false;
    this.view.setFloat64(at, frontInMs, true);
    this.view.setFloat64(at + 8, shardInMs, true);
    this.view.setFloat64(at + 16, shardOutMs, true);
    return true;
  }

  /** A slow subscription's private queue discarded `count` messages. */
  dropped(connectionId: number, subscriptionId: number, count: number): boolean {
    const at = this.producer.reserve(16, RecordKind.dropped);
    if (at < 0) return false;
    this.view.setUint32(at, connectionId, true);
    this.view.setUint32(at + 4, subscriptionId, true);
    this.view.setFloat64(at + 8, count, true);
    return true;
  }
}

/** What publish, republish and deliver records all carry: a message as it travels through a ring. */
export interface MessageFields {
  exchange: string;
  routingKey: string;
  /** Properties block region inside the ring's bytes (length 0: none); valid only during the drain callback. */
  propsOffset: number;
  propsLength: number;
  /** Payload region inside the ring's bytes, valid only during the drain callback. */
  payloadOffset: number;
  payloadLength: number;
}

/** A decoded publish (or republish); reused across records (fields are overwritten by each decode). */
export interface PublishRecord extends MessageFields {
  connectionId: number;
  token: number;
  /** PUBLISH_FLAG_* bits. */
  flags: number;
}

/** Subscribe flag: an AMQP exclusive consumer (the shard refuses it, or others, with access_refused). */
export const SUBSCRIBE_FLAG_EXCLUSIVE = 1;
/** The record carries a stream consumer's start (u32 length + JSON after the queue name; a StreamStart from the fronts). */
export const SUBSCRIBE_FLAG_STREAM_OFFSET = 2;

export interface SubscribeRecord {
  connectionId: number;
  subscriptionId: number;
  /** SUBSCRIBE_FLAG_* bits. */
  flags: number;
  ackMode: number;
  prefetch: number;
  credit: number;
  creditBytes: number;
  queue: string;
  /** The x-stream-offset value given (SUBSCRIBE_FLAG_STREAM_OFFSET), undefined when none was. */
  streamOffset: unknown;
}

export interface DeliverRecord extends MessageFields {
  connectionId: number;
  subscriptionId: number;
  tag: number;
  redelivered: boolean;
}

/** A deliver record without its strings: where the exchange and routing key bytes are (deliverHead). */
export interface DeliverHead {
  connectionId: number;
  subscriptionId: number;
  tag: number;
  redelivered: boolean;
  exchangeOffset: number;
  exchangeLength: number;
  keyOffset: number;
  keyLength: number;
  propsOffset: number;
  propsLength: number;
  payloadOffset: number;
  payloadLength: number;
}

export function newDeliverHead(): DeliverHead {
  return {
    connectionId: 0,
    subscriptionId: 0,
    tag: 0,
    redelivered: false,
    exchangeOffset: 0,
    exchangeLength: 0,
    keyOffset: 0,
    keyLength: 0,
    propsOffset: 0,
    propsLength: 0,
    payloadOffset: 0,
    payloadLength: 0,
  };
}

/** Topology operations the main thread sends a shard (JSON: rare, and easy to log durably later). */
export type ManageOp =
  | { op: 'declareQueue'; name: string; durable: boolean; exclusive: boolean; autoDelete: boolean; arguments: Record<string, unknown> }
  | { op: 'deleteQueue'; name: string; ifUnused: boolean; ifEmpty: boolean }
  | { op: 'purgeQueue'; name: string }
  | {
      op: 'declareExchange';
      name: string;
      type: string;
      durable: boolean;
      autoDelete: boolean;
      internal: boolean;
      arguments: Record<string, unknown>;
    }
  | { op: 'deleteExchange'; name: string }
  | { op: 'bindQueue' | 'unbindQueue'; exchange: string; queue: string; routingKey: string; arguments: Record<string, unknown> }
  | { op: 'bindExchange' | 'unbindExchange'; destination: string; source: string; routingKey: string; arguments: Record<string, unknown> };

/**
 * AMQP basic.get, sent as a manage record so its answer rides the manageReply path: the head of
 * `queue` to the connection's get-consumer `subscription` (created on first use with no credit, so
 * nothing else ever goes to it); the deliver record, if any, comes before the answer.
 */
export interface GetOp {
  op: 'get';
  queue: string;
  subscription: number;
  ackMode: number;
}

/**
 * Reads of a stream queue (shard/shard-streams.ts), sent as manage records so the answer rides the
 * manageReply path: its figures, or up to `limit` entries from where `offset` (an x-stream-offset
 * value) says.
 */
export type StreamOp =
  | { op: 'streamInfo'; queue: string }
  | { op: 'streamRead'; queue: string; offset: unknown; limit: number }
  | { op: 'streamCommit'; queue: string; name: string; offset: number };

/** What a stream consumer's subscribe record carries (SUBSCRIBE_FLAG_STREAM_OFFSET): where it starts, and its name for stored offsets. */
export interface StreamStart {
  readonly offset: unknown;
  readonly name: string;
}

/**
 * A consumer's StreamStart from its consumer arguments (any front's: JSON, binary, AMQP): its
 * x-stream-offset and the name its offsets are stored under (x-stream-consumer-name, else
 * `fallbackName`); null when it gave neither (a classic queue's consumer, or a stream's from "next").
 */
export function streamStartOf(args: Readonly<Record<string, unknown>> | null, fallbackName: string): StreamStart | null {
  const offset = args?.['x-stream-offset'];
  const name = args?.['x-stream-consumer-name'];
  if (offset === undefined && name === undefined) return null;
  return {
    offset: typeof offset === 'bigint' ? Number(offset) : (offset ?? 'next'),
    name: typeof name === 'string' && name !== '' ? name : fallbackName,
  };
}

/** A manage answer: counts on success, an error otherwise, or an event such as an auto-deleted queue. */
export interface ManageResult {
  readonly messageCount?: number;
  readonly consumerCount?: number;
  readonly code?: string;
  readonly message?: string;
  readonly event?: 'queueDeleted';
  readonly queue?: string;
  /** basic.get: whether a message was delivered (before this answer). */
  readonly delivered?: boolean;
  /** streamInfo / streamRead: the stream's figures, or the entries read (shard/shard-streams.ts). */
  readonly stream?: Readonly<Record<string, unknown>>;
}

/** Reads records in place from a ring's bytes. */
export class RecordReader {
  readonly #buf: Buffer;
  readonly #bytes: Uint8Array;
  readonly #view: DataView;
  /** deliver()'s scratch: it reads through deliverHead. */
  readonly #head = newDeliverHead();
  readonly #exchanges = new StringCache(255);
  readonly #routingKeys = new StringCache(255);
  /** Exchanges of numbered vhosts: the last one's local bytes, its number, and its qualified name. */
  readonly #vhostExchanges = new StringCache(255);
  #vhostNumber = 0;
  readonly #vhosts: VhostPrefixes;

  /** `vhosts`: the prefixes of numbered vhosts (a shard's inbound reader); by default none (it throws if asked). */
  constructor(bytes: Uint8Array, view: DataView, vhosts: VhostPrefixes = new VhostPrefixes(null)) {
    this.#buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.#bytes = bytes;
    this.#view = view;
    this.#vhosts = vhosts;
  }

  get buffer(): Buffer {
    return this.#buf;
  }

  /**
   * The same bytes as a plain Uint8Array, for copying out: its subarray is a plain view, where a
   * Buffer's goes through FastBuffer's constructor (28 against 42 ns per 128-byte copy here).
   */
  get bytes(): Uint8Array {
    return this.#bytes;
  }

  u32(at: number): number {
    return this.#view.getUint32(at, true);
  }

  f64(at: number): number {
    return this.#view.getFloat64(at, true);
  }

  /** A name of `n` bytes at `at` (written by the other side from a string, so valid UTF-8), through `cache`. */
  #name(cache: StringCache, at: number, n: number): string {
    const buf = this.#buf;
    const hit = cache.lookup(buf, at, n);
    if (hit !== undefined) return hit;
    const s = buf.toString('utf8', at, at + n);
    cache.remember(buf, at, n, s);
    return s;
  }

  /** A numbered vhost's exchange, qualified: `n` bytes of local name at `at` in vhost `vhost`. */
  #vhostExchange(vhost: number, at: number, n: number): string {
    const cache = this.#vhostExchanges;
    if (vhost === this.#vhostNumber) {
      const hit = cache.lookup(this.#buf, at, n);
      if (hit !== undefined) return hit;
    }
    const qualified = qualifiedFlat(this.#vhosts.prefix(vhost), n === 0 ? '' : this.#buf.toString('utf8', at, at + n));
    cache.remember(this.#buf, at, n, qualified);
    this.#vhostNumber = vhost;
    return qualified;
  }

  /** Decodes a publish or republish record; `exchange` is the whole (qualified) name either way. */
  publish(at: number, out: PublishRecord): PublishRecord {
    const v = this.#view;
    out.connectionId = v.getUint32(at, true);
    out.token = v.getUint32(at + 4, true);
    out.flags = v.getUint8(at + 8);
    const exLen = v.getUint16(at + 10, true);
    const keyLen = v.getUint16(at + 12, true);
    const vhost = v.getUint16(at + 14, true);
    const s = at + PUBLISH_FIXED;
    out.exchange = vhost !== 0 ? this.#vhostExchange(vhost, s, exLen) : exLen === 0 ? '' : this.#name(this.#exchanges, s, exLen);
    out.routingKey = keyLen === 0 ? '' : this.#name(this.#routingKeys, s + exLen, keyLen);
    out.propsLength = v.getUint32(at + 16, true);
    out.propsOffset = s + exLen + keyLen;
    out.payloadLength = v.getUint32(at + 20, true);
    out.payloadOffset = at + pad8(PUBLISH_FIXED + exLen + keyLen + out.propsLength);
    return out;
  }

  subscribe(at: number, out: SubscribeRecord): SubscribeRecord {
    const v = this.#view;
    out.connectionId = v.getUint32(at, true);
    out.subscriptionId = v.getUint32(at + 4, true);
    out.flags = v.getUint8(at + 8);
    out.ackMode = v.getUint8(at + 9);
    const nameLen = v.getUint16(at + 12, true);
    out.prefetch = v.getUint32(at + 16, true);
    out.credit = v.getUint32(at + 20, true);
    out.creditBytes = v.getUint32(at + 24, true);
    out.queue = this.#buf.toString('utf8', at + SUBSCRIBE_FIXED, at + SUBSCRIBE_FIXED + nameLen);
    out.streamOffset = undefined;
    if ((out.flags & SUBSCRIBE_FLAG_STREAM_OFFSET) !== 0) {
      const from = at + SUBSCRIBE_FIXED + nameLen;
      const len = v.getUint32(from, true);
      out.streamOffset = JSON.parse(this.#buf.toString('utf8', from + 4, from + 4 + len)) as unknown;
    }
    return out;
  }

  /** The routing key of a deliver record read by deliverHead, through the reader's one-entry cache of keys. */
  deliverKey(h: DeliverHead): string {
    return h.keyLength === 0 ? '' : this.#name(this.#routingKeys, h.keyOffset, h.keyLength);
  }

  /** A deliver record with its exchange and routing key as strings (deliverHead, then the two decodes). */
  deliver(at: number, out: DeliverRecord): DeliverRecord {
    const h = this.deliverHead(at, this.#head);
    out.connectionId = h.connectionId;
    out.subscriptionId = h.subscriptionId;
    out.tag = h.tag;
    out.redelivered = h.redelivered;
    out.exchange = h.exchangeLength === 0 ? '' : this.#buf.toString('utf8', h.exchangeOffset, h.exchangeOffset + h.exchangeLength);
    out.routingKey = h.keyLength === 0 ? '' : this.#buf.toString('utf8', h.keyOffset, h.keyOffset + h.keyLength);
    out.propsOffset = h.propsOffset;
    out.propsLength = h.propsLength;
    out.payloadOffset = h.payloadOffset;
    out.payloadLength = h.payloadLength;
    return out;
  }

  /**
   * A deliver record's fields and where its exchange and routing key bytes are, without decoding
   * them: a binary subscriber gets those bytes copied as they are (BinaryFrameWriter.deliverFromBytes).
   */
  deliverHead(at: number, out: DeliverHead): DeliverHead {
    const v = this.#view;
    out.connectionId = v.getUint32(at, true);
    out.subscriptionId = v.getUint32(at + 4, true);
    out.tag = v.getFloat64(at + 8, true);
    out.redelivered = v.getUint8(at + 16) === 1;
    const exLen = v.getUint16(at + 18, true);
    const keyLen = v.getUint16(at + 20, true);
    out.propsLength = v.getUint32(at + 24, true);
    out.payloadLength = v.getUint32(at + 28, true);
    const s = at + DELIVER_FIXED;
    out.exchangeOffset = s;
    out.exchangeLength = exLen;
    out.keyOffset = s + exLen;
    out.keyLength = keyLen;
    out.propsOffset = s + exLen + keyLen;
    out.payloadOffset = at + pad8(DELIVER_FIXED + exLen + keyLen + out.propsLength);
    return out;
  }

  /** A manage or manageReply record: connection, token, status and its JSON body. */
  json(at: number): { connectionId: number; token: number; status: number; body: unknown } {
    const v = this.#view;
    const len = v.getUint32(at + 12, true);
    return {
      connectionId: v.getUint32(at, true),
      token: v.getUint32(at + 4, true),
      status: v.getUint32(at + 8, true),
      body: JSON.parse(this.#buf.toString('utf8', at + 16, at + 16 + len)) as unknown,
    };
  }

  /** An error record's code and message. */
  error(at: number): { connectionId: number; subscriptionId: number; code: string; message: string } {
    const v = this.#view;
    const codeLen = v.getUint16(at + 8, true);
    const msgLen = v.getUint16(at + 10, true);
    return {
      connectionId: v.getUint32(at, true),
      subscriptionId: v.getUint32(at + 4, true),
      code: this.#buf.toString('utf8', at + 12, at + 12 + codeLen),
      message: this.#buf.toString('utf8', at + 12 + codeLen, at + 12 + codeLen + msgLen),
    };
  }
}

export function newPublishRecord(): PublishRecord {
  return {
    connectionId: 0,
    token: 0,
    flags: 0,
    exchange: '',
    routingKey: '',
    propsOffset: 0,
    propsLength: 0,
    payloadOffset: 0,
    payloadLength: 0,
  };
}
export function newSubscribeRecord(): SubscribeRecord {
  return {
    connectionId: 0,
    subscriptionId: 0,
    flags: 0,
    ackMode: 0,
    prefetch: 0,
    credit: 0,
    creditBytes: 0,
    queue: '',
    streamOffset: undefined,
  };
}
export function newDeliverRecord(): DeliverRecord {
  return {
    connectionId: 0,
    subscriptionId: 0,
    tag: 0,
    redelivered: false,
    exchange: '',
    routingKey: '',
    propsOffset: 0,
    propsLength: 0,
    payloadOffset: 0,
    payloadLength: 0,
  };
}

/**
 * Publish and republish share one layout:
 * [u32 conn][u32 token][u8 flags][u8 0][u16 exLen][u16 keyLen][u16 vhost][u32 propsLen][u32 payloadLen]
 * [exchange][key][properties][pad to 8][payload]
 * (vhost: a vhost number with the exchange's local name, or 0 with its whole name.)
 */
function writeMessage(
  ring: RingProducer,
  kind: RecordKind,
  connectionId: number,
  token: number,
  exchange: string,
  routingKey: string,
  properties: Uint8Array | null,
  payload: Uint8Array,
  start: number,
  length: number,
  flags = 0,
  vhost = 0,
): boolean {
  const exLen = utf8Length(exchange);
  const keyLen = utf8Length(routingKey);
  const propsLen = properties === null ? 0 : properties.byteLength;
  const head = pad8(PUBLISH_FIXED + exLen + keyLen + propsLen);
  const at = ring.reserve(head + length, kind);
  if (at < 0) return false;
  const v = ring.view;
  v.setUint32(at, connectionId, true);
  v.setUint32(at + 4, token, true);
  v.setUint8(at + 8, flags);
  v.setUint8(at + 9, 0);
  v.setUint16(at + 10, exLen, true);
  v.setUint16(at + 12, keyLen, true);
  v.setUint16(at + 14, vhost, true);
  v.setUint32(at + 16, propsLen, true);
  v.setUint32(at + 20, length, true);
  const s = at + PUBLISH_FIXED;
  if (exLen > 0) writeUtf8(exchange, ring.bytes, s);
  if (keyLen > 0) writeUtf8(routingKey, ring.bytes, s + exLen);
  if (propsLen > 0) ring.bytes.set(properties as Uint8Array, s + exLen + keyLen);
  ring.bytes.set(start === 0 && length === payload.byteLength ? payload : payload.subarray(start, start + length), at + head);
  return true;
}

/** manage / manageReply: [u32 conn][u32 token][u32 status][u32 jsonLen][json]. */
function writeJson(
  ring: RingProducer,
  buf: Buffer,
  kind: RecordKind,
  connectionId: number,
  token: number,
  status: number,
  json: string,
): boolean {
  const len = Buffer.byteLength(json);
  const at = ring.reserve(16 + len, kind);
  if (at < 0) return false;
  const v = ring.view;
  v.setUint32(at, connectionId, true);
  v.setUint32(at + 4, token, true);
  v.setUint32(at + 8, status, true);
  v.setUint32(at + 12, len, true);
  buf.write(json, at + 16, len, 'utf8');
  return true;
}
