import { describe, expect, it } from 'vitest';
import { QueuePlacement, placeByHash } from '../../src/cluster/queue-placement.js';

describe('queue-placement', () => {
  it('placeByHash - every node computes the same owner; a join moves only the queues the newcomer wins, about 1/n', () => {
    const names = Array.from({ length: 6000 }, (_, i) => `q${i}`);
    const three = ['a', 'b', 'c'];
    const before = names.map((n) => placeByHash(n, three));
    expect(names.map((n) => placeByHash(n, ['c', 'a', 'b']))).toEqual(before);
    const counts = new Map<string, number>();
    for (const o of before) counts.set(o, (counts.get(o) ?? 0) + 1);
    for (const node of three) expect(counts.get(node)).toBeGreaterThan(1700);
    const after = names.map((n) => placeByHash(n, [...three, 'd']));
    let moved = 0;
    for (let i = 0; i < names.length; i++) {
      if (after[i] === before[i]) continue;
      expect(after[i]).toBe('d');
      moved++;
    }
    expect(moved / names.length).toBeGreaterThan(0.2);
    expect(moved / names.length).toBeLessThan(0.3);
    // A node leaving gives up only its own.
    const without = names.map((n) => placeByHash(n, ['a', 'c']));
    for (let i = 0; i < names.length; i++) if (before[i] !== 'b') expect(without[i]).toBe(before[i]);
  });

  it('directory - announcements add and remove; a node gone forgets its transient queues and keeps its durable ones as down', () => {
    const p = new QueuePlacement();
    p.apply({
      node: 'b',
      add: [
        ['t1', false],
        ['d1', true],
      ],
      remove: [],
    });
    p.apply({ node: 'c', add: [['t2', false]], remove: [] });
    expect(p.get('t1')).toEqual({ node: 'b', durable: false });
    expect(p.countOf('b')).toBe(2);
    // Only its owner removes a queue.
    p.apply({ node: 'c', add: [], remove: ['t1'] });
    expect(p.get('t1')?.node).toBe('b');
    expect(p.nodeGone('b')).toEqual(['t1']);
    expect(p.get('t1')).toBeUndefined();
    expect(p.get('d1')).toEqual({ node: 'b', durable: true });
    expect(p.isDown('b')).toBe(true);
    // Back: it announces again and is up.
    p.apply({ node: 'b', add: [['d1', true]], remove: [] });
    expect(p.isDown('b')).toBe(false);
    p.apply({ node: 'c', add: [], remove: ['t2'] });
    expect(p.size).toBe(1);
  });
});
