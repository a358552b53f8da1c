/**
 * AMQP 0-9-1 primitives: big-endian integers, shortstr/longstr, packed bits and field tables, read
 * through a bounds-checked cursor (WireReader) and written through a growable buffer (WireWriter).
 *
 * Reading fails with AmqpError(502 SYNTAX_ERROR) on anything malformed, never with a RangeError
 * from a typed array: the input is whatever a peer sent. Writing fails with TypeError/RangeError
 * naming the value: the input is the broker's own, so a bad value is a bug here, not the peer's.
 *
 * Field tables map to the broker's HeaderTable. Decoding accepts every field type that RabbitMQ,
 * amqplib and pika send, following RabbitMQ where the 0-9-1 spec and its errata disagree ('s' is a
 * signed 16-bit integer, not a short string). Everything decoded is a string, a number or a copy:
 * frames live in reused buffers, and a header outlives its frame.
 */
import { copyBytes } from '../bytes.js';
import type { HeaderTable, HeaderValue } from '../field-table.js';
import { MAX_HEADER_DEPTH, MAX_HEADER_ENTRIES } from '../properties.js';
import { decodeUtf8, writeUtf8 } from '../ws-binary.js';
import { ReplyCode } from './constants.js';
import { AmqpError } from './errors.js';

/**
 * Deepest nesting of tables and arrays in one decoded table, the outermost being 1. Decoding
 * recurses once per level, so this bounds the stack a hostile frame can use. The broker-wide limit,
 * so whatever arrives over AMQP can be stored and re-encoded in the broker's own block format.
 */
export const MAX_TABLE_DEPTH = MAX_HEADER_DEPTH;
/**
 * Table entries plus array elements in one decoded table (nested ones included). An entry is as
 * small as 3 bytes on the wire but costs far more as a JS value, so this bounds what one frame can
 * make the decoder build. The broker-wide limit, as above.
 */
export const MAX_TABLE_ENTRIES = MAX_HEADER_ENTRIES;

/** Field value type octets. */
export const FieldType = {
  boolean: 0x74, // t
  int8: 0x62, // b
  uint8: 0x42, // B
  int16: 0x73, // s (RabbitMQ; the spec's errata would make it a short string)
  uint16: 0x75, // u
  int32: 0x49, // I
  uint32: 0x69, // i
  int64: 0x6c, // l
  uint64: 0x4c, // L (not sent by RabbitMQ, but accepted)
  float: 0x66, // f
  double: 0x64, // d
  decimal: 0x44, // D
  longstr: 0x53, // S
  timestamp: 0x54, // T
  table: 0x46, // F
  array: 0x41, // A
  void: 0x56, // V
  bytes: 0x78, // x
} as const;
export type FieldType = (typeof FieldType)[keyof typeof FieldType];

const TWO_32 = 0x1_0000_0000;
/** One past the largest u64 (2^64, exact as a double): longlongs must be below it. */
export const U64_LIMIT = 2 ** 64;
const I32_MIN = -0x8000_0000;
const I32_MAX = 0x7fff_ffff;

const EMPTY = new Uint8Array(0);
const scratch = new DataView(new ArrayBuffer(8));

// ---------------------------------------------------------------------------------------------
// Reading

/**
 * A cursor over `bytes[pos, end)`. Every read checks the bounds first and fails with
 * AmqpError(502) naming what it was reading; classId/methodId, when set, go into the error so the
 * connection.close names the method at fault. One instance can be reset and reused per frame.
 */
export class WireReader {
  bytes: Uint8Array = EMPTY;
  pos = 0;
  end = 0;
  /** The method being read, for the ids of a SYNTAX_ERROR (0 outside a method). */
  classId = 0;
  methodId = 0;
  /** Entries and array elements still allowed in the table being decoded. */
  #entriesLeft = 0;

  constructor(bytes: Uint8Array = EMPTY, start = 0, end = bytes.length) {
    this.reset(bytes, start, end);
  }

