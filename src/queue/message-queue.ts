/**
 * One AMQP 0-9-1 queue: ready messages, consumers taking turns, unacked client-ack deliveries.
 *
 * Runs on the shard thread that owns the queue and imports nothing thread-related. It never
 * dispatches by itself: enqueue, ack, reject, addConsumer and consumer removal only change
 * state, and the caller runs dispatch() once per batch, when a delivery can have become
 * possible. That keeps one drain of the inbound ring to one dispatch pass per touched queue.
 *
 * RabbitMQ behaviour kept here: each message goes to exactly one consumer; consumers take turns,
 * skipping those at their prefetch limit or out of credit; requeued messages go back to their
 * original (seq) position with `redelivered` set; no-ack deliveries are forgotten on send.
 */
import { ConsumerRing, type ConsumerSlot } from './consumer-ring.js';
import { ReadyList } from './ready-list.js';
import type { Consumer, DeliverFn, QueueStats, StoredMessage } from './types.js';
import { UnackedDeliveries } from './unacked.js';

export class MessageQueue {
  readonly name: string;
  readonly #deliver: DeliverFn;
  readonly #allocateTag: () => number;
  readonly #ready = new ReadyList();
  readonly #consumers = new ConsumerRing();
  readonly #unacked = new UnackedDeliveries();
  readonly #stats: QueueStats = {
    delivered: 0,
    acked: 0,
    requeued: 0,
    dropped: 0,
    overflowed: 0,
    purged: 0,
  };

  constructor(name: string, deliver: DeliverFn, allocateTag: () => number) {
    this.name = name;
    this.#deliver = deliver;
    this.#allocateTag = allocateTag;
  }

  /** Ready messages (AMQP `message_count`). */
  get depth(): number {
    return this.#ready.length;
  }

  get consumerCount(): number {
    return this.#consumers.size;
  }

  get unackedCount(): number {
    return this.#unacked.size;
  }

  /** Payload bytes of the ready messages (not of unacked ones). */
  get readyBytes(): number {
    return this.#ready.bytes;
  }

  /** Running totals; the object is live, read it, do not write it. */
  get stats(): Readonly<QueueStats> {
    return this.#stats;
  }

  /** Adds a message at its seq position (an append for a fresh publish). Does not dispatch. */
  enqueue(message: StoredMessage): void {
    this.#ready.add(message);
  }

  /**
   * Delivers ready messages, oldest first, round robin over consumers with capacity. Stops when
   * nothing is ready, no consumer can take one, or the writer is full (that message stays first
   * and the consumer keeps its turn). Returns the deliveries made.
   */
  dispatch(): number {
    const ready = this.#ready;
    const consumers = this.#consumers;
    let made = 0;
    while (ready.length > 0) {
      const index = consumers.findEligible();
      if (index < 0) break;
      if (!this.#send(consumers.at(index), ready.peek() as StoredMessage)) break;
      ready.shift();
      consumers.passTurn(index);
      made++;
    }
    return made;
  }

  /**
   * Fast path for a fresh publish: if nothing is ready (so going first cannot overtake anyone)
   * and a consumer has capacity, returns the consumer whose turn it is and passes the turn on.
   * The caller must then deliver to it at once, with deliverNow() or, for auto-ack, by writing
   * the delivery itself and calling noteDirectDelivery(). Otherwise returns null: enqueue().
   */
  nextIdleConsumer(): Consumer | null {
    if (this.#ready.length > 0) return null;
    const index = this.#consumers.findEligible();
    if (index < 0) return null;
    this.#consumers.passTurn(index);
    return this.#consumers.at(index).consumer;
  }

  /**
   * Delivers `message` to `consumer` now (normally one from nextIdleConsumer()). If the writer is
   * full the message is enqueued at its position and false is returned; the turn is not given
   * back (the writer being full is no fault of that consumer), dispatch() later starts after it.
   */
  deliverNow(consumer: Consumer, message: StoredMessage): boolean {
    const slot = this.#consumers.slotOf(consumer);
    if (slot === undefined) {
      throw new Error(
        `queue ${this.name}: deliverNow to an unregistered consumer (connection ${consumer.connectionId}, subscription ${consumer.subscriptionId})`,
      );
    }
    if (this.#send(slot, message)) return true;
    this.#ready.add(message);
    return false;
  }

  /** Bookkeeping for an auto-ack delivery the caller wrote itself (credit, counters). */
  noteDirectDelivery(consumer: Consumer): void {
    // A client-ack delivery written behind the queue's back could never be acked or requeued.
    if (consumer.ackMode !== 'auto') {
      throw new Error(`queue ${this.name}: noteDirectDelivery is for auto-ack consumers; use deliverNow`);
    }
    consumer.credit--;
    this.#stats.delivered++;
  }

  /** Registers a consumer, last in the turn order. Throws if its (connection, subscription) is already here. */
  addConsumer(consumer: Consumer): void {
    this.#consumers.add(consumer);
  }

  /** Removes one consumer; returns how many of its unacked messages were requeued (redelivered = true). */
  removeConsumer(connectionId: number, subscriptionId: number): number {
    const slot = this.#consumers.find(connectionId, subscriptionId);
    if (slot === undefined) return 0;
    this.#consumers.remove(slot);
    return this.#requeueHeldBy([slot]);
  }

  /** Removes every consumer of a connection; returns how many unacked messages were requeued. */
  removeConnection(connectionId: number): number {
    return this.#requeueHeldBy(this.#consumers.removeConnection(connectionId));
  }

  hasConsumer(connectionId: number, subscriptionId: number): boolean {
    return this.#consumers.find(connectionId, subscriptionId) !== undefined;
  }

  /** false if `tag` is not an unacked delivery of this queue (e.g. an auto-ack one, or already settled). */
  ack(tag: number): boolean {
    if (this.#unacked.take(tag) === undefined) return false;
    this.#stats.acked++;
    return true;
  }

  /**
   * Reject/nack one delivery. Returns false for an unknown tag, null when the message was
   * requeued (redelivered = true, at its original position), and the message itself when it
   * was dropped, so the caller can dead-letter it.
   */
  reject(tag: number, requeue: boolean): StoredMessage | null | false {
    const message = this.#unacked.take(tag);
    if (message === undefined) return false;
    if (requeue) {
      message.redelivered = true;
      this.#ready.add(message);
      this.#stats.requeued++;
      return null;
    }
    this.#stats.dropped++;
    return message;
  }

  hasTag(tag: number): boolean {
    return this.#unacked.has(tag);
  }

  /** The consumer holding unacked delivery `tag`, so the shard can check the acking connection owns it. */
  tagOwner(tag: number): Consumer | undefined {
    return this.#unacked.ownerOf(tag);
  }

  /**
   * Drops the oldest ready message and returns it (undefined if none), for a length limit with
   * RabbitMQ's `drop-head` overflow: the caller may dead-letter it. Unacked messages are not
   * touched: they are not "in" the queue as far as its length goes.
   */
  dropHead(): StoredMessage | undefined {
    const message = this.#ready.shift();
    if (message !== undefined) this.#stats.overflowed++;
    return message;
  }

  /** Drops the ready messages (AMQP queue.purge leaves unacked ones alone); returns how many. */
  purge(): number {
    const count = this.#ready.clear();
    this.#stats.purged += count;
    return count;
  }

  /** Ready messages in delivery order (a copy; for tests and inspection, not the hot path). */
  readyMessages(): StoredMessage[] {
    return this.#ready.toArray();
  }

  /** One delivery attempt: tag, count, write, then credit and tracking only if the write happened. */
  #send(slot: ConsumerSlot, message: StoredMessage): boolean {
    const consumer = slot.consumer;
    const tag = this.#allocateTag();
    message.deliveryCount++;
    if (!this.#deliver(consumer, message, tag)) {
      // The tag is simply never used; tags only need to be unique, not dense.
      message.deliveryCount--;
      return false;
    }
    consumer.credit--;
    if (consumer.ackMode === 'client') this.#unacked.track(tag, message, slot);
    this.#stats.delivered++;
    return true;
  }

  #requeueHeldBy(slots: ConsumerSlot[]): number {
    const messages: StoredMessage[] = [];
    for (const slot of slots) this.#unacked.releaseOwner(slot, messages);
    for (const message of messages) message.redelivered = true;
    this.#ready.addMany(messages);
    this.#stats.requeued += messages.length;
    return messages.length;
  }
}
