/**
 * AMQP content: the header frame (class, body size, basic properties) and the body frames that
 * follow a content method (basic.publish, return, deliver, get-ok).
 *
 * Basic properties travel as `[u16 flags][present properties, in flag order]`, big-endian. The
 * flag bits are the ones the broker's own properties block uses (properties.ts PropertyFlag), but
 * the rest of the layout differs (byte order, table encoding), so a message crossing between AMQP
 * and the broker is converted here, once each way.
 */
import type { HeaderTable } from '../field-table.js';
import { PropertyFlag } from '../properties.js';
import type { MessageProperties } from '../properties.js';
import { FRAME_HEADER_SIZE, FRAME_OVERHEAD, FrameType, ReplyCode, FRAME_END } from './constants.js';
import { AmqpError } from './errors.js';
import { beginFrame, writeBasicDeliverMethod, writeMethodFrame } from './methods.js';
import type { MethodArgs } from './methods.js';
import { readU16BE, readU32BE, WireReader, WireWriter, writeU32BE, writeU64BE } from './wire.js';

/** Class id, weight and body size: the fixed part of a content header payload. */
export const CONTENT_HEADER_FIXED = 12;

/** cluster-id (bit 2): deprecated in 0-9-1, read and dropped. */
const CLUSTER_ID_FLAG = 0x0004;
/** Bit 1 names no basic property. */
const UNUSED_FLAG = 0x0002;
/** Bit 0: another flags word follows; the basic class has too few properties to need one. */
const CONTINUATION_FLAG = 0x0001;

export interface ContentHeader {
  classId: number;
  bodySize: number;
  /** View of the payload from the flags word on (flags + property list), for amqpToMessageProperties. */
  properties: Uint8Array;
}

/**
 * A content header frame's payload: class id (must be 60, else AmqpError 503), weight (ignored, as
 * RabbitMQ does), body size (u64), then the property flags + list, returned as a view. Shorter
 * than 14 bytes → 502.
 */
export function decodeContentHeader(payload: Uint8Array): ContentHeader {
  if (payload.length < CONTENT_HEADER_FIXED + 2) {
    throw new AmqpError(ReplyCode.syntaxError, `content header of ${payload.length} bytes is shorter than the 14 it needs`);
  }
  const classId = readU16BE(payload, 0);
  if (classId !== 60) {
    throw new AmqpError(ReplyCode.commandInvalid, `content header for class ${classId}: only basic (60) carries content`, classId, 0);
  }
  const bodySize = readU32BE(payload, 4) * 0x1_0000_0000 + readU32BE(payload, 8);
  return { classId, bodySize, properties: payload.subarray(CONTENT_HEADER_FIXED) };
}

const reader = new WireReader();

/**
 * AMQP basic properties (flags + list, as on the wire) → the broker's MessageProperties. Throws
 * AmqpError 502 on malformed input: truncated, bytes left over, the continuation bit or bit 1 set,
 * a string that is not UTF-8, a table past its limits. Timestamps are seconds. A deliveryMode
 * other than 1 or 2 is dropped (RabbitMQ treats anything but 2 as transient). Nothing returned
 * aliases `bytes`.
 */
