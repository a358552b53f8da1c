/**
 * Segment files: their names, and the framing scan recovery runs over each one.
 *
 * A segment is `<12-digit number>.seg` (`000000000001.seg`, …): numbers increase, so name order is
 * log order. Its bytes are records (layout in `record-codec.ts`), the first being the segment header.
 *
 * The scan reads record by record. A record is *whole* when its length is plausible, it fits in the
 * file, and its CRC (which covers the length too) matches. When the bytes at the read position are
 * not a whole record, the scan does not trust their length: it resynchronises, searching forward for
 * the next offset where a whole record stands, and reports the bytes in between as one damaged
 * region. The search is kept honest and cheap:
 * - a candidate offset must hold a known record type and a plausible length before its CRC is
 *   computed, and counts only if another whole record follows it or it ends exactly at the end of
 *   the file (a record-shaped run inside a payload rarely chains);
 * - a candidate inside the damaged record's stated span wins only if the damaged record, its
 *   length set to end there, passes its CRC: then the length was the damage. Otherwise a whole
 *   record where the damaged one says it ends wins (the damage was in its body or CRC), so a
 *   payload that happens to (or is made to) contain records never turns into messages.
 *
 * What is left when no whole record follows the damage is the *tail*. A crash in the middle of a
 * write leaves exactly that (a prefix of the records being written), so the caller decides: in the
 * newest segment it is a torn tail and may be cut; in any other segment it is corruption. One case
 * is told apart here: a tail that is one complete record by its own length, ending exactly at the
 * end of the file, whose CRC fails, is a damaged record (`lastRecordCorrupt`), not a torn write.
 */
import { MAX_RECORD_BODY_BYTES, MIN_RECORD_BODY_BYTES, RECORD_HEADER_BYTES, RecordType, recordCrc } from './record-codec.js';
import { crc32c } from './crc32c.js';

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
  /** A whole record; its body is `bytes[bodyStart, bodyEnd)`. */
  record(type: number, bodyStart: number, bodyEnd: number, recordStart: number): void;
  /** A damaged region `[start, end)` the scan skipped; a whole record follows it. */
  corrupt(start: number, end: number): void;
}

export interface SegmentScan {
  readonly validRecords: number;
  /** Damaged regions skipped between whole records (each held at least one record). */
  readonly corrupt: number;
  /** Where the tail no whole record follows starts, or -1 when the file ends on a whole record. */
  readonly tailAt: number;
  /** Bytes from `tailAt` to the end of the file. */
  readonly tailBytes: number;
  /** The tail is one complete record by its own length whose CRC fails: damage, not a torn write. */
  readonly lastRecordCorrupt: boolean;
}

/** Types that may stand anywhere after the header (the header stands only at offset 0). */
const BODY_RECORD_TYPES = new Set<number>([
  RecordType.message,
  RecordType.remove,
  RecordType.topology,
  RecordType.streamEntry,
  RecordType.streamOffsets,
]);

/** Scans the records of one segment's bytes; see the module comment for what is counted how. */
export function scanSegment(bytes: Buffer, visitor: SegmentVisitor): SegmentScan {
  const size = bytes.length;
  let at = 0;
  let validRecords = 0;
  let corrupt = 0;
  while (at < size) {
    const end = wholeRecordEnd(bytes, at);
    if (end >= 0) {
      validRecords++;
      visitor.record(bytes[at + 8], at + RECORD_HEADER_BYTES, end, at);
      at = end;
      continue;
    }
    const next = resynchronise(bytes, at);
    if (next < 0) {
      const claimed = claimedEnd(bytes, at);
      return { validRecords, corrupt, tailAt: at, tailBytes: size - at, lastRecordCorrupt: claimed === size };
    }
    corrupt++;
    visitor.corrupt(at, next);
    at = next;
  }
  return { validRecords, corrupt, tailAt: -1, tailBytes: 0, lastRecordCorrupt: false };
}

/** Where the record at `at` ends by its own length, or -1 when the length is implausible or runs past the file. */
function claimedEnd(bytes: Buffer, at: number): number {
  if (bytes.length - at < RECORD_HEADER_BYTES) return -1;
  const body = bytes.readUInt32LE(at);
  if (body < MIN_RECORD_BODY_BYTES || body > MAX_RECORD_BODY_BYTES) return -1;
  const end = at + RECORD_HEADER_BYTES + body;
  return end > bytes.length ? -1 : end;
}

/** The end of the whole record at `at`, or -1 when there is none. */
function wholeRecordEnd(bytes: Buffer, at: number): number {
  const end = claimedEnd(bytes, at);
  if (end < 0 || recordCrc(bytes, at, end) !== bytes.readUInt32LE(at + 4)) return -1;
  return end;
}

/**
 * The offset of the next whole record after the damage at `at` (see the module comment), or -1.
 *
 * A whole record found inside the damaged record's stated span is either the true next record
 * (the damage was in the length) or a record-shaped run inside a payload (the length is right).
 * The damaged record tells which: with its length set to end at the candidate, its CRC matches
 * only if the length was all that changed.
 */
function resynchronise(bytes: Buffer, at: number): number {
  const size = bytes.length;
  const claimed = claimedEnd(bytes, at);
  const claimedWhole = claimed >= 0 && claimed < size && wholeRecordEnd(bytes, claimed) >= 0;
  let firstChained = -1;
  for (let p = at + 1; p + RECORD_HEADER_BYTES <= size; p++) {
    if (claimedWhole && p === claimed) return claimed;
    if (!BODY_RECORD_TYPES.has(bytes[p + 8])) continue;
    const end = wholeRecordEnd(bytes, p);
    if (end < 0 || (end !== size && wholeRecordEnd(bytes, end) < 0)) continue;
    if (onlyLengthDamaged(bytes, at, p)) return p;
    if (firstChained < 0) firstChained = p;
  }
  return claimedWhole ? claimed : firstChained;
}

/** Would the record at `at` be whole if its length said it ends at `end`? */
function onlyLengthDamaged(bytes: Buffer, at: number, end: number): boolean {
  const body = end - at - RECORD_HEADER_BYTES;
  if (body < MIN_RECORD_BODY_BYTES) return false;
  const length = Buffer.allocUnsafe(4);
  length.writeUInt32LE(body, 0);
  return crc32c(bytes, at + 8, end, crc32c(length, 0, 4)) === bytes.readUInt32LE(at + 4);
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
