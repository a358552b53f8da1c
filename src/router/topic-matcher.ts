/**
 * AMQP 0-9-1 topic matching: a word trie over binding patterns, with a bounded result cache.
 *
 * Single-threaded (shard thread or main thread, never shared): no atomics, counters are plain fields.
 *
 * Semantics (RabbitMQ's topic exchange):
 * - Routing keys and patterns are words separated by `.`. Words may be empty: `a..b` is `a`, ``, `b`.
 * - The empty string has ZERO words (RabbitMQ splits `` into no words), so `#` matches the empty key,
 *   `*` does not, and the pattern `` matches only the key ``.
 * - `*` matches exactly one word (which may be empty); `#` matches zero or more words, anywhere in the
 *   pattern (`a.#.b` matches `a.b`). Both are wildcards only as whole words: `a*` and `#b` are literals.
 *   A routing key has no wildcards: a key word `*` is the literal word `*`.
 *
 * Shape: nats-server's sublist (`server/sublist.go`, `server/gsl/gsl.go`): every trie node holds a map
 * of literal next words plus direct pointers to its `*` and `#` children, and matches are cached in a
 * bounded map that is invalidated on add/remove. What differs from NATS:
 * - NATS `>` matches one or more words and only at the end, so sublist can stop at `>`. AMQP `#` matches
 *   zero or more words anywhere, so a `#` node both "stays" (consumes a word and remains) and is
 *   entered without consuming anything (the zero-word case). Matching is therefore a simulation of the
 *   trie as an NFA: a set of live nodes advanced once per word. The set is deduplicated per step with
 *   an epoch mark on each node, so a key of n words costs O(n × live nodes), never exponential, however
 *   many `#` a pattern has (`#.#.#.#.#.a` against a long key that does not end in `a` is the case that
 *   makes naive backtracking explode).
 * - No queue groups: in AMQP the value bound is the queue, so results are one flat, deduplicated list.
 * - Cache invalidation: adding or removing a literal pattern can only change the result for the key
 *   equal to that pattern, so only that entry is dropped; a wildcard pattern clears the cache.
 *   sublist instead rewrites matching cache entries in place; clearing is simpler and adds/removes
 *   (binding changes) are rare next to matches (publishes).
 *
 * Result order: the order in which the walk reaches patterns, then insertion order among values bound
 * with the same pattern. A value reached through several patterns appears once, at its first position.
 * Adding or removing a binding never reorders the other values of a result (new trie nodes never lead
 * back into old ones), and the order is the same with and without the cache.
 */

/** Default number of cached routing keys: nats-server's slCacheMax; enough for the hot keys of a shard. */
export const DEFAULT_CACHE_SIZE = 1024;

/**
 * Share of the cache evicted (oldest first) when it is full: evicting a batch, as sublist's sweep does,
 * makes the cost amortised O(1) per insert instead of one eviction scan per miss.
 */
const CACHE_SWEEP_FRACTION = 0.25;

/**
 * Epochs stay below this so node marks remain V8 small integers; on reaching it every mark in the trie
 * is reset (one walk per ~1e9 match steps).
 */
const MARK_EPOCH_LIMIT = 0x3fff_ffff;

const WORD_SEPARATOR = '.';
const STAR = '*';
const HASH = '#';
const STAR_CODE = 0x2a;
const HASH_CODE = 0x23;
const SEPARATOR_CODE = 0x2e;

const EMPTY_RESULT: readonly never[] = Object.freeze([]);
const NO_WORDS: readonly string[] = Object.freeze([]);

export interface TopicMatcherOptions {
  /** Maximum number of cached routing keys; 0 disables the cache. Default {@link DEFAULT_CACHE_SIZE}. */
  cacheSize?: number;
}

export interface TopicMatcherStats {
  /** Calls to `match`, cached or not. */
  matches: number;
  /** Calls to `match` answered from the cache. */
  cacheHits: number;
}

/** Splits a routing key or pattern into words; the empty string has zero words (RabbitMQ semantics). */
export function splitWords(s: string): readonly string[] {
  return s === '' ? NO_WORDS : s.split(WORD_SEPARATOR);
}

/** A node's values as a list (a lone value is held as itself). */
function valuesOf<T>(values: T | T[] | Set<T>): Iterable<T> {
  return Array.isArray(values) || values instanceof Set ? (values as Iterable<T>) : [values as T];
}

/** A node's values become a Set past this many. */
const VALUES_AS_SET = 8;

