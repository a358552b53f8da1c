/**
 * The files of one stream under `--data-dir` (`<data-dir>/shard-<i>/streams/<id>/`): numbered
 * segment files of CRC32C records, the same framing as the shard's log (`record-codec.ts`) and the
 * same scan at recovery (`segment.ts`: torn tail cut, damaged record skipped and counted).
 *
 * Why files of its own and not the shard's log: the log's live index keeps an entry per message
 * not removed and recovery loads them all into memory; a stream removes nothing and may hold
 * millions of entries that nobody reads. Here nothing of an entry stays in memory once written:
 * per segment only its first/last offset and times, and a sparse index — one point (offset, file
 * position, timestamp) every POINT_EVERY_BYTES of file — so an offset or a time is found with two
 * binary searches and a read of at most one index step.
 *
 * A segment is `<20-digit first offset>.seg`, so name order is offset order and retention drops the
 * oldest files whole. Its records: `streamEntry` (offset, timestamp, entry bytes) and
 * `streamOffsets` (stored consumer offsets: a snapshot of all of them first in every new segment,
 * then each commit), so dropping old segments never loses a stored offset.
 *
 * Write path: appends encode into the segment's pending buffer (the position of each record in the
 * file is known at append: the index is built then); `flush()` writes each segment's pending bytes
 * at its written size, fsyncs it, syncs the directory for a file it created, and only then counts
 * them written. A failed write or fsync cuts the file back to its written size and keeps the bytes
 * pending for the next flush (rewritten, never fsync-retried: see log-store.ts). Recovery never
 * appends to a file it read: the first append after it starts a new segment.
 */
import { join } from 'node:path';
import type { FsSeam } from './fs-seam.js';
import { RECORD_HEADER_BYTES, RecordType, RecordWriter, STREAM_ENTRY_FIXED_BYTES, getU64, recordCrc } from './record-codec.js';
import { scanSegment } from './segment.js';

/** A sparse index point every this many bytes of a segment file. */
export const POINT_EVERY_BYTES = 64 * 1024;
const SEGMENT_NAME = /^(\d{20})\.seg$/;
/** The active segment's pending buffer is kept between flushes up to this size (a burst's larger one is let go). */
const PENDING_KEEP_BYTES = 1024 * 1024;

export function streamSegmentName(firstOffset: number): string {
  return `${String(firstOffset).padStart(20, '0')}.seg`;
}

/** What recovery found in a stream's files. */
export interface StreamRecovery {
  readonly segments: number;
  readonly entries: number;
  /** Damaged regions skipped (their entries are lost; readers are told through the skip count). */
  readonly corruptSkipped: number;
  /** Bytes cut off the newest segment's torn tail (a write the crash interrupted: never confirmed). */
  readonly tornBytesTruncated: number;
}

/** One segment file, as the stream knows it while it runs. */
export class StreamSegment {
  readonly firstOffset: number;
  readonly path: string;
  /** Entries in it (written or pending). */
  count = 0;
  firstTimestamp = Number.NaN;
  lastTimestamp = Number.NaN;
  /** Bytes appended (written + pending): the next record's file position. */
  size = 0;
  /** Bytes on disk and fsynced. */
  written = 0;
  /** Records appended after `written`, not yet on disk (null: none, and no buffer held). */
  pending: RecordWriter | null = null;
  /** Flat (offset, position, timestamp) triples, positions increasing: the sparse index. */
  readonly points: number[] = [];
  /** Damaged regions recovery skipped, flat (start, end) pairs: a read resumes at the end of one. */
  readonly damage: number[] = [];
  #lastPointAt = Number.NEGATIVE_INFINITY;
  fd: number | null = null;
  /** No more appends (a newer segment exists, or it was recovered). */
  sealed = false;
  /** Created by this process and not yet made durable in the directory. */
  needsDirSync = false;
  deleted = false;

  constructor(firstOffset: number, path: string) {
    this.firstOffset = firstOffset;
    this.path = path;
  }

  get pendingLength(): number {
    return this.pending?.length ?? 0;
  }

  /** Where the next record is encoded. */
  writer(): RecordWriter {
    this.pending ??= new RecordWriter();
    return this.pending;
  }

  get lastOffset(): number {
    return this.firstOffset + this.count - 1;
  }

  /** Notes an entry at file position `at` (appended or recovered) for the index and the figures. */
  noteEntry(offset: number, at: number, timestamp: number): void {
    if (this.count === 0) this.firstTimestamp = timestamp;
    this.lastTimestamp = timestamp;
    this.count = offset - this.firstOffset + 1;
    if (at - this.#lastPointAt >= POINT_EVERY_BYTES) {
      this.points.push(offset, at, timestamp);
      this.#lastPointAt = at;
    }
  }

