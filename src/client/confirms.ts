/**
 * Publisher confirms on one connection (docs/protocol.md §6): after CONFIRM_SELECT the broker
 * numbers this connection's publishes 1, 2, 3… in the order it decodes them, which is the order the
 * client wrote them, and settles each number exactly once, acked or nacked, with MULTIPLE where it
 * can, not necessarily in order.
 *
 * Unconfirmed numbers live in a Map in insertion (= ascending) order, so a MULTIPLE settles a
 * prefix by iterating from the front, and the lowest unconfirmed number is the first key. `flush()`
 * waiters wait for everything up to the number that was last given out when they were created.
 */
import type { ShardmqError } from './errors.js';

/** How an awaited publish is told its outcome; fire-and-forget publishes have none (null). */
export interface Settle {
  resolve(): void;
  reject(err: ShardmqError): void;
}

interface FlushWaiter {
  readonly upTo: number;
  readonly resolve: () => void;
  readonly reject: (err: ShardmqError) => void;
  /** The first fire-and-forget failure at or below `upTo`. */
  error: ShardmqError | null;
}

/** What one settle did, so the caller can tell whether anyone heard about a failure. */
export interface SettleOutcome {
  /** Awaited publishes that were rejected (their callers heard). */
  rejected: number;
  /** Fire-and-forget publishes that failed (only flush() or an 'error' event can tell). */
  failedNoWait: number;
}

export class PublishConfirms {
  /** Last number given out on the current connection. */
  #last = 0;
  readonly #pending = new Map<number, Settle | null>();
  #waiters: FlushWaiter[] = [];
  /** A fire-and-forget failure no flush() waiter covered yet: the next flush() reports it. */
  #failureSinceFlush: ShardmqError | null = null;

  /** Publishes sent and not yet confirmed. */
  get unconfirmed(): number {
    return this.#pending.size;
  }

  /** Gives the next number to a publish that is being written into a frame now. */
  add(settle: Settle | null): number {
    const seq = ++this.#last;
    this.#pending.set(seq, settle);
    return seq;
  }

  /** Settles `seq` (with `multiple`, every unconfirmed number ≤ seq): acked when `error` is null. */
  settle(seq: number, multiple: boolean, error: ShardmqError | null, out: SettleOutcome): void {
    if (multiple) {
      for (const [s, settle] of this.#pending) {
        if (s > seq) break;
        this.#pending.delete(s);
        this.#one(s, settle, error, out);
      }
    } else {
      const settle = this.#pending.get(seq);
      if (settle === undefined) return; // unknown or already settled: the broker confirms each once
      this.#pending.delete(seq);
      this.#one(seq, settle, error, out);
    }
    this.#checkWaiters();
  }

  /**
   * Resolves once every publish given a number so far is confirmed; rejects with the first failure
   * among the fire-and-forget ones since the previous flush() (awaited ones reject their own call).
   */
  waitForAll(): Promise<void> {
    const error = this.#failureSinceFlush;
    this.#failureSinceFlush = null;
    return new Promise<void>((resolve, reject) => {
      this.#waiters.push({ upTo: this.#last, resolve, reject, error });
      this.#checkWaiters();
    });
  }

  /** A fire-and-forget publish failed before it was sent: the next flush() rejects with `error`. */
  recordFailure(error: ShardmqError): void {
    for (const w of this.#waiters) w.error ??= error;
    if (this.#waiters.length === 0) this.#failureSinceFlush ??= error;
  }

  /**
   * The connection is gone: every unconfirmed publish fails with `error` (its outcome is unknown),
   * flush() waiters reject, and numbering restarts at 1 on the next connection.
   */
  failAll(error: ShardmqError): void {
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    this.#last = 0;
    const waiters = this.#waiters;
    this.#waiters = [];
    let noWait = false;
    for (const settle of pending) {
      if (settle === null) noWait = true;
      else settle.reject(error);
    }
    for (const w of waiters) w.reject(w.error ?? error);
    if (noWait && waiters.length === 0) this.#failureSinceFlush ??= error;
  }

  #one(seq: number, settle: Settle | null, error: ShardmqError | null, out: SettleOutcome): void {
    if (error === null) {
      settle?.resolve();
      return;
    }
    if (settle !== null) {
      settle.reject(error);
      out.rejected++;
      return;
    }
    out.failedNoWait++;
    let covered = false;
    for (const w of this.#waiters) {
      if (w.upTo < seq) continue;
      covered = true;
      w.error ??= error;
    }
    if (!covered) this.#failureSinceFlush ??= error;
  }

  #checkWaiters(): void {
    if (this.#waiters.length === 0) return;
    const first = this.#pending.keys().next();
    const confirmedUpTo = first.done === true ? this.#last : first.value - 1;
    let kept = 0;
    for (const w of this.#waiters) {
      if (w.upTo > confirmedUpTo) {
        this.#waiters[kept++] = w;
        continue;
      }
      if (w.error === null) w.resolve();
      else w.reject(w.error);
    }
    this.#waiters.length = kept;
  }
}
