/**
 * Exchanges and bindings of one virtual host, with AMQP 0-9-1 routing as RabbitMQ does it.
 *
 * Pure single-threaded code, used in two places:
 * - the main thread, to learn which SHARDS a published message must go to: queues are known by name
 *   and `routeTarget` maps a queue to its shard index, so `route` answers shard indexes, each once;
 * - each shard, to learn which of its local QUEUES get a message: `routeTarget` maps a queue to the
 *   shard's queue object (or is the identity).
 *
 * Generic types: `Q` is how callers name a queue when binding (a name, an object); `queueKey(q)` is its
 * identity (bindings are a set per queue identity; `removeQueue` drops them all). `R` is what routing
 * answers for a queue: `routeTarget(q)`, computed once at bind time. Results are deduplicated by `R`
 * (SameValueZero), so two queues of one shard give that shard once. By default `queueKey` is
 * `String(q)` and `routeTarget` the identity (R = Q); pass `routeTarget` whenever R differs from Q.
 *
 * Semantics (RabbitMQ 3.x, `rabbit_channel` / `rabbit_exchange` / `rabbit_binding`):
 * - Types: `direct` (binding key equals routing key), `fanout` (every binding), `topic` (AMQP `*`/`#`
 *   patterns, {@link TopicMatcher}), `headers` (see `headers-match.ts`; the routing key is ignored).
 *   Any other type: COMMAND_INVALID "unknown exchange type 'x'".
 * - The default exchange `''` (direct, durable) routes a message to the queue named by its routing
 *   key: every queue is implicitly bound to it with its own name. It is resolved by the
 *   `defaultExchangeTarget` callback (main: queue name → shard; shard: name → local queue, if here),
 *   never by stored bindings. Declaring (even passively), deleting or binding it, as source or
 *   destination, is ACCESS_REFUSED "operation not permitted on the default exchange".
 * - Predeclared, durable, never deletable: `amq.direct`, `amq.fanout`, `amq.topic`, `amq.headers`
 *   and `amq.match` (headers, per the 0-9-1 spec). Creating any other `amq.` name is ACCESS_REFUSED
 *   ("exchange name 'amq.x' contains reserved prefix 'amq.*'"); redeclaring an existing one with the
 *   same settings, or passively, is fine. Deleting an `amq.` name is ACCESS_REFUSED.
 * - Declare: passive → NOT_FOUND "no exchange 'x' in vhost '/'" when absent (type and options are not
 *   looked at). A redeclare must match type, durable, auto_delete, internal and the
 *   `alternate-exchange` argument (the only argument RabbitMQ compares for exchanges), else
 *   PRECONDITION_FAILED "inequivalent arg 'type' for exchange 'x' in vhost '/': received 'fanout' but
 *   current is 'direct'". Other arguments are kept from the first declare.
 * - Delete: an absent exchange is deleted silently (RabbitMQ answers delete-ok). `ifUnused` refuses an
 *   exchange that is the source of any binding: PRECONDITION_FAILED "exchange 'x' in vhost '/' in use".
 *   Deleting drops the exchange's bindings as source and as destination.
 * - Bindings are a set of (source, destination, routing key, arguments); arguments are compared as
 *   tables (key order does not matter). Binding twice is a no-op; unbinding a missing binding is a
 *   no-op, but the exchanges named must exist (NOT_FOUND). Binding to a headers exchange checks
 *   `x-match` (PRECONDITION_FAILED for a bad one).
 * - Exchange-to-exchange bindings (`bindExchange(destination, source, …)`): the destination exchange
 *   routes the message again with the same routing key and headers, recursively. Each exchange is
 *   visited at most once per message (so cycles terminate) and each target appears once in a result.
 * - Auto-delete: an auto-delete exchange is deleted when its last binding as source goes (unbind,
 *   queue removal, or deletion of a destination exchange), not when it is created without bindings.
 *   Deletion cascades: removing its bindings as destination may empty other auto-delete exchanges.
 *   Every call that can do this returns the names deleted, so callers can propagate them.
 * - Internal exchanges cannot be published to (ACCESS_REFUSED "cannot publish to internal exchange
 *   'x' in vhost '/'") but receive through exchange-to-exchange bindings.
 * - Not modelled: alternate exchanges (the argument is stored and compared, not followed), CC/BCC
 *   headers, permissions, and the implicit default-exchange bindings in `listBindings`.
 *
 * Hot path: `route`, once per message. An exchange without exchange-to-exchange bindings answers
 * straight from its index, with no allocation on the common paths: `direct` from a map of cached
 * arrays, `fanout` from one cached array, `topic` from the matcher's result cache, the default
 * exchange from a small cache of one-element arrays. Only `headers` builds a result per message.
 * With exchange-to-exchange bindings the walk reuses its work sets, and allocates a merged array only
 * when two exchanges contribute targets. Results are frozen or shared: never mutate them.
 */

