import { describe, expect, it } from 'vitest';
import { CounterSlot, createCounterStorage } from '../../src/metrics/shard-counters.js';
import { MessageQueue } from '../../src/queue/message-queue.js';
import { parseQueueArguments } from '../../src/queue/queue-arguments.js';
import type { Consumer } from '../../src/queue/types.js';
import { EncodedProperties } from '../../src/shard/encoded-properties.js';
import { ShardOutbound } from '../../src/shard/shard-outbound.js';
import { ShardSubscriptions } from '../../src/shard/shard-subscriptions.js';
import type { LocalQueue } from '../../src/shard/local-queue.js';
import { OutboundRing } from './ring-fixture.js';

function setup(): { subs: ShardSubscriptions; ring: OutboundRing; counters: Float64Array; read: () => ReturnType<OutboundRing['read']> } {
  const ring = new OutboundRing();
  const counters = new Float64Array(createCounterStorage());
  const subs = new ShardSubscriptions(new ShardOutbound(ring.writer, new EncodedProperties()), counters);
  const read = (): ReturnType<OutboundRing['read']> => {
    ring.producer.commit();
    return ring.read();
  };
  return { subs, ring, counters, read };
}

function local(name: string): LocalQueue {
  let tag = 0;
  const queue = new MessageQueue(
    name,
    () => true,
    () => ++tag,
    { arguments: parseQueueArguments({ 'x-max-length': 10 }, name) },
  );
  return {
    queue,
    durable: false,
    exclusive: false,
    autoDelete: false,
    arguments: {},
    hadConsumer: false,
    topicBuffer: null,
  };
}

function consumer(connectionId: number, subscriptionId: number): Consumer {
  return { connectionId, subscriptionId, ackMode: 'client', prefetch: 0, unacked: 0, credit: Infinity, creditBytes: Infinity };
}

/** Subscribes a consumer to `l` the way ShardCore does: in the registry and on the queue. */
function attach(subs: ShardSubscriptions, l: LocalQueue, connectionId: number, subscriptionId: number): void {
  const c = consumer(connectionId, subscriptionId);
  subs.add(connectionId, subscriptionId, { consumer: c, local: l });
  l.queue.addConsumer(c);
}

describe('shard subscriptions', () => {
  it('add / remove / removeConnection - keep the consumers gauge and forget empty connections', () => {
    const { subs, counters } = setup();
    const q = local('q');
    attach(subs, q, 1, 1);
    attach(subs, q, 1, 2);
    attach(subs, q, 2, 1);
    expect(counters[CounterSlot.consumers]).toBe(3);
    expect([...(subs.of(1)?.keys() ?? [])]).toEqual([1, 2]);

    expect(subs.remove(1, 1)?.consumer.subscriptionId).toBe(1);
    expect(subs.remove(1, 1)).toBeUndefined();
    expect(subs.remove(9, 9)).toBeUndefined();
    expect(counters[CounterSlot.consumers]).toBe(2);

    expect(subs.remove(2, 1)).toBeDefined();
    expect(subs.of(2)).toBeUndefined();

    const closed = subs.removeConnection(1);
    expect([...(closed?.keys() ?? [])]).toEqual([2]);
    expect(subs.removeConnection(1)).toBeUndefined();
    expect(subs.get(1, 2)).toBeUndefined();
    expect(counters[CounterSlot.consumers]).toBe(0);
  });

  it("cancelConsumersOf - only the deleted queue's consumers go, each told consumer_cancelled", () => {
    const { subs, counters, read } = setup();
    const gone = local('gone');
    const kept = local('kept');
    attach(subs, gone, 1, 1);
    attach(subs, kept, 1, 2);
    attach(subs, gone, 2, 1);
    subs.cancelConsumersOf(gone, 'queue deleted');
    expect(read()).toEqual([
      {
        kind: 'error',
        connectionId: 1,
        subscriptionId: 1,
        code: 'consumer_cancelled',
        message: "consumer cancelled: queue deleted ('gone')",
      },
      {
        kind: 'error',
        connectionId: 2,
        subscriptionId: 1,
        code: 'consumer_cancelled',
        message: "consumer cancelled: queue deleted ('gone')",
      },
    ]);
    expect(gone.queue.consumerCount).toBe(0);
    expect(kept.queue.consumerCount).toBe(1);
    expect(subs.get(1, 2)).toBeDefined();
    expect(subs.of(2)).toBeUndefined();
    expect(counters[CounterSlot.consumers]).toBe(1);
  });
});
