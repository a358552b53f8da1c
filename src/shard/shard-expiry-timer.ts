import type { ExpiryScheduler } from '../queue/expiry-scheduler.js';
import type { LocalQueue } from './local-queue.js';
import type { ShardOutbound } from './shard-outbound.js';

/**
 * Message TTLs: one timer for the whole shard, at the earliest deadline the expiry wheel knows.
 * When it fires, expired messages leave (dead-lettered or dropped) and the queues hand out what
 * is ready, outside the shard loop's batches.
 */
export class ShardExpiryTimer {
  readonly #expiry: ExpiryScheduler;
  readonly #queues: ReadonlyMap<string, LocalQueue>;
  readonly #outbound: ShardOutbound;
  readonly #now: () => number;
  #timer: NodeJS.Timeout | null = null;
  #at = Infinity;

  constructor(expiry: ExpiryScheduler, queues: ReadonlyMap<string, LocalQueue>, outbound: ShardOutbound, now: () => number) {
    this.#expiry = expiry;
    this.#queues = queues;
    this.#outbound = outbound;
    this.#now = now;
  }

  /** Arms (or moves earlier) the timer for the wheel's next deadline; called after every batch. */
  arm(): void {
    const at = this.#expiry.nextDeadline();
    if (at === Infinity || at >= this.#at) return;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#at = at;
    this.#timer = setTimeout(this.#onTimer, Math.max(0, at - this.#now()));
  }

  stop(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }

  readonly #onTimer = (): void => {
    this.#timer = null;
    this.#at = Infinity;
    this.#expiry.run(this.#now());
    this.#outbound.republishDeadLetters();
    for (const local of this.#queues.values()) if (local.queue.depth > 0) this.#outbound.dispatch(local.queue);
    this.#outbound.commit();
    this.arm();
  };
}
