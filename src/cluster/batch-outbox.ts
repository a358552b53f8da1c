/**
 * What this node sends to the others (main thread): publishes to exchanges, batched per NATS
 * subject per event-loop turn, and publishes to queues on other nodes, batched per node and queue,
 * whose publishers wait for that node's answer. Bounded: bytes NATS has not acknowledged (one flush
 * round trip at a time) stay under --cluster-buffer-bytes; past it, and while NATS is away, a message
 * does not cross and is counted (a queue publisher is refused, never confirmed).
 */
import { ForwardBatchBuilder } from './forward-batch.js';
import { publishSubject } from './subject-map.js';
import { nodeSubject } from './cluster-queues.js';
import { ConfirmStatus, NO_TOKEN } from '../protocol/ring-record-codec.js';
import type { Logger } from '../log/logger.js';

/** A batch is published once it holds this much, even mid-turn (NATS's default max_payload is 1 MiB). */
const MAX_BATCH_BYTES = 256 * 1024;
/** A queue batch's publishers are refused when its node has not answered in this long (it is up, but the answer was lost). */
export const ANSWER_TIMEOUT_MS = 10_000;

/** A queue node's answer to a batch published with a reply subject. */
export interface BatchAnswer {
  readonly seq: number;
  readonly ok: boolean;
}

export interface OutboxParts {
  /** This process's boot id (receivers drop a second copy of a batch by it and the sequence). */
  readonly boot: string;
  readonly self: string;
  readonly bufferBytes: number;
  /** NATS's max_payload for the server in use. */
  maxPayload(): number;
  /** Publishes on NATS (throws when the client cannot take it). */
  publish(subject: string, data: Uint8Array, reply?: string): void;
  /** Resolves when NATS has everything published before (a PING/PONG round trip). */
  flush(): Promise<void>;
  readonly confirms: { settle(token: number, status: ConfirmStatus): void };
  /** Confirms were settled outside a shard's chunk: let the fronts write what they produced. */
  afterSettles(): void;
  /** What NATS has not acknowledged fell to half the buffer or below (publishers may go on). */
  roomAgain(): void;
  readonly log: Logger;
}

/** One subject's batch of this turn; a queue batch also collects the confirm tokens of its publishes. */
interface BatchEntry {
  readonly subject: string;
  batch: ForwardBatchBuilder;
  /** The queue's node, for a queue batch; null for an exchange's. */
  readonly node: string | null;
  tokens: number[];
}

export class BatchOutbox {
  readonly #p: OutboxParts;
  /**
   * This turn's batches: exchange → routing key → batch; a queue forward's outer key is its node's
   * name after a \u0001 (no exchange name holds a control character).
   */
  readonly #batches = new Map<string, Map<string, BatchEntry>>();
  /** Queue batches whose publishers wait for the queue's node to say it has them: seq → node and tokens. */
  readonly #awaiting = new Map<number, { readonly node: string; readonly tokens: readonly number[]; readonly at: number }>();
  #flushScheduled = false;
  #seq = 0;
  /** Bytes and messages published since NATS last acknowledged (a flush round trip). */
  #unackedBytes = 0;
  #unackedMessages = 0;
  #acking = false;
  /** Bumped at each disconnect: a flush answered after it no longer acknowledges anything. */
  #ackEpoch = 0;
  #warnedTooLarge = false;
  #warnedOver = false;
  /** False while NATS is away; nothing is handed to it then. */
  connected = true;
  stopped = false;
  readonly figures = {
    messages: 0,
    batches: 0,
    bytes: 0,
    droppedOverBuffer: 0,
    droppedTooLarge: 0,
    droppedDisconnected: 0,
    inFlightAtDisconnect: 0,
    toQueues: 0,
  };

  constructor(parts: OutboxParts) {
    this.#p = parts;
  }

  get unacknowledgedBytes(): number {
    return this.#unackedBytes;
  }

  /** What NATS has not acknowledged is at most half the buffer: publishers' credit may flow. */
  get hasRoom(): boolean {
    return this.#unackedBytes * 2 <= this.#p.bufferBytes;
  }

