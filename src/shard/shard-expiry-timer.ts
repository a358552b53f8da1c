import type { ExpiryScheduler } from '../queue/expiry-scheduler.js';
import type { MessageQueue } from '../queue/message-queue.js';
import type { LocalQueue } from './local-queue.js';
import type { ShardOutbound } from './shard-outbound.js';

/**
 * Message TTLs: one timer for the whole shard, at the earliest deadline the expiry wheel knows.
 * When it fires, expired messages leave (dead-lettered or dropped) and the queues hand out what
 * is ready, outside the shard loop's batches.
 */
/**
 * The longest delay setTimeout takes (2^31 - 1 ms, ~24.8 days). Node turns a longer one into 1 ms,
 * which would re-arm every millisecond until a far deadline (an expiration up to 2^32 - 1 ms is
 * legal); a capped timer that fires early finds nothing due and re-arms for the rest.
 */
const MAX_TIMER_DELAY_MS = 0x7fff_ffff;

export class ShardExpiryTimer {
  readonly #expiry: ExpiryScheduler;
  readonly #queues: ReadonlyMap<string, LocalQueue>;
  readonly #outbound: ShardOutbound;
  readonly #now: () => number;
  #timer: NodeJS.Timeout | null = null;
  #at = Infinity;
  readonly #checked: MessageQueue[] = [];

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
    const delay = at - this.#now();
    this.#timer = setTimeout(this.#onTimer, delay <= 0 ? 0 : delay > MAX_TIMER_DELAY_MS ? MAX_TIMER_DELAY_MS : delay);
  }

  stop(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }

  readonly #onTimer = (): void => {
    this.#timer = null;
    this.#at = Infinity;
    // Only the queues the wheel checked can have changed: an expired head may uncover messages a
    // consumer can take. (A walk over every queue here made each TTL tick cost every queue.)
    const checked = this.#checked;
    this.#expiry.run(this.#now(), (queue) => checked.push(queue));
    this.#outbound.republishDeadLetters();
    for (let i = 0; i < checked.length; i++) {
      const queue = checked[i];
      if (queue.depth > 0 && this.#queues.get(queue.name)?.queue === queue) this.#outbound.dispatch(queue);
    }
    checked.length = 0;
    this.#outbound.commit();
    this.arm();
  };
}
