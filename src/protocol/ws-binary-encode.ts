/**
 * Encoder of the binary WebSocket protocol (docs/protocol.md): a frame builder that appends ops to
 * one growable buffer and hands back the frame.
 *
 * The buffer is reused across frames, so encoding allocates nothing per op once it has grown to
 * the frame sizes in use (non-ASCII strings excepted: TextEncoder.encodeInto returns an object).
 * Each op is written in one pass: room for the worst case is ensured first, then the opcode, a
 * placeholder length, the fields, and finally the length is patched in. An op that throws (a bad
 * argument) is rolled back, so the frame never holds half an op.
 *
 * Both sides use it: the client for PUBLISH…UNBIND_EXCHANGE, the server for DELIVER, CONFIRM, OK,
 * ERROR and CANCEL (e.g. one DELIVER frame per socket per drained ring chunk).
 */
import type { MessageProperties } from './properties.js';
import type { HeaderTable } from './field-table.js';
import { encodedPropertiesLength, encodedTableLength, writePropertiesUnchecked, writeTableUnchecked } from './properties.js';
import {
  AckModeByte,
  SUBSCRIBE_SHARED,
  ConfirmFlag,
  DeliverFlag,
  ExchangeDeclareFlag,
  ExchangeDeleteFlag,
  MAX_DESTINATION_BYTES,
  MAX_ERROR_MESSAGE_BYTES,
  MAX_SHORTSTR_BYTES,
  OP_HEADER_BYTES,
  Opcode,
  PublishFlag,
  QueueDeclareFlag,
  QueueDeleteFlag,
  SettleFlag,
  isU32,
  isU64,
  opcodeName,
  utf8Length,
  writeU16,
  writeU32,
  writeU64,
  writeUtf8,
} from './ws-binary.js';
import type { AckMode } from './ws-binary.js';
import type { DeliverHead } from './ring-record-codec.js';

/** Starting size of a writer's buffer: a few hundred small messages before the first growth. */
export const DEFAULT_WRITER_CAPACITY = 64 * 1024;
/**
 * A buffer that grew past this is dropped after the frame that needed it (at the next op), so one
 * huge frame does not pin megabytes per connection for the connection's lifetime.
 */
export const DEFAULT_WRITER_RETAIN_BYTES = 1024 * 1024;
/** The u32 length field's ceiling. */
const MAX_BODY = 0xffff_ffff;

/** Properties as an object (encoded here) or an already encoded block (copied as is, e.g. from a ring). */
export type PropertiesInput = MessageProperties | Uint8Array | null | undefined;

export interface ExchangeDeclareOptions {
  passive?: boolean;
  durable?: boolean;
  autoDelete?: boolean;
  internal?: boolean;
  arguments?: HeaderTable;
}

export interface QueueDeclareOptions {
  passive?: boolean;
  durable?: boolean;
  exclusive?: boolean;
  autoDelete?: boolean;
  arguments?: HeaderTable;
}

export interface QueueDeleteOptions {
  ifUnused?: boolean;
  ifEmpty?: boolean;
}

export interface OkResult {
  name?: string;
  messageCount?: number;
  consumerCount?: number;
}

const EMPTY_TABLE: HeaderTable = Object.freeze({}) as HeaderTable;

export class BinaryFrameWriter {
  #buf: Uint8Array;
  #pos = 0;
  #ops = 0;
  /** Start of the op being written, for rollback and the length patch. */
  #opStart = 0;
  #shrink = false;
  /**
   * The frame's last op, when publishCoalescing wrote it (a property-less PUBLISH or PUBLISH_BATCH):
   * its destination, start and message count, so the next such publish to the same destination can
   * join it. Null once any other op is begun.
   */
  #runDestination: string | null = null;
  #runStart = 0;
  #runCount = 0;
  /** Messages appended to a batch by publishCoalescing (each is a message the frame carries beyond its ops). */
  #appended = 0;
  readonly #initialCapacity: number;
  readonly #retainBytes: number;

