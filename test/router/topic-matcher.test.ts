import { describe, expect, it } from 'vitest';
import { DEFAULT_CACHE_SIZE, isLiteralPattern, TopicMatcher, topicMatches } from '../../src/router/topic-matcher.js';
import { Prng } from '../helpers/prng.js';

// ---------------------------------------------------------------------------------------------------
// Helpers

function randomPhrase(prng: Prng, alphabet: readonly string[], maxWords: number): string {
  const n = prng.int(0, maxWords);
  const words: string[] = [];
  for (let i = 0; i < n; i++) words.push(prng.pick(alphabet));
  return words.join('.');
}

/** Naive backtracking matcher (exponential in the worst case): a second, independent oracle. */
function naiveMatches(pattern: string, key: string): boolean {
  const p = pattern === '' ? [] : pattern.split('.');
  const k = key === '' ? [] : key.split('.');
  const go = (i: number, j: number): boolean => {
    if (i === p.length) return j === k.length;
    if (p[i] === '#') return go(i + 1, j) || (j < k.length && go(i, j + 1));
    if (j === k.length) return false;
    return (p[i] === '*' || p[i] === k[j]) && go(i + 1, j + 1);
  };
  return go(0, 0);
}

const sorted = <T>(xs: readonly T[]): T[] => [...xs].sort();

// ---------------------------------------------------------------------------------------------------
// The AMQP case table: [pattern, routing key, matches?]

type Case = readonly [pattern: string, key: string, expected: boolean];

const CASES: readonly Case[] = [
  // `#` alone: everything, including the empty key (zero words) and empty words.
  ['#', '', true],
  ['#', 'a', true],
  ['#', 'a.b.c', true],
  ['#', '.', true],
  // `#` matching zero words in the middle, one, and several.
  ['a.#.b', 'a.b', true],
  ['a.#.b', 'a.x.b', true],
  ['a.#.b', 'a.x.y.b', true],
  ['a.#.b', 'a', false],
  ['a.#.b', 'b', false],
  ['a.#.b', 'a.b.c', false],
  ['a.#.b', 'x.a.b', false],
  // `#` at the end and at the start, including zero words.
  ['a.#', 'a', true],
  ['a.#', 'a.b', true],
  ['a.#', 'a.b.c', true],
  ['a.#', 'a.', true],
  ['a.#', 'b', false],
  ['a.#', '', false],
  ['a.#', 'b.a', false],
  ['#.a', 'a', true],
  ['#.a', 'x.a', true],
  ['#.a', 'x.y.a', true],
  ['#.a', 'a.x', false],
  ['#.a', '', false],
  // `*` first, middle, last; never zero words, never two.
  ['*.b.c', 'a.b.c', true],
  ['*.b.c', 'b.c', false],
  ['*.b.c', 'x.y.b.c', false],
  ['a.*.c', 'a.b.c', true],
  ['a.*.c', 'a.c', false],
  ['a.*.c', 'a.b.b.c', false],
  ['a.b.*', 'a.b.c', true],
  ['a.b.*', 'a.b', false],
  ['a.b.*', 'a.b.c.d', false],
  ['*', 'a', true],
  ['*', '', false],
  ['*', 'a.b', false],
  ['*', '.', false],
  ['*.*', 'a', false],
  ['*.*', 'a.b', true],
  ['*.*', 'a.b.c', false],
  ['*.*', '.', true],
  // Literals.
  ['a.b.c', 'a.b.c', true],
  ['a.b.c', 'a.b', false],
  ['a.b', 'a.b.c', false],
  ['a', 'b', false],
  // Empty words: `a..b` is three words, `.a` and `a.` two; `*` matches an empty word.
  ['a..b', 'a..b', true],
  ['a..b', 'a.b', false],
  ['a..b', 'a.x.b', false],
  ['a.*.b', 'a..b', true],
  ['a.#.b', 'a..b', true],
  ['.a', '.a', true],
  ['.a', 'a', false],
  ['*.a', '.a', true],
  ['#.a', '.a', true],
  ['a.', 'a.', true],
  ['a.', 'a', false],
  ['a.*', 'a.', true],
  ['.', '.', true],
  ['.', '', false],
  ['*.*.*', '..', true],
  // The empty key has zero words.
  ['', '', true],
  ['', 'a', false],
  ['', '.', false],
  ['a', '', false],
  ['#.#', '', true],
  ['#.*', '', false],
  ['*.#', '', false],
  // Wildcards only as whole words; key words are always literal.
  ['a*', 'a*', true],
  ['a*', 'ab', false],
  ['a*', 'a', false],
  ['#b', '#b', true],
  ['#b', 'b', false],
  ['#b', 'xb', false],
  ['*a.b', 'xa.b', false],
  ['a.b#', 'a.b', false],
  ['a.b#', 'a.b#', true],
  ['**', 'ab', false],
  ['##', 'a', false],
  ['##', '##', true],
  ['a.*', 'a.*', true],
  ['a.#', 'a.#', true],
  ['a.b', 'a.*', false],
  ['a', '#', false],
  ['*', '#', true],
  // `#.#` behaves like `#`.
  ['#.#', 'a', true],
  ['#.#', 'a.b.c', true],
  ['a.#.#.b', 'a.b', true],
  ['a.#.#.b', 'a.x.y.z.b', true],
  // `#.*` and `*.#` need at least one word; `*.#.*` at least two.
  ['#.*', 'a', true],
  ['#.*', 'a.b', true],
  ['*.#', 'a', true],
  ['*.#', 'a.b.c', true],
  ['*.#.*', 'a', false],
  ['*.#.*', 'a.b', true],
  ['*.#.*', 'a.b.c', true],
  ['*.#.*', 'a.b.c.d', true],
  // Several `#`.
  ['a.#.b.#.c', 'a.b.c', true],
  ['a.#.b.#.c', 'a.x.b.y.c', true],
  ['a.#.b.#.c', 'a.b.b.c', true],
  ['a.#.b.#.c', 'a.c', false],
  ['a.#.b.#.c', 'a.b', false],
  ['#.a.#', 'a', true],
  ['#.a.#', 'x.a.y', true],
  ['#.a.#', 'x.y', false],
  ['#.a.#.a.#', 'a.a', true],
  ['#.a.#.a.#', 'a', false],
  ['#.a.#.a.#', 'x.a.x.a.x', true],
  ['#.#.a', 'a', true],
  ['#.b.#', 'b', true],
];

