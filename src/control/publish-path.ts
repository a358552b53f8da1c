/**
 * The main thread's half of publishing, shared by HTTP, JSON and binary WebSocket:
 * resolve a destination to an exchange and routing key, find the shards that own a
 * queue the message can reach, and write it once into each of their rings.
 */
import { qualify } from '../protocol/vhost-name.js';
import { DestinationError, DestinationType, formatDestination, parseDestination, type Destination } from '../protocol/destination.js';
import { NO_TOKEN, PUBLISH_FLAG_DEAD_LETTERED } from '../protocol/ring-record-codec.js';
import { BrokerError, ErrorCode } from '../protocol/errors.js';
import { withBrokerErrors } from './router-errors.js';
import { REMOTE_SHARD } from '../shard/shard-handle.js';
import type { ShardHandle } from '../shard/shard-handle.js';
import type { Logger } from '../log/logger.js';
import type { Principal } from './auth.js';
import { isDefaultExchange } from '../router/exchange-registry.js';
import { describeIn, type VhostScope } from '../protocol/vhost-name.js';
import type { QueueMeta, Topology } from './topology.js';

/** What publishing needs of a shard's handle (a fake in tests). */
export type ShardWriter = Pick<ShardHandle, 'publish' | 'writeControl' | 'whenRoom' | 'holding'>;

export interface PublishTarget {
  readonly exchange: string;
  readonly routingKey: string;
  readonly shards: readonly number[];
  /** The publisher must wait for the shards' confirms (durable or refusing queues). */
  readonly confirmFromShard: boolean;
  /**
   * In a cluster: the exchange the message also goes out on to the other nodes (the one it was
   * published to, before any alternate exchange); null when it stays on this node (no cluster,
   * the default exchange, or a message that came from another node).
   */
  readonly forward: string | null;
  /** In a cluster: the node that holds the `/queue/` this message is for, when it is not this one. */
  readonly remote?: string;
  /**
   * How the ring record names `exchange`: its vhost's number and its local name (a vhost's message
   * then carries the bytes `/`'s does: protocol/vhost-numbers.ts), or 0 and `exchange` whole.
   */
  readonly vhostNumber: number;
  readonly ringExchange: string;
  /** PUBLISH_FLAG_* bits every copy carries (PUBLISH_FLAG_LIGHT: a light subscription's carrier is among the targets). */
  readonly flags: number;
}

/** A target on another node of the cluster: nothing goes into a local ring. */
function remoteTarget(exchange: string, routingKey: string, remote: string): PublishTarget {
  return {
    exchange,
    routingKey,
    shards: [],
    confirmFromShard: false,
    forward: null,
    remote,
    vhostNumber: 0,
    ringExchange: exchange,
    flags: 0,
  };
}

/**
 * The other nodes of a cluster, as publishing sees them (cluster/ implements it; control/ does
 * not import it). `forward` takes a message once, when its local copies are in, and copies it.
 */
export interface ClusterForward {
  forward(exchange: string, routingKey: string, properties: Uint8Array | null, payload: Uint8Array): void;
  /**
   * The other node that holds queue `name` (or, with `mayPlace`, gets it if no node has it yet);
   * null when it is, or will be, here. Throws node_unavailable (503) for a durable queue whose
   * node is out of the cluster.
   */
  queueOwner(name: string, mayPlace: boolean): string | null;
  /**
   * Sends a publish to `queue` on `node`; a `token` (not NO_TOKEN) is settled once that node has
   * it in its rings (or failed when it cannot say so: NATS or the node gone, its buffer full).
   */
  forwardToQueue(node: string, queue: string, properties: Uint8Array | null, payload: Uint8Array, token: number): void;
}

/** Whether a publish to `target` also goes to other nodes of a cluster (an exchange's fan-out, or a queue elsewhere). */
export function crossesNodes(target: PublishTarget): boolean {
  return target.forward !== null || target.remote !== undefined;
}

/** The confirm of a publish to a queue on another node waits on this one pseudo-shard. */
const REMOTE_CONFIRM: readonly number[] = Object.freeze([REMOTE_SHARD]);

