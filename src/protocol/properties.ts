/**
 * AMQP 0-9-1 basic properties in a compact binary block, and the typed table its headers (and the
 * `arguments` of management ops) are written in. Layout in docs/protocol.md ("Properties block").
 *
 * `[u16 presence flags][present fields, in flag order]`, little-endian. The flag bits are those
 * of AMQP's basic class (content-type = bit 15 … app-id = bit 3), so an AMQP 0-9-1 front end maps
 * the flags word across unchanged; bits 0–2 (AMQP's cluster-id and continuation) must be 0.
 *
 * The broker never needs the decoded object to route or store a message: the block travels as
 * bytes (socket → ring → delivery), checked once at the edge by validateProperties, which walks it
 * without allocating. decodeProperties builds the object for whoever wants to read it.
 */
import { copyBytes } from './bytes.js';
import { ErrorCode } from './errors.js';
import {
  FieldReader,
  MAX_SHORTSTR_BYTES,
  ProtocolError,
  isU64,
  isUtf8,
  utf8Length,
  writeF64,
  writeU16,
  writeU32,
  writeU64,
  writeUtf8,
} from './ws-binary.js';
import type { HeaderTable, HeaderValue } from './field-table.js';

export interface MessageProperties {
  contentType?: string;
  contentEncoding?: string;
  headers?: Record<string, HeaderValue>;
  deliveryMode?: 1 | 2;
  priority?: number;
  correlationId?: string;
  replyTo?: string;
  /** Per-message TTL in milliseconds as a decimal string, as in AMQP (the broker validates it). */
  expiration?: string;
  messageId?: string;
  /** Seconds since the epoch, an integer (AMQP timestamp, u64 on the wire). */
  timestamp?: number;
  type?: string;
  userId?: string;
  appId?: string;
}

/** Presence bits of the u16 flags word: AMQP 0-9-1 basic property flags. */
export const PropertyFlag = {
  contentType: 0x8000,
  contentEncoding: 0x4000,
  headers: 0x2000,
  deliveryMode: 0x1000,
  priority: 0x0800,
  correlationId: 0x0400,
  replyTo: 0x0200,
  expiration: 0x0100,
  messageId: 0x0080,
  timestamp: 0x0040,
  type: 0x0020,
  userId: 0x0010,
  appId: 0x0008,
} as const;
export type PropertyFlag = (typeof PropertyFlag)[keyof typeof PropertyFlag];

/** Bits 0–2: AMQP cluster-id (deprecated) and the continuation bit; never set in v1. */
const RESERVED_PROPERTY_BITS = 0x0007;

/** Table value types: AMQP 0-9-1 field-type letters, so a hex dump reads like one. */
export const HeaderType = {
  string: 0x53, // 'S' long string: [u32 length][UTF-8]
  number: 0x64, // 'd' f64
  boolean: 0x74, // 't' u8 0|1
  null: 0x56, // 'V' no bytes
  bytes: 0x78, // 'x' [u32 length][bytes]
  array: 0x41, // 'A' [u32 count][count × (u8 type, value)]
  table: 0x46, // 'F' [u32 count][count × (shortstr key, u8 type, value)]
} as const;
export type HeaderType = (typeof HeaderType)[keyof typeof HeaderType];

/**
 * Deepest nesting of tables and arrays, the outermost table being 1. Decoding recurses once per
 * level, so this bounds the stack a hostile block can use. RabbitMQ's deepest header, x-death
 * (table → array → table → array), is 4 deep.
 */
export const MAX_HEADER_DEPTH = 16;
/**
 * Table entries plus array elements in one properties block or arguments table. An entry can be
 * 6 bytes on the wire but costs far more as a JS object, so this bounds the memory one op can make
 * the decoder build; real header sets have tens.
 */
export const MAX_HEADER_ENTRIES = 4096;

export interface TableLimits {
  readonly maxHeaderDepth: number;
  readonly maxHeaderEntries: number;
}

