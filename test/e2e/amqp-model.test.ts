import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Broker } from '../../src/front/broker.js';
import { publish, startBroker } from '../helpers/broker.js';
import { JsonWsClient } from '../helpers/ws-client.js';
import { shardFor } from '../../src/router/shard-map.js';

async function api(broker: Broker, method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(broker.url + path, {
    method,
    body: body === undefined ? undefined : JSON.stringify(body),
    headers: { 'content-type': 'application/json' },
  });
  const text = await res.text();
  return { status: res.status, json: text === '' ? null : JSON.parse(text) };
}

/** Queue names that land on each of `shards` shards. */
function namesOnEveryShard(prefix: string, shards: number): string[] {
  const out: string[] = [];
  for (let s = 0; s < shards; s++) {
    for (let i = 0; ; i++) {
      if (shardFor(`${prefix}${i}`, shards) === s) {
        out.push(`${prefix}${i}`);
        break;
      }
    }
  }
  return out;
}

describe('e2e - the AMQP model over HTTP management and JSON WebSocket (4 shards)', () => {
  let broker: Broker;
  const clients: JsonWsClient[] = [];
  const connect = async (): Promise<JsonWsClient> => {
    const c = await JsonWsClient.connect(broker.url);
    clients.push(c);
    return c;
  };
  beforeAll(async () => {
    broker = await startBroker({ shards: '4' });
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
    await broker.stop();
  });

  it('management - a fanout exchange delivers to bound queues on every shard', async () => {
    expect((await api(broker, 'PUT', '/v1/exchanges/events', { type: 'fanout', durable: false })).status).toBe(201);
    const queues = namesOnEveryShard('fan-q', 4);
    for (const q of queues) {
      expect((await api(broker, 'PUT', `/v1/queues/${q}`, { durable: false })).status).toBe(201);
      expect(
        (await api(broker, 'POST', '/v1/bindings', { source: 'events', destination: q, destination_type: 'queue', routing_key: '' }))
          .status,
      ).toBe(201);
    }
    expect((await publish(broker, 'exchange/events/any', 'hello')).status).toBe(200);
    const c = await connect();
    for (const q of queues) await c.subscribe(q, `/queue/${q}`);
    const got = await c.messages(4);
    expect(got.map((f) => f.subscription).sort()).toEqual([...queues].sort());
    expect(got.every((f) => f.payload === 'hello')).toBe(true);
    const listed = (await api(broker, 'GET', '/v1/bindings')).json as Array<{ source: string; destination: string }>;
    expect(
      listed
        .filter((b) => b.source === 'events')
        .map((b) => b.destination)
        .sort(),
    ).toEqual([...queues].sort());
  });

  it('management - errors: inequivalent redeclare 406 (AMQP precondition_failed), unknown exchange 404, reserved names 403, bad type 400', async () => {
    expect((await api(broker, 'PUT', '/v1/exchanges/x1', { type: 'direct' })).status).toBe(201);
    const again = await api(broker, 'PUT', '/v1/exchanges/x1', { type: 'topic' });
    expect(again.status).toBe(406);
    expect(again.json).toMatchObject({ error: 'precondition_failed' });
    expect(again.json.message).toMatch(/inequivalent arg 'type'/);
    expect((await api(broker, 'POST', '/v1/bindings', { source: 'nope', destination: 'x', destination_type: 'queue' })).json.error).toBe(
      'not_found',
    );
    expect((await api(broker, 'PUT', '/v1/exchanges/amq.mine', { type: 'direct' })).status).toBe(403);
    expect((await api(broker, 'PUT', '/v1/exchanges/x2', { type: 'weird' })).status).toBe(400);
    const badArg = await api(broker, 'PUT', '/v1/queues/bad-arg', { arguments: { 'x-max-length': -1 } });
    expect(badArg.status).toBe(406);
    expect(badArg.json.message).toMatch(/x-max-length/);
  });

  it('management - GET /v1/queues shows depth, consumers and unacked; purge and delete', async () => {
    await api(broker, 'PUT', '/v1/queues/stat-q', { durable: false });
    for (let i = 0; i < 5; i++) await publish(broker, 'queue/stat-q', `s${i}`);
    const c = await connect();
    await c.subscribe('s', '/queue/stat-q', { ack: 'client', prefetch: 2 });
    await c.messages(2, 's');
    const q = (await api(broker, 'GET', '/v1/queues/stat-q')).json;
    expect(q).toMatchObject({ name: 'stat-q', messages_ready: 3, messages_unacknowledged: 2, consumers: 1, messages: 5 });
    expect(q.rates).toHaveProperty('deliver_per_s');
    expect((await api(broker, 'DELETE', '/v1/queues/stat-q/contents')).json).toEqual({ messageCount: 3 });
    expect((await api(broker, 'DELETE', '/v1/queues/stat-q?if-unused=true')).status).toBe(406);
    expect((await api(broker, 'DELETE', '/v1/queues/stat-q')).status).toBe(200);
    const cancelled = await c.take((f) => f.op === 'error');
    expect(cancelled).toMatchObject({ code: 'consumer_cancelled', subscription: 's' });
    expect((await api(broker, 'GET', '/v1/queues/stat-q')).status).toBe(404);
  });

  it('ttl - an expired message is dead-lettered with x-death, via a DLX on another shard', async () => {
    const [dlq, src] = namesOnEveryShard('dl-', 4);
    await api(broker, 'PUT', '/v1/exchanges/dlx', { type: 'direct' });
    await api(broker, 'PUT', `/v1/queues/${dlq}`, {});
    await api(broker, 'POST', '/v1/bindings', { source: 'dlx', destination: dlq, routing_key: 'dead' });
    const made = await api(broker, 'PUT', `/v1/queues/${src}`, {
      arguments: { 'x-message-ttl': 50, 'x-dead-letter-exchange': 'dlx', 'x-dead-letter-routing-key': 'dead' },
    });
    expect(made.status).toBe(201);
    expect((await publish(broker, `queue/${src}`, 'short-lived', { 'x-message-id': 'm-1' })).status).toBe(200);
    const c = await connect();
    await c.subscribe('dlq', `/queue/${dlq}`);
    const [m] = await c.messages(1, 'dlq', 5000);
    expect(m.payload).toBe('short-lived');
    const props = m.properties as { message_id: string; headers: Record<string, any> };
    expect(props.message_id).toBe('m-1');
    const death = props.headers['x-death'][0];
    expect(death).toMatchObject({ count: 1, reason: 'expired', queue: src, exchange: '', 'routing-keys': [src] });
    expect(props.headers['x-first-death-reason']).toBe('expired');
  });

  it('properties - the JSON publish op carries AMQP properties end to end', async () => {
    const c = await connect();
    await c.subscribe('p', '/topic/props.#');
    const properties = {
      content_type: 'application/json',
      priority: 3,
      correlation_id: 'c-9',
      headers: { tenant: 'acme', nested: { n: 1, list: [1, 'two'] } },
    };
    expect((await c.request({ op: 'publish', destination: '/topic/props.x', payload: '{"a":1}', properties })).op).toBe('receipt');
    const [m] = await c.messages(1, 'p');
    expect(m.properties).toEqual(properties);
    c.send({ op: 'publish', destination: '/topic/props.x', payload: 'x', properties: { priority: 'high' } });
    expect((await c.take((f) => f.op === 'error')).message).toMatch(/priority/);
  });

  it('overflow - x-max-length with reject-publish answers 503 over HTTP; drop-head keeps the newest', async () => {
    await api(broker, 'PUT', '/v1/queues/capped-reject', { arguments: { 'x-max-length': 2, 'x-overflow': 'reject-publish' } });
    expect((await publish(broker, 'queue/capped-reject', 'a')).status).toBe(200);
    expect((await publish(broker, 'queue/capped-reject', 'b')).status).toBe(200);
    const refused = await publish(broker, 'queue/capped-reject', 'c');
    expect(refused.status).toBe(503);
    await api(broker, 'PUT', '/v1/queues/capped-drop', { arguments: { 'x-max-length': 2 } });
    for (const m of ['a', 'b', 'c']) expect((await publish(broker, 'queue/capped-drop', m)).status).toBe(200);
    const c = await connect();
    await c.subscribe('d', '/queue/capped-drop');
    expect((await c.messages(2, 'd')).map((f) => f.payload)).toEqual(['b', 'c']);
  });

  it('ack multiple - settles every earlier delivery of the connection, across shards', async () => {
    const queues = namesOnEveryShard('multi-', 4);
    const c = await connect();
    for (const q of queues) await c.subscribe(q, `/queue/${q}`, { ack: 'client' });
    for (const q of queues) await publish(broker, `queue/${q}`, q);
    const got = await c.messages(4);
    const last = Math.max(...got.map((f) => f.tag as number));
    c.send({ op: 'ack', tag: last, multiple: true });
    // Settled: acking any of them again is an unknown tag.
    c.send({ op: 'ack', tag: got[0].tag });
    expect((await c.take((f) => f.op === 'error')).code).toBe('unknown_tag');
    await c.close();
    const again = await connect();
    for (const q of queues) await again.subscribe(q, `/queue/${q}`, { ack: 'client' });
    await expect(again.take((f) => f.op === 'message', 300)).rejects.toThrow(/timed out/);
  });
});
