/**
 * The durable {@link MessageStore}: an append-only log of CRC-checked records in numbered segment
 * files under one directory (`<data-dir>/shard-<i>/`), with group commit. One per shard thread.
 * This module holds the append and flush paths; recovery is in `log-recovery.ts`, the live-message
 * index in `live-index.ts`, segment deletion in `segment-reclaimer.ts`.
 *
 * Files and records: `000000000001.seg`, `000000000002.seg`, …; each starts with a segment header
 * holding the compacted topology snapshot, then message/remove/topology records in LSN order. Byte
 * layout in `record-codec.ts`; framing and damage classification in `segment.ts`.
 *
 * LSNs are positional: a header stores the LSN of the segment's first record, and each record after
 * it is one more. They continue across restarts. Recovery never appends to an existing segment: the
 * first append after it starts a new one (so the tail it read is never written again).
 *
 * Write path. Appends encode into an in-memory chunk and return at once. A flush takes every chunk,
 * writes each segment's bytes at that segment's durable offset (positioned writes), fsyncs it, syncs
 * the directory once for a segment the flush created, and only then counts the bytes durable,
 * applies the records' effects to the live index, and calls `onDurable`. One flush is in flight at a
 * time; appends made meanwhile go to the next. Policies:
 * - `always`: a `requestFlush()` starts a flush at once, or right after the one in flight.
 * - `batch` (group commit, the default): a `requestFlush()` arms a timer, if none is armed, for the
 *   moment `batchIntervalMs` after the previous flush started (at once when the store was idle), so
 *   flushes start at most once per interval and an idle store adds no latency to the first one.
 *
 * Failure. When a write, fsync or directory sync fails, the segment is cut back to its durable offset
 * (if the cut fails too, it is retried before the next write), the unwritten chunks go back in front
 * of the pending ones, `onFlushError` is called, and they are written again by the next flush: on the
 * next `requestFlush()`, or after `retryDelayMs`. Bytes are rewritten rather than fsync retried,
 * because a failed fsync can drop dirty pages (Linux marks them clean): retrying only the fsync could
 * report data durable that is not on disk. Durable bytes are never written again.
 *
 * Segments. A segment rolls once it reaches `segmentBytes`: it can exceed the limit by its last
 * record, and holds at least one record after its header (whose snapshot alone may pass a tiny
 * limit). When a segment is deleted: `segment-reclaimer.ts`.
 */
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { nodeFs, type FsSeam } from './fs-seam.js';
import { LiveIndex } from './live-index.js';
import { recoverLog } from './log-recovery.js';
import { RecordWriter } from './record-codec.js';
import { Segment, segmentFileName } from './segment.js';
import { SegmentReclaimer } from './segment-reclaimer.js';
import { TopologyModel, checkTopologyOp } from './topology-model.js';
import {
  StoreStateError,
  checkAppendable,
  checkMessageId,
  type DurableListener,
  type FlushErrorListener,
  type MessageStore,
  type PersistedMessage,
  type RecoveryResult,
  type TopologyOp,
} from './store.js';

export { MAX_DAMAGE_REPORTS } from './log-recovery.js';

export type FsyncPolicy = 'always' | 'batch';

export interface LogStoreOptions {
  /** The shard's directory (created if missing). Nothing else may write in it. */
  readonly dir: string;
  /** When flushes happen; see the module comment. Default `batch`. */
  readonly fsync?: FsyncPolicy;
  /** `batch` only: the least time between two flush starts. Default 5. */
  readonly batchIntervalMs?: number;
  /** The size at which a segment rolls. Default 64 MiB. */
  readonly segmentBytes?: number;
  /** After a failed flush, retry on our own after this long (0: only on the next requestFlush). Default 1000. */
  readonly retryDelayMs?: number;
  /** File operations; tests inject faults here. Default node:fs. */
  readonly fs?: FsSeam;
}

export const LOG_STORE_DEFAULTS = Object.freeze({
  fsync: 'batch' as FsyncPolicy,
  /** Group commit window: at ~5 ms an fsync-bound disk still commits ~200 batches per second. */
  batchIntervalMs: 5,
  /** Large enough that rolling (a header with the topology snapshot) is rare, small enough to reclaim. */
  segmentBytes: 64 * 1024 * 1024,
  /** A full disk rarely frees itself faster; each retry that fails calls onFlushError again. */
  retryDelayMs: 1000,
});

/** Writers kept for reuse after a flush, and the largest one worth keeping. */
const SPARE_WRITERS = 4;
const SPARE_WRITER_MAX_BYTES = 8 * 1024 * 1024;

/** What a record does to the live index once durable. */
const Effect = { none: 0, add: 1, remove: 2, dropQueue: 3 } as const;
type Effect = (typeof Effect)[keyof typeof Effect];

