/**
 * What one shard owns and does: its queues, its topic subscriptions, acks and
 * redelivery. Runs on the shard thread, but is plain single-threaded code over a
 * record reader and an outbound writer, so tests drive it without threads.
 */
import { MessageQueue } from '../queue/message-queue.js';
import type { Consumer, StoredMessage } from '../queue/types.js';
import { TopicMatcher } from '../router/topic-matcher.js';
import { DestinationType } from '../protocol/destination.js';
import {
  AckModeCode,
  ConfirmStatus,
  NO_TOKEN,
  RecordKind,
  newPublishRecord,
  newSubscribeRecord,
  type OutboundWriter,
  type RecordReader,
} from '../protocol/ring-record-codec.js';
import { CounterSlot } from '../metrics/shard-counters.js';

export interface ShardCoreOptions {
  readonly index: number;
  readonly shardCount: number;
  /** Messages a private topic-subscription queue holds before dropping its oldest. */
  readonly topicBuffer: number;
}

/** A consumer that also remembers which kind of destination its deliveries name. */
interface ShardConsumer extends Consumer {
  readonly destinationType: DestinationType;
}

/** One subscription of one connection as this shard sees it. */
interface Subscription {
  readonly consumer: Consumer;
  readonly queue: MessageQueue;
  /** Topic subscriptions own a private queue; queue subscriptions share a named one. */
  readonly privateTopicPattern: string | null;
}

/** A queue snapshot for /v1/stats. */
export interface QueueStats {
  readonly name: string;
  readonly depth: number;
  readonly consumers: number;
  readonly unacked: number;
  readonly readyBytes: number;
}

export class ShardCore {
  readonly #opts: ShardCoreOptions;
  readonly #out: OutboundWriter;
  readonly #reader: RecordReader;
  readonly #counters: Float64Array;
  readonly #queues = new Map<string, MessageQueue>();
  /** Named and private queues alike, for the gauges. */
  readonly #allQueues = new Set<MessageQueue>();
  readonly #topics = new TopicMatcher<Subscription>();
  /** connectionId → subscriptionId → subscription */
  readonly #connections = new Map<number, Map<number, Subscription>>();
  /** Queues with ready messages that could not be written because the outbound ring was full. */
  readonly #stalled = new Set<MessageQueue>();
  /** Confirms and errors that met a full outbound ring; written before anything else. */
  readonly #pendingControl: Array<() => boolean> = [];
  readonly #pub = newPublishRecord();
  readonly #sub = newSubscribeRecord();
  #seq = 0;
  /** Set when the last outbound write failed for lack of room. */
  #outboundFull = false;

  constructor(opts: ShardCoreOptions, reader: RecordReader, out: OutboundWriter, counters: Float64Array) {
    this.#opts = opts;
    this.#reader = reader;
    this.#out = out;
    this.#counters = counters;
  }

  /** True while output is waiting for room in the outbound ring: the loop stops reading input then. */
  get blocked(): boolean {
    return this.#pendingControl.length > 0 || this.#outboundFull;
  }

  /** The drain callback: one record of the inbound ring, read in place. */
  readonly onRecord = (kind: number, offset: number, _length: number): void => {
    this.#counters[CounterSlot.inboundRecords]++;
    switch (kind) {
      case RecordKind.publish:
        this.#processPublish(offset);
        break;
      case RecordKind.subscribe:
        this.#processSubscribe(offset);
        break;
      case RecordKind.unsubscribe:
        this.#processUnsubscribe(this.#reader.u32(offset), this.#reader.u32(offset + 4));
        break;
      case RecordKind.ack:
        this.#processSettle(this.#reader.u32(offset), this.#reader.f64(offset + 8), true, false);
        break;
      case RecordKind.nack:
        this.#processSettle(this.#reader.u32(offset), this.#reader.f64(offset + 8), false, this.#reader.u32(offset + 4) === 1);
        break;
      case RecordKind.connectionClosed:
        this.#processConnectionClosed(this.#reader.u32(offset));
        break;
      case RecordKind.ping:
        this.#control(() => this.#out.pong(this.#reader.u32(offset)), this.#reader.u32(offset));
        break;
      case RecordKind.credit:
        this.#processCredit(this.#reader.u32(offset), this.#reader.u32(offset + 4), this.#reader.u32(offset + 8));
        break;
      default:
        // A kind we do not know means main and shard disagree on the codec: say so loudly.
        throw new Error(`shard ${this.#opts.index}: unknown inbound record kind ${kind}`);
    }
  };

  /** Retries output that met a full ring. Returns true when nothing is left waiting. */
  flushPending(): boolean {
    this.#outboundFull = false;
    while (this.#pendingControl.length > 0) {
      if (!this.#pendingControl[0]()) {
        this.#outboundFull = true;
        return false;
      }
      this.#pendingControl.shift();
    }
    for (const queue of this.#stalled) {
      this.#stalled.delete(queue);
      queue.dispatch();
      if (this.#outboundFull) {
        this.#stalled.add(queue);
        return false;
      }
    }
    return true;
  }