import { compileHeadersBinding, type HeadersBinding, type MessageHeaders } from './headers-match.js';
import { RouterError, RouterErrorCode } from './router-error.js';
import { describeIn, localName, qualifiedFlat, VHOST_SEPARATOR } from '../protocol/vhost-name.js';
import { DirectIndex, EMPTY, FanoutIndex, HeadersIndex, TopicIndex, type IndexedBinding, type RouteIndex } from './route-index.js';

export { RouterError, RouterErrorCode } from './router-error.js';
export type { HeaderValue, MessageHeaders } from './headers-match.js';

export const ExchangeType = {
  direct: 'direct',
  fanout: 'fanout',
  topic: 'topic',
  headers: 'headers',
} as const;
export type ExchangeType = (typeof ExchangeType)[keyof typeof ExchangeType];

export const DestinationKind = { queue: 'queue', exchange: 'exchange' } as const;
export type DestinationKind = (typeof DestinationKind)[keyof typeof DestinationKind];

/** The default (nameless) exchange. */
export const DEFAULT_EXCHANGE = '';

/** Names with this prefix are reserved for the broker (AMQP 0-9-1 §exchange.declare). */
export const RESERVED_EXCHANGE_PREFIX = 'amq.';

/** Exchanges every vhost starts with, besides the default one (as RabbitMQ declares them). */
export const PREDECLARED_EXCHANGES: readonly { readonly name: string; readonly type: ExchangeType }[] = Object.freeze([
  { name: 'amq.direct', type: ExchangeType.direct },
  { name: 'amq.fanout', type: ExchangeType.fanout },
  { name: 'amq.topic', type: ExchangeType.topic },
  { name: 'amq.headers', type: ExchangeType.headers },
  // The 0-9-1 PDF names the headers exchange amq.match; the XML spec amq.headers. RabbitMQ has both.
  { name: 'amq.match', type: ExchangeType.headers },
]);

/** The only exchange argument RabbitMQ checks for equivalence on redeclare. */
const ALTERNATE_EXCHANGE_ARG = 'alternate-exchange';

/**
 * Bound on the default exchange's cache of one-element results (target → `[target]`), which saves an
 * allocation per message. The main thread has one entry per shard; a shard one per local queue it
 * routed to, so the bound only matters with many queues; on reaching it the cache is cleared.
 */
const DEFAULT_TARGET_CACHE_MAX = 4096;

const EMPTY_ARGS: Readonly<Record<string, unknown>> = Object.freeze({});

export interface ExchangeOptions {
  durable: boolean;
  autoDelete: boolean;
  internal: boolean;
  arguments: Record<string, unknown>;
}

export interface ExchangeInfo {
  readonly name: string;
  readonly type: ExchangeType;
  readonly durable: boolean;
  readonly autoDelete: boolean;
  readonly internal: boolean;
  readonly arguments: Readonly<Record<string, unknown>>;
  /** The default exchange or a predeclared `amq.` one: created by the registry, never deletable. */
  readonly builtIn: boolean;
}

export interface BindingInfo {
  readonly source: string;
  /** The queue's `queueKey`, or the destination exchange's name. */
  readonly destination: string;
  readonly destinationType: DestinationKind;
  readonly routingKey: string;
  readonly arguments: Readonly<Record<string, unknown>>;
}

export interface ExchangeRegistryOptions<Q, R> {
  /** A queue's identity: bindings are a set per key, and `removeQueue` finds them by it. Default `String(q)`. */
  queueKey?: (queue: Q) => string;
  /** What routing answers for a queue, computed once per binding. Default: the queue itself. */
  routeTarget?: (queue: Q) => R;
  /**
   * Resolves the default exchange: the target for the queue named `queueName`, or undefined when
   * there is none (no such queue, or not on this shard). Without it the default exchange routes
   * nowhere.
   */
  defaultExchangeTarget?: (queueName: string) => R | undefined;
  /** Result cache size of each topic exchange's matcher (see TopicMatcher); 0 disables it. */
  topicCacheSize?: number;
}

