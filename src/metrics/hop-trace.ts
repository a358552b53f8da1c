/**
 * Where a message's time goes inside the broker, hop by hop, for a sample of publishes.
 *
 * One publish in `--latency-sample` that goes straight into its shard's ring is followed there by
 * a `trace` record with its front-in time; the shard stamps when it picked up the batch holding it
 * (shard-in) and when its deliveries were written (shard-out), and writes a `traced` record right
 * behind them; the main thread stamps when it read that record and, at the end of the chunk, when
 * the chunk's deliveries were handed to the sockets. All stamps are on the machine-wide monotonic
 * clock (clock.ts). A publish with no subscriber still measures the way in and out.
 *
 * The sampling costs one decrement per publish; a sampled one costs two small ring records.
 */
import { monotonicMs } from './clock.js';
import { type ExportedHistogram, LatencyHistogram } from './latency-histogram.js';

export const HOPS = {
  inbound: "front → shard: the main thread's end-of-turn commit, the inbound ring, the shard's wake-up",
  shard: 'in the shard: the records ahead in its batch, routing, writing the deliveries',
  outbound: "shard → front: the rest of the shard's batch, its commit, the outbound ring, the main thread's wake-up",
  frontOut: 'front out: the rest of the chunk, encoding, the socket write',
  total: 'front-in → handed to the socket',
} as const;
export type HopName = keyof typeof HOPS;
export const HOP_NAMES = Object.keys(HOPS) as HopName[];

export interface HopSummary extends ExportedHistogram {
  readonly p50: number | null;
  readonly p90: number | null;
  readonly p99: number | null;
  readonly p999: number | null;
}

export interface HopTraceExport {
  /** One publish in this many is traced (0: tracing is off). */
  readonly sampleEvery: number;
  /** Traced publishes whose deliveries reached the sockets. */
  readonly traced: number;
  /** Microseconds per hop. */
  readonly hops: Record<HopName, HopSummary>;
}

const finite = (x: number): number | null => (Number.isFinite(x) ? x : null);

export class HopTrace {
  readonly sampleEvery: number;
  readonly #hops: Record<HopName, LatencyHistogram>;
  #countdown: number;
  #traced = 0;
  /** Front-in, shard-in, shard-out and read times of the traced records of the current chunk. */
  readonly #pending: number[] = [];

  constructor(sampleEvery: number) {
    if (!Number.isInteger(sampleEvery) || sampleEvery < 0) throw new RangeError(`sampleEvery must be an integer ≥ 0 (got ${sampleEvery})`);
    this.sampleEvery = sampleEvery;
    this.#countdown = sampleEvery;
    this.#hops = {
      inbound: new LatencyHistogram(),
      shard: new LatencyHistogram(),
      outbound: new LatencyHistogram(),
      frontOut: new LatencyHistogram(),
      total: new LatencyHistogram(),
    };
  }

  /** A publish was written straight into a ring: true when it is one to trace. */
  due(): boolean {
    if (this.sampleEvery === 0 || --this.#countdown > 0) return false;
    this.#countdown = this.sampleEvery;
    return true;
  }

  /** A `traced` record was read from a shard's ring. */
  read(frontInMs: number, shardInMs: number, shardOutMs: number): void {
    this.#pending.push(frontInMs, shardInMs, shardOutMs, monotonicMs());
  }

  /** The chunk's deliveries were handed to the sockets: its traced publishes are complete. */
  chunkEnd(): void {
    const p = this.#pending;
    if (p.length === 0) return;
    const written = monotonicMs();
    const h = this.#hops;
    for (let i = 0; i < p.length; i += 4) {
      h.inbound.record((p[i + 1] - p[i]) * 1000);
      h.shard.record((p[i + 2] - p[i + 1]) * 1000);
      h.outbound.record((p[i + 3] - p[i + 2]) * 1000);
      h.frontOut.record((written - p[i + 3]) * 1000);
      h.total.record((written - p[i]) * 1000);
      this.#traced++;
    }
    p.length = 0;
  }

  export(): HopTraceExport {
    const hops = {} as Record<HopName, HopSummary>;
    for (const name of HOP_NAMES) {
      const h = this.#hops[name];
      hops[name] = {
        ...h.export(),
        p50: finite(h.percentile(50)),
        p90: finite(h.percentile(90)),
        p99: finite(h.percentile(99)),
        p999: finite(h.percentile(99.9)),
      };
    }
    return { sampleEvery: this.sampleEvery, traced: this.#traced, hops };
  }
}