  /** Called once per drained batch: gauges are refreshed per batch, not per message. */
  endBatch(): void {
    let ready = 0;
    let unacked = 0;
    for (const q of this.#allQueues) {
      ready += q.depth;
      unacked += q.unackedCount;
    }
    this.#counters[CounterSlot.ready] = ready;
    this.#counters[CounterSlot.unacked] = unacked;
  }

  queueStats(): QueueStats[] {
    const out: QueueStats[] = [];
    for (const q of this.#queues.values()) {
      out.push({ name: q.name, depth: q.depth, consumers: q.consumerCount, unacked: q.unackedCount, readyBytes: q.readyBytes });
    }
    return out;
  }

  /** Messages this shard holds in memory (ready + unacked): what a crash would lose. */
  heldMessages(): number {
    let n = 0;
    for (const q of this.#allQueues) n += q.depth + q.unackedCount;
    return n;
  }

  // ---- publish ---------------------------------------------------------------------------

  #processPublish(offset: number): void {
    const rec = this.#reader.publish(offset, this.#pub);
    const c = this.#counters;
    let status: ConfirmStatus = ConfirmStatus.ok;
    if (rec.type === DestinationType.queue) {
      c[CounterSlot.published]++;
      this.#route(this.#declareQueue(rec.key), rec.key, rec.type, rec.payloadOffset, rec.payloadLength, false);
    } else if (rec.type === DestinationType.topic || (rec.type === DestinationType.exchange && rec.exchange === 'amq.topic')) {
      c[CounterSlot.published]++;
      const subs = this.#topics.match(rec.key);
      if (subs.length === 0) c[CounterSlot.unroutable]++;
      for (let i = 0; i < subs.length; i++) {
        this.#route(subs[i].queue, rec.key, DestinationType.topic, rec.payloadOffset, rec.payloadLength, true);
      }
    } else {
      // Other exchanges arrive with the full AMQP model; until then they do not exist.
      status = ConfirmStatus.notFound;
    }
    if (rec.token !== NO_TOKEN) {
      const { connectionId, token } = rec;
      this.#control(() => this.#out.confirm(connectionId, token, status, 1));
    }
  }