  /** A publish to an exchange, once its local copies are in: into its subject's batch. */
  forward(exchange: string, routingKey: string, properties: Uint8Array | null, payload: Uint8Array): void {
    if (this.stopped) return;
    if (!this.connected) {
      // NATS is away: nothing can cross now (and a server that just came back may not yet know the
      // others' interest). Counted, never silent; local subscribers still got it.
      this.figures.droppedDisconnected++;
      return;
    }
    const recordBytes = ForwardBatchBuilder.recordBytes(properties, payload);
    if (!this.#room(recordBytes)) return;
    this.#enqueue(exchange, null, exchange, routingKey, properties, payload, recordBytes, NO_TOKEN);
  }

  /** A publish to `/queue/<queue>` on `node`; a refused one's `token` is settled as not taken at once. */
  forwardToQueue(node: string, queue: string, properties: Uint8Array | null, payload: Uint8Array, token: number): void {
    // Not taken: its publisher is told (a nack, a 503), not left believing it is held.
    if (!this.#takeForQueue(node, queue, properties, payload, token) && token !== NO_TOKEN) {
      this.#p.confirms.settle(token, ConfirmStatus.nodeUnavailable);
    }
  }

  #takeForQueue(node: string, queue: string, properties: Uint8Array | null, payload: Uint8Array, token: number): boolean {
    if (this.stopped) return false;
    if (!this.connected) {
      this.figures.droppedDisconnected++;
      return false;
    }
    const recordBytes = ForwardBatchBuilder.recordBytes(properties, payload);
    if (!this.#room(recordBytes)) return false;
    this.figures.toQueues++;
    return this.#enqueue('\u0001' + node, node, '', queue, properties, payload, recordBytes, token);
  }

  #room(recordBytes: number): boolean {
    if (this.#unackedBytes + recordBytes <= this.#p.bufferBytes) return true;
    this.figures.droppedOverBuffer++;
    if (!this.#warnedOver) {
      this.#warnedOver = true;
      this.#p.log.warn(
        { bufferBytes: this.#p.bufferBytes },
        'cluster: NATS is not keeping up; dropping forwarded messages (counted in /v1/cluster)',
      );
    }
    return false;
  }

  /**
   * Adds a record to its subject's batch of this turn (an exchange's subject, or with `node` that
   * node's queue subject); false when it cannot cross (larger than NATS takes).
   */
  #enqueue(
    outer: string,
    node: string | null,
    exchange: string,
    routingKey: string,
    properties: Uint8Array | null,
    payload: Uint8Array,
    recordBytes: number,
    token: number,
  ): boolean {
    const maxPayload = this.#p.maxPayload();
    let perKey = this.#batches.get(outer);
    if (perKey === undefined) this.#batches.set(outer, (perKey = new Map()));
    let entry = perKey.get(routingKey);
    if (entry === undefined) {
      const subject = node === null ? publishSubject(exchange, routingKey) : nodeSubject(node, 'q');
      entry = { subject, batch: new ForwardBatchBuilder(this.#p.boot, exchange, routingKey), node, tokens: [] };
      perKey.set(routingKey, entry);
    }
    if (entry.batch.byteLength + recordBytes > Math.min(MAX_BATCH_BYTES, maxPayload)) {
      if (entry.batch.count > 0) {
        this.#publishBatch(entry);
        entry.batch = new ForwardBatchBuilder(this.#p.boot, exchange, routingKey);
        entry.tokens = [];
      }
      if (entry.batch.byteLength + recordBytes > maxPayload) {
        this.figures.droppedTooLarge++;
        if (!this.#warnedTooLarge) {
          this.#warnedTooLarge = true;
          this.#p.log.warn(
            { bytes: payload.byteLength, maxPayload },
            "cluster: a message larger than NATS's max_payload stays on this node (counted)",
          );
        }
        return false;
      }
    }
    entry.batch.add(properties, payload);
    if (token !== NO_TOKEN) entry.tokens.push(token);
    this.#unackedBytes += recordBytes;
    this.#unackedMessages++;
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      setImmediate(this.flush);
    }
    return true;
  }

  /** Publishes this turn's batches (at the end of the turn, and before leaving). */
  readonly flush = (): void => {
    this.#flushScheduled = false;
    for (const perKey of this.#batches.values()) {
      for (const entry of perKey.values()) if (entry.batch.count > 0) this.#publishBatch(entry);
    }
    this.#batches.clear();
    this.#ack();
  };

  #publishBatch(entry: BatchEntry): void {
    const { batch, tokens } = entry;
    const seq = ++this.#seq;
    const data = batch.finish(seq);
    try {
      // Publishers wait for this batch: its queue's node answers on our answer subject once it has it.
      if (tokens.length > 0 && entry.node !== null) {
        this.#p.publish(entry.subject, data, nodeSubject(this.#p.self, 'a'));
        this.#awaiting.set(seq, { node: entry.node, tokens, at: Date.now() });
      } else this.#p.publish(entry.subject, data);
      this.figures.messages += batch.count;
      this.figures.batches++;
      this.figures.bytes += data.byteLength;
    } catch (err) {
      this.figures.droppedOverBuffer += batch.count;
      this.#awaiting.delete(seq);
      for (const t of tokens) this.#p.confirms.settle(t, ConfirmStatus.nodeUnavailable);
      this.#p.log.warn({ err, messages: batch.count }, 'cluster: forward batch not published (counted as dropped)');
    }
  }