class TrieNode<T> {
  /** Children reached by a literal word. Created on first use: most nodes are leaves. */
  literals: Map<string, TrieNode<T>> | null = null;
  /** Child reached by the pattern word `*`. */
  star: TrieNode<T> | null = null;
  /** Child reached by the pattern word `#`. */
  hash: TrieNode<T> | null = null;
  /**
   * Values bound with the pattern that ends at this node, in insertion order: the value itself when
   * it is the only one (most patterns have one: an array of one is ~56 bytes, at 100,000
   * subscriptions 5.6 MB per thread), an array while they are few, a Set past VALUES_AS_SET for
   * constant-time add and remove (an empty Set alone is ~150 bytes).
   */
  values: T | T[] | Set<T> | null = null;
  /** Epoch of the match step that last put this node in the live set (per-step deduplication). */
  mark = 0;

  /** `isHash`: this node was reached through a `#` word, so it may also consume a word and stay. */
  constructor(readonly isHash: boolean) {}

  isEmpty(): boolean {
    return this.values === null && this.star === null && this.hash === null && (this.literals === null || this.literals.size === 0);
  }
}

/**
 * Maps AMQP topic binding patterns to values (typically queues) and answers which values a routing
 * key reaches. A value is never an array or a Set itself (a node holds a lone value as is). See the module comment for semantics, complexity and result order.
 */
export class TopicMatcher<T> {
  readonly #root = new TrieNode<T>(false);
  /** routing key → result; insertion-ordered, so iteration order is oldest first. */
  readonly #cache: Map<string, readonly T[]> | null;
  readonly #cacheMax: number;
  /** Size the cache is swept down to when it reaches #cacheMax. */
  readonly #cacheSweepTo: number;
  #size = 0;
  #nodes = 1;
  #matches = 0;
  #cacheHits = 0;
  #epoch = 0;
  /** Live-node buffers reused across matches (swapped each step) so a match allocates no state sets. */
  #live: TrieNode<T>[] = [];
  #nextLive: TrieNode<T>[] = [];
  /** Reused for deduplicating values when more than one matched pattern has values. */
  readonly #seen = new Set<T>();

  constructor(options: TopicMatcherOptions = {}) {
    const cacheSize = options.cacheSize ?? DEFAULT_CACHE_SIZE;
    if (!Number.isSafeInteger(cacheSize) || cacheSize < 0) {
      throw new RangeError(`options.cacheSize must be an integer >= 0 (got ${String(cacheSize)})`);
    }
    this.#cacheMax = cacheSize;
    this.#cacheSweepTo = cacheSize - Math.max(1, Math.floor(cacheSize * CACHE_SWEEP_FRACTION));
    this.#cache = cacheSize > 0 ? new Map() : null;
  }

  /** Number of distinct (pattern, value) pairs. */
  get size(): number {
    return this.#size;
  }

  /** Number of trie nodes including the root (1 when empty): shows that `remove` prunes. */
  get nodes(): number {
    return this.#nodes;
  }

  /** Number of routing keys currently cached. */
  get cachedKeys(): number {
    return this.#cache === null ? 0 : this.#cache.size;
  }

