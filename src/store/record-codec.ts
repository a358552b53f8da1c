/**
 * The byte layout of log records: encoding into a growable buffer, and decoding record bodies.
 * Pure functions over bytes; no I/O. Framing checks (lengths, CRC) while scanning a file live in
 * `segment.ts`.
 *
 * Every record (all integers little-endian):
 *
 *   offset  size  field
 *   0       4     bodyLength  u32: bytes of body (after the type byte)
 *   4       4     crc         u32: CRC-32C over bytes [0, 4) then [8, 9 + bodyLength):
 *                             the length, the type and the body (everything but itself), so a
 *                             corrupted length is caught like a corrupted body
 *   8       1     type        RecordType
 *   9       n     body        as below
 *
 * Bodies (u64 fields hold integers < 2^53, written as two u32 halves, low first; strings are UTF-8
 * with a u16 byte length in front):
 *
 *   segmentHeader (1)  magic "SMQL" (4) | formatVersion u16 | flags u16 (0) | segmentNo u64 |
 *                      firstLsn u64 | nextId u64 | snapshot: JSON array of topology ops (rest)
 *   message (2)        id u64 | queue str | exchange str | routingKey str |
 *                      propertiesLength u32 (0xFFFFFFFF = null) | properties | payload (rest)
 *   remove (3)         id u64 | queue str
 *   topology (4)       one topology op as JSON (rest)
 *   streamEntry (5)    offset u64 | timestamp f64 | entry (stream/stream-entry.ts, rest)
 *   streamOffsets (6)  JSON array of [consumer name, offset] pairs (rest)
 *
 * Every segment file of the shard's log starts with exactly one segmentHeader; the other types
 * follow in LSN order. A stream's segment files (`stream-files.ts`) hold only the stream types.
 */
import { crc32c } from './crc32c.js';
import type { PersistedMessage, TopologyOp } from './store.js';

export const RecordType = {
  segmentHeader: 1,
  message: 2,
  remove: 3,
  topology: 4,
  /** A stream's entry (stream-files.ts): only in a stream's own segment files. */
  streamEntry: 5,
  /** A stream's stored consumer offsets (stream-files.ts): only in a stream's own segment files. */
  streamOffsets: 6,
} as const;
export type RecordType = (typeof RecordType)[keyof typeof RecordType];

/** bodyLength + crc + type. */
export const RECORD_HEADER_BYTES = 9;

/**
 * The largest body a record may have. A length above it cannot have been written, so reading one
 * means the bytes are not a record header (corruption): appends refuse bigger ones.
 */
export const MAX_RECORD_BODY_BYTES = 256 * 1024 * 1024;

/** offset u64 + timestamp f64 before the entry in a streamEntry body. */
export const STREAM_ENTRY_FIXED_BYTES = 16;

/** The smallest body any record type has ("{}" of a topology op); a zero-filled tail reads as length 0. */
export const MIN_RECORD_BODY_BYTES = 2;

/** Bumped on any incompatible layout change; recovery refuses segments of a newer version. */
export const FORMAT_VERSION = 1;

/** "SMQL" read as a little-endian u32. */
const HEADER_MAGIC = 0x4c514d53;

/** u16 length prefix of strings. */
const MAX_STRING_BYTES = 0xffff;

const NULL_PROPERTIES = 0xffffffff;

const TWO_POW_32 = 4294967296;

/** The fixed part of a segmentHeader body, before the snapshot. */
const SEGMENT_HEADER_FIXED_BYTES = 4 + 2 + 2 + 8 + 8 + 8;

/** What a segmentHeader says. */
export interface SegmentHeader {
  readonly formatVersion: number;
  readonly segmentNo: number;
  /** The LSN of the first record after the header in this segment. */
  readonly firstLsn: number;
  /** The store's next message id when the segment was started. */
  readonly nextId: number;
  /** The compacted topology as of the start of this segment. */
  readonly snapshot: TopologyOp[];
}

/** A record body that passed its CRC but cannot be decoded (a bug, or a format we do not know). */
export class RecordDecodeError extends Error {
  override readonly name = 'RecordDecodeError';
}

/**
 * Appends encoded records to one growable buffer. `bytes.subarray(0, length)` is the encoded run.
 * Single owner; reuse with `reset()`.
 */
export class RecordWriter {
  #buf: Buffer;
  #length = 0;

  constructor(initialBytes = 64 * 1024) {
    this.#buf = Buffer.allocUnsafe(initialBytes);
  }

  get length(): number {
    return this.#length;
  }

  /** The buffer; valid bytes are [0, length). Replaced when it grows: do not keep it across appends. */
  get bytes(): Buffer {
    return this.#buf;
  }

  /** The current allocation, to decide whether to keep a writer for reuse. */
  get capacity(): number {
    return this.#buf.length;
  }

  reset(): void {
    this.#length = 0;
  }

