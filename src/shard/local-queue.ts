import type { MessageQueue } from '../queue/message-queue.js';
import type { TopicBuffer } from './shard-flow.js';

/** A queue of this shard, with what the shard keeps about it beside the MessageQueue itself. */
export interface LocalQueue {
  readonly queue: MessageQueue;
  readonly durable: boolean;
  readonly exclusive: boolean;
  readonly autoDelete: boolean;
  readonly arguments: Record<string, unknown>;
  /** Auto-delete applies once a queue has had a consumer. */
  hadConsumer: boolean;
  /** A subscription's private topic queue: its bound and slow-consumer policy (ShardFlow); else null. */
  readonly topicBuffer: TopicBuffer | null;
}