const CONFIGS = [
  { name: 'cache', cacheSize: DEFAULT_CACHE_SIZE },
  { name: 'no cache', cacheSize: 0 },
  { name: 'tiny cache', cacheSize: 2 },
] as const;

describe('topicMatches - reference', () => {
  it.each(CASES)('topicMatches(%j, %j) is %s', (pattern, key, expected) => {
    expect(topicMatches(pattern, key)).toBe(expected);
    expect(naiveMatches(pattern, key)).toBe(expected);
  });

  it('agrees with naive backtracking on random small inputs', () => {
    const seed = 0x5eed;
    const prng = new Prng(seed);
    for (let n = 0; n < 20_000; n++) {
      const pattern = randomPhrase(prng, ['a', 'b', '', '*', '#'], 5);
      const key = randomPhrase(prng, ['a', 'b', '', '*', '#'], 6);
      expect(topicMatches(pattern, key), `seed=${seed} ${JSON.stringify([pattern, key])}`).toBe(naiveMatches(pattern, key));
    }
  });
});

describe('isLiteralPattern', () => {
  it.each([
    ['', true],
    ['a.b', true],
    ['a..b', true],
    ['a*', true],
    ['#b', true],
    ['a.b#.c', true],
    ['**', true],
    ['*', false],
    ['#', false],
    ['a.*', false],
    ['*.a', false],
    ['a.#.b', false],
    ['.#', false],
    ['#.', false],
  ] as const)('isLiteralPattern(%j) is %s', (pattern, expected) => {
    expect(isLiteralPattern(pattern)).toBe(expected);
  });
});

