/**
 * Question: how many routing keys per second does the topic matcher (src/router/topic-matcher.ts)
 * answer, by number of binding patterns × share of wildcard patterns × key locality × cache on/off?
 *
 * Keys have 4 words from a 10-word vocabulary each (10,000 possible keys). Patterns are keys with,
 * for the wildcard share, one or two words replaced by `*` or a tail by `#` (`#` in the middle too).
 * Two key streams: "hot" (500 distinct keys, fits the default 1024-entry cache) and "cold" (all
 * 10,000, mostly misses). Matchers and key streams are built outside the timed region; the cache-on
 * and cache-off runs of a configuration are interleaved, and every round runs every configuration.
 *
 * Run: npx tsx native-bench/topic-matcher.bench.ts [--quick] [--runs N]
 */
import { TopicMatcher, DEFAULT_CACHE_SIZE } from '../src/router/topic-matcher.js';
import { Prng } from '../test/helpers/prng.js';
import { benchOptions, finish, header, interleaved, si, spread, summarize, type BenchTable } from './fixtures/bench-util.js';

const options = benchOptions();
const runMs = options.quick ? 40 : 150;
const PATTERN_COUNTS = [100, 10_000] as const;
const WILDCARD_SHARES = [0, 0.1, 0.5] as const;
const LOCALITIES = ['hot', 'cold'] as const;
const VOCAB = 10;
const WORDS = 4;
const STREAM = 65_536;
const machine = header('topic-matcher', 'TopicMatcher.match throughput: patterns × wildcard share × key locality × cache', options);

// Seeded (the tests' mulberry32), so every run matches the same keys against the same patterns.
function randomKeyWords(r: Prng): string[] {
  const words: string[] = [];
  for (let i = 0; i < WORDS; i++) words.push(`w${r.int(0, VOCAB - 1)}`);
  return words;
}

function randomPattern(r: Prng, wildcard: boolean): string {
  const words = randomKeyWords(r);
  if (!wildcard) return words.join('.');
  const shape = r.int(0, 3);
  if (shape === 0) words[r.int(0, WORDS - 1)] = '*';
  else if (shape === 1) {
    words[0] = '*';
    words[2] = '*';
  } else if (shape === 2) return [...words.slice(0, r.int(1, 2)), '#'].join('.');
  else return [words[0], '#', words[WORDS - 1]].join('.');
  return words.join('.');
}

interface Config {
  readonly patterns: number;
  readonly share: number;
  readonly locality: (typeof LOCALITIES)[number];
  readonly cache: boolean;
}

const matchers = new Map<string, TopicMatcher<number>>();
const streams = new Map<string, string[]>();
const configKey = (c: Omit<Config, 'cache'>): string => `${c.patterns}/${c.share}/${c.locality}`;
const configs: Config[] = [];
for (const patterns of PATTERN_COUNTS) {
  for (const share of WILDCARD_SHARES) {
    const r = new Prng(patterns * 7 + share * 1000);
    const list: string[] = [];
    for (let i = 0; i < patterns; i++) list.push(randomPattern(r, r.chance(share)));
    for (const cache of [true, false]) {
      const m = new TopicMatcher<number>({ cacheSize: cache ? DEFAULT_CACHE_SIZE : 0 });
      for (const [i, p] of list.entries()) m.add(p, i);
      matchers.set(`${patterns}/${share}/${cache}`, m);
    }
    for (const locality of LOCALITIES) {
      const kr = new Prng(991 + patterns + share * 10);
      const distinct = locality === 'hot' ? 500 : VOCAB ** WORDS;
      const pool: string[] = [];
      for (let i = 0; i < Math.min(distinct, 20_000); i++) pool.push(randomKeyWords(kr).join('.'));
      const stream: string[] = [];
      for (let i = 0; i < STREAM; i++) stream.push(kr.pick(pool));
      streams.set(configKey({ patterns, share, locality }), stream);
      for (const cache of [true, false]) configs.push({ patterns, share, locality, cache });
    }
  }
}

