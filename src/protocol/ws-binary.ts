/**
 * The fast binary WebSocket protocol, v1 (docs/protocol.md, byte by byte): the wire vocabulary
 * shared by the encoder (`ws-binary-encode.ts`), the streaming decoder (`ws-binary-decode.ts`) and
 * the properties codec (`properties.ts`).
 *
 * One WebSocket binary message is one frame; a frame is zero or more ops, each
 * `[u8 opcode][u32 bodyLength][body]`, little-endian. Client → server opcodes are < 0x40,
 * server → client opcodes are 0x40–0x7F, so an op sent the wrong way is caught at its first byte
 * (the ring record kinds follow the same split).
 *
 * This module holds constants, types, the error class and a few byte primitives. It imports
 * nothing at run time from its siblings (only types), so they can all import it without a cycle.
 * It does not use `Buffer`, so the client side also runs where there is no Node.
 */
import { ErrorCode } from './errors.js';
import type { HeaderTable } from './field-table.js';

/** `Sec-WebSocket-Protocol` value of this version. Optional: a connection that names none speaks v1. */
export const SUBPROTOCOL = 'shardmq.v1';

/**
 * The handshake's field naming the vhost (an upgrade request header; `/` when absent). Browsers,
 * which cannot set it, give `?vhost=` on the URL instead.
 */
export const VHOST_HEADER = 'x-shardmq-vhost';

/** `[u8 opcode][u32 bodyLength]` in front of every op body. */
export const OP_HEADER_BYTES = 5;

export const Opcode = {
  // client → server (0x01–0x3F)
  PUBLISH: 0x01,
  PUBLISH_BATCH: 0x02,
  CONFIRM_SELECT: 0x03,
  SUBSCRIBE: 0x04,
  UNSUBSCRIBE: 0x05,
  ACK: 0x06,
  NACK: 0x07,
  FLUSH: 0x08,
  COMMIT_OFFSET: 0x09,
  DECLARE_EXCHANGE: 0x10,
  DELETE_EXCHANGE: 0x11,
  DECLARE_QUEUE: 0x12,
  DELETE_QUEUE: 0x13,
  PURGE_QUEUE: 0x14,
  BIND_QUEUE: 0x15,
  UNBIND_QUEUE: 0x16,
  BIND_EXCHANGE: 0x17,
  UNBIND_EXCHANGE: 0x18,
  // server → client (0x40–0x7F)
  DELIVER: 0x40,
  CONFIRM: 0x41,
  OK: 0x42,
  ERROR: 0x43,
  CANCEL: 0x44,
  CREDIT: 0x45,
  DROPPED: 0x46,
  STREAM: 0x47,
} as const;
export type Opcode = (typeof Opcode)[keyof typeof Opcode];

/** First server → client opcode: everything below it travels client → server. */
export const FIRST_SERVER_OPCODE = 0x40;

/** Opcode → name, for error messages and logs. */
export const OPCODE_NAMES: Readonly<Record<number, string>> = Object.freeze(
  Object.fromEntries(Object.entries(Opcode).map(([name, code]) => [code, name])),
);

/** Name of an opcode, or its hex for unknown ones. */
export function opcodeName(opcode: number): string {
  return OPCODE_NAMES[opcode] ?? `0x${hex2(opcode)}`;
}

/**
 * Smallest legal body of each op (its fixed fields, empty strings, an empty table). An op whose
 * length says less is rejected before any of its body is read or buffered.
 */
