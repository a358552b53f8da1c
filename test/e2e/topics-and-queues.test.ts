import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Broker } from '../../src/front/broker.js';
import { startBroker, publish } from '../helpers/broker.js';
import { JsonWsClient, type Frame } from '../helpers/ws-client.js';
import { shardFor } from '../../src/router/shard-map.js';

const payloads = (frames: Frame[]): string[] => frames.map((f) => f.payload as string);

describe.each([1, 4])('e2e - topics and queues with %i shard(s)', (shards) => {
  let broker: Broker;
  const clients: JsonWsClient[] = [];
  const connect = async (): Promise<JsonWsClient> => {
    const c = await JsonWsClient.connect(broker.url);
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    broker = await startBroker({ shards: String(shards) });
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
    await broker.stop();
  });

  it('topic - fans out to 3 subscribers, each in publish order', async () => {
    const subs = await Promise.all([connect(), connect(), connect()]);
    await Promise.all(subs.map((s, i) => s.subscribe(`s${i}`, '/topic/fan.*')));
    const sent = Array.from({ length: 60 }, (_, i) => `m${i}`);
    // Half one by one, half as one NDJSON batch.
    for (const m of sent.slice(0, 30)) expect((await publish(broker, 'topic/fan.out', m)).status).toBe(200);
    const batch = await publish(broker, 'topic/fan.out', sent.slice(30).join('\n') + '\n', { 'content-type': 'application/x-ndjson' });
    expect(batch).toEqual({ status: 200, json: { accepted: 30 } });
    for (const [i, s] of subs.entries()) {
      const got = await s.messages(60, `s${i}`);
      expect(payloads(got)).toEqual(sent);
      expect(got.every((f) => f.destination === '/topic/fan.out' && f.redelivered === false)).toBe(true);
    }
  });

  it('topic - a wildcard subscription sees keys owned by every shard; # matches zero words', async () => {
    const c = await connect();
    await c.subscribe('all', '/topic/zone.#');
    const keys = Array.from({ length: 24 }, (_, i) => `zone.k${i}`);
    if (shards > 1) expect(new Set(keys.map((k) => shardFor(k, shards))).size).toBe(shards);
    for (const k of [...keys, 'zone']) expect((await publish(broker, `topic/${k}`, k)).status).toBe(200);
    await publish(broker, 'topic/other.k1', 'nope');
    const got = await c.messages(keys.length + 1, 'all');
    expect(new Set(payloads(got))).toEqual(new Set([...keys, 'zone']));
    expect(got.map((f) => f.destination).sort()).toEqual([...keys, 'zone'].map((k) => `/topic/${k}`).sort());
    await expect(c.take((f) => f.op === 'message', 300)).rejects.toThrow(/timed out/);
  });

  it('queue - holds 100 messages until consumers come, then shares them round robin with nothing lost or duplicated', async () => {
    const q = `/queue/jobs-${shards}`;
    const sent = Array.from({ length: 100 }, (_, i) => `job${i}`);
    for (const m of sent) expect((await publish(broker, q, m)).status).toBe(200);
    const [a, b] = await Promise.all([connect(), connect()]);
    // A small prefetch makes the two consumers alternate while both ack.
    await a.subscribe('a', q, { ack: 'client', prefetch: 5 });
    await b.subscribe('b', q, { ack: 'client', prefetch: 5 });
    const seen: string[] = [];
    const perConsumer = new Map<string, number>();
    const consume = async (c: JsonWsClient, id: string): Promise<void> => {
      for (;;) {
        let f: Frame;
        try {
          f = await c.take((x) => x.op === 'message', 1500);
        } catch {
          return;
        }
        seen.push(f.payload as string);
        perConsumer.set(id, (perConsumer.get(id) ?? 0) + 1);
        c.send({ op: 'ack', tag: f.tag });
      }
    };
    await Promise.all([consume(a, 'a'), consume(b, 'b')]);
    expect(seen.length).toBe(100);
    expect(new Set(seen)).toEqual(new Set(sent));
    expect(perConsumer.get('a')).toBeGreaterThan(0);
    expect(perConsumer.get('b')).toBeGreaterThan(0);
  });

  it('queue - unacked deliveries are redelivered (redelivered: true) to another consumer when their consumer goes away', async () => {
    const q = `/queue/redeliver-${shards}`;
    const a = await connect();
    await a.subscribe('a', q, { ack: 'client', prefetch: 10 });
    for (let i = 0; i < 5; i++) await publish(broker, q, `r${i}`);
    const first = await a.messages(5, 'a');
    expect(first.every((f) => f.redelivered === false)).toBe(true);
    a.send({ op: 'ack', tag: first[0].tag });
    // Make sure the ack reached the shard before the connection goes.
    await a.request({ op: 'unsubscribe', id: 'a' });
    const b = await connect();
    await b.subscribe('b', q, { ack: 'client' });
    const again = await b.messages(4, 'b');
    expect(payloads(again)).toEqual(['r1', 'r2', 'r3', 'r4']);
    expect(again.every((f) => f.redelivered === true)).toBe(true);
  });

  it('queue - redelivers when the connection closes without unsubscribing', async () => {
    const q = `/queue/closing-${shards}`;
    const a = await JsonWsClient.connect(broker.url);
    await a.subscribe('a', q, { ack: 'client' });
    await publish(broker, q, 'x1');
    await publish(broker, q, 'x2');
    await a.messages(2, 'a');
    await a.close();
    const b = await connect();
    await b.subscribe('b', q, { ack: 'client' });
    const again = await b.messages(2, 'b');
    expect(payloads(again)).toEqual(['x1', 'x2']);
    expect(again.map((f) => f.redelivered)).toEqual([true, true]);
  });

  it('queue - nack with requeue redelivers; nack without requeue drops', async () => {
    const q = `/queue/nack-${shards}`;
    const c = await connect();
    await c.subscribe('n', q, { ack: 'client', prefetch: 1 });
    await publish(broker, q, 'n1');
    await publish(broker, q, 'n2');
    const [m1] = await c.messages(1, 'n');
    expect(m1.payload).toBe('n1');
    c.send({ op: 'nack', tag: m1.tag, requeue: true });
    const [again] = await c.messages(1, 'n');
    expect(again).toMatchObject({ payload: 'n1', redelivered: true });
    c.send({ op: 'nack', tag: again.tag, requeue: false });
    const [m2] = await c.messages(1, 'n');
    expect(m2.payload).toBe('n2');
    c.send({ op: 'ack', tag: m2.tag });
    c.send({ op: 'ack', tag: m2.tag });
    const err = await c.take((f) => f.op === 'error');
    expect(err.code).toBe('unknown_tag');
  });

  it('websocket - publish with a receipt, auto-ack subscriber, base64 for non-UTF-8 payloads', async () => {
    const c = await connect();
    await c.subscribe('w', '/topic/ws.*');
    expect(await c.request({ op: 'publish', destination: '/topic/ws.a', payload: 'hello' })).toMatchObject({ op: 'receipt' });
    expect(
      await c.request({
        op: 'publish',
        destination: '/topic/ws.b',
        payload: Buffer.from([0xff, 0x00, 0xfe]).toString('base64'),
        encoding: 'base64',
      }),
    ).toMatchObject({ op: 'receipt' });
    const [text, binary] = await c.messages(2, 'w');
    expect(text).toMatchObject({ op: 'message', subscription: 'w', destination: '/topic/ws.a', payload: 'hello', redelivered: false });
    expect(typeof text.tag).toBe('number');
    expect(binary).toMatchObject({ encoding: 'base64', payload: Buffer.from([0xff, 0x00, 0xfe]).toString('base64') });
  });
});
