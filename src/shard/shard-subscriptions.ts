import type { Consumer } from '../queue/types.js';
import { CounterSlot } from '../metrics/shard-counters.js';
import type { LocalQueue } from './local-queue.js';
import type { ShardOutbound } from './shard-outbound.js';
import { describeIn } from '../protocol/vhost-name.js';

export interface Subscription {
  readonly consumer: Consumer;
  readonly local: LocalQueue;
}

/**
 * The shard's consumers, by connection and subscription id, and the `consumers` gauge. The
 * record handlers attach and detach them to their queues (ShardCore); here is what touches
 * every subscription of a queue: cancelling them when it is deleted.
 */
export class ShardSubscriptions {
  readonly #outbound: ShardOutbound;
  readonly #counters: Float64Array;
  /** connectionId → subscriptionId → subscription */
  readonly #connections = new Map<number, Map<number, Subscription>>();
  /**
   * The same subscriptions by queue, so deleting a queue touches its own, not every one of the shard.
   * A queue with one (every topic subscription's) holds it alone: a Set each was ~150 bytes per idle subscription.
   */
  readonly #byQueue = new Map<LocalQueue, Subscription | Set<Subscription>>();

  constructor(outbound: ShardOutbound, counters: Float64Array) {
    this.#outbound = outbound;
    this.#counters = counters;
  }

  get(connectionId: number, subscriptionId: number): Subscription | undefined {
    return this.#connections.get(connectionId)?.get(subscriptionId);
  }

  /** The subscriptions of one connection. */
  of(connectionId: number): ReadonlyMap<number, Subscription> | undefined {
    return this.#connections.get(connectionId);
  }

  add(connectionId: number, subscriptionId: number, sub: Subscription): void {
    let subs = this.#connections.get(connectionId);
    if (subs === undefined) {
      subs = new Map();
      this.#connections.set(connectionId, subs);
    }
    subs.set(subscriptionId, sub);
    const ofQueue = this.#byQueue.get(sub.local);
    if (ofQueue === undefined) this.#byQueue.set(sub.local, sub);
    else if (ofQueue instanceof Set) ofQueue.add(sub);
    else if (ofQueue !== sub) this.#byQueue.set(sub.local, new Set([ofQueue, sub]));
    this.#counters[CounterSlot.consumers]++;
  }

  #unindex(sub: Subscription): void {
    const ofQueue = this.#byQueue.get(sub.local);
    if (ofQueue === sub) this.#byQueue.delete(sub.local);
    else if (ofQueue instanceof Set) {
      ofQueue.delete(sub);
      if (ofQueue.size === 0) this.#byQueue.delete(sub.local);
    }
  }

  /** Forgets one subscription and returns it (undefined when there was none). */
  remove(connectionId: number, subscriptionId: number): Subscription | undefined {
    const subs = this.#connections.get(connectionId);
    const sub = subs?.get(subscriptionId);
    if (subs === undefined || sub === undefined) return undefined;
    subs.delete(subscriptionId);
    if (subs.size === 0) this.#connections.delete(connectionId);
    this.#unindex(sub);
    this.#counters[CounterSlot.consumers]--;
    return sub;
  }

  /** Forgets every subscription of a connection and returns them (undefined when it had none). */
  removeConnection(connectionId: number): ReadonlyMap<number, Subscription> | undefined {
    const subs = this.#connections.get(connectionId);
    if (subs === undefined) return undefined;
    this.#connections.delete(connectionId);
    for (const sub of subs.values()) this.#unindex(sub);
    this.#counters[CounterSlot.consumers] -= subs.size;
    return subs;
  }

  /**
   * Why a consumer of `local` may not be added now, or null: an exclusive consumer wants the queue to
   * itself, and nobody may join one that has it (AMQP; basic.get's consumers do not count). A walk
   * over the queue's own consumers, once per subscribe.
   */
  exclusiveConflict(local: LocalQueue, exclusive: boolean): string | null {
    const ofQueue = this.#byQueue.get(local);
    if (ofQueue === undefined) return null;
    for (const sub of ofQueue instanceof Set ? ofQueue : [ofQueue]) {
      if (sub.consumer.get === true) continue;
      if (exclusive || sub.consumer.exclusive === true) return `${describeIn('queue', local.queue.name)} in exclusive use`;
    }
    return null;
  }

  /** The queue is being deleted: its consumers are removed from it and told (they get an error). */
  cancelConsumersOf(local: LocalQueue, reason: string): void {
    const { queue } = local;
    const ofQueue = this.#byQueue.get(local);
    if (ofQueue === undefined) return;
    this.#byQueue.delete(local);
    for (const sub of ofQueue instanceof Set ? ofQueue : [ofQueue]) {
      const { connectionId, subscriptionId } = sub.consumer;
      // Back to ready first, so the deleting code counts what the queue held in one place.
      queue.removeConsumer(connectionId, subscriptionId);
      const subs = this.#connections.get(connectionId);
      if (subs !== undefined && subs.get(subscriptionId) === sub) {
        subs.delete(subscriptionId);
        if (subs.size === 0) this.#connections.delete(connectionId);
      }
      this.#counters[CounterSlot.consumers]--;
      const message = `consumer cancelled: ${reason} ('${queue.name}')`;
      this.#outbound.error(connectionId, subscriptionId, 'consumer_cancelled', message);
    }
  }
}