export const OP_MIN_BODY: Readonly<Record<Opcode, number>> = {
  [Opcode.PUBLISH]: 3, // flags, u16 destination length
  [Opcode.PUBLISH_BATCH]: 7, // flags, u16 destination length, u32 count
  [Opcode.CONFIRM_SELECT]: 4,
  [Opcode.SUBSCRIBE]: 15, // request, subscription, ack mode, prefetch, u16 destination length
  [Opcode.UNSUBSCRIBE]: 8,
  [Opcode.ACK]: 9,
  [Opcode.NACK]: 9,
  [Opcode.FLUSH]: 4,
  [Opcode.COMMIT_OFFSET]: 16, // request, subscription, u64 offset
  [Opcode.DECLARE_EXCHANGE]: 11, // request, flags, name, type, table count
  [Opcode.DELETE_EXCHANGE]: 6,
  [Opcode.DECLARE_QUEUE]: 10,
  [Opcode.DELETE_QUEUE]: 6,
  [Opcode.PURGE_QUEUE]: 6,
  [Opcode.BIND_QUEUE]: 12, // request, flags, three shortstrs, table count
  [Opcode.UNBIND_QUEUE]: 12,
  [Opcode.BIND_EXCHANGE]: 12,
  [Opcode.UNBIND_EXCHANGE]: 12,
  [Opcode.DELIVER]: 15, // subscription, tag, flags, exchange, routing key
  [Opcode.CONFIRM]: 9,
  [Opcode.OK]: 14, // request, op, message count, consumer count, name
  [Opcode.ERROR]: 7, // request, code, u16 message length
  [Opcode.CANCEL]: 7,
  [Opcode.CREDIT]: 8, // messages, bytes
  [Opcode.DROPPED]: 14, // subscription, u64 count, u16 destination length
  [Opcode.STREAM]: 8, // subscription, stream
};

/** Ops whose body has exactly this size; any other length is rejected at the header. */
export const OP_FIXED_BODY: Readonly<Partial<Record<Opcode, number>>> = {
  [Opcode.CONFIRM_SELECT]: 4,
  [Opcode.UNSUBSCRIBE]: 8,
  [Opcode.ACK]: 9,
  [Opcode.NACK]: 9,
  [Opcode.CONFIRM]: 9,
  [Opcode.FLUSH]: 4,
  [Opcode.COMMIT_OFFSET]: 16,
  [Opcode.CREDIT]: 8,
  [Opcode.STREAM]: 8,
};

// ---------------------------------------------------------------------------------------------
// Flag bits. Bits not named here are reserved: senders write 0, decoders reject a 1 (bad_frame),
// so a v1 peer never silently ignores something a later version meant.

export const PublishFlag = { PROPERTIES: 0x01 } as const;
/**
 * STREAM: the delivery is one of a shared stream (its subscriptionId field is the stream id of a
 * STREAM op, its tag 0): the same bytes go to every subscriber of the stream.
 */
export const DeliverFlag = { PROPERTIES: 0x01, REDELIVERED: 0x02, STREAM: 0x04 } as const;
export const SettleFlag = { MULTIPLE: 0x01, REQUEUE: 0x02 } as const;
export const ConfirmFlag = { MULTIPLE: 0x01, NACK: 0x02 } as const;
export const ExchangeDeclareFlag = { PASSIVE: 0x01, DURABLE: 0x02, AUTO_DELETE: 0x04, INTERNAL: 0x08 } as const;
export const QueueDeclareFlag = { PASSIVE: 0x01, DURABLE: 0x02, EXCLUSIVE: 0x04, AUTO_DELETE: 0x08 } as const;
export const ExchangeDeleteFlag = { IF_UNUSED: 0x01 } as const;
export const QueueDeleteFlag = { IF_UNUSED: 0x01, IF_EMPTY: 0x02 } as const;

/** SUBSCRIBE ack mode byte: bit 0 the mode; SHARED (auto only) lets the broker deliver through a shared stream. */
export const AckModeByte = { auto: 0, client: 1 } as const;
export const SUBSCRIBE_SHARED = 0x02;
export type AckMode = keyof typeof AckModeByte;

/**
 * Publish credit every connection starts with, before the server's first CREDIT op (HTTP/2's
 * initial window): a PUBLISH takes one message and its payload + properties bytes, a PUBLISH_BATCH
 * one message and those bytes per entry. A publish may start while any byte credit is left (so a
 * message larger than the window still goes, alone); publishing with no message credit or no byte
 * credit left is `credit_exceeded`, and the server closes the connection (docs/protocol.md §6a).
 */
export const INITIAL_PUBLISH_CREDIT = { messages: 1024, bytes: 1024 * 1024 } as const;

// ---------------------------------------------------------------------------------------------
// Limits. Each is a decoder option (ws-binary-decode.ts) with these defaults.

