/**
 * Queues across the nodes of a cluster (main thread): where each lives (queue-placement.ts), the
 * announcements that keep every node's directory, consumers of queues on other nodes
 * (remote-consumers.ts here, proxy-consumers.ts there), and the bookkeeping when a node goes.
 *
 * Subjects, per node: `shardmq.n.<node>.q` publishes to its queues (forward batches),
 * `.c` control ops of consumers elsewhere (JSON), `.d` records its queues' shards sent to
 * consumers on this node. `shardmq.queues`: queue announcements.
 */
import { QueuePlacement, placeByHash, type QueueAnnouncement } from './queue-placement.js';
import { RemoteConsumers, type ControlOp } from './remote-consumers.js';
import { ProxyConsumers, forEachRemoteRecord } from './proxy-consumers.js';
import { SUBJECT_ROOT } from './subject-map.js';
import { SERVER_NAME_PREFIX, type QueueMeta, type Topology } from '../control/topology.js';
import type { PublishPath } from '../control/publish-path.js';
import { RecordReader, RecordKind } from '../protocol/ring-record-codec.js';
import { BrokerError, ErrorCode } from '../protocol/errors.js';
import { REMOTE_SHARD, type ControlPort, type OutboundSink } from '../shard/shard-handle.js';
import type { Logger } from '../log/logger.js';

export const QUEUES_SUBJECT = `${SUBJECT_ROOT}.queues`;
/** Names per announcement when a node lists all its queues (a newcomer learns them in pieces). */
const NAMES_PER_ANNOUNCEMENT = 2000;

/** Per node: `q` publishes to its queues, `c` control ops, `d` records for its consumers, `a` answers to its queue batches. */
export function nodeSubject(node: string, what: 'q' | 'c' | 'd' | 'a'): string {
  return `${SUBJECT_ROOT}.n.${node}.${what}`;
}

export interface QueueTransport {
  readonly self: string;
  publish(subject: string, data: Uint8Array): void;
  /** Names of the nodes in, this one included. */
  members(): string[];
}

export interface QueueParts {
  readonly topology: Topology;
  readonly publisher: PublishPath;
  readonly shards: () => readonly ControlPort[];
  /** Where records from other nodes' shards go (the broker, as for its own shards). */
  readonly sink: OutboundSink;
  readonly log: Logger;
}

/** Queues other nodes may use: named by a client, not exclusive to one connection. */
export function isClusterQueue(q: Pick<QueueMeta, 'name' | 'exclusive'>): boolean {
  return !q.exclusive && !q.name.startsWith(SERVER_NAME_PREFIX);
}

export class ClusterQueues {
  readonly #t: QueueTransport;
  readonly #parts: QueueParts;
  readonly placement = new QueuePlacement();
  readonly remote: RemoteConsumers;
  readonly proxies: ProxyConsumers;
  readonly #controlOut = new Map<string, ControlOp[]>();
  #added: Array<[string, boolean]> = [];
  #removed: string[] = [];
  #flushScheduled = false;
  /** Messages held by nodes that went (their last heartbeat's figure), and the queues re-homed. */
  lostWithNodes = 0;
  /** Queues this node holds that other nodes may use (kept by the observer: no walk per status). */
  ownQueues = 0;
  rehomedQueues = 0;
  movedSubscriptions = 0;

