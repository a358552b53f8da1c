/**
 * AMQP connections and channels as operators see them: GET /v1/connections and /v1/channels in
 * RabbitMQ's management shapes, /v1/stats and /metrics counting them with the other protocols.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import amqp from 'amqplib';
import type { Broker } from '../../src/front/broker.js';
import { startBroker } from '../helpers/broker.js';
import { request } from '../helpers/http.js';

let broker: Broker;
beforeAll(async () => {
  broker = await startBroker();
});
afterAll(async () => {
  await broker?.stop();
});

describe('e2e - AMQP connections in the management API', () => {
  it('lists connections and channels with user, state, prefetch, confirm mode and unacked counts', async () => {
    const connection = await amqp.connect(`${broker.amqpUrl}?heartbeat=30`, { clientProperties: { connection_name: 'orders-service' } });
    const ch = await connection.createConfirmChannel();
    await ch.prefetch(5);
    const q = await ch.assertQueue('', { exclusive: true });
    for (let i = 0; i < 3; i++) ch.sendToQueue(q.queue, Buffer.from(`m${i}`));
    await ch.waitForConfirms();
    const got: amqp.ConsumeMessage[] = [];
    await ch.consume(q.queue, (m) => m && got.push(m));
    const deadline = Date.now() + 5000;
    while (got.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));

    const conns = JSON.parse((await request(`${broker.url}/v1/connections`)).text) as Array<Record<string, unknown>>;
    expect(conns).toHaveLength(1);
    expect(conns[0]).toMatchObject({ protocol: 'AMQP 0-9-1', user: 'guest', vhost: '/', state: 'running', channels: 1, timeout: 30 });
    expect(conns[0].client_properties).toMatchObject({ connection_name: 'orders-service', product: 'amqplib' });
    expect(conns[0].name).toMatch(/^127\.0\.0\.1:\d+ -> 127\.0\.0\.1:\d+$/);

    const chans = JSON.parse((await request(`${broker.url}/v1/channels`)).text) as Array<Record<string, unknown>>;
    expect(chans).toHaveLength(1);
    expect(chans[0]).toMatchObject({
      number: 1,
      consumer_count: 1,
      messages_unacknowledged: 3,
      prefetch_count: 5,
      confirm: true,
      state: 'running',
    });

    const stats = (await request(`${broker.url}/v1/stats`)).json as {
      connections: Record<string, unknown> & { list: Array<Record<string, unknown>> };
    };
    expect(stats.connections).toMatchObject({ amqp: 1, amqpChannels: 1, amqpConsumers: 1 });
    expect(stats.connections.list.find((c) => c.protocol === 'amqp')).toMatchObject({
      user: 'guest',
      channels: 1,
      unacked: 3,
      published: 3,
      delivered: 3,
    });

    const metrics = (await request(`${broker.url}/metrics`)).text;
    expect(metrics).toMatch(/shardmq_connections\{protocol="amqp"\} 1\b/);
    expect(metrics).toMatch(/shardmq_amqp_channels 1\b/);
    await connection.close();
    // The socket closes just after close-ok: the listing forgets it then.
    let after: unknown[] = [1];
    for (let i = 0; i < 100 && after.length > 0; i++) {
      after = JSON.parse((await request(`${broker.url}/v1/connections`)).text) as unknown[];
      if (after.length > 0) await new Promise((r) => setTimeout(r, 20));
    }
    expect(after).toHaveLength(0);
  });
});