  /** Appends a message record; returns its size in bytes. */
  message(m: PersistedMessage): number {
    const q = strBytes(m.queue, 'queue');
    const x = strBytes(m.exchange, 'exchange');
    const k = strBytes(m.routingKey, 'routingKey');
    const props = m.properties;
    const body = 8 + 2 + q + 2 + x + 2 + k + 4 + (props === null ? 0 : props.length) + m.payload.length;
    const start = this.#begin(RecordType.message, body);
    const b = this.#buf;
    let at = start + RECORD_HEADER_BYTES;
    at = putU64(b, at, m.id);
    at = putStr(b, at, m.queue, q);
    at = putStr(b, at, m.exchange, x);
    at = putStr(b, at, m.routingKey, k);
    if (props === null) {
      b.writeUInt32LE(NULL_PROPERTIES, at);
      at += 4;
    } else {
      b.writeUInt32LE(props.length, at);
      b.set(props, at + 4);
      at += 4 + props.length;
    }
    b.set(m.payload, at);
    return this.#end(start, body);
  }

  /** Appends a remove record; returns its size in bytes. */
  remove(queue: string, id: number): number {
    const q = strBytes(queue, 'queue');
    const body = 8 + 2 + q;
    const start = this.#begin(RecordType.remove, body);
    putStr(this.#buf, putU64(this.#buf, start + RECORD_HEADER_BYTES, id), queue, q);
    return this.#end(start, body);
  }

  /** Appends a streamEntry record whose entry is `src[srcStart, srcStart + length)`; returns its size in bytes. */
  streamEntry(offset: number, timestamp: number, src: Uint8Array, srcStart: number, length: number): number {
    const body = STREAM_ENTRY_FIXED_BYTES + length;
    const start = this.#begin(RecordType.streamEntry, body);
    const b = this.#buf;
    const at = putU64(b, start + RECORD_HEADER_BYTES, offset);
    b.writeDoubleLE(timestamp, at);
    b.set(src.subarray(srcStart, srcStart + length), at + 8);
    return this.#end(start, body);
  }

  /** Appends a streamOffsets record of (consumer name, offset) pairs; returns its size in bytes. */
  streamOffsets(pairs: ReadonlyArray<readonly [string, number]>): number {
    return this.#json(RecordType.streamOffsets, JSON.stringify(pairs), 0);
  }

  /** Drops the first `n` bytes (written out elsewhere); what follows moves to the front. */
  discardFront(n: number): void {
    this.#buf.copy(this.#buf, 0, n, this.#length);
    this.#length -= n;
  }

  /** Appends a topology record holding `json` (one op); returns its size in bytes. */
  topology(json: string): number {
    return this.#json(RecordType.topology, json, 0);
  }

  /** Appends a segmentHeader; returns its size in bytes. */
  segmentHeader(segmentNo: number, firstLsn: number, nextId: number, snapshot: readonly TopologyOp[]): number {
    const json = JSON.stringify(snapshot);
    return this.#json(RecordType.segmentHeader, json, SEGMENT_HEADER_FIXED_BYTES, (b, at) => {
      b.writeUInt32LE(HEADER_MAGIC, at);
      b.writeUInt16LE(FORMAT_VERSION, at + 4);
      b.writeUInt16LE(0, at + 6);
      putU64(b, at + 8, segmentNo);
      putU64(b, at + 16, firstLsn);
      putU64(b, at + 24, nextId);
    });
  }

  #json(type: RecordType, json: string, fixed: number, writeFixed?: (b: Buffer, at: number) => void): number {
    const n = Buffer.byteLength(json);
    const body = fixed + n;
    const start = this.#begin(type, body);
    const at = start + RECORD_HEADER_BYTES;
    writeFixed?.(this.#buf, at);
    this.#buf.write(json, at + fixed, n, 'utf8');
    return this.#end(start, body);
  }

  /** Reserves room for a record, writes length and type; returns the record's start. */
  #begin(type: RecordType, body: number): number {
    if (body > MAX_RECORD_BODY_BYTES) {
      throw new RangeError(`record body of ${body} bytes exceeds MAX_RECORD_BODY_BYTES (${MAX_RECORD_BODY_BYTES})`);
    }
    const start = this.#length;
    const need = start + RECORD_HEADER_BYTES + body;
    if (need > this.#buf.length) {
      const grown = Buffer.allocUnsafe(Math.max(need, this.#buf.length * 2));
      this.#buf.copy(grown, 0, 0, start);
      this.#buf = grown;
    }
    this.#buf.writeUInt32LE(body, start);
    this.#buf[start + 8] = type;
    return start;
  }

  /** Fills in the CRC and commits the record; returns its size. */
  #end(start: number, body: number): number {
    const b = this.#buf;
    const end = start + RECORD_HEADER_BYTES + body;
    b.writeUInt32LE(recordCrc(b, start, end), start + 4);
    this.#length = end;
    return end - start;
  }
}

