/**
 * The log store's live-message index: which segment holds each durable message that is not durably
 * removed. It feeds the two things segment deletion (`segment-reclaimer.ts`) asks of a segment: its
 * live count, and the older segments it took messages away from (`Segment.dependOn`). Recovery
 * builds it from the files; after that, only records that are durable change it.
 *
 * Memory per live message: one map entry (queue → id → segment) for the live counts; no payloads.
 */
import type { Segment } from './segment.js';

export class LiveIndex {
  /** queue → id → the segment holding that durable, not removed message. */
  readonly #byQueue = new Map<string, Map<number, Segment>>();

  /** A durable message record in `seg`. */
  add(queue: string, id: number, seg: Segment): void {
    let ids = this.#byQueue.get(queue);
    if (ids === undefined) this.#byQueue.set(queue, (ids = new Map()));
    const previous = ids.get(id);
    if (previous !== undefined) {
      // The same (queue, id) again: the newer copy wins; the older must not outlive this one.
      previous.live--;
      seg.dependOn(previous);
    }
    ids.set(id, seg);
    seg.live++;
  }

  /** A durable remove record in `seg`. */
  remove(queue: string, id: number, seg: Segment): void {
    const ids = this.#byQueue.get(queue);
    const holder = ids?.get(id);
    if (ids === undefined || holder === undefined) return;
    ids.delete(id);
    if (ids.size === 0) this.#byQueue.delete(queue);
    holder.live--;
    seg.dependOn(holder);
  }

  /** A durable deleteQueue record in `seg`. */
  dropQueue(queue: string, seg: Segment): void {
    const ids = this.#byQueue.get(queue);
    if (ids === undefined) return;
    for (const holder of ids.values()) {
      holder.live--;
      seg.dependOn(holder);
    }
    this.#byQueue.delete(queue);
  }
}
