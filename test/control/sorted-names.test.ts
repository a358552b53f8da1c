import { describe, expect, it } from 'vitest';
import { SortedNames } from '../../src/control/sorted-names.js';
import { mulberry32 } from '../helpers/prng.js';

/** Uniform in [0, 1) from the suite's seeded generator, so a failure can be replayed. */
function rng(seed: number): () => number {
  const next = mulberry32(seed);
  return () => next() / 2 ** 32;
}

const byUnits = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

describe('SortedNames', () => {
  it('stays equal to a brute-force sorted set through random adds and deletes across many block splits', () => {
    for (const seed of [1, 2, 3]) {
      const rand = rng(seed);
      const names = new SortedNames();
      const model = new Set<string>();
      // Names of every kind the topology holds: plain, server-named, a vhost's (U+001F), non-ASCII.
      const pick = (): string => {
        const n = Math.floor(rand() * 6000);
        const kind = n % 4;
        return kind === 0 ? `q-${n}` : kind === 1 ? `amq.gen-${n.toString(36)}` : kind === 2 ? `staging\u001fq-${n}` : `é-${n}-ü`;
      };
      for (let step = 0; step < 40_000; step++) {
        const name = pick();
        if (rand() < 0.6) {
          expect(names.add(name)).toBe(!model.has(name));
          model.add(name);
        } else {
          expect(names.delete(name)).toBe(model.has(name));
          model.delete(name);
        }
        expect(names.length).toBe(model.size);
      }
      const expected = [...model].sort(byUnits);
      expect([...names]).toEqual(expected);
      expect(names.length).toBe(expected.length);
      for (const [from, to] of [
        [0, 100],
        [511, 1025],
        [expected.length - 7, expected.length + 50],
        [-5, 3],
        [10, 10],
      ]) {
        expect(names.slice(from, to)).toEqual(expected.slice(Math.max(0, from), to));
      }
    }
  });

  it('adds once and deletes once; empties cleanly', () => {
    const names = new SortedNames();
    expect(names.add('b')).toBe(true);
    expect(names.add('a')).toBe(true);
    expect(names.add('b')).toBe(false);
    expect([...names]).toEqual(['a', 'b']);
    expect(names.delete('c')).toBe(false);
    expect(names.delete('a')).toBe(true);
    expect(names.delete('a')).toBe(false);
    expect(names.delete('b')).toBe(true);
    expect(names.length).toBe(0);
    expect([...names]).toEqual([]);
    expect(names.slice(0, 10)).toEqual([]);
    expect(names.add('z')).toBe(true);
    expect([...names]).toEqual(['z']);
  });

  it('100,000 names in reverse order, then every other one deleted: in order, each found', () => {
    const names = new SortedNames();
    for (let i = 99_999; i >= 0; i--) names.add(`q-${String(i).padStart(6, '0')}`);
    for (let i = 0; i < 100_000; i += 2) expect(names.delete(`q-${String(i).padStart(6, '0')}`)).toBe(true);
    expect(names.length).toBe(50_000);
    const all = [...names];
    expect(all[0]).toBe('q-000001');
    expect(all.at(-1)).toBe('q-099999');
    for (let i = 1; i < all.length; i++) expect(all[i - 1] < all[i]).toBe(true);
    expect(names.slice(25_000, 25_002)).toEqual(['q-050001', 'q-050003']);
  });
});