let sink = 0;
/** Cache hits and matches per cache-on configuration, from the matcher's counters around each run. */
const hitCounts = new Map<string, { hits: number; matches: number }>();
/** Matches per second over the config's key stream for `ms` (bounded by count as well). */
function measure(c: Config, ms: number): number {
  const m = matchers.get(`${c.patterns}/${c.share}/${c.cache}`)!;
  const stream = streams.get(configKey(c))!;
  const before = m.stats;
  let n = 0;
  let i = 0;
  const started = performance.now();
  let now = started;
  while (now - started < ms && n < 200_000_000) {
    for (let k = 0; k < 1024; k++) {
      sink += m.match(stream[i]).length;
      i = (i + 1) & (STREAM - 1);
    }
    n += 1024;
    now = performance.now();
  }
  if (c.cache) {
    const after = m.stats;
    const k = configKey(c);
    const h = hitCounts.get(k) ?? { hits: 0, matches: 0 };
    h.hits += after.cacheHits - before.cacheHits;
    h.matches += after.matches - before.matches;
    hitCounts.set(k, h);
  }
  return n / ((now - started) / 1000);
}

const samples = new Map<Config, number[]>();
for (const c of configs) measure(c, 10); // warm-up (also fills the caches)
hitCounts.clear();
let done = 0;
await interleaved(configs, options.runs, (c, run) => {
  const rate = measure(c, runMs);
  samples.set(c, [...(samples.get(c) ?? []), rate]);
  done++;
  if (done % 8 === 0 || done === configs.length * options.runs) {
    console.log(
      `  [${done}/${configs.length * options.runs}] run ${run + 1}: patterns=${c.patterns} wildcards=${c.share * 100}% ${c.locality} cache=${c.cache ? 'on' : 'off'}: ${si(rate)} matches/s`,
    );
  }
});

const figures: Record<string, number> = {};
const rows: (string | number)[][] = [];
for (const patterns of PATTERN_COUNTS) {
  for (const share of WILDCARD_SHARES) {
    for (const locality of LOCALITIES) {
      const on = configs.find((c) => c.patterns === patterns && c.share === share && c.locality === locality && c.cache)!;
      const off = configs.find((c) => c.patterns === patterns && c.share === share && c.locality === locality && !c.cache)!;
      const sOn = samples.get(on) ?? [];
      const sOff = samples.get(off) ?? [];
      const speedup = summarize(sOn.map((x, i) => x / sOff[i])).median;
      const hits = hitCounts.get(configKey({ patterns, share, locality })) ?? { hits: 0, matches: 0 };
      rows.push([
        `patterns=${patterns}`,
        `${share * 100}%`,
        locality === 'hot' ? 'hot (500 keys)' : 'cold (10k keys)',
        spread(summarize(sOn)),
        spread(summarize(sOff)),
        `${speedup.toFixed(1)}×`,
        `${((hits.hits / Math.max(1, hits.matches)) * 100).toFixed(0)}%`,
      ]);
      const base = `topic_matcher_${patterns}p_w${share * 100}_${locality}`;
      figures[`${base}_cache_on_matches_per_s`] = summarize(sOn).median;
      figures[`${base}_cache_off_matches_per_s`] = summarize(sOff).median;
    }
  }
}
const table: BenchTable = {
  title: `TopicMatcher.match, keys of ${WORDS} words (vocabulary ${VOCAB}), ${runMs} ms per run × ${options.runs} interleaved run(s)`,
  columns: ['patterns', 'wildcard share', 'keys', 'matches/s cache on (1024)', 'matches/s cache off', 'cache speed-up', 'cache hit rate'],
  rows,
  notes: [
    'wildcard patterns: one `*`, two `*`, a `#` tail, or `first.#.last`; the hit rate is that of the cache-on matcher over the timed runs of that key stream (the cache is shared with the other stream, so a cold stream also evicts hot keys)',
    `checksum ${sink % 997}`,
  ],
};
finish({ bench: 'topic-matcher', machine, figures, tables: [table] }, true);
