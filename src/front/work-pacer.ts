/**
 * Paces long management answers (a walk of /v1/queues at 100,000 queues is 40 MB of JSON): each
 * piece of such work reports how long it took, and the next piece waits until the work done so far
 * is at most `share` of the elapsed time. One pacer for the whole front, so ten walkers together get
 * the share, not ten times it. Deliveries are never paced: the main thread and the shards stay free
 * for them most of the time, and on a machine with few cores a management client's own CPU (it is
 * reading the answer just as fast) does not crowd out the broker's message path either.
 */
export class WorkPacer {
  readonly #share: number;
  /** When the next piece of paced work may start (performance.now() ms). */
  #resumeAt = 0;

  /** `share` in (0, 1]; 1 = never wait. */
  constructor(share: number) {
    this.#share = share;
  }

  /** After a piece of work that took `spentMs`: resolves when the next may start. */
  rest(spentMs: number): Promise<void> {
    if (this.#share >= 1) return Promise.resolve();
    const now = performance.now();
    this.#resumeAt = Math.max(this.#resumeAt, now) + (spentMs * (1 - this.#share)) / this.#share;
    const wait = this.#resumeAt - now;
    return new Promise((resolve) => {
      if (wait < 0.5) setImmediate(resolve);
      else setTimeout(resolve, wait);
    });
  }
}
