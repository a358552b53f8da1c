import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Broker } from '../../src/front/broker.js';
import { startBroker } from '../helpers/broker.js';
import {
  AccessRefusedError,
  CommandInvalidError,
  NotFoundError,
  PreconditionFailedError,
  ResourceLockedError,
  ShardmqError,
  SubscriptionCancelledError,
  connect,
} from '../../src/index.js';
import type { Message, ShardmqClient, Subscription } from '../../src/index.js';
import { TopologyRecorder, queueName, type BindingRecord, type QueueRecord } from '../../src/client/topology.js';

async function next(sub: Subscription, timeoutMs = 3000): Promise<Message> {
  let timer: NodeJS.Timeout | undefined;
  const r = await Promise.race([
    sub[Symbol.asyncIterator]().next(),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('timed out waiting for a message')), timeoutMs);
    }),
  ]);
  clearTimeout(timer);
  if (r.done === true) throw new Error('subscription ended');
  return r.value;
}

describe('client - exchanges, queues and bindings', () => {
  let broker: Broker;
  let client: ShardmqClient;
  let other: ShardmqClient;

  beforeAll(async () => {
    broker = await startBroker({ shards: '2' });
    client = await connect(broker.url);
    other = await connect(broker.url);
  });
  afterAll(async () => {
    await client.close();
    await other.close();
    await broker.stop();
  });

  it('declare, bind, route, unbind, purge and delete a direct exchange and a queue', async () => {
    await client.declareExchange('orders', 'direct', { durable: false });
    const q = await client.declareQueue('orders-eu', { arguments: { 'x-max-length': 100 } });
    expect(q).toMatchObject({ queue: 'orders-eu', messageCount: 0, consumerCount: 0 });
    await client.bindQueue('orders-eu', 'orders', 'eu');
    await client.publish('/exchange/orders/eu', 'to-eu');
    await client.publish('/exchange/orders/us', 'unroutable');
    expect((await client.declareQueue('orders-eu', { arguments: { 'x-max-length': 100 } })).messageCount).toBe(1);
    const sub = await client.subscribe('/queue/orders-eu');
    const m = await next(sub);
    expect(m.text()).toBe('to-eu');
    expect(m.exchange).toBe('orders');
    expect(m.routingKey).toBe('eu');
    expect(m.destination).toBe('/queue/orders-eu');
    await sub.unsubscribe();
    await client.unbindQueue('orders-eu', 'orders', 'eu');
    await client.publish('/exchange/orders/eu', 'after-unbind');
    await client.publish('/queue/orders-eu', 'direct-1');
    await client.publish('/queue/orders-eu', 'direct-2');
    expect(await client.purgeQueue('orders-eu')).toEqual({ messageCount: 2 });
    await client.publish('/queue/orders-eu', 'left');
    expect(await client.deleteQueue('orders-eu')).toEqual({ messageCount: 1 });
    await client.deleteExchange('orders');
    await expect(client.declareExchange('orders', 'direct', { passive: true })).rejects.toBeInstanceOf(NotFoundError);
  });

  it('exchange-to-exchange bindings and a topic exchange subscription', async () => {
    await client.declareExchange('ingest', 'fanout');
    await client.declareExchange('events', 'topic');
    await client.bindExchange('events', 'ingest', '');
    const sub = await client.subscribe('/exchange/events/sensor.*');
    await client.publish('/exchange/ingest/sensor.temp', 't=21');
    const m = await next(sub);
    expect(m.text()).toBe('t=21');
    expect(m.destination).toBe('/exchange/ingest/sensor.temp');
    await client.unbindExchange('events', 'ingest', '');
    await client.publish('/exchange/ingest/sensor.temp', 'not routed');
    await new Promise((r) => setTimeout(r, 50));
    expect(sub.buffered).toBe(0);
    await sub.unsubscribe();
  });

  it('server-named queue - declared with an empty name, bound and counted', async () => {
    const q = await client.declareQueue('', { exclusive: true, autoDelete: false });
    expect(q.queue).toMatch(/^amq\.gen-/);
    await client.bindQueue(q.queue, 'amq.topic', 'named.#');
    await client.publish('/topic/named.a', '1');
    await client.publish('/topic/named.b.c', '2');
    expect((await client.declareQueue(q.queue, { passive: true })).messageCount).toBe(2);
    await expect(other.declareQueue(q.queue, { passive: true })).rejects.toBeInstanceOf(ResourceLockedError);
    await client.deleteQueue(q.queue);
  });

  it('errors - passive declare of a missing queue is NotFoundError; an inequivalent redeclare is PreconditionFailedError', async () => {
    const missing = client.declareQueue('no-such-queue', { passive: true });
    await expect(missing).rejects.toBeInstanceOf(NotFoundError);
    await expect(missing).rejects.toMatchObject({
      code: 'not_found',
      op: 'DECLARE_QUEUE',
      message: expect.stringMatching(/no queue 'no-such-queue'/),
    });
    await missing.catch((e: unknown) => expect(e).toBeInstanceOf(ShardmqError));

    await client.declareQueue('shaped', { durable: false, arguments: { 'x-message-ttl': 1000 } });
    const redeclare = client.declareQueue('shaped', { durable: false, arguments: { 'x-message-ttl': 2000 } });
    await expect(redeclare).rejects.toBeInstanceOf(PreconditionFailedError);
    await expect(redeclare).rejects.toMatchObject({
      code: 'precondition_failed',
      message: expect.stringMatching(/inequivalent arg 'x-message-ttl'/),
    });

    await client.declareExchange('typed', 'fanout');
    await expect(client.declareExchange('typed', 'direct')).rejects.toMatchObject({
      code: expect.stringMatching(/^(precondition_failed|not_allowed)$/),
    });
    await expect(client.declareExchange('weird', 'x-unknown')).rejects.toBeInstanceOf(CommandInvalidError);
    await expect(client.declareQueue('amq.mine')).rejects.toBeInstanceOf(AccessRefusedError);
    await expect(client.bindQueue('no-such-queue', 'amq.topic', '#')).rejects.toBeInstanceOf(NotFoundError);
    await expect(client.deleteExchange('typed', { ifUnused: false })).resolves.toBeUndefined();
    // the connection is still usable after errors
    await client.publish('/topic/after.errors', 'fine');
  });

  it('cancel - deleting a queue under a subscription ends it with SubscriptionCancelledError', async () => {
    await client.declareQueue('doomed');
    const sub = await other.subscribe('/queue/doomed');
    const got: string[] = [];
    const ended = (async () => {
      for await (const m of sub) got.push(m.text());
    })().then(
      () => null,
      (err: unknown) => err,
    );
    await client.publish('/queue/doomed', 'last words');
    await new Promise((r) => setTimeout(r, 50));
    await client.deleteQueue('doomed');
    expect(await ended).toBeInstanceOf(SubscriptionCancelledError);
    expect(got).toEqual(['last words']); // buffered messages come first, then the error
    expect(await sub.closed).toMatchObject({ reason: 'cancelled', error: { code: 'consumer_cancelled' } });
  });
});

