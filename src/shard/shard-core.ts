/**
 * What one shard owns and does: its queues (with their arguments, consumers, acks and
 * redelivery), its copy of the exchanges and of the bindings into its queues, TTLs and
 * dead-lettering. Runs on the shard thread, but is plain single-threaded code over a
 * record reader and an outbound writer, so tests drive it without threads.
 *
 * The main thread sends a message only to shards that own a queue it may reach; here
 * the exact routing happens (including headers exchanges), against local queues only.
 *
 * ShardCore reads the records and does the per-message work itself (publish, delivery,
 * settling); the rest is in the parts it wires together: ShardTopology (queues, exchanges,
 * bindings), ShardSubscriptions (consumers by connection), ShardDurability (the log),
 * ShardOutbound (control records, and what waits for room in the ring), ShardExpiryTimer.
 */
import { copyBytes } from '../protocol/bytes.js';
import type { MessageQueue } from '../queue/message-queue.js';
import { ExpiryScheduler } from '../queue/expiry-scheduler.js';
import { isDeadLetterCycle } from '../queue/dead-letter.js';
import type { Consumer, MessageProperties, StoredMessage } from '../queue/types.js';
import { RouterError, type ExchangeRegistry } from '../router/exchange-registry.js';
import { decodeProperties } from '../protocol/properties.js';
import {
  AckModeCode,
  ConfirmStatus,
  NO_TOKEN,
  PUBLISH_FLAG_DEAD_LETTERED,
  PUBLISH_FLAG_LIGHT,
  RecordKind,
  newPublishRecord,
  newSubscribeRecord,
  SUBSCRIBE_FLAG_EXCLUSIVE,
  type GetOp,
  type ManageOp,
  type OutboundWriter,
  type StreamOp,
  type StreamStart,
  type RecordReader,
} from '../protocol/ring-record-codec.js';
import { monotonicMs } from '../metrics/clock.js';
import { CounterSlot } from '../metrics/shard-counters.js';
import type { MessageStore, RecoveryResult } from '../store/store.js';
import { EncodedProperties } from './encoded-properties.js';
import type { LocalQueue } from './local-queue.js';
import { ShardDurability, type RecoverySummary } from './shard-durability.js';
import { StreamOffsetError } from '../stream/offset-spec.js';
import { ShardExpiryTimer } from './shard-expiry-timer.js';
import { ShardFlow } from './shard-flow.js';
import { ShardOutbound } from './shard-outbound.js';
import type { ShardStreams } from './shard-streams.js';
import type { StreamStore } from '../store/stream-store.js';
import { ShardSubscriptions } from './shard-subscriptions.js';
import { ShardTopology, type QueueStats } from './shard-topology.js';
import { describeIn } from '../protocol/vhost-name.js';

export type { QueueStats } from './shard-topology.js';
export type { RecoverySummary } from './shard-durability.js';

export interface ShardCoreOptions {
  readonly index: number;
  readonly shardCount: number;
  /** The clock (ms), for TTLs and idle queues; tests pass a fake one. */
  readonly now?: () => number;
  /**
   * The shard's log (with --data-dir): persistent messages to durable queues, their removals
   * and the durable topology are appended here, and confirms for them wait until it says the
   * records are on disk. Null: everything is in memory.
   */
  readonly store?: MessageStore | null;
  /** A write to the store failed (rate-limit your logging: it repeats while the disk is full). */
  readonly onStoreError?: (err: Error) => void;
  /**
   * Streams on disk (with --data-dir): appends are confirmed, and readable, once it reports them
   * durable. Null: streams are held in memory.
   */
  readonly streamStore?: StreamStore | null;
}

export class ShardCore {
  readonly #opts: ShardCoreOptions;
  readonly #out: OutboundWriter;
  readonly #reader: RecordReader;
  readonly #counters: Float64Array;
  readonly #encoded = new EncodedProperties();
  readonly #outbound: ShardOutbound;
  readonly #subscriptions: ShardSubscriptions;
  readonly #durability: ShardDurability;
  readonly #topology: ShardTopology;
  readonly #expiryTimer: ShardExpiryTimer;
  readonly #flow: ShardFlow;
  readonly #streams: ShardStreams;
  /** The topology's, held here too so the publish path reaches them without a call. */
  readonly #queues: ReadonlyMap<string, LocalQueue>;
  readonly #registry: ExchangeRegistry<string, MessageQueue>;
  /** With a store, persistent messages to durable queues are logged. */
  readonly #logging: boolean;
  readonly #pub = newPublishRecord();
  readonly #sub = newSubscribeRecord();
  #seq = 0;
  /** When the shard picked up the batch being drained (monotonic ms; 0 between batches): a traced publish's shard-in. */
  #batchAt = 0;

