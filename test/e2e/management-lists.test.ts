/**
 * The management lists at a size where a walk would show: 2,500 queues over two shards. Pages in
 * RabbitMQ's shape, a lookup by name, the whole list streamed in slices (valid JSON, every queue
 * once), /v1/stats listing at most --stats-max-queues per shard while counting all.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Broker } from '../../src/front/broker.js';
import { connect, type ShardmqClient } from '../../src/index.js';
import { startBroker } from '../helpers/broker.js';
import { brokerStats, request } from '../helpers/http.js';

const QUEUES = 2500;
const nameOf = (i: number): string => `ml-${String(i).padStart(5, '0')}`;

describe('e2e - management lists at 2,500 queues', () => {
  let broker: Broker;
  let client: ShardmqClient;

  beforeAll(async () => {
    // 250: more than one slice (100) of the shards' stats requests.
    broker = await startBroker({ shards: '2', 'stats-max-queues': '250' });
    client = await connect(broker.url);
    const declares: Promise<unknown>[] = [];
    for (let i = 0; i < QUEUES; i++) declares.push(client.declareQueue(nameOf(i)));
    await Promise.all(declares);
    for (let i = 0; i < 7; i++) client.publishNoWait('/queue/ml-00042', `m${i}`);
    await client.flush();
  });
  afterAll(async () => {
    await client.close();
    await broker.stop();
  });

  it('page - RabbitMQ shape, name order, the right slice, figures of its own queues', async () => {
    const a = await request(`${broker.url}/v1/queues?page=1&page_size=100`);
    expect(a.status).toBe(200);
    const page = a.json as { items: Array<{ name: string; messages: number; shard: number }>; [k: string]: unknown };
    expect(page).toMatchObject({ page: 1, page_size: 100, page_count: 25, total_count: QUEUES, filtered_count: QUEUES, item_count: 100 });
    expect(page.items.map((q) => q.name)).toEqual(Array.from({ length: 100 }, (_, i) => nameOf(i)));
    expect(page.items.find((q) => q.name === 'ml-00042')?.messages).toBe(7);
    expect(new Set(page.items.map((q) => q.shard)).size).toBe(2); // both shards answered for their own
    const last = (await request(`${broker.url}/v1/queues?page=25&page_size=100&sort_reverse=true`)).json as typeof page;
    expect(last.items.map((q) => q.name)).toEqual(Array.from({ length: 100 }, (_, i) => nameOf(99 - i)));
  });

  it('page - name filter (substring, regex) counts what matched; bad requests are 400 with a message', async () => {
    const sub = (await request(`${broker.url}/v1/queues?page=1&name=-0004`)).json as { filtered_count: number; items: { name: string }[] };
    expect(sub.filtered_count).toBe(10);
    expect(sub.items.map((q) => q.name)).toEqual(Array.from({ length: 10 }, (_, i) => nameOf(40 + i)));
    const re = (await request(`${broker.url}/v1/queues?page=1&use_regex=true&name=${encodeURIComponent('^ml-0249[5-9]$')}`)).json as {
      items: { name: string }[];
    };
    expect(re.items.map((q) => q.name)).toEqual(['ml-02495', 'ml-02496', 'ml-02497', 'ml-02498', 'ml-02499']);
    for (const bad of ['page=0', 'page=1&page_size=501', 'page=1&sort=messages', 'page=99', 'name=x']) {
      const r = await request(`${broker.url}/v1/queues?${bad}`);
      expect({ bad, status: r.status, error: r.json?.error }).toEqual({ bad, status: 400, error: 'bad_request' });
      expect(typeof r.json?.message).toBe('string');
    }
  });

  it('lookup - /v1/queues/<name> answers one queue, 404 for none', async () => {
    const one = await request(`${broker.url}/v1/queues/ml-00042`);
    expect(one.status).toBe(200);
    expect(one.json).toMatchObject({ name: 'ml-00042', messages: 7, messages_ready: 7, consumers: 0 });
    const none = await request(`${broker.url}/v1/queues/ml-99999`);
    expect(none.status).toBe(404);
    expect(none.json).toMatchObject({ error: 'not_found' });
  });

  it('whole list - streamed in slices, valid JSON, every queue once in name order', async () => {
    const r = await request(`${broker.url}/v1/queues`, {}, 20_000);
    expect(r.status).toBe(200);
    const list = JSON.parse(r.text) as Array<{ name: string; messages: number }>;
    expect(list.map((q) => q.name)).toEqual(Array.from({ length: QUEUES }, (_, i) => nameOf(i)));
    expect(list[42].messages).toBe(7);
  });

  it('exchanges and bindings page the same way', async () => {
    const x = (await request(`${broker.url}/v1/exchanges?page=1&page_size=2`)).json as { items: { name: string }[]; total_count: number };
    expect(x.items).toHaveLength(2);
    expect(x.total_count).toBeGreaterThanOrEqual(6); // the default exchange and the amq.* ones
    expect((await request(`${broker.url}/v1/bindings?page=1&page_size=3`)).json).toMatchObject({ page: 1, page_size: 3 });
  });

  it('stats - lists at most --stats-max-queues per shard, counts every queue', async () => {
    const stats = await brokerStats(broker.url);
    // Each shard holds more than 250 of the 2,500: it lists exactly 250, asked for in slices, none twice.
    const perShard = new Map<number, string[]>();
    for (const q of stats.queues as Array<{ name: string; shard: number }>)
      perShard.set(q.shard, [...(perShard.get(q.shard) ?? []), q.name]);
    expect([...perShard.keys()].sort()).toEqual([0, 1]);
    for (const names of perShard.values()) {
      expect(names).toHaveLength(250);
      expect(new Set(names).size).toBe(250);
    }
    expect(stats.queuesTotal).toBe(QUEUES);
    const metrics = await (await fetch(`${broker.url}/metrics`)).text();
    expect(metrics.split('\n').filter((l) => l.startsWith('shardmq_queue_messages_ready{'))).toHaveLength(500);
  });
});