/** Exchanges deleted as a side effect (auto-delete), in deletion order. */
export interface AutoDeleteResult {
  readonly autoDeleted: string[];
}

export interface DeleteExchangeResult extends AutoDeleteResult {
  /** False when the exchange did not exist (not an error, as in RabbitMQ). */
  readonly deleted: boolean;
}

interface BindingBase<R> {
  /** Canonical identity within the source exchange: kind, destination, key, arguments. */
  readonly id: string;
  readonly source: ExchangeState<R>;
  readonly destination: string;
  readonly routingKey: string;
  readonly arguments: Readonly<Record<string, unknown>>;
  readonly headers: HeadersBinding | null;
}

interface QueueBinding<R> extends BindingBase<R>, IndexedBinding<R> {
  readonly kind: typeof DestinationKind.queue;
  readonly target: R;
}

interface ExchangeBinding<R> extends BindingBase<R>, IndexedBinding<ExchangeState<R>> {
  readonly kind: typeof DestinationKind.exchange;
  readonly target: ExchangeState<R>;
}

type Binding<R> = QueueBinding<R> | ExchangeBinding<R>;

class ExchangeState<R> {
  /** Queue targets of this exchange's bindings. */
  readonly queues: RouteIndex<R>;
  /** Destination exchanges; created on the first exchange-to-exchange binding from here. */
  exchanges: RouteIndex<ExchangeState<R>> | null = null;
  /** Bindings from this exchange to exchanges: 0 means `route` can answer from `queues` alone. */
  exchangeBindings = 0;
  /** Bindings with this exchange as source, by id. */
  readonly bindings = new Map<string, Binding<R>>();
  /** Exchange-to-exchange bindings with this exchange as destination. */
  readonly incoming = new Set<ExchangeBinding<R>>();
  deleted = false;

  constructor(
    readonly name: string,
    readonly type: ExchangeType,
    readonly durable: boolean,
    readonly autoDelete: boolean,
    readonly internal: boolean,
    readonly args: Readonly<Record<string, unknown>>,
    readonly builtIn: boolean,
    readonly isDefault: boolean,
    readonly topicCacheSize: number | undefined,
  ) {
    this.queues = newIndex<R>(type, topicCacheSize);
  }

  info(): ExchangeInfo {
    return Object.freeze({
      name: this.name,
      type: this.type,
      durable: this.durable,
      autoDelete: this.autoDelete,
      internal: this.internal,
      arguments: this.args,
      builtIn: this.builtIn,
    });
  }
}

function newIndex<D>(type: ExchangeType, topicCacheSize: number | undefined): RouteIndex<D> {
  switch (type) {
    case ExchangeType.direct:
      return new DirectIndex<D>();
    case ExchangeType.fanout:
      return new FanoutIndex<D>();
    case ExchangeType.topic:
      return new TopicIndex<D>(topicCacheSize);
    case ExchangeType.headers:
      return new HeadersIndex<D>();
  }
}

/** True for the default exchange of any vhost: `''`, or a vhost's prefix alone. */
export function isDefaultExchange(name: string): boolean {
  return name.length === 0 || name.charCodeAt(name.length - 1) === 0x1f;
}

/** True for the local name of an exchange every vhost has ('' or a predeclared `amq.` one). */
function isBuiltInName(local: string): boolean {
  return local === DEFAULT_EXCHANGE || PREDECLARED_EXCHANGES.some((x) => x.name === local);
}

/** True when `type` names a supported exchange type. */
export function isExchangeType(type: string): type is ExchangeType {
  return type === ExchangeType.direct || type === ExchangeType.fanout || type === ExchangeType.topic || type === ExchangeType.headers;
}

/**
 * Told of every binding made or removed (queue and exchange bindings alike, with the type of
 * their source exchange): the cluster turns them into interest on NATS subjects.
 */
export interface BindingObserver {
  bindingAdded(source: string, type: ExchangeType, routingKey: string): void;
  bindingRemoved(source: string, type: ExchangeType, routingKey: string): void;
}

