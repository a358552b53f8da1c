import { afterEach, describe, expect, it, vi } from 'vitest';
import { RateSampler } from '../../src/front/queue-rows.js';

afterEach(() => {
  vi.useRealTimers();
});

describe('RateSampler', () => {
  it('answers rates per second between two listings of a queue', () => {
    vi.useFakeTimers({ now: 1_000_000 });
    const rates = new RateSampler();
    expect(JSON.parse(rates.sample('q', 10, 4))).toEqual({ deliver_per_s: 0, ack_per_s: 0 });
    vi.advanceTimersByTime(2000);
    expect(JSON.parse(rates.sample('q', 110, 44))).toEqual({ deliver_per_s: 50, ack_per_s: 20 });
  });

  it('does not remember queues that never delivered: a walk of idle queues leaves nothing behind', () => {
    const rates = new RateSampler();
    for (let i = 0; i < 5000; i++) rates.sample(`idle-${i}`, 0, 0);
    expect(rates.size).toBe(0);
    rates.sample('busy', 1, 0);
    expect(rates.size).toBe(1);
  });

  it('forgets samples older than its window, so deleted queues do not pile up', () => {
    vi.useFakeTimers({ now: 1_000_000 });
    const rates = new RateSampler();
    for (let i = 0; i < 100; i++) rates.sample(`old-${i}`, 1, 1);
    vi.advanceTimersByTime(120_000);
    // Enough samples of another queue to reach a sweep.
    for (let i = 0; i < 10_000; i++) rates.sample('live', i + 1, 0);
    expect(rates.size).toBe(1);
  });

  it('a sample past the window restarts the rate rather than averaging over the gap', () => {
    vi.useFakeTimers({ now: 1_000_000 });
    const rates = new RateSampler();
    rates.sample('q', 1, 0);
    vi.advanceTimersByTime(61_000);
    expect(JSON.parse(rates.sample('q', 1000, 0))).toEqual({ deliver_per_s: 0, ack_per_s: 0 });
    vi.advanceTimersByTime(1000);
    expect(JSON.parse(rates.sample('q', 1500, 0))).toEqual({ deliver_per_s: 500, ack_per_s: 0 });
  });
});
