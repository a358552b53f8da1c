import { afterEach, describe, expect, it, vi } from 'vitest';
import { WorkPacer } from '../../src/front/work-pacer.js';

afterEach(() => {
  vi.useRealTimers();
});

/** Resolves `p` under fake timers, advancing them 1 ms at a time; returns the fake ms it took. */
async function fakeMsUntil(p: Promise<void>): Promise<number> {
  let done = false;
  void p.then(() => {
    done = true;
  });
  const start = performance.now();
  for (let i = 0; i < 10_000 && !done; i++) await vi.advanceTimersByTimeAsync(1);
  expect(done).toBe(true);
  return performance.now() - start;
}

describe('WorkPacer', () => {
  it('holds the next piece until the work so far is its share of the time', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'setImmediate', 'performance'] });
    const pacer = new WorkPacer(0.25);
    // 10 ms of work at a 25% share: 30 ms of rest.
    const waited = await fakeMsUntil(pacer.rest(10));
    expect(waited).toBeGreaterThanOrEqual(29);
    expect(waited).toBeLessThanOrEqual(32);
  });

  it('is shared: two walkers resting at once queue behind each other', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'setImmediate', 'performance'] });
    const pacer = new WorkPacer(0.5);
    const first = pacer.rest(10);
    const second = pacer.rest(10);
    await fakeMsUntil(first);
    const more = await fakeMsUntil(second);
    // The first rests 10 ms, the second 10 ms after it.
    expect(more).toBeGreaterThanOrEqual(9);
  });

  it('at a share of 1 never waits', async () => {
    const pacer = new WorkPacer(1);
    const t = performance.now();
    await pacer.rest(1000);
    expect(performance.now() - t).toBeLessThan(100);
  });
});
