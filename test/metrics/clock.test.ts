import { describe, expect, it } from 'vitest';
import { monotonicMs } from '../../src/metrics/clock.js';

describe('monotonicMs', () => {
  it('reads the shared monotonic clock (process.hrtime) to within a few microseconds', () => {
    for (let i = 0; i < 200; i++) {
      const a = monotonicMs();
      const h = Number(process.hrtime.bigint()) / 1e6;
      const b = monotonicMs();
      // hrtime was read between the two: the offset error must be below 5 µs either way.
      expect(h).toBeGreaterThanOrEqual(a - 0.005);
      expect(h).toBeLessThanOrEqual(b + 0.005);
    }
  });
});
