/**
 * A stream under `--data-dir`: its entries on disk (`stream-files.ts`), its newest few MiB also in
 * memory (a StreamLog, "hot"), so readers at the tail — the common case — read without a disk read,
 * and a reader far behind reads its own fixed buffer a chunk at a time from the files. Memory per
 * stream is bounded by the hot budget plus one read buffer per reader behind it, however long the
 * stream or however far behind a reader is.
 *
 * Readers see only what is durable (`readableEnd`): an offset a reader has seen is never taken back
 * by a crash and given to another message. With `--fsync batch` that puts a tail reader one group
 * commit behind the publisher.
 */
import type { FsSeam } from './fs-seam.js';
import { RecordType } from './record-codec.js';
import { newParsedRecord, parseRecord, type StreamFiles, type StreamRecovery, type StreamSegment } from './stream-files.js';
import { StreamLog, type ReplayLog, type StreamCursor, type StreamVisitor } from '../stream/stream-log.js';

/** The hot part in memory: entries in segments of this size, old ones dropped past HOT_BYTES once written. */
const HOT_SEGMENT_BYTES = 1024 * 1024;
export const HOT_BYTES = 4 * 1024 * 1024;
/** What one reader behind the hot part holds: its read buffer (larger only for an entry that does not fit). */
export const READ_AHEAD_BYTES = 512 * 1024;
/** After a read error other than a dropped segment, a reader tries again this much later. */
const READ_RETRY_MS = 1000;

/** One reader's window on a segment file. */
class ReadAhead {
  buf: Buffer = Buffer.allocUnsafe(READ_AHEAD_BYTES);
  seg: StreamSegment | null = null;
  /** File position of buf[0]. */
  filePos = 0;
  /** Valid bytes in buf. */
  length = 0;
  /** Where the next record starts in buf. */
  at = 0;
  /** Bytes a record that did not fit needs (the buffer grows to it on the next load). */
  need = 0;
  loading = false;
  readonly rec = newParsedRecord();
}

function lastWithEntries(segments: readonly StreamSegment[]): StreamSegment | undefined {
  for (let i = segments.length - 1; i >= 0; i--) if ((segments[i] as StreamSegment).count > 0) return segments[i];
  return undefined;
}

export interface DurableStreamLimits {
  readonly maxBytes?: number;
  readonly maxAgeMs?: number;
  /** Bytes of the newest entries also kept in memory (HOT_BYTES by default; tests make it small to read from disk). */
  readonly hotBytes?: number;
}

export class DurableStreamLog implements ReplayLog {
  readonly files: StreamFiles;
  readonly recovery: StreamRecovery;
  readonly #hot: StreamLog;
  readonly #fs: FsSeam;
  readonly #maxBytes: number;
  readonly #maxAgeMs: number;
  readonly #onAppend: (log: DurableStreamLog) => void;
  #lastTimestamp = Number.NEGATIVE_INFINITY;