/** Records appended to one segment and not yet durable, with their effects in order. */
interface Chunk {
  readonly seg: Segment;
  readonly w: RecordWriter;
  /** The LSN of its last record (0 when it holds only a header). */
  lastLsn: number;
  /** It starts with the segment's header: once durable, that snapshot covers the older segments. */
  readonly hasHeader: boolean;
  readonly effects: Effect[];
  readonly queues: string[];
  readonly ids: number[];
}

interface FlushOutcome {
  readonly advanced: boolean;
  readonly error: Error | null;
  readonly failedUpToLsn: number;
}

export class LogStore implements MessageStore {
  onDurable: DurableListener = () => {};
  onFlushError: FlushErrorListener = () => {};

  readonly #dir: string;
  readonly #fs: FsSeam;
  readonly #policy: FsyncPolicy;
  readonly #batchIntervalMs: number;
  readonly #segmentBytes: number;
  readonly #retryDelayMs: number;

  #recovered = false;
  #closing = false;
  #closed: Promise<void> | null = null;

  /** The segment appends go to; null after recovery, so that the first append starts a new one. */
  #active: Segment | null = null;
  #lastSegmentNo = 0;
  readonly #reclaimer: SegmentReclaimer;

  #topology = new TopologyModel();
  #live = new LiveIndex();

  #nextLsn = 1;
  #durableLsn = 0;
  #nextId = 0;

  #pending: Chunk[] = [];
  readonly #spareWriters: RecordWriter[] = [];
  #inFlight: Promise<void> | null = null;
  #flushWanted = false;
  #lastFlushError: Error | null = null;
  #lastFlushStartedAt = -Infinity;
  #batchTimer: NodeJS.Timeout | null = null;
  #retryTimer: NodeJS.Timeout | null = null;

  constructor(options: LogStoreOptions) {
    const o = { ...LOG_STORE_DEFAULTS, ...stripUndefined(options) };
    if (typeof o.dir !== 'string' || o.dir === '') throw new TypeError('options.dir must be a non-empty string');
    if (o.fsync !== 'always' && o.fsync !== 'batch') {
      throw new TypeError(`options.fsync must be 'always' or 'batch' (got ${String(o.fsync)})`);
    }
    if (!(Number.isFinite(o.batchIntervalMs) && o.batchIntervalMs >= 0)) {
      throw new RangeError(`options.batchIntervalMs must be a number >= 0 (got ${o.batchIntervalMs})`);
    }
    if (!(Number.isSafeInteger(o.segmentBytes) && o.segmentBytes >= 1)) {
      throw new RangeError(`options.segmentBytes must be an integer >= 1 (got ${o.segmentBytes})`);
    }
    if (!(Number.isFinite(o.retryDelayMs) && o.retryDelayMs >= 0)) {
      throw new RangeError(`options.retryDelayMs must be a number >= 0 (got ${o.retryDelayMs})`);
    }
    this.#dir = o.dir;
    this.#fs = options.fs ?? nodeFs;
    this.#policy = o.fsync;
    this.#batchIntervalMs = o.batchIntervalMs;
    this.#segmentBytes = o.segmentBytes;
    this.#retryDelayMs = o.retryDelayMs;
    this.#reclaimer = new SegmentReclaimer(this.#fs, this.#dir);
  }

  get durableLsn(): number {
    return this.#durableLsn;
  }