export class ExchangeRegistry<Q, R = Q> {
  /** Set by the main thread's cluster link only; null everywhere else (one check per bind). */
  bindingObserver: BindingObserver | null = null;
  readonly #queueKey: (queue: Q) => string;
  readonly #routeTarget: (queue: Q) => R;
  readonly #defaultTarget: ((queueName: string) => R | undefined) | null;
  readonly #topicCacheSize: number | undefined;
  readonly #exchanges = new Map<string, ExchangeState<R>>();
  /** queueKey → the bindings with that queue as destination. */
  /** A queue with one binding (every topic subscription's) holds it alone: a Set each was ~150 bytes per queue. */
  readonly #queueBindings = new Map<string, QueueBinding<R> | Set<QueueBinding<R>>>();
  /** Default-exchange results: target → frozen `[target]`. */
  readonly #singletons = new Map<R, readonly R[]>();
  // Work sets of the exchange-to-exchange walk, reused across messages and always left empty.
  readonly #visited = new Set<ExchangeState<R>>();
  readonly #pending: ExchangeState<R>[] = [];
  readonly #seen = new Set<R>();

  constructor(options: ExchangeRegistryOptions<Q, R> = {}) {
    this.#queueKey = options.queueKey ?? String;
    this.#routeTarget = options.routeTarget ?? ((queue: Q) => queue as unknown as R);
    this.#defaultTarget = options.defaultExchangeTarget ?? null;
    this.#topicCacheSize = options.topicCacheSize;
    this.ensureVhost('');
  }

