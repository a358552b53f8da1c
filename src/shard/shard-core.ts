/**
 * What one shard owns and does: its queues (with their arguments, consumers, acks and
 * redelivery), its copy of the exchanges and of the bindings into its queues, TTLs and
 * dead-lettering. Runs on the shard thread, but is plain single-threaded code over a
 * record reader and an outbound writer, so tests drive it without threads.
 *
 * The main thread sends a message only to shards that own a queue it may reach; here
 * the exact routing happens (including headers exchanges), against local queues only.
 */
import { copyBytes } from '../protocol/bytes.js';
import { MessageQueue } from '../queue/message-queue.js';
import { ExpiryScheduler } from '../queue/expiry-scheduler.js';
import { isDeadLetterCycle } from '../queue/dead-letter.js';
import { parseQueueArguments, QueueArgumentError } from '../queue/queue-arguments.js';
import type { Consumer, MessageProperties, StoredMessage } from '../queue/types.js';
import { ExchangeRegistry, RouterError } from '../router/exchange-registry.js';
import { decodeProperties, encodeProperties } from '../protocol/properties.js';
import {
  AckModeCode,
  ConfirmStatus,
  NO_TOKEN,
  PUBLISH_FLAG_DEAD_LETTERED,
  RecordKind,
  newPublishRecord,
  newSubscribeRecord,
  type ManageOp,
  type ManageResult,
  type OutboundWriter,
  type RecordReader,
} from '../protocol/ring-record-codec.js';
import { CounterSlot } from '../metrics/shard-counters.js';
import type { MessageStore, RecoveryResult, RecoveryStats } from '../store/store.js';

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
}

/** What a shard recovered from its log at start, for the main thread's topology and the log. */
export interface RecoverySummary {
  readonly topology: ManageOp[];
  readonly messages: number;
  /** Queues whose declaration was lost to log damage, declared again (durable, default arguments) for their messages. */
  readonly recreatedQueues: readonly string[];
  readonly stats: RecoveryStats;
}

/** How often idle queues (x-expires) are looked for. */
const IDLE_SWEEP_MS = 1000;

interface LocalQueue {
  readonly queue: MessageQueue;
  readonly durable: boolean;
  readonly exclusive: boolean;
  readonly autoDelete: boolean;
  readonly arguments: Record<string, unknown>;
  /** Auto-delete applies once a queue has had a consumer. */
  hadConsumer: boolean;
  /**
   * A subscription's private topic queue: when its length limit drops messages the consumer
   * is told once (`slow_consumer` = disconnect it, `slow_consumer_dropped` = log and count).
   */
  readonly slowConsumerPolicy: 'disconnect' | 'drop' | null;
  slowReported: boolean;
}

interface Subscription {
  readonly consumer: Consumer;
  readonly local: LocalQueue;
}

/** A queue snapshot for /v1/stats and the management API. */
export interface QueueStats {
  readonly name: string;
  readonly depth: number;
  readonly consumers: number;
  readonly unacked: number;
  readonly readyBytes: number;
  readonly durable: boolean;
  readonly exclusive: boolean;
  readonly autoDelete: boolean;
  readonly arguments: Record<string, unknown>;
  readonly stats: Readonly<Record<string, number>>;
}

const EMPTY = new Uint8Array(0);

