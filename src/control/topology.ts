/**
 * The main thread's copy of the AMQP topology: every exchange, every queue's
 * metadata (which shard owns it, its flags and arguments) and every binding.
 *
 * Declarations are validated here first (equivalence, exclusivity, reserved names),
 * so clients get RabbitMQ's errors at once; then the owning shards are told. Routing
 * on the main thread only answers "which shards", never "which queues": bindings map
 * to the shard of their queue, headers exchanges are over-approximated (every shard
 * with a binding gets the message and filters exactly), and the shards do the rest.
 */
import { randomBytes } from 'node:crypto';
import { ExchangeRegistry, isDefaultExchange, RouterError, type ExchangeInfo, type BindingInfo } from '../router/exchange-registry.js';
import { shardFor } from '../router/shard-map.js';
import { SortedNames, type SortedList } from './sorted-names.js';
import { describeIn, localName, prefixOf, vhostOf } from '../protocol/vhost-name.js';
import { PUBLISH_FLAG_LIGHT } from '../protocol/ring-record-codec.js';
import type { LightRouting } from './light-routes.js';

export interface QueueOptions {
  readonly durable: boolean;
  readonly exclusive: boolean;
  readonly autoDelete: boolean;
  readonly arguments: Readonly<Record<string, unknown>>;
}

export interface QueueMeta extends QueueOptions {
  readonly name: string;
  readonly shard: number;
  /** Connection that owns an exclusive queue; 0 for none. */
  readonly owner: number;
  /** Publishes to this queue must wait for the shard's confirm (it may refuse them, or must fsync). */
  readonly confirmFromShard: boolean;
}

/** The exchange argument naming where unroutable messages go (RabbitMQ's alternate exchange). */
const ALTERNATE_EXCHANGE = 'alternate-exchange';
/** Alternate exchanges followed from one publish before it counts as unroutable. */
const MAX_ALTERNATE_HOPS = 4;

/** What a server-named queue's name starts with (RabbitMQ's). */
export const SERVER_NAME_PREFIX = 'amq.gen-';

/** Arguments that make a queue answer publishes itself (it may refuse them). */
const REFUSING_OVERFLOW = new Set(['reject-publish', 'reject-publish-dlx']);

/** Told of every queue added and removed (the cluster announces the ones other nodes may use). */
export interface QueueObserver {
  queueAdded(queue: QueueMeta): void;
  queueRemoved(queue: QueueMeta): void;
}

export class Topology {
  /** Set by the cluster link only; null on a node of its own. */
  queueObserver: QueueObserver | null = null;
  readonly #shards: number;
  readonly #queues = new Map<string, QueueMeta>();
  readonly registry: ExchangeRegistry<string, number>;
  /** Queues whose publishes need the shard's confirm; when none, no exchange route needs one. */
  #confirmingQueues = 0;
  /**
   * Each vhost's queue names (by prefix, `/`'s under ''), kept in order as queues come and go: the
   * management pages' order and each vhost's count.
   */
  readonly #sortedIn = new Map<string, SortedNames>();
  /** The most queues a vhost (by prefix) may hold; set by the vhosts' registry. */
  queueLimit: (prefix: string) => number = () => Number.POSITIVE_INFINITY;
  /** Light subscriptions' patterns (the WebSocket front's shared streams); null while there is no front to carry them. */
  light: LightRouting | null = null;
  readonly #singleShards: (readonly number[])[] = [];

  constructor(shardCount: number) {
    this.#shards = shardCount;
    this.registry = new ExchangeRegistry<string, number>({
      queueKey: (name) => name,
      // Bindings are made after their queue exists; a recovered queue may sit off its hash.
      routeTarget: (name) => this.#queues.get(name)?.shard ?? this.shardOfQueue(name),
      defaultExchangeTarget: (name) => this.#queues.get(name)?.shard,
    });
  }

  get shardCount(): number {
    return this.#shards;
  }

