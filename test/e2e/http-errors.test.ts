import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gzipSync } from 'node:zlib';
import { Writable } from 'node:stream';
import pino from 'pino';
import { Broker } from '../../src/front/broker.js';
import { resolveConfig } from '../../src/config/config.js';
import { publish, startBroker } from '../helpers/broker.js';
import { JsonWsClient } from '../helpers/ws-client.js';

describe('e2e - HTTP routes, errors and admin', () => {
  let broker: Broker;
  beforeAll(async () => {
    broker = await startBroker({ shards: '2', 'max-message-bytes': '1024' });
  });
  afterAll(async () => {
    await broker.stop();
  });

  it('http - bad destination is 400 with a JSON error body', async () => {
    const r = await publish(broker, 'nowhere/x', 'm');
    expect(r.status).toBe(400);
    expect(r.json.error).toBe('bad_destination');
    expect(String(r.json.message)).toMatch(/topic/);
  });

  it('http - unknown route is 404; unknown exchange is 404', async () => {
    const res = await fetch(`${broker.url}/v2/nothing`);
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({ error: 'not_found' });
    const r = await publish(broker, 'exchange/no-such-exchange/k', 'm');
    expect(r).toMatchObject({ status: 404, json: { error: 'not_found' } });
  });

  it('http - a known path with a method it does not answer is 405 with Allow; an unknown path stays 404', async () => {
    const cases: Array<[string, string, string]> = [
      ['PUT', '/v1/stats', 'GET'],
      ['GET', '/v1/publish/topic/a', 'POST'],
      ['POST', '/v1/queues/jobs', 'GET, PUT, DELETE'],
      ['PATCH', '/v1/exchanges/amq.topic', 'GET, PUT, DELETE'],
    ];
    for (const [method, path, allow] of cases) {
      const res = await fetch(`${broker.url}${path}`, { method });
      expect(res.status, `${method} ${path}`).toBe(405);
      expect(res.headers.get('allow')).toBe(allow);
      expect(await res.json()).toMatchObject({ error: 'method_not_allowed' });
    }
    expect((await fetch(`${broker.url}/v1/queues/a/b/c`, { method: 'POST' })).status).toBe(404);
  });

  it('http - deleting a queue or an exchange that does not exist is 404; an unknown Content-Encoding is 415 unsupported_media_type', async () => {
    for (const path of ['/v1/queues/never-declared', '/v1/exchanges/never-declared']) {
      const res = await fetch(`${broker.url}${path}`, { method: 'DELETE' });
      expect(res.status, path).toBe(404);
      expect(await res.json()).toMatchObject({ error: 'not_found' });
    }
    await fetch(`${broker.url}/v1/queues/to-delete`, { method: 'PUT', body: '{}' });
    expect((await fetch(`${broker.url}/v1/queues/to-delete`, { method: 'DELETE' })).status).toBe(200);
    expect((await fetch(`${broker.url}/v1/queues/to-delete`, { method: 'DELETE' })).status).toBe(404);
    const r = await publish(broker, 'topic/enc', 'm', { 'content-encoding': 'br' });
    expect(r.status).toBe(415);
    expect(r.json.error).toBe('unsupported_media_type');
  });

  it('http - oversized message is 413 and nothing of the batch is accepted', async () => {
    const c = await JsonWsClient.connect(broker.url);
    await c.subscribe('s', '/queue/limits');
    const big = 'x'.repeat(2000);
    const r = await publish(broker, 'queue/limits', `ok\n${big}\n`, { 'content-type': 'application/x-ndjson' });
    expect(r.status).toBe(413);
    expect(r.json.error).toBe('too_large');
    expect((await publish(broker, 'queue/limits', 'after')).status).toBe(200);
    const [m] = await c.messages(1, 's');
    expect(m.payload).toBe('after');
    await c.close();
  });

  it('http - gzip NDJSON batches are accepted; corrupt gzip is 400', async () => {
    const c = await JsonWsClient.connect(broker.url);
    await c.subscribe('g', '/topic/gz.#');
    const body = gzipSync(Buffer.from('a\nb\nc\n'));
    const res = await fetch(`${broker.url}/v1/publish/topic/gz.x`, {
      method: 'POST',
      body,
      headers: { 'content-type': 'application/x-ndjson', 'content-encoding': 'gzip' },
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ accepted: 3 });
    expect((await c.messages(3, 'g')).map((f) => f.payload)).toEqual(['a', 'b', 'c']);
    const bad = await fetch(`${broker.url}/v1/publish/topic/gz.x`, {
      method: 'POST',
      body: 'not gzip',
      headers: { 'content-encoding': 'gzip' },
    });
    expect(bad.status).toBe(400);
    await c.close();
  });

  it('websocket - malformed frames get error frames and the connection keeps working', async () => {
    const c = await JsonWsClient.connect(broker.url);
    c.ws.send('{not json');
    expect((await c.take((f) => f.op === 'error')).code).toBe('bad_frame');
    c.send({ op: 'fly' });
    expect((await c.take((f) => f.op === 'error')).code).toBe('unknown_op');
    c.send({ op: 'subscribe', id: 'x', destination: '/bogus' });
    expect((await c.take((f) => f.op === 'error')).code).toBe('bad_destination');
    await c.subscribe('ok', '/topic/still.works');
    // RFC 6455 §8.1: a text frame that is not UTF-8 fails that connection (uWS drops it
    // without a close frame: 1006 at the client); other connections carry on.
    const bad = await JsonWsClient.connect(broker.url);
    bad.ws.send(Buffer.from([0xff, 0xfe]), { binary: false });
    expect([1006, 1007]).toContain((await bad.closed).code);
    expect((await c.request({ op: 'publish', destination: '/topic/still.works', payload: 'yes' })).op).toBe('receipt');
    expect((await c.messages(1, 'ok'))[0].payload).toBe('yes');
    await c.close();
  });

  it('admin - healthz answers when every shard answers; stats and metrics expose per-shard counters', async () => {
    const health = await fetch(`${broker.url}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({
      status: 'ok',
      shards: [
        { index: 0, up: true },
        { index: 1, up: true },
      ],
    });
    const stats = (await (await fetch(`${broker.url}/v1/stats`)).json()) as {
      shards: Array<Record<string, unknown>>;
      queues: Array<{ name: string }>;
    };
    expect(stats.shards).toHaveLength(2);
    for (const key of ['published', 'delivered', 'acked', 'dropped', 'ring']) expect(stats.shards[0]).toHaveProperty(key);
    // 'after', three gzip lines, 'yes' (the 413 batch accepted nothing).
    const published = stats.shards.reduce((n, s) => n + (s.published as number), 0);
    expect(published).toBe(5);
    expect(stats.queues.map((q) => q.name)).toContain('limits');
    const metrics = await (await fetch(`${broker.url}/metrics`)).text();
    expect(metrics).toMatch(/^shardmq_shard_published_total\{shard="0"\} \d+$/m);
    expect(metrics).toMatch(/^shardmq_ring_used_bytes\{shard="1",direction="inbound"\} \d+$/m);
  });
});

describe('e2e - refused HTTP requests are logged', () => {
  it('each refusal leaves one warn line per client and code, with its status and reason', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const line of chunk.toString().split('\n')) if (line.trim() !== '') lines.push(JSON.parse(line) as Record<string, unknown>);
        done();
      },
    });
    const config = resolveConfig({ host: '127.0.0.1', port: '0', shards: '1', 'log-level': 'warn' }, {});
    const broker = new Broker(config, pino({ level: 'warn' }, sink));
    await broker.start();
    try {
      for (let i = 0; i < 3; i++) await (await fetch(`${broker.url}/v1/queues/missing-${i}`)).arrayBuffer();
      await (await fetch(`${broker.url}/v1/stats`, { method: 'PUT' })).arrayBuffer();
      const refused = lines.filter((l) => l.msg === 'request refused');
      expect(refused.map((l) => [l.status, l.code])).toEqual([
        [404, 'not_found'],
        [405, 'method_not_allowed'],
      ]);
      expect(String(refused[0].reason)).toMatch(/missing-0/);
      expect(String(refused[0].client)).toMatch(/127\.0\.0\.1/);
    } finally {
      await broker.stop();
    }
  });
});