export class ShardCore {
  readonly #opts: ShardCoreOptions;
  readonly #out: OutboundWriter;
  readonly #reader: RecordReader;
  readonly #counters: Float64Array;
  readonly #now: () => number;
  readonly #queues = new Map<string, LocalQueue>();
  readonly #registry: ExchangeRegistry<string, MessageQueue>;
  /** connectionId → subscriptionId → subscription */
  readonly #connections = new Map<number, Map<number, Subscription>>();
  /** Queues with ready messages that could not be written because the outbound ring was full. */
  readonly #stalled = new Set<MessageQueue>();
  /** Confirms, errors and republishes that met a full outbound ring; written before anything else. */
  readonly #pendingControl: Array<() => boolean> = [];
  /** Dead-lettered copies collected during a queue operation, republished right after it. */
  readonly #deadLetters: StoredMessage[] = [];
  /** Encoded properties per properties object: encoded once, reused for every delivery. */
  readonly #encoded = new WeakMap<MessageProperties, Uint8Array>();
  readonly #expiry = new ExpiryScheduler();
  #expiryTimer: NodeJS.Timeout | null = null;
  #expiryAt = Infinity;
  #idleTimer: NodeJS.Timeout | null = null;
  readonly #pub = newPublishRecord();
  readonly #sub = newSubscribeRecord();
  #seq = 0;
  /** Set when the last outbound write failed for lack of room. */
  #outboundFull = false;
  readonly #store: MessageStore | null;
  /** Confirms waiting until the store has made their messages durable, in LSN order. */
  readonly #awaitingDurable: Array<{ lsn: number; connectionId: number; token: number; status: ConfirmStatus }> = [];
  #appended = false;
  /** Replaying the log: topology ops are applied but not logged again. */
  #recovering = false;
  /** Persistent messages held (ready or unacked). */
  #persistedHeld = 0;