describe('client - TopologyRecorder bookkeeping (what a reconnect restores)', () => {
  const keyOf = (b: BindingRecord): string =>
    b.kind === 'queue' ? `q:${queueName(b.queue)}:${b.exchange}:${b.routingKey}` : `x:${b.destination}:${b.source}:${b.routingKey}`;
  const all = (t: TopologyRecorder): string[] => [...t.bindings].map(keyOf);

  it('recorder - bindings once each, in the order made; unbind, args by value, deletes and renames', () => {
    const t = new TopologyRecorder();
    const record = t.declaredQueue('', 'amq.gen-1', {}) as QueueRecord;
    t.boundQueue('amq.gen-1', 'x', 'a', undefined);
    t.boundQueue('plain', 'x', 'b', { h: 1 });
    t.boundQueue('plain', 'x', 'b', { h: 1 }); // duplicate: no second record
    t.boundQueue('plain', 'x', 'b', { h: 2 }); // other args: another binding
    t.boundExchange('x', 'up', '#', undefined);
    expect(all(t)).toEqual(['q:amq.gen-1:x:a', 'q:plain:x:b', 'q:plain:x:b', 'x:x:up:#']);
    t.unboundQueue('plain', 'x', 'b', { h: 1 });
    expect([...t.bindings].filter((b) => b.kind === 'queue' && queueName(b.queue) === 'plain').map((b) => b.args)).toEqual([{ h: 2 }]);
    // A server-named queue renamed on a new connection keeps its bindings under the new name.
    t.renamedQueue(record, 'amq.gen-2');
    expect(all(t)[0]).toBe('q:amq.gen-2:x:a');
    t.unboundQueue('amq.gen-2', 'x', 'a', undefined);
    expect(t.bindingCount).toBe(2);
    // A queue declared after it was bound (by name) still unbinds and deletes by that name.
    t.boundQueue('later', 'x', 'k', undefined);
    t.declaredQueue('later', 'later', {});
    t.deletedQueue('later');
    expect(all(t)).toEqual(['q:plain:x:b', 'x:x:up:#']);
    // Deleting an exchange drops every binding that names it, as source or destination.
    t.deletedExchange('x');
    expect(t.bindingCount).toBe(0);
  });

  it('recorder - 100,000 bindings over 1,000 queues: recorded, half unbound, one queue deleted, counts exact', () => {
    const t = new TopologyRecorder();
    for (let i = 0; i < 100_000; i++) t.boundQueue(`q${i % 1000}`, 'amq.topic', `k.${i}`, undefined);
    for (let i = 0; i < 100_000; i += 2) t.unboundQueue(`q${i % 1000}`, 'amq.topic', `k.${i}`, undefined);
    expect(t.bindingCount).toBe(50_000);
    t.deletedQueue('q1');
    expect(t.bindingCount).toBe(50_000 - 100); // q1's keys are odd: none was unbound
    expect([...t.bindings].some((b) => b.kind === 'queue' && queueName(b.queue) === 'q1')).toBe(false);
  });
});
