import { decodeProperties } from '../protocol/properties.js';
import { ConfirmStatus, type ManageOp } from '../protocol/ring-record-codec.js';
import type { MessageQueue } from '../queue/message-queue.js';
import type { MessageProperties, StoredMessage } from '../queue/types.js';
import { CounterSlot } from '../metrics/shard-counters.js';
import type { MessageStore, RecoveryResult, RecoveryStats } from '../store/store.js';
import type { EncodedProperties } from './encoded-properties.js';
import type { LocalQueue } from './local-queue.js';
import type { ShardOutbound } from './shard-outbound.js';

/** What a shard recovered from its log at start, for the main thread's topology and the log. */
export interface RecoverySummary {
  readonly topology: ManageOp[];
  readonly messages: number;
  /** Queues whose declaration was lost to log damage, declared again (durable, default arguments) for their messages. */
  readonly recreatedQueues: readonly string[];
  readonly stats: RecoveryStats;
  /** What the streams on disk held (set by ShardCore after the log's replay declared them). */
  readonly streams?: StreamsRecovered;
}

/** The streams' files as recovery found them. */
export interface StreamsRecovered {
  readonly streams: number;
  readonly entries: number;
  readonly corruptSkipped: number;
  readonly tornBytesTruncated: number;
  /** Directories no declared stream owned, moved aside (their ids). */
  readonly orphaned: readonly string[];
}

/** Where recovery replays the log (ShardTopology). */
export interface ReplayTarget {
  /** Applies an op; throws when it no longer applies. */
  manage(op: ManageOp): unknown;
  queue(name: string): LocalQueue | undefined;
}

interface AwaitingConfirm {
  readonly lsn: number;
  /** The stream append number it waits for too (0: it went to no stream on disk). */
  readonly streamSeq: number;
  readonly connectionId: number;
  readonly token: number;
  readonly status: ConfirmStatus;
}

/**
 * The shard's log (with --data-dir): persistent messages to durable queues, their removals and
 * the durable topology are appended to the store, and the confirms of such messages wait until
 * the store says they are on disk. At start, `recover()` rebuilds the durable state from it.
 * Without a store nothing is logged and every confirm goes out at once.
 */
export class ShardDurability {
  readonly #store: MessageStore | null;
  readonly #onStoreError: ((err: Error) => void) | undefined;
  readonly #outbound: ShardOutbound;
  readonly #encoded: EncodedProperties;
  readonly #counters: Float64Array;
  /** Confirms waiting until the store has made their messages durable, in LSN (and stream number) order. */
  readonly #awaitingDurable: AwaitingConfirm[] = [];
  /** The highest LSN the log reported durable. */
  #durableLsn = 0;
  /** The highest stream append number the stream store reported durable. */
  #durableStreamSeq = 0;
  #appended = false;
  /** Replaying the log: topology ops are applied but not logged again. */
  #recovering = false;
  /** Persistent messages held (ready or unacked). */
  #persistedHeld = 0;

  constructor(
    store: MessageStore | null,
    onStoreError: ((err: Error) => void) | undefined,
    outbound: ShardOutbound,
    encoded: EncodedProperties,
    counters: Float64Array,
  ) {
    this.#store = store;
    this.#onStoreError = onStoreError;
    this.#outbound = outbound;
    this.#encoded = encoded;
    this.#counters = counters;
    if (store !== null) {
      store.onDurable = (lsn) => this.#onDurable(lsn);
      store.onFlushError = (err, upTo) => this.#onFlushError(err, upTo);
    }
  }

  /** Appends a persistent message to the log; returns its LSN. Only with a store. */
  persist(queue: string, message: StoredMessage): number {
    const store = this.#store as MessageStore;
    message.persisted = true;
    this.#persistedHeld++;
    this.#appended = true;
    const props = message.properties === null ? null : this.#encoded.bytes(message.properties);
    return store.appendMessage({
      queue,
      id: message.seq,
      exchange: message.exchange,
      routingKey: message.routingKey,
      properties: props,
      payload: message.payload,
    });
  }

  /**
   * The confirm of a publish persisted up to `lsn` in the log and appended up to `streamSeq` to
   * streams on disk (either 0: none) goes out once both are durable. Publishes come in order, so
   * both numbers only grow along the waiting list.
   */
  confirmWhenDurable(lsn: number, streamSeq: number, connectionId: number, token: number, status: ConfirmStatus): void {
    this.#awaitingDurable.push({ lsn, streamSeq, connectionId, token, status });
  }

  /** The stream store made every append up to `seq` durable. */
  streamsDurable(seq: number): void {
    this.#durableStreamSeq = seq;
    this.#release();
  }

  /**
   * A stream flush failed: the publishers of appends up to `seq` not yet durable are told (they may
   * retry: at-least-once; the appends stay pending and are written again).
   */
  streamFlushFailed(err: Error, seq: number): void {
    this.#onStoreError?.(err);
    this.#refuse((w) => w.streamSeq > this.#durableStreamSeq && w.streamSeq <= seq);
  }

