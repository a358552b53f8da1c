/**
 * The streams of one shard on disk (`<data-dir>/shard-<i>/streams/`): a directory per stream, and
 * group commit across them. Each append takes a number (`seq`, per shard, increasing); a flush
 * writes and fsyncs every stream that grew and then reports the highest number it covered, so a
 * confirm waits for "my number is durable" whatever streams its publish went to (ShardDurability
 * joins this with the shard log's LSN). The fsync policy is the shard log's: `always` flushes at the
 * end of every batch, `batch` at most once per interval.
 *
 * A stream's directory is named by a hash of its name (any queue name is a valid one; a file name
 * is not), with `stream.json` inside saying whose it is. A deleted stream's directory is renamed
 * away at once (a crash cannot bring it back under a new stream of the same name) and removed in
 * the background; a directory no declared stream owns after recovery is moved aside, not deleted.
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { FsyncPolicy } from './log-store.js';
import { nodeFs, type FsSeam } from './fs-seam.js';
import { DurableStreamLog, type DurableStreamLimits } from './durable-stream-log.js';
import { StreamFiles } from './stream-files.js';

const STREAM_DIR = /^[0-9a-f]{32}$/;
const RETRY_MS = 1000;

export interface StreamStoreOptions {
  /** The shard's store directory; streams go in its `streams/`. */
  readonly dir: string;
  readonly fsync: FsyncPolicy;
  readonly batchIntervalMs: number;
  readonly fs?: FsSeam;
}

export function streamDirName(name: string): string {
  return createHash('sha256').update(name).digest('hex').slice(0, 32);
}

export class StreamStore {
  readonly dir: string;
  /** Every append up to `seq` is durable; `logs` are the streams the flush wrote. */
  onDurable: (seq: number, logs: readonly DurableStreamLog[]) => void = () => {};
  /** A flush failed: appends up to `seq` not yet durable are not (they stay pending and are written again). */
  onFlushError: (err: Error, seq: number) => void = () => {};
  readonly #fs: FsSeam;
  readonly #policy: FsyncPolicy;
  readonly #intervalMs: number;
  readonly #dirty = new Set<DurableStreamLog>();
  readonly #open = new Set<DurableStreamLog>();
  #seq = 0;
  #durableSeq = 0;
  #inflight: Promise<void> | null = null;
  #again = false;
  #timer: NodeJS.Timeout | null = null;
  #lastStart = 0;
  #closed = false;
  /** Callers waiting for an append number to be durable (stored offsets), in number order. */
  readonly #waiters: Array<{ seq: number; resolve: () => void }> = [];

  constructor(options: StreamStoreOptions) {
    this.dir = join(options.dir, 'streams');
    this.#fs = options.fs ?? nodeFs;
    this.#policy = options.fsync;
    this.#intervalMs = options.batchIntervalMs;
  }

  /** The number of the last append (0: none yet). */
  get seq(): number {
    return this.#seq;
  }

  get durableSeq(): number {
    return this.#durableSeq;
  }

  /** The stream `name`'s log: what its directory holds, recovered (synchronously), or a new one. */
  open(name: string, segmentBytes: number, limits: DurableStreamLimits): DurableStreamLog {
    const dir = join(this.dir, streamDirName(name));
    this.#fs.mkdirSync(dir);
    if (!this.#fs.readdirSync(dir).includes('stream.json')) {
      this.#fs.writeFileDurableSync(join(dir, 'stream.json'), Buffer.from(`${JSON.stringify({ name })}\n`));
    }
    const log = new DurableStreamLog(new StreamFiles(dir, segmentBytes, this.#fs), limits, this.#fs, (l) => {
      this.#seq++;
      this.#dirty.add(l);
    });
    this.#open.add(log);
    return log;
  }

  /** A stream was deleted: its files go (renamed away now, removed in the background). */
  remove(log: DurableStreamLog): void {
    this.#dirty.delete(log);
    this.#open.delete(log);
    for (const seg of log.files.segments) seg.deleted = true;
    const aside = `${log.files.dir}.deleted-${Date.now()}`;
    try {
      this.#fs.renameSync(log.files.dir, aside);
    } catch {
      return;
    }
    this.#fs.removeTree(aside).catch(() => {});
  }

  /**
   * After recovery: directories no stream in `declared` owns are moved aside (`<id>.orphaned-<ms>`,
   * kept for a person to look at: a damaged topology record must not cost a stream's data), and
   * what deletes left behind is removed. Returns the names of the orphans moved.
   */
  sweep(declared: Iterable<string>): string[] {
    const owned = new Set<string>();
    for (const name of declared) owned.add(streamDirName(name));
    this.#fs.mkdirSync(this.dir);
    const moved: string[] = [];
    for (const entry of this.#fs.readdirSync(this.dir)) {
      const path = join(this.dir, entry);
      if (entry.includes('.deleted-')) this.#fs.removeTree(path).catch(() => {});
      else if (STREAM_DIR.test(entry) && !owned.has(entry)) {
        this.#fs.renameSync(path, `${path}.orphaned-${Date.now()}`);
        moved.push(entry);
      }
    }
    return moved;
  }

  /** Resolves once every append up to now is durable (a stored offset's commit answers then); asks for the flush. */
  whenDurable(): Promise<void> {
    const seq = this.#seq;
    if (seq <= this.#durableSeq) return Promise.resolve();
    const p = new Promise<void>((resolve) => this.#waiters.push({ seq, resolve }));
    this.requestFlush();
    return p;
  }

  #wakeWaiters(): void {
    const w = this.#waiters;
    let n = 0;
    while (n < w.length && (w[n] as { seq: number }).seq <= this.#durableSeq) n++;
    for (const { resolve } of w.splice(0, n)) resolve();
  }

  /** Asks for everything appended so far to become durable per the fsync policy (cheap; no I/O here). */
  requestFlush(): void {
    if (this.#dirty.size === 0 || this.#closed) return;
    if (this.#inflight !== null) {
      this.#again = true;
      return;
    }
    if (this.#policy === 'always') {
      this.#start();
      return;
    }
    if (this.#timer !== null) return;
    const wait = Math.max(0, this.#lastStart + this.#intervalMs - performance.now());
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#start();
    }, wait);
  }

  #start(): void {
    if (this.#inflight !== null) {
      this.#again = true;
      return;
    }
    if (this.#dirty.size === 0) return;
    this.#lastStart = performance.now();
    const target = this.#seq;
    const logs = [...this.#dirty];
    this.#dirty.clear();
    this.#inflight = this.#flush(target, logs).finally(() => {
      this.#inflight = null;
      if (this.#again) {
        this.#again = false;
        this.requestFlush();
      }
    });
  }

  async #flush(target: number, logs: DurableStreamLog[]): Promise<void> {
    try {
      await Promise.all(logs.map((l) => l.files.flush()));
    } catch (err) {
      for (const l of logs) if (this.#open.has(l)) this.#dirty.add(l);
      this.onFlushError(err as Error, target);
      if (!this.#closed) setTimeout(() => this.requestFlush(), RETRY_MS).unref?.();
      return;
    }
    this.#durableSeq = target;
    this.onDurable(target, logs);
    this.#wakeWaiters();
  }

  /** Flushes what is pending and closes every stream's files. */
  async close(): Promise<void> {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    while (this.#inflight !== null) await this.#inflight;
    this.#closed = true;
    const target = this.#seq;
    await Promise.all([...this.#open].map((l) => l.files.close()));
    this.#durableSeq = target;
    this.#wakeWaiters();
  }
}