  /** The file position of the last index point at or before `offset` (0 when none is). */
  positionBefore(offset: number): number {
    return this.#lastPoint(0, offset, true);
  }

  /** The file position of the last index point whose timestamp is below `ms` (0 when none is). */
  positionBeforeTime(ms: number): number {
    return this.#lastPoint(2, ms, false);
  }

  /**
   * The position of the last point whose field `field` (0: offset, 2: timestamp; both only grow
   * along the points) is below `limit`, or at it when `inclusive`; 0 when none is.
   */
  #lastPoint(field: 0 | 2, limit: number, inclusive: boolean): number {
    const p = this.points;
    let lo = 0;
    let hi = p.length / 3 - 1;
    let best = 0;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const v = p[mid * 3 + field] as number;
      if (v < limit || (inclusive && v === limit)) {
        best = p[mid * 3 + 1] as number;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return best;
  }

  /**
   * Where reading picks up after damage at `at`: the end of the region recovery found there, else
   * the first index point after it (the segment's end when none is), with the offset found there
   * (-1: not known, the next record says).
   */
  positionAfter(at: number): { position: number; offset: number } {
    const d = this.damage;
    for (let i = 0; i < d.length; i += 2)
      if ((d[i] as number) <= at && at < (d[i + 1] as number)) return { position: d[i + 1] as number, offset: -1 };
    const p = this.points;
    for (let i = 0; i < p.length; i += 3) if ((p[i + 1] as number) > at) return { position: p[i + 1] as number, offset: p[i] as number };
    return { position: this.size, offset: this.lastOffset + 1 };
  }
}

/** A record in a read buffer: `streamEntry` with its offset, time and entry span, or something else. */
export interface ParsedRecord {
  /** Where the next record starts in the buffer; -1 when the buffer ends before this record does. */
  next: number;
  /** The record's type; 0 when its framing or CRC is wrong (damage). */
  type: number;
  offset: number;
  timestamp: number;
  entryStart: number;
  entryEnd: number;
}

/** Parses the record at `buf[at, end)` into `out` (reused: one per reader). */
export function parseRecord(buf: Buffer, at: number, end: number, out: ParsedRecord): ParsedRecord {
  if (end - at < RECORD_HEADER_BYTES) {
    out.next = -1;
    return out;
  }
  const body = buf.readUInt32LE(at);
  const recordEnd = at + RECORD_HEADER_BYTES + body;
  if (recordEnd > end) {
    out.next = -1;
    out.entryEnd = recordEnd - at; // how many bytes the whole record needs
    return out;
  }
  out.next = recordEnd;
  if (recordCrc(buf, at, recordEnd) !== buf.readUInt32LE(at + 4)) {
    out.type = 0;
    return out;
  }
  out.type = buf[at + 8] as number;
  if (out.type === RecordType.streamEntry) {
    const b = at + RECORD_HEADER_BYTES;
    out.offset = getU64(buf, b);
    out.timestamp = buf.readDoubleLE(b + 8);
    out.entryStart = b + STREAM_ENTRY_FIXED_BYTES;
    out.entryEnd = recordEnd;
  }
  return out;
}

export function newParsedRecord(): ParsedRecord {
  return { next: 0, type: 0, offset: 0, timestamp: 0, entryStart: 0, entryEnd: 0 };
}

/**
 * A stream's segment files: appends, flushes, recovery, the index, retention and reads. Owned by
 * one shard thread.
 */
export class StreamFiles {
  readonly dir: string;
  readonly #fs: FsSeam;
  readonly #segmentBytes: number;
  /** Oldest first. */
  segments: StreamSegment[] = [];
  /** The offset the next entry gets. */
  nextOffset = 0;
  /** Everything below it is written and fsynced. */
  writtenEnd = 0;
  /** Bytes of the segment files (written and pending). */
  bytes = 0;
  /** Stored consumer offsets, as recovered and as committed since. */
  readonly stored = new Map<string, number>();
  #flushing: Promise<void> | null = null;
  #dirty = false;
  /** Unlinks of dropped segments still running: close() waits for them. */
  readonly #unlinking = new Set<Promise<void>>();

  constructor(dir: string, segmentBytes: number, fs: FsSeam) {
    this.dir = dir;
    this.#segmentBytes = segmentBytes;
    this.#fs = fs;
  }