  /** Bytes on disk in the live segments (durable ones; what a flush in progress writes comes next). */
  get bytes(): number {
    let n = 0;
    for (const seg of this.#reclaimer.segments) n += seg.durableBytes;
    return n;
  }

  // ---- recovery ------------------------------------------------------------------------------

  recover(): RecoveryResult {
    if (this.#recovered) throw new StoreStateError('recover() may be called only once');
    if (this.#closing) throw new StoreStateError('store is closed');
    this.#recovered = true;
    const started = performance.now();
    const log = recoverLog(this.#fs, this.#dir);
    this.#reclaimer.recovered(log.segments, log.snapshotSegmentNo);
    this.#lastSegmentNo = log.lastSegmentNo;
    this.#topology = log.topology;
    this.#live = log.live;
    this.#nextLsn = log.nextLsn;
    this.#durableLsn = log.nextLsn - 1;
    this.#nextId = log.nextId;
    this.#reclaimer.reclaim();
    return {
      topology: this.#topology.ops(),
      messages: log.messages,
      nextId: log.nextId,
      lastLsn: log.nextLsn - 1,
      stats: { ...log.stats, durationMs: performance.now() - started },
    };
  }

  // ---- appends -------------------------------------------------------------------------------

  appendMessage(m: PersistedMessage): number {
    checkAppendable(this.#recovered, this.#closing);
    checkMessageId(m.id);
    const c = this.#chunk();
    const n = c.w.message(m);
    if (m.id >= this.#nextId) this.#nextId = m.id + 1;
    return this.#appended(c, n, Effect.add, m.queue, m.id);
  }

  appendRemove(queue: string, id: number): number {
    checkAppendable(this.#recovered, this.#closing);
    checkMessageId(id);
    const c = this.#chunk();
    const n = c.w.remove(queue, id);
    if (id >= this.#nextId) this.#nextId = id + 1;
    return this.#appended(c, n, Effect.remove, queue, id);
  }

  appendTopology(op: TopologyOp): number {
    checkAppendable(this.#recovered, this.#closing);
    checkTopologyOp(op);
    const json = JSON.stringify(op);
    // Keep what recovery will read back, not the caller's object (which it may change later).
    const copy = JSON.parse(json) as TopologyOp;
    const c = this.#chunk();
    const n = c.w.topology(json);
    this.#topology.apply(copy);
    if (copy.op === 'deleteQueue') return this.#appended(c, n, Effect.dropQueue, copy.name as string, 0);
    return this.#appended(c, n, Effect.none, '', 0);
  }

  /** The chunk the next record goes to, rolling to a new segment first when the active one is full. */
  #chunk(): Chunk {
    let seg = this.#active;
    if (seg === null || seg.appendedBytes >= this.#segmentBytes) seg = this.#roll();
    const last = this.#pending.length > 0 ? this.#pending[this.#pending.length - 1] : undefined;
    if (last !== undefined && last.seg === seg) return last;
    const c = this.#newChunk(seg, false);
    this.#pending.push(c);
    return c;
  }

  #roll(): Segment {
    const no = ++this.#lastSegmentNo;
    const seg = new Segment(no, join(this.#dir, segmentFileName(no)));
    this.#reclaimer.rolled(seg);
    this.#active = seg;
    const c = this.#newChunk(seg, true);
    seg.appendedBytes += c.w.segmentHeader(no, this.#nextLsn, this.#nextId, this.#topology.ops());
    this.#pending.push(c);
    return seg;
  }

  #newChunk(seg: Segment, hasHeader: boolean): Chunk {
    const w = this.#spareWriters.pop() ?? new RecordWriter();
    return { seg, w, lastLsn: 0, hasHeader, effects: [], queues: [], ids: [] };
  }

  #appended(c: Chunk, bytes: number, effect: Effect, queue: string, id: number): number {
    const lsn = this.#nextLsn++;
    c.seg.appendedBytes += bytes;
    c.lastLsn = lsn;
    if (effect !== Effect.none) {
      c.effects.push(effect);
      c.queues.push(queue);
      c.ids.push(id);
    }
    return lsn;
  }

  // ---- flushing ------------------------------------------------------------------------------

  requestFlush(): void {
    if (this.#closing || this.#pending.length === 0) return;
    this.#flushWanted = true;
    this.#schedule();
  }

  #schedule(): void {
    if (this.#inFlight !== null || this.#batchTimer !== null) return;
    if (this.#policy === 'always') {
      this.#startFlush();
      return;
    }
    const wait = Math.max(0, this.#lastFlushStartedAt + this.#batchIntervalMs - performance.now());
    this.#batchTimer = setTimeout(this.#onBatchTimer, wait);
  }

  readonly #onBatchTimer = (): void => {
    this.#batchTimer = null;
    this.#startFlush();
  };

  #startFlush(): void {
    if (this.#inFlight !== null || this.#pending.length === 0) return;
    const batch = this.#pending;
    this.#pending = [];
    this.#flushWanted = false;
    this.#lastFlushStartedAt = performance.now();
    this.#inFlight = this.#writeBatch(batch).then(this.#finishFlush);
  }

  /** Writes and syncs `batch` segment by segment; never rejects (a failure is in the outcome). */
  async #writeBatch(batch: Chunk[]): Promise<FlushOutcome> {
    const before = this.#durableLsn;
    let i = 0;
    try {
      while (i < batch.length) {
        const seg = batch[i].seg;
        let j = i + 1;
        while (j < batch.length && batch[j].seg === seg) j++;
        await this.#writeRun(seg, batch, i, j);
        for (let k = i; k < j; k++) this.#applyDurable(batch[k]);
        i = j;
      }
      for (const c of batch) this.#recycle(c.w);
      await this.#closeSealed();
      return { advanced: this.#durableLsn > before, error: null, failedUpToLsn: 0 };
    } catch (err) {
      const failed = batch.slice(i);
      const seg = failed[0].seg;
      if (seg.dirty && seg.fd !== null) {
        try {
          await this.#fs.ftruncate(seg.fd, seg.durableBytes);
          seg.dirty = false;
        } catch {
          // Still dirty: cut before the next write to it.
        }
      }
      this.#pending = failed.concat(this.#pending);
      let failedUpToLsn = 0;
      for (const c of failed) failedUpToLsn = Math.max(failedUpToLsn, c.lastLsn);
      return { advanced: this.#durableLsn > before, error: asError(err), failedUpToLsn };
    }
  }

  /** Writes chunks [i, j) of one segment at its durable offset, then makes them durable. */
  async #writeRun(seg: Segment, batch: Chunk[], i: number, j: number): Promise<void> {
    const fs = this.#fs;
    if (seg.fd === null) {
      seg.fd = await fs.openForWrite(seg.path);
      seg.needsDirSync = true;
    }
    const fd = seg.fd;
    if (seg.dirty) {
      await fs.ftruncate(fd, seg.durableBytes);
      seg.dirty = false;
    }
    let position = seg.durableBytes;
    for (let k = i; k < j; k++) {
      const { w } = batch[k];
      seg.dirty = true;
      let offset = 0;
      while (offset < w.length) {
        const n = await fs.write(fd, w.bytes, offset, w.length - offset, position);
        if (!(n > 0)) throw new Error(`${seg.path}: write made no progress (${n} bytes)`);
        offset += n;
        position += n;
      }
    }
    await fs.fsync(fd);
    if (seg.needsDirSync) {
      await fs.syncDir(this.#dir);
      seg.needsDirSync = false;
    }
    seg.durableBytes = position;
    seg.dirty = false;
  }

  /** Closes the files of segments that rolled and owe no bytes: they are never written again. */
  async #closeSealed(): Promise<void> {
    for (const seg of this.#reclaimer.segments) {
      if (seg.fd === null || seg === this.#active || this.#pending.some((c) => c.seg === seg)) continue;
      const fd = seg.fd;
      seg.fd = null;
      await this.#fs.close(fd).catch(() => {});
    }
  }

  /** A durable chunk's records take effect on the live index (in order), and its LSNs count. */
  #applyDurable(c: Chunk): void {
    const { seg, effects, queues, ids } = c;
    for (let k = 0; k < effects.length; k++) {
      switch (effects[k]) {
        case Effect.add:
          this.#live.add(queues[k], ids[k], seg);
          break;
        case Effect.remove:
          this.#live.remove(queues[k], ids[k], seg);
          break;
        case Effect.dropQueue:
          this.#live.dropQueue(queues[k], seg);
          break;
      }
    }
    if (c.hasHeader) this.#reclaimer.headerDurable(seg.no);
    if (c.lastLsn > this.#durableLsn) this.#durableLsn = c.lastLsn;
  }

  #recycle(w: RecordWriter): void {
    if (this.#spareWriters.length >= SPARE_WRITERS || w.capacity > SPARE_WRITER_MAX_BYTES) return;
    w.reset();
    this.#spareWriters.push(w);
  }

  readonly #finishFlush = (outcome: FlushOutcome): void => {
    this.#inFlight = null;
    this.#lastFlushError = outcome.error;
    try {
      // Listeners first, so they observe the files exactly as this flush left them.
      if (outcome.advanced) this.onDurable(this.#durableLsn);
      if (outcome.error !== null) this.onFlushError(outcome.error, outcome.failedUpToLsn);
    } finally {
      if (!this.#closing) {
        if (outcome.error !== null) this.#armRetry();
        else if (this.#flushWanted) this.#schedule();
      }
      if (outcome.advanced) this.#reclaimer.reclaim();
    }
  };

  #armRetry(): void {
    if (this.#retryDelayMs === 0 || this.#retryTimer !== null) return;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = null;
      if (!this.#closing && this.#pending.length > 0) this.#schedule();
    }, this.#retryDelayMs);
    this.#retryTimer.unref();
  }

  // ---- close ---------------------------------------------------------------------------------

  close(): Promise<void> {
    this.#closed ??= this.#close();
    return this.#closed;
  }

  async #close(): Promise<void> {
    this.#closing = true;
    if (this.#batchTimer !== null) clearTimeout(this.#batchTimer);
    if (this.#retryTimer !== null) clearTimeout(this.#retryTimer);
    this.#batchTimer = this.#retryTimer = null;
    let error: Error | null = null;
    if (this.#recovered) {
      if (this.#inFlight !== null) await this.#inFlight;
      if (this.#pending.length > 0) {
        this.#startFlush();
        await this.#inFlight;
        error = this.#lastFlushError;
      }
      await this.#reclaimer.settled();
    }
    for (const seg of this.#reclaimer.segments) {
      if (seg.fd === null) continue;
      const fd = seg.fd;
      seg.fd = null;
      await this.#fs.close(fd).catch(() => {});
    }
    if (error !== null) throw error;
  }
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}