  reset(bytes: Uint8Array, start = 0, end = bytes.length): this {
    this.bytes = bytes;
    this.pos = start;
    this.end = end;
    this.classId = 0;
    this.methodId = 0;
    return this;
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  fail(message: string): never {
    throw new AmqpError(ReplyCode.syntaxError, message, this.classId, this.methodId);
  }

  need(n: number, what: string): void {
    if (this.end - this.pos < n) this.fail(`${what} needs ${n} bytes but ${this.end - this.pos} are left`);
  }

  /** Fails unless everything was read: a method or property list with bytes to spare is malformed. */
  done(what: string): void {
    if (this.pos !== this.end) this.fail(`${this.end - this.pos} unexpected bytes after ${what}`);
  }

  octet(what = 'octet'): number {
    if (this.pos >= this.end) this.need(1, what);
    return this.bytes[this.pos++];
  }

  short(what = 'short'): number {
    if (this.end - this.pos < 2) this.need(2, what);
    const b = this.bytes;
    const p = this.pos;
    this.pos = p + 2;
    return (b[p] << 8) | b[p + 1];
  }

  long(what = 'long'): number {
    if (this.end - this.pos < 4) this.need(4, what);
    const v = readU32BE(this.bytes, this.pos);
    this.pos += 4;
    return v;
  }

  /** A u64 as a number: exact up to 2^53 - 1, rounded above (delivery tags and sizes never get there). */
  longlong(what = 'longlong'): number {
    if (this.end - this.pos < 8) this.need(8, what);
    const b = this.bytes;
    const p = this.pos;
    this.pos = p + 8;
    return readU32BE(b, p) * TWO_32 + readU32BE(b, p + 4);
  }

  /** Seconds since the epoch (a u64). */
  timestamp(what = 'timestamp'): number {
    return this.longlong(what);
  }

  int8(what = 'int8'): number {
    return (this.octet(what) << 24) >> 24;
  }

  int16(what = 'int16'): number {
    return (this.short(what) << 16) >> 16;
  }

  int32(what = 'int32'): number {
    return this.long(what) | 0;
  }

  int64(what = 'int64'): number {
    this.need(8, what);
    const b = this.bytes;
    const p = this.pos;
    this.pos = p + 8;
    return (readU32BE(b, p) | 0) * TWO_32 + readU32BE(b, p + 4);
  }

  float(what = 'float'): number {
    this.need(4, what);
    for (let k = 0; k < 4; k++) scratch.setUint8(k, this.bytes[this.pos + k]);
    this.pos += 4;
    return scratch.getFloat32(0);
  }

  double(what = 'double'): number {
    this.need(8, what);
    for (let k = 0; k < 8; k++) scratch.setUint8(k, this.bytes[this.pos + k]);
    this.pos += 8;
    return scratch.getFloat64(0);
  }

  /**
   * `count` packed bits (the spec packs consecutive bit fields into octets, lowest bit first).
   * Allocates an array: for the table-driven methods; the hot ones test bits in place.
   */
  bits(count: number, what = 'bits'): boolean[] {
    const out = new Array<boolean>(count);
    let octet = 0;
    for (let i = 0; i < count; i++) {
      if ((i & 7) === 0) octet = this.octet(what);
      out[i] = ((octet >> (i & 7)) & 1) === 1;
    }
    return out;
  }

  /** `[u8 n][n bytes UTF-8]` as a string; bytes that are not UTF-8 are malformed (no silent U+FFFD). */
  shortstr(what = 'shortstr'): string {
    const n = this.octet(what);
    if (n === 0) return '';
    return this.#text(n, what);
  }

  /** `[u32 n][n bytes]` as a view of the input (no copy: valid only while the input is). */
  longstr(what = 'longstr'): Uint8Array {
    const n = this.long(what);
    return this.view(n, what);
  }

  /** `[u32 n][n bytes UTF-8]` as a string. */
  longstrText(what = 'longstr'): string {
    const n = this.long(what);
    return n === 0 ? '' : this.#text(n, what);
  }

  /** `n` bytes as a view of the input. */
  view(n: number, what = 'bytes'): Uint8Array {
    if (this.end - this.pos < n) this.need(n, what);
    const v = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }

  #text(n: number, what: string): string {
    if (this.end - this.pos < n) this.need(n, what);
    const s = decodeUtf8(this.bytes, this.pos, this.pos + n);
    if (s === undefined) this.fail(`${what} is not valid UTF-8`);
    this.pos += n;
    return s;
  }

  /** A field table (`[u32 byte size][entries]`), with its own budget of MAX_TABLE_ENTRIES. */
  table(what = 'table'): HeaderTable {
    this.#entriesLeft = MAX_TABLE_ENTRIES;
    return this.#table(1, what);
  }

  /** A field array (`[u32 byte size][values]`), with its own budget of MAX_TABLE_ENTRIES. */
  array(what = 'array'): HeaderValue[] {
    this.#entriesLeft = MAX_TABLE_ENTRIES;
    return this.#array(1, what);
  }