export const DEFAULT_TABLE_LIMITS: TableLimits = Object.freeze({
  maxHeaderDepth: MAX_HEADER_DEPTH,
  maxHeaderEntries: MAX_HEADER_ENTRIES,
});

// ---------------------------------------------------------------------------------------------
// Encoding

/** Exact size of the block for `p`; throws RangeError/TypeError (naming the field) if `p` cannot be encoded. */
export function encodedPropertiesLength(p: MessageProperties): number {
  let n = 2;
  if (p.contentType != null) n += shortstrLength(p.contentType, 'contentType');
  if (p.contentEncoding != null) n += shortstrLength(p.contentEncoding, 'contentEncoding');
  if (p.headers != null) n += encodedTableLength(p.headers, 'headers');
  if (p.deliveryMode != null) {
    checkDeliveryMode(p.deliveryMode);
    n += 1;
  }
  if (p.priority != null) {
    checkPriority(p.priority);
    n += 1;
  }
  if (p.correlationId != null) n += shortstrLength(p.correlationId, 'correlationId');
  if (p.replyTo != null) n += shortstrLength(p.replyTo, 'replyTo');
  if (p.expiration != null) n += shortstrLength(p.expiration, 'expiration');
  if (p.messageId != null) n += shortstrLength(p.messageId, 'messageId');
  if (p.timestamp != null) {
    checkTimestamp(p.timestamp);
    n += 8;
  }
  if (p.type != null) n += shortstrLength(p.type, 'type');
  if (p.userId != null) n += shortstrLength(p.userId, 'userId');
  if (p.appId != null) n += shortstrLength(p.appId, 'appId');
  return n;
}

/** The block for `p` in a new array of exactly its size. */
export function encodeProperties(p: MessageProperties): Uint8Array {
  const out = new Uint8Array(encodedPropertiesLength(p));
  writePropertiesUnchecked(p, out, 0);
  return out;
}

/**
 * Writes the block for `p` at `target[offset]`; returns the offset after it. Throws RangeError if
 * `target` has no room (nothing is written then) or `p` cannot be encoded.
 */
export function writeProperties(p: MessageProperties, target: Uint8Array, offset: number): number {
  const n = encodedPropertiesLength(p);
  if (!Number.isInteger(offset) || offset < 0 || target.length - offset < n) {
    throw new RangeError(`properties need ${n} bytes at offset ${offset} but the target has ${target.length - offset}`);
  }
  return writePropertiesUnchecked(p, target, offset);
}

/**
 * writeProperties without the room check, for encoders that already sized the target with
 * encodedPropertiesLength (which also validated `p`). @internal
 */
export function writePropertiesUnchecked(p: MessageProperties, target: Uint8Array, offset: number): number {
  let flags = 0;
  let at = offset + 2;
  if (p.contentType != null) {
    flags |= PropertyFlag.contentType;
    at = writeShortstr(p.contentType, target, at, 'contentType');
  }
  if (p.contentEncoding != null) {
    flags |= PropertyFlag.contentEncoding;
    at = writeShortstr(p.contentEncoding, target, at, 'contentEncoding');
  }
  if (p.headers != null) {
    flags |= PropertyFlag.headers;
    at = writeTableUnchecked(p.headers, target, at);
  }
  if (p.deliveryMode != null) {
    flags |= PropertyFlag.deliveryMode;
    target[at++] = p.deliveryMode;
  }
  if (p.priority != null) {
    flags |= PropertyFlag.priority;
    target[at++] = p.priority;
  }
  if (p.correlationId != null) {
    flags |= PropertyFlag.correlationId;
    at = writeShortstr(p.correlationId, target, at, 'correlationId');
  }
  if (p.replyTo != null) {
    flags |= PropertyFlag.replyTo;
    at = writeShortstr(p.replyTo, target, at, 'replyTo');
  }
  if (p.expiration != null) {
    flags |= PropertyFlag.expiration;
    at = writeShortstr(p.expiration, target, at, 'expiration');
  }
  if (p.messageId != null) {
    flags |= PropertyFlag.messageId;
    at = writeShortstr(p.messageId, target, at, 'messageId');
  }
  if (p.timestamp != null) {
    flags |= PropertyFlag.timestamp;
    writeU64(target, at, p.timestamp);
    at += 8;
  }
  if (p.type != null) {
    flags |= PropertyFlag.type;
    at = writeShortstr(p.type, target, at, 'type');
  }
  if (p.userId != null) {
    flags |= PropertyFlag.userId;
    at = writeShortstr(p.userId, target, at, 'userId');
  }
  if (p.appId != null) {
    flags |= PropertyFlag.appId;
    at = writeShortstr(p.appId, target, at, 'appId');
  }
  writeU16(target, offset, flags);
  return at;
}

