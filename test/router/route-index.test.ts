import { describe, expect, it } from 'vitest';
import { TopicIndex } from '../../src/router/route-index.js';
import { Prng, testSeed } from '../helpers/prng.js';
import { topicMatches } from '../../src/router/topic-matcher.js';

const b = (routingKey: string, target: string) => ({ routingKey, target, headers: null });

describe('TopicIndex', () => {
  it('keeps a (pattern, target) pair while any of its bindings remains', () => {
    const index = new TopicIndex<string>();
    index.add(b('a.*', 'q1'));
    index.add(b('a.*', 'q1')); // the same pair again (another argument table)
    expect(index.size).toBe(2);
    index.remove(b('a.*', 'q1'));
    expect(index.match('a.x')).toEqual(['q1']);
    index.remove(b('a.*', 'q1'));
    expect(index.match('a.x')).toEqual([]);
    expect(index.size).toBe(0);
    index.remove(b('a.*', 'q1')); // nothing left: no effect
    expect(index.size).toBe(0);
  });

  it('a pattern going from one target to several and back routes to exactly the bound ones', () => {
    const index = new TopicIndex<string>();
    index.add(b('a.#', 'q1'));
    index.add(b('a.#', 'q2'));
    index.add(b('a.#', 'q1'));
    expect([...index.match('a.b')].sort()).toEqual(['q1', 'q2']);
    index.remove(b('a.#', 'q1'));
    expect([...index.match('a.b')].sort()).toEqual(['q1', 'q2']);
    index.remove(b('a.#', 'q1'));
    expect(index.match('a.b')).toEqual(['q2']);
    index.remove(b('a.#', 'q9')); // never bound
    expect(index.size).toBe(1);
  });

  it('agrees with a count per (pattern, target) over random adds and removes', () => {
    const seed = testSeed();
    const rng = new Prng(seed);
    const patterns = ['a.*', 'a.#', '#', 'a.b', '*.b', 'c.*'];
    const targets = ['q1', 'q2', 'q3'];
    const keys = ['a.b', 'a.c', 'c.b'];
    const index = new TopicIndex<string>();
    const model = new Map<string, number>();
    for (let step = 0; step < 3000; step++) {
      const p = rng.pick(patterns);
      const t = rng.pick(targets);
      const key = `${p} ${t}`;
      if (rng.chance(0.5)) {
        index.add(b(p, t));
        model.set(key, (model.get(key) ?? 0) + 1);
      } else {
        index.remove(b(p, t));
        const n = model.get(key) ?? 0;
        if (n > 1) model.set(key, n - 1);
        else model.delete(key);
      }
      for (const routingKey of keys) {
        const expected = new Set<string>();
        for (const k of model.keys()) {
          const [pattern, target] = k.split(' ');
          if (topicMatches(pattern, routingKey)) expected.add(target);
        }
        expect([...index.match(routingKey)].sort(), `seed ${seed} step ${step} key ${routingKey}`).toEqual([...expected].sort());
      }
      expect(index.size).toBe([...model.values()].reduce((x, y) => x + y, 0));
    }
  });
});
