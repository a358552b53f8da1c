/**
 * Runs a list of requests with a bounded number in flight: what a reconnect restores (100,000
 * bindings or subscriptions) goes out as a sliding window, not as one burst that the socket, the
 * request table and the broker would all have to hold at once.
 */

/** Requests a restore keeps outstanding at once. */
export const RESTORE_WINDOW = 1000;

/**
 * Starts `tasks` in order with at most `limit` pending; resolves once every one has settled.
 * The first rejection stops new starts and rejects (the ones already started run out).
 */
export function runWindowed(tasks: ReadonlyArray<() => Promise<unknown>>, limit = RESTORE_WINDOW): Promise<void> {
  if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`limit must be an integer ≥ 1 (got ${limit})`);
  return new Promise((resolve, reject) => {
    let next = 0;
    let pending = 0;
    let failed = false;
    const startMore = (): void => {
      while (!failed && pending < limit && next < tasks.length) {
        const task = tasks[next++];
        pending++;
        let running: Promise<unknown>;
        try {
          running = task();
        } catch (err) {
          running = Promise.reject(err);
        }
        running.then(
          () => {
            pending--;
            if (failed) return;
            if (next === tasks.length && pending === 0) resolve();
            else startMore();
          },
          (err: unknown) => {
            pending--;
            if (failed) return;
            failed = true;
            reject(err);
          },
        );
      }
    };
    if (tasks.length === 0) resolve();
    else startMore();
  });
}
