import type { MessageQueue } from '../queue/message-queue.js';
import type { Consumer } from '../queue/types.js';
import { CounterSlot } from '../metrics/shard-counters.js';
import type { ShardOutbound } from './shard-outbound.js';

/** What a slow subscriber's private topic queue does past its bound (`--slow-consumer`). */
export type SlowConsumerPolicy = 'drop' | 'disconnect' | 'block';

/**
 * A `/topic/` or `/exchange/` subscription's private queue: its bound (`--topic-buffer`) and what
 * happens past it. Null on every other queue (their limits are AMQP's x-max-length).
 */
export interface TopicBuffer {
  readonly queue: MessageQueue;
  readonly bound: number;
  readonly policy: SlowConsumerPolicy;
  /** --slow-consumer-ms: how long a client-ack subscriber may sit on its whole prefetch while its queue presses. */
  readonly slowMs: number;
  /** When it started pressing (ms), 0 when it does not press. */
  pressingSince: number;
  /** Its client-ack subscriber held its whole prefetch unacked for slowMs while it pressed: slow. */
  ackSlow: boolean;
  /** The subscription consuming it (a private queue has one), null between subscriptions. */
  consumer: Consumer | null;
  /** Discarded since the last `dropped` record to the main thread. */
  droppedUnreported: number;
  /** The disconnect verdict was sent (once). */
  disconnectSent: boolean;
}

/** Queue arguments the front puts on a private topic queue (internal: users never see them). */
export const TOPIC_BUFFER_ARG = 'x-shardmq-topic-buffer';
export const SLOW_CONSUMER_ARG = 'x-shardmq-slow-consumer';
export const SLOW_CONSUMER_MS_ARG = 'x-shardmq-slow-consumer-ms';
/** When a declaration does not say (the default of --slow-consumer-ms). */
const DEFAULT_SLOW_MS = 1000;

/** The TopicBuffer of a declaration, when it is a private topic queue's. */
export function topicBufferOf(
  queue: MessageQueue,
  exclusive: boolean,
  autoDelete: boolean,
  args: Record<string, unknown>,
): TopicBuffer | null {
  const bound = args[TOPIC_BUFFER_ARG];
  if (!exclusive || !autoDelete || typeof bound !== 'number' || !(bound >= 1)) return null;
  const p = args[SLOW_CONSUMER_ARG];
  const policy: SlowConsumerPolicy = p === 'disconnect' || p === 'block' ? p : 'drop';
  const ms = args[SLOW_CONSUMER_MS_ARG];
  const slowMs = typeof ms === 'number' && ms >= 0 ? ms : DEFAULT_SLOW_MS;
  return { queue, bound, policy, slowMs, pressingSince: 0, ackSlow: false, consumer: null, droppedUnreported: 0, disconnectSent: false };
}

/**
 * Flow control on the shard: who may lose messages and who makes the publishers wait.
 *
 * A private topic queue past its bound means one of two things. Its subscriber is slow itself
 * (the front saw its socket above --socket-high-water past --slow-consumer-ms and said so with a
 * `slow` record): then its policy applies: drop the oldest (counted, and reported to the main
 * thread, which tells the subscriber), disconnect it, or block. Or the subscriber keeps up and the
 * broker's own pipeline lags (credit round trips, the main thread's pump): then nothing is
 * dropped; the queue "presses", and while any queue presses the shard tells the main thread to hold
 * further publishes for it (a `flow` record), which stops granting publish credit once its held
 * publishes pass half of --overflow-bytes. The queue may then exceed its bound by what was already
 * in the inbound ring. It stops pressing at half its bound (hysteresis: no flapping per message).
 *
 * A client-ack subscriber never fills its socket (the broker sends at most its prefetch), so the
 * socket cannot say it is slow; one that keeps its whole prefetch unacked while its queue presses
 * for --slow-consumer-ms is slow too (otherwise one subscriber that stopped acking would hold every
 * publisher of the shard for good). A timer checks that while anything presses.
 *
 * Per-message cost: one Map lookup when a message is queued (not when delivered ring to ring);
 * the end of a batch walks only the pressing and the dropping queues.
 */
export class ShardFlow {
  readonly #outbound: ShardOutbound;
  readonly #counters: Float64Array;
  readonly #buffers = new Map<MessageQueue, TopicBuffer>();
  readonly #pressing = new Set<TopicBuffer>();
  readonly #dropping = new Set<TopicBuffer>();
  readonly #slowConnections = new Set<number>();
  /** Buffers whose client-ack subscriber was found slow for acks (cleared when they catch up). */
  readonly #ackSlow = new Set<TopicBuffer>();
  readonly #now: () => number;
  #holding = false;
  #timer: NodeJS.Timeout | null = null;

  constructor(outbound: ShardOutbound, counters: Float64Array, now: () => number = Date.now) {
    this.#outbound = outbound;
    this.#counters = counters;
    this.#now = now;
  }

  /** Stops the timer (the shard is closing). */
  stop(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }

  /** True while the main thread is told to hold publishes for this shard. */
  get holding(): boolean {
    return this.#holding;
  }

  register(buffer: TopicBuffer): void {
    this.#buffers.set(buffer.queue, buffer);
  }

  /** The queue is gone: nothing of it presses or reports any more. */
  forget(queue: MessageQueue): void {
    const buffer = this.#buffers.get(queue);
    if (buffer === undefined) return;
    this.#buffers.delete(queue);
    this.#pressing.delete(buffer);
    this.#dropping.delete(buffer);
    this.#ackSlow.delete(buffer);
  }

