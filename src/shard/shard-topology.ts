import { MessageQueue } from '../queue/message-queue.js';
import { MessageGauges } from '../queue/message-gauges.js';
import type { ExpiryScheduler } from '../queue/expiry-scheduler.js';
import { NO_QUEUE_ARGUMENTS, parseQueueArguments, QueueArgumentError, type QueueArguments } from '../queue/queue-arguments.js';
import { StreamOffsetError } from '../stream/offset-spec.js';
import { streamArgumentsOf } from '../stream/stream-arguments.js';
import type { DeliverFn } from '../queue/types.js';
import { ExchangeRegistry, RouterError } from '../router/exchange-registry.js';
import { CARRIER_ARG, NO_TOKEN, type ManageOp, type ManageResult, type StreamOp } from '../protocol/ring-record-codec.js';
import { CounterSlot } from '../metrics/shard-counters.js';
import type { LocalQueue } from './local-queue.js';
import type { ReplayTarget, ShardDurability } from './shard-durability.js';
import type { ShardOutbound } from './shard-outbound.js';
import type { ShardSubscriptions } from './shard-subscriptions.js';
import { topicBufferOf, type ShardFlow } from './shard-flow.js';
import { packFigures } from './queue-figures.js';
import { ShardStreams } from './shard-streams.js';
import type { StreamStore } from '../store/stream-store.js';
import { describeIn } from '../protocol/vhost-name.js';

/** How often idle queues (x-expires) are looked for. */
const IDLE_SWEEP_MS = 1000;
/** Distinct queue argument tables a shard keeps shared (see #argumentTables). */
const ARGUMENT_TABLES_MAX = 256;

/** A queue snapshot for /v1/stats and the management API. */
export interface QueueStats {
  readonly name: string;
  readonly depth: number;
  readonly consumers: number;
  readonly unacked: number;
  readonly readyBytes: number;
  readonly durable: boolean;
  readonly exclusive: boolean;
  readonly autoDelete: boolean;
  readonly arguments: Record<string, unknown>;
  readonly stats: Readonly<Record<string, number>>;
}

/** The parts of the shard the topology works with. */
export interface ShardTopologyParts {
  readonly index: number;
  /** The clock (ms), for TTLs and idle queues. */
  readonly now: () => number;
  readonly counters: Float64Array;
  /** What every queue of the shard delivers with and takes its delivery tags from (ShardCore's). */
  readonly deliver: DeliverFn;
  readonly allocateTag: () => number;
  /** The shard's one TTL wheel, which every queue reports its next expiry to. */
  readonly expiry: ExpiryScheduler;
  readonly outbound: ShardOutbound;
  readonly subscriptions: ShardSubscriptions;
  readonly durability: ShardDurability;
  /** Streams on disk (--data-dir); null: streams are held in memory. */
  readonly streamStore?: StreamStore | null;
  readonly flow: ShardFlow;
}

/**
 * The shard's queues (with their arguments) and its copy of the exchanges and of the bindings
 * into its queues: the manage ops that change them, and the deletions the shard decides on its
 * own (auto-delete, x-expires).
 */
export class ShardTopology implements ReplayTarget {
  readonly #now: () => number;
  readonly #counters: Float64Array;
  readonly #deliver: DeliverFn;
  readonly #allocateTag: () => number;
  readonly #expiry: ExpiryScheduler;
  readonly #outbound: ShardOutbound;
  readonly #subscriptions: ShardSubscriptions;
  readonly #durability: ShardDurability;
  readonly #flow: ShardFlow;
  readonly #queues = new Map<string, LocalQueue>();
  /** Queues declared with x-expires: the idle sweep looks at these, not at every queue. */
  readonly #expiring = new Set<LocalQueue>();
  /**
   * Argument tables seen in declares, by their JSON, with their parse: every private topic queue
   * (one per wildcard subscription) is declared with the same table, and each decoded its own copy
   * and parse (~250 bytes a queue). Bounded: cleared when full.
   */
  readonly #argumentTables = new Map<string, { raw: Record<string, unknown>; parsed: QueueArguments }>();
  readonly #gauges = new MessageGauges();
  /**
   * Carrier queues of light subscriptions (control/light-routes.ts) by the exchange they carry,
   * each with the one-element target list a publish flagged light and routed nowhere else takes.
   */
  readonly #carriers = new Map<string, { queue: MessageQueue; alone: readonly MessageQueue[] }>();
  readonly #registry: ExchangeRegistry<string, MessageQueue>;
  #idleTimer: NodeJS.Timeout | null = null;
  /** The stream queues among #queues (x-queue-type: stream). */
  readonly streams: ShardStreams;

