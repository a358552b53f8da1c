/**
 * Reconnect delays: exponential backoff with jitter.
 *
 * Attempt n (from 1) waits `min(maxDelayMs, initialDelayMs · 2^(n-1))`, of which the upper half is
 * randomised ("equal jitter": delay/2 + random · delay/2). The random half spreads the clients of
 * a restarted broker over time so they do not all knock at once; the fixed half keeps every
 * delay at least half the exponential one, so a flapping broker is not hammered.
 */

export interface ReconnectOptions {
  /** Delay before the first attempt after a drop, in ms (default 100). */
  initialDelayMs?: number;
  /** Ceiling of the exponential delay, in ms (default 5000). */
  maxDelayMs?: number;
  /** Consecutive failed attempts before the client gives up and closes (default: never gives up). */
  maxAttempts?: number;
}

export interface ResolvedReconnect {
  readonly initialDelayMs: number;
  readonly maxDelayMs: number;
  readonly maxAttempts: number;
}

export const DEFAULT_RECONNECT: ResolvedReconnect = Object.freeze({
  initialDelayMs: 100,
  maxDelayMs: 5000,
  maxAttempts: Infinity,
});

/** Validates and fills in reconnect options; throws RangeError naming the bad option. */
export function resolveReconnect(options: ReconnectOptions | undefined): ResolvedReconnect {
  const initialDelayMs = options?.initialDelayMs ?? DEFAULT_RECONNECT.initialDelayMs;
  const maxDelayMs = options?.maxDelayMs ?? Math.max(DEFAULT_RECONNECT.maxDelayMs, initialDelayMs);
  const maxAttempts = options?.maxAttempts ?? DEFAULT_RECONNECT.maxAttempts;
  if (!Number.isFinite(initialDelayMs) || initialDelayMs < 0) {
    throw new RangeError(`reconnect.initialDelayMs must be a number ≥ 0 (got ${String(initialDelayMs)})`);
  }
  if (!Number.isFinite(maxDelayMs) || maxDelayMs < initialDelayMs) {
    throw new RangeError(`reconnect.maxDelayMs must be a number ≥ initialDelayMs ${initialDelayMs} (got ${String(maxDelayMs)})`);
  }
  if (!(maxAttempts === Infinity || (Number.isInteger(maxAttempts) && maxAttempts >= 1))) {
    throw new RangeError(`reconnect.maxAttempts must be an integer ≥ 1 or Infinity (got ${String(maxAttempts)})`);
  }
  return { initialDelayMs, maxDelayMs, maxAttempts };
}

/** Delay before attempt `attempt` (1-based). `random` is injectable for tests. */
export function backoffDelay(attempt: number, options: ResolvedReconnect, random: () => number = Math.random): number {
  const exp = Math.min(options.maxDelayMs, options.initialDelayMs * 2 ** Math.min(attempt - 1, 52));
  return Math.round(exp / 2 + random() * (exp / 2));
}
