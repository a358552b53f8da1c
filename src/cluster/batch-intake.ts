/**
 * What this node takes from the others (main thread): forward batches, routed by this node's own
 * topology into its rings (never forwarded again), the second copy of a batch dropped (two of this
 * node's subjects matched it). A full ring makes records wait here, in order, bounded by
 * --cluster-buffer-bytes (past it dropped and counted; the count goes out in this node's heartbeat).
 * A queue batch with a reply subject is answered once its last record is in, or, for a durable or
 * refusing queue, when its shard confirmed that record (after the fsync that covers it).
 */
import { decodeForwardBatch, ForwardBatchBuilder, type ForwardBatchHeader } from './forward-batch.js';
import type { BatchAnswer } from './batch-outbox.js';
import { ConfirmStatus, NO_TOKEN } from '../protocol/ring-record-codec.js';
import type { PublishPath, PublishTarget } from '../control/publish-path.js';
import type { Logger } from '../log/logger.js';

/** Messages waiting for ring room are retried at least this often when no room event comes. */
const ROOM_WAIT_MS = 1000;

export interface IntakeParts {
  readonly publisher: PublishPath;
  readonly bufferBytes: number;
  readonly confirms: {
    settle(token: number, status: ConfirmStatus): void;
    allocate(shards: readonly number[], done: (status: ConfirmStatus) => void): number;
  };
  /** Publishes an answer on NATS. */
  publish(subject: string, data: Uint8Array): void;
  /** `pressed` changed: messages waiting here passed a quarter of the buffer, or fell back under it. */
  pressureChanged(pressed: boolean): void;
  readonly log: Logger;
}

interface Waiting {
  readonly target: PublishTarget;
  from: number;
  readonly properties: Uint8Array | null;
  readonly payload: Uint8Array;
  /** The last record of a batch whose sender waits for an answer: sent once this one is in. */
  answer: (() => void) | null;
  /** Its confirm token (the last record of a batch for a durable or refusing queue), else NO_TOKEN. */
  readonly token: number;
}

export class BatchIntake {
  readonly #p: IntakeParts;
  /** Highest batch sequence seen per sending boot (the second copy of a batch is dropped). */
  readonly #lastSeq = new Map<string, number>();
  readonly #waiting: Waiting[] = [];
  #waitingHead = 0;
  #waitingBytes = 0;
  #draining = false;
  stopped = false;
  readonly figures = { messages: 0, batches: 0, duplicateBatches: 0, unknownExchange: 0, badBatches: 0, dropped: 0 };

  constructor(parts: IntakeParts) {
    this.#p = parts;
  }

  get waitingBytes(): number {
    return this.#waitingBytes;
  }

  /**
   * More than a quarter of the buffer waits for ring room: the senders are asked to hold their
   * publishers (this node's heartbeat says so) long before the bound drops anything.
   */
  get pressed(): boolean {
    return this.#waitingBytes * 4 > this.#p.bufferBytes;
  }

  #pressed = false;

  #checkPressure(): void {
    const now = this.pressed;
    if (now === this.#pressed) return;
    this.#pressed = now;
    this.#p.pressureChanged(now);
  }

  /** A sender's incarnation is gone: its sequence is forgotten. */
  forgetBoot(boot: string): void {
    this.#lastSeq.delete(boot);
  }

