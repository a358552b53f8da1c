/**
 * Client-ack deliveries awaiting ack or reject, by delivery tag.
 *
 * Tags are shard-wide unique, so one Map gives O(1) ack. Each consumer's slot also holds its own
 * tag → message map, so a consumer (or connection) going away requeues its messages without
 * scanning everyone else's. Keeps `consumer.unacked` in step with both.
 */
import type { ConsumerSlot } from './consumer-ring.js';
import type { MessageGauges } from './message-gauges.js';
import type { Consumer, StoredMessage } from './types.js';

export class UnackedDeliveries {
  /** Created at the first client-ack delivery: an auto-ack queue never needs it (an empty Map is ~180 bytes). */
  #owners: Map<number, ConsumerSlot> | null = null;
  /** The shard's totals this map counts into (null: none, or detached with its queue). */
  #gauges: MessageGauges | null;

  constructor(gauges: MessageGauges | null = null) {
    this.#gauges = gauges;
  }

  /** Stops counting into the shard's totals, taking these deliveries out of them (their queue is gone). */
  detachGauges(): void {
    if (this.#gauges !== null) this.#gauges.unacked -= this.size;
    this.#gauges = null;
  }

  get size(): number {
    return this.#owners === null ? 0 : this.#owners.size;
  }

  track(tag: number, message: StoredMessage, owner: ConsumerSlot): void {
    (this.#owners ??= new Map()).set(tag, owner);
    (owner.deliveries ??= new Map()).set(tag, message);
    owner.consumer.unacked++;
    if (this.#gauges !== null) this.#gauges.unacked++;
  }

  has(tag: number): boolean {
    return this.#owners?.has(tag) === true;
  }

  ownerOf(tag: number): Consumer | undefined {
    return this.#owners?.get(tag)?.consumer;
  }

  /** Forgets `tag` and returns its message; undefined if the tag is not tracked here. */
  take(tag: number): StoredMessage | undefined {
    const owner = this.#owners?.get(tag);
    if (owner === undefined) return undefined;
    this.#owners?.delete(tag);
    const deliveries = owner.deliveries as Map<number, StoredMessage>;
    const message = deliveries.get(tag) as StoredMessage;
    deliveries.delete(tag);
    owner.consumer.unacked--;
    if (this.#gauges !== null) this.#gauges.unacked--;
    return message;
  }

  /** Forgets every delivery of `owner`; appends their messages to `into`. */
  releaseOwner(owner: ConsumerSlot, into: StoredMessage[]): void {
    const deliveries = owner.deliveries;
    owner.consumer.unacked = 0;
    if (deliveries === null) return;
    if (this.#gauges !== null) this.#gauges.unacked -= deliveries.size;
    for (const [tag, message] of deliveries) {
      this.#owners?.delete(tag);
      into.push(message);
    }
    deliveries.clear();
  }
}
