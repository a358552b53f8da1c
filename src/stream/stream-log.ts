/**
 * A stream's messages in memory: an append-only log of opaque entries (the shard's encoded
 * messages), each with a 64-bit-safe offset that only grows and a timestamp, kept in segments so
 * retention drops whole segments (RabbitMQ streams and Kafka drop whole segments too: a log is
 * never rewritten).
 *
 * Per entry it keeps the body bytes plus 12 bytes of index: its start in the segment (u32) and its
 * timestamp (f64), so finding an offset is two binary searches (segment, then nothing: the index
 * within a segment is `offset - firstOffset`) and finding a time is two binary searches over
 * timestamps, which never go down (an append stamped earlier than the last one takes the last one's
 * stamp: a clock stepping back must not make a time seek skip messages).
 *
 * A segment's bytes grow by doubling up to the segment size, so a small stream costs little. The
 * newest segment is never dropped: retention can leave one segment beyond the limits, as RabbitMQ's.
 */

/** Where a segment's data starts: most streams are small, so the first allocation is too. */
const INITIAL_SEGMENT_BYTES = 64 * 1024;
const INITIAL_ENTRIES = 256;

export interface StreamLogOptions {
  /** Bytes of bodies per segment before the next starts (x-stream-max-segment-size-bytes). */
  readonly segmentBytes: number;
  /** x-max-length-bytes: whole old segments go while the bodies held are above it. */
  readonly maxBytes?: number;
  /** x-max-age in ms: a segment goes once its newest entry is older than this. */
  readonly maxAgeMs?: number;
}

/**
 * Called by read() for each entry: the body is `bytes[start, end)`, valid only during the call.
 * Returning false stops the read before this entry (it stays unread: the cursor does not pass it).
 */
export type StreamVisitor = (offset: number, timestamp: number, bytes: Uint8Array, start: number, end: number) => unknown;

/** A reader's position. `skipped` counts entries retention removed before the reader got to them. */
export class StreamCursor {
  next: number;
  skipped = 0;
  /** Where a log on disk keeps this reader's read buffer (null until it reads from disk). */
  ahead: object | null = null;
  /** Called when a read that returned nothing while the log fetched from disk can go on. */
  wake: (() => void) | null = null;
  constructor(next: number) {
    this.next = next;
  }
}

/**
 * What a stream's readers and ShardStreams use of a log: StreamLog (in memory) and the log on disk
 * (`store/durable-stream-log.ts`) both are one.
 */
export interface ReplayLog {
  readonly firstOffset: number;
  readonly nextOffset: number;
  /**
   * Readers get entries below it: nextOffset in memory; on disk, the end of what is durable (a
   * reader never sees an offset a crash could take back and give to another message).
   */
  readonly readableEnd: number;
  readonly count: number;
  readonly bytes: number;
  readonly segmentCount: number;
  readonly firstTimestamp: number;
  readonly lastTimestamp: number;
  appendWith(length: number, timestamp: number, write: (bytes: Uint8Array, at: number) => void): number;
  applyRetention(now: number): number;
  offsetAtTime(timestamp: number): number;
  /**
   * Entries from `cursor.next` on (see StreamLog.read). A log on disk may return 0 before
   * readableEnd while it fetches the next chunk: it calls `cursor.wake` when it has it.
   */
  read(cursor: StreamCursor, maxEntries: number, maxBytes: number, visit: StreamVisitor): number;
}

class Segment {
  readonly firstOffset: number;
  count = 0;
  used = 0;
  data: Uint8Array;
  starts: Uint32Array;
  times: Float64Array;
  readonly capacity: number;

  constructor(firstOffset: number, capacity: number, firstBody: number) {
    this.firstOffset = firstOffset;
    this.capacity = Math.max(capacity, firstBody);
    this.data = new Uint8Array(Math.min(this.capacity, Math.max(INITIAL_SEGMENT_BYTES, firstBody)));
    this.starts = new Uint32Array(INITIAL_ENTRIES);
    this.times = new Float64Array(INITIAL_ENTRIES);
  }

  fits(length: number): boolean {
    return this.count === 0 || this.used + length <= this.capacity;
  }

  /** Room for `length` more bytes and one more entry; returns where the body goes. */
  place(length: number, timestamp: number): number {
    const at = this.used;
    if (at + length > this.data.byteLength) {
      let size = this.data.byteLength * 2;
      while (size < at + length) size *= 2;
      // fits() held, so at + length <= capacity: the cap never cuts below what is needed.
      const grown = new Uint8Array(Math.min(size, this.capacity));
      grown.set(this.data.subarray(0, at));
      this.data = grown;
    }
    if (this.count === this.starts.length) {
      const starts = new Uint32Array(this.count * 2);
      starts.set(this.starts);
      this.starts = starts;
      const times = new Float64Array(this.count * 2);
      times.set(this.times);
      this.times = times;
    }
    this.starts[this.count] = at;
    this.times[this.count] = timestamp;
    this.count++;
    this.used = at + length;
    return at;
  }

  end(i: number): number {
    return i + 1 < this.count ? this.starts[i + 1] : this.used;
  }

  get lastTimestamp(): number {
    return this.times[this.count - 1];
  }
}

export class StreamLog implements ReplayLog {
  readonly #segmentBytes: number;
  readonly #maxBytes: number;
  readonly #maxAgeMs: number;
  /** Oldest first; never empty once anything was appended. */
  #segments: Segment[] = [];
  #nextOffset: number;
  #bytes = 0;
  #lastTimestamp = -Infinity;