  /** A forward batch: publishes to an exchange (routed here exactly), or with `toQueue` to a queue of this node (declared on first use). */
  onBatch(data: Uint8Array, toQueue: boolean, reply: string | null): void {
    let target: PublishTarget | null = null;
    let seq = -1;
    let count = 0;
    let index = 0;
    let dropped = false;
    let last: Waiting | null = null;
    // A durable (or refusing) queue answers for itself: its shard confirms the batch's last record
    // (after the fsync that covers it), and that confirm is the answer.
    let shardToken = NO_TOKEN;
    const answer = (ok: boolean): void => {
      if (reply !== null) this.#p.publish(reply, Buffer.from(JSON.stringify({ seq, ok } satisfies BatchAnswer)));
    };
    const publisher = this.#p.publisher;
    try {
      decodeForwardBatch(
        data,
        (h) => {
          if (!this.#fresh(h)) return false;
          seq = h.seq;
          count = h.count;
          this.figures.batches++;
          if (toQueue) publisher.ensureQueue(h.routingKey);
          target = publisher.localTarget(toQueue ? '' : h.exchange, h.routingKey);
          if (target === null) {
            this.figures.unknownExchange += h.count;
            return false;
          }
          return true;
        },
        (properties, payload) => {
          const t = target as PublishTarget;
          let token = NO_TOKEN;
          if (++index === count && reply !== null && t.confirmFromShard && t.shards.length > 0) {
            token = shardToken = this.#p.confirms.allocate(t.shards, (status) => answer(status === ConfirmStatus.ok));
          }
          const r = this.#deliverLocal(t, properties, payload, token);
          if (r === 'dropped') dropped = true;
          else if (r !== 'written') last = r;
        },
      );
    } catch (err) {
      this.figures.badBatches++;
      dropped = true;
      this.#p.log.warn({ err }, 'cluster: unreadable forward batch skipped');
    }
    if (reply === null || seq < 0) return;
    // The sender's publishers wait: answered once every record is in a ring (after the last that had
    // to wait), or by the queue's shard when it confirms.
    const waitingFor = last as Waiting | null;
    if (dropped || target === null) {
      if (shardToken !== NO_TOKEN) this.#p.confirms.settle(shardToken, ConfirmStatus.rejected);
      else answer(false);
    } else if (shardToken !== NO_TOKEN) return;
    else if (waitingFor !== null) waitingFor.answer = () => answer(true);
    else answer(true);
  }

  /** False for the second copy of a batch (two of this node's subjects matched it). */
  #fresh(h: ForwardBatchHeader): boolean {
    const last = this.#lastSeq.get(h.boot);
    if (last !== undefined && h.seq <= last) {
      this.figures.duplicateBatches++;
      return false;
    }
    this.#lastSeq.set(h.boot, h.seq);
    return true;
  }

  /** Into the rings now ('written'), or waiting for room (the entry), or over the bound ('dropped'). */
  #deliverLocal(target: PublishTarget, properties: Uint8Array | null, payload: Uint8Array, token: number): 'written' | 'dropped' | Waiting {
    this.figures.messages++;
    const publisher = this.#p.publisher;
    // Behind messages already waiting for room, a message waits too (order per sender and key).
    let from = 0;
    if (this.#waitingHead === this.#waiting.length) {
      from = publisher.write(target, 0, token, properties, payload);
      if (from === target.shards.length) return 'written';
    }
    const bytes = ForwardBatchBuilder.recordBytes(properties, payload);
    if (this.#waitingBytes + bytes > this.#p.bufferBytes) {
      this.figures.dropped++;
      return 'dropped';
    }
    this.#waitingBytes += bytes;
    const w: Waiting = {
      target,
      from,
      properties: properties === null ? null : properties.slice(),
      payload: payload.slice(),
      answer: null,
      token,
    };
    this.#waiting.push(w);
    this.#checkPressure();
    if (!this.#draining) void this.#drainWaiting();
    return w;
  }

  async #drainWaiting(): Promise<void> {
    this.#draining = true;
    const publisher = this.#p.publisher;
    try {
      while (this.#waitingHead < this.#waiting.length && !this.stopped) {
        const w = this.#waiting[this.#waitingHead];
        if (w.from < w.target.shards.length) {
          const room = await publisher.waitForRoom(w.target, w.from, ROOM_WAIT_MS);
          if (!room) await new Promise((r) => setTimeout(r, 20));
          w.from = publisher.write(w.target, 0, w.token, w.properties, w.payload, 0, w.from);
          if (w.from < w.target.shards.length) continue;
        }
        this.#waitingBytes -= ForwardBatchBuilder.recordBytes(w.properties, w.payload);
        this.#waitingHead++;
        w.answer?.();
        this.#checkPressure();
        if (this.#waitingHead > 1024 && this.#waitingHead * 2 > this.#waiting.length) {
          this.#waiting.splice(0, this.#waitingHead);
          this.#waitingHead = 0;
        }
      }
    } finally {
      this.#draining = false;
    }
  }
}