  /**
   * Creates the default and `amq.*` exchanges of the vhost whose qualified names start with
   * `prefix` (vhost-name.ts), if they are not there yet. `/`'s exist from the start; another
   * vhost's are also made on first use of one of them (a shard learns a vhost from its traffic).
   */
  ensureVhost(prefix: string): void {
    if (this.#exchanges.has(prefix)) return;
    this.#add(prefix, ExchangeType.direct, true, false, false, EMPTY_ARGS, true);
    for (const { name, type } of PREDECLARED_EXCHANGES) {
      this.#add(prefix + name, type, true, false, false, EMPTY_ARGS, true);
    }
  }

  /**
   * Drops every exchange of the vhost whose prefix is `prefix` (not `/`'s), with their bindings:
   * the vhost was deleted, after its queues. Returns the names of the user-declared ones dropped.
   */
  removeVhost(prefix: string): string[] {
    if (prefix.length === 0) throw new RangeError("the vhost '/' cannot be removed");
    const dropped: string[] = [];
    for (const x of Array.from(this.#exchanges.values())) {
      if (!x.name.startsWith(prefix) || x.deleted) continue;
      if (!x.builtIn) dropped.push(x.name);
      this.#destroy(x, []);
    }
    return dropped;
  }

  // -------------------------------------------------------------------------------------------------
  // Exchanges

  /**
   * exchange.declare. Creates the exchange, or checks that an existing one is equivalent. With
   * `passive`, only checks that it exists (NOT_FOUND otherwise). Options default to false / `{}`.
   */
  declareExchange(name: string, type: string, options: Partial<ExchangeOptions> = {}, passive = false): { created: boolean } {
    if (passive) {
      this.#refuseDefault(name);
      this.#existing(name);
      return { created: false };
    }
    if (!isExchangeType(type)) {
      throw new RouterError(RouterErrorCode.commandInvalid, `unknown exchange type '${type}'`);
    }
    this.#refuseDefault(name);
    const durable = options.durable ?? false;
    const autoDelete = options.autoDelete ?? false;
    const internal = options.internal ?? false;
    const args = options.arguments ?? EMPTY_ARGS;
    const current = this.#lookup(name);
    if (current !== undefined) {
      this.#assertEquivalent(current, type, durable, autoDelete, internal, args);
      return { created: false };
    }
    if (localName(name).startsWith(RESERVED_EXCHANGE_PREFIX)) {
      throw new RouterError(
        RouterErrorCode.accessRefused,
        `exchange name '${localName(name)}' contains reserved prefix '${RESERVED_EXCHANGE_PREFIX}*'`,
      );
    }
    this.#add(name, type, durable, autoDelete, internal, copyArgs(args), false);
    return { created: true };
  }

  /**
   * exchange.delete. Returns `deleted: false` for an absent exchange. `ifUnused` refuses an exchange
   * that is the source of a binding. Removing its bindings as destination may auto-delete others.
   */
  deleteExchange(name: string, ifUnused = false): DeleteExchangeResult {
    this.#refuseDefault(name);
    if (localName(name).startsWith(RESERVED_EXCHANGE_PREFIX)) {
      throw new RouterError(RouterErrorCode.accessRefused, `deletion of system ${this.#describe(name)} not allowed`);
    }
    const x = this.#exchanges.get(name);
    if (x === undefined) return { deleted: false, autoDeleted: [] };
    if (ifUnused && x.bindings.size > 0) {
      throw new RouterError(RouterErrorCode.preconditionFailed, `${this.#describe(name)} in use`);
    }
    const candidates: ExchangeState<R>[] = [];
    this.#destroy(x, candidates);
    return { deleted: true, autoDeleted: this.#autoDelete(candidates) };
  }

  /** True when the exchange exists (the default exchange always does). */
  hasExchange(name: string): boolean {
    return this.#lookup(name) !== undefined;
  }

  getExchange(name: string): ExchangeInfo | undefined {
    return this.#lookup(name)?.info();
  }

  /** Every exchange, the default and predeclared ones first, then in declaration order. */
  listExchanges(): ExchangeInfo[] {
    const out: ExchangeInfo[] = [];
    for (const x of this.#exchanges.values()) out.push(x.info());
    return out;
  }

  /** Number of exchanges, including the default and predeclared ones. */
  get exchangeCount(): number {
    return this.#exchanges.size;
  }

  // -------------------------------------------------------------------------------------------------
  // Bindings

  /** queue.bind. Returns false when the binding already existed (a no-op). */
  bindQueue(exchange: string, queue: Q, routingKey: string, args?: Readonly<Record<string, unknown>> | null): boolean {
    const source = this.#bindingSource(exchange);
    const destination = this.#queueKey(queue);
    const frozen = copyArgs(args);
    const headers = source.type === ExchangeType.headers ? compileHeadersBinding(frozen) : null;
    const id = bindingId(DestinationKind.queue, destination, routingKey, frozen);
    if (source.bindings.has(id)) return false;
    const binding: QueueBinding<R> = {
      id,
      kind: DestinationKind.queue,
      source,
      destination,
      target: this.#routeTarget(queue),
      routingKey,
      arguments: frozen,
      headers,
    };
    source.bindings.set(id, binding);
    source.queues.add(binding);
    const perQueue = this.#queueBindings.get(destination);
    if (perQueue === undefined) this.#queueBindings.set(destination, binding);
    else if (perQueue instanceof Set) perQueue.add(binding);
    else this.#queueBindings.set(destination, new Set([perQueue, binding]));
    this.bindingObserver?.bindingAdded(source.name, source.type, routingKey);
    return true;
  }

  /** queue.unbind. Unbinding a missing binding is a no-op; may auto-delete the exchange. */
  unbindQueue(exchange: string, queue: Q, routingKey: string, args?: Readonly<Record<string, unknown>> | null): AutoDeleteResult {
    const source = this.#bindingSource(exchange);
    const id = bindingId(DestinationKind.queue, this.#queueKey(queue), routingKey, args ?? EMPTY_ARGS);
    const binding = source.bindings.get(id);
    if (binding === undefined) return { autoDeleted: [] };
    this.#detach(binding);
    return { autoDeleted: this.#autoDelete([source]) };
  }

  /**
   * exchange.bind: messages routed by `source` with a matching key (headers) are routed again by
   * `destination`. Argument order follows AMQP (destination first). Returns false if it existed.
   */
  bindExchange(destination: string, source: string, routingKey: string, args?: Readonly<Record<string, unknown>> | null): boolean {
    this.#refuseDefault(destination);
    const from = this.#bindingSource(source);
    const to = this.#existing(destination);
    const frozen = copyArgs(args);
    const headers = from.type === ExchangeType.headers ? compileHeadersBinding(frozen) : null;
    const id = bindingId(DestinationKind.exchange, destination, routingKey, frozen);
    if (from.bindings.has(id)) return false;
    const binding: ExchangeBinding<R> = {
      id,
      kind: DestinationKind.exchange,
      source: from,
      destination,
      target: to,
      routingKey,
      arguments: frozen,
      headers,
    };
    from.bindings.set(id, binding);
    if (from.exchanges === null) from.exchanges = newIndex<ExchangeState<R>>(from.type, from.topicCacheSize);
    from.exchanges.add(binding);
    from.exchangeBindings++;
    to.incoming.add(binding);
    this.bindingObserver?.bindingAdded(from.name, from.type, routingKey);
    return true;
  }

  /** exchange.unbind. Unbinding a missing binding is a no-op; may auto-delete the source. */
  unbindExchange(
    destination: string,
    source: string,
    routingKey: string,
    args?: Readonly<Record<string, unknown>> | null,
  ): AutoDeleteResult {
    this.#refuseDefault(destination);
    const from = this.#bindingSource(source);
    this.#existing(destination);
    const id = bindingId(DestinationKind.exchange, destination, routingKey, args ?? EMPTY_ARGS);
    const binding = from.bindings.get(id);
    if (binding === undefined) return { autoDeleted: [] };
    this.#detach(binding);
    return { autoDeleted: this.#autoDelete([from]) };
  }

  /** The queue was deleted: drops every binding to it. May auto-delete the exchanges it was bound to. */
  removeQueue(queue: Q): AutoDeleteResult {
    const key = this.#queueKey(queue);
    const perQueue = this.#queueBindings.get(key);
    if (perQueue === undefined) return { autoDeleted: [] };
    const sources: ExchangeState<R>[] = [];
    for (const binding of perQueue instanceof Set ? Array.from(perQueue) : [perQueue]) {
      this.#singletons.delete(binding.target);
      this.#detach(binding);
      sources.push(binding.source);
    }
    return { autoDeleted: this.#autoDelete(sources) };
  }

  /** Every stored binding, grouped by source exchange (declaration order), then in bind order. */
  listBindings(): BindingInfo[] {
    const out: BindingInfo[] = [];
    for (const x of this.#exchanges.values()) {
      for (const b of x.bindings.values()) {
        out.push(
          Object.freeze({
            source: x.name,
            destination: b.destination,
            destinationType: b.kind,
            routingKey: b.routingKey,
            arguments: b.arguments,
          }),
        );
      }
    }
    return out;
  }

  /** Number of stored bindings (the default exchange's implicit ones are not stored). */
  get bindingCount(): number {
    let n = 0;
    for (const x of this.#exchanges.values()) n += x.bindings.size;
    return n;
  }

  // -------------------------------------------------------------------------------------------------
  // Routing

  /**
   * The targets a message published to `exchange` reaches, each once. Throws RouterError NOT_FOUND
   * (no such exchange) or ACCESS_REFUSED (internal exchange). The array is shared and frozen or owned
   * by nobody else: do not mutate it.
   */
  route(exchange: string, routingKey: string, headers?: MessageHeaders | null): readonly R[] {
    const x = this.#publishTarget(exchange);
    if (x.isDefault) return this.#routeDefault(x.name, routingKey);
    if (x.exchangeBindings === 0) return x.queues.match(routingKey, headers);
    return this.#walk(x, routingKey, headers, false);
  }

  /**
   * As {@link route}, for callers that have not parsed the headers (the main thread): every headers
   * exchange on the way, reached directly or through exchange-to-exchange bindings, passes the
   * message to all its bindings. A superset of `route`'s answer for any headers.
   */
  routeIgnoringHeaders(exchange: string, routingKey: string): readonly R[] {
    const x = this.#publishTarget(exchange);
    if (x.isDefault) return this.#routeDefault(x.name, routingKey);
    if (x.exchangeBindings === 0) return x.queues.matchIgnoringHeaders(routingKey);
    return this.#walk(x, routingKey, null, true);
  }

  // -------------------------------------------------------------------------------------------------
  // Internals

  #add(
    name: string,
    type: ExchangeType,
    durable: boolean,
    autoDelete: boolean,
    internal: boolean,
    args: Readonly<Record<string, unknown>>,
    builtIn: boolean,
  ): void {
    const x = new ExchangeState<R>(name, type, durable, autoDelete, internal, args, builtIn, isDefaultExchange(name), this.#topicCacheSize);
    this.#exchanges.set(name, x);
  }

  #describe(name: string): string {
    return describeIn('exchange', name);
  }

  #notFound(name: string): RouterError {
    return new RouterError(RouterErrorCode.notFound, `no ${this.#describe(name)}`);
  }

  #refuseDefault(name: string): void {
    if (isDefaultExchange(name)) {
      throw new RouterError(RouterErrorCode.accessRefused, 'operation not permitted on the default exchange');
    }
  }

  #existing(name: string): ExchangeState<R> {
    const x = this.#lookup(name);
    if (x === undefined) throw this.#notFound(name);
    return x;
  }

  /** The exchange named so; a vhost's built-in ones are made on first use (ensureVhost). */
  #lookup(name: string): ExchangeState<R> | undefined {
    const x = this.#exchanges.get(name);
    if (x !== undefined) return x;
    const sep = name.indexOf(VHOST_SEPARATOR);
    if (sep < 0 || !isBuiltInName(name.slice(sep + 1))) return undefined;
    this.ensureVhost(name.slice(0, sep + 1));
    return this.#exchanges.get(name);
  }

  /** The source of a bind/unbind: not the default exchange, and existing. */
  #bindingSource(name: string): ExchangeState<R> {
    this.#refuseDefault(name);
    return this.#existing(name);
  }

  #publishTarget(name: string): ExchangeState<R> {
    const x = this.#lookup(name);
    if (x === undefined) throw this.#notFound(name);
    if (x.internal) {
      throw new RouterError(RouterErrorCode.accessRefused, `cannot publish to internal ${this.#describe(name)}`);
    }
    return x;
  }

  #assertEquivalent(
    x: ExchangeState<R>,
    type: ExchangeType,
    durable: boolean,
    autoDelete: boolean,
    internal: boolean,
    args: Readonly<Record<string, unknown>>,
  ): void {
    if (x.type !== type) this.#inequivalent(x.name, 'type', type, x.type);
    if (x.durable !== durable) this.#inequivalent(x.name, 'durable', durable, x.durable);
    if (x.autoDelete !== autoDelete) this.#inequivalent(x.name, 'auto_delete', autoDelete, x.autoDelete);
    if (x.internal !== internal) this.#inequivalent(x.name, 'internal', internal, x.internal);
    const received = args[ALTERNATE_EXCHANGE_ARG];
    const current = x.args[ALTERNATE_EXCHANGE_ARG];
    if (canonicalValue(received) !== canonicalValue(current)) {
      this.#inequivalent(x.name, ALTERNATE_EXCHANGE_ARG, received, current);
    }
  }

  #inequivalent(name: string, field: string, received: unknown, current: unknown): never {
    throw new RouterError(
      RouterErrorCode.preconditionFailed,
      `inequivalent arg '${field}' for ${this.#describe(name)}: ` +
        `received ${formatField(received)} but current is ${formatField(current)}`,
    );
  }

