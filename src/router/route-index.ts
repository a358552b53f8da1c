/**
 * One exchange's routing table for one kind of destination: given a routing key (and headers),
 * which destinations do its bindings select? One implementation per exchange type. Used by
 * `exchange-registry.ts` only: each exchange owns one index of queue targets and, once it has
 * exchange-to-exchange bindings, a second index of destination exchanges.
 *
 * Contract shared by all indexes:
 * - `add`/`remove` are called once per distinct binding (the registry keeps bindings as a set), with
 *   the same binding object for both. Two bindings may select the same target (same queue with two
 *   keys, or two queues that route to the same shard): targets are reference-counted, so a target
 *   stays until its last binding goes, and appears once in a result.
 * - `match` results are read-only and may be shared (with the index's own tables and with other
 *   callers): never mutate them. Result arrays are replaced, never edited, when bindings change, so a
 *   result a caller holds stays a valid snapshot.
 * - Order: first-bound first among targets of one table; a target keeps its place while any of its
 *   bindings remain.
 */

import { matchHeaders, type HeadersBinding, type MessageHeaders } from './headers-match.js';
import { TopicMatcher } from './topic-matcher.js';

/** What an index needs from a binding. */
export interface IndexedBinding<D> {
  readonly routingKey: string;
  readonly target: D;
  /** The compiled arguments; non-null for bindings whose source is a headers exchange. */
  readonly headers: HeadersBinding | null;
}

export interface RouteIndex<D> {
  add(binding: IndexedBinding<D>): void;
  remove(binding: IndexedBinding<D>): void;
  /** The distinct targets selected by `routingKey` and `headers`. */
  match(routingKey: string, headers: MessageHeaders | null | undefined): readonly D[];
  /** As `match`, but a headers index selects every target (no header test): an over-approximation. */
  matchIgnoringHeaders(routingKey: string): readonly D[];
  /** Number of bindings indexed. */
  readonly size: number;
}

export const EMPTY: readonly never[] = Object.freeze([]);

/**
 * Headers indexes with fewer distinct matched targets than this deduplicate with a linear scan of the
 * result; above it, with a reused Set. Bindings per headers exchange are few, and a scan of a handful
 * of entries beats hashing.
 */
const HEADERS_LINEAR_DEDUP_MAX = 8;

/** A multiset of targets with a cached, frozen list of the distinct ones (in first-added order). */
export class TargetSet<D> {
  readonly #counts = new Map<D, number>();
  #list: readonly D[] = EMPTY;

  /** Adds one reference to `target`; true when it was not present before. */
  add(target: D): boolean {
    const count = this.#counts.get(target);
    if (count !== undefined) {
      this.#counts.set(target, count + 1);
      return false;
    }
    this.#counts.set(target, 1);
    // Copy-on-write: a list handed out earlier stays as it was.
    // Exact size: a push would leave room for 17.
    this.#list = Object.freeze(this.#list.concat([target]));
    return true;
  }

  /** Drops one reference to `target`; true when that was its last one. */
  remove(target: D): boolean {
    const count = this.#counts.get(target);
    if (count === undefined) return false;
    if (count > 1) {
      this.#counts.set(target, count - 1);
      return false;
    }
    this.#counts.delete(target);
    this.#list = this.#counts.size === 0 ? EMPTY : Object.freeze(Array.from(this.#counts.keys()));
    return true;
  }

  /** The distinct targets; frozen, replaced on change. */
  get list(): readonly D[] {
    return this.#list;
  }

  get size(): number {
    return this.#counts.size;
  }
}

/** `direct`: binding key equals routing key. One map lookup per match. */
export class DirectIndex<D> implements RouteIndex<D> {
  readonly #byKey = new Map<string, TargetSet<D>>();
  #size = 0;

  add(binding: IndexedBinding<D>): void {
    let set = this.#byKey.get(binding.routingKey);
    if (set === undefined) {
      set = new TargetSet<D>();
      this.#byKey.set(binding.routingKey, set);
    }
    set.add(binding.target);
    this.#size++;
  }

  remove(binding: IndexedBinding<D>): void {
    const set = this.#byKey.get(binding.routingKey);
    if (set === undefined) return;
    set.remove(binding.target);
    this.#size--;
    if (set.size === 0) this.#byKey.delete(binding.routingKey);
  }

  match(routingKey: string): readonly D[] {
    const set = this.#byKey.get(routingKey);
    return set === undefined ? EMPTY : set.list;
  }

  matchIgnoringHeaders(routingKey: string): readonly D[] {
    return this.match(routingKey);
  }

  get size(): number {
    return this.#size;
  }
}

/** `fanout`: every binding, whatever the key. The result is one cached array. */
export class FanoutIndex<D> implements RouteIndex<D> {
  readonly #all = new TargetSet<D>();
  #size = 0;

  add(binding: IndexedBinding<D>): void {
    this.#all.add(binding.target);
    this.#size++;
  }

