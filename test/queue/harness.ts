/** Builders shared by the queue tests: messages, consumers, and a queue whose writer records and can be "full". */
import { MessageQueue } from '../../src/queue/message-queue.js';
import type { AckMode, Consumer, StoredMessage } from '../../src/queue/types.js';

export function message(seq: number, bytes = 4): StoredMessage {
  return { seq, routingKey: `k${seq}`, payload: new Uint8Array(bytes), redelivered: false, deliveryCount: 0 };
}

export function consumer(
  connectionId: number,
  subscriptionId: number,
  options: { ackMode?: AckMode; prefetch?: number; credit?: number } = {},
): Consumer {
  return {
    connectionId,
    subscriptionId,
    ackMode: options.ackMode ?? 'client',
    prefetch: options.prefetch ?? 0,
    unacked: 0,
    credit: options.credit ?? Infinity,
  };
}

/** What the writer saw, copied at delivery time (the message object mutates later). */
export interface Delivery {
  readonly consumer: Consumer;
  readonly message: StoredMessage;
  readonly seq: number;
  readonly tag: number;
  readonly redelivered: boolean;
  readonly deliveryCount: number;
}

export interface Harness {
  readonly queue: MessageQueue;
  readonly deliveries: Delivery[];
  /** Writes the writer accepts before it refuses (outbound ring full); Infinity = always room. */
  room: number;
  /** Refused writes so far. */
  refused: number;
}

export function harness(name = 'q'): Harness {
  let nextTag = 1;
  const h = { deliveries: [], room: Infinity, refused: 0 } as unknown as {
    -readonly [K in keyof Harness]: Harness[K];
  };
  h.queue = new MessageQueue(
    name,
    (c, m, tag) => {
      if (h.room <= 0) {
        h.refused++;
        return false;
      }
      h.room--;
      h.deliveries.push({
        consumer: c,
        message: m,
        seq: m.seq,
        tag,
        redelivered: m.redelivered,
        deliveryCount: m.deliveryCount,
      });
      return true;
    },
    () => nextTag++,
  );
  return h;
}

/** "connectionId/subscriptionId" of each delivery, for compact expectations. */
export function who(deliveries: readonly Delivery[]): string[] {
  return deliveries.map((d) => `${d.consumer.connectionId}/${d.consumer.subscriptionId}`);
}
