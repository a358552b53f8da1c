/**
 * Message TTL for all the queues of a shard behind ONE timer.
 *
 * Each queue reports when it next has a message to expire (MessageQueueOptions.scheduleExpiry);
 * the scheduler keeps at most one wheel timer per queue (an earlier report replaces a later one)
 * and the shard arms its single OS timer for nextDeadline(), calling run(now) when it fires and
 * re-arming afterwards:
 *
 *   const expiry = new ExpiryScheduler();
 *   new MessageQueue(name, deliver, tag, { arguments, scheduleExpiry: expiry.schedule, onDeadLetter });
 *   // after each batch, and in the timer callback after expiry.run(Date.now()):
 *   const at = expiry.nextDeadline();  // Infinity: no timer
 *   if (at < armedAt) { clearTimeout(timer); timer = setTimeout(onTimer, Math.max(0, at - Date.now())); armedAt = at; }
 *
 * Queue deletion (x-expires via MessageQueue.idleDeadline(), or queue.delete) must call forget().
 * The wheel is generic, so the shard may put idle-deadline checks in a wheel of its own the same way.
 */
import type { MessageQueue } from './message-queue.js';
import { TtlWheel, type TtlWheelOptions, type WheelTimer } from './ttl-wheel.js';

export class ExpiryScheduler {
  readonly #wheel: TtlWheel<MessageQueue>;
  readonly #timers = new Map<MessageQueue, WheelTimer<MessageQueue>>();

  constructor(options: TtlWheelOptions = {}) {
    this.#wheel = new TtlWheel<MessageQueue>(options);
  }

  /** Queues with a pending expiry check. */
  get size(): number {
    return this.#timers.size;
  }

  /** MessageQueueOptions.scheduleExpiry: `queue` wants expire() called at or after `at`. */
  readonly schedule = (queue: MessageQueue, at: number): void => {
    const existing = this.#timers.get(queue);
    if (existing !== undefined) {
      if (existing.deadline <= at) return;
      this.#wheel.cancel(existing);
    }
    this.#timers.set(queue, this.#wheel.schedule(at, queue));
  };

  /** Drops `queue`'s pending check (the queue was deleted). */
  forget(queue: MessageQueue): void {
    const timer = this.#timers.get(queue);
    if (timer === undefined) return;
    this.#wheel.cancel(timer);
    this.#timers.delete(queue);
  }

  /**
   * Runs expire(now) on every queue whose check is due; returns how many messages expired.
   * `checked` hears of each such queue (after its expire), so the caller can dispatch just those.
   */
  run(now: number, checked?: (queue: MessageQueue) => void): number {
    let expired = 0;
    this.#wheel.advance(now, (queue) => {
      this.#timers.delete(queue);
      // expire() re-reports the queue's next expiry, which schedules it again.
      expired += queue.expire(now);
      checked?.(queue);
    });
    return expired;
  }

  /** When to call run() next (ms; Infinity when nothing can expire). */
  nextDeadline(): number {
    return this.#wheel.nextDeadline();
  }
}
