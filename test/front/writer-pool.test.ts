import { describe, expect, it } from 'vitest';
import { WriterPool } from '../../src/front/writer-pool.js';

describe('WriterPool', () => {
  it('lends a writer, takes it back empty, and lends the same one again', () => {
    const pool = new WriterPool(2, 64);
    const w = pool.take();
    w.credit(1, 2);
    expect(w.length).toBeGreaterThan(0);
    pool.give(w);
    expect(pool.idle).toBe(1);
    const again = pool.take();
    expect(again).toBe(w);
    expect(again.length).toBe(0);
    expect(again.opCount).toBe(0);
  });

  it('keeps at most its bound of idle writers: a turn that touched many leaves only a few behind', () => {
    const pool = new WriterPool(3, 64);
    const lent = Array.from({ length: 10 }, () => pool.take());
    expect(new Set(lent).size).toBe(10);
    for (const w of lent) pool.give(w);
    expect(pool.idle).toBe(3);
  });

  it('starts a new writer small and lets it grow for a big frame', () => {
    const pool = new WriterPool(1, 64);
    const w = pool.take();
    expect(w.capacity).toBe(64);
    w.credit(1, 1);
    w.error(0, 'bad_frame', 'x'.repeat(500));
    expect(w.capacity).toBeGreaterThanOrEqual(w.length);
  });
});