/** Items left in the table being encoded (single-threaded, not re-entrant: reset per top-level call). */
let encodeEntriesLeft = 0;

/** Exact size of `table` as a typed table; throws if a value cannot be encoded or a limit is passed. */
export function encodedTableLength(table: HeaderTable, field = 'arguments'): number {
  encodeEntriesLeft = MAX_HEADER_ENTRIES;
  return tableLength(table, 1, field);
}

/** Writes `table` at `target[offset]` (sized by encodedTableLength); returns the offset after it. @internal */
export function writeTableUnchecked(table: HeaderTable, target: Uint8Array, offset: number): number {
  return writeTableAt(table, target, offset);
}

function tableLength(table: HeaderTable, depth: number, field: string): number {
  if (depth > MAX_HEADER_DEPTH) {
    throw new RangeError(`${field} nests deeper than ${MAX_HEADER_DEPTH} tables/arrays (or contains a cycle)`);
  }
  if (!isPlainObject(table)) throw new TypeError(`${field} must be a plain object`);
  let n = 4;
  for (const key of Object.keys(table)) {
    if (--encodeEntriesLeft < 0) throw new RangeError(`${field} has more than ${MAX_HEADER_ENTRIES} entries and elements`);
    n += shortstrLength(key, `${field} key`) + valueLength(table[key], depth, field, key);
  }
  return n;
}

function valueLength(v: unknown, depth: number, field: string, key: string): number {
  switch (typeof v) {
    case 'string':
      return 5 + utf8Length(v);
    case 'number':
      return 9;
    case 'boolean':
      return 2;
    case 'object': {
      if (v === null) return 1;
      if (v instanceof Uint8Array) return 5 + v.length;
      if (Array.isArray(v)) {
        if (depth + 1 > MAX_HEADER_DEPTH) {
          throw new RangeError(`${field} nests deeper than ${MAX_HEADER_DEPTH} tables/arrays (or contains a cycle)`);
        }
        let n = 5;
        for (const item of v) {
          if (--encodeEntriesLeft < 0) throw new RangeError(`${field} has more than ${MAX_HEADER_ENTRIES} entries and elements`);
          n += valueLength(item, depth + 1, field, key);
        }
        return n;
      }
      if (isPlainObject(v)) return 1 + tableLength(v as HeaderTable, depth + 1, field);
      break;
    }
    default:
      break;
  }
  throw new TypeError(
    `${field} value for key ${JSON.stringify(key)} must be a string, number, boolean, null, Uint8Array, array or plain object (got ${describe(v)})`,
  );
}

function writeTableAt(table: HeaderTable, t: Uint8Array, at: number): number {
  const keys = Object.keys(table);
  writeU32(t, at, keys.length);
  at += 4;
  for (const key of keys) {
    at = writeShortstr(key, t, at, 'header key');
    at = writeValue(table[key], t, at);
  }
  return at;
}