  constructor(parts: ShardTopologyParts) {
    this.streams = new ShardStreams(parts.now, parts.outbound, parts.streamStore ?? null);
    this.#now = parts.now;
    this.#counters = parts.counters;
    this.#deliver = parts.deliver;
    this.#allocateTag = parts.allocateTag;
    this.#expiry = parts.expiry;
    this.#outbound = parts.outbound;
    this.#subscriptions = parts.subscriptions;
    this.#durability = parts.durability;
    this.#flow = parts.flow;
    const { index } = parts;
    this.#registry = new ExchangeRegistry<string, MessageQueue>({
      queueKey: (name) => name,
      routeTarget: (name) => {
        const local = this.#queues.get(name);
        if (local === undefined) throw new Error(`shard ${index}: binding to unknown queue ${name}`);
        return local.queue;
      },
      defaultExchangeTarget: (name) => this.#queues.get(name)?.queue,
    });
  }

  /** The queues by name; the publish path and the TTL timer read them directly. */
  get queues(): ReadonlyMap<string, LocalQueue> {
    return this.#queues;
  }

  /** Exchanges and bindings; the publish path routes with it directly. */
  get registry(): ExchangeRegistry<string, MessageQueue> {
    return this.#registry;
  }

  queue(name: string): LocalQueue | undefined {
    return this.#queues.get(name);
  }

  /**
   * Applies a topology snapshot before the shard reads its ring (a restart): queues must exist
   * before the publishes that waited in the ring for them are routed. Returns refused ops.
   */
  apply(ops: readonly ManageOp[]): Array<{ op: ManageOp; error: string }> {
    const refused: Array<{ op: ManageOp; error: string }> = [];
    for (const op of ops) {
      try {
        this.manage(op);
      } catch (err) {
        refused.push({ op, error: (err as Error).message });
      }
    }
    return refused;
  }

  /** A manage record: the op is applied and, when the sender waits for it, answered. */
  processManage(connectionId: number, token: number, op: ManageOp): void {
    let result: ManageResult = {};
    let status = 0;
    try {
      result = this.manage(op);
    } catch (err) {
      if (!(err instanceof RouterError) && !(err instanceof QueueArgumentError) && !(err instanceof ManageError)) throw err;
      status = 1;
      result = { code: (err as { code: string }).code, message: err.message };
    }
    if (token !== NO_TOKEN) this.#outbound.manageReply(connectionId, token, status, result);
  }

  /** Applies one op; throws what the op's sender should be told (RouterError, QueueArgumentError, ManageError). */
  manage(op: ManageOp): ManageResult {
    const reg = this.#registry;
    switch (op.op) {
      case 'declareQueue': {
        const existing = this.#queues.get(op.name);
        if (existing !== undefined) {
          // A redeclare counts as use: it renews an x-expires lease, as in RabbitMQ.
          existing.queue.markUsed();
          return { messageCount: this.#depth(existing.queue), consumerCount: existing.queue.consumerCount };
        }
        const streamArgs = streamArgumentsOf(op.arguments, op.name, op);
        const { raw, parsed: args } =
          streamArgs !== null ? { raw: op.arguments, parsed: NO_QUEUE_ARGUMENTS } : this.#sharedArguments(op.arguments, op.name);
        const queue = new MessageQueue(op.name, this.#deliver, this.#allocateTag, {
          arguments: args,
          now: this.#now,
          onDeadLetter: this.#outbound.onDeadLetter,
          scheduleExpiry: this.#expiry.schedule,
          onRemoved: this.#durability.removalHook(op.name),
          gauges: this.#gauges,
        });
        // A stream is always durable (on disk under --data-dir, as RabbitMQ's): its declaration is logged.
        const durable = (op.durable && !op.exclusive) || streamArgs !== null;
        if (durable) this.#durability.log(op);
        if (streamArgs !== null) this.streams.declare(queue, streamArgs);
        const topicBuffer = streamArgs !== null ? null : topicBufferOf(queue, op.exclusive, op.autoDelete, raw);
        if (topicBuffer !== null) this.#flow.register(topicBuffer);
        const local: LocalQueue = {
          queue,
          durable,
          exclusive: op.exclusive,
          autoDelete: op.autoDelete,
          arguments: raw,
          hadConsumer: false,
          topicBuffer,
        };
        this.#queues.set(op.name, local);
        this.#counters[CounterSlot.queues] = this.#queues.size;
        const carries = raw[CARRIER_ARG];
        if (typeof carries === 'string') this.#carriers.set(carries, { queue, alone: Object.freeze([queue]) });
        if (args.expires !== undefined) {
          this.#expiring.add(local);
          this.#startIdleSweep();
        }
        return { messageCount: 0, consumerCount: 0 };
      }
      case 'deleteQueue': {
        const local = this.#queues.get(op.name);
        if (local === undefined) return { messageCount: 0 };
        if (op.ifUnused && local.queue.consumerCount > 0) {
          throw new ManageError('precondition_failed', `${describeIn('queue', op.name)} in use`);
        }
        if (op.ifEmpty && this.#depth(local.queue) > 0) {
          throw new ManageError('precondition_failed', `${describeIn('queue', op.name)} is not empty`);
        }
        if (local.durable) this.#durability.log(op);
        return { messageCount: this.#deleteQueue(local, 'queue deleted') };
      }
      case 'purgeQueue': {
        const local = this.#queues.get(op.name);
        if (local === undefined) throw new ManageError('not_found', `no ${describeIn('queue', op.name)}`);
        if (this.streams.isStream(op.name)) {
          // As RabbitMQ: a stream is a log, trimmed only by its retention.
          throw new ManageError(
            'unsupported',
            `queue.purge is not supported by stream ${describeIn('queue', op.name)} (retention trims a stream)`,
          );
        }
        return { messageCount: local.queue.purge() };
      }
      case 'declareExchange':
        if (
          reg.declareExchange(op.name, op.type, {
            durable: op.durable,
            autoDelete: op.autoDelete,
            internal: op.internal,
            arguments: op.arguments,
          }).created &&
          op.durable
        ) {
          this.#durability.log(op);
        }
        return {};
      case 'deleteExchange':
        if (reg.deleteExchange(op.name).deleted) this.#durability.log(op);
        return {};
      case 'bindQueue': {
        const local = this.#queues.get(op.queue);
        if (local === undefined) throw new ManageError('not_found', `no ${describeIn('queue', op.queue)}`);
        if (reg.bindQueue(op.exchange, op.queue, op.routingKey, op.arguments) && local.durable) this.#durability.log(op);
        return {};
      }
      case 'unbindQueue':
        reg.unbindQueue(op.exchange, op.queue, op.routingKey, op.arguments);
        if (this.#queues.get(op.queue)?.durable === true) this.#durability.log(op);
        return {};
      case 'bindExchange':
        if (reg.bindExchange(op.destination, op.source, op.routingKey, op.arguments)) this.#durability.log(op);
        return {};
      case 'unbindExchange':
        reg.unbindExchange(op.destination, op.source, op.routingKey, op.arguments);
        this.#durability.log(op);
        return {};
    }
  }

  /** A streamInfo / streamRead / streamCommit record: answered with the stream's figures, entries or {}, or an error. */
  processStream(connectionId: number, token: number, op: StreamOp): void {
    let result: ManageResult;
    let status = 0;
    try {
      const answer =
        op.op === 'streamInfo'
          ? this.streams.info(op.queue)
          : op.op === 'streamRead'
            ? this.streams.read(op.queue, op.offset, op.limit)
            : this.streams.commit(op.queue, op.name, op.offset);
      if (answer === null) {
        throw new ManageError(
          this.#queues.has(op.queue) ? 'precondition_failed' : 'not_found',
          this.#queues.has(op.queue) ? `${describeIn('queue', op.queue)} is not a stream` : `no ${describeIn('queue', op.queue)}`,
        );
      }
      if (answer instanceof Promise) {
        // A read of a stream on disk waits for its chunk; the reply goes when it is in.
        answer.then((a) => {
          this.#outbound.manageReply(connectionId, token, 0, { stream: a as unknown as Record<string, unknown> });
          this.#outbound.commit();
        });
        return;
      }
      result = { stream: answer as unknown as Record<string, unknown> };
    } catch (err) {
      if (!(err instanceof ManageError) && !(err instanceof StreamOffsetError)) throw err;
      status = 1;
      result = { code: err.code, message: err.message };
    }
    this.#outbound.manageReply(connectionId, token, status, result);
  }

  /** Messages a queue holds: a stream's entries, a classic queue's ready messages. */
  #depth(queue: MessageQueue): number {
    return this.streams.depthOf(queue) ?? queue.depth;
  }

  /**
   * `targets` (what `exchange` routed a publish to) with the exchange's carrier queue added: the
   * main thread flagged the publish because a light subscription's pattern matches it.
   */
  withCarrier(targets: readonly MessageQueue[], exchange: string): readonly MessageQueue[] {
    const carrier = this.#carriers.get(exchange);
    if (carrier === undefined || targets.includes(carrier.queue)) return targets;
    return targets.length === 0 ? carrier.alone : targets.concat(carrier.queue);
  }

  /** Auto-delete: a queue that had consumers and has none left goes. */
  autoDeleteIfUnused(local: LocalQueue): boolean {
    if (!local.autoDelete || !local.hadConsumer || local.queue.consumerCount > 0) return false;
    this.#deleteQueueOnOwnAccord(local, 'auto-delete queue lost its last consumer');
    return true;
  }

  /** Removes a queue: its consumers are cancelled (they get an error), its messages dropped. */
  #deleteQueue(local: LocalQueue, reason: string): number {
    const { queue } = local;
    const held = queue.depth + this.streams.delete(queue);
    this.#subscriptions.cancelConsumersOf(local, reason);
    this.#counters[CounterSlot.dropped] += queue.depth + queue.unackedCount;
    queue.detachGauges();
    this.#durability.forgetQueue(queue);
    this.#queues.delete(queue.name);
    this.#expiring.delete(local);
    this.#registry.removeQueue(queue.name);
    const carries = local.arguments[CARRIER_ARG];
    if (typeof carries === 'string' && this.#carriers.get(carries)?.queue === queue) this.#carriers.delete(carries);
    this.#expiry.forget(queue);
    this.#outbound.forget(queue);
    this.#flow.forget(queue);
    this.#counters[CounterSlot.queues] = this.#queues.size;
    return held;
  }

  /** Deletes a queue the shard decided to delete (auto-delete, x-expires) and tells the main thread. */
  #deleteQueueOnOwnAccord(local: LocalQueue, reason: string): void {
    this.#deleteQueue(local, reason);
    this.#outbound.manageReply(0, NO_TOKEN, 0, { event: 'queueDeleted', queue: local.queue.name });
  }

  #startIdleSweep(): void {
    if (this.#idleTimer !== null) return;
    this.#idleTimer = setInterval(() => {
      const now = this.#now();
      for (const local of [...this.#expiring]) {
        if (local.queue.idleDeadline() <= now) this.#deleteQueueOnOwnAccord(local, 'queue expired (x-expires)');
      }
      this.#outbound.commit();
    }, IDLE_SWEEP_MS);
    this.#idleTimer.unref?.();
  }

  stopIdleSweep(): void {
    this.streams.stop();
    if (this.#idleTimer !== null) clearInterval(this.#idleTimer);
    this.#idleTimer = null;
  }

  /** One shared (raw, parsed) pair per distinct argument table; throws QueueArgumentError as parsing does. */
  #sharedArguments(args: Record<string, unknown>, queueName: string): { raw: Record<string, unknown>; parsed: QueueArguments } {
    const key = JSON.stringify(args);
    const known = this.#argumentTables.get(key);
    if (known !== undefined) return known;
    const entry = { raw: args, parsed: parseQueueArguments(args, queueName) };
    if (this.#argumentTables.size >= ARGUMENT_TABLES_MAX) this.#argumentTables.clear();
    this.#argumentTables.set(key, entry);
    return entry;
  }

  /** Publishes the ready/unacked totals to the shared counters (kept as messages move: no walk). */
  refreshMessageGauges(): void {
    this.#counters[CounterSlot.ready] = this.#gauges.ready;
    this.#counters[CounterSlot.unacked] = this.#gauges.unacked;
  }

  /** Messages held in memory (ready + unacked): what a crash would lose. */
  heldMessages(): number {
    return this.#gauges.ready + this.#gauges.unacked;
  }

  /** Snapshots of every queue, in the shard's order. */
  queueStats(): QueueStats[] {
    const out: QueueStats[] = [];
    for (const local of this.#queues.values()) {
      const s = snapshot(local);
      const depth = this.streams.depthOf(local.queue);
      out.push(depth === undefined ? s : { ...s, depth });
    }
    return out;
  }

  /** The figures of the queues in `names` (a management page), packed: see queue-figures.ts. */
  queueFigures(names: readonly string[]): Float64Array<ArrayBuffer> {
    return packFigures(names, (name) => {
      const queue = this.#queues.get(name)?.queue;
      return queue !== undefined && this.streams.isStream(name) ? this.streams.figures(queue) : queue;
    });
  }
}

function snapshot(local: LocalQueue): QueueStats {
  const q = local.queue;
  return {
    name: q.name,
    depth: q.depth,
    consumers: q.consumerCount,
    unacked: q.unackedCount,
    readyBytes: q.readyBytes,
    durable: local.durable,
    exclusive: local.exclusive,
    autoDelete: local.autoDelete,
    arguments: local.arguments,
    stats: { ...q.stats },
  };
}

/** A topology operation the shard refuses (AMQP reply name as `code`). */
class ManageError extends Error {
  override readonly name = 'ManageError';
  readonly code: string;

  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}