export function amqpToMessageProperties(bytes: Uint8Array): MessageProperties {
  const r = reader.reset(bytes);
  const flags = r.short('property flags');
  if ((flags & (CONTINUATION_FLAG | UNUSED_FLAG)) !== 0) {
    r.fail(`property flags 0x${flags.toString(16).padStart(4, '0')} set bit 0 (continuation) or bit 1 (unused)`);
  }
  const p: MessageProperties = {};
  if (flags === 0) {
    r.done('the property flags');
    return p;
  }
  if (flags & PropertyFlag.contentType) p.contentType = r.shortstr('contentType');
  if (flags & PropertyFlag.contentEncoding) p.contentEncoding = r.shortstr('contentEncoding');
  if (flags & PropertyFlag.headers) p.headers = r.table('headers');
  if (flags & PropertyFlag.deliveryMode) {
    const mode = r.octet('deliveryMode');
    if (mode === 1 || mode === 2) p.deliveryMode = mode;
  }
  if (flags & PropertyFlag.priority) p.priority = r.octet('priority');
  if (flags & PropertyFlag.correlationId) p.correlationId = r.shortstr('correlationId');
  if (flags & PropertyFlag.replyTo) p.replyTo = r.shortstr('replyTo');
  if (flags & PropertyFlag.expiration) p.expiration = r.shortstr('expiration');
  if (flags & PropertyFlag.messageId) p.messageId = r.shortstr('messageId');
  if (flags & PropertyFlag.timestamp) p.timestamp = r.timestamp('timestamp');
  if (flags & PropertyFlag.type) p.type = r.shortstr('type');
  if (flags & PropertyFlag.userId) p.userId = r.shortstr('userId');
  if (flags & PropertyFlag.appId) p.appId = r.shortstr('appId');
  if (flags & CLUSTER_ID_FLAG) r.shortstr('clusterId');
  r.done('the last property');
  return p;
}

const propertiesWriter = new WireWriter(256);
const NO_PROPERTIES = new Uint8Array(2);

/**
 * The broker's MessageProperties → AMQP flags + property list bytes (empty properties → the two
 * bytes 00 00), in a new array. Throws TypeError/RangeError naming a property that cannot be sent.
 */
export function messagePropertiesToAmqp(p: MessageProperties): Uint8Array {
  const w = propertiesWriter;
  w.reset();
  w.short(0);
  let flags = 0;
  if (p.contentType != null) {
    flags |= PropertyFlag.contentType;
    w.shortstr(p.contentType, 'contentType');
  }
  if (p.contentEncoding != null) {
    flags |= PropertyFlag.contentEncoding;
    w.shortstr(p.contentEncoding, 'contentEncoding');
  }
  if (p.headers != null) {
    flags |= PropertyFlag.headers;
    w.table(p.headers as HeaderTable, 'headers');
  }
  if (p.deliveryMode != null) {
    if (p.deliveryMode !== 1 && p.deliveryMode !== 2) {
      throw new RangeError(`deliveryMode must be 1 (transient) or 2 (persistent) (got ${String(p.deliveryMode)})`);
    }
    flags |= PropertyFlag.deliveryMode;
    w.octet(p.deliveryMode);
  }
  if (p.priority != null) {
    flags |= PropertyFlag.priority;
    w.octet(p.priority);
  }
  if (p.correlationId != null) {
    flags |= PropertyFlag.correlationId;
    w.shortstr(p.correlationId, 'correlationId');
  }
  if (p.replyTo != null) {
    flags |= PropertyFlag.replyTo;
    w.shortstr(p.replyTo, 'replyTo');
  }
  if (p.expiration != null) {
    flags |= PropertyFlag.expiration;
    w.shortstr(p.expiration, 'expiration');
  }
  if (p.messageId != null) {
    flags |= PropertyFlag.messageId;
    w.shortstr(p.messageId, 'messageId');
  }
  if (p.timestamp != null) {
    flags |= PropertyFlag.timestamp;
    w.timestamp(p.timestamp);
  }
  if (p.type != null) {
    flags |= PropertyFlag.type;
    w.shortstr(p.type, 'type');
  }
  if (p.userId != null) {
    flags |= PropertyFlag.userId;
    w.shortstr(p.userId, 'userId');
  }
  if (p.appId != null) {
    flags |= PropertyFlag.appId;
    w.shortstr(p.appId, 'appId');
  }
  if (flags === 0) return NO_PROPERTIES.slice();
  // A copy: the writer is reused by the next call.
  const out = new Uint8Array(w.view());
  out[0] = flags >>> 8;
  out[1] = flags & 0xff;
  return out;
}

