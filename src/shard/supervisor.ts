/**
 * Starts one worker thread per shard and keeps it running: a shard that dies is
 * restarted with backoff on the same rings and counters, and what it held in memory
 * is counted as lost (transient messages) and logged, never silently.
 *
 * Plain worker_threads rather than piscina: a shard is a pinned, long-lived loop with
 * an identity, not a task (docs/engine-notes.md §1).
 */
import type { Worker } from 'node:worker_threads';
import { spawnWorker } from './spawn-worker.js';
import { ShardHandle, type OutboundSink } from './shard-handle.js';
import { CounterSlot } from '../metrics/shard-counters.js';
import type { ShardReply, ShardRequest, ShardWorkerData } from './shard-worker-data.js';
import type { ManageOp } from '../protocol/ring-record-codec.js';
import type { RecoverySummary } from './shard-core.js';
import { join } from 'node:path';
import type { Logger } from '../log/logger.js';
import type { LevelWithSilent } from 'pino';

export interface SupervisorOptions {
  readonly shards: number;
  readonly ringBytes: number;
  readonly logLevel: LevelWithSilent;
  readonly log: Logger;
  /** Called once a restarted shard is up again, so the front can re-register subscriptions. */
  readonly onRestart?: (index: number) => void;
  /** With --data-dir: the directory under which each shard keeps `shard-<i>`. */
  readonly dataDir: string | null;
  readonly fsync: 'always' | 'batch';
  readonly fsyncIntervalMs: number;
  /** A shard reported what it recovered from its log (at start and after a restart). */
  readonly onRecovered?: (index: number, summary: RecoverySummary) => void;
  /** The topology a (re)started shard must know before it reads its ring. */
  readonly topologyFor?: (index: number) => ManageOp[];
  /** Called when a shard thread dies, before it is restarted. */
  readonly onCrash?: (index: number) => void;
  /** The vhost number table every shard reads publish records with (protocol/vhost-numbers.ts). */
  readonly vhostTable: SharedArrayBuffer;
}

/** First restart delay; doubles per consecutive crash up to the cap, so a crash loop cannot spin a core. */
const RESTART_BACKOFF_MS = 50;
const RESTART_BACKOFF_MAX_MS = 5000;
/** A shard that ran this long without crashing gets its backoff reset. */
const STABLE_AFTER_MS = 10_000;
/** How long stop() waits for a shard to finish its loop before terminating it. */
const STOP_TIMEOUT_MS = 2000;

interface Slot {
  readonly handle: ShardHandle;
  worker: Worker | null;
  startedAt: number;
  backoffMs: number;
  ready: Promise<void>;
}

/** The replies that answer a request. */
type AnswerReply = Extract<ShardReply, { type: 'figures' }>;

export class Supervisor {
  readonly handles: readonly ShardHandle[];
  readonly #opts: SupervisorOptions;
  readonly #slots: Slot[];
  readonly #waiters = new Map<number, (answer: AnswerReply) => void>();
  #requestId = 0;
  #stopping = false;

