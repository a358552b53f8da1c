/**
 * Garbage-collection pauses of the calling thread (main or a shard), from perf_hooks `gc` entries:
 * how many, how long in total and the longest. A pause stops that thread's whole loop, so it is
 * latency every message in flight there pays; the latency breakdown reports these beside the hops.
 */
import { type PerformanceEntry, PerformanceObserver } from 'node:perf_hooks';

export interface GcPauses {
  pauses: number;
  pauseMs: number;
  maxPauseMs: number;
}

export class GcMonitor {
  readonly #observer: PerformanceObserver;
  readonly #onPause: (durationMs: number) => void;

  /** Calls `onPause` with each pause's duration (ms), a little after it (entries arrive in batches). */
  constructor(onPause: (durationMs: number) => void) {
    this.#onPause = onPause;
    this.#observer = new PerformanceObserver((list) => {
      for (const e of list.getEntries() as PerformanceEntry[]) this.#onPause(e.duration);
    });
    this.#observer.observe({ entryTypes: ['gc'] });
  }

  stop(): void {
    this.#observer.disconnect();
  }
}

/** GcMonitor into a plain counter object. */
export function countGcPauses(into: GcPauses): GcMonitor {
  return new GcMonitor((ms) => {
    into.pauses++;
    into.pauseMs += ms;
    if (ms > into.maxPauseMs) into.maxPauseMs = ms;
  });
}