  /**
   * A durable queue recovered from a shard's log: it lives where its log is, whatever the hash
   * says now (the shard count may have changed since it was declared).
   */
  adoptQueue(name: string, options: QueueOptions, shard: number): void {
    if (!this.#queues.has(name)) this.#add(name, { ...options, exclusive: false }, shard, 0);
  }

  /** Where a queue of this name lives (whether or not it exists yet). */
  shardOfQueue(name: string): number {
    return shardFor(name, this.#shards);
  }

  getQueue(name: string): QueueMeta | undefined {
    return this.#queues.get(name);
  }

  /** How many queues the vhost with this prefix holds. */
  queueCountIn(prefix: string): number {
    return this.#sortedIn.get(prefix)?.length ?? 0;
  }

  listQueues(): QueueMeta[] {
    return [...this.#queues.values()];
  }

  /** Every queue, in declaration order, without a copy (a listing walks it in turns). */
  queues(): IterableIterator<QueueMeta> {
    return this.#queues.values();
  }

  /** Queues of every vhost. */
  get queueCount(): number {
    return this.#queues.size;
  }

  /** The qualified names of the queues of the vhost with this prefix, as they are now (a copy: safe to delete them one by one). */
  queueNamesIn(prefix: string): readonly string[] {
    return [...(this.#sortedIn.get(prefix) ?? [])];
  }

  /**
   * The qualified names of one vhost's queues in code-unit order, kept so as queues come and go
   * (control/sorted-names.ts): a management page of 100 out of 100k queues sorts nothing.
   */
  sortedQueueNamesIn(prefix: string): SortedList {
    return this.#sortedIn.get(prefix) ?? EMPTY_NAMES;
  }

  listExchanges(): ExchangeInfo[] {
    return this.registry.listExchanges();
  }

  listBindings(): BindingInfo[] {
    return this.registry.listBindings();
  }

  /**
   * Declares a queue (or checks it, when passive) the way RabbitMQ does: an empty name
   * gets a server name; a redeclare must be equivalent; an exclusive queue belongs to
   * its connection. Returns the queue and whether it was created.
   */
  declareQueue(
    name: string,
    options: QueueOptions,
    passive: boolean,
    connection: number,
    serverNamePrefix = SERVER_NAME_PREFIX,
  ): { queue: QueueMeta; created: boolean } {
    // `name` is qualified (vhost-name.ts): a server-named queue is asked for by its vhost's prefix alone.
    const local = localName(name);
    const serverNamed = local === '';
    if (serverNamed) {
      if (passive) throw new RouterError('not_found', `no ${describeIn('queue', name)}`);
      name = this.#serverName(name + serverNamePrefix);
    }
    if (!serverNamed && local.startsWith('amq.') && !this.#queues.has(name)) {
      throw new RouterError('access_refused', `queue name '${local}' contains reserved prefix 'amq.*'`);
    }
    const existing = this.#queues.get(name);
    if (existing !== undefined) {
      if (existing.exclusive && existing.owner !== connection) {
        throw new RouterError(
          'resource_locked',
          `cannot obtain exclusive access to locked ${describeIn('queue', name)}. It could be originally declared on another connection or the exclusive property value does not match that of the original declaration.`,
        );
      }
      if (!passive) this.#checkEquivalent(existing, options);
      return { queue: existing, created: false };
    }
    if (passive) throw new RouterError('not_found', `no ${describeIn('queue', name)}`);
    const prefix = prefixOf(name);
    if (this.queueCountIn(prefix) >= this.queueLimit(prefix)) {
      // RabbitMQ's words for a vhost at its max-queues.
      throw new RouterError(
        'precondition_failed',
        `cannot declare queue '${localName(name)}': queue limit in virtual host '${vhostOf(name)}' is reached`,
      );
    }
    return { queue: this.#add(name, options, this.shardOfQueue(name), options.exclusive ? connection : 0), created: true };
  }

  #add(name: string, options: QueueOptions, shard: number, owner: number): QueueMeta {
    const overflow = options.arguments['x-overflow'];
    const queue: QueueMeta = {
      name,
      shard,
      owner,
      durable: options.durable,
      exclusive: options.exclusive,
      autoDelete: options.autoDelete,
      arguments: options.arguments,
      // A stream is durable whatever the declare said (on disk under --data-dir): its publishers wait for the append.
      confirmFromShard:
        options.durable ||
        options.arguments['x-queue-type'] === 'stream' ||
        (typeof overflow === 'string' && REFUSING_OVERFLOW.has(overflow)),
    };
    this.#queues.set(name, queue);
    const prefix = prefixOf(name);
    let sorted = this.#sortedIn.get(prefix);
    if (sorted === undefined) {
      sorted = new SortedNames();
      this.#sortedIn.set(prefix, sorted);
    }
    sorted.add(name);
    if (queue.confirmFromShard) this.#confirmingQueues++;
    this.queueObserver?.queueAdded(queue);
    return queue;
  }

  /** Forgets a queue and its bindings (after the shard deleted it). Returns exchanges auto-deleted. */
  removeQueue(name: string): string[] {
    const queue = this.#queues.get(name);
    if (queue === undefined) return [];
    this.#queues.delete(name);
    const prefix = prefixOf(name);
    const sorted = this.#sortedIn.get(prefix);
    if (sorted !== undefined) {
      sorted.delete(name);
      if (sorted.length === 0) this.#sortedIn.delete(prefix);
    }
    if (queue.confirmFromShard) this.#confirmingQueues--;
    this.queueObserver?.queueRemoved(queue);
    return this.registry.removeQueue(name).autoDeleted;
  }

  /** Exclusive queues of a connection: deleted when it closes. */
  exclusiveQueuesOf(connection: number): QueueMeta[] {
    const out: QueueMeta[] = [];
    for (const q of this.#queues.values()) if (q.owner === connection) out.push(q);
    return out;
  }

  /**
   * The shards a message published to `exchange` with `routingKey` must reach, and whether
   * the publisher must wait for the shards to confirm. Throws RouterError (not_found,
   * access_refused for internal exchanges).
   */
  route(exchange: string, routingKey: string): { shards: readonly number[]; confirmFromShard: boolean; exchange: string; flags: number } {
    let shards = this.registry.routeIgnoringHeaders(exchange, routingKey);
    let flags = 0;
    const light = this.light;
    if (light !== null) {
      // Light subscriptions (control/light-routes.ts): their carrier's shard, and the flag that puts the message into it.
      const shard = light.shardFor(exchange, routingKey);
      if (shard >= 0) {
        flags = PUBLISH_FLAG_LIGHT;
        if (!shards.includes(shard)) shards = shards.length === 0 ? this.oneShard(shard) : shards.concat(shard);
      }
    }
    // RabbitMQ's alternate exchange: what the exchange routes nowhere goes to the one its
    // `alternate-exchange` argument names (and on, a few hops at most, never in a circle).
    for (let hops = 0; shards.length === 0 && hops < MAX_ALTERNATE_HOPS; hops++) {
      const named = this.registry.getExchange(exchange)?.arguments[ALTERNATE_EXCHANGE];
      if (typeof named !== 'string') break;
      // The argument names an exchange of the same vhost.
      const alternate = prefixOf(exchange) + named;
      if (alternate === exchange || !this.registry.hasExchange(alternate)) break;
      exchange = alternate;
      shards = this.registry.routeIgnoringHeaders(exchange, routingKey);
    }
    let confirmFromShard = false;
    if (this.#confirmingQueues > 0) {
      confirmFromShard = isDefaultExchange(exchange)
        ? this.#queues.get(exchange.length === 0 ? routingKey : exchange + routingKey)?.confirmFromShard === true
        : true;
    }
    return { shards, confirmFromShard, exchange, flags };
  }

  /** A frozen `[shard]`, one per shard, shared by every route that reaches that shard alone. */
  oneShard(shard: number): readonly number[] {
    let one = this.#singleShards[shard];
    if (one === undefined) this.#singleShards[shard] = one = Object.freeze([shard]);
    return one;
  }

  #checkEquivalent(q: QueueMeta, o: QueueOptions): void {
    const fail = (what: string, received: unknown, current: unknown): never => {
      throw new RouterError(
        'precondition_failed',
        `inequivalent arg '${what}' for ${describeIn('queue', q.name)}: received '${String(received)}' but current is '${String(current)}'`,
      );
    };
    if (q.durable !== o.durable) fail('durable', o.durable, q.durable);
    if (q.exclusive !== o.exclusive) fail('exclusive', o.exclusive, q.exclusive);
    if (q.autoDelete !== o.autoDelete) fail('auto_delete', o.autoDelete, q.autoDelete);
    const keys = new Set([...Object.keys(q.arguments), ...Object.keys(o.arguments)]);
    for (const k of keys) {
      if (!k.startsWith('x-')) continue;
      if (JSON.stringify(q.arguments[k]) !== JSON.stringify(o.arguments[k])) fail(k, o.arguments[k] ?? 'none', q.arguments[k] ?? 'none');
    }
  }

  /** `prefix` is qualified: the vhost's prefix, then `amq.gen-` or the caller's own. */
  #serverName(prefix: string): string {
    // RabbitMQ's form: amq.gen- plus 22 URL-safe base64 characters.
    for (;;) {
      const name = prefix + randomBytes(16).toString('base64url').slice(0, 22);
      if (!this.#queues.has(name)) return name;
    }
  }
}

/** What a vhost without queues lists. */
const EMPTY_NAMES: SortedList = Object.freeze<string[]>([]);
