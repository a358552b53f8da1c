/**
 * Types shared by the queue module and its caller (the shard loop).
 * Single-threaded: a queue lives on exactly one shard thread.
 */

/**
 * How a consumer acknowledges. `auto` = done on send (AMQP `no-ack`), so nothing is tracked;
 * `client` = tracked by delivery tag until ack or reject.
 */
export const AckMode = {
  Auto: 'auto',
  Client: 'client',
} as const;
export type AckMode = (typeof AckMode)[keyof typeof AckMode];

// AMQP basic properties are defined once, with their wire encoding; a queue treats them as
// immutable (code that changes them builds a new object).
export type { MessageProperties } from '../protocol/properties.js';
export type { HeaderValue } from '../protocol/field-table.js';
import type { MessageProperties } from '../protocol/properties.js';

export interface StoredMessage {
  /** Shard-wide publish order, increasing. A queue keeps its ready messages sorted by it. */
  readonly seq: number;
  readonly routingKey: string;
  /** Owned copy: the queue keeps it for as long as the message lives. */
  readonly payload: Uint8Array;
  /** The exchange it was published to; '' for the default exchange. */
  readonly exchange: string;
  /**
   * Its properties, or null when it has none. One properties object may be shared by the copies
   * of a message routed to several queues, so nobody edits it in place: a queue that must change
   * a header (x-delivery-count) replaces the object with a changed copy.
   */
  properties: MessageProperties | null;
  /**
   * When it expires (absolute ms, the queue's clock); Infinity when never. Computed by the queue
   * at enqueue from `properties.expiration` and the queue's x-message-ttl (the lower wins), and
   * kept as is through requeues. Callers creating a message set Infinity.
   */
  expiresAt: number;
  /** True once the message went back to the queue after a delivery (AMQP `redelivered`). */
  redelivered: boolean;
  /** Written to the shard's log: its removal must be logged too. Set by the shard. */
  persisted?: boolean;
  /**
   * Deliveries so far. The queue increments it just before calling DeliverFn, so the writer
   * sees 1 on the first delivery (and it is rolled back if the write fails).
   */
  deliveryCount: number;
}

export interface Consumer {
  readonly connectionId: number;
  readonly subscriptionId: number;
  readonly ackMode: AckMode;
  /** Max unacked deliveries for client-ack consumers; 0 = unlimited; ignored for auto-ack (as in AMQP). */
  readonly prefetch: number;
  /** Unacked deliveries of this consumer. Maintained by the queue; do not write. */
  unacked: number;
  /**
   * Flow-control window from the front end: deliveries allowed before more credit is granted;
   * Infinity = none. Decremented by the queue on every delivery, in both ack modes. The owner
   * raises it and then calls dispatch().
   */
  credit: number;
  /** The same window in payload bytes (Infinity = none); a delivery may overdraw it once. */
  creditBytes: number;
  /** AMQP basic.consume `exclusive`: the queue's only consumer while it lasts. */
  readonly exclusive?: boolean;
  /** AMQP basic.get's consumer: never dispatched to, and no other consumer's rival. */
  readonly get?: boolean;
}

/**
 * Writes one delivery out (to the shard's outbound ring). Returns false when there is no room
 * right now: the queue then keeps the message at its position and stops dispatching until
 * dispatch() is called again. Must not call back into the queue (the queue is mid-update).
 */
export type DeliverFn = (consumer: Consumer, message: StoredMessage, tag: number) => boolean;

/** Running totals for metrics; plain field increments on the hot path. */
export interface QueueStats {
  /** Messages the queue took from publishers: queued, or delivered straight through (the dashboard's "in"). */
  published: number;
  /** Successful deliveries, both ack modes, including direct (fast path) ones. */
  delivered: number;
  acked: number;
  /** Messages put back into the ready list (reject/nack with requeue, consumer or connection gone). */
  requeued: number;
  /** Messages rejected without requeue (handed back to the caller, e.g. for dead-lettering). */
  dropped: number;
  /** Oldest ready messages dropped by dropHead() (the caller's own length limit). */
  overflowed: number;
  purged: number;
  /** Ready messages whose TTL ran out (dead-lettered or dropped). */
  expired: number;
  /** Dead-lettered copies handed to onDeadLetter, every reason (reject-publish-dlx refusals included). */
  deadLettered: number;
  /** Publishes refused by enqueue() under x-overflow reject-publish or reject-publish-dlx. */
  rejectedPublishes: number;
  /** Ready messages removed by x-max-length / x-max-length-bytes with drop-head overflow (dead-lettered or dropped). */
  maxlenDropped: number;
  /** Returned messages removed for exceeding x-delivery-limit (dead-lettered or dropped). */
  deliveryLimited: number;
}

/** QueueStats' keys in the order the management API lists them (packed replies follow it too). */
export const QUEUE_STAT_KEYS = [
  'published',
  'delivered',
  'acked',
  'requeued',
  'dropped',
  'overflowed',
  'purged',
  'expired',
  'deadLettered',
  'rejectedPublishes',
  'maxlenDropped',
  'deliveryLimited',
] as const satisfies readonly (keyof QueueStats)[];

/** Why a message was dead-lettered: the `reason` of its x-death entry, RabbitMQ's names. */
export type DeadLetterReason = 'rejected' | 'expired' | 'maxlen' | 'delivery_limit';

/** What enqueue() did with a publish: 'rejected' = refused by x-overflow reject-publish(-dlx); the publisher gets a nack. */
export type EnqueueResult = 'accepted' | 'rejected';