  /** A queue node answered a batch: its publishers' confirms (or refusals). */
  onAnswer(answer: BatchAnswer): void {
    const waiting = this.#awaiting.get(answer.seq);
    if (waiting === undefined) return;
    this.#awaiting.delete(answer.seq);
    for (const t of waiting.tokens) this.#p.confirms.settle(t, answer.ok ? ConfirmStatus.ok : ConfirmStatus.nodeUnavailable);
    this.#p.afterSettles();
  }

  /** Batches waiting for an answer that will not come (their node went, NATS did, or `before` passed): refused. */
  failAwaiting(node: string | null, before = Number.POSITIVE_INFINITY): void {
    let failed = false;
    for (const [seq, w] of this.#awaiting) {
      if (node !== null && w.node !== node) continue;
      if (w.at >= before) continue;
      this.#awaiting.delete(seq);
      for (const t of w.tokens) this.#p.confirms.settle(t, ConfirmStatus.nodeUnavailable);
      failed = true;
    }
    if (failed) this.#p.afterSettles();
  }

  /** Answers overdue (ANSWER_TIMEOUT_MS) are given up on. */
  sweep(now: number): void {
    if (this.#awaiting.size > 0) this.failAwaiting(null, now - ANSWER_TIMEOUT_MS);
  }

  /**
   * The NATS connection dropped: what it had not acknowledged may not have crossed (counted, never
   * silent), and no answer will come over it.
   */
  disconnected(): number {
    const unacknowledged = this.#unackedMessages;
    this.connected = false;
    this.figures.inFlightAtDisconnect += unacknowledged;
    this.#unackedBytes = 0;
    this.#unackedMessages = 0;
    this.#acking = false;
    this.#ackEpoch++;
    this.failAwaiting(null);
    this.#p.roomAgain();
    return unacknowledged;
  }

  /** One flush round trip at a time: when NATS answers, what was published before it is acknowledged. */
  #ack(): void {
    if (this.#acking || this.#unackedMessages === 0 || this.stopped) return;
    this.#acking = true;
    const bytes = this.#unackedBytes;
    const messages = this.#unackedMessages;
    const epoch = this.#ackEpoch;
    this.#p.flush().then(
      () => {
        if (epoch !== this.#ackEpoch) return;
        this.#acking = false;
        const hadRoom = this.hasRoom;
        this.#unackedBytes -= bytes;
        this.#unackedMessages -= messages;
        if (this.#unackedBytes < this.#p.bufferBytes / 2) this.#warnedOver = false;
        this.#ack();
        if (!hadRoom && this.hasRoom) this.#p.roomAgain();
      },
      () => {
        if (epoch === this.#ackEpoch) this.#acking = false;
      },
    );
  }
}