export class PublishPath {
  readonly #topology: Topology;
  readonly #shards: readonly ShardWriter[];
  readonly #durableQueues: boolean;
  readonly #log: Logger;
  /** Messages that reached no queue (AMQP drops them unless mandatory). */
  unroutable = 0;
  /** Messages taken from publishers (every target shard has its copy, or none could route it), and their payload bytes. */
  received = 0;
  receivedBytes = 0;
  /** Messages confirmed to their publishers (binary CONFIRMs, HTTP 200 `accepted`). */
  confirmed = 0;
  /** Set once the node has joined its cluster (--cluster); null on a node of its own. */
  cluster: ClusterForward | null = null;

  constructor(topology: Topology, shards: readonly ShardWriter[], durableQueues: boolean, log: Logger) {
    this.#topology = topology;
    this.#shards = shards;
    this.#durableQueues = durableQueues;
    this.#log = log;
  }

  /**
   * The preamble every publish path shares (HTTP, JSON, binary, later AMQP): parse the
   * destination, check the principal may publish there, then resolve its target.
   */
  targetFor(destinationText: string, principal: Principal): PublishTarget {
    const destination = parseOrRefuse(destinationText);
    this.authorize(destination, principal);
    return this.target(destination, principal.vhost);
  }

  /**
   * AMQP's basic.publish: an exchange and a routing key as given, no destination to parse. The
   * default exchange ('') routes to an existing queue by name and never declares one (a message
   * for a missing queue is unroutable, as in RabbitMQ); a missing exchange is 404 not_found.
   * Rights are checked on the destination the other protocols would name it by.
   */
  exchangeTarget(exchange: string, routingKey: string, principal: Principal): PublishTarget {
    const type = exchange === '' ? DestinationType.queue : DestinationType.exchange;
    const canonical = formatDestination(type, exchange, routingKey);
    const vhost = principal.vhost;
    if (!principal.canPublish(canonical)) {
      this.#log.warn({ user: principal.name, destination: canonical, vhost: vhost.name }, 'publish denied');
      throw new BrokerError(
        ErrorCode.accessRefused,
        `access to exchange '${exchange}' in vhost '${vhost.name}' refused for user '${principal.name}'`,
      );
    }
    if (vhost.overBudget) throw vhost.publishRefusal() as BrokerError;
    // qualify() refuses a separator; the memo keeps the qualified name flat and reused.
    const exchangeName = vhost.names.of(qualify('', exchange));
    if (exchange === '' && this.cluster !== null) {
      // The default exchange routes to a queue by name, wherever in the cluster it lives.
      const queue = qualify(vhost.prefix, routingKey);
      const remote = this.cluster.queueOwner(queue, false);
      if (remote !== null) return remoteTarget(exchangeName, queue, remote);
    }
    return this.#routed(exchangeName, exchange, routingKey, vhost.number, this.#forwardOf(exchangeName));
  }

  /**
   * Refuses (403 access_refused, and a warn line) a publish `principal` may not make, and (406) one
   * to a vhost over its max-queued-bytes.
   */
  authorize(destination: Destination, principal: Principal): void {
    const canonical = formatDestination(destination.type, destination.exchange, destination.name);
    if (!principal.canPublish(canonical)) {
      this.#log.warn({ user: principal.name, destination: canonical, vhost: principal.vhost.name }, 'publish denied');
      throw new BrokerError(ErrorCode.accessRefused, `user ${principal.name} may not publish to ${canonical}`);
    }
    if (principal.vhost.overBudget) throw principal.vhost.publishRefusal() as BrokerError;
  }