  /** `firstOffset`: where an empty log starts (a recovered or truncated stream keeps counting). */
  constructor(options: StreamLogOptions, firstOffset = 0) {
    if (!Number.isInteger(options.segmentBytes) || options.segmentBytes < 1)
      throw new RangeError('segmentBytes must be a positive integer');
    this.#segmentBytes = options.segmentBytes;
    this.#maxBytes = options.maxBytes ?? Infinity;
    this.#maxAgeMs = options.maxAgeMs ?? Infinity;
    this.#nextOffset = firstOffset;
  }

  /** The oldest offset still held (= nextOffset when empty). */
  get firstOffset(): number {
    return this.#segments.length === 0 ? this.#nextOffset : (this.#segments[0] as Segment).firstOffset;
  }

  /** The offset the next append gets. */
  get nextOffset(): number {
    return this.#nextOffset;
  }

  /** In memory an entry is readable once appended. */
  get readableEnd(): number {
    return this.#nextOffset;
  }

  /** Entries held. */
  get count(): number {
    return this.#nextOffset - this.firstOffset;
  }

  /** Body bytes held. */
  get bytes(): number {
    return this.#bytes;
  }

  get segmentCount(): number {
    return this.#segments.length;
  }

  /** Timestamp of the oldest entry held, or NaN when empty. */
  get firstTimestamp(): number {
    const s = this.#segments[0];
    return s === undefined ? NaN : s.times[0];
  }

  /** Timestamp of the newest entry held, or NaN when empty. */
  get lastTimestamp(): number {
    const s = this.#segments.at(-1);
    return s === undefined ? NaN : s.lastTimestamp;
  }

  /** The bytes holding the newest entry, at `lastEntryStart` (a log on disk copies it from there into its file record). */
  get lastEntryBytes(): Uint8Array {
    return (this.#segments.at(-1) as Segment).data;
  }

  get lastEntryStart(): number {
    const s = this.#segments.at(-1) as Segment;
    return s.starts[s.count - 1] as number;
  }

  /** Appends a copy of `body`; returns its offset. */
  append(body: Uint8Array, timestamp: number): number {
    return this.appendWith(body.byteLength, timestamp, (bytes, at) => bytes.set(body, at));
  }

  /** Appends an entry of `length` bytes that `write` puts at `bytes[at, at + length)`; returns its offset. */
  appendWith(length: number, timestamp: number, write: (bytes: Uint8Array, at: number) => void): number {
    let segment = this.#segments.at(-1);
    if (segment === undefined || !segment.fits(length)) {
      segment = new Segment(this.#nextOffset, this.#segmentBytes, length);
      this.#segments.push(segment);
    }
    const stamp = timestamp > this.#lastTimestamp ? timestamp : this.#lastTimestamp;
    this.#lastTimestamp = stamp;
    const at = segment.place(length, stamp);
    write(segment.data, at);
    this.#bytes += length;
    return this.#nextOffset++;
  }

  /**
   * Drops whole old segments while the log is over its byte limit or their newest entry is older
   * than the age limit at `now`, never the newest segment, and none holding an offset at or above
   * `keepFrom` (a log on disk keeps in memory what is not written yet). Returns the entries dropped.
   */
  applyRetention(now: number, keepFrom = Number.POSITIVE_INFINITY): number {
    let dropped = 0;
    const segments = this.#segments;
    let head = 0;
    while (segments.length - head > 1) {
      const s = segments[head] as Segment;
      if (s.firstOffset + s.count > keepFrom) break;
      if (this.#bytes > this.#maxBytes || now - s.lastTimestamp > this.#maxAgeMs) {
        this.#bytes -= s.used;
        dropped += s.count;
        head++;
      } else break;
    }
    if (head > 0) this.#segments = segments.slice(head);
    return dropped;
  }

  /** The first offset whose timestamp is at or after `timestamp` (nextOffset when none is). */
  offsetAtTime(timestamp: number): number {
    const segments = this.#segments;
    let lo = 0;
    let hi = segments.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((segments[mid] as Segment).lastTimestamp < timestamp) lo = mid + 1;
      else hi = mid;
    }
    const s = segments[lo];
    if (s === undefined) return this.#nextOffset;
    let a = 0;
    let b = s.count - 1;
    while (a < b) {
      const mid = (a + b) >>> 1;
      if ((s.times[mid] as number) < timestamp) a = mid + 1;
      else b = mid;
    }
    return s.firstOffset + a;
  }

  /**
   * Hands `visit` the entries from `cursor.next` on, up to `maxEntries` and, past the first, up to
   * `maxBytes` of bodies; advances the cursor. A cursor behind the first offset held is moved to it
   * first and the entries it missed are added to `cursor.skipped`. Returns the entries visited.
   */
  read(cursor: StreamCursor, maxEntries: number, maxBytes: number, visit: StreamVisitor): number {
    const first = this.firstOffset;
    if (cursor.next < first) {
      cursor.skipped += first - cursor.next;
      cursor.next = first;
    }
    const segments = this.#segments;
    let si = this.#segmentOf(cursor.next);
    let n = 0;
    let bytes = 0;
    while (si < segments.length && n < maxEntries) {
      const s = segments[si] as Segment;
      let i = cursor.next - s.firstOffset;
      while (i < s.count && n < maxEntries) {
        const start = s.starts[i] as number;
        const end = s.end(i);
        if (n > 0 && bytes + (end - start) > maxBytes) return n;
        if (visit(cursor.next, s.times[i] as number, s.data, start, end) === false) return n;
        bytes += end - start;
        n++;
        i++;
        cursor.next++;
      }
      si++;
    }
    return n;
  }

  /** Index of the segment holding `offset` (segments.length when it is at or past the end). */
  #segmentOf(offset: number): number {
    const segments = this.#segments;
    if (segments.length === 0 || offset >= this.#nextOffset) return segments.length;
    let lo = 0;
    let hi = segments.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if ((segments[mid] as Segment).firstOffset <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }
}
