/** What `/v1/stats` says about the broker process itself: version, uptime, memory against its bound, alarms. */
import { readFileSync } from 'node:fs';
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
  readonly maxMemoryBytes: number;
  /** Above --max-memory: publishers get 503 / refusals until it falls. */
  readonly memoryAlarm: boolean;
  /** Shards whose flow control holds publishes now. */
  readonly flowHeldShards: number;
}

export function nodeFacts(ctx: BrokerContext): NodeFacts {
  return {
    version: VERSION,
    node: process.version,
    uptimeS: Math.round(process.uptime()),
    shards: ctx.shards.length,
    uws: 'native',
    dataDir: ctx.config.dataDir,
    rssBytes: process.memoryUsage.rss(),
    maxMemoryBytes: ctx.config.maxMemoryBytes,
    memoryAlarm: ctx.publisher.overMemory,
    flowHeldShards: ctx.shards.reduce((n, h) => n + (h.overflow.flowHeld ? 1 : 0), 0),
  };
}
