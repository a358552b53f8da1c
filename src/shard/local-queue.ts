import type { MessageQueue } from '../queue/message-queue.js';

/** A queue of this shard, with what the shard keeps about it beside the MessageQueue itself. */
export interface LocalQueue {
  readonly queue: MessageQueue;
  readonly durable: boolean;
  readonly exclusive: boolean;
  readonly autoDelete: boolean;
  readonly arguments: Record<string, unknown>;
  /** Auto-delete applies once a queue has had a consumer. */
  hadConsumer: boolean;
  /**
   * A subscription's private topic queue: when its length limit drops messages the consumer
   * is told once (`slow_consumer` = disconnect it, `slow_consumer_dropped` = log and count).
   */
  readonly slowConsumerPolicy: 'disconnect' | 'drop' | null;
  slowReported: boolean;
}