/**
 * Largest op body. A length prefix is attacker-controlled and an op split across chunks is
 * buffered whole, so this bounds what one op can make the decoder allocate. 16 MiB matches the
 * largest HTTP body the broker accepts (DEFAULT_MAX_BODY_BYTES); the server passes its (smaller)
 * WebSocket frame limit.
 */
export const MAX_OP_BODY_BYTES = 16 * 1024 * 1024;
/**
 * Most ops (batch entries count one each) one `push()`/`decodeFrame()` call will dispatch. A frame
 * of 5-byte ops or 4-byte batch entries would otherwise be millions of events for one message and
 * hold the main thread; 65,536 covers a 1 MiB frame of ~16-byte messages.
 */
export const MAX_FRAME_OPS = 65_536;
/** AMQP shortstr: names, routing keys, exchange types, property strings, table keys. */
export const MAX_SHORTSTR_BYTES = 255;
/**
 * Longest destination: `/exchange/` + a 255-byte exchange + `/` + a 255-byte routing key. Longer is
 * not a name any destination can hold, so it is `too_large` before it is decoded.
 */
export const MAX_DESTINATION_BYTES = 10 + 255 + 1 + 255;
/** ERROR/CANCEL messages are u16-prefixed; the encoder cuts them here (at a character boundary). */
export const MAX_ERROR_MESSAGE_BYTES = 1024;
/** Bytes of the offending input quoted (as hex) in a ProtocolError: an op header and then some. */
export const MAX_EXCERPT_BYTES = 32;

// ---------------------------------------------------------------------------------------------
// Error codes

/**
 * Codes an ERROR op may carry besides the ones in errors.ts: RabbitMQ's channel and connection
 * exception names (AMQP 0-9-1 reply codes in the comments), so AMQP users recognise them.
 */
export const AmqpErrorCode = {
  /** 404: no such exchange or queue. */
  notFound: 'not_found',
  /** 406: declare with different arguments, delete if-unused/if-empty refused (AMQP also uses it for an unknown delivery tag; shardmq sends unknown_tag). */
  preconditionFailed: 'precondition_failed',
  /** 403: e.g. publishing to an internal exchange, declaring an `amq.` name. */
  accessRefused: 'access_refused',
  /** 405: an exclusive queue of another connection. */
  resourceLocked: 'resource_locked',
  /** 530: e.g. redeclaring an exchange with another type. */
  notAllowed: 'not_allowed',
  /** 503: e.g. an unknown exchange type. */
  commandInvalid: 'command_invalid',
} as const;
export type AmqpErrorCode = (typeof AmqpErrorCode)[keyof typeof AmqpErrorCode];

export type ProtocolErrorCode = typeof ErrorCode.badFrame | typeof ErrorCode.tooLarge;

/**
 * Malformed or over-limit binary input. `code` is stable (`bad_frame` or `too_large`, the wire
 * codes of errors.ts), `state` says where the decoder was (a decoder state such as `OP_START`, or
 * `OP.field` such as `PUBLISH.destination` inside a body), `offset` is the byte position (inside
 * the chunk for framing errors, inside the op body or properties block for field errors), and
 * `excerpt` is the hex of at most MAX_EXCERPT_BYTES bytes from there.
 */
export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
  readonly code: ProtocolErrorCode;
  readonly state: string;
  readonly offset: number;
  readonly excerpt: string;

  constructor(code: ProtocolErrorCode, state: string, detail: string, bytes?: Uint8Array, offset = 0) {
    const excerpt = bytes === undefined ? '' : hexExcerpt(bytes, offset);
    super(`${detail} (state ${state}, byte ${offset}${excerpt === '' ? '' : `: ${excerpt}`})`);
    this.code = code;
    this.state = state;
    this.offset = offset;
    this.excerpt = excerpt;
  }
}

/** Hex of `bytes[offset, offset + MAX_EXCERPT_BYTES)`, space separated, `…` when cut. */
export function hexExcerpt(bytes: Uint8Array, offset: number, max = MAX_EXCERPT_BYTES): string {
  const start = Math.max(0, Math.min(offset, bytes.length));
  const end = Math.min(bytes.length, start + max);
  let out = '';
  for (let i = start; i < end; i++) out += (i === start ? '' : ' ') + hex2(bytes[i]);
  return end < bytes.length ? out + ' …' : out;
}

