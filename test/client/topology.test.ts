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