  /** Removes one binding from every structure; does not auto-delete. */
  #detach(binding: Binding<R>): void {
    const source = binding.source;
    source.bindings.delete(binding.id);
    this.bindingObserver?.bindingRemoved(source.name, source.type, binding.routingKey);
    if (binding.kind === DestinationKind.queue) {
      source.queues.remove(binding);
      const perQueue = this.#queueBindings.get(binding.destination);
      if (perQueue === binding) this.#queueBindings.delete(binding.destination);
      else if (perQueue instanceof Set) {
        perQueue.delete(binding);
        if (perQueue.size === 0) this.#queueBindings.delete(binding.destination);
      }
    } else {
      source.exchanges!.remove(binding);
      source.exchangeBindings--;
      binding.target.incoming.delete(binding);
    }
  }

  /**
   * Deletes `x` and its bindings both ways. The sources of removed incoming bindings are pushed on
   * `candidates` for auto-delete.
   */
  #destroy(x: ExchangeState<R>, candidates: ExchangeState<R>[]): void {
    x.deleted = true;
    this.#exchanges.delete(x.name);
    for (const binding of Array.from(x.bindings.values())) this.#detach(binding);
    for (const binding of Array.from(x.incoming)) {
      this.#detach(binding);
      if (binding.source !== x) candidates.push(binding.source);
    }
  }

  /** Deletes every auto-delete exchange among `candidates` left without bindings, cascading. */
  #autoDelete(candidates: ExchangeState<R>[]): string[] {
    const deleted: string[] = [];
    while (candidates.length > 0) {
      const x = candidates.pop()!;
      if (x.deleted || !x.autoDelete || x.bindings.size > 0) continue;
      this.#destroy(x, candidates);
      deleted.push(x.name);
    }
    return deleted;
  }

  #lastPrefix = '';
  #lastQueueName = '';
  #lastQualified = '';

  /** prefix + queueName (qualifiedFlat), remembered for the next message: usually the same queue's. */
  #qualifiedQueue(prefix: string, queueName: string): string {
    if (prefix !== this.#lastPrefix || queueName !== this.#lastQueueName) {
      this.#lastPrefix = prefix;
      this.#lastQueueName = queueName;
      this.#lastQualified = qualifiedFlat(prefix, queueName);
    }
    return this.#lastQualified;
  }

  /** `prefix` is the default exchange's own name: '' in `/`, the vhost's prefix elsewhere. */
  #routeDefault(prefix: string, queueName: string): readonly R[] {
    const resolve = this.#defaultTarget;
    if (resolve === null) return EMPTY;
    const target = resolve(prefix.length === 0 ? queueName : this.#qualifiedQueue(prefix, queueName));
    if (target === undefined) return EMPTY;
    const cache = this.#singletons;
    let result = cache.get(target);
    if (result === undefined) {
      if (cache.size >= DEFAULT_TARGET_CACHE_MAX) cache.clear();
      result = Object.freeze([target]);
      cache.set(target, result);
    }
    return result;
  }

  /**
   * Breadth-first over exchange-to-exchange bindings from `start`, each exchange once. The first
   * exchange that contributes targets is answered as-is if no other one contributes; otherwise the
   * targets are merged, deduplicated, in visit order.
   */
  #walk(start: ExchangeState<R>, routingKey: string, headers: MessageHeaders | null | undefined, ignoreHeaders: boolean): readonly R[] {
    const visited = this.#visited;
    const pending = this.#pending;
    const seen = this.#seen;
    let first: readonly R[] | null = null;
    let merged: R[] | null = null;
    visited.add(start);
    pending.push(start);
    try {
      for (let i = 0; i < pending.length; i++) {
        const x = pending[i];
        const targets = ignoreHeaders ? x.queues.matchIgnoringHeaders(routingKey) : x.queues.match(routingKey, headers);
        if (targets.length > 0) {
          if (first === null) {
            first = targets;
          } else {
            if (merged === null) {
              merged = first.slice();
              for (let j = 0; j < first.length; j++) seen.add(first[j]);
            }
            for (let j = 0; j < targets.length; j++) {
              const t = targets[j];
              if (!seen.has(t)) {
                seen.add(t);
                merged.push(t);
              }
            }
          }
        }
        if (x.exchangeBindings > 0) {
          const next = ignoreHeaders ? x.exchanges!.matchIgnoringHeaders(routingKey) : x.exchanges!.match(routingKey, headers);
          for (let j = 0; j < next.length; j++) {
            const d = next[j];
            if (!visited.has(d)) {
              visited.add(d);
              pending.push(d);
            }
          }
        }
      }
    } finally {
      visited.clear();
      pending.length = 0;
      seen.clear();
    }
    return merged ?? first ?? EMPTY;
  }
}

