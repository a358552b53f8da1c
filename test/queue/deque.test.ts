import { describe, expect, it } from 'vitest';
import { Deque } from '../../src/queue/deque.js';
import { Prng } from '../helpers/prng.js';

/** A deque whose contents start part-way round the ring, so later operations cross the wrap. */
function wrapped(count: number, offset: number): Deque<number> {
  const deque = new Deque<number>();
  for (let i = 0; i < offset; i++) deque.push(-1);
  for (let i = 0; i < offset; i++) deque.shift();
  for (let i = 0; i < count; i++) deque.push(i);
  return deque;
}

describe('deque', () => {
  it('deque - push/shift is FIFO across several grows', () => {
    const deque = new Deque<number>();
    for (let i = 0; i < 1000; i++) deque.push(i);
    expect(deque.length).toBe(1000);
    expect(deque.capacity).toBeGreaterThanOrEqual(1000);
    for (let i = 0; i < 1000; i++) expect(deque.shift()).toBe(i);
    expect(deque.shift()).toBeUndefined();
    expect(deque.length).toBe(0);
  });

  it('deque - unshift/pop and the peeks work from both ends', () => {
    const deque = new Deque<string>();
    expect(deque.peekFirst()).toBeUndefined();
    expect(deque.peekLast()).toBeUndefined();
    expect(deque.pop()).toBeUndefined();
    deque.unshift('b');
    deque.unshift('a');
    deque.push('c');
    expect(deque.toArray()).toEqual(['a', 'b', 'c']);
    expect(deque.peekFirst()).toBe('a');
    expect(deque.peekLast()).toBe('c');
    expect(deque.pop()).toBe('c');
    expect(deque.shift()).toBe('a');
    expect([...deque]).toEqual(['b']);
  });

  it('deque - at() indexes from the front across the wrap and is undefined outside', () => {
    const deque = wrapped(10, 12);
    expect(deque.capacity).toBe(16);
    for (let i = 0; i < 10; i++) expect(deque.at(i)).toBe(i);
    expect(deque.at(-1)).toBeUndefined();
    expect(deque.at(10)).toBeUndefined();
  });

  it('deque - insertAt every position of a wrapped ring matches Array.splice', () => {
    for (const offset of [0, 5, 12, 15]) {
      for (let index = 0; index <= 10; index++) {
        const deque = wrapped(10, offset);
        const model = Array.from({ length: 10 }, (_, i) => i);
        deque.insertAt(index, 100);
        model.splice(index, 0, 100);
        expect(deque.toArray(), `offset ${offset} index ${index}`).toEqual(model);
      }
    }
  });

  it('deque - insertAt into a full ring grows first', () => {
    const deque = wrapped(16, 7);
    expect(deque.capacity).toBe(16);
    deque.insertAt(8, 100);
    expect(deque.capacity).toBe(32);
    expect(deque.toArray()).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 100, 8, 9, 10, 11, 12, 13, 14, 15]);
  });

  it('deque - insertAt rejects positions outside 0..length', () => {
    const deque = wrapped(3, 0);
    expect(() => deque.insertAt(4, 1)).toThrow(RangeError);
    expect(() => deque.insertAt(-1, 1)).toThrow(RangeError);
    expect(() => deque.insertAt(1.5, 1)).toThrow(RangeError);
  });

  it('deque - shrinks after a burst drains and keeps its contents', () => {
    const deque = new Deque<number>();
    for (let i = 0; i < 4096; i++) deque.push(i);
    expect(deque.capacity).toBe(4096);
    for (let i = 0; i < 4090; i++) deque.shift();
    expect(deque.capacity).toBeLessThanOrEqual(32);
    expect(deque.toArray()).toEqual([4090, 4091, 4092, 4093, 4094, 4095]);
  });

  it('deque - holds no ring until its first element, and none again after clear', () => {
    const fresh = new Deque<number>();
    expect(fresh.capacity).toBe(0);
    expect(fresh.shift()).toBeUndefined();
    expect(fresh.at(0)).toBeUndefined();
    fresh.unshift(1);
    expect(fresh.capacity).toBe(16);
    const other = new Deque<number>();
    other.insertAt(0, 5);
    expect(other.toArray()).toEqual([5]);
    const deque = wrapped(100, 3);
    deque.clear();
    expect(deque.length).toBe(0);
    expect(deque.capacity).toBe(0);
    deque.push(7);
    expect(deque.toArray()).toEqual([7]);
    expect(fresh.toArray()).toEqual([1]);
  });

  it.each([1, 2, 3, 42, 2024])('deque - seeded random operations match an array model (seed %i)', (seed) => {
    const prng = new Prng(seed);
    const deque = new Deque<number>();
    const model: number[] = [];
    let next = 0;
    for (let step = 0; step < 8_000; step++) {
      // Bias towards growth in the first half and towards draining in the second, so the ring
      // both grows and shrinks while wrapping.
      const growing = step < 4_000;
      const roll = prng.int(0, 5);
      if (roll === 0 || (roll === 1 && growing)) {
        deque.push(next);
        model.push(next++);
      } else if (roll === 2 && growing) {
        deque.unshift(next);
        model.unshift(next++);
      } else if (roll === 3) {
        expect(deque.shift()).toBe(model.shift());
      } else if (roll === 4) {
        expect(deque.pop()).toBe(model.pop());
      } else {
        const index = prng.int(0, model.length);
        deque.insertAt(index, next);
        model.splice(index, 0, next++);
      }
      expect(deque.length, `seed ${seed} step ${step}`).toBe(model.length);
      if (model.length > 0) {
        const probe = prng.int(0, model.length - 1);
        expect(deque.at(probe), `seed ${seed} step ${step}`).toBe(model[probe]);
      }
    }
    expect(deque.toArray(), `seed ${seed}`).toEqual(model);
  });
});
