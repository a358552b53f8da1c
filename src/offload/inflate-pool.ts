/**
 * The offload pool for stateless CPU work that must leave the main thread: inflating
 * and splitting compressed telemetry batches. A piscina pool of its own, explicitly
 * sized (it competes with the shards for cores), with a bounded queue: when the queue
 * is full, callers get `saturated` (HTTP 503) instead of an unbounded backlog.
 */
import { Piscina } from 'piscina';
import { fileURLToPath } from 'node:url';
import type { InflateResult, InflateTask } from './inflate-task.js';

export interface InflatePoolOptions {
  readonly threads: number;
  /** Tasks waiting for a thread before new ones are refused. */
  readonly maxQueue: number;
}

/** Idle threads exit after this long; piscina's default (0) would churn threads per task. */
const IDLE_TIMEOUT_MS = 30_000;

export class InflatePool {
  readonly #pool: Piscina<InflateTask, InflateResult>;
  readonly #maxQueue: number;
  #refused = 0;

  constructor(options: InflatePoolOptions) {
    const fromSource = import.meta.url.endsWith('.ts');
    const filename = fileURLToPath(new URL(fromSource ? './inflate-task-bootstrap.mjs' : './inflate-task.js', import.meta.url));
    this.#maxQueue = options.maxQueue;
    this.#pool = new Piscina<InflateTask, InflateResult>({
      filename,
      minThreads: 0,
      maxThreads: options.threads,
      idleTimeout: IDLE_TIMEOUT_MS,
      maxQueue: options.maxQueue,
      // Pure functions: park idle threads with Atomics (docs/engine-notes.md §1: fine for tasks).
      atomics: 'sync',
      name: 'default',
    });
  }

  /** True when a new task would be refused (the queue is at its bound). */
  get saturated(): boolean {
    return this.#pool.queueSize >= this.#maxQueue;
  }

  get stats(): { threads: number; queued: number; completed: number; refused: number } {
    return { threads: this.#pool.threads.length, queued: this.#pool.queueSize, completed: this.#pool.completed, refused: this.#refused };
  }

  /** Inflates (and splits) a body; the body's buffer is transferred to the pool, not copied. */
  run(task: InflateTask): Promise<InflateResult> | null {
    if (this.saturated) {
      this.#refused++;
      return null;
    }
    const body = task.body;
    // Transfer when the view owns its whole buffer; otherwise piscina clones it.
    const whole = body.byteOffset === 0 && body.byteLength === body.buffer.byteLength && !(body.buffer instanceof SharedArrayBuffer);
    return this.#pool.run(task, whole ? { transferList: [body.buffer as ArrayBuffer] } : {});
  }

  close(): Promise<void> {
    return this.#pool.close({ force: true });
  }
}
