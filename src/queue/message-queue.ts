/**
 * One AMQP 0-9-1 queue: ready messages, consumers taking turns, unacked client-ack deliveries,
 * and the RabbitMQ queue arguments (TTL, length limits, priority, delivery limit, dead-lettering).
 *
 * Runs on the shard thread that owns the queue and imports nothing thread-related. It never
 * dispatches by itself: enqueue, ack, reject, addConsumer and consumer removal only change
 * state, and the caller runs dispatch() once per batch, when a delivery can have become
 * possible. That keeps one drain of the inbound ring to one dispatch pass per touched queue.
 *
 * RabbitMQ behaviour kept here: each message goes to exactly one consumer; consumers take turns,
 * skipping those at their prefetch limit or out of credit; requeued messages go back to their
 * original (seq) position with `redelivered` set; no-ack deliveries are forgotten on send.
 *
 * Queue arguments (parsed by parseQueueArguments; classic-queue semantics unless noted):
 *   - x-max-length / x-max-length-bytes count READY messages (payload bytes) only. drop-head:
 *     after a publish or a requeue, the head is dropped (dead-lettered, reason maxlen) until the
 *     queue is within its limits. reject-publish: enqueue() refuses a publish that would go over
 *     and returns 'rejected'; reject-publish-dlx also dead-letters the refused message (maxlen).
 *   - x-max-priority: higher `properties.priority` first, FIFO within a priority (see
 *     PriorityReadyList). "The head" is then the next message to deliver, so drop-head drops the
 *     oldest message of the highest priority, as RabbitMQ does.
 *   - x-message-ttl and per-message `expiration`: expiresAt is stamped at publish (lower wins)
 *     and kept through requeues. An expired message is never delivered: dispatch() drops it
 *     when it reaches the head, expire(now) drops expired heads when the owner's timer fires
 *     (timely dead-lettering), a TTL of 0 expires on arrival unless delivered at once.
 *     Unacked messages do not expire.
 *   - x-delivery-limit (quorum-queue semantics): a message returned (nack/reject with requeue,
 *     or its consumer going away) more times than the limit is dead-lettered (delivery_limit)
 *     instead of requeued, so it is delivered at most limit + 1 times. Returned messages carry
 *     an `x-delivery-count` header (returns so far) while a limit is set.
 *   - x-expires: the queue only tracks when it was last used (idleDeadline()); the shard deletes it.
 *   - x-dead-letter-exchange / -routing-key: dead-lettered copies (see dead-letter.ts) go to
 *     options.onDeadLetter; without a DLX (or without the callback) such messages are dropped,
 *     counted in the stats either way.
 * With no arguments none of this costs anything on the hot paths: no priority levels, no clock
 * reads, no expiry bookkeeping.
 */
import { ConsumerRing, type ConsumerSlot } from './consumer-ring.js';
import { deadLetterMessage, deadLetterTarget, type DeadLetterTarget } from './dead-letter.js';
import { PriorityReadyList } from './priority-ready-list.js';
import { NO_QUEUE_ARGUMENTS, parseExpiration, type QueueArguments } from './queue-arguments.js';
import { ReadyList } from './ready-list.js';
import type {
  Consumer,
  DeadLetterReason,
  DeliverFn,
  EnqueueResult,
  HeaderValue,
  MessageProperties,
  QueueStats,
  StoredMessage,
} from './types.js';
import { UnackedDeliveries } from './unacked.js';
import type { MessageGauges } from './message-gauges.js';

/**
 * Receives a dead-lettered copy (addressed to the DLX: publish it to `message.exchange` with
 * `message.routingKey`). Called synchronously from inside queue operations, so, like DeliverFn,
 * it must not call back into this queue: collect the copies and route them afterwards (and drop
 * dead-letter cycles, see isDeadLetterCycle).
 */
export type DeadLetterFn = (message: StoredMessage, reason: DeadLetterReason) => void;