function writeValue(v: HeaderValue, t: Uint8Array, at: number): number {
  switch (typeof v) {
    case 'string': {
      t[at] = HeaderType.string;
      const end = writeUtf8(v, t, at + 5);
      writeU32(t, at + 1, end - at - 5);
      return end;
    }
    case 'number':
      t[at] = HeaderType.number;
      writeF64(t, at + 1, v);
      return at + 9;
    case 'boolean':
      t[at] = HeaderType.boolean;
      t[at + 1] = v ? 1 : 0;
      return at + 2;
    default:
      break;
  }
  if (v === null) {
    t[at] = HeaderType.null;
    return at + 1;
  }
  if (v instanceof Uint8Array) {
    t[at] = HeaderType.bytes;
    writeU32(t, at + 1, v.length);
    t.set(v, at + 5);
    return at + 5 + v.length;
  }
  if (Array.isArray(v)) {
    t[at] = HeaderType.array;
    writeU32(t, at + 1, v.length);
    at += 5;
    for (const item of v) at = writeValue(item, t, at);
    return at;
  }
  t[at] = HeaderType.table;
  return writeTableAt(v, t, at + 1);
}

function shortstrLength(s: unknown, field: string): number {
  if (typeof s !== 'string') throw new TypeError(`${field} must be a string (got ${describe(s)})`);
  const n = utf8Length(s);
  if (n > MAX_SHORTSTR_BYTES) throw new RangeError(`${field} must be at most ${MAX_SHORTSTR_BYTES} UTF-8 bytes (got ${n})`);
  return 1 + n;
}

function writeShortstr(s: string, t: Uint8Array, at: number, field: string): number {
  const end = writeUtf8(s, t, at + 1);
  const n = end - at - 1;
  if (n > MAX_SHORTSTR_BYTES) throw new RangeError(`${field} must be at most ${MAX_SHORTSTR_BYTES} UTF-8 bytes (got ${n})`);
  t[at] = n;
  return end;
}

function checkDeliveryMode(v: unknown): void {
  if (v !== 1 && v !== 2) throw new RangeError(`deliveryMode must be 1 (transient) or 2 (persistent) (got ${describe(v)})`);
}

function checkPriority(v: unknown): void {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 255) {
    throw new RangeError(`priority must be an integer from 0 to 255 (got ${describe(v)})`);
  }
}

function checkTimestamp(v: unknown): void {
  if (typeof v !== 'number' || !isU64(v)) {
    throw new RangeError(`timestamp must be whole seconds from 0 to 2^53 - 1 (got ${describe(v)})`);
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null) return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v === 'object') return (v as object).constructor?.name ?? 'object';
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v);
  return `${typeof v} ${String(v)}`;
}

// ---------------------------------------------------------------------------------------------
// Decoding

/** Field names in errors: bare for decodeProperties, prefixed inside an op body. */
const FIELDS_BARE = fieldNames('');
const FIELDS_IN_OP = fieldNames('properties.');

function fieldNames(prefix: string) {
  return {
    flags: prefix + 'flags',
    contentType: prefix + 'contentType',
    contentEncoding: prefix + 'contentEncoding',
    headers: prefix + 'headers',
    deliveryMode: prefix + 'deliveryMode',
    priority: prefix + 'priority',
    correlationId: prefix + 'correlationId',
    replyTo: prefix + 'replyTo',
    expiration: prefix + 'expiration',
    messageId: prefix + 'messageId',
    timestamp: prefix + 'timestamp',
    type: prefix + 'type',
    userId: prefix + 'userId',
    appId: prefix + 'appId',
    end: prefix + 'end',
  };
}

const reader = new FieldReader();

/**
 * Decodes the block at `bytes[offset, offset + length)`. Throws ProtocolError (`bad_frame`, or
 * `too_large` past a limit) on malformed input, including bytes left over after the last field.
 * Nothing in the result aliases `bytes`.
 */
export function decodeProperties(
  bytes: Uint8Array,
  offset: number,
  length: number,
  limits: TableLimits = DEFAULT_TABLE_LIMITS,
): MessageProperties {
  const r = reader.reset(bytes, offset, checkRange(bytes, offset, length), 'PROPERTIES');
  return readProperties(r, limits, true, false) as MessageProperties;
}