  /**
   * Where a message for `destination` (as the clients of `vhost` name it) goes. A `/queue/`
   * destination declares its queue on first use: the declaration is written to the queue's shard
   * ahead of the message, so the shard has the queue before it reads the publish (same ring,
   * same order). A `/queue/` message goes by the vhost's default exchange (its prefix), with the
   * queue's own name as routing key.
   */
  target(destination: Destination, vhost: VhostScope): PublishTarget {
    const prefix = vhost.prefix;
    if (destination.type === DestinationType.queue) {
      // A parsed destination holds no control character (parseDestination), so no separator.
      const queue = vhost.names.of(destination.name);
      if (this.cluster !== null) {
        const remote = this.cluster.queueOwner(queue, destination.declare);
        if (remote !== null) return remoteTarget(prefix, queue, remote);
      }
      let meta = this.#topology.getQueue(queue);
      if (meta === undefined) {
        // `/amq/queue/<name>` names a queue that must exist (RabbitMQ's STOMP adapter refuses it
        // too); routing it by the default exchange would drop it silently as unroutable.
        if (!destination.declare) throw new BrokerError(ErrorCode.notFound, `no ${describeIn('queue', queue)}`);
        meta = this.#declareDefault(queue);
      }
      // What the default exchange would answer (the queue's shard, its confirm rule), read from the
      // queue found above instead of a second lookup by name: the vhost's default exchange is its
      // prefix, and the shard resolves prefix + key again on its side.
      return {
        exchange: prefix,
        routingKey: destination.name,
        shards: this.#topology.oneShard(meta.shard),
        confirmFromShard: meta.confirmFromShard,
        forward: null,
        vhostNumber: vhost.number,
        ringExchange: vhost.number === 0 ? prefix : '',
        flags: 0,
      };
    }
    const exchange = vhost.names.of(destination.exchange);
    return this.#routed(exchange, destination.exchange, destination.name, vhost.number, this.#forwardOf(exchange));
  }

  /**
   * The target of a message to `exchange` (qualified; `local` as its vhost names it, `vhostNumber`
   * that vhost's number): routed by the topology, and named in the ring by number and local name
   * unless it was routed on to another exchange (an alternate exchange: rare, so that one goes by
   * its whole name). Throws a BrokerError for an exchange that does not exist.
   */
  #routed(exchange: string, local: string, routingKey: string, vhostNumber: number, forward: string | null): PublishTarget {
    const routed = withBrokerErrors(() => this.#topology.route(exchange, routingKey));
    const numbered = vhostNumber !== 0 && routed.exchange === exchange;
    return {
      exchange: routed.exchange,
      routingKey,
      shards: routed.shards,
      confirmFromShard: routed.confirmFromShard,
      forward,
      vhostNumber: numbered ? vhostNumber : 0,
      ringExchange: numbered ? local : routed.exchange,
      flags: routed.flags,
    };
  }

  /**
   * Where a message from another node goes here: this node's queues bound to `exchange` only,
   * never back out to the cluster. Null when this node does not know the exchange.
   */
  localTarget(exchange: string, routingKey: string): PublishTarget | null {
    try {
      // From another node: the whole (qualified) name, no vhost number.
      return this.#routed(exchange, exchange, routingKey, 0, null);
    } catch {
      return null;
    }
  }