describe.each(CONFIGS)('TopicMatcher - $name', ({ cacheSize }) => {
  const make = <T>(): TopicMatcher<T> => new TopicMatcher<T>({ cacheSize });
  const cacheOn = cacheSize > 0;

  it('uses its configuration (cache hits only when the cache is on)', () => {
    const m = make<string>();
    m.add('a.*', 'q');
    expect(m.match('a.b')).toEqual(['q']);
    expect(m.match('a.b')).toEqual(['q']);
    expect(m.stats).toEqual({ matches: 2, cacheHits: cacheOn ? 1 : 0 });
    expect(m.cachedKeys).toBe(cacheOn ? 1 : 0);
  });

  it.each(CASES)('single binding %j ~ %j is %s', (pattern, key, expected) => {
    const m = make<string>();
    m.add(pattern, 'q');
    const want = expected ? ['q'] : [];
    expect(m.match(key)).toEqual(want);
    // Second lookup: from the cache when it is on, recomputed when it is off; same answer.
    expect(m.match(key)).toEqual(want);
    expect(m.stats.cacheHits).toBe(cacheOn ? 1 : 0);
  });

  it('all table patterns bound at once: each key gets exactly the matching patterns', () => {
    const m = make<string>();
    const patterns = [...new Set(CASES.map(([p]) => p))];
    for (const p of patterns) m.add(p, p);
    expect(m.size).toBe(patterns.length);
    for (const [pattern, key, expected] of CASES) {
      const result = m.match(key);
      expect(result.includes(pattern), `${JSON.stringify(pattern)} ~ ${JSON.stringify(key)}`).toBe(expected);
      expect(sorted(result)).toEqual(sorted(patterns.filter((p) => topicMatches(p, key))));
    }
    expect(m.stats.cacheHits > 0).toBe(cacheOn);
  });

  it('dedup - a value bound with several matching patterns appears once', () => {
    const m = make<string>();
    m.add('a.*', 'q1');
    m.add('*.b', 'q1');
    m.add('#', 'q1');
    m.add('a.b', 'q1');
    m.add('a.#', 'q2');
    expect(m.size).toBe(5);
    expect(sorted(m.match('a.b'))).toEqual(['q1', 'q2']);
    expect(m.match('a.b')).toHaveLength(2);
    expect(m.match('x.b')).toEqual(['q1']);
  });

  it('dedup - the same (pattern, value) added twice is one binding', () => {
    const m = make<string>();
    m.add('a.#', 'q');
    m.add('a.#', 'q');
    expect(m.size).toBe(1);
    expect(m.match('a.b')).toEqual(['q']);
    expect(m.remove('a.#', 'q')).toBe(true);
    expect(m.match('a.b')).toEqual([]);
    expect(m.size).toBe(0);
  });

  it('order - values of one pattern come in insertion order', () => {
    const m = make<number>();
    for (const v of [5, 3, 9, 1]) m.add('a.b', v);
    expect(m.match('a.b')).toEqual([5, 3, 9, 1]);
  });

  it('order - values are compared by identity, objects work', () => {
    const q1 = { name: 'q1' };
    const q2 = { name: 'q1' };
    const m = make<{ name: string }>();
    m.add('a.*', q1);
    m.add('a.#', q1);
    m.add('a.#', q2);
    const result = m.match('a.b');
    expect(result).toHaveLength(2);
    expect(result[0]).toBe(q1);
    expect(result[1]).toBe(q2);
  });

  it('remove - prunes empty nodes; size and node count return to empty', () => {
    const m = make<string>();
    const patterns = ['a.b.c', 'a.*.c', 'a.#', '#', '#.#.x', '*', '', 'a..b', 'a.b'];
    for (const p of patterns) m.add(p, 'q');
    expect(m.size).toBe(patterns.length);
    expect(m.nodes).toBeGreaterThan(1);
    for (const p of patterns) expect(m.remove(p, 'q')).toBe(true);
    expect(m.size).toBe(0);
    expect(m.nodes).toBe(1);
    for (const key of ['', 'a', 'a.b.c', 'x']) expect(m.match(key)).toEqual([]);
  });

  it('remove - keeps nodes that still lead somewhere, returns false for unknown pairs', () => {
    const m = make<string>();
    m.add('a.b.c', 'q');
    const nodes = m.nodes; // root, a, b, c
    expect(nodes).toBe(4);
    expect(m.remove('a.b', 'q')).toBe(false); // a prefix of a bound pattern
    expect(m.remove('a.b.c', 'other')).toBe(false);
    expect(m.remove('a.b.c.d', 'q')).toBe(false);
    expect(m.remove('a.*.c', 'q')).toBe(false);
    expect(m.nodes).toBe(nodes);
    m.add('a.b', 'q');
    expect(m.remove('a.b.c', 'q')).toBe(true);
    expect(m.nodes).toBe(3); // `c` pruned; `a.b` still bound
    expect(m.match('a.b')).toEqual(['q']);
    expect(m.has('a.b', 'q')).toBe(true);
    expect(m.has('a.b.c', 'q')).toBe(false);
  });

  it('cache - add and remove are visible to later matches', () => {
    const m = make<string>();
    expect(m.match('a.b')).toEqual([]);
    expect(m.match('c.d')).toEqual([]);
    m.add('a.*', 'q1'); // wildcard: every cached key may change
    expect(m.match('a.b')).toEqual(['q1']);
    expect(m.match('c.d')).toEqual([]);
    m.add('a.b', 'q2'); // literal: only `a.b` may change
    expect(sorted(m.match('a.b'))).toEqual(['q1', 'q2']);
    m.add('#', 'q3');
    expect(sorted(m.match('c.d'))).toEqual(['q3']);
    expect(m.remove('a.*', 'q1')).toBe(true);
    expect(sorted(m.match('a.b'))).toEqual(['q2', 'q3']);
    expect(m.remove('a.b', 'q2')).toBe(true);
    expect(m.match('a.b')).toEqual(['q3']);
    expect(m.remove('#', 'q3')).toBe(true);
    expect(m.match('a.b')).toEqual([]);
    expect(m.match('c.d')).toEqual([]);
  });

  it('cache - a literal binding change leaves other cached keys cached', () => {
    const m = make<string>();
    m.match('c.d');
    m.match('a.b');
    const before = m.stats.cacheHits;
    m.add('a.b', 'q');
    expect(m.match('c.d')).toEqual([]);
    expect(m.match('a.b')).toEqual(['q']);
    // With the cache on, `c.d` was a hit and `a.b` a miss; a tiny cache keeps both keys too.
    expect(m.stats.cacheHits - before).toBe(cacheOn ? 1 : 0);
  });

  it('cache - returns a shared result array only when cached', () => {
    const m = make<string>();
    m.add('a.#', 'q');
    const first = m.match('a.b');
    const second = m.match('a.b');
    expect(second).toEqual(first);
    if (cacheOn) expect(second).toBe(first);
    else expect(second).not.toBe(first);
  });

  it('cache - stays within its size bound', () => {
    const m = make<string>();
    m.add('#', 'q');
    for (let i = 0; i < 3 * DEFAULT_CACHE_SIZE; i++) expect(m.match(`k.${i}`)).toEqual(['q']);
    expect(m.cachedKeys).toBeLessThanOrEqual(cacheSize);
    if (cacheOn) expect(m.cachedKeys).toBeGreaterThan(0);
  });

  it('pathological - many `#` against a long key completes', () => {
    const m = make<string>();
    const pattern = '#.#.#.#.#.#.#.#.a';
    m.add(pattern, 'q');
    m.add('#.#.#.#.#.#.#.#.#.#.#.#', 'all');
    m.add('#.x.#.x.#.x.#.x.#.x.#.x.#', 'six-x');
    const words = Array.from({ length: 30 }, (_, i) => `w${i % 3}`);
    const miss = words.join('.');
    const hit = [...words.slice(1), 'a'].join('.');
    const xs = Array.from({ length: 30 }, () => 'x').join('.');
    expect(m.match(miss)).toEqual(['all']);
    expect(sorted(m.match(hit))).toEqual(['all', 'q']);
    expect(sorted(m.match(xs))).toEqual(['all', 'six-x']);
    expect(topicMatches(pattern, miss)).toBe(false);
    expect(topicMatches(pattern, hit)).toBe(true);
  });

  it('property - agrees with topicMatches over random bindings, before and after removes', () => {
    const seed = 0xc0ffee + cacheSize;
    const prng = new Prng(seed);
    const patternWords = ['a', 'b', '', '*', '#'];
    const keyWords = ['a', 'b', 'c', '', '*', '#'];
    const values = Array.from({ length: 12 }, (_, i) => `q${i}`);
    const m = make<string>();
    const bound = new Map<string, [string, string]>(); // "pattern\0value" -> pair
    for (let i = 0; i < 300; i++) {
      const pair: [string, string] = [randomPhrase(prng, patternWords, 5), prng.pick(values)];
      m.add(pair[0], pair[1]);
      bound.set(`${pair[0]}\0${pair[1]}`, pair);
    }
    expect(m.size).toBe(bound.size);
    const keys = Array.from({ length: 400 }, () => randomPhrase(prng, keyWords, 6));
    keys.push('', '.', '..', 'a', '#');

    const check = (phase: string): void => {
      for (const key of keys) {
        const expected = new Set<string>();
        for (const [p, v] of bound.values()) if (topicMatches(p, key)) expected.add(v);
        const result = m.match(key);
        const where = `seed=${seed} phase=${phase} key=${JSON.stringify(key)}`;
        expect(new Set(result).size, where).toBe(result.length); // no duplicates
        expect(sorted(result), where).toEqual(sorted([...expected]));
      }
    };
    check('added');
    check('added (again, cached when on)');

    for (const [id, [p, v]] of [...bound]) {
      if (prng.chance(0.6)) {
        expect(m.remove(p, v)).toBe(true);
        bound.delete(id);
      }
    }
    expect(m.size).toBe(bound.size);
    check('after removes');

    for (const [id, [p, v]] of [...bound]) {
      expect(m.remove(p, v)).toBe(true);
      bound.delete(id);
    }
    expect(m.size).toBe(0);
    expect(m.nodes).toBe(1);
    check('emptied');
  });

  it('property - interleaved add/remove/match keep the cache coherent', () => {
    const seed = 0xbadcafe + cacheSize;
    const prng = new Prng(seed);
    const patternWords = ['a', 'b', '*', '#'];
    const keys = ['', 'a', 'b', 'a.b', 'b.a', 'a.a.b', 'a.b.a.b', 'b.b.b'];
    const values = ['q0', 'q1', 'q2', 'q3'];
    const m = make<string>();
    const bound = new Map<string, [string, string]>();
    for (let step = 0; step < 5_000; step++) {
      const r = prng.float();
      if (r < 0.25) {
        const pair: [string, string] = [randomPhrase(prng, patternWords, 4), prng.pick(values)];
        m.add(pair[0], pair[1]);
        bound.set(`${pair[0]}\0${pair[1]}`, pair);
      } else if (r < 0.45 && bound.size > 0) {
        const [id, [p, v]] = prng.pick([...bound]);
        expect(m.remove(p, v)).toBe(true);
        bound.delete(id);
      } else {
        const key = prng.pick(keys);
        const expected = new Set<string>();
        for (const [p, v] of bound.values()) if (topicMatches(p, key)) expected.add(v);
        expect(sorted(m.match(key)), `seed=${seed} step=${step} key=${JSON.stringify(key)}`).toEqual(sorted([...expected]));
      }
    }
    expect(m.size).toBe(bound.size);
    expect(m.stats.cacheHits > 0).toBe(cacheOn);
  });

  it('order - adding a binding with a new value never reorders an existing result', () => {
    const seed = 0x0bde + cacheSize;
    const prng = new Prng(seed);
    const words = ['a', 'b', '*', '#'];
    const keys = ['a', 'a.b', 'b.a.b', 'a.a.a', ''];
    const m = make<number>();
    for (let v = 0; v < 200; v++) {
      const before = keys.map((k) => [...m.match(k)]);
      m.add(randomPhrase(prng, words, 4), v);
      keys.forEach((k, i) => {
        const after = m.match(k).filter((x) => x !== v);
        expect(after, `seed=${seed} value=${v} key=${JSON.stringify(k)}`).toEqual(before[i]);
      });
    }
  });
});

