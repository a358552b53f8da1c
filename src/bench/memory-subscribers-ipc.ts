/**
 * What the `memory` workload (workloads/memory.ts) and its subscriber process
 * (memory-subscribers.ts) say to each other over the IPC channel, and the sequence number every
 * published payload carries in its first 4 bytes (big-endian uint32), by which the subscribers
 * check order.
 */

/** argv[2] of the subscriber process, JSON. */
export interface MemorySubscriberSpec {
  /** The broker's http:// URL. */
  readonly url: string;
  /** e.g. `/topic/bench.memory`. */
  readonly destination: string;
}

/** One subscriber's view of the stream. */
export interface StreamCounts {
  /** Messages handed to its handler. */
  readonly received: number;
  /** Messages whose sequence number was not above the highest seen before (reordered or duplicated). */
  readonly outOfOrder: number;
  /** Highest sequence number seen (-1: none). */
  readonly lastSeq: number;
}

export interface MemorySubscriberCounts {
  readonly healthy: StreamCounts;
  readonly stalled: StreamCounts;
  /** Sum of the `count` of the DROPPED notices the stalled subscription got ('dropped' events). */
  readonly notified: number;
  /** DROPPED notices (events) the stalled subscription got. */
  readonly notices: number;
  /** The stalled subscription's `brokerDropped` (the client's own sum of the notices). */
  readonly brokerDropped: number;
  /** The stalled client has stopped reading its socket (`stats.readPaused`). */
  readonly stalledReadPaused: boolean;
  /** Connections the broker (or the network) closed before the end. */
  readonly closed: number;
  readonly errors: number;
  readonly lastError: string;
}

/** Subscriber process → workload. */
export type MemorySubscriberReport =
  | { readonly type: 'ready' }
  | { readonly type: 'progress'; readonly counts: MemorySubscriberCounts }
  | { readonly type: 'final'; readonly counts: MemorySubscriberCounts }
  | { readonly type: 'failed'; readonly message: string };

/** Workload → subscriber process: `resume` lets the stalled subscriber read again; `stop` ends the process. */
export type MemorySubscriberCommand = { readonly type: 'resume' } | { readonly type: 'stop' };

/** Writes `seq` into the first 4 bytes of `payload` (≥ 4 bytes). */
export function writeSeq(payload: Uint8Array, seq: number): void {
  payload[0] = (seq >>> 24) & 0xff;
  payload[1] = (seq >>> 16) & 0xff;
  payload[2] = (seq >>> 8) & 0xff;
  payload[3] = seq & 0xff;
}

/** The sequence number in the first 4 bytes of `payload` (-1 when it is shorter). */
export function readSeq(payload: Uint8Array): number {
  if (payload.length < 4) return -1;
  return ((payload[0] << 24) | (payload[1] << 16) | (payload[2] << 8) | payload[3]) >>> 0;
}