  /** Messages to an exchange cross to the other nodes; the default exchange's (queues) do not. */
  #forwardOf(exchange: string): string | null {
    return this.cluster !== null && !isDefaultExchange(exchange) ? exchange : null;
  }

  /** Declares a `/queue/` destination's queue (qualified name) if it does not exist yet; returns its shard. */
  ensureQueue(name: string): number {
    return (this.#topology.getQueue(name) ?? this.#declareDefault(name)).shard;
  }

  /** Declares queue `name` (qualified) with a destination's defaults, here and on its shard. */
  #declareDefault(name: string): QueueMeta {
    const created = withBrokerErrors(() =>
      this.#topology.declareQueue(name, { durable: this.#durableQueues, exclusive: false, autoDelete: false, arguments: {} }, false, 0),
    );
    const q = created.queue;
    this.#shards[q.shard].writeControl((w) =>
      w.manage(0, NO_TOKEN, { op: 'declareQueue', name: q.name, durable: q.durable, exclusive: false, autoDelete: false, arguments: {} }),
    );
    return q;
  }

  /**
   * Writes one message into every target shard's ring (one copy each), or into a shard's
   * bounded overflow while its ring is full, starting at `target.shards[fromShard]` (the ones
   * before took it already). Returns how far it got: fewer than `target.shards.length` means that
   * shard's overflow was at its bound (wait for room, or refuse: 503). `credited` publishes (WebSocket,
   * within their publish credit) are never refused for room: the credit bounds them.
   */
  write(
    target: PublishTarget,
    connectionId: number,
    token: number,
    properties: Uint8Array | null,
    payload: Uint8Array,
    flags = 0,
    fromShard = 0,
    credited = false,
  ): number {
    const { shards } = target;
    if (target.remote !== undefined && this.cluster !== null) {
      this.cluster.forwardToQueue(target.remote, target.routingKey, properties, payload, token);
      this.received++;
      this.receivedBytes += payload.byteLength;
      return 0;
    }
    if (shards.length === 0) {
      // Routed nowhere here; in a cluster it may be routed on another node (NATS knows which).
      if (target.forward !== null && this.cluster !== null) this.cluster.forward(target.forward, target.routingKey, properties, payload);
      else this.unroutable++;
      this.received++;
      this.receivedBytes += payload.byteLength;
      return 0;
    }
    if (this.overMemory) return fromShard;
    let written = fromShard;
    for (let i = fromShard; i < shards.length; i++) {
      const shard = this.#shards[shards[i]];
      if (
        !shard.publish(
          connectionId,
          token,
          target.ringExchange,
          target.routingKey,
          properties,
          payload,
          flags | target.flags,
          credited,
          target.vhostNumber,
        )
      )
        break;
      written++;
    }
    // Counted once, when its last copy is in (a refused part is retried from where it stopped).
    if (written === shards.length) {
      this.received++;
      this.receivedBytes += payload.byteLength;
      if (target.forward !== null && this.cluster !== null) this.cluster.forward(target.forward, target.routingKey, properties, payload);
    }
    return written;
  }

  /**
   * Whether a publisher's confirm must wait for a token: a shard must answer (durable or refusing
   * queues, or publishes held in main-thread memory), or the queue's node, for a queue elsewhere.
   */
  wantsConfirm(target: PublishTarget): boolean {
    if (target.remote !== undefined) return true;
    return target.shards.length > 0 && (target.confirmFromShard || this.held(target));
  }

  /** What a confirm token for `target` waits on (ConfirmTracker.allocate). */
  confirmShards(target: PublishTarget): readonly number[] {
    return target.remote !== undefined ? REMOTE_CONFIRM : target.shards;
  }

  /** True when a target shard holds publishes (ring full or flow control): a confirm must then come from the shard. */
  held(target: PublishTarget): boolean {
    for (const s of target.shards) if (this.#shards[s].holding) return true;
    return false;
  }

  /**
   * After `write` stopped at `target.shards[index]` (its overflow at its bound): resolves true once
   * that shard has room again, false after `timeoutMs` or at once above the memory high-watermark
   * (waiting would not help). The caller then goes on from that shard, or refuses with what it took.
   */
  waitForRoom(target: PublishTarget, index: number, timeoutMs: number): Promise<boolean> {
    if (this.overMemory) return Promise.resolve(false);
    return this.#shards[target.shards[index]].whenRoom(timeoutMs);
  }

  /**
   * A dead-lettered copy a shard sent back: routed like a publish, since its dead-letter
   * exchange's queues may live on any shard. Written through the control backlog, so a full
   * ring delays it instead of dropping it. `properties` and `payload` must be owned copies.
   */
  republishDeadLetter(exchange: string, routingKey: string, properties: Uint8Array | null, payload: Uint8Array): void {
    let shards: readonly number[];
    let flags = PUBLISH_FLAG_DEAD_LETTERED;
    try {
      const routed = this.#topology.route(exchange, routingKey);
      shards = routed.shards;
      flags |= routed.flags;
    } catch {
      // The dead-letter exchange does not exist: RabbitMQ drops the message too.
      this.unroutable++;
      return;
    }
    if (shards.length === 0) {
      this.unroutable++;
      return;
    }
    for (const s of shards) {
      this.#shards[s].writeControl((w) => w.publish(0, NO_TOKEN, exchange, routingKey, properties, payload, flags));
    }
  }

  /** Set by the memory guard: above the high-watermark every publish is refused. */
  overMemory = false;
}

/** A destination, or the 400 `bad_destination` that says what is wrong with it. */
export function parseOrRefuse(text: string): Destination {
  try {
    return parseDestination(text);
  } catch (err) {
    if (err instanceof DestinationError) throw new BrokerError(ErrorCode.badDestination, err.message);
    throw err;
  }
}
