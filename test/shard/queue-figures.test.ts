import { describe, expect, it } from 'vitest';
import { FIGURES_PER_QUEUE, figuresAt, packFigures, type FigureSource } from '../../src/shard/queue-figures.js';
import { QUEUE_STAT_KEYS, type QueueStats } from '../../src/queue/types.js';

function source(seed: number): FigureSource {
  const stats = Object.fromEntries(QUEUE_STAT_KEYS.map((k, i) => [k, seed * 100 + i])) as unknown as QueueStats;
  return { depth: seed, consumerCount: seed + 1, unackedCount: seed + 2, readyBytes: seed * 128, stats };
}

describe('packed queue figures', () => {
  it('round-trips every figure of every queue, in the order asked, and marks the missing ones', () => {
    const queues = new Map<string, FigureSource>([
      ['a', source(3)],
      ['b', source(7)],
    ]);
    const packed = packFigures(['b', 'gone', 'a'], (n) => queues.get(n));
    expect(packed.length).toBe(3 * FIGURES_PER_QUEUE);
    const b = figuresAt(packed, 0);
    expect(b).toBeDefined();
    expect([b?.depth, b?.consumers, b?.unacked, b?.readyBytes]).toEqual([7, 8, 9, 896]);
    expect(QUEUE_STAT_KEYS.map((_, k) => b?.stat(k))).toEqual(QUEUE_STAT_KEYS.map((_, k) => 700 + k));
    expect(figuresAt(packed, 1)).toBeUndefined();
    expect(figuresAt(packed, 2)?.stat(QUEUE_STAT_KEYS.indexOf('acked'))).toBe(302);
    expect(figuresAt(packed, 3)).toBeUndefined();
  });

  it('an empty queue is not a missing one', () => {
    const packed = packFigures(['e'], () => source(0));
    expect(figuresAt(packed, 0)?.depth).toBe(0);
  });
});