describe('TopicMatcher - options', () => {
  it.each([-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY])('rejects cacheSize %s', (cacheSize) => {
    expect(() => new TopicMatcher({ cacheSize })).toThrow(RangeError);
    expect(() => new TopicMatcher({ cacheSize })).toThrow(/options\.cacheSize/);
  });

  it('defaults to a cache', () => {
    const m = new TopicMatcher<string>();
    m.match('a');
    m.match('a');
    expect(m.stats).toEqual({ matches: 2, cacheHits: 1 });
  });

  it('a one-entry cache still answers correctly', () => {
    const m = new TopicMatcher<string>({ cacheSize: 1 });
    m.add('a.*', 'q');
    for (let i = 0; i < 10; i++) {
      expect(m.match('a.b')).toEqual(['q']);
      expect(m.match('b.b')).toEqual([]);
      expect(m.cachedKeys).toBe(1);
    }
  });

  it('a pattern bound to many values keeps them in insertion order through the switch from array to set, and removes each exactly', () => {
    const m = new TopicMatcher<number>();
    for (let v = 0; v < 20; v++) m.add('dev.*.temp', v);
    m.add('dev.*.temp', 3); // again: no-op
    expect(m.size).toBe(20);
    expect(m.match('dev.1.temp')).toEqual(Array.from({ length: 20 }, (_, v) => v));
    for (const v of [0, 5, 19]) expect(m.remove('dev.*.temp', v)).toBe(true);
    expect(m.remove('dev.*.temp', 5)).toBe(false);
    expect(m.has('dev.*.temp', 5)).toBe(false);
    expect(m.has('dev.*.temp', 6)).toBe(true);
    expect(m.match('dev.2.temp')).toEqual(Array.from({ length: 20 }, (_, v) => v).filter((v) => v !== 0 && v !== 5 && v !== 19));
    const few = new TopicMatcher<string>();
    few.add('a.#', 'x');
    few.add('a.#', 'y');
    expect(few.remove('a.#', 'x')).toBe(true);
    expect(few.match('a.b')).toEqual(['y']);
    expect(few.remove('a.#', 'y')).toBe(true);
    expect(few.match('a.b')).toEqual([]);
    expect(few.size).toBe(0);
  });
});