/** A frozen shallow copy of binding/exchange arguments, so later edits by the caller change nothing. */
function copyArgs(args: Readonly<Record<string, unknown>> | null | undefined): Readonly<Record<string, unknown>> {
  if (args == null) return EMPTY_ARGS;
  const keys = Object.keys(args);
  if (keys.length === 0) return EMPTY_ARGS;
  const copy: Record<string, unknown> = {};
  for (const key of keys) {
    Object.defineProperty(copy, key, { value: args[key], enumerable: true, writable: false, configurable: false });
  }
  return Object.freeze(copy);
}

function bindingId(kind: DestinationKind, destination: string, routingKey: string, args: Readonly<Record<string, unknown>>): string {
  return JSON.stringify([kind, destination, routingKey]) + canonicalValue(args);
}

/**
 * A string equal for equal argument values, whatever the key order of tables: the identity of a
 * binding's arguments. Numbers and bigints of one integer value encode alike (AMQP integers of
 * different widths compare equal in RabbitMQ's matching too).
 */
function canonicalValue(v: unknown): string {
  switch (typeof v) {
    case 'undefined':
      return 'u';
    case 'boolean':
      return v ? 'T' : 'F';
    case 'number':
      return 'n' + (Object.is(v, -0) ? '0' : String(v));
    case 'bigint':
      return 'n' + v.toString();
    case 'string':
      return 's' + JSON.stringify(v);
    case 'object': {
      if (v === null) return 'z';
      if (v instanceof Uint8Array) return 'x' + Array.from(v, (b) => b.toString(16).padStart(2, '0')).join('');
      if (v instanceof Date) return 'd' + String(v.getTime());
      if (Array.isArray(v)) return '[' + v.map(canonicalValue).join(',') + ']';
      const table = v as Record<string, unknown>;
      const keys = Object.keys(table).sort();
      let out = '{';
      for (let i = 0; i < keys.length; i++) {
        if (i > 0) out += ',';
        out += JSON.stringify(keys[i]) + ':' + canonicalValue(table[keys[i]]);
      }
      return out + '}';
    }
    default:
      return 'o' + String(v);
  }
}

/** A value as RabbitMQ quotes it in inequivalence errors: 'x', or none when absent. */
function formatField(v: unknown): string {
  if (v === undefined || v === null) return 'none';
  if (typeof v === 'string' || typeof v === 'boolean' || typeof v === 'number' || typeof v === 'bigint') {
    return `'${String(v)}'`;
  }
  try {
    return `'${JSON.stringify(v)}'`;
  } catch {
    return `'${String(v)}'`;
  }
}
