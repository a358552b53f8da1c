/**
 * The ready messages of one queue, kept sorted by `seq` (publish order).
 *
 * RabbitMQ puts a requeued message back at its original position, so "position" here is simply
 * seq order: new messages arrive with the highest seq (push), and requeued ones are merged in.
 * The common requeue (a consumer goes away holding messages older than everything still ready)
 * only prepends. Also tracks the payload bytes held, for the caller's limits.
 */
import { Deque } from './deque.js';
import type { MessageGauges } from './message-gauges.js';
import type { StoredMessage } from './types.js';

const bySeq = (a: StoredMessage, b: StoredMessage): number => a.seq - b.seq;

export class ReadyList {
  readonly #messages = new Deque<StoredMessage>();
  #bytes = 0;
  /** The shard's totals this list counts into (null: none, or detached with its queue). */
  #gauges: MessageGauges | null;

  constructor(gauges: MessageGauges | null = null) {
    this.#gauges = gauges;
  }

  /** Stops counting into the shard's totals, taking this list's messages out of them (its queue is gone). */
  detachGauges(): void {
    if (this.#gauges !== null) this.#gauges.ready -= this.#messages.length;
    this.#gauges = null;
  }

  get length(): number {
    return this.#messages.length;
  }

  /** Payload bytes of the ready messages. */
  get bytes(): number {
    return this.#bytes;
  }

  /** The message that goes out next (lowest seq). */
  peek(): StoredMessage | undefined {
    return this.#messages.peekFirst();
  }

  shift(): StoredMessage | undefined {
    const message = this.#messages.shift();
    if (message !== undefined) {
      this.#bytes -= message.payload.byteLength;
      if (this.#gauges !== null) this.#gauges.ready--;
    }
    return message;
  }

  /** Removes and returns the first message if it has expired by `now` (expiresAt <= now); else undefined. */
  shiftExpired(now: number): StoredMessage | undefined {
    const first = this.#messages.peekFirst();
    if (first === undefined || first.expiresAt > now) return undefined;
    return this.shift();
  }

  /** expiresAt of the first message (the only one TTL expiry looks at); Infinity when empty. */
  headExpiry(): number {
    const first = this.#messages.peekFirst();
    return first === undefined ? Infinity : first.expiresAt;
  }

  /** Adds one message at its seq position; O(1) for the usual newest-message append. */
  add(message: StoredMessage): void {
    this.#bytes += message.payload.byteLength;
    if (this.#gauges !== null) this.#gauges.ready++;
    const last = this.#messages.peekLast();
    if (last === undefined || last.seq < message.seq) {
      this.#messages.push(message);
      return;
    }
    // insertAt moves the shorter side, so this is O(min(position, length - position)).
    this.#messages.insertAt(this.#upperBound(message.seq), message);
  }

  /**
   * Puts several messages back at their seq positions. Sorts `messages` in place.
   *
   * Works from whichever end of the list needs fewer ready messages lifted off: merging from the
   * front costs the ready messages older than the newest requeued one, from the back the ready
   * messages newer than the oldest requeued one. Requeuing messages older than every ready one
   * (the usual case) lifts nothing and is k unshifts.
   */
  addMany(messages: StoredMessage[]): void {
    if (messages.length === 0) return;
    if (messages.length === 1) {
      this.add(messages[0]);
      return;
    }
    messages.sort(bySeq);
    for (const message of messages) this.#bytes += message.payload.byteLength;
    if (this.#gauges !== null) this.#gauges.ready += messages.length;
    const frontLifts = this.#upperBound(messages[messages.length - 1].seq);
    const backLifts = this.#messages.length - this.#upperBound(messages[0].seq);
    if (frontLifts <= backLifts) this.#mergeAtFront(messages);
    else this.#mergeAtBack(messages);
  }

  /** Drops every ready message; returns how many. */
  clear(): number {
    const count = this.#messages.length;
    this.#messages.clear();
    this.#bytes = 0;
    if (this.#gauges !== null) this.#gauges.ready -= count;
    return count;
  }

  toArray(): StoredMessage[] {
    return this.#messages.toArray();
  }

  /** Position of the first ready message with a seq above `seq` (binary search; at() is O(1)). */
  #upperBound(seq: number): number {
    const messages = this.#messages;
    let low = 0;
    let high = messages.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if ((messages.at(mid) as StoredMessage).seq <= seq) low = mid + 1;
      else high = mid;
    }
    return low;
  }

  /** `sorted` ascending. Lifts older ready messages off the front, then unshifts the merged run. */
  #mergeAtFront(sorted: StoredMessage[]): void {
    const messages = this.#messages;
    const run: StoredMessage[] = [];
    for (const message of sorted) {
      while (messages.length > 0 && (messages.peekFirst() as StoredMessage).seq < message.seq) {
        run.push(messages.shift() as StoredMessage);
      }
      run.push(message);
    }
    for (let i = run.length - 1; i >= 0; i--) messages.unshift(run[i]);
  }

  /** `sorted` ascending. Lifts newer ready messages off the back, then pushes the merged run. */
  #mergeAtBack(sorted: StoredMessage[]): void {
    const messages = this.#messages;
    const run: StoredMessage[] = []; // descending seq
    for (let i = sorted.length - 1; i >= 0; i--) {
      const message = sorted[i];
      while (messages.length > 0 && (messages.peekLast() as StoredMessage).seq > message.seq) {
        run.push(messages.pop() as StoredMessage);
      }
      run.push(message);
    }
    for (let i = run.length - 1; i >= 0; i--) messages.push(run[i]);
  }
}
