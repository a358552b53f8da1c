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

export interface StoredMessage {
  /** Shard-wide publish order, increasing. A queue keeps its ready messages sorted by it. */
  readonly seq: number;
  readonly routingKey: string;
  /** Owned copy: the queue keeps it for as long as the message lives. */
  readonly payload: Uint8Array;
  /** True once the message went back to the queue after a delivery (AMQP `redelivered`). */
  redelivered: boolean;
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
}

/**
 * Writes one delivery out (to the shard's outbound ring). Returns false when there is no room
 * right now: the queue then keeps the message at its position and stops dispatching until
 * dispatch() is called again. Must not call back into the queue (the queue is mid-update).
 */
export type DeliverFn = (consumer: Consumer, message: StoredMessage, tag: number) => boolean;

/** Running totals for metrics; plain field increments on the hot path. */
export interface QueueStats {
  /** Successful deliveries, both ack modes, including direct (fast path) ones. */
  delivered: number;
  acked: number;
  /** Messages put back into the ready list (reject/nack with requeue, consumer or connection gone). */
  requeued: number;
  /** Messages rejected without requeue (handed back to the caller, e.g. for dead-lettering). */
  dropped: number;
  /** Oldest ready messages dropped by dropHead() (a length limit with drop-head overflow). */
  overflowed: number;
  purged: number;
}