function hex2(n: number): string {
  return (n < 16 ? '0' : '') + n.toString(16);
}

// ---------------------------------------------------------------------------------------------
// Events: what the decoder hands to a dispatcher, one object per op.
//
// Views (`payload`, `payloads[i]`, `properties`) alias the bytes the decoder was given when the op
// was whole in one chunk (zero copy; valid until the caller reuses that chunk, e.g. until a uWS
// message handler returns), and alias a private copy when the op was split across chunks (valid
// forever). Strings and numbers are always detached.

export interface PublishEvent {
  readonly destination: string;
  /** Raw properties block (properties.ts), checked unless the decoder was told not to; null when absent. */
  readonly properties: Uint8Array | null;
  readonly payload: Uint8Array;
}

/** N messages to one destination with one shared properties block; they take N confirm numbers. */
export interface PublishBatchEvent {
  readonly destination: string;
  readonly properties: Uint8Array | null;
  readonly payloads: Uint8Array[];
}

export interface ConfirmSelectEvent {
  readonly requestId: number;
}

export interface SubscribeEvent {
  readonly requestId: number;
  readonly subscriptionId: number;
  readonly destination: string;
  readonly ackMode: AckMode;
  /** Unacked deliveries allowed for client ack; 0 = no limit (AMQP basic.qos). */
  readonly prefetch: number;
  /** The client takes deliveries through a shared stream (auto ack only: SUBSCRIBE_SHARED). */
  readonly shared: boolean;
  /** Consumer arguments (empty when the frame had none): `x-stream-offset`, `x-stream-consumer-name` for a stream. */
  readonly arguments: HeaderTable;
}

export interface UnsubscribeEvent {
  readonly requestId: number;
  readonly subscriptionId: number;
}

/** A stream consumer stores `offset` as the last it processed (its consumer name: see SUBSCRIBE's arguments). */
export interface CommitOffsetEvent {
  readonly requestId: number;
  readonly subscriptionId: number;
  readonly offset: number;
}

export interface AckEvent {
  /** Delivery tag (≤ 2^53 − 1). With `multiple`, every tag up to it; tag 0 + multiple = all. */
  readonly tag: number;
  readonly multiple: boolean;
}

export interface NackEvent extends AckEvent {
  readonly requeue: boolean;
}

export interface DeclareExchangeEvent {
  readonly requestId: number;
  readonly name: string;
  /** `direct`, `fanout`, `topic`, `headers` (or a plugin's type: the server decides). */
  readonly type: string;
  readonly passive: boolean;
  readonly durable: boolean;
  readonly autoDelete: boolean;
  readonly internal: boolean;
  readonly arguments: HeaderTable;
}

export interface DeleteExchangeEvent {
  readonly requestId: number;
  readonly name: string;
  readonly ifUnused: boolean;
}

export interface DeclareQueueEvent {
  readonly requestId: number;
  /** Empty: the server names it (`amq.gen-…`) and returns the name in OK. */
  readonly name: string;
  readonly passive: boolean;
  readonly durable: boolean;
  readonly exclusive: boolean;
  readonly autoDelete: boolean;
  readonly arguments: HeaderTable;
}

export interface DeleteQueueEvent {
  readonly requestId: number;
  readonly name: string;
  readonly ifUnused: boolean;
  readonly ifEmpty: boolean;
}

export interface PurgeQueueEvent {
  readonly requestId: number;
  readonly name: string;
}

/** BIND_QUEUE and UNBIND_QUEUE. */
export interface QueueBindingEvent {
  readonly requestId: number;
  readonly queue: string;
  readonly exchange: string;
  readonly routingKey: string;
  readonly arguments: HeaderTable;
}

/** BIND_EXCHANGE and UNBIND_EXCHANGE: messages flow from `source` to `destination`. */
export interface ExchangeBindingEvent {
  readonly requestId: number;
  readonly destination: string;
  readonly source: string;
  readonly routingKey: string;
  readonly arguments: HeaderTable;
}

