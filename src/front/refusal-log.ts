/**
 * One `warn` line for refused HTTP requests, per client address and error code at most once per
 * interval, with how many were refused since the last line: a refused publisher leaves a trace at
 * `warn`, and a client hammering the broker with bad requests cannot flood the log.
 */
import type { Logger } from '../log/logger.js';

const DEFAULT_INTERVAL_MS = 10_000;
/** Clients × codes remembered; past it the oldest are forgotten (they log again on their next refusal). */
const MAX_KEYS = 10_000;

interface Seen {
  lastAt: number;
  suppressed: number;
}

export class RefusalLog {
  readonly #log: Logger;
  readonly #intervalMs: number;
  readonly #now: () => number;
  readonly #seen = new Map<string, Seen>();

  constructor(log: Logger, intervalMs = DEFAULT_INTERVAL_MS, now: () => number = Date.now) {
    this.#log = log;
    this.#intervalMs = intervalMs;
    this.#now = now;
  }

  /** `client` was answered `status` with error `code`: logged unless the same client and code were within the interval. */
  note(client: string, status: number, code: string, reason: string): void {
    const key = `${client}\u0000${code}`;
    const now = this.#now();
    const seen = this.#seen.get(key);
    if (seen !== undefined && now - seen.lastAt < this.#intervalMs) {
      seen.suppressed++;
      return;
    }
    const suppressed = seen?.suppressed ?? 0;
    // Re-inserted, so the map's order is the order of last logging and the oldest go first.
    this.#seen.delete(key);
    this.#seen.set(key, { lastAt: now, suppressed: 0 });
    if (this.#seen.size > MAX_KEYS) {
      const oldest = this.#seen.keys().next();
      if (!oldest.done) this.#seen.delete(oldest.value);
    }
    this.#log.warn(
      { client, status, code, reason, ...(suppressed > 0 ? { alsoRefusedSinceLastLine: suppressed } : {}) },
      'request refused',
    );
  }
}