/**
 * Checks the block at `bytes[offset, offset + length)` as decodeProperties would (structure,
 * UTF-8, limits), without building anything.
 */
export function validateProperties(bytes: Uint8Array, offset: number, length: number, limits: TableLimits = DEFAULT_TABLE_LIMITS): void {
  const r = reader.reset(bytes, offset, checkRange(bytes, offset, length), 'PROPERTIES');
  readProperties(r, limits, false, false);
}

function checkRange(bytes: Uint8Array, offset: number, length: number): number {
  if (!Number.isInteger(offset) || !Number.isInteger(length) || offset < 0 || length < 0 || offset + length > bytes.length) {
    throw new RangeError(`properties range [${offset}, ${offset}+${length}) is outside the ${bytes.length}-byte input`);
  }
  return offset + length;
}

/**
 * Reads a whole block from `r.pos` to `r.end` (the caller bounds `r.end` to the block). With
 * `build` false it only checks. `inOp` names fields `properties.x` for errors inside an op body.
 * @internal shared with ws-binary-decode.ts
 */
export function readProperties(r: FieldReader, limits: TableLimits, build: boolean, inOp: boolean): MessageProperties | undefined {
  const F = inOp ? FIELDS_IN_OP : FIELDS_BARE;
  const flags = r.u16(F.flags);
  if ((flags & RESERVED_PROPERTY_BITS) !== 0) {
    r.fail(ErrorCode.badFrame, F.flags, `property flags 0x${flags.toString(16)} set reserved bits 0-2`, r.pos - 2);
  }
  const p: MessageProperties | undefined = build ? {} : undefined;
  if (flags & PropertyFlag.contentType) {
    const v = shortstr(r, build, F.contentType);
    if (p) p.contentType = v;
  }
  if (flags & PropertyFlag.contentEncoding) {
    const v = shortstr(r, build, F.contentEncoding);
    if (p) p.contentEncoding = v;
  }
  if (flags & PropertyFlag.headers) {
    r.entriesLeft = limits.maxHeaderEntries;
    const v = readTable(r, limits, 1, build, F.headers);
    if (p) p.headers = v;
  }
  if (flags & PropertyFlag.deliveryMode) {
    const v = r.u8(F.deliveryMode);
    if (v !== 1 && v !== 2) r.fail(ErrorCode.badFrame, F.deliveryMode, `deliveryMode ${v} is not 1 or 2`, r.pos - 1);
    if (p) p.deliveryMode = v;
  }
  if (flags & PropertyFlag.priority) {
    const v = r.u8(F.priority);
    if (p) p.priority = v;
  }
  if (flags & PropertyFlag.correlationId) {
    const v = shortstr(r, build, F.correlationId);
    if (p) p.correlationId = v;
  }
  if (flags & PropertyFlag.replyTo) {
    const v = shortstr(r, build, F.replyTo);
    if (p) p.replyTo = v;
  }
  if (flags & PropertyFlag.expiration) {
    const v = shortstr(r, build, F.expiration);
    if (p) p.expiration = v;
  }
  if (flags & PropertyFlag.messageId) {
    const v = shortstr(r, build, F.messageId);
    if (p) p.messageId = v;
  }
  if (flags & PropertyFlag.timestamp) {
    const v = r.u64(F.timestamp);
    if (p) p.timestamp = v;
  }
  if (flags & PropertyFlag.type) {
    const v = shortstr(r, build, F.type);
    if (p) p.type = v;
  }
  if (flags & PropertyFlag.userId) {
    const v = shortstr(r, build, F.userId);
    if (p) p.userId = v;
  }
  if (flags & PropertyFlag.appId) {
    const v = shortstr(r, build, F.appId);
    if (p) p.appId = v;
  }
  if (r.pos !== r.end) {
    r.fail(ErrorCode.badFrame, F.end, `${r.end - r.pos} unexpected bytes after the last property`);
  }
  return p;
}