  /** A snapshot of the counters. */
  get stats(): Readonly<TopicMatcherStats> {
    return { matches: this.#matches, cacheHits: this.#cacheHits };
  }

  /** Binds `value` with `pattern`. Adding the same (pattern, value) pair again is a no-op. */
  add(pattern: string, value: T): void {
    const words = splitWords(pattern);
    let node = this.#root;
    for (let i = 0; i < words.length; i++) {
      const word = words[i];
      let child: TrieNode<T> | null | undefined;
      if (word === STAR) {
        child = node.star;
        if (child === null) child = node.star = this.#newNode(false);
      } else if (word === HASH) {
        child = node.hash;
        if (child === null) child = node.hash = this.#newNode(true);
      } else {
        if (node.literals === null) node.literals = new Map();
        child = node.literals.get(word);
        if (child === undefined) {
          child = this.#newNode(false);
          node.literals.set(word, child);
        }
      }
      node = child;
    }
    const values = node.values;
    if (values === null) node.values = value;
    else if (Array.isArray(values)) {
      if (values.includes(value)) return;
      if (values.length < VALUES_AS_SET) values.push(value);
      else node.values = new Set(values).add(value);
    } else if (values instanceof Set) {
      if (values.has(value)) return;
      values.add(value);
    } else if (values === value) return;
    else node.values = [values as T, value];
    this.#size++;
    this.#invalidate(pattern);
  }

  /**
   * Unbinds `value` from `pattern`; returns false when that pair was not bound. Trie nodes left with
   * no values and no children are removed.
   */
  remove(pattern: string, value: T): boolean {
    const words = splitWords(pattern);
    // path[i] is the node reached after i words; kept so empty nodes can be pruned bottom-up.
    const path: TrieNode<T>[] = [this.#root];
    let node = this.#root;
    for (let i = 0; i < words.length; i++) {
      const child = childFor(node, words[i]);
      if (child === null) return false;
      node = child;
      path.push(node);
    }
    const values = node.values;
    if (values === null) return false;
    if (Array.isArray(values)) {
      const at = values.indexOf(value);
      if (at < 0) return false;
      values.splice(at, 1);
      if (values.length === 0) node.values = null;
    } else if (values instanceof Set) {
      if (!values.delete(value)) return false;
      if (values.size === 0) node.values = null;
    } else if (values === value) node.values = null;
    else return false;
    this.#size--;
    for (let i = words.length; i > 0 && path[i].isEmpty(); i--) {
      detachChild(path[i - 1], words[i - 1]);
      this.#nodes--;
    }
    this.#invalidate(pattern);
    return true;
  }

  /** True when `value` is bound with exactly `pattern`. */
  has(pattern: string, value: T): boolean {
    const values = this.#nodeAt(pattern)?.values ?? null;
    if (values === null) return false;
    if (Array.isArray(values)) return values.includes(value);
    return values instanceof Set ? values.has(value) : values === value;
  }

  /** The values bound with exactly `pattern` (its wildcards as words, not matched), in insertion order. */
  valuesAt(pattern: string): readonly T[] {
    const values = this.#nodeAt(pattern)?.values ?? null;
    return values === null ? EMPTY_RESULT : Array.from(valuesOf(values));
  }

  /** The node `pattern` ends at (its words followed as they are), or null when the trie has no such path. */
  #nodeAt(pattern: string): TrieNode<T> | null {
    const words = splitWords(pattern);
    let node = this.#root;
    for (let i = 0; i < words.length; i++) {
      const child = childFor(node, words[i]);
      if (child === null) return null;
      node = child;
    }
    return node;
  }

  /** Every value bound, with any pattern (a walk over the whole trie: for rare, whole-set work). */
  allValues(): T[] {
    const out: T[] = [];
    const stack: TrieNode<T>[] = [this.#root];
    while (stack.length > 0) {
      const node = stack.pop() as TrieNode<T>;
      if (node.values !== null) for (const v of valuesOf(node.values)) out.push(v);
      if (node.literals !== null) for (const child of node.literals.values()) stack.push(child);
      if (node.star !== null) stack.push(node.star);
      if (node.hash !== null) stack.push(node.hash);
    }
    return out;
  }

  /**
   * The values whose patterns match `routingKey`, each once. The array may be shared with the cache
   * and with other callers: never mutate it.
   */
  match(routingKey: string): readonly T[] {
    this.#matches++;
    const cache = this.#cache;
    if (cache === null) return this.#walk(routingKey);
    const hit = cache.get(routingKey);
    if (hit !== undefined) {
      this.#cacheHits++;
      return hit;
    }
    const result = this.#walk(routingKey);
    if (cache.size >= this.#cacheMax) this.#sweepCache(cache);
    cache.set(routingKey, result);
    return result;
  }

  #newNode(isHash: boolean): TrieNode<T> {
    this.#nodes++;
    return new TrieNode<T>(isHash);
  }

  /** Runs the trie as an NFA over the words of `routingKey`. The hot path: one split, one result. */
  #walk(routingKey: string): readonly T[] {
    const words = splitWords(routingKey);
    let live = this.#live;
    let next = this.#nextLive;
    let liveCount = enter(live, 0, this.#root, this.#nextEpoch());
    for (let i = 0; i < words.length; i++) {
      const word = words[i];
      const epoch = this.#nextEpoch();
      let nextCount = 0;
      for (let s = 0; s < liveCount; s++) {
        const node = live[s];
        if (node.literals !== null) {
          const child = node.literals.get(word);
          if (child !== undefined) nextCount = enter(next, nextCount, child, epoch);
        }
        if (node.star !== null) nextCount = enter(next, nextCount, node.star, epoch);
        // `#` consumes this word and stays, ready for more or for its own children.
        if (node.isHash) nextCount = enter(next, nextCount, node, epoch);
      }
      if (nextCount === 0) return EMPTY_RESULT;
      const swap = live;
      live = next;
      next = swap;
      liveCount = nextCount;
    }
    return this.#collect(live, liveCount);
  }

  /** Gathers the values of the final live nodes, deduplicating only when two nodes contribute. */
  #collect(live: readonly TrieNode<T>[], liveCount: number): readonly T[] {
    let first: Iterable<T> | null = null;
    let out: T[] | null = null;
    const seen = this.#seen;
    for (let s = 0; s < liveCount; s++) {
      const values = live[s].values;
      if (values === null) continue;
      if (first === null) {
        first = valuesOf(values);
        continue;
      }
      if (out === null) {
        out = [];
        for (const v of first) {
          seen.add(v);
          out.push(v);
        }
      }
      for (const v of valuesOf(values)) {
        if (!seen.has(v)) {
          seen.add(v);
          out.push(v);
        }
      }
    }
    if (out !== null) {
      seen.clear();
      return out;
    }
    return first === null ? EMPTY_RESULT : Array.from(first);
  }

  #nextEpoch(): number {
    if (++this.#epoch >= MARK_EPOCH_LIMIT) {
      resetMarks(this.#root);
      this.#epoch = 1;
    }
    return this.#epoch;
  }

  #invalidate(pattern: string): void {
    const cache = this.#cache;
    if (cache === null) return;
    // A literal pattern matches exactly the key spelled the same, so only that entry can change.
    if (isLiteralPattern(pattern)) cache.delete(pattern);
    // Only when it holds something: clearing a Map that lives in old space allocates its new, empty
    // table there, garbage at the next change (100,000 subscriptions made in a row left ~150 bytes each).
    else if (cache.size > 0) cache.clear();
  }