/**
 * Appends a content header frame: class 60, weight 0, `bodySize`, then `amqpProperties` (flags +
 * list, as messagePropertiesToAmqp makes them). A header frame cannot be split, so one larger than
 * `frameMax` (0 = no limit) is AmqpError 311 CONTENT_TOO_LARGE, and nothing is written.
 */
export function writeContentHeader(out: WireWriter, channel: number, frameMax: number, bodySize: number, amqpProperties: Uint8Array): void {
  if (!(Number.isSafeInteger(bodySize) && bodySize >= 0)) throw new RangeError(`bodySize must be a safe integer ≥ 0 (got ${bodySize})`);
  if (amqpProperties.length < 2)
    throw new RangeError(`amqpProperties must hold at least the 2-byte flags word (got ${amqpProperties.length} bytes)`);
  const size = CONTENT_HEADER_FIXED + amqpProperties.length;
  if (frameMax !== 0 && size + FRAME_OVERHEAD > frameMax) {
    throw new AmqpError(
      ReplyCode.contentTooLarge,
      `content header frame of ${size + FRAME_OVERHEAD} bytes (properties ${amqpProperties.length}) does not fit frame_max ${frameMax}`,
    );
  }
  const start = beginFrame(out, FrameType.header, channel);
  const b = out.ensure(size + 1);
  const p = start + FRAME_HEADER_SIZE;
  b[p] = 0;
  b[p + 1] = 60;
  b[p + 2] = 0;
  b[p + 3] = 0;
  writeU64BE(b, p + 4, bodySize);
  copySmall(amqpProperties, 0, amqpProperties.length, b, p + CONTENT_HEADER_FIXED);
  writeU32BE(b, start + 3, size);
  b[p + size] = FRAME_END;
  out.setLength(p + size + 1);
}

/**
 * Appends `body[bodyOffset, bodyOffset + bodyLength)` as body frames of at most frameMax - 8
 * payload bytes each (0 = no limit: one frame). An empty body gets no frame.
 */
export function writeBodyFrames(
  out: WireWriter,
  channel: number,
  frameMax: number,
  body: Uint8Array,
  bodyOffset: number,
  bodyLength: number,
): void {
  checkBodyRange(body, bodyOffset, bodyLength);
  if (bodyLength === 0) return;
  const max = maxBodyPayload(frameMax);
  const frames = Math.ceil(bodyLength / max);
  // One ensure for every frame: a large body grows the buffer once, not once per frame.
  out.ensure(bodyLength + frames * FRAME_OVERHEAD);
  let at = bodyOffset;
  const end = bodyOffset + bodyLength;
  while (at < end) {
    const n = end - at < max ? end - at : max;
    const start = beginFrame(out, FrameType.body, channel);
    const b = out.ensure(n + 1);
    const p = start + FRAME_HEADER_SIZE;
    copySmall(body, at, at + n, b, p);
    writeU32BE(b, start + 3, n);
    b[p + n] = FRAME_END;
    out.setLength(p + n + 1);
    at += n;
  }
}

/**
 * Appends basic.deliver + content header + body frames to `out`, splitting the body into frames of
 * at most frameMax - 8 payload bytes (an empty body gets no body frame; frameMax 0 = no limit).
 * On a throw (a bad argument, or AmqpError 311 for properties too large for frameMax) `out` is
 * left as it was.
 */
export function writeDeliver(
  out: WireWriter,
  channel: number,
  frameMax: number,
  consumerTag: string,
  deliveryTag: number,
  redelivered: boolean,
  exchange: string,
  routingKey: string,
  amqpProperties: Uint8Array,
  body: Uint8Array,
  bodyOffset: number,
  bodyLength: number,
): void {
  checkBodyRange(body, bodyOffset, bodyLength);
  maxBodyPayload(frameMax);
  const start = out.length;
  try {
    writeBasicDeliverMethod(out, channel, consumerTag, deliveryTag, redelivered, exchange, routingKey);
    writeContentHeader(out, channel, frameMax, bodyLength, amqpProperties);
  } catch (err) {
    out.setLength(start);
    throw err;
  }
  writeBodyFrames(out, channel, frameMax, body, bodyOffset, bodyLength);
}

