/** What `/v1/stats` says about the broker process itself: version, uptime, memory against its bound, alarms. */
import { readFileSync } from 'node:fs';
import { getHeapStatistics } from 'node:v8';
import type { BrokerContext } from './context.js';

/** The package's version, read once (dist/front and src/front both sit two levels below the package root). */
const VERSION: string = (() => {
  try {
    return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string }).version ?? 'unknown';
  } catch {
    return 'unknown';
  }
})();

export interface NodeFacts {
  readonly version: string;
  readonly node: string;
  readonly uptimeS: number;
  readonly shards: number;
  /** Always native: the broker refuses to start on uWebSockets.js's slow fallback. */
  readonly uws: 'native';
  readonly dataDir: string | null;
  readonly rssBytes: number;
  /**
   * The main thread's JavaScript heap: what is in use (live, and garbage not yet collected) and what
   * it holds from the OS (part of rssBytes). Shard threads have heaps of their own.
   */
  readonly heapUsedBytes: number;
  readonly heapCommittedBytes: number;
  readonly maxMemoryBytes: number;
  /** Above --max-memory: publishers get 503 / refusals until it falls. */
  readonly memoryAlarm: boolean;
  /** Shards whose flow control holds publishes now. */
  readonly flowHeldShards: number;
}

export function nodeFacts(ctx: BrokerContext): NodeFacts {
  const heap = getHeapStatistics();
  return {
    version: VERSION,
    node: process.version,
    uptimeS: Math.round(process.uptime()),
    shards: ctx.shards.length,
    uws: 'native',
    dataDir: ctx.config.dataDir,
    rssBytes: process.memoryUsage.rss(),
    heapUsedBytes: heap.used_heap_size,
    heapCommittedBytes: heap.total_heap_size,
    maxMemoryBytes: ctx.config.maxMemoryBytes,
    memoryAlarm: ctx.publisher.overMemory,
    flowHeldShards: ctx.shards.reduce((n, h) => n + (h.overflow.flowHeld ? 1 : 0), 0),
  };
}