  /**
   * Reads what the directory holds (synchronous: the shard is not serving yet): the index of every
   * segment, the stored offsets, and where the next offset is. A torn tail of the newest segment is
   * cut; damage elsewhere is skipped and counted. Empty segment files are removed.
   */
  recover(): StreamRecovery {
    const fs = this.#fs;
    fs.mkdirSync(this.dir);
    const files = fs
      .readdirSync(this.dir)
      .map((name) => ({ name, m: SEGMENT_NAME.exec(name) }))
      .filter((f) => f.m !== null)
      .map((f) => ({ name: f.name, first: Number((f.m as RegExpExecArray)[1]) }))
      .sort((a, b) => a.first - b.first);
    let entries = 0;
    let corrupt = 0;
    let torn = 0;
    let next = files.length === 0 ? 0 : (files.at(-1) as { first: number }).first;
    for (let i = 0; i < files.length; i++) {
      const { name, first } = files[i] as { name: string; first: number };
      const path = join(this.dir, name);
      let bytes: Buffer;
      try {
        bytes = fs.readFileSync(path);
      } catch (err) {
        // Retention's unlink of it landed between the listing and the read: it is gone, as meant.
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw err;
      }
      const seg = new StreamSegment(first, path);
      const scan = scanSegment(bytes, {
        record: (type, bodyStart, bodyEnd, recordStart) => {
          if (type === RecordType.streamEntry) {
            const offset = getU64(bytes, bodyStart);
            if (offset < seg.firstOffset + seg.count) return; // out of order: not ours to trust
            seg.noteEntry(offset, recordStart, bytes.readDoubleLE(bodyStart + 8));
            entries++;
          } else if (type === RecordType.streamOffsets) {
            try {
              for (const [n, o] of JSON.parse(bytes.toString('utf8', bodyStart, bodyEnd)) as Array<[string, number]>) this.stored.set(n, o);
            } catch {
              corrupt++;
            }
          }
        },
        corrupt: (start, end) => {
          corrupt++;
          seg.damage.push(start, end);
        },
      });
      let size = bytes.length;
      if (scan.tailAt >= 0) {
        if (i === files.length - 1 && !scan.lastRecordCorrupt) {
          fs.truncateSync(path, scan.tailAt);
          torn += scan.tailBytes;
          size = scan.tailAt;
        } else corrupt++;
      }
      if (seg.count === 0 && size === 0) {
        fs.unlinkSync(path);
        continue;
      }
      seg.size = size;
      seg.written = size;
      seg.sealed = true;
      if (seg.count > 0) next = Math.max(next, seg.lastOffset + 1);
      this.segments.push(seg);
      this.bytes += size;
    }
    this.nextOffset = next;
    this.writtenEnd = next;
    return { segments: this.segments.length, entries, corruptSkipped: corrupt, tornBytesTruncated: torn };
  }

  /** The oldest offset a file holds (nextOffset when none does). */
  get firstOffset(): number {
    for (const s of this.segments) if (s.count > 0) return s.firstOffset;
    return this.nextOffset;
  }

  /** Appends an entry whose bytes are `src[srcStart, srcStart + length)` (copied). */
  append(offset: number, timestamp: number, src: Uint8Array, srcStart: number, length: number): void {
    const seg = this.#segmentFor(offset, RECORD_HEADER_BYTES + STREAM_ENTRY_FIXED_BYTES + length);
    const position = seg.size;
    const recordBytes = seg.writer().streamEntry(offset, timestamp, src, srcStart, length);
    seg.size += recordBytes;
    seg.noteEntry(offset, position, timestamp);
    this.nextOffset = offset + 1;
    this.bytes += recordBytes;
    this.#dirty = true;
  }

  /** Stores a consumer's offset (kept in memory and appended to the active segment). */
  storeOffset(name: string, offset: number): void {
    this.stored.set(name, offset);
    this.#appendOffsets(this.#segmentFor(this.nextOffset, 0), [[name, offset]]);
  }