  remove(binding: IndexedBinding<D>): void {
    this.#all.remove(binding.target);
    this.#size--;
  }

  match(): readonly D[] {
    return this.#all.list;
  }

  matchIgnoringHeaders(): readonly D[] {
    return this.#all.list;
  }

  get size(): number {
    return this.#size;
  }
}

/**
 * `topic`: AMQP `*`/`#` patterns through {@link TopicMatcher}, which caches results per routing key.
 * The matcher holds each (pattern, target) pair once; the counts here keep a pair while any binding
 * needs it (the same queue bound with one pattern and two argument tables is two bindings).
 */
export class TopicIndex<D> implements RouteIndex<D> {
  readonly #matcher: TopicMatcher<D>;
  /**
   * Per pattern, its targets and how many bindings each has: one OneTarget while there is one (a
   * telemetry fleet binds 100,000 patterns with one queue each, and a Map apiece was ~550 bytes of
   * every idle subscription, on the main thread and again on its shard), a Map past it.
   */
  readonly #counts = new Map<string, OneTarget<D> | Map<D, number>>();
  #size = 0;

  constructor(cacheSize?: number) {
    this.#matcher = new TopicMatcher<D>(cacheSize === undefined ? {} : { cacheSize });
  }

  add(binding: IndexedBinding<D>): void {
    const pattern = binding.routingKey;
    const target = binding.target;
    const entry = this.#counts.get(pattern);
    this.#size++;
    if (entry === undefined) {
      this.#counts.set(pattern, new OneTarget(target));
      this.#matcher.add(pattern, target);
    } else if (entry instanceof OneTarget) {
      if (entry.target === target) entry.count++;
      else {
        this.#counts.set(
          pattern,
          new Map<D, number>([
            [entry.target, entry.count],
            [target, 1],
          ]),
        );
        this.#matcher.add(pattern, target);
      }
    } else {
      const count = entry.get(target) ?? 0;
      entry.set(target, count + 1);
      if (count === 0) this.#matcher.add(pattern, target);
    }
  }

  remove(binding: IndexedBinding<D>): void {
    const pattern = binding.routingKey;
    const target = binding.target;
    const entry = this.#counts.get(pattern);
    if (entry === undefined) return;
    if (entry instanceof OneTarget) {
      if (entry.target !== target) return;
      this.#size--;
      if (--entry.count > 0) return;
      this.#counts.delete(pattern);
      this.#matcher.remove(pattern, target);
      return;
    }
    const count = entry.get(target);
    if (count === undefined) return;
    this.#size--;
    if (count > 1) {
      entry.set(target, count - 1);
      return;
    }
    entry.delete(target);
    if (entry.size === 0) this.#counts.delete(pattern);
    this.#matcher.remove(pattern, target);
  }

  match(routingKey: string): readonly D[] {
    return this.#matcher.match(routingKey);
  }

  matchIgnoringHeaders(routingKey: string): readonly D[] {
    return this.#matcher.match(routingKey);
  }

  get size(): number {
    return this.#size;
  }
}

/** A topic pattern's only target, with its binding count. */
class OneTarget<D> {
  count = 1;
  constructor(readonly target: D) {}
}

/**
 * `headers`: each binding's compiled arguments are tested against the message headers in turn (the
 * routing key plays no part). `matchIgnoringHeaders` answers every target, for callers that route
 * before the headers are parsed.
 */
export class HeadersIndex<D> implements RouteIndex<D> {
  #entries: IndexedBinding<D>[] = [];
  readonly #all = new TargetSet<D>();
  /** Reused for deduplicating large results; always left empty. */
  readonly #seen = new Set<D>();

  add(binding: IndexedBinding<D>): void {
    if (binding.headers === null) throw new TypeError('headers binding without compiled arguments');
    this.#entries.push(binding);
    this.#all.add(binding.target);
  }

  remove(binding: IndexedBinding<D>): void {
    const i = this.#entries.indexOf(binding);
    if (i < 0) return;
    this.#entries.splice(i, 1);
    this.#all.remove(binding.target);
  }

  match(_routingKey: string, headers: MessageHeaders | null | undefined): readonly D[] {
    const entries = this.#entries;
    let out: D[] | null = null;
    let useSet = false;
    const seen = this.#seen;
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i];
      if (!matchHeaders(entry.headers!, headers)) continue;
      const target = entry.target;
      if (out === null) {
        out = [target];
        continue;
      }
      if (useSet) {
        if (seen.has(target)) continue;
        seen.add(target);
      } else if (out.includes(target)) {
        continue;
      } else if (out.length >= HEADERS_LINEAR_DEDUP_MAX) {
        useSet = true;
        for (const t of out) seen.add(t);
        seen.add(target);
      }
      out.push(target);
    }
    if (useSet) seen.clear();
    return out === null ? EMPTY : out;
  }

  matchIgnoringHeaders(): readonly D[] {
    return this.#all.list;
  }

  get size(): number {
    return this.#entries.length;
  }
}