/**
 * writeDeliver from bytes already encoded, for the broker's hot path: the consumer tag's UTF-8
 * (encoded once per consumer), the exchange and routing key as they lie in a ring record
 * (`src[exchangeOffset…]`, `src[keyOffset…]`), the properties as AMQP bytes. One bounds check and one
 * `ensure` for all the frames; strings are neither decoded nor encoded (decoding and re-encoding them
 * was ~15% of the main thread in a fanout profile). Throws like writeDeliver, writing nothing.
 */
export function writeDeliverRaw(
  out: WireWriter,
  channel: number,
  frameMax: number,
  consumerTag: Uint8Array,
  deliveryTag: number,
  redelivered: boolean,
  src: Uint8Array,
  exchangeOffset: number,
  exchangeLength: number,
  keyOffset: number,
  keyLength: number,
  amqpProperties: Uint8Array,
  body: Uint8Array,
  bodyOffset: number,
  bodyLength: number,
): void {
  checkBodyRange(body, bodyOffset, bodyLength);
  const maxPayload = maxBodyPayload(frameMax);
  if (consumerTag.length > 255 || exchangeLength > 255 || keyLength > 255 || exchangeLength < 0 || keyLength < 0) {
    throw new RangeError('basic.deliver: consumer tag, exchange and routing key are shortstrs of at most 255 bytes');
  }
  if (exchangeOffset + exchangeLength > src.length || keyOffset + keyLength > src.length) {
    throw new RangeError('basic.deliver: exchange or routing key outside the source bytes');
  }
  if (!(Number.isSafeInteger(deliveryTag) && deliveryTag >= 0))
    throw new RangeError(`deliveryTag must be a safe integer ≥ 0 (got ${deliveryTag})`);
  if (!(channel >= 0 && channel <= 0xffff && Math.floor(channel) === channel))
    throw new RangeError(`channel must be 0..65535 (got ${channel})`);
  if (amqpProperties.length < 2) throw new RangeError('amqpProperties must hold at least the 2-byte flags word');
  const headerSize = CONTENT_HEADER_FIXED + amqpProperties.length;
  if (frameMax !== 0 && headerSize + FRAME_OVERHEAD > frameMax) {
    throw new AmqpError(
      ReplyCode.contentTooLarge,
      `content header frame of ${headerSize + FRAME_OVERHEAD} bytes (properties ${amqpProperties.length}) does not fit frame_max ${frameMax}`,
    );
  }
  const methodSize = 4 + 1 + consumerTag.length + 8 + 1 + 1 + exchangeLength + 1 + keyLength;
  const bodyFrames = bodyLength === 0 ? 0 : Math.ceil(bodyLength / maxPayload);
  const total = methodSize + headerSize + bodyLength + (2 + bodyFrames) * FRAME_OVERHEAD;
  const start = out.length;
  const b = out.ensure(total);
  const hi = channel >>> 8;
  const lo = channel & 0xff;
  let p = start;
  b[p] = FrameType.method;
  b[p + 1] = hi;
  b[p + 2] = lo;
  writeU32BE(b, p + 3, methodSize);
  b[p + 7] = 0;
  b[p + 8] = 60;
  b[p + 9] = 0;
  b[p + 10] = 60;
  p += 11;
  b[p++] = consumerTag.length;
  copySmall(consumerTag, 0, consumerTag.length, b, p);
  p += consumerTag.length;
  writeU64BE(b, p, deliveryTag);
  b[p + 8] = redelivered ? 1 : 0;
  p += 9;
  b[p++] = exchangeLength;
  copySmall(src, exchangeOffset, exchangeOffset + exchangeLength, b, p);
  p += exchangeLength;
  b[p++] = keyLength;
  copySmall(src, keyOffset, keyOffset + keyLength, b, p);
  p += keyLength;
  b[p++] = FRAME_END;
  b[p] = FrameType.header;
  b[p + 1] = hi;
  b[p + 2] = lo;
  writeU32BE(b, p + 3, headerSize);
  b[p + 7] = 0;
  b[p + 8] = 60;
  b[p + 9] = 0;
  b[p + 10] = 0;
  writeU64BE(b, p + 11, bodyLength);
  p += 7 + CONTENT_HEADER_FIXED;
  copySmall(amqpProperties, 0, amqpProperties.length, b, p);
  p += amqpProperties.length;
  b[p++] = FRAME_END;
  let at = bodyOffset;
  const end = bodyOffset + bodyLength;
  while (at < end) {
    const n = end - at < maxPayload ? end - at : maxPayload;
    b[p] = FrameType.body;
    b[p + 1] = hi;
    b[p + 2] = lo;
    writeU32BE(b, p + 3, n);
    p += 7;
    copySmall(body, at, at + n, b, p);
    p += n;
    b[p++] = FRAME_END;
    at += n;
  }
  out.setLength(p);
}

