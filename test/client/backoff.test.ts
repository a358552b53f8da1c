import { describe, expect, it } from 'vitest';
import { backoffDelay, resolveReconnect } from '../../src/client/backoff.js';

describe('client backoff', () => {
  const policy = resolveReconnect({ initialDelayMs: 100, maxDelayMs: 1000 });

  it('backoff - doubles from initialDelayMs up to maxDelayMs; jitter keeps it within [half, full]', () => {
    const lows = [1, 2, 3, 4, 5, 10].map((a) => backoffDelay(a, policy, () => 0));
    const highs = [1, 2, 3, 4, 5, 10].map((a) => backoffDelay(a, policy, () => 1));
    expect(lows).toEqual([50, 100, 200, 400, 500, 500]);
    expect(highs).toEqual([100, 200, 400, 800, 1000, 1000]);
    for (let i = 0; i < 100; i++) {
      const d = backoffDelay(3, policy);
      expect(d).toBeGreaterThanOrEqual(200);
      expect(d).toBeLessThanOrEqual(400);
    }
    expect(backoffDelay(10_000, policy, () => 1)).toBe(1000); // no overflow for huge attempts
  });

  it('backoff - options are validated with messages naming the option', () => {
    expect(resolveReconnect(undefined)).toEqual({ initialDelayMs: 100, maxDelayMs: 5000, maxAttempts: Infinity });
    expect(resolveReconnect({ initialDelayMs: 10_000 }).maxDelayMs).toBe(10_000);
    expect(() => resolveReconnect({ initialDelayMs: -1 })).toThrow(/reconnect.initialDelayMs must be a number ≥ 0 \(got -1\)/);
    expect(() => resolveReconnect({ initialDelayMs: 100, maxDelayMs: 50 })).toThrow(/reconnect.maxDelayMs/);
    expect(() => resolveReconnect({ maxAttempts: 0 })).toThrow(/reconnect.maxAttempts/);
  });
});
