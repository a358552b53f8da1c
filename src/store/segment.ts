/**
 * Segment files: their names, and the framing scan recovery runs over each one.
 *
 * A segment is `<12-digit number>.seg` (`000000000001.seg`, …): numbers increase, so name order is
 * log order. Its bytes are records (layout in `record-codec.ts`), the first being the segment header.
 *
 * The scan classifies what it meets, record by record:
 * - valid: the CRC matches; handed to the visitor.
 * - corrupt: the length is plausible and fits in the file but the CRC does not match; skipped (the
 *   next record is read after it), counted, reported to the visitor as a gap.
 * - implausible length (below MIN or above MAX_RECORD_BODY_BYTES): the bytes from there on are not
 *   records we wrote, and nothing tells where the next one starts: the scan stops there, counts one
 *   corrupt record, and leaves the bytes alone.
 * - torn tail: fewer bytes left than a record header, or a length running past the end of the file.
 *   What a crash during a write leaves; the scan stops, and the caller truncates it away.
 *
 * Known limit (of any length-prefixed log): a bit flip in a length that still looks plausible makes
 * the scan land inside later bytes; it then meets CRC mismatches or an implausible length, so the
 * damage stays inside that segment and is counted, but the records after it in that segment are
 * lost to recovery.
 */
import {
  MAX_RECORD_BODY_BYTES,
  MIN_RECORD_BODY_BYTES,
  RECORD_HEADER_BYTES,
  recordCrc,
} from './record-codec.js';

export const SEGMENT_SUFFIX = '.seg';
const SEGMENT_NAME = /^(\d{12})\.seg$/;
const SEGMENT_DIGITS = 12;

/** `000000000001.seg` for 1. */
export function segmentFileName(no: number): string {
  return String(no).padStart(SEGMENT_DIGITS, '0') + SEGMENT_SUFFIX;
}

/** The segment number in a file name, or null when the name is not a segment's. */
export function parseSegmentFileName(name: string): number | null {
  const m = SEGMENT_NAME.exec(name);
  return m === null ? null : Number(m[1]);
}

/** Receives what the scan finds, in file order. */
export interface SegmentVisitor {
  /** A record whose CRC matched; its body is `bytes[bodyStart, bodyEnd)`. */
  record(type: number, bodyStart: number, bodyEnd: number, recordStart: number): void;
  /** A record skipped for a CRC mismatch (it still occupied a place in the log). */
  corrupt(recordStart: number): void;
}

export interface SegmentScan {
  readonly validRecords: number;
  /** CRC mismatches plus an implausible length, if the scan stopped at one. */
  readonly corrupt: number;
  /** Where a torn tail starts (the file should be cut there), or -1 when there is none. */
  readonly tornAt: number;
  /** Bytes from `tornAt` to the end of the file. */
  readonly tornBytes: number;
}

/** Scans the records of one segment's bytes; see the module comment for what is counted how. */
export function scanSegment(bytes: Buffer, visitor: SegmentVisitor): SegmentScan {
  const size = bytes.length;
  let at = 0;
  let validRecords = 0;
  let corrupt = 0;
  while (at < size) {
    if (size - at < RECORD_HEADER_BYTES) return { validRecords, corrupt, tornAt: at, tornBytes: size - at };
    const body = bytes.readUInt32LE(at);
    if (body < MIN_RECORD_BODY_BYTES || body > MAX_RECORD_BODY_BYTES) {
      return { validRecords, corrupt: corrupt + 1, tornAt: -1, tornBytes: 0 };
    }
    const end = at + RECORD_HEADER_BYTES + body;
    if (end > size) return { validRecords, corrupt, tornAt: at, tornBytes: size - at };
    if (recordCrc(bytes, at, end) === bytes.readUInt32LE(at + 4)) {
      validRecords++;
      visitor.record(bytes[at + 8], at + RECORD_HEADER_BYTES, end, at);
    } else {
      corrupt++;
      visitor.corrupt(at);
    }
    at = end;
  }
  return { validRecords, corrupt, tornAt: -1, tornBytes: 0 };
}

/**
 * What the log store knows about one segment while it runs. Owned by the store's thread; fields are
 * plain and public to the store, not a public API.
 */
export class Segment {
  readonly no: number;
  readonly path: string;
  /** Open while the store writes it (the active segment, or one a retried flush still owes bytes). */
  fd: number | null = null;
  /** Bytes on disk known durable: the next write goes here, a failed one is cut back to it. */
  durableBytes = 0;
  /** Bytes appended, durable or pending: the segment rolls once this reaches the size limit. */
  appendedBytes = 0;
  /** Created by this process; its directory entry is synced once, before its first records count as durable. */
  needsDirSync = false;
  /** A failed write may have left bytes past `durableBytes`: cut them before writing again. */
  dirty = false;
  /** Durable messages in it that are not durably removed. */
  live = 0;
  /**
   * Older segments holding messages that this segment's durable removes (or deleteQueue ops, or
   * superseding appends) took away. This segment may be deleted only after all of them are: were it
   * deleted first, a crash would bring those messages back.
   */
  removeTargets: Set<Segment> | null = null;
  /** Unlinked, and the directory synced. */
  deleted = false;

  constructor(no: number, path: string) {
    this.no = no;
    this.path = path;
  }

  /** Records that this segment took messages away from `older`. */
  dependOn(older: Segment): void {
    if (older === this) return;
    (this.removeTargets ??= new Set()).add(older);
  }

  /** True when every segment this one took messages from is deleted (prunes the ones that are). */
  dependenciesGone(): boolean {
    const targets = this.removeTargets;
    if (targets === null) return true;
    for (const t of targets) if (t.deleted) targets.delete(t);
    if (targets.size > 0) return false;
    this.removeTargets = null;
    return true;
  }
}
