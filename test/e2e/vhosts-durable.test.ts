/**
 * Issue 19: vhosts under --data-dir. Both vhosts' durable topology (queues, exchanges, bindings)
 * and confirmed messages are back after a restart, where they were; a vhost's limits survive; a
 * deleted vhost stays deleted; and what a crash left of a deletion (the vhost gone from
 * vhosts.json, its queues still in the logs) is cleared at the next start.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Broker } from '../../src/front/broker.js';
import { startBroker } from '../helpers/broker.js';
import { request, waitFor } from '../helpers/http.js';
import { JsonWsClient } from '../helpers/ws-client.js';

const root = mkdtempSync(join(tmpdir(), 'shardmq-vhosts-durable-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const api = (broker: Broker, method: string, path: string, body?: unknown) =>
  request(`${broker.url}${path}`, { method, body: body === undefined ? undefined : JSON.stringify(body) });
const post = (broker: Broker, path: string, body: string) => request(`${broker.url}${path}`, { method: 'POST', body });

describe('e2e - vhosts with --data-dir', () => {
  it('both vhosts` durable queues, exchanges, bindings and messages are back after a restart; limits too', async () => {
    const dir = join(root, 'restart');
    let broker = await startBroker({ shards: '2', 'data-dir': dir });
    try {
      expect((await api(broker, 'PUT', '/v1/vhosts/staging', { limits: { 'max-queues': 50 } })).status).toBe(201);
      for (const [vhost, n] of [
        ['%2F', 20],
        ['staging', 30],
      ] as const) {
        expect((await api(broker, 'PUT', `/v1/queues/${vhost}/orders`, { durable: true })).status).toBe(201);
        expect((await api(broker, 'PUT', `/v1/exchanges/${vhost}/billing`, { type: 'topic', durable: true })).status).toBe(201);
        const bound = await api(broker, 'POST', `/v1/bindings?vhost=${vhost}`, {
          source: 'billing',
          destination: 'orders',
          routing_key: 'o.#',
        });
        expect(bound.status).toBe(201);
        for (let i = 0; i < n; i++)
          expect((await post(broker, `/v1/publish/exchange/billing/o.new?vhost=${vhost}`, `${vhost}-${i}`)).status).toBe(200);
      }
    } finally {
      await broker.stop();
    }

    broker = await startBroker({ shards: '2', 'data-dir': dir });
    try {
      expect((await api(broker, 'GET', '/v1/vhosts/staging')).json).toMatchObject({
        name: 'staging',
        limits: { 'max-queues': 50 },
        messages: 30,
        queues: 1,
      });
      expect((await api(broker, 'GET', '/v1/queues/%2F/orders')).json).toMatchObject({ vhost: '/', durable: true, messages_ready: 20 });
      expect((await api(broker, 'GET', '/v1/queues/staging/orders')).json).toMatchObject({
        vhost: 'staging',
        durable: true,
        messages_ready: 30,
      });
      for (const [vhost, n] of [
        ['/', 20],
        ['staging', 30],
      ] as const) {
        const ws = await JsonWsClient.connect(broker.url, undefined, vhost);
        await ws.subscribe('o', '/queue/orders');
        const got = await ws.messages(n, 'o');
        const tag = vhost === '/' ? '%2F' : vhost;
        expect(got.map((f) => f.payload)).toEqual(Array.from({ length: n }, (_, i) => `${tag}-${i}`));
        // The recovered binding of this vhost's exchange routes new messages to this vhost's queue only.
        expect((await post(broker, `/v1/publish/exchange/billing/o.after?vhost=${encodeURIComponent(vhost)}`, `after-${tag}`)).status).toBe(
          200,
        );
        expect((await ws.messages(1, 'o'))[0].payload).toBe(`after-${tag}`);
        ws.ws.close();
      }
    } finally {
      await broker.stop();
    }
  });

  it('a deleted vhost stays deleted, and the remains of a deletion cut short are cleared at start', async () => {
    const dir = join(root, 'deleted');
    let broker = await startBroker({ shards: '2', 'data-dir': dir });
    try {
      for (const name of ['old', 'cut']) {
        expect((await api(broker, 'PUT', `/v1/vhosts/${name}`, {})).status).toBe(201);
        expect((await api(broker, 'PUT', `/v1/queues/${name}/keep`, { durable: true })).status).toBe(201);
        expect((await post(broker, `/v1/publish/queue/keep?vhost=${name}`, 'x')).status).toBe(200);
      }
      expect((await api(broker, 'DELETE', '/v1/vhosts/old')).json).toMatchObject({ deleted: 'old', queues_deleted: 1 });
    } finally {
      await broker.stop();
    }
    // A crash after the vhost's record went and before its queues did: vhosts.json without it.
    const file = join(dir, 'vhosts.json');
    const doc = JSON.parse(readFileSync(file, 'utf8')) as { vhosts: Array<{ name: string }> };
    expect(doc.vhosts.map((v) => v.name)).toEqual(['/', 'cut']);
    writeFileSync(file, JSON.stringify({ vhosts: doc.vhosts.filter((v) => v.name !== 'cut') }));

    broker = await startBroker({ shards: '2', 'data-dir': dir });
    try {
      const names = JSON.parse((await api(broker, 'GET', '/v1/vhosts')).text) as Array<{ name: string }>;
      expect(names.map((v) => v.name)).toEqual(['/']);
      await waitFor(() => broker.topology.listQueues().length === 0, 5000, 'the cut deletion to finish');
      expect(broker.topology.listExchanges().some((x) => x.name.includes('\u001f'))).toBe(false);
    } finally {
      await broker.stop();
    }
    // And it is finished on disk: a third start recovers no queue of it.
    broker = await startBroker({ shards: '2', 'data-dir': dir });
    try {
      expect(broker.topology.listQueues()).toEqual([]);
    } finally {
      await broker.stop();
    }
  });
});
