/**
 * Topology operations as every front end (HTTP management API, binary WebSocket ops,
 * destinations that declare on first use) performs them: validated against the main
 * thread's topology first, then applied on the shards that need to know.
 *
 * Who is told what: a queue's declaration, deletion, purge and bindings go to the shard
 * that owns the queue; exchanges and exchange-to-exchange bindings go to every shard.
 * Shards never auto-delete exchanges themselves (each sees only its own queues'
 * bindings); the main thread decides and broadcasts the deletion.
 */
import { qualify } from '../protocol/vhost-name.js';
import { isExchangeType, type ExchangeInfo } from '../router/exchange-registry.js';
import { withBrokerErrors } from './router-errors.js';
import { QueueArgumentError } from '../queue/queue-arguments.js';
import { checkQueueDeclaration } from '../stream/stream-arguments.js';
import { BrokerError, ErrorCode } from '../protocol/errors.js';
import type { Topology, QueueMeta, QueueOptions } from './topology.js';
import type { ShardCalls, ManageAnswer } from './shard-calls.js';
import type { ManageOp } from '../protocol/ring-record-codec.js';
import { bindingDestination, type Principal } from './auth.js';
import { describeIn, localName, type VhostScope } from '../protocol/vhost-name.js';

export interface ExchangeDeclare {
  readonly name: string;
  readonly type: string;
  readonly durable: boolean;
  readonly autoDelete: boolean;
  readonly internal: boolean;
  readonly arguments: Record<string, unknown>;
  readonly passive: boolean;
}

export interface QueueDeclare extends QueueOptions {
  readonly name: string;
  readonly passive: boolean;
  /** A server-named queue's prefix when not `amq.gen-` (AMQP direct reply-to's queues). */
  readonly serverNamePrefix?: string;
}

/** One answer of Management.streamRead (shard/shard-streams.ts StreamReadAnswer). */
export interface StreamRead {
  readonly first_offset: number;
  readonly next_offset: number;
  readonly skipped: number;
  /** One serialised JSON object per entry. */
  readonly lines: readonly string[];
}

export interface QueueDeclareOk {
  readonly queue: string;
  readonly messageCount: number;
  readonly consumerCount: number;
  readonly created: boolean;
}

export class Management {
  /** Set in a cluster: the other node that holds a queue of this name, or null. */
  queueElsewhere: ((name: string) => string | null) | null = null;
  readonly #topology: Topology;
  readonly #calls: Pick<ShardCalls, 'call' | 'broadcast'>;

  constructor(topology: Topology, calls: Pick<ShardCalls, 'call' | 'broadcast'>) {
    this.#topology = topology;
    this.#calls = calls;
  }

  get topology(): Topology {
    return this.#topology;
  }

