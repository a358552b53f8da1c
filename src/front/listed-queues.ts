/**
 * The queues /v1/stats and /metrics list (at most --stats-max-queues per shard, as RabbitMQ's
 * return_per_object_metrics bounds them) with their figures: the names, flags and arguments from the
 * main thread's topology, the figures from each owning shard packed (shard/queue-figures.ts), a
 * slice at a time. No shard snapshots a thousand queues as objects, and nothing crosses a worker port
 * by structured clone; the topology is walked in turns, so a shard holding few of 100,000 queues
 * does not make one long turn either.
 */
import type { BrokerContext } from './context.js';
import type { QueueMeta } from '../control/topology.js';
import { figuresAt, type QueueFigures } from '../shard/queue-figures.js';

/** Queues per figures request (a management page's slice). */
export const LISTED_SLICE = 100;
/** Topology entries looked at per turn while picking the listed queues. */
const PICK_PER_TURN = 5_000;

export interface ListedQueue {
  readonly meta: QueueMeta;
  readonly figures: QueueFigures;
}

/**
 * The listed queues, shard by shard in shard order and each shard's in declaration order, a slice
 * at a time; a queue its shard does not have (yet, or any more) and the queues of a shard that does
 * not answer are left out.
 */
export async function* listedQueues(ctx: BrokerContext, limit: number): AsyncGenerator<ListedQueue[]> {
  if (limit <= 0) return;
  const byShard = await pick(ctx, limit);
  for (const [shard, metas] of byShard.entries()) {
    for (let i = 0; i < metas.length; i += LISTED_SLICE) {
      const slice = metas.slice(i, i + LISTED_SLICE);
      const packed = await ctx.supervisor.queueFigures(
        shard,
        slice.map((m) => m.name),
      );
      if (packed === null) break;
      const out: ListedQueue[] = [];
      for (let k = 0; k < slice.length; k++) {
        const figures = figuresAt(packed, k);
        if (figures !== undefined) out.push({ meta: slice[k], figures });
      }
      yield out;
    }
  }
}

/** Up to `limit` queues per shard, walking the topology in turns until every shard has its fill. */
async function pick(ctx: BrokerContext, limit: number): Promise<QueueMeta[][]> {
  const byShard: QueueMeta[][] = ctx.shards.map(() => []);
  let open = byShard.length;
  let seen = 0;
  for (const meta of ctx.topology.queues()) {
    const list = byShard[meta.shard];
    if (list !== undefined && list.length < limit) {
      list.push(meta);
      if (list.length === limit && --open === 0) break;
    }
    if (++seen % PICK_PER_TURN === 0) await new Promise<void>((resolve) => setImmediate(resolve));
  }
  return byShard;
}