  /** MessageQueueOptions.onRemoved for `queue`: none without a store. */
  removalHook(queue: string): ((message: StoredMessage) => void) | undefined {
    return this.#store === null ? undefined : (m) => this.#removed(queue, m);
  }

  /** A persistent message left its queue for good: log the removal. */
  #removed(queue: string, message: StoredMessage): void {
    if (message.persisted !== true || this.#store === null) return;
    message.persisted = false;
    this.#persistedHeld--;
    this.#appended = true;
    this.#store.appendRemove(queue, message.seq);
  }

  /** A queue is being deleted (after its consumers are cancelled, so its unacked messages are ready again). */
  forgetQueue(queue: MessageQueue): void {
    // The log drops a deleted queue's messages with the deleteQueue op; only the count moves here.
    for (const m of queue.readyMessages()) if (m.persisted === true) this.#persistedHeld--;
  }

  /** Logs a topology op of a durable entity (not while replaying the log itself). */
  log(op: ManageOp): void {
    if (this.#store === null || this.#recovering) return;
    this.#store.appendTopology(op);
    this.#appended = true;
  }

  /** Called once per drained batch. */
  endBatch(): void {
    if (this.#appended) {
      // Group commit: one flush request per drained batch; the store's policy (always|batch)
      // decides when the write and fsync happen.
      this.#appended = false;
      this.#store?.requestFlush();
    }
    this.#counters[CounterSlot.durable] = this.#persistedHeld;
  }

  /** The store made everything up to `lsn` durable: the confirms that waited for it go out. */
  #onDurable(lsn: number): void {
    this.#durableLsn = lsn;
    this.#release();
  }

  #release(): void {
    const waiting = this.#awaitingDurable;
    const lsn = this.#durableLsn;
    const seq = this.#durableStreamSeq;
    let n = 0;
    while (n < waiting.length && waiting[n].lsn <= lsn && waiting[n].streamSeq <= seq) n++;
    if (n === 0) {
      this.#outbound.commit();
      return;
    }
    for (const w of waiting.splice(0, n)) this.#outbound.confirm(w.connectionId, w.token, w.status);
    this.#outbound.commit();
  }

  /**
   * A flush failed (ENOSPC, EIO): the publishers waiting on it are told their messages are not
   * durable (they may retry: at-least-once). Nothing durable is touched; the store truncates the
   * partial write and retries, and confirms resume with the next successful flush.
   */
  #onFlushError(err: Error, failedUpToLsn: number): void {
    this.#onStoreError?.(err);
    this.#refuse((w) => w.lsn > this.#durableLsn && w.lsn <= failedUpToLsn);
  }

  /** Tells the publishers waiting in `failed` their messages are not durable (one confirm per publish). */
  #refuse(failed: (w: AwaitingConfirm) => boolean): void {
    const kept: AwaitingConfirm[] = [];
    for (const w of this.#awaitingDurable) {
      if (failed(w)) this.#outbound.confirm(w.connectionId, w.token, ConfirmStatus.storageFailed);
      else kept.push(w);
    }
    this.#awaitingDurable.length = 0;
    this.#awaitingDurable.push(...kept);
    this.#outbound.commit();
  }

  /**
   * Rebuilds the durable state from the log, before anything else: the topology first, then
   * every message not removed, back in its queue as `redelivered` (it may have been delivered
   * before the crash; RabbitMQ marks such messages the same way).
   */
  recover(result: RecoveryResult, topology: ReplayTarget): RecoverySummary {
    this.#recovering = true;
    const applied: ManageOp[] = [];
    try {
      for (const op of result.topology as ManageOp[]) {
        try {
          topology.manage(op);
          applied.push(op);
        } catch {
          // An op the log kept but that no longer applies (e.g. a binding to an exchange that is
          // gone) is skipped; the store only keeps replayable ops, so this is rare.
        }
      }
      let messages = 0;
      const recreated: string[] = [];
      for (const m of result.messages) {
        let local = topology.queue(m.queue);
        if (local === undefined) {
          // Its declaration was in a damaged record (a segment header's snapshot, a topology
          // record): keep the messages, in a durable queue with default arguments, and say so.
          const op: ManageOp = { op: 'declareQueue', name: m.queue, durable: true, exclusive: false, autoDelete: false, arguments: {} };
          topology.manage(op);
          applied.push(op);
          recreated.push(m.queue);
          local = topology.queue(m.queue)!;
        }
        const properties = m.properties === null ? null : (decodeProperties(m.properties, 0, m.properties.byteLength) as MessageProperties);
        if (properties !== null && m.properties !== null) this.#encoded.remember(properties, m.properties);
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
      return { topology: applied, messages, recreatedQueues: recreated, stats: result.stats };
    } finally {
      this.#recovering = false;
    }
  }

  /** Flushes and closes the log. */
  async close(): Promise<void> {
    await this.#store?.close();
  }
}
