import { describe, expect, it } from 'vitest';
import { listedQueues, LISTED_SLICE } from '../../src/front/listed-queues.js';
import { Topology } from '../../src/control/topology.js';
import { packFigures } from '../../src/shard/queue-figures.js';
import type { BrokerContext } from '../../src/front/context.js';

const OPTIONS = { durable: false, exclusive: false, autoDelete: false, arguments: {} };

/** A context of `shards` shards whose queues are `depths` (name → depth), with the figures calls it got. */
function context(shards: number, depths: Map<string, number>, down: ReadonlySet<number> = new Set()) {
  const topology = new Topology(shards);
  const asked: Array<{ shard: number; names: readonly string[] }> = [];
  const ctx = {
    shards: Array.from({ length: shards }, (_, index) => ({ index })),
    topology,
    supervisor: {
      queueFigures: async (shard: number, names: readonly string[]) => {
        asked.push({ shard, names });
        if (down.has(shard)) return null;
        return packFigures(names, (name) => {
          const depth = depths.get(name);
          if (depth === undefined) return undefined;
          const stats = { published: depth, delivered: 0, acked: 0 } as never;
          return { depth, consumerCount: 1, unackedCount: 2, readyBytes: depth * 10, stats };
        });
      },
    },
  } as unknown as BrokerContext;
  return { ctx, topology, asked };
}

async function collect(ctx: BrokerContext, limit: number) {
  const out: Array<{ name: string; shard: number; depth: number; slice: number }> = [];
  let slice = 0;
  for await (const s of listedQueues(ctx, limit)) {
    for (const q of s) out.push({ name: q.meta.name, shard: q.meta.shard, depth: q.figures.depth, slice });
    slice++;
  }
  return out;
}

describe('listedQueues', () => {
  it('lists at most `limit` queues per shard, shard by shard in declaration order, each once, with its figures', async () => {
    const depths = new Map<string, number>();
    const { ctx, topology, asked } = context(3, depths);
    for (let i = 0; i < 1000; i++) {
      const name = `q-${i}`;
      depths.set(name, i);
      topology.declareQueue(name, OPTIONS, false, 0);
    }
    const listed = await collect(ctx, 120);
    for (const shard of [0, 1, 2]) {
      const mine = listed.filter((q) => q.shard === shard).map((q) => q.name);
      const expected = topology
        .listQueues()
        .filter((m) => m.shard === shard)
        .slice(0, 120)
        .map((m) => m.name);
      expect(mine).toEqual(expected);
    }
    expect(listed.map((q) => q.shard)).toEqual([...listed.map((q) => q.shard)].sort());
    for (const q of listed) expect(q.depth).toBe(depths.get(q.name));
    // Asked in slices of at most LISTED_SLICE names, each to the queue's own shard.
    for (const a of asked) {
      expect(a.names.length).toBeLessThanOrEqual(LISTED_SLICE);
      for (const name of a.names) expect(topology.getQueue(name)?.shard).toBe(a.shard);
    }
    expect(asked.length).toBe(3 * Math.ceil(120 / LISTED_SLICE));
  });

  it('leaves out a queue its shard does not have and the queues of a shard that does not answer', async () => {
    const depths = new Map<string, number>();
    const { ctx, topology } = context(2, depths, new Set([1]));
    for (let i = 0; i < 50; i++) {
      topology.declareQueue(`q-${i}`, OPTIONS, false, 0);
      if (i !== 7) depths.set(`q-${i}`, 1); // q-7: declared on the main thread, not (yet) on its shard
    }
    const listed = await collect(ctx, 1000);
    const onShard0 = topology
      .listQueues()
      .filter((m) => m.shard === 0 && m.name !== 'q-7')
      .map((m) => m.name);
    expect(listed.map((q) => q.name)).toEqual(onShard0);
  });

  it('asks nothing for a limit of 0', async () => {
    const { ctx, topology, asked } = context(2, new Map([['a', 1]]));
    topology.declareQueue('a', OPTIONS, false, 0);
    expect(await collect(ctx, 0)).toEqual([]);
    expect(asked).toEqual([]);
  });

  it('walks a topology far larger than the listing without asking for more than it lists', async () => {
    const depths = new Map<string, number>();
    const { ctx, topology, asked } = context(1, depths);
    for (let i = 0; i < 20_000; i++) {
      depths.set(`q-${i}`, 0);
      topology.declareQueue(`q-${i}`, OPTIONS, false, 0);
    }
    const listed = await collect(ctx, 250);
    expect(listed).toHaveLength(250);
    expect(asked.reduce((n, a) => n + a.names.length, 0)).toBe(250);
  });
});