  constructor(transport: QueueTransport, parts: QueueParts) {
    this.#t = transport;
    this.#parts = parts;
    this.remote = new RemoteConsumers({ send: (node, op) => this.#send(node, op), ownerOf: (queue) => this.#ownerForConsumer(queue) });
    this.proxies = new ProxyConsumers({
      self: transport.self,
      shardOfQueue: (queue) => parts.publisher.ensureQueue(queue),
      shard: (index) => parts.shards()[index],
      shardCount: () => parts.shards().length,
      flushSoon: () => this.#flushSoon(),
    });
  }

  /** Starts announcing this node's queues (and lists those it has now). */
  attach(): void {
    const { topology } = this.#parts;
    topology.queueObserver = {
      queueAdded: (q) => {
        if (!isClusterQueue(q)) return;
        this.ownQueues++;
        this.#added.push([q.name, q.durable]);
        this.#flushSoon();
      },
      queueRemoved: (q) => {
        if (!isClusterQueue(q)) return;
        this.ownQueues--;
        this.#removed.push(q.name);
        this.#flushSoon();
      },
    };
    this.announceAll();
  }

  detach(): void {
    this.#parts.topology.queueObserver = null;
  }

  /** Lists every queue of this node (for a node that just joined), in pieces. */
  announceAll(): void {
    const all: Array<[string, boolean]> = [];
    for (const q of this.#parts.topology.listQueues()) if (isClusterQueue(q)) all.push([q.name, q.durable]);
    this.ownQueues = all.length;
    for (let i = 0; i === 0 || i < all.length; i += NAMES_PER_ANNOUNCEMENT) {
      this.#announce({ node: this.#t.self, add: all.slice(i, i + NAMES_PER_ANNOUNCEMENT), remove: [] });
    }
  }

  #announce(a: QueueAnnouncement): void {
    this.#t.publish(QUEUES_SUBJECT, Buffer.from(JSON.stringify(a)));
  }

  onAnnouncement(a: QueueAnnouncement): void {
    if (a.node === this.#t.self || !Array.isArray(a.add) || !Array.isArray(a.remove)) return;
    this.placement.apply(a);
  }

  // ---- placement -------------------------------------------------------------------------------

  /**
   * The other node that holds `name`, or null when it is (or will be) here. A queue here wins; then
   * the directory; then, with `mayPlace`, rendezvous hashing over the members.
   */
  queueOwner(name: string, mayPlace: boolean): string | null {
    const local = this.#parts.topology.getQueue(name);
    if (local !== undefined) return null;
    const placed = this.placement.get(name);
    if (placed !== undefined) {
      if (this.placement.isDown(placed.node)) {
        throw new BrokerError(
          ErrorCode.nodeUnavailable,
          `durable queue '${name}' lives on node '${placed.node}', which is out of the cluster; it is back when that node is`,
        );
      }
      return placed.node;
    }
    if (!mayPlace) return null;
    const owner = placeByHash(name, this.#t.members());
    return owner === this.#t.self || owner === '' ? null : owner;
  }

  /** Where a consumer of `queue` (already placed when it subscribed) goes now: this node's name when here. */
  #ownerForConsumer(queue: string): string {
    try {
      return this.queueOwner(queue, true) ?? this.#t.self;
    } catch {
      // Its durable queue's node is out: the subscription waits for it there.
      return this.placement.get(queue)?.node ?? this.#t.self;
    }
  }

  // ---- consumers --------------------------------------------------------------------------------

  #send(node: string, op: ControlOp): void {
    let ops = this.#controlOut.get(node);
    if (ops === undefined) this.#controlOut.set(node, (ops = []));
    ops.push(op);
    this.#flushSoon();
  }

  onControl(from: string, ops: readonly ControlOp[]): void {
    this.proxies.apply(from, ops);
  }

  /**
   * Records a queue's node sent for this node's consumers: into the front, as a shard's would go.
   * The whole batch is checked before the first record is handed out.
   */
  onRecords(data: Uint8Array): void {
    forEachRemoteRecord(data, () => undefined);
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    const reader = new RecordReader(data, view);
    const sink = this.#parts.sink;
    forEachRemoteRecord(data, (from, kind, offset, length) => {
      if (kind === RecordKind.deliver) this.remote.mapDelivery(from, view, offset);
      sink.onRecord(REMOTE_SHARD, kind, offset, length, reader);
    });
    sink.onChunkEnd(REMOTE_SHARD);
  }

  #flushSoon(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    setImmediate(() => this.flush());
  }

  /** Sends what this turn produced: announcements, control ops per node, records per node. */
  flush(): void {
    this.#flushScheduled = false;
    if (this.#added.length > 0 || this.#removed.length > 0) {
      this.#announce({ node: this.#t.self, add: this.#added, remove: this.#removed });
      this.#added = [];
      this.#removed = [];
    }
    for (const [node, ops] of this.#controlOut) {
      // A consumer of a queue here that was placed "elsewhere" and came back: no NATS round trip.
      if (node === this.#t.self) this.proxies.apply(node, ops);
      else this.#t.publish(nodeSubject(node, 'c'), Buffer.from(JSON.stringify({ from: this.#t.self, ops })));
    }
    this.#controlOut.clear();
    for (const [node, records] of this.proxies.takeOutboxes()) {
      if (node === this.#t.self) this.onRecords(records);
      else this.#t.publish(nodeSubject(node, 'd'), records);
    }
  }

  /**
   * `node` is out: its transient queues are forgotten (placed anew on next use; `held` messages it
   * had at its last heartbeat are counted lost), consumers here that used its queues move to where
   * those are now, and its consumers of queues here close (their unacked are redelivered).
   */
  nodeGone(node: string, held: number): void {
    const forgotten = this.placement.nodeGone(node);
    this.rehomedQueues += forgotten.length;
    this.lostWithNodes += held;
    const moved = this.remote.nodeGone(node);
    this.movedSubscriptions += moved;
    const closed = this.proxies.nodeGone(node);
    this.#controlOut.delete(node);
    if (forgotten.length > 0 || held > 0 || moved > 0 || closed > 0) {
      this.#parts.log.warn(
        { node, queuesRehomed: forgotten.length, messagesLost: held, subscriptionsMoved: moved, consumersClosed: closed },
        'cluster node gone: its transient queues are placed anew (what they held is lost), its consumers here are closed',
      );
    }
  }

  /** A local shard restarted: consumers of other nodes on it subscribe again. */
  shardRestarted(shard: number): void {
    this.proxies.shardRestarted(shard);
  }

  figures(): Record<string, number> {
    return {
      placed: this.placement.size,
      own: this.ownQueues,
      proxies: this.proxies.proxies,
      deliveredToOtherNodes: this.proxies.delivered,
      ...this.remote.figures,
      lostWithNodes: this.lostWithNodes,
      rehomedQueues: this.rehomedQueues,
      movedSubscriptions: this.movedSubscriptions,
    };
  }
}