  /**
   * Puts one message into one queue. When the queue is empty and a consumer is free,
   * an auto-ack delivery is written straight from the inbound ring into the outbound
   * ring: no copy is kept, nothing is allocated. Otherwise the message is copied out
   * of the ring (the ring space is about to be released) and queued.
   */
  #route(queue: MessageQueue, key: string, type: DestinationType, at: number, length: number, bounded: boolean): void {
    const consumer = queue.nextIdleConsumer();
    if (consumer !== null && consumer.ackMode === 'auto') {
      const tag = this.#allocateTag();
      if (this.#out.deliver(consumer.connectionId, consumer.subscriptionId, tag, false, type, key, this.#reader.buffer, at, length)) {
        queue.noteDirectDelivery(consumer);
        this.#counters[CounterSlot.delivered]++;
        return;
      }
      this.#outboundFull = true;
    }
    const message: StoredMessage = {
      seq: ++this.#seq,
      routingKey: key,
      payload: this.#reader.buffer.slice(at, at + length),
      exchange: type === DestinationType.queue ? '' : 'amq.topic',
      properties: null,
      expiresAt: Infinity,
      redelivered: false,
      deliveryCount: 0,
    };
    if (consumer !== null && !this.#outboundFull) {
      queue.deliverNow(consumer, message);
      if (this.#outboundFull) this.#stalled.add(queue);
    } else {
      // A topic subscriber that does not keep up loses its oldest messages, counted; queues
      // under /queue/ never drop. The slow-consumer policy (drop|disconnect) is flow control's.
      if (bounded && queue.depth >= this.#opts.topicBuffer && queue.dropHead() !== undefined) {
        this.#counters[CounterSlot.dropped]++;
      }
      queue.enqueue(message);
      if (this.#outboundFull) this.#stalled.add(queue);
    }
  }

  /** Delivers one message for a queue; called by MessageQueue.dispatch/deliverNow. */
  #deliver = (consumer: Consumer, message: StoredMessage, tag: number): boolean => {
    const type = (consumer as ShardConsumer).destinationType;
    const ok = this.#out.deliver(
      consumer.connectionId,
      consumer.subscriptionId,
      tag,
      message.redelivered,
      type,
      message.routingKey,
      message.payload,
      0,
      message.payload.byteLength,
    );
    if (!ok) {
      this.#outboundFull = true;
      return false;
    }
    const c = this.#counters;
    c[CounterSlot.delivered]++;
    if (message.redelivered) c[CounterSlot.redelivered]++;
    return true;
  };

  #allocateTag = (): number => {
    // Tags encode their shard (tag % shardCount), so the main thread routes an ack
    // without keeping a map; the sequence lives in shared memory and survives a restart.
    const seq = this.#counters[CounterSlot.nextTagSeq]++;
    return seq * this.#opts.shardCount + this.#opts.index + this.#opts.shardCount;
  };

  #declareQueue(name: string): MessageQueue {
    let q = this.#queues.get(name);
    if (q === undefined) {
      q = new MessageQueue(name, this.#deliver, this.#allocateTag);
      this.#queues.set(name, q);
      this.#allQueues.add(q);
      this.#counters[CounterSlot.queues] = this.#queues.size;
    }
    return q;
  }

  // ---- subscriptions -----------------------------------------------------------------------

  #processSubscribe(offset: number): void {
    const rec = this.#reader.subscribe(offset, this.#sub);
    const consumer: ShardConsumer = {
      destinationType: rec.type === DestinationType.queue ? DestinationType.queue : DestinationType.topic,
      connectionId: rec.connectionId,
      subscriptionId: rec.subscriptionId,
      ackMode: rec.ackMode === AckModeCode.client ? 'client' : 'auto',
      prefetch: rec.prefetch,
      unacked: 0,
      credit: rec.credit === 0 ? Infinity : rec.credit,
    };
    let subs = this.#connections.get(rec.connectionId);
    if (subs === undefined) {
      subs = new Map();
      this.#connections.set(rec.connectionId, subs);
    }
    if (subs.has(rec.subscriptionId)) this.#processUnsubscribe(rec.connectionId, rec.subscriptionId);
    let sub: Subscription;
    if (rec.type === DestinationType.queue) {
      sub = { consumer, queue: this.#declareQueue(rec.pattern), privateTopicPattern: null };
    } else {
      const queue = new MessageQueue(`sub:${rec.connectionId}:${rec.subscriptionId}`, this.#deliver, this.#allocateTag);
      sub = { consumer, queue, privateTopicPattern: rec.pattern };
      this.#topics.add(rec.pattern, sub);
      this.#allQueues.add(queue);
    }
    subs.set(rec.subscriptionId, sub);
    sub.queue.addConsumer(consumer);
    this.#counters[CounterSlot.consumers]++;
    this.#dispatch(sub.queue);
  }

  #processUnsubscribe(connectionId: number, subscriptionId: number): void {
    const subs = this.#connections.get(connectionId);
    const sub = subs?.get(subscriptionId);
    if (subs === undefined || sub === undefined) return;
    subs.delete(subscriptionId);
    if (subs.size === 0) this.#connections.delete(connectionId);
    this.#counters[CounterSlot.consumers]--;
    if (sub.privateTopicPattern !== null) {
      // A private queue dies with its subscription; what it still held is dropped, counted.
      this.#topics.remove(sub.privateTopicPattern, sub);
      this.#allQueues.delete(sub.queue);
      this.#counters[CounterSlot.dropped] += sub.queue.depth + sub.queue.unackedCount;
      this.#stalled.delete(sub.queue);
    } else {
      const requeued = sub.queue.removeConsumer(connectionId, subscriptionId);
      if (requeued > 0) this.#dispatch(sub.queue);
    }
  }

  #processConnectionClosed(connectionId: number): void {
    const subs = this.#connections.get(connectionId);
    if (subs === undefined) return;
    for (const id of [...subs.keys()]) this.#processUnsubscribe(connectionId, id);
  }

  #processCredit(connectionId: number, subscriptionId: number, count: number): void {
    const sub = this.#connections.get(connectionId)?.get(subscriptionId);
    if (sub === undefined) return;
    sub.consumer.credit += count;
    this.#dispatch(sub.queue);
  }

  // ---- acks --------------------------------------------------------------------------------

  #processSettle(connectionId: number, tag: number, ack: boolean, requeue: boolean): void {
    const subs = this.#connections.get(connectionId);
    if (subs !== undefined) {
      for (const sub of subs.values()) {
        const queue = sub.queue;
        if (!queue.hasTag(tag)) continue;
        if (queue.tagOwner(tag)?.connectionId !== connectionId) break;
        if (ack) {
          queue.ack(tag);
          this.#counters[CounterSlot.acked]++;
        } else {
          const result = queue.reject(tag, requeue);
          if (result !== null && result !== false) this.#counters[CounterSlot.dropped]++;
        }
        this.#dispatch(queue);
        return;
      }
    }
    const code = 'unknown_tag';
    const message = `delivery tag ${tag} is not an unacked delivery of this connection (already acked, or its shard restarted)`;
    this.#control(() => this.#out.error(connectionId, 0, code, message));
  }

  #dispatch(queue: MessageQueue): void {
    if (this.#outboundFull) {
      this.#stalled.add(queue);
      return;
    }
    queue.dispatch();
    if (this.#outboundFull) this.#stalled.add(queue);
  }

  /** Writes a control record now, or keeps it for when the outbound ring has room. */
  #control(write: () => boolean, _token?: number): void {
    if (this.#pendingControl.length === 0 && write()) return;
    this.#outboundFull = true;
    this.#pendingControl.push(write);
  }
}