  constructor(initialCapacity = DEFAULT_WRITER_CAPACITY, retainBytes = DEFAULT_WRITER_RETAIN_BYTES) {
    if (!Number.isInteger(initialCapacity) || initialCapacity < 16) {
      throw new RangeError(`initialCapacity must be an integer ≥ 16 (got ${String(initialCapacity)})`);
    }
    if (!Number.isInteger(retainBytes) || retainBytes < initialCapacity) {
      throw new RangeError(`retainBytes must be an integer ≥ initialCapacity ${initialCapacity} (got ${String(retainBytes)})`);
    }
    this.#initialCapacity = initialCapacity;
    this.#retainBytes = retainBytes;
    this.#buf = new Uint8Array(initialCapacity);
  }

  /** Bytes in the frame so far. */
  get length(): number {
    return this.#pos;
  }

  /** Ops in the frame so far (a batch counts one). */
  get opCount(): number {
    return this.#ops;
  }

  /** Ops in the frame so far, each message publishCoalescing added to a batch counting one more. */
  get entryCount(): number {
    return this.#ops + this.#appended;
  }

  /** Current buffer size (grows, shrinks back after a frame above the retain limit). */
  get capacity(): number {
    return this.#buf.length;
  }

  /**
   * The frame so far, as a view of the writer's buffer, and starts a new frame. The view is valid
   * until the next op is written: fine for uWS `send` (it copies); use finishCopy when the
   * transport keeps the buffer (Node `ws` or `net.Socket.write` under backpressure).
   */
  finish(): Uint8Array {
    const out = this.#buf.subarray(0, this.#pos);
    this.#pos = 0;
    this.#ops = 0;
    this.#appended = 0;
    this.#runDestination = null;
    if (this.#buf.length > this.#retainBytes) this.#shrink = true;
    return out;
  }

  /** The frame so far in a new array of its own, and starts a new frame. */
  finishCopy(): Uint8Array {
    const out = this.#buf.slice(0, this.#pos);
    this.#pos = 0;
    this.#ops = 0;
    this.#appended = 0;
    this.#runDestination = null;
    if (this.#buf.length > this.#retainBytes) this.#buf = new Uint8Array(this.#initialCapacity);
    return out;
  }

  /** Drops the frame being built. */
  reset(): void {
    this.#pos = 0;
    this.#ops = 0;
    this.#appended = 0;
    this.#runDestination = null;
  }

  // -------------------------------------------------------------------------------------------
  // client → server

  /** PUBLISH: one message. `destination` as in design.md §2 (`/topic/a.b`, `/queue/q`, `/exchange/x/key`). */
  publish(destination: string, payload: Uint8Array, properties?: PropertiesInput): this {
    const propsLength = propertiesLength(properties);
    this.#begin(Opcode.PUBLISH, 3 + 3 * destination.length + (propsLength < 0 ? 0 : 4 + propsLength) + payload.length);
    this.#u8(propsLength < 0 ? 0 : PublishFlag.PROPERTIES);
    this.#str16(destination, MAX_DESTINATION_BYTES, 'destination');
    if (propsLength >= 0) this.#properties(properties!, propsLength);
    this.#buf.set(payload, this.#pos);
    this.#pos += payload.length;
    return this.#end();
  }

  /**
   * PUBLISH, or one more message of the frame's last op when that is a property-less publish to the
   * same `destination` written by this method: a PUBLISH becomes a PUBLISH_BATCH of two, a batch takes
   * one more entry. The broker then parses, authorizes and routes the destination once per run, not
   * once per message, and each message costs 4 bytes instead of 8 + d. The server numbers a batch's
   * messages in entry order, as it would the PUBLISHes, so confirms are unchanged. Only messages
   * without properties join (a properties object could change between calls).
   */
  publishCoalescing(destination: string, payload: Uint8Array, properties?: PropertiesInput): this {
    const runStart = this.#runStart;
    if (properties != null || this.#runDestination !== destination || this.#pos - runStart + 12 + payload.length > MAX_BODY) {
      this.publish(destination, payload, properties);
      if (properties == null) {
        this.#runDestination = destination;
        this.#runStart = this.#opStart;
        this.#runCount = 1;
      }
      return this;
    }
    // A PUBLISH turning into a batch takes 8 more bytes: the count and its one payload's length.
    const need = this.#pos + 4 + payload.length + (this.#runCount === 1 ? 8 : 0);
    if (need > this.#buf.length) this.#grow(need);
    const buf = this.#buf;
    const bodyStart = runStart + OP_HEADER_BYTES;
    const countAt = bodyStart + 3 + (buf[bodyStart + 1] | (buf[bodyStart + 2] << 8));
    if (this.#runCount === 1) {
      const firstLength = this.#pos - countAt;
      buf.copyWithin(countAt + 8, countAt, this.#pos);
      writeU32(buf, countAt + 4, firstLength);
      buf[runStart] = Opcode.PUBLISH_BATCH;
      this.#pos += 8;
    }
    writeU32(buf, this.#pos, payload.length);
    buf.set(payload, this.#pos + 4);
    this.#pos += 4 + payload.length;
    this.#runCount++;
    this.#appended++;
    writeU32(buf, countAt, this.#runCount);
    writeU32(buf, runStart + 1, this.#pos - bodyStart);
    return this;
  }

  /**
   * PUBLISH_BATCH: `payloads.length` messages to one destination, all with the same properties;
   * the server gives them consecutive confirm numbers.
   */
  publishBatch(destination: string, payloads: readonly Uint8Array[], properties?: PropertiesInput): this {
    const propsLength = propertiesLength(properties);
    let bytes = 0;
    for (const p of payloads) bytes += 4 + p.length;
    this.#begin(Opcode.PUBLISH_BATCH, 7 + 3 * destination.length + (propsLength < 0 ? 0 : 4 + propsLength) + bytes);
    this.#u8(propsLength < 0 ? 0 : PublishFlag.PROPERTIES);
    this.#str16(destination, MAX_DESTINATION_BYTES, 'destination');
    if (propsLength >= 0) this.#properties(properties!, propsLength);
    this.#u32(payloads.length, 'count');
    const buf = this.#buf;
    let at = this.#pos;
    for (const p of payloads) {
      writeU32(buf, at, p.length);
      buf.set(p, at + 4);
      at += 4 + p.length;
    }
    this.#pos = at;
    return this.#end();
  }

  /** CONFIRM_SELECT: from now on the server confirms every publish (numbered from 1). */
  confirmSelect(requestId: number): this {
    this.#begin(Opcode.CONFIRM_SELECT, 4);
    this.#u32(requestId, 'requestId');
    return this.#end();
  }

  /** FLUSH: OK `requestId` comes once everything published before it has been routed. */
  flush(requestId: number): this {
    this.#begin(Opcode.FLUSH, 4);
    this.#u32(requestId, 'requestId');
    return this.#end();
  }

  /** SUBSCRIBE. `prefetch` bounds unacked deliveries for client ack; 0 = no limit (AMQP basic.qos). */
  /** `shared` (auto ack only): the client takes this subscription's deliveries through a shared stream (STREAM op). */
  /** `args`: consumer arguments (`x-stream-offset`, `x-stream-consumer-name`), sent only when not empty. */
  subscribe(
    requestId: number,
    subscriptionId: number,
    destination: string,
    ackMode: AckMode = 'auto',
    prefetch = 0,
    shared = false,
    args: HeaderTable = EMPTY_TABLE,
  ): this {
    const hasArgs = Object.keys(args).length > 0;
    this.#begin(Opcode.SUBSCRIBE, 15 + 3 * destination.length + (hasArgs ? encodedTableLength(args) : 0));
    this.#u32(requestId, 'requestId');
    this.#u32(subscriptionId, 'subscriptionId');
    if (ackMode !== 'auto' && ackMode !== 'client') {
      this.#fail(new RangeError(`ackMode must be "auto" or "client" (got ${JSON.stringify(ackMode)})`));
    }
    if (shared && ackMode !== 'auto') this.#fail(new RangeError('only auto-ack subscriptions can be shared'));
    this.#u8(shared ? SUBSCRIBE_SHARED : AckModeByte[ackMode]);
    this.#u32(prefetch, 'prefetch');
    this.#str16(destination, MAX_DESTINATION_BYTES, 'destination');
    if (hasArgs) this.#pos = writeTableUnchecked(args, this.#buf, this.#pos);
    return this.#end();
  }

  /** COMMIT_OFFSET: a stream subscription stores `offset` as the last it processed. */
  commitOffset(requestId: number, subscriptionId: number, offset: number): this {
    this.#begin(Opcode.COMMIT_OFFSET, 16);
    this.#u32(requestId, 'requestId');
    this.#u32(subscriptionId, 'subscriptionId');
    this.#u64(offset, 'offset');
    return this.#end();
  }

  unsubscribe(requestId: number, subscriptionId: number): this {
    this.#begin(Opcode.UNSUBSCRIBE, 8);
    this.#u32(requestId, 'requestId');
    this.#u32(subscriptionId, 'subscriptionId');
    return this.#end();
  }

  /** ACK a delivery tag; with `multiple`, every tag up to it (tag 0 + multiple: all outstanding). */
  ack(tag: number, multiple = false): this {
    this.#begin(Opcode.ACK, 9);
    this.#u8(multiple ? SettleFlag.MULTIPLE : 0);
    this.#u64(tag, 'tag');
    return this.#end();
  }

  /** NACK (AMQP basic.nack): `requeue` false drops (or dead-letters) the message. */
  nack(tag: number, multiple = false, requeue = true): this {
    this.#begin(Opcode.NACK, 9);
    this.#u8((multiple ? SettleFlag.MULTIPLE : 0) | (requeue ? SettleFlag.REQUEUE : 0));
    this.#u64(tag, 'tag');
    return this.#end();
  }

  declareExchange(requestId: number, name: string, type: string, options: ExchangeDeclareOptions = {}): this {
    const args = options.arguments ?? EMPTY_TABLE;
    const argsLength = encodedTableLength(args);
    this.#begin(Opcode.DECLARE_EXCHANGE, 5 + 2 + 3 * (name.length + type.length) + argsLength);
    this.#u32(requestId, 'requestId');
    this.#u8(
      (options.passive ? ExchangeDeclareFlag.PASSIVE : 0) |
        (options.durable ? ExchangeDeclareFlag.DURABLE : 0) |
        (options.autoDelete ? ExchangeDeclareFlag.AUTO_DELETE : 0) |
        (options.internal ? ExchangeDeclareFlag.INTERNAL : 0),
    );
    this.#shortstr(name, 'name');
    this.#shortstr(type, 'type');
    this.#pos = writeTableUnchecked(args, this.#buf, this.#pos);
    return this.#end();
  }

  deleteExchange(requestId: number, name: string, ifUnused = false): this {
    this.#begin(Opcode.DELETE_EXCHANGE, 6 + 3 * name.length);
    this.#u32(requestId, 'requestId');
    this.#u8(ifUnused ? ExchangeDeleteFlag.IF_UNUSED : 0);
    this.#shortstr(name, 'name');
    return this.#end();
  }

  /** DECLARE_QUEUE; an empty `name` asks the server to name it (the name comes back in OK). */
  declareQueue(requestId: number, name: string, options: QueueDeclareOptions = {}): this {
    const args = options.arguments ?? EMPTY_TABLE;
    const argsLength = encodedTableLength(args);
    this.#begin(Opcode.DECLARE_QUEUE, 6 + 3 * name.length + argsLength);
    this.#u32(requestId, 'requestId');
    this.#u8(
      (options.passive ? QueueDeclareFlag.PASSIVE : 0) |
        (options.durable ? QueueDeclareFlag.DURABLE : 0) |
        (options.exclusive ? QueueDeclareFlag.EXCLUSIVE : 0) |
        (options.autoDelete ? QueueDeclareFlag.AUTO_DELETE : 0),
    );
    this.#shortstr(name, 'name');
    this.#pos = writeTableUnchecked(args, this.#buf, this.#pos);
    return this.#end();
  }

  deleteQueue(requestId: number, name: string, options: QueueDeleteOptions = {}): this {
    this.#begin(Opcode.DELETE_QUEUE, 6 + 3 * name.length);
    this.#u32(requestId, 'requestId');
    this.#u8((options.ifUnused ? QueueDeleteFlag.IF_UNUSED : 0) | (options.ifEmpty ? QueueDeleteFlag.IF_EMPTY : 0));
    this.#shortstr(name, 'name');
    return this.#end();
  }

  purgeQueue(requestId: number, name: string): this {
    this.#begin(Opcode.PURGE_QUEUE, 6 + 3 * name.length);
    this.#u32(requestId, 'requestId');
    this.#u8(0);
    this.#shortstr(name, 'name');
    return this.#end();
  }

  bindQueue(requestId: number, queue: string, exchange: string, routingKey: string, args?: HeaderTable): this {
    return this.#binding(Opcode.BIND_QUEUE, requestId, queue, exchange, routingKey, args);
  }

  unbindQueue(requestId: number, queue: string, exchange: string, routingKey: string, args?: HeaderTable): this {
    return this.#binding(Opcode.UNBIND_QUEUE, requestId, queue, exchange, routingKey, args);
  }

  /** BIND_EXCHANGE: messages routed by `source` with `routingKey` also go to `destination`. */
  bindExchange(requestId: number, destination: string, source: string, routingKey: string, args?: HeaderTable): this {
    return this.#binding(Opcode.BIND_EXCHANGE, requestId, destination, source, routingKey, args);
  }

  unbindExchange(requestId: number, destination: string, source: string, routingKey: string, args?: HeaderTable): this {
    return this.#binding(Opcode.UNBIND_EXCHANGE, requestId, destination, source, routingKey, args);
  }

  // -------------------------------------------------------------------------------------------
  // server → client

  /**
   * DELIVER one message whose exchange and routing key are UTF-8 bytes of `src` (a ring record,
   * where the shard wrote them): copied as they are, never decoded into strings and encoded back.
   * The sender vouches for them (at most 255 bytes each, valid UTF-8: the broker checked them when
   * the message was published). With `stream`, `subscriptionId` is a stream id (STREAM op) and
   * `tag` 0: the op's bytes are then the same for every subscriber of the stream.
   */
  deliverFromBytes(
    subscriptionId: number,
    tag: number,
    redelivered: boolean,
    src: Uint8Array,
    exchangeOffset: number,
    exchangeLength: number,
    keyOffset: number,
    keyLength: number,
    properties: Uint8Array | null,
    payloadOffset: number,
    payloadLength: number,
    stream = false,
  ): this {
    if (exchangeLength > MAX_SHORTSTR_BYTES || keyLength > MAX_SHORTSTR_BYTES) {
      throw new RangeError(
        `exchange (${exchangeLength} bytes) and routing key (${keyLength} bytes) must be at most ${MAX_SHORTSTR_BYTES} bytes`,
      );
    }
    const propsLength = properties === null ? -1 : properties.length;
    this.#begin(Opcode.DELIVER, 15 + exchangeLength + keyLength + (propsLength < 0 ? 0 : 4 + propsLength) + payloadLength);
    this.#u32(subscriptionId, 'subscriptionId');
    this.#u64(tag, 'tag');
    this.#u8(
      (propsLength < 0 ? 0 : DeliverFlag.PROPERTIES) | (redelivered ? DeliverFlag.REDELIVERED : 0) | (stream ? DeliverFlag.STREAM : 0),
    );
    const buf = this.#buf;
    buf[this.#pos++] = exchangeLength;
    for (let i = 0; i < exchangeLength; i++) buf[this.#pos++] = src[exchangeOffset + i];
    buf[this.#pos++] = keyLength;
    for (let i = 0; i < keyLength; i++) buf[this.#pos++] = src[keyOffset + i];
    if (propsLength >= 0) this.#properties(properties as Uint8Array, propsLength);
    if (payloadLength > 0) buf.set(src.subarray(payloadOffset, payloadOffset + payloadLength), this.#pos);
    this.#pos += payloadLength;
    return this.#end();
  }

  /** DELIVER the message of a ring deliver record read in place (`buf` is the ring's bytes): see deliverFromBytes. */
  deliverRecord(subscriptionId: number, tag: number, rec: DeliverHead, buf: Uint8Array, stream = false): this {
    const props = rec.propsLength > 0 ? buf.subarray(rec.propsOffset, rec.propsOffset + rec.propsLength) : null;
    return this.deliverFromBytes(
      subscriptionId,
      tag,
      rec.redelivered,
      buf,
      rec.exchangeOffset,
      rec.exchangeLength,
      rec.keyOffset,
      rec.keyLength,
      props,
      rec.payloadOffset,
      rec.payloadLength,
      stream,
    );
  }

  /**
   * DELIVER one message. The payload is `payload[payloadOffset, payloadOffset + payloadLength)`,
   * so a region of a ring can be passed without making a view for it.
   */
  deliver(
    subscriptionId: number,
    tag: number,
    redelivered: boolean,
    exchange: string,
    routingKey: string,
    properties: PropertiesInput,
    payload: Uint8Array,
    payloadOffset = 0,
    payloadLength = payload.length - payloadOffset,
  ): this {
    if (payloadOffset < 0 || payloadLength < 0 || payloadOffset + payloadLength > payload.length) {
      throw new RangeError(`payload range [${payloadOffset}, +${payloadLength}) is outside the ${payload.length}-byte payload`);
    }
    const propsLength = propertiesLength(properties);
    this.#begin(Opcode.DELIVER, 15 + 3 * (exchange.length + routingKey.length) + (propsLength < 0 ? 0 : 4 + propsLength) + payloadLength);
    this.#u32(subscriptionId, 'subscriptionId');
    this.#u64(tag, 'tag');
    this.#u8((propsLength < 0 ? 0 : DeliverFlag.PROPERTIES) | (redelivered ? DeliverFlag.REDELIVERED : 0));
    this.#shortstr(exchange, 'exchange');
    this.#shortstr(routingKey, 'routingKey');
    if (propsLength >= 0) this.#properties(properties!, propsLength);
    const buf = this.#buf;
    if (payloadLength > 0) {
      buf.set(
        payloadOffset === 0 && payloadLength === payload.length ? payload : payload.subarray(payloadOffset, payloadOffset + payloadLength),
        this.#pos,
      );
    }
    this.#pos += payloadLength;
    return this.#end();
  }

  /** CONFIRM publish `seq` (with `multiple`, all up to it); `nack` when the broker did not take it. */
  confirm(seq: number, multiple = false, nack = false): this {
    this.#begin(Opcode.CONFIRM, 9);
    this.#u8((multiple ? ConfirmFlag.MULTIPLE : 0) | (nack ? ConfirmFlag.NACK : 0));
    this.#u64(seq, 'seq');
    return this.#end();
  }

  /** OK for request `requestId`, which was an `op`; `result` carries what that op returns. */
  ok(requestId: number, op: Opcode, result?: OkResult): this {
    const name = result?.name ?? '';
    this.#begin(Opcode.OK, 14 + 3 * name.length);
    this.#u32(requestId, 'requestId');
    this.#u8(op);
    this.#u32(result?.messageCount ?? 0, 'messageCount');
    this.#u32(result?.consumerCount ?? 0, 'consumerCount');
    this.#shortstr(name, 'name');
    return this.#end();
  }

  /** ERROR for request `requestId` (0: none). `message` is cut to MAX_ERROR_MESSAGE_BYTES. */
  error(requestId: number, code: string, message: string): this {
    return this.#coded(Opcode.ERROR, requestId, 'requestId', code, message);
  }

  /** CANCEL: the server ended subscription `subscriptionId` (e.g. its queue was deleted). */
  cancel(subscriptionId: number, code: string, message: string): this {
    return this.#coded(Opcode.CANCEL, subscriptionId, 'subscriptionId', code, message);
  }

  /** CREDIT: `messages` and `bytes` more publish credit for the client. */
  credit(messages: number, bytes: number): this {
    this.#begin(Opcode.CREDIT, 8);
    this.#u32(messages, 'messages');
    this.#u32(bytes, 'bytes');
    return this.#end();
  }

  /** STREAM: `subscriptionId`'s deliveries come from now on as stream DELIVERs of `streamId`. */
  stream(subscriptionId: number, streamId: number): this {
    this.#begin(Opcode.STREAM, 8);
    this.#u32(subscriptionId, 'subscriptionId');
    this.#u32(streamId, 'streamId');
    return this.#end();
  }

  /** DROPPED: `count` messages of subscription `subscriptionId` (to `destination`) were discarded. */
  dropped(subscriptionId: number, count: number, destination: string): this {
    this.#begin(Opcode.DROPPED, 14 + 3 * destination.length);
    this.#u32(subscriptionId, 'subscriptionId');
    this.#u64(count, 'count');
    this.#str16(destination, MAX_DESTINATION_BYTES, 'destination');
    return this.#end();
  }

  // -------------------------------------------------------------------------------------------

  #binding(op: Opcode, requestId: number, a: string, b: string, key: string, args: HeaderTable | undefined): this {
    const table = args ?? EMPTY_TABLE;
    const argsLength = encodedTableLength(table);
    this.#begin(op, 5 + 3 + 3 * (a.length + b.length + key.length) + argsLength);
    this.#u32(requestId, 'requestId');
    this.#u8(0);
    const bindsExchange = op === Opcode.BIND_EXCHANGE || op === Opcode.UNBIND_EXCHANGE;
    this.#shortstr(a, bindsExchange ? 'destination' : 'queue');
    this.#shortstr(b, bindsExchange ? 'source' : 'exchange');
    this.#shortstr(key, 'routingKey');
    this.#pos = writeTableUnchecked(table, this.#buf, this.#pos);
    return this.#end();
  }

  #coded(op: Opcode, id: number, idField: string, code: string, message: string): this {
    const cut = message.length > MAX_ERROR_MESSAGE_BYTES ? message.slice(0, MAX_ERROR_MESSAGE_BYTES) : message;
    this.#begin(op, 7 + 3 * (code.length + cut.length));
    this.#u32(id, idField);
    this.#shortstr(code, 'code');
    const at = this.#pos;
    let end = writeUtf8(cut, this.#buf, at + 2);
    if (end - at - 2 > MAX_ERROR_MESSAGE_BYTES) end = at + 2 + utf8Cut(this.#buf, at + 2, MAX_ERROR_MESSAGE_BYTES);
    writeU16(this.#buf, at, end - at - 2);
    this.#pos = end;
    return this.#end();
  }

  /** Starts op `op` with room for a body of at most `maxBody` bytes. */
  #begin(op: Opcode, maxBody: number): void {
    if (this.#shrink && this.#pos === 0) {
      this.#shrink = false;
      this.#buf = new Uint8Array(this.#initialCapacity);
    }
    const need = this.#pos + OP_HEADER_BYTES + maxBody;
    if (need > this.#buf.length) this.#grow(need);
    this.#runDestination = null;
    this.#opStart = this.#pos;
    this.#buf[this.#pos] = op;
    this.#pos += OP_HEADER_BYTES;
  }

  #end(): this {
    const bodyLength = this.#pos - this.#opStart - OP_HEADER_BYTES;
    if (bodyLength > MAX_BODY) {
      const op = this.#buf[this.#opStart];
      this.#fail(new RangeError(`${opcodeName(op)} body of ${bodyLength} bytes exceeds the u32 length field`));
    }
    writeU32(this.#buf, this.#opStart + 1, bodyLength);
    this.#ops++;
    return this;
  }

  #grow(need: number): void {
    let size = this.#buf.length * 2;
    while (size < need) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.#buf.subarray(0, this.#pos));
    this.#buf = next;
  }

  /** Rolls the half-written op back and throws. */
  #fail(err: Error): never {
    this.#pos = this.#opStart;
    throw err;
  }

  #u8(v: number): void {
    this.#buf[this.#pos++] = v;
  }

  #u32(v: number, field: string): void {
    if (!isU32(v)) this.#fail(new RangeError(`${field} must be an integer from 0 to 2^32 - 1 (got ${String(v)})`));
    writeU32(this.#buf, this.#pos, v);
    this.#pos += 4;
  }

  #u64(v: number, field: string): void {
    if (!isU64(v)) this.#fail(new RangeError(`${field} must be an integer from 0 to 2^53 - 1 (got ${String(v)})`));
    writeU64(this.#buf, this.#pos, v);
    this.#pos += 8;
  }

  #shortstr(s: string, field: string): void {
    this.#checkString(s, field, MAX_SHORTSTR_BYTES);
    const at = this.#pos;
    const end = writeUtf8(s, this.#buf, at + 1);
    const n = end - at - 1;
    if (n > MAX_SHORTSTR_BYTES) this.#fail(new RangeError(`${field} must be at most ${MAX_SHORTSTR_BYTES} UTF-8 bytes (got ${n})`));
    this.#buf[at] = n;
    this.#pos = end;
  }

  #str16(s: string, max: number, field: string): void {
    this.#checkString(s, field, max);
    const at = this.#pos;
    const end = writeUtf8(s, this.#buf, at + 2);
    const n = end - at - 2;
    if (n > max) this.#fail(new RangeError(`${field} must be at most ${max} UTF-8 bytes (got ${n})`));
    writeU16(this.#buf, at, n);
    this.#pos = end;
  }

  #checkString(s: unknown, field: string, max: number): void {
    if (typeof s !== 'string') this.#fail(new TypeError(`${field} must be a string (got ${typeof s})`));
    // UTF-8 never takes fewer bytes than UTF-16 units, so this rejects early without counting.
    if (s.length > max) this.#fail(new RangeError(`${field} must be at most ${max} UTF-8 bytes (got ${utf8Length(s)})`));
  }

  #properties(p: MessageProperties | Uint8Array, length: number): void {
    writeU32(this.#buf, this.#pos, length);
    this.#pos += 4;
    if (p instanceof Uint8Array) {
      this.#buf.set(p, this.#pos);
      this.#pos += length;
    } else {
      this.#pos = writePropertiesUnchecked(p, this.#buf, this.#pos);
    }
  }
}

/** -1 when there are no properties, else the block's size (validating an object on the way). */
function propertiesLength(p: PropertiesInput): number {
  if (p == null) return -1;
  if (p instanceof Uint8Array) return p.length;
  return encodedPropertiesLength(p);
}

/** Longest prefix of the UTF-8 at `b[at…]` of at most `max` bytes that ends on a character boundary. */
function utf8Cut(b: Uint8Array, at: number, max: number): number {
  let n = max;
  while (n > 0 && (b[at + n] & 0xc0) === 0x80) n--;
  return n;
}
