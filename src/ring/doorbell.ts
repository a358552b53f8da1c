/**
 * Park/notify protocol shared by both sides of an SPSC ring (docs/engine-notes.md §2 "Wakeups").
 *
 * Each side owns one PARKED flag. A side that finds nothing to do (consumer: ring empty; producer:
 * ring full) raises its flag, then sleeps on the index the *other* side advances, passing the value it
 * last saw. The other side, after publishing a new index value with Atomics.store, calls
 * `ringDoorbell`, which notifies only if the flag is up.
 *
 * Why no wakeup is lost: all Atomics operations are sequentially consistent. Either the publisher's
 * load of the flag comes after the sleeper's store of it (then it notifies, and a sleeper that is not
 * yet queued sees the new index in Atomics.wait/waitAsync's own value check and does not sleep), or
 * it comes before, and then the sleeper's value check already sees the published index.
 *
 * Why the flag at all: Atomics.notify costs ~35 ns with nobody waiting but ~7 µs when it wakes a
 * sleeper; per-message notify ran a bare ring ~4× slower than batched and gated (docs/engine-notes.md §2).
 */

/** `Atomics.waitAsync` exists in Node 20 (V8 11.3), but our `lib: ES2022` does not declare it (it is ES2024). */
interface AtomicsWithWaitAsync {
  waitAsync(
    typedArray: Int32Array,
    index: number,
    value: number,
    timeout?: number,
  ): { async: false; value: 'not-equal' | 'timed-out' } | { async: true; value: Promise<'ok' | 'timed-out'> };
}

const atomicsAsync = Atomics as unknown as AtomicsWithWaitAsync;

/**
 * Interval of the keep-alive timer held while an async park is pending. A pending Atomics.waitAsync
 * does not keep Node's event loop alive (docs/engine-notes.md §2: the process exited with code 13), so without
 * a ref'd handle a program awaiting space or data would exit instead of waiting. The timer never
 * fires in practice; the park's own timeout bounds how long it is held. 2^30 ms stays below the
 * 2^31-1 ms limit above which Node resets a timer to 1 ms.
 */
const KEEP_ALIVE_INTERVAL_MS = 2 ** 30;

function keepAliveTick(): void {}

/** Returned when an async park ends at once; shared so that the no-wait paths allocate nothing. */
const RESOLVED_TRUE: Promise<boolean> = Promise.resolve(true);
const RESOLVED_FALSE: Promise<boolean> = Promise.resolve(false);

/** Atomics.wait reads NaN as "forever" and a negative timeout as 0; the deadline arithmetic below does the same. */
function normaliseTimeout(timeoutMs: number): number {
  return Number.isNaN(timeoutMs) ? Infinity : timeoutMs > 0 ? timeoutMs : 0;
}

/**
 * Called by the side that just published `indexSlot`: wakes the other side only if it advertised, via
 * `parkedFlagSlot`, that it sleeps on that index. Wakes all waiters on it: there is at most one
 * thread, but that thread may have several pending waitAsync promises. Returns whether it rang.
 */
export function ringDoorbell(control: Int32Array, indexSlot: number, parkedFlagSlot: number): boolean {
  if (Atomics.load(control, parkedFlagSlot) === 0) return false;
  Atomics.notify(control, indexSlot);
  return true;
}

/**
 * Either side, used only by the thread that owns that side: where it sleeps, i.e. the PARKED flag
 * that side owns and the index slot (advanced by the other side) it waits on.
 *
 * Both park methods return whether the index moved away from `expected`, and return false only when
 * the timeout has really passed: a wakeup with the index unchanged (a notify meant for an earlier
 * park, which the flag protocol allows) parks again for the time left.
 */
export class ParkingSpot {
  readonly #control: Int32Array;
  readonly #flagSlot: number;
  readonly #indexSlot: number;
  /** Pending parkAsync calls of this side; the flag stays up while any is pending. */
  #asyncWaiters = 0;
  /** Times this side really went to sleep (found nothing after raising its flag): each one costs the other side a notify. */
  parks = 0;

  constructor(control: Int32Array, flagSlot: number, indexSlot: number) {
    this.#control = control;
    this.#flagSlot = flagSlot;
    this.#indexSlot = indexSlot;
  }

  /**
   * Blocks the calling thread (a worker; never the main thread, which it would freeze) until the
   * index differs from `expected` (returns true) or `timeoutMs` passes (returns false).
   */
  parkSync(expected: number, timeoutMs: number): boolean {
    const control = this.#control;
    const indexSlot = this.#indexSlot;
    if (Atomics.load(control, indexSlot) !== expected) return true;
    let remaining = normaliseTimeout(timeoutMs);
    const deadline = performance.now() + remaining;
    Atomics.store(control, this.#flagSlot, 1);
    let moved = false;
    for (;;) {
      // Checked after raising the flag: a publish that came before the flag was visible did not
      // notify. (Atomics.wait's own value check closes the same window; this saves the futex call.)
      if (Atomics.load(control, indexSlot) !== expected) {
        moved = true;
        break;
      }
      if (remaining <= 0) break;
      this.parks++;
      Atomics.wait(control, indexSlot, expected, remaining);
      remaining = deadline - performance.now();
    }
    if (this.#asyncWaiters === 0) Atomics.store(control, this.#flagSlot, 0);
    return moved;
  }

  /**
   * Non-blocking variant for any thread: resolves true once the index differs from `expected`, false
   * when `timeoutMs` has passed. While pending it holds a ref'd timer so the event loop stays alive
   * (see KEEP_ALIVE_INTERVAL_MS). Allocates only when it actually waits.
   */
  parkAsync(expected: number, timeoutMs: number): Promise<boolean> {
    const control = this.#control;
    if (Atomics.load(control, this.#indexSlot) !== expected) return RESOLVED_TRUE;
    const timeout = normaliseTimeout(timeoutMs);
    this.#asyncWaiters++;
    Atomics.store(control, this.#flagSlot, 1);
    // waitAsync's own value check, made after the flag went up, closes the lost-wakeup window.
    const first = atomicsAsync.waitAsync(control, this.#indexSlot, expected, timeout);
    if (!first.async) {
      this.#leaveAsync();
      return first.value === 'not-equal' ? RESOLVED_TRUE : RESOLVED_FALSE;
    }
    this.parks++;
    return this.#awaitMove(first.value, expected, performance.now() + timeout);
  }

  async #awaitMove(first: Promise<unknown>, expected: number, deadline: number): Promise<boolean> {
    const control = this.#control;
    const indexSlot = this.#indexSlot;
    const keepAlive = setInterval(keepAliveTick, KEEP_ALIVE_INTERVAL_MS);
    try {
      await first;
      for (;;) {
        if (Atomics.load(control, indexSlot) !== expected) return true;
        const remaining = deadline - performance.now();
        if (remaining <= 0) return false;
        const next = atomicsAsync.waitAsync(control, indexSlot, expected, remaining);
        if (!next.async) return next.value === 'not-equal';
        await next.value;
      }
    } finally {
      clearInterval(keepAlive);
      this.#leaveAsync();
    }
  }

  #leaveAsync(): void {
    if (--this.#asyncWaiters === 0) Atomics.store(this.#control, this.#flagSlot, 0);
  }
}
