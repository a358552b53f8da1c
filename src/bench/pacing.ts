/**
 * The pieces of a measured run that several workloads share: the order of the systems in each
 * round, waking a paced sender when its receivers make progress, and the bounded drain at the end.
 */

/**
 * The items in the order round `round` runs them, rotated by one each round: every configuration
 * takes every position in turn, so the comparisons are interleaved A/B and drift on a shared machine
 * does not favour one of them.
 */
export function roundOrder<T>(items: readonly T[], round: number): T[] {
  return items.map((_, j) => items[(round + j) % items.length]);
}

/**
 * Lets a sender blocked on its window sleep until a receiver reports progress instead of polling:
 * receivers call `wake` after each receive burst, the sender awaits `wait(ms)`.
 */
export class Wakeup {
  #pending: (() => void) | null = null;

  /** Bound, so it can be handed to receivers as their callback. */
  readonly wake = (): void => {
    const w = this.#pending;
    this.#pending = null;
    w?.();
  };

  /** Resolves at the next `wake()` or after `ms`, whichever comes first. */
  wait(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.#pending = null;
        resolve();
      }, ms);
      this.#pending = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}

/**
 * Waits (polling every 10 ms) until `done()`, but at most `maxMs` (default 10 s), and gives up once
 * `received()` has not moved for `quietMs` (default 2 s): a run that lost messages still ends, and
 * reports them as missing.
 */
export async function drainUntil(
  done: () => boolean,
  received: () => number,
  { quietMs = 2000, maxMs = 10_000 }: { quietMs?: number; maxMs?: number } = {},
): Promise<void> {
  const drainDeadline = performance.now() + maxMs;
  let last = -1;
  let lastProgress = performance.now();
  while (!done() && performance.now() < drainDeadline) {
    const n = received();
    if (n !== last) {
      last = n;
      lastProgress = performance.now();
    } else if (performance.now() - lastProgress > quietMs) break;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