export interface DeliverEvent {
  /** The subscription, or with `stream` the stream id (every subscription a STREAM op mapped to it). */
  readonly subscriptionId: number;
  /** A delivery of a shared stream (tag 0: auto-ack, settled on send). */
  readonly stream: boolean;
  readonly tag: number;
  readonly redelivered: boolean;
  /** `amq.topic` for /topic/, '' (default exchange) for /queue/, the exchange for /exchange/. */
  readonly exchange: string;
  readonly routingKey: string;
  readonly properties: Uint8Array | null;
  readonly payload: Uint8Array;
}

export interface ConfirmEvent {
  /** Publish sequence number (from 1 after CONFIRM_SELECT); with `multiple`, all up to it. */
  readonly seq: number;
  readonly multiple: boolean;
  /** True: the broker did not take the message(s) (AMQP basic.nack). */
  readonly nack: boolean;
}

export interface OkEvent {
  readonly requestId: number;
  /** Opcode of the request this answers. */
  readonly op: number;
  /** Queue name (DECLARE_QUEUE, notably server-named ones), else ''. */
  readonly name: string;
  /** DECLARE_QUEUE: ready messages; PURGE_QUEUE/DELETE_QUEUE: messages removed; else 0. */
  readonly messageCount: number;
  /** DECLARE_QUEUE: consumers; else 0. */
  readonly consumerCount: number;
}

export interface ErrorEvent {
  /** Request it answers, or 0 when it answers none (a publish, an ack, the connection). */
  readonly requestId: number;
  readonly code: string;
  readonly message: string;
}

/** The server ended a subscription on its own (its queue was deleted, its shard was lost…). */
export interface CancelEvent {
  readonly subscriptionId: number;
  readonly code: string;
  readonly message: string;
}

/** FLUSH: answered by OK once everything the connection published before it has been routed. */
export interface FlushEvent {
  readonly requestId: number;
}

/** CREDIT: the server grants this much more publish credit (added to what is left). */
export interface CreditEvent {
  readonly messages: number;
  readonly bytes: number;
}

/** STREAM: deliveries of `subscriptionId` come from now on as DELIVERs with the STREAM flag and `streamId`. */
export interface StreamEvent {
  readonly subscriptionId: number;
  readonly streamId: number;
}

/** DROPPED: the broker discarded `count` messages of a slow subscription (since the last DROPPED). */
export interface DroppedEvent {
  readonly subscriptionId: number;
  readonly count: number;
  readonly destination: string;
}

/** Server side: receives the ops clients send. One method per op, named like nats' processX. */
export interface BinaryDispatcher {
  processPublish(ev: PublishEvent): void;
  processPublishBatch(ev: PublishBatchEvent): void;
  processConfirmSelect(ev: ConfirmSelectEvent): void;
  processSubscribe(ev: SubscribeEvent): void;
  processUnsubscribe(ev: UnsubscribeEvent): void;
  processCommitOffset(ev: CommitOffsetEvent): void;
  processAck(ev: AckEvent): void;
  processNack(ev: NackEvent): void;
  processFlush(ev: FlushEvent): void;
  processDeclareExchange(ev: DeclareExchangeEvent): void;
  processDeleteExchange(ev: DeleteExchangeEvent): void;
  processDeclareQueue(ev: DeclareQueueEvent): void;
  processDeleteQueue(ev: DeleteQueueEvent): void;
  processPurgeQueue(ev: PurgeQueueEvent): void;
  processBindQueue(ev: QueueBindingEvent): void;
  processUnbindQueue(ev: QueueBindingEvent): void;
  processBindExchange(ev: ExchangeBindingEvent): void;
  processUnbindExchange(ev: ExchangeBindingEvent): void;
}

/** Client side: receives the ops the server sends. */
export interface BinaryClientDispatcher {
  processDeliver(ev: DeliverEvent): void;
  processConfirm(ev: ConfirmEvent): void;
  processOk(ev: OkEvent): void;
  processError(ev: ErrorEvent): void;
  processCancel(ev: CancelEvent): void;
  processCredit(ev: CreditEvent): void;
  processDropped(ev: DroppedEvent): void;
  processStream(ev: StreamEvent): void;
}

// ---------------------------------------------------------------------------------------------
// Byte primitives

const TWO_32 = 0x1_0000_0000;
/** Largest high word of a u64 that is still a safe integer (2^53 − 1 >> 32). */
const MAX_SAFE_HIGH = 0x1f_ffff;