  #appendOffsets(seg: StreamSegment, pairs: ReadonlyArray<readonly [string, number]>): void {
    const recordBytes = seg.writer().streamOffsets(pairs);
    seg.size += recordBytes;
    this.bytes += recordBytes;
    this.#dirty = true;
  }

  /** The segment the next record goes to: a new one when there is none, the last is sealed or full. */
  #segmentFor(offset: number, recordBytes: number): StreamSegment {
    const last = this.segments.at(-1);
    if (last !== undefined && !last.sealed && (last.count === 0 || last.size + recordBytes <= this.#segmentBytes)) return last;
    if (last !== undefined) last.sealed = true;
    const seg = new StreamSegment(offset, join(this.dir, streamSegmentName(offset)));
    seg.needsDirSync = true;
    this.segments.push(seg);
    // Every segment starts with the stored offsets, so dropping older ones never loses one.
    if (this.stored.size > 0) this.#appendOffsets(seg, [...this.stored]);
    return seg;
  }

  /**
   * Writes and fsyncs what is pending; resolves once it is durable (then `writtenEnd` covers it).
   * One flush at a time: a call while one runs waits for it and then flushes what came since.
   */
  async flush(): Promise<void> {
    while (this.#flushing !== null) await this.#flushing;
    if (!this.#dirty) return;
    this.#flushing = this.#flushOnce();
    try {
      await this.#flushing;
    } finally {
      this.#flushing = null;
    }
  }

  async #flushOnce(): Promise<void> {
    const fs = this.#fs;
    const end = this.nextOffset;
    this.#dirty = false;
    let newFile = false;
    try {
      for (const seg of this.segments) {
        if (seg.deleted) continue;
        const w = seg.pending;
        if (w === null || w.length === 0) {
          // Sealed after its last write (the append that started the next segment came later): close it
          // now, or retention, which drops only closed files, would never drop it.
          if (seg.sealed) await this.#closeFile(seg);
          continue;
        }
        if (seg.fd === null) {
          seg.fd = await fs.openForWrite(seg.path);
          if (seg.needsDirSync) newFile = true;
        }
        const take = w.length;
        let done = 0;
        try {
          // w.bytes is read again each time: appends meanwhile may have grown it (the bytes up to `take` stay).
          while (done < take) done += await fs.write(seg.fd, w.bytes, done, take - done, seg.written + done);
          await fs.fsync(seg.fd);
        } catch (err) {
          // The bytes past `written` are not trusted: cut them, write them all again next time.
          await fs.ftruncate(seg.fd, seg.written).catch(() => {});
          throw err;
        }
        w.discardFront(take);
        seg.written += take;
        if (w.length === 0 && (seg.sealed || w.capacity > PENDING_KEEP_BYTES)) {
          // A written segment keeps no buffer (a long stream has hundreds of them); the active one keeps a small one.
          seg.pending = null;
        }
        if (seg.sealed && w.length === 0) await this.#closeFile(seg);
      }
      if (newFile) await fs.syncDir(this.dir);
      for (const seg of this.segments) seg.needsDirSync = false;
    } catch (err) {
      this.#dirty = true;
      throw err;
    }
    // Appends made while it ran are pending still: the next flush covers them.
    this.writtenEnd = end;
  }

  async #closeFile(seg: StreamSegment): Promise<void> {
    if (seg.fd === null) return;
    const fd = seg.fd;
    seg.fd = null;
    await this.#fs.close(fd);
  }

  /** Whole old segments (never the newest, never one with bytes not written) while `drop` says so; returns the entries dropped. */
  dropOldest(drop: (seg: StreamSegment) => boolean): number {
    let dropped = 0;
    while (this.segments.length > 1) {
      const seg = this.segments[0] as StreamSegment;
      if (seg.pendingLength > 0 || seg.fd !== null || !drop(seg)) break;
      this.segments.shift();
      seg.deleted = true;
      dropped += seg.count;
      this.bytes -= seg.size;
      const unlinked: Promise<void> = this.#fs
        .unlink(seg.path)
        .catch(() => {
          // Already gone (a removed stream): nothing to keep.
        })
        .finally(() => this.#unlinking.delete(unlinked));
      this.#unlinking.add(unlinked);
    }
    return dropped;
  }

  /** Index of the segment holding `offset`, or -1. */
  segmentOf(offset: number): number {
    const segs = this.segments;
    let lo = 0;
    let hi = segs.length - 1;
    let best = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if ((segs[mid] as StreamSegment).firstOffset <= offset) {
        best = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return best;
  }

  /** The first offset at or after `ms` among written entries below `limit` (`limit` when none is). Reads at most one index step. */
  offsetAtTimeSync(ms: number, limit: number): number {
    const seg = this.segments.find((s) => s.count > 0 && s.lastTimestamp >= ms);
    if (seg === undefined) return limit;
    let at = seg.positionBeforeTime(ms);
    let buf = Buffer.allocUnsafe(POINT_EVERY_BYTES * 2);
    const rec = newParsedRecord();
    for (;;) {
      const n = this.#fs.readAtSync(seg.path, buf, 0, Math.min(buf.length, seg.written - at), at);
      if (n <= 0) return Math.min(seg.lastOffset + 1, limit);
      let p = 0;
      for (;;) {
        parseRecord(buf, p, n, rec);
        if (rec.next < 0) break;
        if (rec.type === RecordType.streamEntry) {
          if (rec.offset >= limit) return limit;
          if (rec.timestamp >= ms) return rec.offset;
        }
        p = rec.next;
      }
      // A record larger than the buffer: read it whole (a seek must not skip it).
      if (p === 0 && n - p >= RECORD_HEADER_BYTES && rec.entryEnd > buf.length) buf = Buffer.allocUnsafe(rec.entryEnd);
      else if (p === 0) return Math.min(seg.lastOffset + 1, limit);
      at += p;
    }
  }

  /** Flushes what is pending and closes the files (the shard is stopping). */
  async close(): Promise<void> {
    try {
      await this.flush();
    } finally {
      await Promise.all(this.#unlinking);
      for (const seg of this.segments) await this.#closeFile(seg).catch(() => {});
    }
  }
}
