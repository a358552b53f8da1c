/**
 * The main thread's half of subscribing, shared by every protocol: check the principal may
 * consume from a destination, and find (or create) the queue it consumes: the named queue for
 * `/queue/`, a private server-named queue bound to the exchange for `/topic/` and `/exchange/`.
 * Declaration and binding are written to the queue's shard in order ahead of the subscribe,
 * so nothing waits for an answer.
 */
import { qualify } from '../protocol/vhost-name.js';
import { DestinationType, formatDestination, type Destination } from '../protocol/destination.js';
import { CARRIER_ARG, NO_TOKEN } from '../protocol/ring-record-codec.js';
import { BrokerError, ErrorCode } from '../protocol/errors.js';
import { withBrokerErrors } from './router-errors.js';
import type { VhostScope } from '../protocol/vhost-name.js';
import { parseOrRefuse, type PublishPath, type ShardWriter } from './publish-path.js';
import type { Topology } from './topology.js';
import type { Management } from './management.js';
import type { Principal } from './auth.js';
import type { Logger } from '../log/logger.js';
import { REMOTE_SHARD } from '../shard/shard-handle.js';
import { SLOW_CONSUMER_ARG, SLOW_CONSUMER_MS_ARG, TOPIC_BUFFER_ARG, type SlowConsumerPolicy } from '../shard/shard-flow.js';
import { describeIn } from '../protocol/vhost-name.js';

export interface ConsumeOptions {
  /** Messages a topic subscription's private queue holds before flow control or its slow-consumer policy acts. */
  readonly topicBuffer: number;
  readonly slowConsumer: SlowConsumerPolicy;
  /** How long a client-ack subscriber may hold its whole prefetch while its buffer presses (then it is slow). */
  readonly slowConsumerMs: number;
}

export interface ConsumeTarget {
  readonly destination: Destination;
  readonly queue: string;
  readonly shard: number;
  /** A server-named queue of this subscription alone: drop it with the subscription. */
  readonly privateQueue: boolean;
}

export class ConsumePath {
  readonly #topology: Topology;
  readonly #publisher: PublishPath;
  readonly #management: Pick<Management, 'forgetQueue'>;
  readonly #shards: readonly ShardWriter[];
  readonly #options: ConsumeOptions;
  readonly #log: Logger;
  #topicArgsCache: Readonly<Record<string, unknown>> | null = null;

  constructor(
    topology: Topology,
    publisher: PublishPath,
    management: Pick<Management, 'forgetQueue'>,
    shards: readonly ShardWriter[],
    options: ConsumeOptions,
    log: Logger,
  ) {
    this.#topology = topology;
    this.#publisher = publisher;
    this.#management = management;
    this.#shards = shards;
    this.#options = options;
    this.#log = log;
  }

