/**
 * The ready messages of a priority queue (x-max-priority): one seq-ordered ReadyList per priority
 * level, delivered from the highest non-empty level down. That is RabbitMQ's classic priority
 * queue: a sub-queue per priority, FIFO (publish order) within one, and a requeued message goes
 * back to its original position within its priority.
 *
 * Same surface as ReadyList, so MessageQueue uses either; a queue without x-max-priority never
 * builds one of these. "The head" (peek, shift, drop-head overflow) is the next message to be
 * delivered: the oldest of the highest priority. TTL expiry looks at the head of every level.
 */
import type { MessageGauges } from './message-gauges.js';
import { ReadyList } from './ready-list.js';
import type { StoredMessage } from './types.js';

/**
 * The priority a queue with x-max-priority = `maxPriority` gives `message`: its `priority`
 * property, 0 when absent or not a number, capped at `maxPriority` (RabbitMQ treats a higher one
 * as the maximum), fractions dropped.
 */
export function effectivePriority(message: StoredMessage, maxPriority: number): number {
  const priority = message.properties?.priority;
  if (typeof priority !== 'number' || !(priority > 0)) return 0;
  return priority >= maxPriority ? maxPriority : Math.floor(priority);
}

export class PriorityReadyList {
  readonly maxPriority: number;
  /** #levels[p]: the ready messages of priority p; created on first use. */
  readonly #levels: (ReadyList | undefined)[];
  /** Highest level that may hold messages (-1 = empty); levels above it are empty. */
  #top = -1;
  #length = 0;
  #bytes = 0;

  /** The shard's totals this list counts into (its levels do not: they would count twice). */
  #gauges: MessageGauges | null;

  constructor(maxPriority: number, gauges: MessageGauges | null = null) {
    this.#gauges = gauges;
    if (!Number.isInteger(maxPriority) || maxPriority < 1 || maxPriority > 255) {
      throw new RangeError(`PriorityReadyList maxPriority must be an integer in 1..255 (got ${maxPriority})`);
    }
    this.maxPriority = maxPriority;
    this.#levels = new Array<ReadyList | undefined>(maxPriority + 1).fill(undefined);
  }

  get length(): number {
    return this.#length;
  }

  /** Stops counting into the shard's totals, taking this list's messages out of them (its queue is gone). */
  detachGauges(): void {
    if (this.#gauges !== null) this.#gauges.ready -= this.#length;
    this.#gauges = null;
  }

  get bytes(): number {
    return this.#bytes;
  }

  peek(): StoredMessage | undefined {
    return this.#top < 0 ? undefined : (this.#levels[this.#top] as ReadyList).peek();
  }

  shift(): StoredMessage | undefined {
    if (this.#top < 0) return undefined;
    return this.#take(this.#levels[this.#top] as ReadyList);
  }

  /** Removes and returns the head of some level that has expired by `now`; undefined when no level head has. */
  shiftExpired(now: number): StoredMessage | undefined {
    for (let p = this.#top; p >= 0; p--) {
      const level = this.#levels[p];
      if (level === undefined || level.length === 0) continue;
      if (level.headExpiry() <= now) return this.#take(level);
    }
    return undefined;
  }

  /** The earliest expiresAt among the level heads; Infinity when empty. */
  headExpiry(): number {
    let earliest = Infinity;
    for (let p = this.#top; p >= 0; p--) {
      const level = this.#levels[p];
      if (level !== undefined && level.length > 0) {
        const at = level.headExpiry();
        if (at < earliest) earliest = at;
      }
    }
    return earliest;
  }

  add(message: StoredMessage): void {
    const p = effectivePriority(message, this.maxPriority);
    this.#level(p).add(message);
    this.#length++;
    if (this.#gauges !== null) this.#gauges.ready++;
    this.#bytes += message.payload.byteLength;
    if (p > this.#top) this.#top = p;
  }

  /** Puts several messages back, each at its seq position within its priority. */
  addMany(messages: StoredMessage[]): void {
    if (messages.length === 0) return;
    if (messages.length === 1) {
      this.add(messages[0]);
      return;
    }
    const byLevel = new Map<number, StoredMessage[]>();
    for (const message of messages) {
      const p = effectivePriority(message, this.maxPriority);
      const group = byLevel.get(p);
      if (group === undefined) byLevel.set(p, [message]);
      else group.push(message);
      this.#bytes += message.payload.byteLength;
      if (p > this.#top) this.#top = p;
    }
    for (const [p, group] of byLevel) this.#level(p).addMany(group);
    this.#length += messages.length;
    if (this.#gauges !== null) this.#gauges.ready += messages.length;
  }

  clear(): number {
    const count = this.#length;
    this.#levels.fill(undefined);
    this.#top = -1;
    this.#length = 0;
    this.#bytes = 0;
    if (this.#gauges !== null) this.#gauges.ready -= count;
    return count;
  }

  /** In delivery order: highest priority first, publish order within a priority. */
  toArray(): StoredMessage[] {
    const out: StoredMessage[] = [];
    for (let p = this.#top; p >= 0; p--) {
      const level = this.#levels[p];
      if (level !== undefined) for (const message of level.toArray()) out.push(message);
    }
    return out;
  }

  #level(p: number): ReadyList {
    let level = this.#levels[p];
    if (level === undefined) {
      level = new ReadyList();
      this.#levels[p] = level;
    }
    return level;
  }

  #take(level: ReadyList): StoredMessage {
    const message = level.shift() as StoredMessage;
    this.#length--;
    if (this.#gauges !== null) this.#gauges.ready--;
    this.#bytes -= message.payload.byteLength;
    while (this.#top >= 0 && (this.#levels[this.#top]?.length ?? 0) === 0) this.#top--;
    return message;
  }
}
