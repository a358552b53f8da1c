import { describe, expect, it } from 'vitest';
import { PriorityReadyList, effectivePriority } from '../../src/queue/priority-ready-list.js';
import type { StoredMessage } from '../../src/queue/types.js';
import { message } from './harness.js';
import { Prng } from '../helpers/prng.js';

const prioritized = (seq: number, priority: number | undefined, bytes = 4): StoredMessage =>
  message(seq, bytes, priority === undefined ? null : { priority });

describe('priority ready list', () => {
  it('priority ready list - effectivePriority: absent or invalid is 0, above the max is the max, fractions dropped', () => {
    expect(effectivePriority(message(1), 5)).toBe(0);
    expect(effectivePriority(prioritized(1, -3), 5)).toBe(0);
    expect(effectivePriority(prioritized(1, Number.NaN), 5)).toBe(0);
    expect(effectivePriority(prioritized(1, 3.9), 5)).toBe(3);
    expect(effectivePriority(prioritized(1, 9), 5)).toBe(5);
    expect(effectivePriority(message(1, 4, { priority: '7' as unknown as number }), 9)).toBe(0);
  });

  it('priority ready list - tracks length and bytes through add, shift, addMany and clear', () => {
    const list = new PriorityReadyList(3);
    list.add(prioritized(1, 0, 10));
    list.add(prioritized(2, 3, 5));
    expect([list.length, list.bytes]).toEqual([2, 15]);
    expect(list.shift()?.seq).toBe(2);
    list.addMany([prioritized(3, 1, 1), prioritized(4, 1, 2)]);
    expect([list.length, list.bytes]).toEqual([3, 13]);
    expect(list.toArray().map((m) => m.seq)).toEqual([3, 4, 1]);
    expect(list.clear()).toBe(3);
    expect([list.length, list.bytes, list.peek(), list.shift()]).toEqual([0, 0, undefined, undefined]);
    expect(() => new PriorityReadyList(0)).toThrow(RangeError);
  });

  it.each([11, 12, 13])(
    'priority ready list - seeded random adds, requeues and shifts match (priority desc, seq asc) (seed %i)',
    (seed) => {
      const prng = new Prng(seed);
      const max = prng.int(1, 6);
      const list = new PriorityReadyList(max);
      const model: StoredMessage[] = [];
      const taken: StoredMessage[] = [];
      const order = (a: StoredMessage, b: StoredMessage): number => effectivePriority(b, max) - effectivePriority(a, max) || a.seq - b.seq;
      let seq = 0;
      for (let step = 0; step < 3_000; step++) {
        const roll = prng.int(0, 3);
        if (roll <= 1) {
          const m = prioritized(++seq, prng.chance(0.2) ? undefined : prng.int(0, max + 2));
          list.add(m);
          model.push(m);
        } else if (roll === 2 && model.length > 0) {
          model.sort(order);
          const expected = model.shift() as StoredMessage;
          expect(list.shift(), `seed ${seed} step ${step}`).toBe(expected);
          taken.push(expected);
        } else if (taken.length > 0) {
          const batch = taken.splice(0, prng.int(1, taken.length));
          list.addMany(batch);
          model.push(...batch);
        }
        model.sort(order);
        expect(list.length, `seed ${seed} step ${step}`).toBe(model.length);
        expect(list.peek(), `seed ${seed} step ${step}`).toBe(model[0]);
      }
      expect(list.toArray()).toEqual(model);
      expect(list.bytes).toBe(model.length * 4);
    },
  );
});