const f64Scratch = new DataView(new ArrayBuffer(8));

const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const utf8Encoder = new TextEncoder();

/** UTF-8 length of `s` as TextEncoder writes it (a lone surrogate becomes U+FFFD, 3 bytes). */
export function utf8Length(s: string): number {
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) {
      n += 1;
    } else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 2; // 2 code units → 4 bytes
        i++;
      } else {
        n += 2;
      }
    } else {
      n += 2;
    }
  }
  return n;
}

/**
 * Writes `s` as UTF-8 at `target[offset]` and returns the offset after it. The caller guarantees
 * room for 3 bytes per UTF-16 unit. ASCII is copied by hand: for the short names this protocol
 * carries, that beats a call into the encoder, which also allocates its result object.
 */
export function writeUtf8(s: string, target: Uint8Array, offset: number): number {
  const n = s.length;
  let i = 0;
  for (; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x80) break;
    target[offset + i] = c;
  }
  if (i === n) return offset + n;
  const r = utf8Encoder.encodeInto(s.slice(i), target.subarray(offset + i));
  return offset + i + r.written;
}

/**
 * Decodes well-formed UTF-8; returns undefined for anything else (overlong forms, surrogates,
 * truncated sequences) so callers raise their own ProtocolError. A byte-order mark is kept.
 */
export function decodeUtf8(bytes: Uint8Array, start: number, end: number): string | undefined {
  if (end - start <= 16) {
    // Short ASCII by hand: a TextDecoder call costs more than the loop for names and keys.
    let s = '';
    let i = start;
    for (; i < end; i++) {
      const c = bytes[i];
      if (c >= 0x80) break;
      s += String.fromCharCode(c);
    }
    if (i === end) return s;
  }
  try {
    return utf8Decoder.decode(bytes.subarray(start, end));
  } catch {
    return undefined;
  }
}

/** True when `bytes[start, end)` is well-formed UTF-8 (RFC 3629), checked without allocating. */
export function isUtf8(bytes: Uint8Array, start: number, end: number): boolean {
  let i = start;
  while (i < end) {
    const c = bytes[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    let need: number;
    let min: number;
    let max = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) {
      need = 1;
      min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
      need = 2;
      min = c === 0xe0 ? 0xa0 : 0x80; // no overlong 3-byte forms
      if (c === 0xed) max = 0x9f; // no UTF-16 surrogates
    } else if (c >= 0xf0 && c <= 0xf4) {
      need = 3;
      min = c === 0xf0 ? 0x90 : 0x80; // no overlong 4-byte forms
      if (c === 0xf4) max = 0x8f; // nothing above U+10FFFF
    } else {
      return false;
    }
    if (end - i <= need) return false;
    const second = bytes[i + 1];
    if (second < min || second > max) return false;
    for (let k = 2; k <= need; k++) {
      const b = bytes[i + k];
      if (b < 0x80 || b > 0xbf) return false;
    }
    i += need + 1;
  }
  return true;
}

export function readU32(b: Uint8Array, at: number): number {
  return (b[at] | (b[at + 1] << 8) | (b[at + 2] << 16) | (b[at + 3] << 24)) >>> 0;
}

export function writeU16(b: Uint8Array, at: number, v: number): void {
  b[at] = v & 0xff;
  b[at + 1] = (v >>> 8) & 0xff;
}

export function writeU32(b: Uint8Array, at: number, v: number): void {
  b[at] = v & 0xff;
  b[at + 1] = (v >>> 8) & 0xff;
  b[at + 2] = (v >>> 16) & 0xff;
  b[at + 3] = (v >>> 24) & 0xff;
}

/** Writes a non-negative safe integer as u64 (low word first). The caller has validated it. */
export function writeU64(b: Uint8Array, at: number, v: number): void {
  writeU32(b, at, v >>> 0);
  writeU32(b, at + 4, Math.floor(v / TWO_32));
}

export function writeF64(b: Uint8Array, at: number, v: number): void {
  f64Scratch.setFloat64(0, v, true);
  for (let k = 0; k < 8; k++) b[at + k] = f64Scratch.getUint8(k);
}

/** True for the integers a u64 field can carry from JS: 0 ≤ v ≤ 2^53 − 1. */
export function isU64(v: number): boolean {
  return Number.isSafeInteger(v) && v >= 0;
}