function shortstr(r: FieldReader, build: boolean, field: string): string {
  if (build) return r.shortstr(field);
  const n = r.u8(field);
  checkUtf8(r, n, field);
  return '';
}

function checkUtf8(r: FieldReader, n: number, field: string): void {
  r.need(n, field);
  if (!isUtf8(r.bytes, r.pos, r.pos + n)) r.fail(ErrorCode.badFrame, field, `${field} is not valid UTF-8`);
  r.pos += n;
}

/**
 * Reads `[u32 count][entries]` at `r.pos`, at nesting level `depth` (1 = outermost). The caller
 * sets `r.entriesLeft` once per block or arguments table. @internal shared with ws-binary-decode.ts
 */
export function readTable(r: FieldReader, limits: TableLimits, depth: number, build: boolean, field: string): HeaderTable {
  if (depth > limits.maxHeaderDepth) {
    r.fail(ErrorCode.tooLarge, field, `${field} nests deeper than ${limits.maxHeaderDepth} tables/arrays`);
  }
  const count = r.u32(field);
  takeEntries(r, count, field);
  const table: HeaderTable = {};
  for (let i = 0; i < count; i++) {
    const keyAt = r.pos;
    const key = r.shortstr(field);
    const type = r.u8(field);
    const value = readValue(r, type, limits, depth, build, field);
    // Keys are recorded even when only checking, so that a duplicate fails both ways alike.
    if (Object.hasOwn(table, key)) {
      r.fail(ErrorCode.badFrame, field, `${field} has the key ${JSON.stringify(key)} twice`, keyAt);
    }
    if (key === '__proto__') {
      // A plain assignment would replace the object's prototype instead of adding a key.
      Object.defineProperty(table, key, { value, enumerable: true, writable: true, configurable: true });
    } else {
      table[key] = value;
    }
  }
  return table;
}

function takeEntries(r: FieldReader, count: number, field: string): void {
  if (count > r.entriesLeft) {
    r.fail(ErrorCode.tooLarge, field, `${field} holds more than the limit of table entries and array elements`, r.pos - 4);
  }
  r.entriesLeft -= count;
}

function readValue(r: FieldReader, type: number, limits: TableLimits, depth: number, build: boolean, field: string): HeaderValue {
  switch (type) {
    case HeaderType.string: {
      const n = r.u32(field);
      if (build) return r.text(n, field);
      checkUtf8(r, n, field);
      return '';
    }
    case HeaderType.number:
      return r.f64(field);
    case HeaderType.boolean: {
      const b = r.u8(field);
      if (b > 1) r.fail(ErrorCode.badFrame, field, `boolean byte ${b} is not 0 or 1`, r.pos - 1);
      return b === 1;
    }
    case HeaderType.null:
      return null;
    case HeaderType.bytes: {
      const n = r.u32(field);
      const v = r.view(n, field);
      // A detached copy: the input may be a Buffer view of a ring (Buffer#slice would alias it).
      return build ? copyBytes(v) : v;
    }
    case HeaderType.array: {
      if (depth + 1 > limits.maxHeaderDepth) {
        r.fail(ErrorCode.tooLarge, field, `${field} nests deeper than ${limits.maxHeaderDepth} tables/arrays`, r.pos - 1);
      }
      const count = r.u32(field);
      takeEntries(r, count, field);
      const out: HeaderValue[] = build ? new Array<HeaderValue>(count) : [];
      for (let i = 0; i < count; i++) {
        const t = r.u8(field);
        const v = readValue(r, t, limits, depth + 1, build, field);
        if (build) out[i] = v;
      }
      return out;
    }
    case HeaderType.table:
      return readTable(r, limits, depth + 1, build, field);
    default:
      return r.fail(ErrorCode.badFrame, field, `unknown ${field} value type 0x${type.toString(16).padStart(2, '0')}`, r.pos - 1);
  }
}

/** Re-exported for callers that only deal with properties. */
export { ProtocolError };