describe('TopicMatcher - a pattern with one value, then more, then one again', () => {
  it('holds a lone value as itself and still answers, dedups and removes exactly', () => {
    const m = new TopicMatcher<{ n: number }>();
    const a = { n: 1 };
    const b = { n: 2 };
    m.add('x.*', a);
    m.add('x.*', a); // again: a no-op
    expect(m.size).toBe(1);
    expect(m.match('x.1')).toEqual([a]);
    expect(m.has('x.*', a)).toBe(true);
    expect(m.has('x.*', b)).toBe(false);
    expect(m.remove('x.*', b)).toBe(false);
    m.add('x.*', b);
    m.add('x.#', a);
    expect(m.match('x.1')).toEqual([a, b]);
    expect(m.remove('x.*', a)).toBe(true);
    expect(m.match('x.2')).toEqual([b, a]);
    expect(m.valuesAt('x.*')).toEqual([b]);
    expect(m.valuesAt('x.#')).toEqual([a]);
    expect(m.valuesAt('x.y')).toEqual([]);
    expect(new Set(m.allValues())).toEqual(new Set([a, b]));
    expect(m.remove('x.*', b)).toBe(true);
    expect(m.remove('x.#', a)).toBe(true);
    expect(m.match('x.1')).toEqual([]);
    expect(m.size).toBe(0);
    expect(m.nodes).toBe(1);
  });

  it('numbers as values (the main thread binds shards): 0 is a value like any other', () => {
    const m = new TopicMatcher<number>();
    m.add('a', 0);
    m.add('#', 3);
    expect(m.match('a')).toEqual([0, 3]);
    expect(m.remove('a', 1)).toBe(false);
    expect(m.remove('a', 0)).toBe(true);
    expect(m.match('a')).toEqual([3]);
  });
});