/** Like writeDeliver, for any content method: its method frame (from `args`), content header, body frames. */
export function writeContentMethod<N extends 'basic.return' | 'basic.get-ok' | 'basic.deliver' | 'basic.publish'>(
  out: WireWriter,
  channel: number,
  frameMax: number,
  name: N,
  args: MethodArgs[N],
  amqpProperties: Uint8Array,
  body: Uint8Array,
  bodyOffset: number,
  bodyLength: number,
): void {
  checkBodyRange(body, bodyOffset, bodyLength);
  maxBodyPayload(frameMax);
  const start = out.length;
  try {
    writeMethodFrame(out, channel, name, args);
    writeContentHeader(out, channel, frameMax, bodyLength, amqpProperties);
  } catch (err) {
    out.setLength(start);
    throw err;
  }
  writeBodyFrames(out, channel, frameMax, body, bodyOffset, bodyLength);
}

/**
 * Copies `src[start, end)` to `dst[at]`. TypedArray#set costs ~30 ns whatever the size (plus a
 * subarray), a byte loop ~1 ns a byte (Node 20, this machine, a 2M-iteration loop of each): the
 * properties of most messages are a few bytes, so they go by hand.
 */
function copySmall(src: Uint8Array, start: number, end: number, dst: Uint8Array, at: number): void {
  // Below a few hundred bytes a loop beats a subarray (an object per copy) and set.
  if (end - start <= 256) {
    for (let i = start; i < end; i++) dst[at++] = src[i];
  } else {
    dst.set(start === 0 && end === src.length ? src : src.subarray(start, end), at);
  }
}

/** The largest body frame payload for `frameMax`; throws RangeError when that is not a valid frame-max. */
function maxBodyPayload(frameMax: number): number {
  if (frameMax === 0) return 0xffff_ffff;
  if (!(frameMax > FRAME_OVERHEAD && frameMax <= 0xffff_ffff + FRAME_OVERHEAD && Math.floor(frameMax) === frameMax)) {
    throw new RangeError(`frameMax must be 0 (no limit) or an integer above ${FRAME_OVERHEAD} (got ${frameMax})`);
  }
  return frameMax - FRAME_OVERHEAD;
}

function checkBodyRange(body: Uint8Array, offset: number, length: number): void {
  if (!(body instanceof Uint8Array)) throw new TypeError('body must be a Uint8Array');
  if (!(Number.isInteger(offset) && Number.isInteger(length) && offset >= 0 && length >= 0 && offset + length <= body.length)) {
    throw new RangeError(`body range [${offset}, ${offset}+${length}) is outside the ${body.length}-byte body`);
  }
}
