/**
 * The AMQP front shares the broker with the HTTP and WebSocket fronts: what an AMQP publisher sends
 * reaches WebSocket subscribers (JSON and the exported binary client) with its properties and
 * headers, and what HTTP, JSON WebSocket and binary publishers send reaches an AMQP consumer the same way.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import amqp from 'amqplib';
import type { Broker } from '../../src/front/broker.js';
import { connect, type ShardmqClient } from '../../src/index.js';
import { startBroker } from '../helpers/broker.js';
import { request } from '../helpers/http.js';
import { JsonWsClient } from '../helpers/ws-client.js';

let broker: Broker;
let url: string;
let client: ShardmqClient;

beforeAll(async () => {
  broker = await startBroker({ shards: '2' });
  url = broker.amqpUrl ?? '';
  client = await connect(broker.url, { reconnect: false });
});
afterAll(async () => {
  await client?.close();
  await broker?.stop();
});

/** The next message a consumer gets on `queue`, or a rejection after `ms`. */
function nextMessage(channel: amqp.Channel, queue: string, ms = 5000): Promise<amqp.ConsumeMessage> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no message on ${queue} in ${ms} ms`)), ms);
    void channel.consume(
      queue,
      (msg) => {
        if (msg === null) return;
        clearTimeout(timer);
        channel.cancel(msg.fields.consumerTag).then(() => resolve(msg), reject);
      },
      { noAck: true },
    );
  });
}

describe('e2e - AMQP publish → WebSocket subscribers', () => {
  it('a topic publish from amqplib reaches a JSON WebSocket subscriber with properties and headers', async () => {
    const ws = await JsonWsClient.connect(broker.url);
    await ws.subscribe('s1', '/topic/sensors.*');
    const connection = await amqp.connect(url);
    const channel = await connection.createChannel();
    channel.publish('amq.topic', 'sensors.temp', Buffer.from('21.5'), {
      contentType: 'text/plain',
      correlationId: 'c-1',
      messageId: 'm-1',
      replyTo: 'answers',
      priority: 3,
      timestamp: 1_700_000_000,
      type: 'reading',
      appId: 'probe',
      headers: { unit: 'C', n: 7, ok: true, nested: { a: 'b' } },
    });
    const [m] = await ws.messages(1, 's1');
    expect(m.payload).toBe('21.5');
    expect(m.destination).toBe('/topic/sensors.temp');
    expect(m.properties).toMatchObject({
      content_type: 'text/plain',
      correlation_id: 'c-1',
      message_id: 'm-1',
      reply_to: 'answers',
      priority: 3,
      timestamp: 1_700_000_000,
      type: 'reading',
      app_id: 'probe',
      headers: { unit: 'C', n: 7, ok: true, nested: { a: 'b' } },
    });
    ws.ws.close();
    await connection.close();
  });

  it('a direct-exchange publish reaches the exported binary client, payload bytes exact', async () => {
    const connection = await amqp.connect(url);
    const channel = await connection.createChannel();
    await channel.assertExchange('interop.direct', 'direct', { durable: false });
    const got: Array<{ payload: Uint8Array; headers: unknown }> = [];
    const sub = await client.subscribe('/exchange/interop.direct/k', {}, (msg) => {
      got.push({ payload: msg.payload, headers: msg.properties?.headers });
    });
    const bytes = Buffer.from([0, 1, 2, 0xff, 0xfe, 0x80]);
    channel.publish('interop.direct', 'k', bytes, { headers: { h: 'v' } });
    const deadline = Date.now() + 5000;
    while (got.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(got).toHaveLength(1);
    expect(Buffer.from(got[0].payload).equals(bytes)).toBe(true);
    expect(got[0].headers).toEqual({ h: 'v' });
    await sub.unsubscribe();
    await connection.close();
  });
});

describe('e2e - HTTP and WebSocket publish → AMQP consumer', () => {
  it('HTTP publish to a queue reaches an amqplib consumer with its header-borne properties', async () => {
    const connection = await amqp.connect(url);
    const channel = await connection.createChannel();
    await channel.assertQueue('interop.http', { durable: false });
    const a = await request(`${broker.url}/v1/publish/queue/interop.http`, {
      method: 'POST',
      body: '{"v":1}',
      headers: { 'content-type': 'application/json', 'x-correlation-id': 'http-1', 'x-header-origin': 'curl', 'x-priority': '5' },
    });
    expect(a.status).toBe(200);
    const msg = await nextMessage(channel, 'interop.http');
    expect(msg.content.toString()).toBe('{"v":1}');
    expect(msg.fields.exchange).toBe('');
    expect(msg.fields.routingKey).toBe('interop.http');
    expect(msg.properties.contentType).toBe('application/json');
    expect(msg.properties.correlationId).toBe('http-1');
    expect(msg.properties.priority).toBe(5);
    expect(msg.properties.headers).toMatchObject({ origin: 'curl' });
    await connection.close();
  });

  it('JSON WebSocket and binary client publishes reach an AMQP consumer bound to amq.topic, in order', async () => {
    const connection = await amqp.connect(url);
    const channel = await connection.createChannel();
    const q = await channel.assertQueue('', { exclusive: true });
    await channel.bindQueue(q.queue, 'amq.topic', 'interop.#');
    const got: amqp.ConsumeMessage[] = [];
    await channel.consume(q.queue, (m) => m && got.push(m), { noAck: true });
    const ws = await JsonWsClient.connect(broker.url);
    const answer = await ws.request({
      op: 'publish',
      destination: '/topic/interop.json',
      payload: 'from json',
      properties: { content_type: 'text/plain', headers: { k: 1 } },
    });
    expect(answer.op).toBe('receipt');
    await client.publish('/topic/interop.binary', 'from binary', { properties: { messageId: 'b-1', headers: { list: [1, 'two'] } } });
    const deadline = Date.now() + 5000;
    while (got.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(got.map((m) => [m.fields.routingKey, m.content.toString()])).toEqual([
      ['interop.json', 'from json'],
      ['interop.binary', 'from binary'],
    ]);
    expect(got[0].properties.contentType).toBe('text/plain');
    expect(got[0].properties.headers).toMatchObject({ k: 1 });
    expect(got[1].properties.messageId).toBe('b-1');
    expect(got[1].properties.headers).toMatchObject({ list: [1, 'two'] });
    ws.ws.close();
    await connection.close();
  });
});

describe('e2e - AMQP publishers above --max-memory', () => {
  it('get connection.blocked, their publishes wait unconfirmed and undelivered, then go on in order after unblocked', async () => {
    // 1 TiB: only the test's check() crosses it (1 << 40 is 256 in JS: the guard's own sampling blocked first).
    const guarded = await startBroker({ 'max-memory': String(2 ** 40) });
    const guard = guarded.memoryGuard;
    guard.stop();
    try {
      const connection = await amqp.connect(guarded.amqpUrl ?? '');
      const events: string[] = [];
      connection.on('blocked', (reason: string) => events.push(`blocked: ${reason}`));
      connection.on('unblocked', () => events.push('unblocked'));
      const ch = await connection.createConfirmChannel();
      const q = await ch.assertQueue('', { exclusive: true });
      const got: string[] = [];
      await ch.consume(q.queue, (m) => m && got.push(m.content.toString()), { noAck: true });
      guard.check(2 ** 41);
      let confirmed = 0;
      for (let i = 0; i < 5; i++) ch.sendToQueue(q.queue, Buffer.from(`held ${i}`), {}, () => confirmed++);
      await new Promise((r) => setTimeout(r, 300));
      expect(events).toEqual(['blocked: low on memory']);
      expect(confirmed).toBe(0);
      expect(got).toEqual([]);
      guard.check(0);
      await ch.waitForConfirms();
      const deadline = Date.now() + 5000;
      while (got.length < 5 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      expect(confirmed).toBe(5);
      expect(got).toEqual(['held 0', 'held 1', 'held 2', 'held 3', 'held 4']);
      expect(events).toEqual(['blocked: low on memory', 'unblocked']);
      await connection.close();
    } finally {
      await guarded.stop();
    }
  });
});