  constructor(opts: ShardCoreOptions, reader: RecordReader, out: OutboundWriter, counters: Float64Array) {
    this.#opts = opts;
    this.#reader = reader;
    this.#out = out;
    this.#counters = counters;
    const now = opts.now ?? Date.now;
    const store = opts.store ?? null;
    this.#logging = store !== null;
    const outbound = new ShardOutbound(out, this.#encoded);
    const subscriptions = new ShardSubscriptions(outbound, counters);
    const durability = new ShardDurability(store, opts.onStoreError, outbound, this.#encoded, counters);
    const expiry = new ExpiryScheduler();
    const flow = new ShardFlow(outbound, counters, now);
    const topology = new ShardTopology({
      index: opts.index,
      now,
      counters,
      deliver: this.#deliver,
      allocateTag: this.#allocateTag,
      expiry,
      outbound,
      subscriptions,
      durability,
      flow,
      streamStore: opts.streamStore ?? null,
    });
    const streamStore = opts.streamStore;
    if (streamStore != null) {
      streamStore.onDurable = (seq, logs) => {
        topology.streams.durable(logs);
        durability.streamsDurable(seq);
      };
      streamStore.onFlushError = (err, seq) => durability.streamFlushFailed(err, seq);
    }
    this.#flow = flow;
    this.#outbound = outbound;
    this.#subscriptions = subscriptions;
    this.#durability = durability;
    this.#topology = topology;
    this.#queues = topology.queues;
    this.#streams = topology.streams;
    this.#streams.deliverWith = this.#deliverStreamEntry;
    this.#registry = topology.registry;
    this.#expiryTimer = new ShardExpiryTimer(expiry, topology.queues, outbound, now);
  }

  /** True while output is waiting for room in the outbound ring: the loop stops reading input then. */
  get blocked(): boolean {
    return this.#outbound.blocked;
  }

  /** The drain callback: one record of the inbound ring, read in place. */
  readonly onRecord = (kind: number, offset: number, _length: number): void => {
    this.#counters[CounterSlot.inboundRecords]++;
    if (this.#batchAt === 0) this.#batchAt = monotonicMs();
    const r = this.#reader;
    switch (kind) {
      case RecordKind.publish:
        this.#processPublish(offset);
        break;
      case RecordKind.subscribe:
        this.#processSubscribe(offset);
        break;
      case RecordKind.unsubscribe:
        this.#processUnsubscribe(r.u32(offset), r.u32(offset + 4));
        break;
      case RecordKind.ack:
        this.#processSettle(r.u32(offset), r.f64(offset + 8), true, false);
        break;
      case RecordKind.nack:
        this.#processSettle(r.u32(offset), r.f64(offset + 8), false, r.u32(offset + 4) === 1);
        break;
      case RecordKind.connectionClosed:
        this.#processConnectionClosed(r.u32(offset));
        break;
      case RecordKind.ping:
        this.#outbound.pong(r.u32(offset));
        break;
      case RecordKind.credit:
        this.#processCredit(r.u32(offset), r.u32(offset + 4), r.u32(offset + 8), r.u32(offset + 12));
        break;
      case RecordKind.slow:
        this.#processSlow(r.u32(offset), r.u32(offset + 4) === 1);
        break;
      case RecordKind.trace:
        // The publish before it was just routed and its deliveries written.
        this.#outbound.traced(r.f64(offset), this.#batchAt, monotonicMs());
        break;
      case RecordKind.manage: {
        const { connectionId, token, body } = r.json(offset);
        const op = (body as { op: string }).op;
        if (op === 'get') this.#processGet(connectionId, token, body as GetOp);
        else if (op === 'streamInfo' || op === 'streamRead' || op === 'streamCommit')
          this.#topology.processStream(connectionId, token, body as StreamOp);
        else this.#topology.processManage(connectionId, token, body as ManageOp);
        break;
      }
      default:
        // A kind we do not know means main and shard disagree on the codec: say so loudly.
        throw new Error(`shard ${this.#opts.index}: unknown inbound record kind ${kind}`);
    }
    this.#outbound.republishDeadLetters();
  };

  /** Retries output that met a full ring. Returns true when nothing is left waiting. */
  flushPending(): boolean {
    return this.#outbound.flush();
  }

  /** Called once per drained batch: gauges are refreshed per batch, not per message. */
  endBatch(): void {
    this.#batchAt = 0;
    this.#outbound.republishDeadLetters();
    this.#flow.endBatch();
    this.#streams.endBatch();
    this.#durability.endBatch();
    this.#topology.refreshMessageGauges();
    this.#expiryTimer.arm();
  }

  /** Snapshots of every queue of the shard (tests and diagnostics; management pages use queueFigures). */
  queueStats(): QueueStats[] {
    return this.#topology.queueStats();
  }

  /** A management page's queues, packed (queue-figures.ts). */
  queueFigures(names: readonly string[]): Float64Array<ArrayBuffer> {
    return this.#topology.queueFigures(names);
  }

  /** Messages this shard holds in memory (ready + unacked): what a crash would lose. */
  heldMessages(): number {
    return this.#topology.heldMessages();
  }

  /** Stops the shard's timers and flushes and closes its log (the loop is ending). */
  async close(): Promise<void> {
    this.#expiryTimer.stop();
    this.#flow.stop();
    this.#topology.stopIdleSweep();
    await this.#streams.close();
    await this.#durability.close();
  }

  /**
   * Rebuilds the durable state from the log, before anything else (see ShardDurability.recover);
   * message ids continue above every id the log has seen.
   */
  recover(result: RecoveryResult): RecoverySummary {
    const summary = this.#durability.recover(result, this.#topology);
    const streams = { ...this.#streams.recovered(), orphaned: this.#streams.sweepOrphans() };
    this.#seq = Math.max(this.#seq, result.nextId - 1);
    this.endBatch();
    return { ...summary, streams };
  }

  /**
   * Applies a topology snapshot before the shard reads its ring (a restart): queues must exist
   * before the publishes that waited in the ring for them are routed. Returns refused ops.
   */
  applyTopology(ops: readonly ManageOp[]): Array<{ op: ManageOp; error: string }> {
    return this.#topology.apply(ops);
  }

  // ---- publish ---------------------------------------------------------------------------

  #processPublish(offset: number): void {
    const rec = this.#reader.publish(offset, this.#pub);
    const c = this.#counters;
    const buf = this.#reader.buffer;
    const outbound = this.#outbound;
    const deadLettered = (rec.flags & PUBLISH_FLAG_DEAD_LETTERED) !== 0;
    let properties: MessageProperties | null = null;
    if (rec.propsLength > 0) properties = this.#propertiesOf(buf, rec.propsOffset, rec.propsLength);
    let status: ConfirmStatus = ConfirmStatus.ok;
    let targets: readonly MessageQueue[];
    try {
      targets = this.#registry.route(rec.exchange, rec.routingKey, properties?.headers ?? null);
      if ((rec.flags & PUBLISH_FLAG_LIGHT) !== 0) targets = this.#topology.withCarrier(targets, rec.exchange);
    } catch (err) {
      // The main thread checked the exchange; it can still vanish between its check and ours.
      if (!(err instanceof RouterError)) throw err;
      targets = [];
      status = ConfirmStatus.notFound;
    }
    if (status === ConfirmStatus.ok) c[CounterSlot.published]++;
    if (targets.length === 0 && status === ConfirmStatus.ok) c[CounterSlot.unroutable]++;
    let payload: Uint8Array | null = null;
    /** The log position the confirm must wait for (0: nothing of this record was persisted). */
    let durableLsn = 0;
    /** The stream append the confirm must wait for (0: none on disk). */
    let streamSeq = 0;
    const streams = this.#streams;
    for (let i = 0; i < targets.length; i++) {
      const queue = targets[i];
      if (deadLettered && this.#isCycle(queue.name, properties)) continue;
      if (streams.size > 0 && streams.append(queue, rec, buf, properties)) {
        streamSeq = streams.appendSeq;
        continue;
      }
      const consumer = queue.nextIdleConsumer(rec.payloadLength);
      if (consumer !== null && consumer.ackMode === 'auto') {
        // Fast path: the queue is empty and its next consumer takes it as is. Write the delivery
        // ring to ring; nothing is kept, nothing is allocated.
        const tag = this.#allocateTag();
        if (
          this.#out.deliver(
            consumer.connectionId,
            consumer.subscriptionId,
            tag,
            false,
            rec.exchange,
            rec.routingKey,
            buf,
            rec.propsOffset,
            rec.propsLength,
            buf,
            rec.payloadOffset,
            rec.payloadLength,
          )
        ) {
          queue.noteDirectDelivery(consumer, rec.payloadLength);
          c[CounterSlot.delivered]++;
          continue;
        }
        outbound.markFull();
      }
      // The ring space is released after this batch: keep one copy, shared by every queue.
      if (payload === null) {
        payload = copyBytes(buf, rec.payloadOffset, rec.payloadOffset + rec.payloadLength);
      }
      const message: StoredMessage = {
        seq: ++this.#seq,
        routingKey: rec.routingKey,
        exchange: rec.exchange,
        payload,
        properties,
        expiresAt: Infinity,
        redelivered: false,
        deliveryCount: 0,
      };
      if (this.#logging && properties?.deliveryMode !== 1 && this.#queues.get(queue.name)?.durable === true) {
        // A durable queue keeps its messages on disk unless they say they are transient.
        const lsn = this.#durability.persist(queue.name, message);
        if (lsn > durableLsn) durableLsn = lsn;
      }
      if (consumer !== null && !outbound.full) {
        queue.deliverNow(consumer, message);
      } else {
        const dropsBefore = queue.stats.maxlenDropped;
        if (queue.enqueue(message) === 'rejected') status = ConfirmStatus.rejected;
        else if (queue.stats.maxlenDropped !== dropsBefore) {
          this.#counters[CounterSlot.dropped] += queue.stats.maxlenDropped - dropsBefore;
        }
        this.#flow.queued(queue);
      }
      if (outbound.full) outbound.stall(queue);
    }
    if (rec.token !== NO_TOKEN) {
      const { connectionId, token } = rec;
      if ((durableLsn > 0 || streamSeq > 0) && status === ConfirmStatus.ok)
        this.#durability.confirmWhenDurable(durableLsn, streamSeq, connectionId, token, status);
      else outbound.confirm(connectionId, token, status);
    }
  }

  /**
   * A publish's properties, decoded once per distinct block: a publisher repeats its properties, and
   * its messages then share one object (nothing mutates a stored message's properties: dead-lettering
   * copies them) and one encoded copy for their deliveries. A decode per publish was garbage for
   * every message a queue kept.
   */
  #propertiesOf(buf: Uint8Array, offset: number, length: number): MessageProperties {
    const last = this.#lastPropsBytes;
    if (last.byteLength === length && this.#lastProps !== null) {
      let same = true;
      for (let i = 0; i < length; i++) {
        if (last[i] !== buf[offset + i]) {
          same = false;
          break;
        }
      }
      if (same) return this.#lastProps;
    }
    const properties = decodeProperties(buf, offset, length) as MessageProperties;
    const bytes = copyBytes(buf, offset, offset + length);
    this.#encoded.remember(properties, bytes);
    this.#lastProps = properties;
    this.#lastPropsBytes = bytes;
    return properties;
  }

  #isCycle(queueName: string, properties: MessageProperties | null): boolean {
    const probe = { properties } as StoredMessage;
    return isDeadLetterCycle(probe, queueName);
  }

  /** Delivers one message for a queue; called by MessageQueue.dispatch/deliverNow. */
  #lastProps: MessageProperties | null = null;
  #lastPropsBytes: Uint8Array = new Uint8Array(0);

  readonly #deliver = (consumer: Consumer, message: StoredMessage, tag: number): boolean => {
    const props = this.#encoded.bytes(message.properties);
    const ok = this.#out.deliver(
      consumer.connectionId,
      consumer.subscriptionId,
      tag,
      message.redelivered,
      message.exchange,
      message.routingKey,
      props,
      0,
      props.byteLength,
      message.payload,
      0,
      message.payload.byteLength,
    );
    if (!ok) {
      this.#outbound.markFull();
      return false;
    }
    const c = this.#counters;
    c[CounterSlot.delivered]++;
    if (message.redelivered) c[CounterSlot.redelivered]++;
    return true;
  };

  /** A stream entry to its reader; the offset is in the properties (ShardStreams). */
  readonly #deliverStreamEntry = (
    consumer: Consumer,
    exchange: string,
    routingKey: string,
    props: Uint8Array,
    payload: Uint8Array,
  ): number => {
    const tag = this.#allocateTag();
    const ok = this.#out.deliver(
      consumer.connectionId,
      consumer.subscriptionId,
      tag,
      false,
      exchange,
      routingKey,
      props,
      0,
      props.byteLength,
      payload,
      0,
      payload.byteLength,
    );
    if (!ok) {
      this.#outbound.markFull();
      return 0;
    }
    this.#counters[CounterSlot.delivered]++;
    return tag;
  };

  readonly #allocateTag = (): number => {
    // Tags encode their shard (tag % shardCount), so the main thread routes an ack
    // without keeping a map; the sequence lives in shared memory and survives a restart.
    const seq = this.#counters[CounterSlot.nextTagSeq]++;
    return seq * this.#opts.shardCount + this.#opts.index + this.#opts.shardCount;
  };

  // ---- subscriptions -----------------------------------------------------------------------

  #processSubscribe(offset: number): void {
    const rec = this.#reader.subscribe(offset, this.#sub);
    const local = this.#queues.get(rec.queue);
    if (local === undefined) {
      this.#outbound.error(rec.connectionId, rec.subscriptionId, 'not_found', `no ${describeIn('queue', rec.queue)}`);
      return;
    }
    const stream = this.#streams.size > 0 && this.#streams.isStream(rec.queue);
    const exclusive = (rec.flags & SUBSCRIBE_FLAG_EXCLUSIVE) !== 0;
    const conflict = this.#subscriptions.exclusiveConflict(local, exclusive);
    if (conflict !== null) {
      this.#outbound.error(rec.connectionId, rec.subscriptionId, 'access_refused', conflict);
      return;
    }
    const consumer: Consumer = {
      connectionId: rec.connectionId,
      subscriptionId: rec.subscriptionId,
      ackMode: rec.ackMode === AckModeCode.client ? 'client' : 'auto',
      prefetch: rec.prefetch,
      unacked: 0,
      credit: rec.credit === 0 ? Infinity : rec.credit,
      creditBytes: rec.creditBytes === 0 ? Infinity : rec.creditBytes,
      exclusive,
    };
    // A reused subscription id replaces the old consumer. The front never reuses ids, but a
    // replacement must not remove the queue it is about to consume (auto-delete), so the
    // old consumer goes without the auto-delete check when it is on the same queue.
    const previous = this.#subscriptions.get(rec.connectionId, rec.subscriptionId);
    if (previous !== undefined) this.#processUnsubscribe(rec.connectionId, rec.subscriptionId, previous.local === local);
    if (stream) {
      // A stream reader is not one of the queue's consumers: it reads the log from its own offset.
      const start = (rec.streamOffset ?? { offset: 'next', name: '' }) as StreamStart;
      try {
        this.#streams.attach(local.queue, consumer, start.offset, start.name);
      } catch (err) {
        if (!(err instanceof StreamOffsetError)) throw err;
        this.#outbound.error(rec.connectionId, rec.subscriptionId, err.code, err.message);
        return;
      }
      this.#subscriptions.add(rec.connectionId, rec.subscriptionId, { consumer, local });
      return;
    }
    this.#subscriptions.add(rec.connectionId, rec.subscriptionId, { consumer, local });
    local.queue.addConsumer(consumer);
    this.#flow.attach(local.queue, consumer);
    local.hadConsumer = true;
    this.#outbound.dispatch(local.queue);
  }

  /**
   * basic.get: the queue's head to the connection's get-consumer, created on first use with no
   * credit (dispatch never chooses it) and kept like any consumer, so a client-ack get stays unacked
   * under it and goes back to the queue when the channel or connection closes.
   */
  #processGet(connectionId: number, token: number, op: GetOp): void {
    const local = this.#queues.get(op.queue);
    if (local === undefined) {
      this.#outbound.manageReply(connectionId, token, 1, { code: 'not_found', message: `no ${describeIn('queue', op.queue)}` });
      return;
    }
    if (this.#streams.isStream(op.queue)) {
      // As RabbitMQ (basic.get is refused on a stream): a stream is read from an offset.
      this.#outbound.manageReply(connectionId, token, 1, {
        code: 'unsupported',
        message: `basic.get is not supported by stream ${describeIn('queue', op.queue)}: read it from an offset (GET /v1/streams/${op.queue}/messages)`,
      });
      return;
    }
    let sub = this.#subscriptions.get(connectionId, op.subscription);
    if (sub === undefined || sub.local !== local) {
      if (sub !== undefined) this.#processUnsubscribe(connectionId, op.subscription, true);
      const consumer: Consumer = {
        connectionId,
        subscriptionId: op.subscription,
        ackMode: op.ackMode === AckModeCode.client ? 'client' : 'auto',
        prefetch: 0,
        unacked: 0,
        credit: 0,
        creditBytes: 0,
        get: true,
      };
      sub = { consumer, local };
      this.#subscriptions.add(connectionId, op.subscription, sub);
      local.queue.addConsumer(consumer);
    }
    const delivered = local.queue.deliverOneTo(sub.consumer);
    this.#outbound.manageReply(connectionId, token, 0, { delivered, messageCount: local.queue.depth });
  }

  #processUnsubscribe(connectionId: number, subscriptionId: number, keepQueue = false): void {
    const sub = this.#subscriptions.remove(connectionId, subscriptionId);
    if (sub === undefined) return;
    const { local } = sub;
    if (this.#streams.size > 0) this.#streams.detach(sub.consumer);
    this.#flow.detach(local.queue, sub.consumer);
    const requeued = local.queue.removeConsumer(connectionId, subscriptionId);
    if (!keepQueue && this.#topology.autoDeleteIfUnused(local)) return;
    if (requeued > 0) this.#outbound.dispatch(local.queue);
  }

  #processConnectionClosed(connectionId: number): void {
    // Remove every consumer of the connection before dispatching anything: otherwise a message
    // requeued from one of its subscriptions could be handed to another one that is closing too.
    this.#flow.forgetConnection(connectionId);
    const subs = this.#subscriptions.removeConnection(connectionId);
    if (subs === undefined) return;
    const touched = new Set<LocalQueue>();
    for (const sub of subs.values()) {
      if (this.#streams.size > 0) this.#streams.detach(sub.consumer);
      this.#flow.detach(sub.local.queue, sub.consumer);
      sub.local.queue.removeConsumer(connectionId, sub.consumer.subscriptionId);
      touched.add(sub.local);
    }
    for (const local of touched) {
      if (!this.#topology.autoDeleteIfUnused(local)) this.#outbound.dispatch(local.queue);
    }
  }

  #processCredit(connectionId: number, subscriptionId: number, count: number, bytes: number): void {
    const sub = this.#subscriptions.get(connectionId, subscriptionId);
    if (sub === undefined) return;
    sub.consumer.credit += count;
    sub.consumer.creditBytes += bytes;
    if (this.#streams.size > 0 && this.#streams.credited(sub.consumer)) return;
    this.#outbound.dispatch(sub.local.queue);
  }

  /** The front's verdict on a connection's socket (slow: above high water past --slow-consumer-ms). */
  #processSlow(connectionId: number, slow: boolean): void {
    const subs = this.#subscriptions.of(connectionId);
    const consumers = subs === undefined ? [] : [...subs.values()].map((s) => s.consumer);
    this.#flow.setSlow(connectionId, slow, consumers);
  }

  // ---- acks --------------------------------------------------------------------------------

  #processSettle(connectionId: number, tag: number, ack: boolean, requeue: boolean): void {
    if (this.#streams.size > 0 && this.#streams.settle(connectionId, tag)) {
      if (ack) this.#counters[CounterSlot.acked]++;
      return;
    }
    const subs = this.#subscriptions.of(connectionId);
    if (subs !== undefined) {
      for (const sub of subs.values()) {
        const queue = sub.local.queue;
        if (!queue.hasTag(tag)) continue;
        if (queue.tagOwner(tag)?.connectionId !== connectionId) break;
        if (ack) {
          queue.ack(tag);
          this.#counters[CounterSlot.acked]++;
        } else {
          const result = queue.reject(tag, requeue);
          if (result !== null && result !== false) this.#counters[CounterSlot.dropped]++;
        }
        this.#outbound.dispatch(queue);
        return;
      }
    }
    const message = `delivery tag ${tag} is not an unacked delivery of this connection (already settled, or its shard restarted)`;
    this.#outbound.error(connectionId, 0, 'unknown_tag', message);
  }
}
