/**
 * Light topic subscriptions: the patterns of auto-ack `/topic/` streams, kept on the main thread
 * instead of one private queue per pattern on a shard.
 *
 * Each (qualified) exchange with light patterns has one carrier queue on one shard. A publish the
 * exchange routes goes to the carrier's shard too when a light pattern matches its key (one trie
 * match, which follows the key's words, never the number of patterns), flagged so that shard puts
 * it into the carrier (shard/shard-topology.ts `withCarrier`); the carrier's deliveries come back
 * once and are matched again here, by the front, to the streams whose pattern they fit. So a
 * pattern costs a trie entry on this thread and nothing on any shard, and a message no light
 * pattern matches never reaches the carrier.
 */
import { TopicMatcher } from '../router/topic-matcher.js';
import type { BindingObserver } from '../router/exchange-registry.js';

/** What routing needs of the light patterns (the publish path's side of them). */
export interface LightRouting {
  /** The carrier's shard of `exchange` when a light pattern matches `routingKey`; -1 when none does. */
  shardFor(exchange: string, routingKey: string): number;
  /** Every light pattern with its exchange (the cluster link takes over interest in those made before it). */
  eachPattern(fn: (exchange: string, pattern: string) => void): void;
}

/** One exchange's light patterns and the carrier that takes its messages for them. */
export interface LightExchange<T> {
  readonly exchange: string;
  readonly queue: string;
  readonly shard: number;
  readonly matcher: TopicMatcher<T>;
}

export class LightRoutes<T> implements LightRouting {
  readonly #byExchange = new Map<string, LightExchange<T>>();
  /** Where cluster interest learns of patterns (the registry's observer, read at each change: set on joining). */
  readonly #observer: () => BindingObserver | null;

  readonly #patternOf: (value: T) => string;

  /** `patternOf`: the pattern a value was added with. */
  constructor(observer: () => BindingObserver | null, patternOf: (value: T) => string) {
    this.#observer = observer;
    this.#patternOf = patternOf;
  }

  /** Exchanges with light patterns. */
  get size(): number {
    return this.#byExchange.size;
  }

  /** Starts carrying `exchange`'s light patterns through `queue` on `shard`. */
  open(exchange: string, queue: string, shard: number): LightExchange<T> {
    const entry: LightExchange<T> = { exchange, queue, shard, matcher: new TopicMatcher<T>() };
    this.#byExchange.set(exchange, entry);
    return entry;
  }

  /** `exchange` has no light patterns left: publishes stop going to its carrier. */
  close(exchange: string): void {
    this.#byExchange.delete(exchange);
  }

  add(entry: LightExchange<T>, pattern: string, value: T): void {
    entry.matcher.add(pattern, value);
    this.#observer()?.bindingAdded(entry.exchange, 'topic', pattern);
  }

  remove(entry: LightExchange<T>, pattern: string, value: T): void {
    if (entry.matcher.remove(pattern, value)) this.#observer()?.bindingRemoved(entry.exchange, 'topic', pattern);
  }

  eachPattern(fn: (exchange: string, pattern: string) => void): void {
    for (const entry of this.#byExchange.values())
      for (const value of entry.matcher.allValues()) fn(entry.exchange, this.#patternOf(value));
  }

  shardFor(exchange: string, routingKey: string): number {
    const entry = this.#byExchange.get(exchange);
    if (entry === undefined) return -1;
    return entry.matcher.match(routingKey).length > 0 ? entry.shard : -1;
  }
}
