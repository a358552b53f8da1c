import type { RingConsumer, RingProducer } from '../ring/spsc-ring.js';
import { CounterSlot } from '../metrics/shard-counters.js';
import type { ShardCore } from './shard-core.js';

/** Records handled per drain call; the outbound ring is committed once per such batch. */
const DRAIN_BATCH = 1024;
/** Batches in a row before the loop yields to the event loop (port messages, timers). */
const BATCHES_PER_TURN = 16;
/**
 * Spins before parking: docs/engine-notes.md §2 measured parks falling from ~8k to ~15 per 10M
 * records with a ~20k-load spin, at a cost of ~100-150 µs of CPU per idle moment.
 */
const SPIN_LOADS = 20_000;
/**
 * The spin pays only when records come back within it. A wait that ended in a park longer than
 * this (records arriving a millisecond apart, as at 10k msg/s in 1 ms batches) means the spin only
 * burnt a core the main thread needed for its own wake-up: the hop trace measured the shard → main
 * hop at ~100 µs with the spin and ~35 µs without. So the next wait parks at once, until a short
 * park shows records are coming fast again.
 */
const SPIN_WORTH_MS = 0.5;
/** Parking is bounded so timers and port messages run even when the ring is idle. */
const PARK_TIMEOUT_MS = 250;

/**
 * The shard's loop: drain the inbound ring in batches, commit the outbound ring once
 * per batch (one wake-up per batch for the main thread), park when idle.
 *
 * It parks with Atomics.waitAsync rather than Atomics.wait so the shard's event loop
 * keeps running (control messages, and the timers TTLs will need); the wake-up round trip
 * measured no different from a blocking wait's, within noise (docs/engine-notes.md §2).
 */
export class ShardLoop {
  readonly #core: ShardCore;
  readonly #in: RingConsumer;
  readonly #out: RingProducer;
  readonly #counters: Float64Array | null;
  #stopping = false;
  /** Loads to spin before the next park: SPIN_LOADS while records come fast, else 0 (see SPIN_WORTH_MS). */
  #spin = SPIN_LOADS;

  /** `counters`, when given, gets the parks of this loop (CounterSlot.parks). */
  constructor(core: ShardCore, inbound: RingConsumer, outbound: RingProducer, counters: Float64Array | null = null) {
    this.#core = core;
    this.#in = inbound;
    this.#out = outbound;
    this.#counters = counters;
  }

  stop(): void {
    this.#stopping = true;
  }

  async run(): Promise<void> {
    const core = this.#core;
    const onRecord = core.onRecord;
    let batches = 0;
    /** A commit since the last wait woke the main thread (it was parked on the outbound ring). */
    let wokeMain = false;
    while (!this.#stopping) {
      if (core.blocked) {
        // Output first: reading more input while the main thread cannot take our output
        // would only pile it up in memory.
        const flushed = core.flushPending();
        this.#out.commit();
        if (!flushed) {
          await this.#out.waitForSpace(PARK_TIMEOUT_MS);
          continue;
        }
      }
      const n = this.#in.drain(onRecord, DRAIN_BATCH);
      core.endBatch();
      if (this.#out.commit()) wokeMain = true;
      if (n > 0) {
        if (++batches >= BATCHES_PER_TURN) {
          batches = 0;
          await yieldToEventLoop();
        }
        continue;
      }
      batches = 0;
      const parks = this.#in.parks;
      const waitFrom = performance.now();
      // Not right after waking the main thread: it may have been queued on this core, and a spin
      // would hold it there for the spin's length (docs/engine-notes.md §2, "A wake-up's tail").
      // Under load the main thread is busy, not parked, so commits rarely wake it and the spin stays.
      await this.#in.waitForDataAsync(PARK_TIMEOUT_MS, wokeMain ? 0 : this.#spin);
      wokeMain = false;
      const parked = this.#in.parks - parks;
      if (parked > 0) {
        this.#spin = performance.now() - waitFrom < SPIN_WORTH_MS ? SPIN_LOADS : 0;
        if (this.#counters !== null) this.#counters[CounterSlot.parks] += parked;
      }
    }
    this.#out.commit();
  }
}

function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