export interface MessageQueueOptions {
  /** Parsed x- arguments (parseQueueArguments); none by default. */
  readonly arguments?: QueueArguments;
  /** The clock (ms) for TTLs, x-death times and idle tracking; Date.now by default. */
  readonly now?: () => number;
  /** Where dead-lettered copies go; without it nothing is dead-lettered (messages are dropped). */
  readonly onDeadLetter?: DeadLetterFn;
  /**
   * Called when this queue's nextExpiry() becomes earlier than any time it reported before and
   * that has not passed: the owner should call expire(now) at or after `at` (one shard-wide
   * TtlWheel; see ExpiryScheduler). Re-reported after each expire() while messages can expire.
   */
  readonly scheduleExpiry?: (queue: MessageQueue, at: number) => void;
  /**
   * Called once for every message that leaves this queue for good: acked, delivered to an
   * auto-ack consumer, rejected without requeue, expired, dropped or dead-lettered for a limit,
   * purged. The shard logs a removal for persistent messages here. Not called for messages
   * delivered through noteDirectDelivery (the queue never held them) or on queue deletion.
   */
  readonly onRemoved?: (message: StoredMessage) => void;
  /** The shard's ready/unacked totals, kept as messages move (detachGauges when the queue is deleted). */
  readonly gauges?: MessageGauges;
}