  constructor(opts: ShardCoreOptions, reader: RecordReader, out: OutboundWriter, counters: Float64Array) {
    this.#opts = opts;
    this.#reader = reader;
    this.#out = out;
    this.#counters = counters;
    this.#now = opts.now ?? Date.now;
    this.#store = opts.store ?? null;
    if (this.#store !== null) {
      this.#store.onDurable = (lsn) => this.#onDurable(lsn);
      this.#store.onFlushError = (err, upTo) => this.#onFlushError(err, upTo);
    }
    this.#registry = new ExchangeRegistry<string, MessageQueue>({
      queueKey: (name) => name,
      routeTarget: (name) => {
        const local = this.#queues.get(name);
        if (local === undefined) throw new Error(`shard ${opts.index}: binding to unknown queue ${name}`);
        return local.queue;
      },
      defaultExchangeTarget: (name) => this.#queues.get(name)?.queue,
    });
  }

  /** True while output is waiting for room in the outbound ring: the loop stops reading input then. */
  get blocked(): boolean {
    return this.#pendingControl.length > 0 || this.#outboundFull;
  }

  /** The drain callback: one record of the inbound ring, read in place. */
  readonly onRecord = (kind: number, offset: number, _length: number): void => {
    this.#counters[CounterSlot.inboundRecords]++;
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
      case RecordKind.ping: {
        const token = r.u32(offset);
        this.#control(() => this.#out.pong(token));
        break;
      }
      case RecordKind.credit:
        this.#processCredit(r.u32(offset), r.u32(offset + 4), r.u32(offset + 8));
        break;
      case RecordKind.manage: {
        const { connectionId, token, body } = r.json(offset);
        this.#processManage(connectionId, token, body as ManageOp);
        break;
      }
      default:
        // A kind we do not know means main and shard disagree on the codec: say so loudly.
        throw new Error(`shard ${this.#opts.index}: unknown inbound record kind ${kind}`);
    }
    if (this.#deadLetters.length > 0) this.#republishDeadLetters();
  };

  /** Retries output that met a full ring. Returns true when nothing is left waiting. */
  flushPending(): boolean {
    this.#outboundFull = false;
    // Dead letters made by the dispatches below are republished on the next call (or batch).
    if (this.#deadLetters.length > 0) this.#republishDeadLetters();
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
    if (this.#deadLetters.length > 0) this.#republishDeadLetters();
    if (this.#appended) {
      // Group commit: one flush request per drained batch; the store's policy (always|batch)
      // decides when the write and fsync happen.
      this.#appended = false;
      this.#store?.requestFlush();
    }
    this.#counters[CounterSlot.durable] = this.#persistedHeld;
    let ready = 0;
    let unacked = 0;
    for (const local of this.#queues.values()) {
      ready += local.queue.depth;
      unacked += local.queue.unackedCount;
    }
    this.#counters[CounterSlot.ready] = ready;
    this.#counters[CounterSlot.unacked] = unacked;
    this.#armExpiryTimer();
  }

  queueStats(): QueueStats[] {
    const out: QueueStats[] = [];
    for (const local of this.#queues.values()) {
      const q = local.queue;
      out.push({
        name: q.name,
        depth: q.depth,
        consumers: q.consumerCount,
        unacked: q.unackedCount,
        readyBytes: q.readyBytes,
        durable: local.durable,
        exclusive: local.exclusive,
        autoDelete: local.autoDelete,
        arguments: local.arguments,
        stats: { ...q.stats },
      });
    }
    return out;
  }

  /** Messages this shard holds in memory (ready + unacked): what a crash would lose. */
  heldMessages(): number {
    let n = 0;
    for (const local of this.#queues.values()) n += local.queue.depth + local.queue.unackedCount;
    return n;
  }

  /** Stops the shard's timers and flushes and closes its log (the loop is ending). */
  async close(): Promise<void> {
    this.#stopTimers();
    await this.#store?.close();
  }

  #stopTimers(): void {
    if (this.#expiryTimer !== null) clearTimeout(this.#expiryTimer);
    if (this.#idleTimer !== null) clearInterval(this.#idleTimer);
    this.#expiryTimer = null;
    this.#idleTimer = null;
  }

  // ---- publish ---------------------------------------------------------------------------

  #processPublish(offset: number): void {
    const rec = this.#reader.publish(offset, this.#pub);
    const c = this.#counters;
    const buf = this.#reader.buffer;
    const deadLettered = (rec.flags & PUBLISH_FLAG_DEAD_LETTERED) !== 0;
    let properties: MessageProperties | null = null;
    if (rec.propsLength > 0) {
      properties = decodeProperties(buf, rec.propsOffset, rec.propsLength) as MessageProperties;
    }
    let status: ConfirmStatus = ConfirmStatus.ok;
    let targets: readonly MessageQueue[];
    try {
      targets = this.#registry.route(rec.exchange, rec.routingKey, properties?.headers ?? null);
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
    for (let i = 0; i < targets.length; i++) {
      const queue = targets[i];
      if (deadLettered && this.#isCycle(queue.name, properties)) continue;
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
          queue.noteDirectDelivery(consumer);
          c[CounterSlot.delivered]++;
          continue;
        }
        this.#outboundFull = true;
      }
      // The ring space is released after this batch: keep one copy, shared by every queue.
      if (payload === null) {
        payload = copyBytes(buf, rec.payloadOffset, rec.payloadOffset + rec.payloadLength);
        if (properties !== null) this.#encoded.set(properties, copyBytes(buf, rec.propsOffset, rec.propsOffset + rec.propsLength));
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
      if (this.#store !== null && properties?.deliveryMode !== 1 && this.#queues.get(queue.name)?.durable === true) {
        // A durable queue keeps its messages on disk unless they say they are transient.
        const lsn = this.#persist(queue.name, message);
        if (lsn > durableLsn) durableLsn = lsn;
      }
      if (consumer !== null && !this.#outboundFull) {
        queue.deliverNow(consumer, message);
      } else {
        const dropsBefore = queue.stats.maxlenDropped;
        if (queue.enqueue(message) === 'rejected') status = ConfirmStatus.rejected;
        else if (queue.stats.maxlenDropped !== dropsBefore) {
          this.#counters[CounterSlot.dropped] += queue.stats.maxlenDropped - dropsBefore;
          this.#onOverflowDrop(queue);
        }
      }
      if (this.#outboundFull) this.#stalled.add(queue);
    }
    if (rec.token !== NO_TOKEN) {
      const { connectionId, token } = rec;
      if (durableLsn > 0 && status === ConfirmStatus.ok) this.#awaitingDurable.push({ lsn: durableLsn, connectionId, token, status });
      else this.#control(() => this.#out.confirm(connectionId, token, status, 1));
    }
  }

  /** Appends a persistent message to the log; returns its LSN. */
  #persist(queue: string, message: StoredMessage): number {
    const store = this.#store as MessageStore;
    message.persisted = true;
    this.#persistedHeld++;
    this.#appended = true;
    const props = message.properties === null ? null : this.#propertiesBytes(message.properties);
    return store.appendMessage({ queue, id: message.seq, exchange: message.exchange, routingKey: message.routingKey, properties: props, payload: message.payload });
  }

  /** A persistent message left its queue for good: log the removal. */
  #removed(queue: string, message: StoredMessage): void {
    if (message.persisted !== true || this.#store === null) return;
    message.persisted = false;
    this.#persistedHeld--;
    this.#appended = true;
    this.#store.appendRemove(queue, message.seq);
  }

  /** The store made everything up to `lsn` durable: the confirms that waited for it go out. */
  #onDurable(lsn: number): void {
    const waiting = this.#awaitingDurable;
    let n = 0;
    while (n < waiting.length && waiting[n].lsn <= lsn) n++;
    if (n === 0) return;
    for (const w of waiting.splice(0, n)) this.#control(() => this.#out.confirm(w.connectionId, w.token, w.status, 1));
    this.#out.ring.commit();
  }

  /**
   * A flush failed (ENOSPC, EIO): the publishers waiting on it are told their messages are not
   * durable (they may retry: at-least-once). Nothing durable is touched; the store truncates the
   * partial write and retries, and confirms resume with the next successful flush.
   */
  #onFlushError(err: Error, failedUpToLsn: number): void {
    this.#opts.onStoreError?.(err);
    const waiting = this.#awaitingDurable;
    let n = 0;
    while (n < waiting.length && waiting[n].lsn <= failedUpToLsn) n++;
    for (const w of waiting.splice(0, n)) this.#control(() => this.#out.confirm(w.connectionId, w.token, ConfirmStatus.storageFailed, 1));
    this.#out.ring.commit();
  }

  /** A private topic queue dropped a message for length: tell its consumer, once. */
  #onOverflowDrop(queue: MessageQueue): void {
    const local = this.#queues.get(queue.name);
    if (local === undefined || local.slowConsumerPolicy === null || local.slowReported) return;
    local.slowReported = true;
    const code = local.slowConsumerPolicy === 'disconnect' ? 'slow_consumer' : 'slow_consumer_dropped';
    const message = `subscription buffer of ${queue.arguments.maxLength ?? 0} messages overflowed; oldest messages are being dropped`;
    for (const [connectionId, subs] of this.#connections) {
      for (const [subscriptionId, sub] of subs) {
        if (sub.local === local) this.#control(() => this.#out.error(connectionId, subscriptionId, code, message));
      }
    }
  }

  #isCycle(queueName: string, properties: MessageProperties | null): boolean {
    const probe = { properties } as StoredMessage;
    return isDeadLetterCycle(probe, queueName);
  }

  /** Delivers one message for a queue; called by MessageQueue.dispatch/deliverNow. */
  readonly #deliver = (consumer: Consumer, message: StoredMessage, tag: number): boolean => {
    const props = this.#propertiesBytes(message.properties);
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
      this.#outboundFull = true;
      return false;
    }
    const c = this.#counters;
    c[CounterSlot.delivered]++;
    if (message.redelivered) c[CounterSlot.redelivered]++;
    return true;
  };

  #propertiesBytes(properties: MessageProperties | null): Uint8Array {
    if (properties === null) return EMPTY;
    let bytes = this.#encoded.get(properties);
    if (bytes === undefined) {
      bytes = encodeProperties(properties);
      this.#encoded.set(properties, bytes);
    }
    return bytes;
  }

  readonly #allocateTag = (): number => {
    // Tags encode their shard (tag % shardCount), so the main thread routes an ack
    // without keeping a map; the sequence lives in shared memory and survives a restart.
    const seq = this.#counters[CounterSlot.nextTagSeq]++;
    return seq * this.#opts.shardCount + this.#opts.index + this.#opts.shardCount;
  };

  readonly #onDeadLetter = (message: StoredMessage): void => {
    this.#deadLetters.push(message);
  };

  #republishDeadLetters(): void {
    // Dead-letter exchanges route anywhere, including other shards: the main thread routes them.
    for (const m of this.#deadLetters.splice(0)) {
      const props = m.properties === null ? null : this.#propertiesBytes(m.properties);
      this.#control(() => this.#out.republish(m.exchange, m.routingKey, props, m.payload));
    }
  }

  // ---- topology ----------------------------------------------------------------------------

  /** Logs a topology op of a durable entity (not while replaying the log itself). */
  #log(op: ManageOp): void {
    if (this.#store === null || this.#recovering) return;
    this.#store.appendTopology(op);
    this.#appended = true;
  }

  /**
   * Rebuilds the durable state from the log, before anything else: the topology first, then
   * every message not removed, back in its queue as `redelivered` (it may have been delivered
   * before the crash; RabbitMQ marks such messages the same way).
   */
  recover(result: RecoveryResult): RecoverySummary {
    this.#recovering = true;
    const applied: ManageOp[] = [];
    try {
      for (const op of result.topology as ManageOp[]) {
        try {
          this.#manage(op);
          applied.push(op);
        } catch {
          // An op the log kept but that no longer applies (e.g. a binding to an exchange that is
          // gone) is skipped; the store only keeps replayable ops, so this is rare.
        }
      }
      let messages = 0;
      const recreated: string[] = [];
      for (const m of result.messages) {
        let local = this.#queues.get(m.queue);
        if (local === undefined) {
          // Its declaration was in a damaged record (a segment header's snapshot, a topology
          // record): keep the messages, in a durable queue with default arguments, and say so.
          const op: ManageOp = { op: 'declareQueue', name: m.queue, durable: true, exclusive: false, autoDelete: false, arguments: {} };
          this.#manage(op);
          applied.push(op);
          recreated.push(m.queue);
          local = this.#queues.get(m.queue)!;
        }
        const properties = m.properties === null ? null : (decodeProperties(m.properties, 0, m.properties.byteLength) as MessageProperties);
        if (properties !== null && m.properties !== null) this.#encoded.set(properties, m.properties);
        local.queue.enqueue({
          seq: m.id,
          routingKey: m.routingKey,
          exchange: m.exchange,
          payload: m.payload,
          properties,
          expiresAt: Infinity,
          redelivered: true,
          deliveryCount: 0,
          persisted: true,
        });
        this.#persistedHeld++;
        messages++;
      }
      this.#seq = Math.max(this.#seq, result.nextId - 1);
      this.endBatch();
      return { topology: applied, messages, recreatedQueues: recreated, stats: result.stats };
    } finally {
      this.#recovering = false;
    }
  }

  /**
   * Applies a topology snapshot before the shard reads its ring (a restart): queues must exist
   * before the publishes that waited in the ring for them are routed. Returns refused ops.
   */
  applyTopology(ops: readonly ManageOp[]): Array<{ op: ManageOp; error: string }> {
    const refused: Array<{ op: ManageOp; error: string }> = [];
    for (const op of ops) {
      try {
        this.#manage(op);
      } catch (err) {
        refused.push({ op, error: (err as Error).message });
      }
    }
    return refused;
  }

  #processManage(connectionId: number, token: number, op: ManageOp): void {
    let result: ManageResult = {};
    let status = 0;
    try {
      result = this.#manage(op);
    } catch (err) {
      if (!(err instanceof RouterError) && !(err instanceof QueueArgumentError) && !(err instanceof ManageError)) throw err;
      status = 1;
      result = { code: (err as { code: string }).code, message: err.message };
    }
    if (token !== NO_TOKEN) this.#control(() => this.#out.manageReply(connectionId, token, status, result));
  }

  #manage(op: ManageOp): ManageResult {
    const reg = this.#registry;
    switch (op.op) {
      case 'declareQueue': {
        const existing = this.#queues.get(op.name);
        if (existing !== undefined) {
          // A redeclare counts as use: it renews an x-expires lease, as in RabbitMQ.
          existing.queue.markUsed();
          return { messageCount: existing.queue.depth, consumerCount: existing.queue.consumerCount };
        }
        const args = parseQueueArguments(op.arguments, op.name);
        const name = op.name;
        const queue = new MessageQueue(op.name, this.#deliver, this.#allocateTag, {
          arguments: args,
          now: this.#now,
          onDeadLetter: this.#onDeadLetter,
          scheduleExpiry: this.#expiry.schedule,
          onRemoved: this.#store === null ? undefined : (m) => this.#removed(name, m),
        });
        if (op.durable && !op.exclusive) this.#log(op);
        this.#queues.set(op.name, {
          queue,
          durable: op.durable,
          exclusive: op.exclusive,
          autoDelete: op.autoDelete,
          arguments: op.arguments,
          hadConsumer: false,
          slowConsumerPolicy: op.exclusive && op.autoDelete && op.arguments['x-max-length'] !== undefined
            ? op.arguments['x-shardmq-slow-consumer'] === 'disconnect' ? 'disconnect' : 'drop'
            : null,
          slowReported: false,
        });
        this.#counters[CounterSlot.queues] = this.#queues.size;
        if (args.expires !== undefined) this.#startIdleSweep();
        return { messageCount: 0, consumerCount: 0 };
      }
      case 'deleteQueue': {
        const local = this.#queues.get(op.name);
        if (local === undefined) return { messageCount: 0 };
        if (op.ifUnused && local.queue.consumerCount > 0) {
          throw new ManageError('precondition_failed', `queue '${op.name}' in vhost '/' in use`);
        }
        if (op.ifEmpty && local.queue.depth > 0) {
          throw new ManageError('precondition_failed', `queue '${op.name}' in vhost '/' is not empty`);
        }
        if (local.durable) this.#log(op);
        return { messageCount: this.#deleteQueue(local, 'queue deleted') };
      }
      case 'purgeQueue': {
        const local = this.#queues.get(op.name);
        if (local === undefined) throw new ManageError('not_found', `no queue '${op.name}' in vhost '/'`);
        return { messageCount: local.queue.purge() };
      }
      case 'declareExchange':
        if (reg.declareExchange(op.name, op.type, { durable: op.durable, autoDelete: op.autoDelete, internal: op.internal, arguments: op.arguments }).created && op.durable) {
          this.#log(op);
        }
        return {};
      case 'deleteExchange':
        if (reg.deleteExchange(op.name).deleted) this.#log(op);
        return {};
      case 'bindQueue': {
        const local = this.#queues.get(op.queue);
        if (local === undefined) throw new ManageError('not_found', `no queue '${op.queue}' in vhost '/'`);
        if (reg.bindQueue(op.exchange, op.queue, op.routingKey, op.arguments) && local.durable) this.#log(op);
        return {};
      }
      case 'unbindQueue':
        reg.unbindQueue(op.exchange, op.queue, op.routingKey, op.arguments);
        if (this.#queues.get(op.queue)?.durable === true) this.#log(op);
        return {};
      case 'bindExchange':
        if (reg.bindExchange(op.destination, op.source, op.routingKey, op.arguments)) this.#log(op);
        return {};
      case 'unbindExchange':
        reg.unbindExchange(op.destination, op.source, op.routingKey, op.arguments);
        this.#log(op);
        return {};
    }
  }

  /** Removes a queue: its consumers are cancelled (they get an error), its messages dropped. */
  #deleteQueue(local: LocalQueue, reason: string): number {
    const { queue } = local;
    const held = queue.depth;
    for (const [connectionId, subs] of this.#connections) {
      for (const [subscriptionId, sub] of subs) {
        if (sub.local !== local) continue;
        // Back to ready first, so what the queue held is counted below in one place.
        queue.removeConsumer(connectionId, subscriptionId);
        subs.delete(subscriptionId);
        this.#counters[CounterSlot.consumers]--;
        const message = `consumer cancelled: ${reason} ('${queue.name}')`;
        this.#control(() => this.#out.error(connectionId, subscriptionId, 'consumer_cancelled', message));
      }
      if (subs.size === 0) this.#connections.delete(connectionId);
    }
    this.#counters[CounterSlot.dropped] += queue.depth + queue.unackedCount;
    // The log drops a deleted queue's messages with the deleteQueue op; only the count moves here.
    for (const m of queue.readyMessages()) if (m.persisted === true) this.#persistedHeld--;
    this.#queues.delete(queue.name);
    this.#registry.removeQueue(queue.name);
    this.#expiry.forget(queue);
    this.#stalled.delete(queue);
    this.#counters[CounterSlot.queues] = this.#queues.size;
    return held;
  }

  /** Deletes a queue the shard decided to delete (auto-delete, x-expires) and tells the main thread. */
  #deleteQueueOnOwnAccord(local: LocalQueue, reason: string): void {
    this.#deleteQueue(local, reason);
    const name = local.queue.name;
    this.#control(() => this.#out.manageReply(0, NO_TOKEN, 0, { event: 'queueDeleted', queue: name }));
  }

  // ---- subscriptions -----------------------------------------------------------------------

  #processSubscribe(offset: number): void {
    const rec = this.#reader.subscribe(offset, this.#sub);
    const local = this.#queues.get(rec.queue);
    if (local === undefined) {
      const { connectionId, subscriptionId, queue } = rec;
      this.#control(() => this.#out.error(connectionId, subscriptionId, 'not_found', `no queue '${queue}' in vhost '/'`));
      return;
    }
    const consumer: Consumer = {
      connectionId: rec.connectionId,
      subscriptionId: rec.subscriptionId,
      ackMode: rec.ackMode === AckModeCode.client ? 'client' : 'auto',
      prefetch: rec.prefetch,
      unacked: 0,
      credit: rec.credit === 0 ? Infinity : rec.credit,
    };
    // A reused subscription id replaces the old consumer. The front never reuses ids, but a
    // replacement must not remove the queue it is about to consume (auto-delete), so the
    // old consumer goes without the auto-delete check when it is on the same queue.
    const previous = this.#connections.get(rec.connectionId)?.get(rec.subscriptionId);
    if (previous !== undefined) this.#processUnsubscribe(rec.connectionId, rec.subscriptionId, previous.local === local);
    let subs = this.#connections.get(rec.connectionId);
    if (subs === undefined) {
      subs = new Map();
      this.#connections.set(rec.connectionId, subs);
    }
    const sub: Subscription = { consumer, local };
    subs.set(rec.subscriptionId, sub);
    local.queue.addConsumer(consumer);
    local.hadConsumer = true;
    this.#counters[CounterSlot.consumers]++;
    this.#dispatch(local.queue);
  }

  #processUnsubscribe(connectionId: number, subscriptionId: number, keepQueue = false): void {
    const subs = this.#connections.get(connectionId);
    const sub = subs?.get(subscriptionId);
    if (subs === undefined || sub === undefined) return;
    subs.delete(subscriptionId);
    if (subs.size === 0) this.#connections.delete(connectionId);
    this.#counters[CounterSlot.consumers]--;
    const { local } = sub;
    const requeued = local.queue.removeConsumer(connectionId, subscriptionId);
    if (!keepQueue && this.#autoDeleteIfUnused(local)) return;
    if (requeued > 0) this.#dispatch(local.queue);
  }

  /** Auto-delete: a queue that had consumers and has none left goes. */
  #autoDeleteIfUnused(local: LocalQueue): boolean {
    if (!local.autoDelete || !local.hadConsumer || local.queue.consumerCount > 0) return false;
    this.#deleteQueueOnOwnAccord(local, 'auto-delete queue lost its last consumer');
    return true;
  }

  #processConnectionClosed(connectionId: number): void {
    const subs = this.#connections.get(connectionId);
    if (subs === undefined) return;
    // Remove every consumer of the connection before dispatching anything: otherwise a message
    // requeued from one of its subscriptions could be handed to another one that is closing too.
    this.#connections.delete(connectionId);
    const touched = new Set<LocalQueue>();
    for (const sub of subs.values()) {
      this.#counters[CounterSlot.consumers]--;
      sub.local.queue.removeConsumer(connectionId, sub.consumer.subscriptionId);
      touched.add(sub.local);
    }
    for (const local of touched) {
      if (!this.#autoDeleteIfUnused(local)) this.#dispatch(local.queue);
    }
  }

  #processCredit(connectionId: number, subscriptionId: number, count: number): void {
    const sub = this.#connections.get(connectionId)?.get(subscriptionId);
    if (sub === undefined) return;
    sub.consumer.credit += count;
    this.#dispatch(sub.local.queue);
  }

  // ---- acks --------------------------------------------------------------------------------

  #processSettle(connectionId: number, tag: number, ack: boolean, requeue: boolean): void {
    const subs = this.#connections.get(connectionId);
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
        this.#dispatch(queue);
        return;
      }
    }
    const message = `delivery tag ${tag} is not an unacked delivery of this connection (already settled, or its shard restarted)`;
    this.#control(() => this.#out.error(connectionId, 0, 'unknown_tag', message));
  }

  #dispatch(queue: MessageQueue): void {
    if (this.#outboundFull) {
      this.#stalled.add(queue);
      return;
    }
    queue.dispatch();
    if (this.#outboundFull) this.#stalled.add(queue);
  }

  // ---- timers ------------------------------------------------------------------------------

  #armExpiryTimer(): void {
    const at = this.#expiry.nextDeadline();
    if (at === Infinity || at >= this.#expiryAt) return;
    if (this.#expiryTimer !== null) clearTimeout(this.#expiryTimer);
    this.#expiryAt = at;
    // One timer for the whole shard, at the earliest deadline the wheel knows.
    this.#expiryTimer = setTimeout(this.#onExpiryTimer, Math.max(0, at - this.#now()));
  }

  readonly #onExpiryTimer = (): void => {
    this.#expiryTimer = null;
    this.#expiryAt = Infinity;
    this.#expiry.run(this.#now());
    if (this.#deadLetters.length > 0) this.#republishDeadLetters();
    for (const local of this.#queues.values()) if (local.queue.depth > 0) this.#dispatch(local.queue);
    this.#out.ring.commit();
    this.#armExpiryTimer();
  };

  #startIdleSweep(): void {
    if (this.#idleTimer !== null) return;
    this.#idleTimer = setInterval(() => {
      const now = this.#now();
      for (const local of [...this.#queues.values()]) {
        if (local.queue.idleDeadline() <= now) this.#deleteQueueOnOwnAccord(local, 'queue expired (x-expires)');
      }
      this.#out.ring.commit();
    }, IDLE_SWEEP_MS);
    this.#idleTimer.unref?.();
  }

  /** Writes a control record now, or keeps it for when the outbound ring has room. */
  #control(write: () => boolean): void {
    if (this.#pendingControl.length === 0 && write()) return;
    this.#outboundFull = true;
    this.#pendingControl.push(write);
  }
}

/** A topology operation the shard refuses (AMQP reply name as `code`). */
class ManageError extends Error {
  override readonly name = 'ManageError';
  readonly code: string;

  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}
