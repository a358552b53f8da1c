import type { RingStorage } from '../ring/spsc-ring.js';
import type { LevelWithSilent } from 'pino';

/** What the supervisor hands a shard thread at start (and again, unchanged, at a restart). */
export interface ShardWorkerData {
  readonly index: number;
  readonly shardCount: number;
  /** main → shard */
  readonly inbound: RingStorage;
  /** shard → main */
  readonly outbound: RingStorage;
  readonly counters: SharedArrayBuffer;
  /** The vhost numbers' prefixes (protocol/vhost-numbers.ts), written by the main thread. */
  readonly vhostTable: SharedArrayBuffer;
  /** The topology this shard must know before it reads its ring (empty at first start). */
  readonly topology: readonly import('../protocol/ring-record-codec.js').ManageOp[];
  /** With --data-dir: where this shard keeps its log (`<data-dir>/shard-<index>`); null in memory. */
  readonly storeDir: string | null;
  readonly fsync: 'always' | 'batch';
  readonly fsyncIntervalMs: number;
  readonly logLevel: LevelWithSilent;
}

/** Control-plane messages over the worker's port (never on the data path). */
/** `figures`: the queues named, packed (queue-figures.ts), the buffer transferred. */
export type ShardRequest = { readonly type: 'figures'; readonly id: number; readonly names: readonly string[] } | { readonly type: 'stop' };
export type ShardReply =
  | { readonly type: 'ready'; readonly recovered: import('./shard-core.js').RecoverySummary | null }
  | { readonly type: 'figures'; readonly id: number; readonly figures: Float64Array }
  | { readonly type: 'stopped' };
