import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { patternCovers } from '../../src/router/topic-pattern-cover.js';
import { topicMatches } from '../../src/router/topic-matcher.js';

describe('topic-pattern-cover - table', () => {
  const table: Array<[allowed: string, requested: string, covers: boolean]> = [
    // The hole of issue 18: a client's wildcard is not a plain word.
    ['public.*', 'public.#', false],
    ['public.*', '#', false],
    ['*', '#', false],
    ['sensors.*', 'sensors.#', false],
    ['public.*', 'public.*', true],
    ['public.*', 'public.a', true],
    ['public.*', 'public', false],
    ['public.*', 'public.a.b', false],
    ['public.#', 'public.*', true],
    ['public.#', 'public.#', true],
    ['public.#', 'public.a.#', true],
    ['public.#', 'public', true],
    ['public.#', '#', false],
    ['#', '#', true],
    ['#', 'a.*.b.#', true],
    ['#', '', true],
    ['*', '', false],
    ['', '', true],
    ['', '#', false],
    ['a.#.b', 'a.b', true],
    ['a.#.b', 'a.*.b', true],
    ['a.#.b', 'a.#.b', true],
    ['a.#.b', 'a.#', false],
    ['#.b', 'a.#.b', true],
    ['a.#', '#.b', false],
    ['*.*', '#', false],
    ['#.#', '#', true],
    ['*.#', '#.*', true],
    ['*.#', '#', false],
    // `*` and `#` count as wildcards only as whole words.
    ['a*', 'a*', true],
    ['a*', 'ab', false],
    ['a.*', 'a.x#', true],
  ];
  it.each(table)('allowed %j, requested %j -> %s', (allowed, requested, covers) => {
    expect(patternCovers(allowed, requested)).toBe(covers);
  });

  it('a long pattern pair finishes and answers exactly', () => {
    const requested = Array.from({ length: 30 }, (_, i) => (i % 3 === 0 ? '#' : 'w' + (i % 5))).join('.');
    expect(patternCovers('#', requested)).toBe(true);
    expect(patternCovers(requested, requested)).toBe(true);
    expect(patternCovers(requested, '#')).toBe(false);
  });
});

describe('topic-pattern-cover - property against brute force', () => {
  // Patterns of up to 4 words over {a, b, *, #}; keys of up to 7 words over {a, b, c}, where `c`
  // stands for every word neither pattern names. An exhaustive run over all 341² pattern pairs
  // found no pair whose shortest distinguishing key was longer than 6 words, so 7 is a safe bound.
  const KEY_WORDS = ['a', 'b', 'c'];
  const keys: string[] = [];
  const grow = (prefix: string[]): void => {
    keys.push(prefix.join('.'));
    if (prefix.length < 7) for (const w of KEY_WORDS) grow([...prefix, w]);
  };
  grow([]);
  const pattern = fc.array(fc.constantFrom('a', 'b', '*', '#'), { maxLength: 4 }).map((w) => w.join('.'));

  it('covers iff no key matched by the requested pattern escapes the allowed one (both ways)', () => {
    fc.assert(
      fc.property(pattern, pattern, (allowed, requested) => {
        const witness = keys.find((k) => topicMatches(requested, k) && !topicMatches(allowed, k));
        // Nothing allowed that can match a forbidden key; nothing refused that cannot.
        expect(patternCovers(allowed, requested)).toBe(witness === undefined);
      }),
      { seed: 18, numRuns: 400, plugins: [fc.interruptAfterTimeLimit(5_000)] },
    );
  });
});