  #table(depth: number, what: string): HeaderTable {
    if (depth > MAX_TABLE_DEPTH) this.fail(`${what} nests deeper than ${MAX_TABLE_DEPTH} tables and arrays`);
    const size = this.long(what);
    if (this.end - this.pos < size) this.need(size, what);
    const outerEnd = this.end;
    // Reads inside the table stop at its own end, so a lying entry cannot read into what follows.
    this.end = this.pos + size;
    const table: HeaderTable = {};
    while (this.pos < this.end) {
      if (--this.#entriesLeft < 0) this.fail(`${what} holds more than ${MAX_TABLE_ENTRIES} entries and array elements`);
      const key = this.shortstr(`${what} key`);
      const value = this.#value(depth, what);
      if (key === '__proto__') {
        // A plain assignment would replace the object's prototype instead of adding a key.
        Object.defineProperty(table, key, { value, enumerable: true, writable: true, configurable: true });
      } else {
        // A repeated key overwrites: the last one wins, as in RabbitMQ's lookups.
        table[key] = value;
      }
    }
    this.end = outerEnd;
    return table;
  }

  #array(depth: number, what: string): HeaderValue[] {
    if (depth > MAX_TABLE_DEPTH) this.fail(`${what} nests deeper than ${MAX_TABLE_DEPTH} tables and arrays`);
    const size = this.long(what);
    if (this.end - this.pos < size) this.need(size, what);
    const outerEnd = this.end;
    this.end = this.pos + size;
    const out: HeaderValue[] = [];
    while (this.pos < this.end) {
      if (--this.#entriesLeft < 0) this.fail(`${what} holds more than ${MAX_TABLE_ENTRIES} entries and array elements`);
      out.push(this.#value(depth, what));
    }
    this.end = outerEnd;
    return out;
  }

  /** One `[type][value]`; nested tables and arrays sit one level below `depth`. */
  #value(depth: number, what: string): HeaderValue {
    const type = this.octet(what);
    switch (type) {
      case FieldType.boolean:
        return this.octet(what) !== 0;
      case FieldType.int8:
        return this.int8(what);
      case FieldType.uint8:
        return this.octet(what);
      case FieldType.int16:
        return this.int16(what);
      case FieldType.uint16:
        return this.short(what);
      case FieldType.int32:
        return this.int32(what);
      case FieldType.uint32:
        return this.long(what);
      case FieldType.int64:
        return this.int64(what);
      case FieldType.uint64:
        return this.longlong(what);
      case FieldType.float:
        return this.float(what);
      case FieldType.double:
        return this.double(what);
      case FieldType.decimal: {
        const scale = this.octet(what);
        const value = this.int32(what);
        return value / 10 ** scale;
      }
      case FieldType.longstr: {
        const n = this.long(what);
        if (this.end - this.pos < n) this.need(n, what);
        // Binary in an S value is legal (RabbitMQ treats it as bytes): keep it as bytes, not U+FFFD.
        const s = n === 0 ? '' : decodeUtf8(this.bytes, this.pos, this.pos + n);
        const v = s ?? copyBytes(this.bytes, this.pos, this.pos + n);
        this.pos += n;
        return v;
      }
      case FieldType.timestamp:
        return this.longlong(what);
      case FieldType.table:
        return this.#table(depth + 1, what);
      case FieldType.array:
        return this.#array(depth + 1, what);
      case FieldType.void:
        return null;
      case FieldType.bytes: {
        const n = this.long(what);
        if (this.end - this.pos < n) this.need(n, what);
        const v = copyBytes(this.bytes, this.pos, this.pos + n);
        this.pos += n;
        return v;
      }
      default:
        return this.fail(`${what} has a value of unknown type 0x${type.toString(16).padStart(2, '0')}`);
    }
  }
}

export function readU16BE(b: Uint8Array, at: number): number {
  return (b[at] << 8) | b[at + 1];
}

export function readU32BE(b: Uint8Array, at: number): number {
  return ((b[at] << 24) | (b[at + 1] << 16) | (b[at + 2] << 8) | b[at + 3]) >>> 0;
}

// ---------------------------------------------------------------------------------------------
// Writing

/**
 * A growable output buffer. Frames are appended one after another (a batch of deliveries for one
 * socket write), then read with view() (no copy, valid until the next write or reset) or take()
 * (a copy the caller may keep). The capacity doubles, so appending is amortised O(1), and it is
 * kept across reset(): a connection's writer stops allocating once it has seen its largest batch.
 */
export class WireWriter {
  #buf: Buffer;
  #len = 0;

  constructor(initialSize = 1024) {
    this.#buf = Buffer.allocUnsafe(initialSize > 16 ? initialSize : 16);
  }

  /** Bytes written so far. */
  get length(): number {
    return this.#len;
  }

  /** Drops what was written; keeps the capacity. */
  reset(): void {
    this.#len = 0;
  }

