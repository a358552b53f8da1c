/**
 * The consumers of one queue in round-robin order, plus lookups by identity and by connection.
 *
 * Round robin is positional: consumers sit in the order they were added and a turn pointer
 * walks over them, skipping those without capacity. That gives exact alternation (A, B, C, A…)
 * and a consumer that regains capacity keeps its place rather than going to the back.
 * Finding the next eligible consumer scans at most the whole list, so when most consumers are
 * blocked a delivery costs O(consumers); fine for the consumer counts a queue sees.
 */
import type { Consumer, StoredMessage } from './types.js';

/** The queue's own record of one consumer. */
export interface ConsumerSlot {
  readonly consumer: Consumer;
  /** Unacked client-ack deliveries of this consumer: tag → message (created at its first one). */
  deliveries: Map<number, StoredMessage> | null;
}

/** Can `consumer` take one more delivery now? (credit, and prefetch for client-ack; AMQP ignores prefetch for no-ack.) */
export function hasCapacity(consumer: Consumer): boolean {
  // Written as !(x > 0) so a NaN credit (a caller bug) blocks the consumer instead of unleashing it.
  if (!(consumer.credit > 0) || !(consumer.creditBytes > 0)) return false;
  return consumer.ackMode === 'auto' || consumer.prefetch === 0 || consumer.unacked < consumer.prefetch;
}

/**
 * Lookups by identity and connection are a scan of the slots up to this many consumers, maps past
 * it: most queues have one consumer (every topic subscription is one), and two empty Maps were
 * ~370 bytes of each.
 */
const INDEX_FROM = 8;

export class ConsumerRing {
  #slots: ConsumerSlot[] = [];
  /** Index of the consumer whose turn it is. */
  #turn = 0;
  /** Present while the ring has more than INDEX_FROM / 2 consumers (built past INDEX_FROM). */
  #byConsumer: Map<Consumer, ConsumerSlot> | null = null;
  #byConnection: Map<number, Map<number, ConsumerSlot>> | null = null;

  get size(): number {
    return this.#slots.length;
  }

  /** Appends `consumer` (last in the turn order). Throws if the same (connection, subscription) is present. */
  add(consumer: Consumer): ConsumerSlot {
    if (this.find(consumer.connectionId, consumer.subscriptionId) !== undefined) {
      throw new Error(`consumer already registered (connection ${consumer.connectionId}, subscription ${consumer.subscriptionId})`);
    }
    const slot: ConsumerSlot = { consumer, deliveries: null };
    // A first push would give the array room for 17 (~150 bytes per idle one-consumer queue).
    if (this.#slots.length === 0) this.#slots = [slot];
    else this.#slots.push(slot);
    if (this.#byConsumer !== null) this.#index(slot);
    else if (this.#slots.length > INDEX_FROM) {
      this.#byConsumer = new Map();
      this.#byConnection = new Map();
      for (const each of this.#slots) this.#index(each);
    }
    return slot;
  }

  find(connectionId: number, subscriptionId: number): ConsumerSlot | undefined {
    if (this.#byConnection !== null) return this.#byConnection.get(connectionId)?.get(subscriptionId);
    for (const slot of this.#slots) {
      if (slot.consumer.connectionId === connectionId && slot.consumer.subscriptionId === subscriptionId) return slot;
    }
    return undefined;
  }

  slotOf(consumer: Consumer): ConsumerSlot | undefined {
    if (this.#byConsumer !== null) return this.#byConsumer.get(consumer);
    for (const slot of this.#slots) if (slot.consumer === consumer) return slot;
    return undefined;
  }

  at(index: number): ConsumerSlot {
    return this.#slots[index];
  }

  /** Removes one consumer; the turn stays with the consumer that had it (or the next one). */
  remove(slot: ConsumerSlot): void {
    this.#removeWhere((candidate) => candidate === slot);
  }

  /** Removes every consumer of `connectionId` and returns their slots. */
  removeConnection(connectionId: number): ConsumerSlot[] {
    const removed =
      this.#byConnection !== null
        ? [...(this.#byConnection.get(connectionId)?.values() ?? [])]
        : this.#slots.filter((slot) => slot.consumer.connectionId === connectionId);
    if (removed.length === 0) return [];
    this.#removeWhere((candidate) => candidate.consumer.connectionId === connectionId);
    return removed;
  }

  /** Index of the first consumer with capacity, starting at the turn; -1 if none. Does not move the turn. */
  findEligible(): number {
    const slots = this.#slots;
    const count = slots.length;
    let index = this.#turn;
    for (let scanned = 0; scanned < count; scanned++) {
      if (hasCapacity(slots[index].consumer)) return index;
      index = index + 1 === count ? 0 : index + 1;
    }
    return -1;
  }

  /** The consumer at `index` has had its turn: the next one is after it. */
  passTurn(index: number): void {
    this.#turn = index + 1 >= this.#slots.length ? 0 : index + 1;
  }

  #index(slot: ConsumerSlot): void {
    (this.#byConsumer as Map<Consumer, ConsumerSlot>).set(slot.consumer, slot);
    const byConnection = this.#byConnection as Map<number, Map<number, ConsumerSlot>>;
    let subscriptions = byConnection.get(slot.consumer.connectionId);
    if (subscriptions === undefined) byConnection.set(slot.consumer.connectionId, (subscriptions = new Map()));
    subscriptions.set(slot.consumer.subscriptionId, slot);
  }

  /** One pass that keeps the order, drops matches from the lookups and re-aims the turn. */
  #removeWhere(matches: (slot: ConsumerSlot) => boolean): void {
    const kept: ConsumerSlot[] = [];
    let turn = this.#turn;
    for (let i = 0; i < this.#slots.length; i++) {
      const slot = this.#slots[i];
      if (!matches(slot)) {
        kept.push(slot);
        continue;
      }
      // A removed consumer before the turn shifts the turn's consumer one place left.
      if (i < this.#turn) turn--;
      this.#byConsumer?.delete(slot.consumer);
      const subscriptions = this.#byConnection?.get(slot.consumer.connectionId);
      if (subscriptions !== undefined) {
        subscriptions.delete(slot.consumer.subscriptionId);
        if (subscriptions.size === 0) this.#byConnection?.delete(slot.consumer.connectionId);
      }
    }
    this.#slots = kept;
    this.#turn = turn >= kept.length ? 0 : turn;
    // Back to scans well below the mark, so a ring hovering at it does not rebuild its maps each time.
    if (this.#byConsumer !== null && kept.length <= INDEX_FROM / 2) {
      this.#byConsumer = null;
      this.#byConnection = null;
    }
  }
}