  #sweepCache(cache: Map<string, readonly T[]>): void {
    const target = this.#cacheSweepTo;
    for (const key of cache.keys()) {
      if (cache.size <= target) break;
      cache.delete(key);
    }
  }
}

/**
 * Appends `node` to the live set for step `epoch`, then (the zero-word case of `#`) its chain of `#`
 * children. A node already marked for this step is skipped, and so is its chain, which was entered
 * with it: this is what keeps many-`#` patterns polynomial.
 */
function enter<T>(buf: TrieNode<T>[], count: number, node: TrieNode<T>, epoch: number): number {
  let n: TrieNode<T> | null = node;
  while (n !== null && n.mark !== epoch) {
    n.mark = epoch;
    buf[count++] = n;
    n = n.hash;
  }
  return count;
}

/** The child of `node` for pattern word `word`, or null. */
function childFor<T>(node: TrieNode<T>, word: string): TrieNode<T> | null {
  if (word === STAR) return node.star;
  if (word === HASH) return node.hash;
  return node.literals?.get(word) ?? null;
}

function detachChild<T>(parent: TrieNode<T>, word: string): void {
  if (word === STAR) parent.star = null;
  else if (word === HASH) parent.hash = null;
  else if (parent.literals !== null) {
    parent.literals.delete(word);
    if (parent.literals.size === 0) parent.literals = null;
  }
}

/** Sets every mark in the trie to 0 (iterative: patterns may be deeper than the call stack). */
function resetMarks<T>(root: TrieNode<T>): void {
  const stack: TrieNode<T>[] = [root];
  while (stack.length > 0) {
    const node = stack.pop()!;
    node.mark = 0;
    if (node.star !== null) stack.push(node.star);
    if (node.hash !== null) stack.push(node.hash);
    if (node.literals !== null) for (const child of node.literals.values()) stack.push(child);
  }
}

/**
 * True when `pattern` has no wildcard word (`*` or `#` as a whole word), so it matches only the routing
 * key spelled the same. Scans characters; allocates nothing.
 */
export function isLiteralPattern(pattern: string): boolean {
  const len = pattern.length;
  for (let i = 0; i < len; i++) {
    const c = pattern.charCodeAt(i);
    if (
      (c === STAR_CODE || c === HASH_CODE) &&
      (i === 0 || pattern.charCodeAt(i - 1) === SEPARATOR_CODE) &&
      (i + 1 === len || pattern.charCodeAt(i + 1) === SEPARATOR_CODE)
    ) {
      return false;
    }
  }
  return true;
}

/**
 * Reference matcher: does `pattern` match `routingKey`? A dynamic program over (pattern words × key
 * words), O(p × k) time, independent of the trie, so tests use it as an oracle; code may use it for
 * one-off checks. For many patterns against many keys use {@link TopicMatcher}.
 */
export function topicMatches(pattern: string, routingKey: string): boolean {
  if (isLiteralPattern(pattern)) return pattern === routingKey;
  const p = splitWords(pattern);
  const k = splitWords(routingKey);
  // row[j]: the pattern words seen so far match the first j key words.
  let row: boolean[] = new Array<boolean>(k.length + 1).fill(false);
  row[0] = true;
  for (let i = 0; i < p.length; i++) {
    const word = p[i];
    const nextRow = new Array<boolean>(k.length + 1);
    if (word === HASH) {
      // zero words (row[j]) or one more word for this same `#` (nextRow[j - 1]).
      nextRow[0] = row[0];
      for (let j = 1; j <= k.length; j++) nextRow[j] = row[j] || nextRow[j - 1];
    } else {
      nextRow[0] = false;
      for (let j = 1; j <= k.length; j++) {
        nextRow[j] = row[j - 1] && (word === STAR || word === k[j - 1]);
      }
    }
    row = nextRow;
  }
  return row[k.length];
}