  async declareExchange(vh: VhostScope, d: ExchangeDeclare): Promise<{ created: boolean }> {
    if (!d.passive && !isExchangeType(d.type)) {
      throw new BrokerError(ErrorCode.commandInvalid, `invalid exchange type '${d.type}'; expected direct, fanout, topic or headers`);
    }
    const name = qualify(vh.prefix, d.name);
    const { created } = withBrokerErrors(() =>
      this.#topology.registry.declareExchange(
        name,
        d.type,
        { durable: d.durable, autoDelete: d.autoDelete, internal: d.internal, arguments: d.arguments },
        d.passive,
      ),
    );
    if (created) {
      const answer = await this.#calls.broadcast({
        op: 'declareExchange',
        name,
        type: d.type,
        durable: d.durable,
        autoDelete: false,
        internal: d.internal,
        arguments: d.arguments,
      });
      check(answer);
    }
    return { created };
  }

  async deleteExchange(vh: VhostScope, local: string, ifUnused: boolean): Promise<{ deleted: boolean }> {
    const name = qualify(vh.prefix, local);
    const { deleted, autoDeleted } = withBrokerErrors(() => this.#topology.registry.deleteExchange(name, ifUnused));
    if (deleted) await this.#broadcastDeletes([name, ...autoDeleted]);
    return { deleted };
  }

  /** Declares queue `d.name` of `vh` (a server name when ''); answers the queue's name as `vh`'s clients know it. */
  async declareQueue(vh: VhostScope, d: QueueDeclare, connection: number): Promise<QueueDeclareOk> {
    const name = qualify(vh.prefix, d.name);
    // In a cluster a named queue that lives on another node is that one: declaring it here is a
    // no-op (its arguments are checked where it lives, not here), and it is used through this node.
    if (d.name !== '' && !d.exclusive && this.queueElsewhere?.(name) != null) {
      return { queue: d.name, messageCount: 0, consumerCount: 0, created: false };
    }
    if (!d.passive) {
      try {
        checkQueueDeclaration(d.arguments as Record<string, unknown>, d.name, d);
      } catch (err) {
        if (err instanceof QueueArgumentError) throw new BrokerError(ErrorCode.preconditionFailed, err.message);
        throw err;
      }
    }
    const { queue, created } = withBrokerErrors(() => this.#topology.declareQueue(name, d, d.passive, connection, d.serverNamePrefix));
    const answer = await this.#calls.call(queue.shard, declareOp(queue), connection);
    if (!answer.ok) {
      if (created) this.#topology.removeQueue(queue.name);
      check(answer);
    }
    return {
      queue: localName(queue.name),
      messageCount: answer.result.messageCount ?? 0,
      consumerCount: answer.result.consumerCount ?? 0,
      created,
    };
  }

  /** A stream queue's figures (GET /v1/streams/<name>). */
  async streamInfo(vh: VhostScope, local: string): Promise<Readonly<Record<string, unknown>>> {
    const queue = this.#streamQueue(qualify(vh.prefix, local));
    const answer = await this.#calls.call(queue.shard, { op: 'streamInfo', queue: queue.name });
    check(answer);
    // The shard names the stream by its qualified name; its vhost's clients by their own.
    return { ...(answer.result.stream ?? {}), name: local, vhost: vh.name };
  }

  /**
   * Up to `limit` entries of a stream from where `offset` (an x-stream-offset value) says, in one
   * answer of at most the shard's read budget: callers wanting more ask again from `next_offset`.
   */
  async streamRead(vh: VhostScope, local: string, offset: unknown, limit: number): Promise<StreamRead> {
    const queue = this.#streamQueue(qualify(vh.prefix, local));
    const answer = await this.#calls.call(queue.shard, { op: 'streamRead', queue: queue.name, offset, limit });
    check(answer);
    return answer.result.stream as unknown as StreamRead;
  }

  /** Stores `offset` for the stream consumer `consumer` of stream `name` (qualified: a subscription's queue; see ShardStreams.commit). */
  async streamCommit(name: string, consumer: string, offset: number): Promise<void> {
    const queue = this.#streamQueue(name);
    check(await this.#calls.call(queue.shard, { op: 'streamCommit', queue: name, name: consumer, offset }));
  }

  #streamQueue(name: string): QueueMeta {
    const queue = this.#topology.getQueue(name);
    if (queue === undefined) throw new BrokerError(ErrorCode.notFound, `no ${describeIn('queue', name)}`);
    if (queue.arguments['x-queue-type'] !== 'stream') {
      throw new BrokerError(
        ErrorCode.preconditionFailed,
        `${describeIn('queue', name)} is not a stream (declare it with x-queue-type 'stream')`,
      );
    }
    return queue;
  }

  /**
   * The queue behind a `/queue/<name>` destination: declared on first use with defaults,
   * used as it is when it exists (no equivalence check: the destination names a queue,
   * it does not declare one).
   */
  async ensureQueue(name: string, durable: boolean): Promise<QueueMeta> {
    const existing = this.#topology.getQueue(name);
    if (existing !== undefined) return existing;
    const { queue, created } = withBrokerErrors(() =>
      this.#topology.declareQueue(name, { durable, exclusive: false, autoDelete: false, arguments: {} }, false, 0),
    );
    if (created) check(await this.#calls.call(queue.shard, declareOp(queue)));
    return queue;
  }

  /** Deletes queue `local` of `vh`; see deleteQueueNamed. */
  deleteQueue(vh: VhostScope, local: string, ifUnused: boolean, ifEmpty: boolean, connection = 0): Promise<{ messageCount: number }> {
    return this.deleteQueueNamed(qualify(vh.prefix, local), ifUnused, ifEmpty, connection);
  }

  /** Deletes the queue of qualified name `name`, if it exists. */
  async deleteQueueNamed(name: string, ifUnused: boolean, ifEmpty: boolean, connection = 0): Promise<{ messageCount: number }> {
    const queue = this.#topology.getQueue(name);
    if (queue === undefined) return { messageCount: 0 };
    if (queue.exclusive && queue.owner !== connection && connection !== 0) {
      throw new BrokerError(ErrorCode.resourceLocked, `cannot obtain exclusive access to locked ${describeIn('queue', name)}`);
    }
    const answer = await this.#calls.call(queue.shard, { op: 'deleteQueue', name, ifUnused, ifEmpty });
    check(answer);
    await this.forgetQueue(name);
    return { messageCount: answer.result.messageCount ?? 0 };
  }

  /** The main thread's side of a queue deletion (also used when a shard deleted one by itself). */
  async forgetQueue(name: string): Promise<void> {
    const autoDeleted = this.#topology.removeQueue(name);
    if (autoDeleted.length > 0) await this.#broadcastDeletes(autoDeleted);
  }

  async purgeQueue(vh: VhostScope, local: string): Promise<{ messageCount: number }> {
    const name = qualify(vh.prefix, local);
    const queue = this.#topology.getQueue(name);
    if (queue === undefined) throw new BrokerError(ErrorCode.notFound, `no ${describeIn('queue', name)}`);
    const answer = await this.#calls.call(queue.shard, { op: 'purgeQueue', name });
    check(answer);
    return { messageCount: answer.result.messageCount ?? 0 };
  }

  /** Binds queue `queueLocal` to `exchangeLocal`, both of the principal's vhost. */
  async bindQueue(
    exchangeLocal: string,
    queueLocal: string,
    routingKey: string,
    args: Record<string, unknown>,
    principal: Principal,
  ): Promise<void> {
    mayRead(principal, exchangeLocal, routingKey);
    const exchange = qualify(principal.vhost.prefix, exchangeLocal);
    const queueName = qualify(principal.vhost.prefix, queueLocal);
    const queue = this.#topology.getQueue(queueName);
    if (queue === undefined) throw new BrokerError(ErrorCode.notFound, `no ${describeIn('queue', queueName)}`);
    const added = withBrokerErrors(() => this.#topology.registry.bindQueue(exchange, queueName, routingKey, args));
    if (!added) return;
    const answer = await this.#calls.call(queue.shard, { op: 'bindQueue', exchange, queue: queueName, routingKey, arguments: args });
    if (!answer.ok) {
      this.#topology.registry.unbindQueue(exchange, queueName, routingKey, args);
      check(answer);
    }
  }

  async unbindQueue(
    vh: VhostScope,
    exchangeLocal: string,
    queueLocal: string,
    routingKey: string,
    args: Record<string, unknown>,
  ): Promise<void> {
    const exchange = qualify(vh.prefix, exchangeLocal);
    const queueName = qualify(vh.prefix, queueLocal);
    const queue = this.#topology.getQueue(queueName);
    if (queue === undefined) throw new BrokerError(ErrorCode.notFound, `no ${describeIn('queue', queueName)}`);
    const { autoDeleted } = withBrokerErrors(() => this.#topology.registry.unbindQueue(exchange, queueName, routingKey, args));
    check(await this.#calls.call(queue.shard, { op: 'unbindQueue', exchange, queue: queueName, routingKey, arguments: args }));
    if (autoDeleted.length > 0) await this.#broadcastDeletes(autoDeleted);
  }

  async bindExchange(
    destinationLocal: string,
    sourceLocal: string,
    routingKey: string,
    args: Record<string, unknown>,
    principal: Principal,
  ): Promise<void> {
    mayRead(principal, sourceLocal, routingKey);
    const destination = qualify(principal.vhost.prefix, destinationLocal);
    const source = qualify(principal.vhost.prefix, sourceLocal);
    const added = withBrokerErrors(() => this.#topology.registry.bindExchange(destination, source, routingKey, args));
    if (added) check(await this.#calls.broadcast({ op: 'bindExchange', destination, source, routingKey, arguments: args }));
  }

  async unbindExchange(
    vh: VhostScope,
    destinationLocal: string,
    sourceLocal: string,
    routingKey: string,
    args: Record<string, unknown>,
  ): Promise<void> {
    const destination = qualify(vh.prefix, destinationLocal);
    const source = qualify(vh.prefix, sourceLocal);
    const { autoDeleted } = withBrokerErrors(() => this.#topology.registry.unbindExchange(destination, source, routingKey, args));
    check(await this.#calls.broadcast({ op: 'unbindExchange', destination, source, routingKey, arguments: args }));
    if (autoDeleted.length > 0) await this.#broadcastDeletes(autoDeleted);
  }

  /**
   * A restarted shard starts empty: write it the whole topology it must know, in an order
   * that always makes sense (exchanges, its queues, their bindings, exchange bindings).
   * Fire and forget: these ride the ring ahead of anything written after them.
   */
  replayShard(shard: number, write: (op: ManageOp) => void): void {
    const t = this.#topology;
    for (const x of t.listExchanges()) {
      if (x.builtIn) continue;
      write(declareExchangeOp(x));
    }
    for (const q of t.listQueues()) if (q.shard === shard) write(declareOp(q));
    for (const b of t.listBindings()) {
      if (b.destinationType === 'queue') {
        if (t.getQueue(b.destination)?.shard === shard) {
          write({ op: 'bindQueue', exchange: b.source, queue: b.destination, routingKey: b.routingKey, arguments: { ...b.arguments } });
        }
      } else {
        write({
          op: 'bindExchange',
          destination: b.destination,
          source: b.source,
          routingKey: b.routingKey,
          arguments: { ...b.arguments },
        });
      }
    }
  }

  /**
   * Takes a shard's recovered durable topology into the main thread's: queues stay on the shard
   * that holds their log (even if the shard count changed since), exchanges and bindings are
   * merged (every shard logs the exchanges, so they arrive more than once).
   */
  adoptRecovered(shard: number, ops: readonly ManageOp[]): void {
    const t = this.#topology;
    for (const op of ops) {
      try {
        switch (op.op) {
          case 'declareExchange':
            if (!t.registry.hasExchange(op.name))
              t.registry.declareExchange(op.name, op.type, {
                durable: op.durable,
                autoDelete: op.autoDelete,
                internal: op.internal,
                arguments: op.arguments,
              });
            break;
          case 'declareQueue':
            t.adoptQueue(op.name, { durable: op.durable, exclusive: false, autoDelete: op.autoDelete, arguments: op.arguments }, shard);
            break;
          case 'bindQueue':
            t.registry.bindQueue(op.exchange, op.queue, op.routingKey, op.arguments);
            break;
          case 'bindExchange':
            t.registry.bindExchange(op.destination, op.source, op.routingKey, op.arguments);
            break;
          default:
            break;
        }
      } catch {
        // A recovered op that does not apply any more (already there, or its exchange is gone).
      }
    }
  }

  /** Writes every non-built-in exchange and exchange binding to every shard (idempotent there). */
  broadcastExchanges(write: (shard: number, op: ManageOp) => void): void {
    const t = this.#topology;
    for (let shard = 0; shard < t.shardCount; shard++) {
      for (const x of t.listExchanges()) {
        if (x.builtIn) continue;
        write(shard, declareExchangeOp(x));
      }
      for (const b of t.listBindings()) {
        if (b.destinationType !== 'exchange') continue;
        write(shard, {
          op: 'bindExchange',
          destination: b.destination,
          source: b.source,
          routingKey: b.routingKey,
          arguments: { ...b.arguments },
        });
      }
    }
  }

  async #broadcastDeletes(exchanges: readonly string[]): Promise<void> {
    for (const name of exchanges) check(await this.#calls.broadcast({ op: 'deleteExchange', name }));
  }
}

/** What a shard is told to replay an exchange (a copy of its arguments: the op may outlive them). */
function declareExchangeOp(x: ExchangeInfo): ManageOp {
  return {
    op: 'declareExchange',
    name: x.name,
    type: x.type,
    durable: x.durable,
    autoDelete: false,
    internal: x.internal,
    arguments: { ...x.arguments },
  };
}

function declareOp(q: QueueMeta): ManageOp {
  return {
    op: 'declareQueue',
    name: q.name,
    durable: q.durable,
    exclusive: q.exclusive,
    autoDelete: q.autoDelete,
    arguments: q.arguments as Record<string, unknown>,
  };
}

function check(answer: ManageAnswer): void {
  if (!answer.ok) throw BrokerError.from(answer.result.code ?? 'internal', answer.result.message ?? 'shard refused the operation');
}

/**
 * A binding reads from its source exchange (RabbitMQ: read permission), so it takes the right to
 * subscribe to `/exchange/<source>/<key>`; without that a manager could widen its own reach.
 */
function mayRead(principal: Principal, exchange: string, routingKey: string): void {
  const destination = bindingDestination(exchange, routingKey);
  if (!principal.canSubscribe(destination)) {
    throw new BrokerError(ErrorCode.accessRefused, `user ${principal.name} may not bind from ${destination}`);
  }
}