/** The CRC a record at [start, end) must carry: over its length, type and body. */
export function recordCrc(bytes: Uint8Array, start: number, end: number): number {
  return crc32c(bytes, start + 8, end, crc32c(bytes, start, start + 4));
}

// ---- decoding (bodies whose CRC already matched) --------------------------------------------

/** Decodes a message body at [start, end). Copies: the result does not keep `bytes` alive. */
export function decodeMessage(bytes: Buffer, start: number, end: number): PersistedMessage {
  const r = new BodyReader(bytes, start, end);
  const id = r.u64();
  const queue = r.str();
  const exchange = r.str();
  const routingKey = r.str();
  const propsLength = r.u32();
  const properties = propsLength === NULL_PROPERTIES ? null : r.copy(propsLength);
  const payload = r.copy(end - r.at);
  return { queue, id, exchange, routingKey, properties, payload };
}

export function decodeRemove(bytes: Buffer, start: number, end: number): { queue: string; id: number } {
  const r = new BodyReader(bytes, start, end);
  const id = r.u64();
  const queue = r.str();
  r.done();
  return { queue, id };
}

export function decodeTopology(bytes: Buffer, start: number, end: number): TopologyOp {
  const op = parseJson(bytes, start, end) as TopologyOp;
  if (op === null || typeof op !== 'object' || Array.isArray(op)) throw new RecordDecodeError('topology record is not a JSON object');
  return op;
}

export function decodeSegmentHeader(bytes: Buffer, start: number, end: number): SegmentHeader {
  const r = new BodyReader(bytes, start, end);
  if (r.u32() !== HEADER_MAGIC) throw new RecordDecodeError('segment header: bad magic');
  const formatVersion = r.u16();
  r.u16(); // flags
  const segmentNo = r.u64();
  const firstLsn = r.u64();
  const nextId = r.u64();
  const snapshot = parseJson(bytes, r.at, end);
  if (!Array.isArray(snapshot)) throw new RecordDecodeError('segment header: snapshot is not a JSON array');
  return { formatVersion, segmentNo, firstLsn, nextId, snapshot: snapshot as TopologyOp[] };
}

function parseJson(bytes: Buffer, start: number, end: number): unknown {
  try {
    return JSON.parse(bytes.toString('utf8', start, end));
  } catch (err) {
    throw new RecordDecodeError(`bad JSON in record body: ${(err as Error).message}`);
  }
}

class BodyReader {
  readonly #b: Buffer;
  readonly #end: number;
  at: number;

  constructor(bytes: Buffer, start: number, end: number) {
    this.#b = bytes;
    this.at = start;
    this.#end = end;
  }

  #need(n: number): void {
    if (this.at + n > this.#end) throw new RecordDecodeError('record body shorter than its fields');
  }

  u16(): number {
    this.#need(2);
    const v = this.#b.readUInt16LE(this.at);
    this.at += 2;
    return v;
  }

  u32(): number {
    this.#need(4);
    const v = this.#b.readUInt32LE(this.at);
    this.at += 4;
    return v;
  }

  u64(): number {
    const lo = this.u32();
    const hi = this.u32();
    if (hi > 0x1fffff) throw new RecordDecodeError('u64 field above 2^53');
    return hi * TWO_POW_32 + lo;
  }

  str(): string {
    const n = this.u16();
    this.#need(n);
    const s = this.#b.toString('utf8', this.at, this.at + n);
    this.at += n;
    return s;
  }

  copy(n: number): Uint8Array {
    this.#need(n);
    const out = new Uint8Array(n);
    out.set(this.#b.subarray(this.at, this.at + n));
    this.at += n;
    return out;
  }

  done(): void {
    if (this.at !== this.#end) throw new RecordDecodeError('record body longer than its fields');
  }
}

function strBytes(s: string, field: string): number {
  const n = Buffer.byteLength(s);
  if (n > MAX_STRING_BYTES) throw new RangeError(`${field} is ${n} bytes; at most ${MAX_STRING_BYTES} are stored`);
  return n;
}

function putStr(b: Buffer, at: number, s: string, n: number): number {
  b.writeUInt16LE(n, at);
  if (n > 0) b.write(s, at + 2, n, 'utf8');
  return at + 2 + n;
}

/** The u64 at `at` (two u32 halves, low first), as a JS number. */
export function getU64(b: Buffer, at: number): number {
  return b.readUInt32LE(at + 4) * TWO_POW_32 + b.readUInt32LE(at);
}

function putU64(b: Buffer, at: number, v: number): number {
  b.writeUInt32LE((v % TWO_POW_32) >>> 0, at);
  b.writeUInt32LE(Math.floor(v / TWO_POW_32), at + 4);
  return at + 8;
}
