/**
 * The main thread's half of publishing, shared by HTTP, JSON and binary WebSocket:
 * resolve a destination to an exchange and routing key, find the shards that own a
 * queue the message can reach, and write it once into each of their rings.
 */
import { DestinationType, type Destination } from '../protocol/destination.js';
import { NO_TOKEN } from '../protocol/ring-record-codec.js';
import { withBrokerErrors } from './router-errors.js';
import type { ShardHandle } from '../shard/shard-handle.js';
import type { Topology } from './topology.js';

export interface PublishTarget {
  readonly exchange: string;
  readonly routingKey: string;
  readonly shards: readonly number[];
  /** The publisher must wait for the shards' confirms (durable or refusing queues). */
  readonly confirmFromShard: boolean;
}

export class PublishPath {
  readonly #topology: Topology;
  readonly #shards: readonly ShardHandle[];
  readonly #durableQueues: boolean;
  /** Messages that reached no queue (AMQP drops them unless mandatory). */
  unroutable = 0;

  constructor(topology: Topology, shards: readonly ShardHandle[], durableQueues: boolean) {
    this.#topology = topology;
    this.#shards = shards;
    this.#durableQueues = durableQueues;
  }

  /**
   * Where a message for `destination` goes. A `/queue/` destination declares its queue on
   * first use: the declaration is written to the queue's shard ahead of the message, so
   * the shard has the queue before it reads the publish (same ring, same order).
   */
  target(destination: Destination): PublishTarget {
    let exchange: string;
    if (destination.type === DestinationType.queue) {
      if (destination.declare) this.ensureQueue(destination.name);
      exchange = '';
    } else {
      exchange = destination.exchange;
    }
    const { shards, confirmFromShard } = withBrokerErrors(() => this.#topology.route(exchange, destination.name));
    return { exchange, routingKey: destination.name, shards, confirmFromShard };
  }

  /** Declares a `/queue/` destination's queue if it does not exist yet; returns its shard. */
  ensureQueue(name: string): number {
    const existing = this.#topology.getQueue(name);
    if (existing !== undefined) return existing.shard;
    const created = withBrokerErrors(() =>
      this.#topology.declareQueue(name, { durable: this.#durableQueues, exclusive: false, autoDelete: false, arguments: {} }, false, 0),
    );
    const q = created.queue;
    this.#shards[q.shard].writeControl((w) =>
      w.manage(0, NO_TOKEN, { op: 'declareQueue', name: q.name, durable: q.durable, exclusive: false, autoDelete: false, arguments: {} }),
    );
    return q.shard;
  }

  /**
   * Writes one message into every target shard's ring (one copy each), or into a shard's
   * bounded overflow while its ring is full. Returns the number of shards that took it;
   * fewer than `target.shards.length` means an overflow was at its bound (refuse: 503).
   */
  write(target: PublishTarget, connectionId: number, token: number, properties: Uint8Array | null, payload: Uint8Array, flags = 0): number {
    const { shards } = target;
    if (shards.length === 0) {
      this.unroutable++;
      return 0;
    }
    if (this.overMemory) return 0;
    let written = 0;
    for (let i = 0; i < shards.length; i++) {
      if (!this.#shards[shards[i]].publish(connectionId, token, target.exchange, target.routingKey, properties, payload, flags)) break;
      written++;
    }
    return written;
  }

  /** Set by the memory guard: above the high-watermark every publish is refused. */
  overMemory = false;
}