  /** Recovers `files` (synchronously) and continues after the last offset they hold. */
  constructor(files: StreamFiles, limits: DurableStreamLimits, fs: FsSeam, onAppend: (log: DurableStreamLog) => void) {
    this.files = files;
    this.#fs = fs;
    this.#maxBytes = limits.maxBytes ?? Number.POSITIVE_INFINITY;
    this.#maxAgeMs = limits.maxAgeMs ?? Number.POSITIVE_INFINITY;
    this.#onAppend = onAppend;
    this.recovery = files.recover();
    const last = lastWithEntries(files.segments);
    if (last !== undefined) this.#lastTimestamp = last.lastTimestamp;
    const hotBytes = limits.hotBytes ?? HOT_BYTES;
    this.#hot = new StreamLog(
      { segmentBytes: Math.min(HOT_SEGMENT_BYTES, Math.max(1, hotBytes >> 2)), maxBytes: hotBytes },
      files.nextOffset,
    );
  }

  get firstOffset(): number {
    return this.files.firstOffset;
  }

  get nextOffset(): number {
    return this.files.nextOffset;
  }

  get readableEnd(): number {
    return this.files.writtenEnd;
  }

  get count(): number {
    return this.files.nextOffset - this.files.firstOffset;
  }

  /** Bytes of its segment files. */
  get bytes(): number {
    return this.files.bytes;
  }

  get segmentCount(): number {
    return this.files.segments.length;
  }

  get firstTimestamp(): number {
    return this.files.segments.find((s) => s.count > 0)?.firstTimestamp ?? Number.NaN;
  }

  get lastTimestamp(): number {
    return lastWithEntries(this.files.segments)?.lastTimestamp ?? Number.NaN;
  }

  /** Stored consumer offsets: recovered from the files, then as committed. */
  get stored(): ReadonlyMap<string, number> {
    return this.files.stored;
  }

  storeOffset(name: string, offset: number): void {
    this.files.storeOffset(name, offset);
    this.#onAppend(this);
  }

  appendWith(length: number, timestamp: number, write: (bytes: Uint8Array, at: number) => void): number {
    // Times never go down, across restarts too (a time seek must not skip entries).
    const stamp = timestamp > this.#lastTimestamp ? timestamp : this.#lastTimestamp;
    this.#lastTimestamp = stamp;
    // Encoded once, into the hot part; the file record copies it from there.
    const hot = this.#hot;
    const offset = hot.appendWith(length, stamp, write);
    this.files.append(offset, stamp, hot.lastEntryBytes, hot.lastEntryStart, length);
    this.#onAppend(this);
    return offset;
  }

  /** Drops whole old segment files by x-max-length-bytes / x-max-age; trims the hot part to its budget. */
  applyRetention(now: number): number {
    const files = this.files;
    const dropped = files.dropOldest((seg) => files.bytes > this.#maxBytes || now - seg.lastTimestamp > this.#maxAgeMs);
    this.#hot.applyRetention(now, files.writtenEnd);
    return dropped;
  }

  offsetAtTime(ms: number): number {
    const hot = this.#hot;
    if (hot.count > 0 && ms >= hot.firstTimestamp) return hot.offsetAtTime(ms);
    return Math.max(this.firstOffset, this.files.offsetAtTimeSync(ms, hot.count > 0 ? hot.firstOffset : this.files.writtenEnd));
  }

  read(cursor: StreamCursor, maxEntries: number, maxBytes: number, visit: StreamVisitor): number {
    const first = this.firstOffset;
    if (cursor.next < first) {
      cursor.skipped += first - cursor.next;
      cursor.next = first;
    }
    const end = this.readableEnd;
    if (cursor.next >= end) return 0;
    const hot = this.#hot;
    const hotFirst = hot.count > 0 ? hot.firstOffset : Number.POSITIVE_INFINITY;
    if (cursor.next < hotFirst) {
      const n = this.#readDisk(cursor, maxEntries, maxBytes, visit, Math.min(end, hotFirst));
      if (n > 0 || cursor.next < hotFirst) return n;
    }
    return hot.read(cursor, Math.min(maxEntries, end - cursor.next), maxBytes, visit);
  }

  /** Entries from the reader's buffer, below `end`; starts a load and returns 0 when the buffer has none. */
  #readDisk(cursor: StreamCursor, maxEntries: number, maxBytes: number, visit: StreamVisitor, end: number): number {
    let a = cursor.ahead as ReadAhead | null;
    if (a === null) {
      a = new ReadAhead();
      cursor.ahead = a;
    }
    if (a.loading) return 0;
    const rec = a.rec;
    let n = 0;
    let bytes = 0;
    a.need = 0;
    while (n < maxEntries && a.seg !== null && !a.seg.deleted) {
      parseRecord(a.buf, a.at, a.length, rec);
      if (rec.next < 0) {
        a.need = a.length - a.at >= 9 ? rec.entryEnd : 0;
        break;
      }
      if (rec.type === 0) {
        // A record damaged since recovery read it: go on from the next index point, the loss counted.
        const after = a.seg.positionAfter(a.filePos + a.at);
        if (after.offset >= 0 && after.offset > cursor.next) {
          cursor.skipped += after.offset - cursor.next;
          cursor.next = after.offset;
        }
        a.filePos = after.position;
        a.length = 0;
        a.at = 0;
        break;
      }
      if (rec.type !== RecordType.streamEntry || rec.offset < cursor.next) {
        a.at = rec.next;
        continue;
      }
      if (rec.offset > cursor.next) {
        // Entries recovery found damaged: the reader is told how many, as for retention.
        cursor.skipped += Math.min(rec.offset, end) - cursor.next;
        cursor.next = Math.min(rec.offset, end);
      }
      if (rec.offset >= end) return n;
      const size = rec.entryEnd - rec.entryStart;
      if (n > 0 && bytes + size > maxBytes) return n;
      if (visit(rec.offset, rec.timestamp, a.buf, rec.entryStart, rec.entryEnd) === false) return n;
      bytes += size;
      n++;
      cursor.next++;
      a.at = rec.next;
    }
    if (n === 0 && cursor.next < end) this.#load(cursor, a, end);
    return n;
  }

  /** Reads the chunk of the segment holding `cursor.next` into the reader's buffer; wakes the reader when done. */
  #load(cursor: StreamCursor, a: ReadAhead, end: number): void {
    const files = this.files;
    let si = files.segmentOf(cursor.next);
    let seg = files.segments[si];
    while (seg !== undefined && cursor.next > seg.lastOffset) {
      // Past this segment's last entry (damage cut its end): on to the next one, the gap counted.
      const next = files.segments[++si];
      if (next === undefined) return;
      const to = Math.min(next.firstOffset, end);
      cursor.skipped += to - cursor.next;
      cursor.next = to;
      seg = next;
      if (cursor.next >= end) {
        queueMicrotask(() => cursor.wake?.());
        return;
      }
    }
    if (seg === undefined) return;
    const indexed = seg.positionBefore(cursor.next);
    const continued = a.seg === seg ? a.filePos + a.at : -1;
    const pos = Math.max(indexed, continued);
    if (a.need > a.buf.length) a.buf = Buffer.allocUnsafe(a.need);
    const length = Math.min(a.buf.length, seg.written - pos);
    if (length <= 0) return;
    a.loading = true;
    const target = seg;
    this.#fs.readAt(seg.path, a.buf, 0, length, pos).then(
      (got) => {
        a.seg = target;
        a.filePos = pos;
        a.length = got;
        a.at = 0;
        a.loading = false;
        cursor.wake?.();
      },
      (err: NodeJS.ErrnoException) => {
        a.seg = null;
        a.length = 0;
        a.at = 0;
        if (target.deleted || err.code === 'ENOENT') {
          // Retention dropped the file meanwhile: the next read moves the cursor past it.
          a.loading = false;
          cursor.wake?.();
        } else {
          setTimeout(() => {
            a.loading = false;
            cursor.wake?.();
          }, READ_RETRY_MS).unref?.();
        }
      },
    );
  }
}
