/**
 * Queue rows of the management API (`GET /v1/queues`, a page, one queue), written as JSON text
 * straight from the main thread's topology (name, shard, flags, arguments) and the owning shard's
 * packed figures (shard/queue-figures.ts). Text rather than objects handed to JSON.stringify: a walk
 * of 100,000 queues is 100,000 rows, built on the main thread between deliveries, so each costs a
 * few string concatenations and no intermediate objects.
 */
import type { BrokerContext } from './context.js';
import type { QueueMeta } from '../control/topology.js';
import { localName, vhostOf } from '../protocol/vhost-name.js';
import { FIGURE_STAT_KEYS, figuresAt, type QueueFigures } from '../shard/queue-figures.js';

/** Rates are computed against the previous sample when it is at most this old. */
const RATE_WINDOW_MS = 60_000;
/** Samples between two sweeps of the rate memory (entries of deleted or long-unlisted queues). */
const RATE_SWEEP_EVERY = 10_000;

/** `"published":0,"delivered":0,…`: the keys are fixed, so their quoted forms are made once. */
const STAT_PREFIXES = FIGURE_STAT_KEYS.map((key, k) => `${k === 0 ? '' : ','}${JSON.stringify(key)}:`);

/**
 * The rows of the queues in `names` that still exist, in order, as JSON texts; each shard is asked
 * once for the figures of its own queues among them.
 */
export async function queueRows(ctx: BrokerContext, rates: RateSampler, names: readonly string[]): Promise<string[]> {
  const metas: QueueMeta[] = [];
  // Per shard: its names among these, then its packed reply, read in the same order.
  const byShard = new Map<number, { names: string[]; figures: Float64Array | null; next: number }>();
  for (const name of names) {
    const meta = ctx.topology.getQueue(name);
    if (meta === undefined) continue;
    metas.push(meta);
    const part = byShard.get(meta.shard);
    if (part === undefined) byShard.set(meta.shard, { names: [name], figures: null, next: 0 });
    else part.names.push(name);
  }
  await Promise.all(
    [...byShard].map(async ([shard, part]) => {
      part.figures = await ctx.supervisor.queueFigures(shard, part.names);
    }),
  );
  return metas.map((meta) => {
    const part = byShard.get(meta.shard) as { figures: Float64Array | null; next: number };
    const at = part.next++;
    // A shard that is down answers nothing: the queue is listed with zero figures.
    return queueRow(meta, part.figures === null ? undefined : figuresAt(part.figures, at), rates);
  });
}

function queueRow(meta: QueueMeta, f: QueueFigures | undefined, rates: RateSampler): string {
  const depth = f?.depth ?? 0;
  const unacked = f?.unacked ?? 0;
  let stats = '{}';
  let rate = '{"deliver_per_s":0,"ack_per_s":0}';
  if (f !== undefined) {
    stats = statsJson(f);
    rate = rates.sample(meta.name, f.stat(DELIVERED), f.stat(ACKED));
  }
  return (
    `{"name":${JSON.stringify(localName(meta.name))},"vhost":${JSON.stringify(vhostOf(meta.name))},"shard":${meta.shard},"durable":${meta.durable},"exclusive":${meta.exclusive},` +
    `"auto_delete":${meta.autoDelete},"arguments":${JSON.stringify(meta.arguments)},"messages":${num(depth + unacked)},` +
    `"messages_ready":${num(depth)},"messages_unacknowledged":${num(unacked)},"consumers":${num(f?.consumers ?? 0)},` +
    `"message_bytes_ready":${num(f?.readyBytes ?? 0)},"stats":${stats},"rates":${rate}}`
  );
}

/** A queue's stats as the JSON object `{"published":…,"delivered":…,…}`, straight from its packed figures. */
export function statsJson(f: QueueFigures): string {
  let stats = '{';
  for (let k = 0; k < STAT_PREFIXES.length; k++) stats += STAT_PREFIXES[k] + num(f.stat(k));
  return `${stats}}`;
}

const DELIVERED = FIGURE_STAT_KEYS.indexOf('delivered');
const ACKED = FIGURE_STAT_KEYS.indexOf('acked');

function num(n: number): string {
  return Number.isFinite(n) ? String(n) : 'null';
}

/**
 * Per-queue rates from the difference between two successive listings. A queue that has never
 * delivered nor been acked has rate 0 and is not remembered (a walk of 100,000 idle queues leaves
 * nothing behind); the memory is swept of entries older than the window every RATE_SWEEP_EVERY
 * samples, so deleted queues do not pile up.
 */
export class RateSampler {
  readonly #last = new Map<string, { at: number; delivered: number; acked: number }>();
  #samples = 0;

  /** `{"deliver_per_s":…,"ack_per_s":…}` since the previous sample of `name`. */
  sample(name: string, delivered: number, acked: number): string {
    const now = Date.now();
    if (++this.#samples % RATE_SWEEP_EVERY === 0) this.#sweep(now);
    const prev = this.#last.get(name);
    if (delivered === 0 && acked === 0 && prev === undefined) return '{"deliver_per_s":0,"ack_per_s":0}';
    this.#last.set(name, { at: now, delivered, acked });
    if (prev === undefined || now - prev.at > RATE_WINDOW_MS || now === prev.at) return '{"deliver_per_s":0,"ack_per_s":0}';
    const dt = (now - prev.at) / 1000;
    return `{"deliver_per_s":${num((delivered - prev.delivered) / dt)},"ack_per_s":${num((acked - prev.acked) / dt)}}`;
  }

  /** Queues remembered (tests). */
  get size(): number {
    return this.#last.size;
  }

  #sweep(now: number): void {
    for (const [name, s] of this.#last) if (now - s.at > RATE_WINDOW_MS) this.#last.delete(name);
  }
}