export function isU32(v: number): boolean {
  return Number.isInteger(v) && v >= 0 && v <= 0xffff_ffff;
}

/**
 * A cursor over one whole op body (or properties block): bounds-checked reads that fail with a
 * ProtocolError naming the op and field. One instance is reused for every op a decoder sees, so
 * reading allocates nothing but the strings and views it returns.
 */
export class FieldReader {
  bytes: Uint8Array = new Uint8Array(0);
  pos = 0;
  end = 0;
  /** Prefix of the error state, e.g. `PUBLISH` → `PUBLISH.destination`. */
  context = '';
  /** Header-table items (entries plus array elements) still allowed in this op or block. */
  entriesLeft = 0;

  reset(bytes: Uint8Array, start: number, end: number, context: string): this {
    this.bytes = bytes;
    this.pos = start;
    this.end = end;
    this.context = context;
    return this;
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  fail(code: ProtocolErrorCode, field: string, detail: string, at = this.pos): never {
    throw new ProtocolError(code, `${this.context}.${field}`, detail, this.bytes, at);
  }

  need(n: number, field: string): void {
    if (this.end - this.pos < n) {
      this.fail(ErrorCode.badFrame, field, `${field} needs ${n} bytes but the ${this.context} body has ${this.end - this.pos} left`);
    }
  }

  u8(field: string): number {
    this.need(1, field);
    return this.bytes[this.pos++];
  }

  u16(field: string): number {
    this.need(2, field);
    const b = this.bytes;
    const v = b[this.pos] | (b[this.pos + 1] << 8);
    this.pos += 2;
    return v;
  }

  u32(field: string): number {
    this.need(4, field);
    const v = readU32(this.bytes, this.pos);
    this.pos += 4;
    return v;
  }

  /** A u64 as a JS number; above 2^53 − 1 it cannot be represented exactly, so it is bad_frame. */
  u64(field: string): number {
    this.need(8, field);
    const lo = readU32(this.bytes, this.pos);
    const hi = readU32(this.bytes, this.pos + 4);
    if (hi > MAX_SAFE_HIGH) this.fail(ErrorCode.badFrame, field, `${field} is above 2^53 - 1`);
    this.pos += 8;
    return hi * TWO_32 + lo;
  }

  f64(field: string): number {
    this.need(8, field);
    for (let k = 0; k < 8; k++) f64Scratch.setUint8(k, this.bytes[this.pos + k]);
    this.pos += 8;
    return f64Scratch.getFloat64(0, true);
  }

  /** Flag byte with no reserved bit set. */
  flags(field: string, allowed: number): number {
    const v = this.u8(field);
    if ((v & ~allowed) !== 0) this.fail(ErrorCode.badFrame, field, `${field} 0x${hex2(v)} sets reserved bits`, this.pos - 1);
    return v;
  }

  /** `n` bytes as a view of the underlying bytes (no copy). */
  view(n: number, field: string): Uint8Array {
    this.need(n, field);
    const v = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }

  /** UTF-8 text of `n` bytes. */
  text(n: number, field: string): string {
    this.need(n, field);
    const s = decodeUtf8(this.bytes, this.pos, this.pos + n);
    if (s === undefined) this.fail(ErrorCode.badFrame, field, `${field} is not valid UTF-8`);
    this.pos += n;
    return s;
  }

  /** `[u8 length][UTF-8]`. */
  shortstr(field: string): string {
    const n = this.u8(field);
    return n === 0 ? '' : this.text(n, field);
  }

  /** `[u16 length][UTF-8]`, at most `max` bytes (too_large above). */
  str16(field: string, max: number): string {
    const n = this.u16(field);
    if (n > max) this.fail(ErrorCode.tooLarge, field, `${field} of ${n} bytes is over the limit of ${max}`, this.pos - 2);
    return n === 0 ? '' : this.text(n, field);
  }

  /** Fails unless the body was consumed exactly. */
  done(): void {
    if (this.pos !== this.end) {
      this.fail(ErrorCode.badFrame, 'end', `${this.end - this.pos} unexpected bytes after the last field of ${this.context}`);
    }
  }
}
