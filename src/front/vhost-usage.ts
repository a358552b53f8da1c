/**
 * What each vhost holds: its queues' ready and unacknowledged messages and ready bytes, from the
 * owning shards' packed figures (shard/queue-figures.ts). A management call (GET /v1/vhosts) and
 * the byte budget's sampler use it; it walks the asked vhosts' queues, never the message path.
 */
import type { BrokerContext } from './context.js';
import { figuresAt } from '../shard/queue-figures.js';

export interface VhostUsage {
  queues: number;
  ready: number;
  unacked: number;
  readyBytes: number;
}

/** Names asked of one shard at a time: one reply stays a few hundred kilobytes. */
const NAMES_PER_ASK = 4096;

/** The usage of each vhost in `prefixes` (by prefix); a shard that is down counts as holding nothing. */
export async function vhostUsage(ctx: BrokerContext, prefixes: readonly string[]): Promise<Map<string, VhostUsage>> {
  const out = new Map<string, VhostUsage>();
  const byShard = new Map<number, { names: string[]; prefixes: string[] }>();
  for (const prefix of prefixes) {
    const names = ctx.topology.sortedQueueNamesIn(prefix);
    out.set(prefix, { queues: names.length, ready: 0, unacked: 0, readyBytes: 0 });
    for (const name of names) {
      const shard = ctx.topology.getQueue(name)?.shard;
      if (shard === undefined || shard < 0) continue;
      let part = byShard.get(shard);
      if (part === undefined) byShard.set(shard, (part = { names: [], prefixes: [] }));
      part.names.push(name);
      part.prefixes.push(prefix);
    }
  }
  await Promise.all(
    [...byShard].map(async ([shard, part]) => {
      for (let from = 0; from < part.names.length; from += NAMES_PER_ASK) {
        const names = part.names.slice(from, from + NAMES_PER_ASK);
        const packed = await ctx.supervisor.queueFigures(shard, names);
        if (packed === null) continue;
        for (let i = 0; i < names.length; i++) {
          const f = figuresAt(packed, i);
          if (f === undefined) continue;
          const u = out.get(part.prefixes[from + i]) as VhostUsage;
          u.ready += f.depth;
          u.unacked += f.unacked;
          u.readyBytes += f.readyBytes;
        }
      }
    }),
  );
  return out;
}

/** How often the byte budgets are checked: a vhost may overshoot by what arrives in one period. */
export const BUDGET_SAMPLE_MS = 500;

/**
 * Keeps each vhost's `overBudget` flag (publishes refused) from samples of its queues' ready
 * bytes, for the vhosts that have a max-queued-bytes; the others cost nothing. Sampling, not
 * per-message accounting: the publish path reads one flag, and only the budgeted vhosts' queues
 * are walked, twice a second.
 */
export class VhostBudgets {
  readonly #ctx: BrokerContext;
  #timer: NodeJS.Timeout | null = null;
  #running = false;

  constructor(ctx: BrokerContext) {
    this.#ctx = ctx;
  }

  start(): void {
    if (this.#timer !== null) return;
    this.#timer = setInterval(() => void this.sample(), BUDGET_SAMPLE_MS);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }

  /** One round: every budgeted vhost's ready bytes, and its flag flipped when it crossed its budget. */
  async sample(): Promise<void> {
    if (this.#running) return;
    const budgeted = this.#ctx.vhosts.list().filter((v) => v.limits.maxQueuedBytes !== null);
    if (budgeted.length === 0) return;
    this.#running = true;
    try {
      const usage = await vhostUsage(
        this.#ctx,
        budgeted.map((v) => v.prefix),
      );
      for (const v of budgeted) {
        const max = v.limits.maxQueuedBytes;
        if (max === null || v.deleted) continue;
        v.queuedBytes = usage.get(v.prefix)?.readyBytes ?? 0;
        const over = v.queuedBytes > max;
        if (over === v.overBudget) continue;
        v.overBudget = over;
        if (over)
          this.#ctx.log.warn({ vhost: v.name, bytes: v.queuedBytes, max }, 'vhost over its max-queued-bytes: refusing its publishes');
        else this.#ctx.log.info({ vhost: v.name, bytes: v.queuedBytes, max }, 'vhost back under its max-queued-bytes');
      }
    } finally {
      this.#running = false;
    }
  }
}
