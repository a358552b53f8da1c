/**
 * Records exchanged between the main thread and a shard through its two rings,
 * laid out field by field. Shared by both sides so they cannot drift.
 *
 * Every record is `[ring header: len, kind][fixed fields][strings][pad to 8][payload]`.
 * Integers are little-endian. Payloads start 8-aligned in the ring because copies
 * into a SharedArrayBuffer are 2-8x slower when misaligned (engine-notes §2).
 *
 * Writers encode straight into ring memory (one copy); readers decode in place
 * into a reusable object, so neither side allocates per record beyond the strings
 * it needs as strings.
 */
import type { RingProducer } from '../ring/spsc-ring.js';
import type { DestinationType } from './destination.js';

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
  deliver: 64,
  confirm: 65,
  error: 66,
  pong: 67,
} as const;
export type RecordKind = (typeof RecordKind)[keyof typeof RecordKind];

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
} as const;
export type ConfirmStatus = (typeof ConfirmStatus)[keyof typeof ConfirmStatus];

const PUBLISH_FIXED = 24;
const SUBSCRIBE_FIXED = 24;
const DELIVER_FIXED = 24;

const pad8 = (n: number): number => (n + 7) & ~7;

/** Main-thread side: writes main → shard records into a shard's inbound ring. */
export class InboundWriter {
  readonly #ring: RingProducer;
  readonly #buf: Buffer;
  readonly #view: DataView;

  constructor(ring: RingProducer) {
    this.#ring = ring;
    this.#buf = Buffer.from(ring.bytes.buffer, ring.bytes.byteOffset, ring.bytes.byteLength);
    this.#view = ring.view;
  }

  get ring(): RingProducer {
    return this.#ring;
  }

  /**
   * Largest header a publish record can have: fixed fields plus a 255-byte exchange and a
   * 255-byte key (AMQP shortstr limits), padded. max-message-bytes must leave room for it.
   */
  static readonly MAX_PUBLISH_HEADER = pad8(PUBLISH_FIXED + 255 + 255);

  /** Bytes a publish record needs, so callers can check limits before copying. */
  static publishSize(exchangeBytes: number, keyBytes: number, payloadBytes: number): number {
    return pad8(PUBLISH_FIXED + exchangeBytes + keyBytes) + payloadBytes;
  }

  /**
   * Writes one publish. `payload` is copied once, from the socket's buffer into the ring.
   * Returns false when the ring has no room (nothing was written).
   */
  publish(
    connectionId: number,
    token: number,
    type: DestinationType,
    exchange: string,
    key: string,
    payload: Uint8Array,
  ): boolean {
    const exLen = Buffer.byteLength(exchange);
    const keyLen = Buffer.byteLength(key);
    const head = pad8(PUBLISH_FIXED + exLen + keyLen);
    const at = this.#ring.reserve(head + payload.byteLength, RecordKind.publish);
    if (at < 0) return false;
    const v = this.#view;
    v.setUint32(at, connectionId, true);
    v.setUint32(at + 4, token, true);
    v.setUint8(at + 8, type);
    v.setUint8(at + 9, 0);
    v.setUint16(at + 10, exLen, true);
    v.setUint16(at + 12, keyLen, true);
    v.setUint16(at + 14, 0, true);
    v.setUint32(at + 16, 0, true); // properties length: AMQP basic properties arrive with the full model
    v.setUint32(at + 20, payload.byteLength, true);
    if (exLen > 0) this.#buf.write(exchange, at + PUBLISH_FIXED, exLen, 'utf8');
    if (keyLen > 0) this.#buf.write(key, at + PUBLISH_FIXED + exLen, keyLen, 'utf8');
    this.#ring.bytes.set(payload, at + head);
    return true;
  }

  subscribe(
    connectionId: number,
    subscriptionId: number,
    type: DestinationType,
    ackMode: number,
    prefetch: number,
    credit: number,
    exchange: string,
    pattern: string,
  ): boolean {
    const exLen = Buffer.byteLength(exchange);
    const keyLen = Buffer.byteLength(pattern);
    const at = this.#ring.reserve(SUBSCRIBE_FIXED + exLen + keyLen, RecordKind.subscribe);
    if (at < 0) return false;
    const v = this.#view;
    v.setUint32(at, connectionId, true);
    v.setUint32(at + 4, subscriptionId, true);
    v.setUint8(at + 8, type);
    v.setUint8(at + 9, ackMode);
    v.setUint16(at + 10, exLen, true);
    v.setUint16(at + 12, keyLen, true);
    v.setUint16(at + 14, 0, true);
    v.setUint32(at + 16, prefetch, true);
    v.setUint32(at + 20, credit, true);
    if (exLen > 0) this.#buf.write(exchange, at + SUBSCRIBE_FIXED, exLen, 'utf8');
    if (keyLen > 0) this.#buf.write(pattern, at + SUBSCRIBE_FIXED + exLen, keyLen, 'utf8');
    return true;
  }

