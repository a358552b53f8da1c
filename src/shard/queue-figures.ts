/**
 * A management page's per-queue figures, packed: one Float64Array of FIGURES_PER_QUEUE numbers per
 * queue asked for, in the order asked. It crosses the worker port as one transferred buffer (no
 * structured clone of a hundred nested objects), and the main thread writes the page's JSON from
 * it and its own topology (names, flags, arguments), so a walk of 100,000 queues costs the shard a
 * lookup and a few stores per queue.
 */
import { QUEUE_STAT_KEYS, type QueueStats } from '../queue/types.js';

/** The stats in a packed row, in order (QueueStats' keys, as the management API lists them). */
export const FIGURE_STAT_KEYS = QUEUE_STAT_KEYS;

/** Before the stats: ready messages, consumers, unacked, ready payload bytes. */
const HEAD = 4;
export const FIGURES_PER_QUEUE = HEAD + QUEUE_STAT_KEYS.length;

/** What a shard knows of one queue (MessageQueue has these). */
export interface FigureSource {
  readonly depth: number;
  readonly consumerCount: number;
  readonly unackedCount: number;
  readonly readyBytes: number;
  readonly stats: Readonly<QueueStats>;
}

export interface QueueFigures {
  readonly depth: number;
  readonly consumers: number;
  readonly unacked: number;
  readonly readyBytes: number;
  /** QueueStats' values in QUEUE_STAT_KEYS order. */
  readonly stat: (key: number) => number;
}

/** The figures of `names` in order; a queue `lookup` does not find gets NaN for its depth. */
export function packFigures(names: readonly string[], lookup: (name: string) => FigureSource | undefined): Float64Array<ArrayBuffer> {
  const out = new Float64Array(names.length * FIGURES_PER_QUEUE);
  for (let i = 0; i < names.length; i++) {
    const q = lookup(names[i]);
    const at = i * FIGURES_PER_QUEUE;
    if (q === undefined) {
      out[at] = Number.NaN;
      continue;
    }
    out[at] = q.depth;
    out[at + 1] = q.consumerCount;
    out[at + 2] = q.unackedCount;
    out[at + 3] = q.readyBytes;
    const stats = q.stats;
    for (let k = 0; k < QUEUE_STAT_KEYS.length; k++) out[at + HEAD + k] = stats[QUEUE_STAT_KEYS[k]];
  }
  return out;
}

/** The i-th queue's figures, undefined when the shard did not have it. */
export function figuresAt(packed: Float64Array, i: number): QueueFigures | undefined {
  const at = i * FIGURES_PER_QUEUE;
  if (at >= packed.length || Number.isNaN(packed[at])) return undefined;
  return {
    depth: packed[at],
    consumers: packed[at + 1],
    unacked: packed[at + 2],
    readyBytes: packed[at + 3],
    stat: (key) => packed[at + HEAD + key],
  };
}