  /** A copy of the written bytes. */
  take(): Buffer {
    const out = Buffer.allocUnsafe(this.#len);
    this.#buf.copy(out, 0, 0, this.#len);
    return out;
  }

  /**
   * A view of the written bytes, valid until the next write or reset. A plain Uint8Array, not a
   * Buffer: Buffer#slice on it would be a second view where a copy was meant.
   */
  view(): Uint8Array {
    const b = this.#buf;
    return new Uint8Array(b.buffer, b.byteOffset, this.#len);
  }

  /** Makes room for `n` more bytes, and returns the buffer to write them into at `length`. */
  ensure(n: number): Buffer {
    const need = this.#len + n;
    if (need > this.#buf.length) {
      let size = this.#buf.length * 2;
      while (size < need) size *= 2;
      const next = Buffer.allocUnsafe(size);
      this.#buf.copy(next, 0, 0, this.#len);
      this.#buf = next;
    }
    return this.#buf;
  }

  /**
   * Moves the end of the written bytes: forward after writing straight into ensure()'s buffer,
   * back to drop a partial write. @internal for the frame writers
   */
  setLength(n: number): void {
    this.#len = n;
  }

  octet(v: number): void {
    checkUint(v, 0xff, 'octet');
    const b = this.ensure(1);
    b[this.#len++] = v;
  }

  short(v: number): void {
    checkUint(v, 0xffff, 'short');
    const b = this.ensure(2);
    const p = this.#len;
    b[p] = v >>> 8;
    b[p + 1] = v & 0xff;
    this.#len = p + 2;
  }

  long(v: number): void {
    checkUint(v, 0xffff_ffff, 'long');
    this.ensure(4);
    writeU32BE(this.#buf, this.#len, v);
    this.#len += 4;
  }

  /** A u64 from a non-negative integer (above 2^53 it is whatever double the caller holds). */
  longlong(v: number): void {
    if (!Number.isInteger(v) || v < 0 || v >= U64_LIMIT) throw new RangeError(`longlong must be an integer from 0 to 2^64 - 1 (got ${v})`);
    this.ensure(8);
    writeU64BE(this.#buf, this.#len, v);
    this.#len += 8;
  }

  timestamp(v: number): void {
    this.longlong(v);
  }

  /** Packs `values` into octets, lowest bit first, as consecutive bit fields are. */
  bits(values: readonly boolean[]): void {
    for (let i = 0; i < values.length; i += 8) {
      let octet = 0;
      for (let k = 0; k < 8 && i + k < values.length; k++) if (values[i + k]) octet |= 1 << k;
      this.octet(octet);
    }
  }

  shortstr(s: string, what = 'shortstr'): void {
    if (typeof s !== 'string') throw new TypeError(`${what} must be a string (got ${typeof s})`);
    // Room for the worst case (3 bytes per UTF-16 unit), then measure what was written.
    const b = this.ensure(1 + 3 * s.length);
    const start = this.#len;
    const end = writeUtf8(s, b, start + 1);
    const n = end - start - 1;
    if (n > 255) throw new RangeError(`${what} must be at most 255 UTF-8 bytes (got ${n})`);
    b[start] = n;
    this.#len = end;
  }

  longstr(v: string | Uint8Array, what = 'longstr'): void {
    if (typeof v === 'string') {
      const b = this.ensure(4 + 3 * v.length);
      const start = this.#len;
      const end = writeUtf8(v, b, start + 4);
      writeU32BE(b, start, end - start - 4);
      this.#len = end;
    } else if (v instanceof Uint8Array) {
      this.long(v.length);
      this.bytes(v);
    } else {
      throw new TypeError(`${what} must be a string or a Uint8Array (got ${describe(v)})`);
    }
  }

  /** Raw bytes `src[start, end)`. */
  bytes(src: Uint8Array, start = 0, end = src.length): void {
    const n = end - start;
    const b = this.ensure(n);
    b.set(start === 0 && end === src.length ? src : src.subarray(start, end), this.#len);
    this.#len += n;
  }

  /** A field table. Keys whose value is `undefined` are left out, as if absent. */
  table(t: HeaderTable, what = 'table'): void {
    this.#table(t, 1, what);
  }

  /** A field array. */
  array(a: readonly HeaderValue[], what = 'array'): void {
    this.#array(a, 1, what);
  }

  /** One `[type][value]`, the type chosen as for a table value. */
  fieldValue(v: HeaderValue, what = 'field value'): void {
    this.#value(v, 1, what, '');
  }

  #table(t: HeaderTable, depth: number, what: string): void {
    if (depth > MAX_TABLE_DEPTH)
      throw new RangeError(`${what} nests deeper than ${MAX_TABLE_DEPTH} tables and arrays (or contains a cycle)`);
    if (!isPlainObject(t)) throw new TypeError(`${what} must be a plain object (got ${describe(t)})`);
    this.ensure(4);
    const at = this.#len;
    this.#len += 4;
    for (const key of Object.keys(t)) {
      const v = t[key];
      if (v === undefined) continue;
      this.shortstr(key, `${what} key`);
      this.#value(v, depth, what, key);
    }
    writeU32BE(this.#buf, at, this.#len - at - 4);
  }

  #array(a: readonly HeaderValue[], depth: number, what: string): void {
    if (depth > MAX_TABLE_DEPTH)
      throw new RangeError(`${what} nests deeper than ${MAX_TABLE_DEPTH} tables and arrays (or contains a cycle)`);
    this.ensure(4);
    const at = this.#len;
    this.#len += 4;
    for (const v of a) this.#value(v, depth, what, '');
    writeU32BE(this.#buf, at, this.#len - at - 4);
  }

  #value(v: HeaderValue, depth: number, what: string, key: string): void {
    switch (typeof v) {
      case 'string': {
        const b = this.ensure(1 + 4 + 3 * v.length);
        const start = this.#len;
        b[start] = FieldType.longstr;
        const end = writeUtf8(v, b, start + 5);
        writeU32BE(b, start + 1, end - start - 5);
        this.#len = end;
        return;
      }
      case 'boolean': {
        const b = this.ensure(2);
        b[this.#len] = FieldType.boolean;
        b[this.#len + 1] = v ? 1 : 0;
        this.#len += 2;
        return;
      }
      case 'number': {
        const b = this.ensure(9);
        const p = this.#len;
        if (Number.isSafeInteger(v)) {
          if (v >= I32_MIN && v <= I32_MAX) {
            b[p] = FieldType.int32;
            writeU32BE(b, p + 1, v >>> 0);
            this.#len = p + 5;
          } else {
            b[p] = FieldType.int64;
            const hi = Math.floor(v / TWO_32);
            writeU32BE(b, p + 1, hi >>> 0);
            writeU32BE(b, p + 5, (v - hi * TWO_32) >>> 0);
            this.#len = p + 9;
          }
        } else {
          // Fractions, NaN, ±Infinity and integers a double cannot hold exactly: a double says them all.
          b[p] = FieldType.double;
          scratch.setFloat64(0, v);
          for (let k = 0; k < 8; k++) b[p + 1 + k] = scratch.getUint8(k);
          this.#len = p + 9;
        }
        return;
      }
      case 'object': {
        if (v === null) {
          this.ensure(1)[this.#len++] = FieldType.void;
          return;
        }
        if (v instanceof Uint8Array) {
          this.ensure(1)[this.#len++] = FieldType.bytes;
          this.long(v.length);
          this.bytes(v);
          return;
        }
        if (Array.isArray(v)) {
          this.ensure(1)[this.#len++] = FieldType.array;
          this.#array(v, depth + 1, what);
          return;
        }
        if (isPlainObject(v)) {
          this.ensure(1)[this.#len++] = FieldType.table;
          this.#table(v as HeaderTable, depth + 1, what);
          return;
        }
        break;
      }
      default:
        break;
    }
    const where = key === '' ? `${what} value` : `${what} value for key ${JSON.stringify(key)}`;
    throw new TypeError(
      `${where} must be a string, number, boolean, null, Uint8Array, array or plain object (got ${describe(v as unknown)})`,
    );
  }
}

export function writeU32BE(b: Uint8Array, at: number, v: number): void {
  b[at] = v >>> 24;
  b[at + 1] = (v >>> 16) & 0xff;
  b[at + 2] = (v >>> 8) & 0xff;
  b[at + 3] = v & 0xff;
}

/** A u64 from a non-negative integer the caller has checked. */
export function writeU64BE(b: Uint8Array, at: number, v: number): void {
  writeU32BE(b, at, Math.floor(v / TWO_32) >>> 0);
  writeU32BE(b, at + 4, v >>> 0);
}

function checkUint(v: number, max: number, what: string): void {
  // One comparison chain, no Number.isInteger call: this runs for every short and long written.
  if (!(v >= 0 && v <= max && Math.floor(v) === v)) throw new RangeError(`${what} must be an integer from 0 to ${max} (got ${v})`);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null) return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  if (typeof v === 'object') return (v as object).constructor?.name ?? 'object';
  return `${typeof v} ${String(v)}`;
}