  unsubscribe(connectionId: number, subscriptionId: number): boolean {
    return this.#pair(RecordKind.unsubscribe, connectionId, subscriptionId);
  }

  /** Acks (or, with `nack`, rejects) one delivery tag of this connection. */
  settle(kind: typeof RecordKind.ack | typeof RecordKind.nack, connectionId: number, tag: number, requeue: boolean): boolean {
    const at = this.#ring.reserve(16, kind);
    if (at < 0) return false;
    this.#view.setUint32(at, connectionId, true);
    this.#view.setUint32(at + 4, requeue ? 1 : 0, true);
    this.#view.setFloat64(at + 8, tag, true);
    return true;
  }

  connectionClosed(connectionId: number): boolean {
    return this.#pair(RecordKind.connectionClosed, connectionId, 0);
  }

  ping(token: number): boolean {
    return this.#pair(RecordKind.ping, token, 0);
  }

  /** Returns delivery credit for one subscription: the socket took `count` more deliveries. */
  credit(connectionId: number, subscriptionId: number, count: number): boolean {
    const at = this.#ring.reserve(12, RecordKind.credit);
    if (at < 0) return false;
    this.#view.setUint32(at, connectionId, true);
    this.#view.setUint32(at + 4, subscriptionId, true);
    this.#view.setUint32(at + 8, count, true);
    return true;
  }

  #pair(kind: RecordKind, a: number, b: number): boolean {
    const at = this.#ring.reserve(8, kind);
    if (at < 0) return false;
    this.#view.setUint32(at, a, true);
    this.#view.setUint32(at + 4, b, true);
    return true;
  }
}

/** Shard side: writes shard → main records into the outbound ring. */
export class OutboundWriter {
  readonly #ring: RingProducer;
  readonly #buf: Buffer;
  readonly #view: DataView;

  constructor(ring: RingProducer) {
    this.#ring = ring;
    this.#buf = Buffer.from(ring.bytes.buffer, ring.bytes.byteOffset, ring.bytes.byteLength);
    this.#view = ring.view;
  }

  get ring(): RingProducer {
    return this.#ring;
  }

  /**
   * Writes one delivery. The payload is either a Uint8Array the shard owns (a queued
   * message) or a region of the inbound ring (direct fan-out), given as source+range.
   */
  deliver(
    connectionId: number,
    subscriptionId: number,
    tag: number,
    redelivered: boolean,
    type: DestinationType,
    key: string,
    source: Uint8Array,
    start: number,
    length: number,
  ): boolean {
    const keyLen = Buffer.byteLength(key);
    const head = pad8(DELIVER_FIXED + keyLen);
    const at = this.#ring.reserve(head + length, RecordKind.deliver);
    if (at < 0) return false;
    const v = this.#view;
    v.setUint32(at, connectionId, true);
    v.setUint32(at + 4, subscriptionId, true);
    v.setFloat64(at + 8, tag, true);
    v.setUint8(at + 16, redelivered ? 1 : 0);
    v.setUint8(at + 17, type);
    v.setUint16(at + 18, keyLen, true);
    v.setUint32(at + 20, length, true);
    if (keyLen > 0) this.#buf.write(key, at + DELIVER_FIXED, keyLen, 'utf8');
    this.#ring.bytes.set(source.subarray(start, start + length), at + head);
    return true;
  }

  confirm(connectionId: number, token: number, status: ConfirmStatus, count: number): boolean {
    const at = this.#ring.reserve(16, RecordKind.confirm);
    if (at < 0) return false;
    const v = this.#view;
    v.setUint32(at, connectionId, true);
    v.setUint32(at + 4, token, true);
    v.setUint32(at + 8, status, true);
    v.setUint32(at + 12, count, true);
    return true;
  }