  /** The queue a subscription of `connectionId` to `destinationText` consumes; refuses what `principal` may not read. */
  target(destinationText: string, principal: Principal, connectionId: number): ConsumeTarget {
    const destination = parseOrRefuse(destinationText);
    const canonical = formatDestination(destination.type, destination.exchange, destination.name);
    if (!principal.canSubscribe(canonical)) {
      this.#log.warn({ user: principal.name, destination: canonical }, 'subscribe denied');
      throw new BrokerError(ErrorCode.accessRefused, `user ${principal.name} may not subscribe to ${canonical}`);
    }
    const prefix = principal.vhost.prefix;
    if (destination.type === DestinationType.queue) {
      // A parsed destination holds no control character, so no vhost separator: the qualified name is a concatenation.
      const queue = prefix + destination.name;
      // In a cluster a queue may live on another node: its consumer's records go there (cluster/remote-consumers.ts).
      const remote = this.#publisher.cluster?.queueOwner(queue, destination.declare) ?? null;
      if (remote !== null) return { destination, queue, shard: REMOTE_SHARD, privateQueue: false };
      if (destination.declare) return { destination, queue, shard: this.#publisher.ensureQueue(queue), privateQueue: false };
      const existing = this.#topology.getQueue(queue);
      if (existing === undefined) throw new BrokerError(ErrorCode.notFound, `no ${describeIn('queue', queue)}`);
      if (existing.exclusive && existing.owner !== connectionId) {
        throw new BrokerError(ErrorCode.resourceLocked, `cannot obtain exclusive access to locked ${describeIn('queue', queue)}`);
      }
      return { destination, queue, shard: existing.shard, privateQueue: false };
    }
    // RabbitMQ's STOMP plugin does the same: a private queue per subscription, bounded here by
    // --topic-buffer: past it the shard holds the publishers while the subscriber keeps up, and
    // applies --slow-consumer once it is slow itself (shard/shard-flow.ts).
    const binding = { exchange: prefix + destination.exchange, pattern: destination.name };
    const { queue, shard } = this.#declarePrivate(prefix, connectionId, this.#topicArgs(), binding);
    return { destination, queue, shard, privateQueue: true };
  }

  /**
   * AMQP's basic.consume: an existing queue by name (server-named ones included), never declared
   * here; refuses what `principal` may not read and another connection's exclusive queue.
   */
  queueTarget(name: string, principal: Principal, connectionId: number): ConsumeTarget {
    const destination: Destination = { type: DestinationType.queue, declare: false, exchange: '', name };
    const canonical = formatDestination(DestinationType.queue, '', name);
    if (!principal.canSubscribe(canonical)) {
      this.#log.warn({ user: principal.name, destination: canonical, vhost: principal.vhost.name }, 'subscribe denied');
      throw new BrokerError(
        ErrorCode.accessRefused,
        `access to queue '${name}' in vhost '${principal.vhost.name}' refused for user '${principal.name}'`,
      );
    }
    const queue = qualify(principal.vhost.prefix, name);
    const existing = this.#topology.getQueue(queue);
    if (existing === undefined) {
      // In a cluster the queue may live on another node: consumed there through this node.
      const remote = this.#publisher.cluster?.queueOwner(queue, false) ?? null;
      if (remote !== null) return { destination, queue, shard: REMOTE_SHARD, privateQueue: false };
      throw new BrokerError(ErrorCode.notFound, `no ${describeIn('queue', queue)}`);
    }
    if (existing.exclusive && existing.owner !== connectionId) {
      throw new BrokerError(ErrorCode.resourceLocked, `cannot obtain exclusive access to locked ${describeIn('queue', queue)}`);
    }
    return { destination, queue, shard: existing.shard, privateQueue: false };
  }

  /**
   * Parses and authorizes a subscription that may share a stream (front/delivery-groups.ts): a
   * `/topic/` destination it may read, or null when it cannot be shared (it then goes through
   * `target` like any other). Refuses what `principal` may not read.
   */
  shareable(destinationText: string, principal: Principal): Destination | null {
    const destination = parseOrRefuse(destinationText);
    if (destination.type !== DestinationType.topic) return null;
    const canonical = formatDestination(destination.type, destination.exchange, destination.name);
    if (!principal.canSubscribe(canonical)) {
      this.#log.warn({ user: principal.name, destination: canonical }, 'subscribe denied');
      throw new BrokerError(ErrorCode.accessRefused, `user ${principal.name} may not subscribe to ${canonical}`);
    }
    return destination;
  }

  /**
   * The carrier queue of light subscriptions to `exchange` (qualified, of `vhost`; control/light-routes.ts):
   * a private topic queue (server-named, exclusive, bounded by --topic-buffer with its flow control)
   * owned by no connection (owner 0: no client can consume it by name, no connection's close drops
   * it), bound to nothing (its shard puts a publish into it when the main thread flags it), and
   * naming the exchange it carries. Its streams drop it when the last one goes.
   */
  carrierQueue(exchange: string, vhost: VhostScope): { queue: string; shard: number } {
    if (!this.#topology.registry.hasExchange(exchange)) throw new BrokerError(ErrorCode.notFound, `no ${describeIn('exchange', exchange)}`);
    return this.#declarePrivate(vhost.prefix, 0, Object.freeze({ ...this.#topicArgs(), [CARRIER_ARG]: exchange }), null);
  }

  /**
   * A private queue of vhost `prefix` with `args`, bound (on this thread and its shard) to
   * `binding`'s exchange (of that vhost) with its pattern, unless `binding` is null.
   */
  #declarePrivate(
    prefix: string,
    owner: number,
    args: Readonly<Record<string, unknown>>,
    binding: { readonly exchange: string; readonly pattern: string } | null,
  ): { queue: string; shard: number } {
    const topology = this.#topology;
    const options = { durable: false, exclusive: true, autoDelete: true, arguments: args };
    // The vhost's prefix alone asks for a server-named queue of that vhost.
    const created = withBrokerErrors(() => topology.declareQueue(prefix, options, false, owner));
    const queue = created.queue.name;
    const shard = created.queue.shard;
    if (binding !== null) {
      try {
        withBrokerErrors(() => topology.registry.bindQueue(binding.exchange, queue, binding.pattern, {}));
      } catch (err) {
        topology.removeQueue(queue);
        throw err;
      }
    }
    const handle = this.#shards[shard];
    handle.writeControl((w) => w.manage(0, NO_TOKEN, { op: 'declareQueue', name: queue, ...options }));
    if (binding !== null) {
      const { exchange, pattern } = binding;
      handle.writeControl((w) => w.manage(0, NO_TOKEN, { op: 'bindQueue', exchange, queue, routingKey: pattern, arguments: {} }));
    }
    return { queue, shard };
  }

  /** One frozen object for every private queue (the options do not change): not one per subscription. */
  #topicArgs(): Readonly<Record<string, unknown>> {
    return (this.#topicArgsCache ??= Object.freeze({
      [TOPIC_BUFFER_ARG]: this.#options.topicBuffer,
      [SLOW_CONSUMER_ARG]: this.#options.slowConsumer,
      [SLOW_CONSUMER_MS_ARG]: this.#options.slowConsumerMs,
    }));
  }

  /** Forgets a queue on the main thread at once (routing stops) and deletes it on its shard. */
  dropQueue(name: string, shard: number): void {
    void this.#management.forgetQueue(name);
    this.#shards[shard].writeControl((w) => w.manage(0, NO_TOKEN, { op: 'deleteQueue', name, ifUnused: false, ifEmpty: false }));
  }

  /** Drops the exclusive queues a closed connection owned. */
  dropExclusiveQueuesOf(connectionId: number): void {
    for (const q of this.#topology.exclusiveQueuesOf(connectionId)) this.dropQueue(q.name, q.shard);
  }
}