  /** A consumer subscribed to `queue` (a private queue has one at a time). */
  attach(queue: MessageQueue, consumer: Consumer): void {
    const buffer = this.#buffers.get(queue);
    if (buffer !== undefined) buffer.consumer = consumer;
  }

  detach(queue: MessageQueue, consumer: Consumer): void {
    const buffer = this.#buffers.get(queue);
    if (buffer === undefined || buffer.consumer !== consumer) return;
    this.#report(buffer);
    buffer.consumer = null;
  }

  /** A message was queued in `queue` (not delivered at once): check its bound. */
  queued(queue: MessageQueue): void {
    const buffer = this.#buffers.get(queue);
    if (buffer !== undefined && queue.depth > buffer.bound) this.#overBound(buffer);
  }

  /** The front's verdict on a connection's socket. */
  setSlow(connectionId: number, slow: boolean, consumers: Iterable<Consumer>): void {
    if (!slow) {
      this.#slowConnections.delete(connectionId);
      return;
    }
    this.#slowConnections.add(connectionId);
    for (const consumer of consumers) {
      for (const buffer of this.#pressing) {
        if (buffer.consumer === consumer) this.#overBound(buffer);
      }
    }
  }

  /** The connection is gone (its consumers were removed): forget its verdict. */
  forgetConnection(connectionId: number): void {
    this.#slowConnections.delete(connectionId);
  }

  /**
   * End of a batch: queues that drained stop pressing (and the main thread may publish again when
   * none presses), and drops made in the batch are reported, one record per subscription.
   */
  endBatch(): void {
    for (const buffer of this.#pressing) {
      const depth = buffer.queue.depth;
      if (depth * 2 <= buffer.bound) {
        this.#pressing.delete(buffer);
        buffer.pressingSince = 0;
        buffer.ackSlow = false;
      } else if (depth > buffer.bound && this.#isSlow(buffer) && buffer.policy !== 'block') this.#overBound(buffer);
    }
    for (const buffer of this.#ackSlow) {
      // It caught up (its queue is back at half its bound): a later full press is timed afresh.
      if (buffer.queue.depth * 2 > buffer.bound) continue;
      buffer.ackSlow = false;
      this.#ackSlow.delete(buffer);
    }
    if (this.#holding && this.#pressing.size === 0) {
      this.#holding = false;
      this.#outbound.flow(false);
    }
    for (const buffer of this.#dropping) this.#report(buffer);
    this.#dropping.clear();
  }

  #isSlow(buffer: TopicBuffer): boolean {
    return buffer.consumer !== null && (buffer.ackSlow || this.#slowConnections.has(buffer.consumer.connectionId));
  }

  /** A client-ack consumer with its whole prefetch unacked. */
  #atPrefetch(buffer: TopicBuffer): boolean {
    const c = buffer.consumer;
    return c !== null && c.ackMode === 'client' && c.prefetch > 0 && c.unacked >= c.prefetch;
  }

  /** While anything presses: a client-ack subscriber that sat on its whole prefetch for slowMs is slow. */
  #schedule(): void {
    if (this.#timer !== null || this.#pressing.size === 0) return;
    let next = Infinity;
    for (const b of this.#pressing) next = Math.min(next, b.pressingSince + b.slowMs);
    this.#timer = setTimeout(() => this.#checkAcks(), Math.max(1, next - this.#now()));
    this.#timer.unref?.();
  }

  #checkAcks(): void {
    this.#timer = null;
    const now = this.#now();
    for (const buffer of this.#pressing) {
      if (buffer.ackSlow || now - buffer.pressingSince < buffer.slowMs || !this.#atPrefetch(buffer)) continue;
      buffer.ackSlow = true;
      this.#ackSlow.add(buffer);
      if (buffer.policy !== 'block') this.#overBound(buffer);
    }
    // Outside the shard loop's batches: finish as a batch would, and publish the records now.
    this.endBatch();
    this.#outbound.commit();
    this.#schedule();
  }

  #overBound(buffer: TopicBuffer): void {
    if (!this.#isSlow(buffer) || buffer.policy === 'block') {
      this.#press(buffer);
      return;
    }
    this.#pressing.delete(buffer);
    buffer.pressingSince = 0;
    if (buffer.policy === 'disconnect' && !buffer.disconnectSent && buffer.consumer !== null) {
      buffer.disconnectSent = true;
      const { connectionId, subscriptionId } = buffer.consumer;
      const message = `subscription buffer of ${buffer.bound} messages overflowed while its socket stayed above high water; disconnecting`;
      this.#outbound.error(connectionId, subscriptionId, 'slow_consumer', message);
    }
    // Drop down to the bound (also for disconnect, until the close arrives: memory stays bounded).
    const { queue } = buffer;
    let dropped = 0;
    while (queue.depth > buffer.bound && queue.dropHead() !== undefined) dropped++;
    if (dropped === 0) return;
    buffer.droppedUnreported += dropped;
    this.#counters[CounterSlot.dropped] += dropped;
    this.#dropping.add(buffer);
  }

  #press(buffer: TopicBuffer): void {
    if (!this.#pressing.has(buffer)) {
      this.#pressing.add(buffer);
      buffer.pressingSince = this.#now();
      this.#schedule();
    }
    if (this.#holding) return;
    this.#holding = true;
    this.#outbound.flow(true);
  }

  #report(buffer: TopicBuffer): void {
    const n = buffer.droppedUnreported;
    if (n === 0 || buffer.consumer === null) return;
    buffer.droppedUnreported = 0;
    this.#outbound.dropped(buffer.consumer.connectionId, buffer.consumer.subscriptionId, n);
  }
}