export class MessageQueue {
  readonly name: string;
  /** The parsed queue arguments this queue was declared with. */
  readonly arguments: QueueArguments;
  readonly #deliver: DeliverFn;
  readonly #allocateTag: () => number;
  readonly #ready: ReadyList | PriorityReadyList;
  readonly #consumers = new ConsumerRing();
  readonly #unacked: UnackedDeliveries;
  readonly #stats: QueueStats = {
    published: 0,
    delivered: 0,
    acked: 0,
    requeued: 0,
    dropped: 0,
    overflowed: 0,
    purged: 0,
    expired: 0,
    deadLettered: 0,
    rejectedPublishes: 0,
    maxlenDropped: 0,
    deliveryLimited: 0,
  };
  readonly #now: () => number;
  readonly #onDeadLetter: DeadLetterFn | undefined;
  readonly #scheduleExpiry: ((queue: MessageQueue, at: number) => void) | undefined;
  readonly #onRemoved: ((message: StoredMessage) => void) | undefined;
  // Flattened arguments, read on the hot paths.
  readonly #messageTtl: number | undefined;
  /** x-max-length / x-max-length-bytes; Infinity when unset. */
  readonly #maxLength: number;
  readonly #maxBytes: number;
  /** A length limit with drop-head overflow. */
  readonly #dropsHead: boolean;
  /** A length limit with reject-publish(-dlx) overflow. */
  readonly #rejectsPublishes: boolean;
  readonly #deliveryLimit: number | undefined;
  /** Set once any ready message can expire (a queue TTL, or a message with an expiration arrived). */
  #ttlActive: boolean;
  /** The earliest expiry reported through scheduleExpiry and not yet handled by expire(). */
  #reportedExpiry = Infinity;
  #lastUsed: number;

  constructor(name: string, deliver: DeliverFn, allocateTag: () => number, options: MessageQueueOptions = {}) {
    this.name = name;
    this.#deliver = deliver;
    this.#allocateTag = allocateTag;
    const args = options.arguments ?? NO_QUEUE_ARGUMENTS;
    this.arguments = args;
    this.#now = options.now ?? Date.now;
    this.#onDeadLetter = options.onDeadLetter;
    this.#scheduleExpiry = options.scheduleExpiry;
    this.#onRemoved = options.onRemoved;
    const gauges = options.gauges ?? null;
    this.#ready = args.maxPriority === undefined ? new ReadyList(gauges) : new PriorityReadyList(args.maxPriority, gauges);
    this.#unacked = new UnackedDeliveries(gauges);
    this.#messageTtl = args.messageTtl;
    this.#maxLength = args.maxLength ?? Infinity;
    this.#maxBytes = args.maxLengthBytes ?? Infinity;
    const limited = args.maxLength !== undefined || args.maxLengthBytes !== undefined;
    this.#dropsHead = limited && args.overflow === 'drop-head';
    this.#rejectsPublishes = limited && args.overflow !== 'drop-head';
    this.#deliveryLimit = args.deliveryLimit;
    this.#ttlActive = args.messageTtl !== undefined;
    this.#lastUsed = this.#now();
  }

  /** The queue is being deleted: its messages leave the shard's totals, and later changes stay out of them. */
  detachGauges(): void {
    this.#ready.detachGauges();
    this.#unacked.detachGauges();
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

  /**
   * A fresh publish: adds the message at its seq position (an append, normally) and returns
   * 'accepted', or refuses it and returns 'rejected' when x-overflow is reject-publish(-dlx) and
   * it would take the ready messages over x-max-length(-bytes) (the publisher should get a
   * nack). Stamps expiresAt; may expire it at once (TTL 0) or drop the head (drop-head). Does
   * not dispatch.
   */
  enqueue(message: StoredMessage): EnqueueResult {
    if (this.#rejectsPublishes && this.#wouldOverflow(message)) {
      this.#stats.rejectedPublishes++;
      if (this.arguments.overflow === 'reject-publish-dlx') this.#deadLetter(message, 'maxlen');
      return 'rejected';
    }
    this.#stats.published++;
    this.#stamp(message);
    this.#addFresh(message);
    return 'accepted';
  }

  /**
   * Expires the ready messages whose TTL has passed by `now` and that expire() can see: the head
   * (the head of each priority level). RabbitMQ expires at the head too; a message behind an
   * unexpired head waits, but dispatch() never delivers it. Returns how many expired.
   */
  expire(now: number = this.#now()): number {
    let count = 0;
    if (this.#ttlActive) {
      let message: StoredMessage | undefined;
      while ((message = this.#ready.shiftExpired(now)) !== undefined) {
        this.#expired(message);
        count++;
      }
    }
    // The owner's timer for what we reported has fired (or this is an extra call): report afresh.
    if (this.#reportedExpiry <= now) this.#reportedExpiry = Infinity;
    if (this.#ttlActive) this.#reportExpiry();
    return count;
  }

  /** When expire() next has something to do: the earliest expiresAt of the head(s); Infinity when nothing can expire. */
  nextExpiry(): number {
    return this.#ttlActive ? this.#ready.headExpiry() : Infinity;
  }

  /** When the queue last had a consumer, was declared, or served a basic.get (ms, the queue's clock). */
  get lastUsed(): number {
    return this.#lastUsed;
  }

  /** Records a use that keeps an x-expires queue alive: queue.declare of it, basic.get on it. */
  markUsed(now: number = this.#now()): void {
    this.#lastUsed = now;
  }

  /**
   * When the queue has been unused for its x-expires (ms): the shard deletes it then (the queue
   * never deletes itself). Infinity without x-expires or while it has consumers.
   */
  idleDeadline(): number {
    const expires = this.arguments.expires;
    if (expires === undefined || this.#consumers.size > 0) return Infinity;
    return this.#lastUsed + expires;
  }

  /**
   * Delivers ready messages, oldest first (highest priority first with x-max-priority), round
   * robin over consumers with capacity; an expired message met on the way is expired instead of
   * delivered. Stops when nothing is ready, no consumer can take one, or the writer is full (that
   * message stays first and the consumer keeps its turn). Returns the deliveries made.
   */
  dispatch(): number {
    const ready = this.#ready;
    const consumers = this.#consumers;
    const ttl = this.#ttlActive;
    const now = ttl ? this.#now() : 0;
    let made = 0;
    while (ready.length > 0) {
      const index = consumers.findEligible();
      if (index < 0) break;
      const message = ready.peek() as StoredMessage;
      if (ttl && message.expiresAt <= now) {
        // Never deliver an expired message: it goes now, and the next one is considered.
        ready.shift();
        this.#expired(message);
        continue;
      }
      if (!this.#send(consumers.at(index), message)) break;
      ready.shift();
      consumers.passTurn(index);
      made++;
    }
    if (ttl && made > 0) this.#reportExpiry();
    return made;
  }

  /**
   * Fast path for a fresh publish: if nothing is ready (so going first cannot overtake anyone)
   * and a consumer has capacity, returns the consumer whose turn it is and passes the turn on.
   * The caller must then deliver to it at once, with deliverNow() or, for auto-ack, by writing
   * the delivery itself and calling noteDirectDelivery(). Otherwise returns null: enqueue().
   * Also null when reject-publish overflow would refuse the message even into an empty queue
   * (x-max-length 0, or `payloadBytes` over x-max-length-bytes), as RabbitMQ checks the limit
   * before trying consumers.
   */
  nextIdleConsumer(payloadBytes = 0): Consumer | null {
    if (this.#ready.length > 0) return null;
    if (this.#rejectsPublishes && (this.#maxLength < 1 || payloadBytes > this.#maxBytes)) return null;
    const index = this.#consumers.findEligible();
    if (index < 0) return null;
    this.#consumers.passTurn(index);
    return this.#consumers.at(index).consumer;
  }

  /**
   * Delivers `message` (a fresh publish) to `consumer` now (normally one from nextIdleConsumer()).
   * If the writer is full the message is enqueued at its position (as enqueue() would, limits
   * and TTL included) and false is returned; the turn is not given back (the writer being full
   * is no fault of that consumer), dispatch() later starts after it. Its expiry is stamped
   * either way, so a delivered message that comes back keeps it.
   */
  deliverNow(consumer: Consumer, message: StoredMessage): boolean {
    const slot = this.#consumers.slotOf(consumer);
    if (slot === undefined) {
      throw new Error(
        `queue ${this.name}: deliverNow to an unregistered consumer (connection ${consumer.connectionId}, subscription ${consumer.subscriptionId})`,
      );
    }
    this.#stats.published++;
    this.#stamp(message);
    if (this.#send(slot, message)) return true;
    this.#addFresh(message);
    return false;
  }

  /**
   * AMQP basic.get: the head message to `consumer` (registered with no credit of its own, so
   * dispatch never picks it), now, out of turn. An expired head is expired and the next one tried.
   * False when nothing is ready (get-empty), or when the writer is full (the message stays first).
   */
  deliverOneTo(consumer: Consumer): boolean {
    const slot = this.#consumers.slotOf(consumer);
    if (slot === undefined) throw new Error(`queue ${this.name}: deliverOneTo an unregistered consumer`);
    const ready = this.#ready;
    const now = this.#ttlActive ? this.#now() : 0;
    while (ready.length > 0) {
      const message = ready.peek() as StoredMessage;
      if (this.#ttlActive && message.expiresAt <= now) {
        ready.shift();
        this.#expired(message);
        continue;
      }
      // One message's worth of credit for this one delivery, whatever it had.
      consumer.credit = 1;
      consumer.creditBytes = message.payload.byteLength + 1;
      const sent = this.#send(slot, message);
      consumer.credit = 0;
      consumer.creditBytes = 0;
      if (!sent) return false;
      ready.shift();
      this.#lastUsed = this.#now();
      return true;
    }
    return false;
  }

  /** Bookkeeping for an auto-ack delivery the caller wrote itself (credit, counters). */
  noteDirectDelivery(consumer: Consumer, payloadBytes: number): void {
    // A client-ack delivery written behind the queue's back could never be acked or requeued.
    if (consumer.ackMode !== 'auto') {
      throw new Error(`queue ${this.name}: noteDirectDelivery is for auto-ack consumers; use deliverNow`);
    }
    consumer.credit--;
    consumer.creditBytes -= payloadBytes;
    this.#stats.published++;
    this.#stats.delivered++;
  }

  /** Registers a consumer, last in the turn order. Throws if its (connection, subscription) is already here. */
  addConsumer(consumer: Consumer): void {
    this.#consumers.add(consumer);
    this.#lastUsed = this.#now();
  }

  /**
   * Removes one consumer; returns how many of its unacked messages were requeued (redelivered =
   * true). Messages over x-delivery-limit are dead-lettered instead and not counted.
   */
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
    const message = this.#unacked.take(tag);
    if (message === undefined) return false;
    this.#stats.acked++;
    this.#onRemoved?.(message);
    return true;
  }

  /**
   * Reject/nack one delivery. Returns false for an unknown tag, null when the message was
   * requeued (redelivered = true, at its original position), and the message itself when it
   * left the queue: rejected without requeue, or requeued past x-delivery-limit. Such a message
   * has already been dead-lettered through onDeadLetter when the queue has a DLX and the
   * callback; otherwise the caller may do with it what it likes.
   */
  reject(tag: number, requeue: boolean): StoredMessage | null | false {
    const message = this.#unacked.take(tag);
    if (message === undefined) return false;
    if (requeue) {
      if (this.#deliveryLimit !== undefined && this.#exceedsDeliveryLimit(message)) return message;
      message.redelivered = true;
      this.#ready.add(message);
      this.#stats.requeued++;
      this.#afterRequeue();
      return null;
    }
    this.#stats.dropped++;
    this.#deadLetter(message, 'rejected');
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
    if (message !== undefined) {
      this.#stats.overflowed++;
      this.#onRemoved?.(message);
    }
    return message;
  }

  /** Drops the ready messages (AMQP queue.purge leaves unacked ones alone); returns how many. */
  purge(): number {
    if (this.#onRemoved !== undefined) for (const m of this.#ready.toArray()) this.#onRemoved(m);
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
    consumer.creditBytes -= message.payload.byteLength;
    if (consumer.ackMode === 'client') this.#unacked.track(tag, message, slot);
    else this.#onRemoved?.(message);
    this.#stats.delivered++;
    return true;
  }

  #requeueHeldBy(slots: ConsumerSlot[]): number {
    if (this.#consumers.size === 0 && slots.length > 0) this.#lastUsed = this.#now(); // unused from now on
    let messages: StoredMessage[] = [];
    for (const slot of slots) this.#unacked.releaseOwner(slot, messages);
    if (messages.length === 0) return 0;
    if (this.#deliveryLimit !== undefined) messages = messages.filter((message) => !this.#exceedsDeliveryLimit(message));
    for (const message of messages) message.redelivered = true;
    this.#ready.addMany(messages);
    this.#stats.requeued += messages.length;
    if (messages.length > 0) this.#afterRequeue();
    return messages.length;
  }

  /** Computes expiresAt for a fresh publish: now + the lower of x-message-ttl and its expiration. */
  #stamp(message: StoredMessage): void {
    const properties = message.properties;
    if (this.#messageTtl === undefined && (properties === null || properties.expiration === undefined)) {
      message.expiresAt = Infinity;
      return;
    }
    let ttl = this.#messageTtl ?? Infinity;
    if (properties !== null && properties.expiration !== undefined) {
      const ms = parseExpiration(properties.expiration);
      if (ms != null && ms < ttl) ttl = ms;
    }
    message.expiresAt = ttl === Infinity ? Infinity : this.#now() + ttl;
    // A message that can expire may come back (requeue) after a fast-path delivery: from now
    // on this queue must look at expiries.
    if (message.expiresAt !== Infinity) this.#ttlActive = true;
  }

  /** A stamped fresh publish joins the ready messages: expires at once (TTL 0), or is added and limits applied. */
  #addFresh(message: StoredMessage): void {
    const expiresAt = message.expiresAt;
    if (expiresAt !== Infinity) {
      this.#ttlActive = true;
      if (expiresAt <= this.#now()) {
        this.#expired(message);
        return;
      }
    }
    this.#ready.add(message);
    if (this.#dropsHead) this.#dropOverLimit();
    if (expiresAt !== Infinity) this.#reportExpiry();
  }

  #wouldOverflow(message: StoredMessage): boolean {
    const ready = this.#ready;
    return ready.length + 1 > this.#maxLength || ready.bytes + message.payload.byteLength > this.#maxBytes;
  }

  /** drop-head: drops (dead-letters) the head until the ready messages are within x-max-length(-bytes). */
  #dropOverLimit(): void {
    const ready = this.#ready;
    while (ready.length > this.#maxLength || ready.bytes > this.#maxBytes) {
      const head = ready.shift() as StoredMessage;
      this.#stats.maxlenDropped++;
      this.#deadLetter(head, 'maxlen');
    }
  }

  /** After messages went back to the ready list: length limits, then expired heads (as RabbitMQ's requeue_and_run). */
  #afterRequeue(): void {
    if (this.#dropsHead) this.#dropOverLimit();
    if (this.#ttlActive) this.expire(this.#now());
  }

  /**
   * x-delivery-limit on a return: a message returned more times than the limit (deliveryCount
   * counts its deliveries, each of which came back) is dead-lettered and true returned;
   * otherwise it gets the x-delivery-count header and false.
   */
  #exceedsDeliveryLimit(message: StoredMessage): boolean {
    const returns = message.deliveryCount;
    if (returns > (this.#deliveryLimit as number)) {
      this.#stats.deliveryLimited++;
      this.#deadLetter(message, 'delivery_limit');
      return true;
    }
    message.properties = withHeader(message.properties, 'x-delivery-count', returns);
    return false;
  }

  #expired(message: StoredMessage): void {
    this.#stats.expired++;
    this.#deadLetter(message, 'expired');
  }

  /** Hands a dead-lettered copy to the owner when there is a DLX and a callback; otherwise the message is just gone. */
  #deadLetter(message: StoredMessage, reason: DeadLetterReason): void {
    this.#onRemoved?.(message);
    const onDeadLetter = this.#onDeadLetter;
    if (onDeadLetter === undefined) return;
    const target = deadLetterTarget(this.arguments, message, this.name);
    if (target === null) return;
    this.#stats.deadLettered++;
    onDeadLetter(deadLetterMessage(message, reason, this.name, this.#now(), target as DeadLetterTarget), reason);
  }

  /** Tells the owner when to call expire() if that is now earlier than what it was told. */
  #reportExpiry(): void {
    if (this.#scheduleExpiry === undefined) return;
    const at = this.#ready.headExpiry();
    if (at < this.#reportedExpiry) {
      this.#reportedExpiry = at;
      this.#scheduleExpiry(this, at);
    }
  }
}

/** `properties` with one header set, as a new object (properties may be shared between queues). */
function withHeader(properties: MessageProperties | null, key: string, value: HeaderValue): MessageProperties {
  if (properties === null) return { headers: { [key]: value } };
  return { ...properties, headers: { ...properties.headers, [key]: value } };
}