  error(connectionId: number, subscriptionId: number, code: string, message: string): boolean {
    const codeLen = Buffer.byteLength(code);
    const msgLen = Math.min(Buffer.byteLength(message), 1024);
    const at = this.#ring.reserve(12 + codeLen + msgLen, RecordKind.error);
    if (at < 0) return false;
    const v = this.#view;
    v.setUint32(at, connectionId, true);
    v.setUint32(at + 4, subscriptionId, true);
    v.setUint16(at + 8, codeLen, true);
    this.#buf.write(code, at + 12, codeLen, 'utf8');
    // Buffer.write never writes half a character, so a cut message may be shorter than msgLen:
    // the header records what was actually written.
    v.setUint16(at + 10, this.#buf.write(message, at + 12 + codeLen, msgLen, 'utf8'), true);
    return true;
  }

  pong(token: number): boolean {
    const at = this.#ring.reserve(8, RecordKind.pong);
    if (at < 0) return false;
    this.#view.setUint32(at, token, true);
    this.#view.setUint32(at + 4, 0, true);
    return true;
  }
}

/** A decoded publish; reused across records (fields are overwritten by each decode). */
export interface PublishRecord {
  connectionId: number;
  token: number;
  type: DestinationType;
  exchange: string;
  key: string;
  /** Payload region inside the ring's bytes, valid only during the drain callback. */
  payloadOffset: number;
  payloadLength: number;
}

export interface SubscribeRecord {
  connectionId: number;
  subscriptionId: number;
  type: DestinationType;
  ackMode: number;
  prefetch: number;
  credit: number;
  exchange: string;
  pattern: string;
}

export interface DeliverRecord {
  connectionId: number;
  subscriptionId: number;
  tag: number;
  redelivered: boolean;
  type: DestinationType;
  key: string;
  payloadOffset: number;
  payloadLength: number;
}

/** Reads records in place from a ring's bytes. */
export class RecordReader {
  readonly #buf: Buffer;
  readonly #view: DataView;

  constructor(bytes: Uint8Array, view: DataView) {
    this.#buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.#view = view;
  }

  get buffer(): Buffer {
    return this.#buf;
  }

  u32(at: number): number {
    return this.#view.getUint32(at, true);
  }

  f64(at: number): number {
    return this.#view.getFloat64(at, true);
  }

  publish(at: number, out: PublishRecord): PublishRecord {
    const v = this.#view;
    out.connectionId = v.getUint32(at, true);
    out.token = v.getUint32(at + 4, true);
    out.type = v.getUint8(at + 8) as DestinationType;
    const exLen = v.getUint16(at + 10, true);
    const keyLen = v.getUint16(at + 12, true);
    const s = at + PUBLISH_FIXED;
    out.exchange = exLen === 0 ? '' : this.#buf.toString('utf8', s, s + exLen);
    out.key = keyLen === 0 ? '' : this.#buf.toString('utf8', s + exLen, s + exLen + keyLen);
    out.payloadLength = v.getUint32(at + 20, true);
    out.payloadOffset = at + pad8(PUBLISH_FIXED + exLen + keyLen);
    return out;
  }

  subscribe(at: number, out: SubscribeRecord): SubscribeRecord {
    const v = this.#view;
    out.connectionId = v.getUint32(at, true);
    out.subscriptionId = v.getUint32(at + 4, true);
    out.type = v.getUint8(at + 8) as DestinationType;
    out.ackMode = v.getUint8(at + 9);
    const exLen = v.getUint16(at + 10, true);
    const keyLen = v.getUint16(at + 12, true);
    out.prefetch = v.getUint32(at + 16, true);
    out.credit = v.getUint32(at + 20, true);
    const s = at + SUBSCRIBE_FIXED;
    out.exchange = this.#buf.toString('utf8', s, s + exLen);
    out.pattern = this.#buf.toString('utf8', s + exLen, s + exLen + keyLen);
    return out;
  }

  deliver(at: number, out: DeliverRecord): DeliverRecord {
    const v = this.#view;
    out.connectionId = v.getUint32(at, true);
    out.subscriptionId = v.getUint32(at + 4, true);
    out.tag = v.getFloat64(at + 8, true);
    out.redelivered = v.getUint8(at + 16) === 1;
    out.type = v.getUint8(at + 17) as DestinationType;
    const keyLen = v.getUint16(at + 18, true);
    out.payloadLength = v.getUint32(at + 20, true);
    out.key = keyLen === 0 ? '' : this.#buf.toString('utf8', at + DELIVER_FIXED, at + DELIVER_FIXED + keyLen);
    out.payloadOffset = at + pad8(DELIVER_FIXED + keyLen);
    return out;
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
  return { connectionId: 0, token: 0, type: 1, exchange: '', key: '', payloadOffset: 0, payloadLength: 0 };
}
export function newSubscribeRecord(): SubscribeRecord {
  return { connectionId: 0, subscriptionId: 0, type: 1, ackMode: 0, prefetch: 0, credit: 0, exchange: '', pattern: '' };
}
export function newDeliverRecord(): DeliverRecord {
  return { connectionId: 0, subscriptionId: 0, tag: 0, redelivered: false, type: 1, key: '', payloadOffset: 0, payloadLength: 0 };
}