  constructor(opts: SupervisorOptions) {
    this.#opts = opts;
    this.#slots = [];
    for (let i = 0; i < opts.shards; i++) {
      this.#slots.push({
        handle: new ShardHandle(i, opts.ringBytes),
        worker: null,
        startedAt: 0,
        backoffMs: RESTART_BACKOFF_MS,
        ready: Promise.resolve(),
      });
    }
    this.handles = this.#slots.map((s) => s.handle);
  }

  /** Starts every shard and the main-side pumps; resolves when all shards are ready. */
  async start(sink: OutboundSink): Promise<void> {
    for (const slot of this.#slots) {
      this.#spawn(slot);
      void slot.handle
        .pump(sink, () => !this.#stopping)
        .catch((err: unknown) => {
          this.#opts.log.fatal({ err, shard: slot.handle.index }, 'outbound pump failed');
        });
    }
    await Promise.all(this.#slots.map((s) => s.ready));
  }

  /** The figures of the queues in `names` on one shard, packed (queue-figures.ts); null when it does not answer. */
  queueFigures(index: number, names: readonly string[], timeoutMs = 1000): Promise<Float64Array | null> {
    return this.#ask(index, { type: 'figures', id: 0, names }, timeoutMs).then((reply) =>
      reply?.type === 'figures' ? reply.figures : null,
    );
  }

  /** One control-port request and its reply (matched by id), null when the shard is down or silent. */
  #ask(index: number, request: Extract<ShardRequest, { readonly id: number }>, timeoutMs: number): Promise<AnswerReply | null> {
    const worker = this.#slots[index].worker;
    if (worker === null || !this.#slots[index].handle.alive) return Promise.resolve(null);
    const id = ++this.#requestId;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(id);
        resolve(null);
      }, timeoutMs);
      this.#waiters.set(id, (answer) => {
        clearTimeout(timer);
        resolve(answer);
      });
      worker.postMessage({ ...request, id } satisfies ShardRequest);
    });
  }

  /** Kills a shard thread as a crash would (tests and fault drills). */
  async crash(index: number): Promise<void> {
    await this.#slots[index].worker?.terminate();
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    await Promise.all(
      this.#slots.map(async (slot) => {
        const worker = slot.worker;
        if (worker === null) return;
        const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
        worker.postMessage({ type: 'stop' } satisfies ShardRequest);
        const timer = setTimeout(() => void worker.terminate(), STOP_TIMEOUT_MS);
        await exited;
        clearTimeout(timer);
      }),
    );
  }

  #spawn(slot: Slot): void {
    const { handle } = slot;
    const data: ShardWorkerData = {
      index: handle.index,
      shardCount: this.#slots.length,
      inbound: handle.inboundStorage,
      outbound: handle.outboundStorage,
      counters: handle.countersStorage,
      vhostTable: this.#opts.vhostTable,
      topology: this.#opts.topologyFor?.(handle.index) ?? [],
      storeDir: this.#opts.dataDir === null ? null : join(this.#opts.dataDir, `shard-${handle.index}`),
      fsync: this.#opts.fsync,
      fsyncIntervalMs: this.#opts.fsyncIntervalMs,
      logLevel: this.#opts.logLevel,
    };
    const worker = spawnWorker(new URL('./shard-main.js', import.meta.url), {
      workerData: data,
      name: `shard-${handle.index}`,
    });
    slot.worker = worker;
    slot.startedAt = Date.now();
    slot.ready = new Promise<void>((resolve, reject) => {
      const onMessage = (msg: ShardReply): void => {
        if (msg.type === 'ready') {
          if (msg.recovered !== null) this.#opts.onRecovered?.(handle.index, msg.recovered);
          handle.alive = true;
          resolve();
        } else if (msg.type === 'figures') {
          this.#waiters.get(msg.id)?.(msg);
          this.#waiters.delete(msg.id);
        }
      };
      worker.on('message', onMessage);
      worker.once('error', (err) => {
        this.#opts.log.error({ err, shard: handle.index }, 'shard thread failed');
        reject(err);
      });
      worker.once('exit', (code) => {
        handle.alive = false;
        if (this.#stopping) return;
        this.#onCrash(slot, code);
      });
    });
    slot.ready.catch(() => undefined);
  }

  #onCrash(slot: Slot, code: number): void {
    const { handle } = slot;
    const c = handle.counters;
    // Transient messages die with the thread: what the shard last reported holding is lost,
    // less its persistent messages, which come back from its log.
    const lost = Math.max(0, c[CounterSlot.ready] + c[CounterSlot.unacked] - c[CounterSlot.durable]);
    c[CounterSlot.lost] += lost;
    c[CounterSlot.ready] = 0;
    c[CounterSlot.unacked] = 0;
    c[CounterSlot.durable] = 0;
    c[CounterSlot.consumers] = 0;
    c[CounterSlot.queues] = 0;
    c[CounterSlot.restarts]++;
    if (Date.now() - slot.startedAt > STABLE_AFTER_MS) slot.backoffMs = RESTART_BACKOFF_MS;
    const delay = slot.backoffMs;
    slot.backoffMs = Math.min(slot.backoffMs * 2, RESTART_BACKOFF_MAX_MS);
    this.#opts.log.error(
      { shard: handle.index, exitCode: code, lostMessages: lost, restartInMs: delay },
      'shard died; its transient messages are lost; restarting',
    );
    this.#opts.onCrash?.(handle.index);
    setTimeout(() => {
      if (this.#stopping) return;
      this.#spawn(slot);
      void slot.ready.then(
        () => {
          this.#opts.log.info({ shard: handle.index }, 'shard restarted');
          this.#opts.onRestart?.(handle.index);
        },
        () => undefined,
      );
    }, delay);
  }
}
