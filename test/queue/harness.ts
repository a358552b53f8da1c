/** Builders shared by the queue tests: messages, consumers, and a queue whose writer records and can be "full". */
import { MessageQueue, type MessageQueueOptions } from '../../src/queue/message-queue.js';
import { parseQueueArguments } from '../../src/queue/queue-arguments.js';
import type { AckMode, Consumer, DeadLetterReason, MessageProperties, StoredMessage } from '../../src/queue/types.js';

export function message(seq: number, bytes = 4, properties: MessageProperties | null = null, exchange = ''): StoredMessage {
  return {
    seq,
    routingKey: `k${seq}`,
    payload: new Uint8Array(bytes),
    exchange,
    properties,
    expiresAt: Infinity,
    redelivered: false,
    deliveryCount: 0,
  };
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
    creditBytes: Infinity,
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

/** A dead-lettered copy as onDeadLetter received it. */
export interface DeadLetter {
  readonly message: StoredMessage;
  readonly reason: DeadLetterReason;
}

export interface Harness {
  readonly queue: MessageQueue;
  readonly deliveries: Delivery[];
  /** Writes the writer accepts before it refuses (outbound ring full); Infinity = always room. */
  room: number;
  /** Refused writes so far. */
  refused: number;
  /** What onDeadLetter received, in order. */
  readonly deadLetters: DeadLetter[];
  /** The queue's clock (ms); tests move it by hand. */
  readonly clock: { now: number };
}

export interface HarnessOptions {
  /** Raw x- arguments, parsed with parseQueueArguments. */
  readonly args?: Record<string, unknown>;
  /** Starting clock reading (ms). */
  readonly time?: number;
  readonly scheduleExpiry?: MessageQueueOptions['scheduleExpiry'];
}

/** Seqs of the dead-lettered copies with their reasons, for compact expectations. */
export function deadSeqs(h: Harness): string[] {
  return h.deadLetters.map((d) => `${d.message.seq}:${d.reason}`);
}

export function harness(name = 'q', options: HarnessOptions = {}): Harness {
  let nextTag = 1;
  const h = { deliveries: [], room: Infinity, refused: 0, deadLetters: [], clock: { now: options.time ?? 1_000_000 } } as unknown as {
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
    {
      arguments: parseQueueArguments(options.args ?? {}, name),
      now: () => h.clock.now,
      onDeadLetter: (message, reason) => h.deadLetters.push({ message, reason }),
      scheduleExpiry: options.scheduleExpiry,
    },
  );
  return h;
}

/** "connectionId/subscriptionId" of each delivery, for compact expectations. */
export function who(deliveries: readonly Delivery[]): string[] {
  return deliveries.map((d) => `${d.consumer.connectionId}/${d.consumer.subscriptionId}`);
}
