/**
 * Queues across three nodes joined through a real nats-server: a queue placed on B is published
 * to from A and consumed from C with acks, prefetch and redelivery, every message exactly once;
 * consumers on two nodes take turns; when B leaves, its transient queue is placed anew, the
 * consumer moves with it, and what B held is counted as lost.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Broker } from '../../src/front/broker.js';
import type { ClusterStatus } from '../../src/cluster/cluster-node.js';
import { placeByHash } from '../../src/cluster/queue-placement.js';
import { startBroker } from '../helpers/broker.js';
import { NatsServer } from '../helpers/nats-server.js';
import { JsonWsClient, type Frame } from '../helpers/ws-client.js';
import { sleep, waitFor } from '../helpers/http.js';

let nats: NatsServer;
const nodes: Broker[] = [];
const [A, B, C] = [0, 1, 2];

async function cluster(broker: Broker): Promise<ClusterStatus> {
  return (await (await fetch(`${broker.url}/v1/cluster`)).json()) as ClusterStatus;
}

async function post(broker: Broker, destination: string, body: string): Promise<number> {
  return (await fetch(`${broker.url}/v1/publish/${destination.replace(/^\//, '')}`, { method: 'POST', body })).status;
}

/** A queue name the three nodes place on `node`. */
function queueOn(node: string, prefix: string, members = ['a', 'b', 'c']): string {
  for (let i = 0; ; i++) if (placeByHash(`${prefix}${i}`, members) === node) return `${prefix}${i}`;
}

async function localQueue(broker: Broker, name: string): Promise<{ status: number; json: Record<string, unknown> | null }> {
  const res = await fetch(`${broker.url}/v1/queues/${encodeURIComponent(name)}`);
  const text = await res.text();
  return { status: res.status, json: res.status === 200 ? (JSON.parse(text) as Record<string, unknown>) : null };
}

describe('cluster - queues across three nodes', () => {
  beforeAll(async () => {
    nats = await NatsServer.start();
    for (const name of ['a', 'b', 'c'])
      nodes.push(await startBroker({ cluster: nats.url, 'node-name': name, 'amqp-port': 'off', shards: '2' }));
    await waitFor(
      async () => {
        for (const n of nodes) if ((await cluster(n)).members.length !== 3) return false;
        return true;
      },
      5000,
      'three members',
    );
  }, 30_000);

  afterAll(async () => {
    for (const n of nodes) await n.stop();
    await nats?.stop();
  });

  it('a queue placed on B: published from A, consumed from C with acks, every message exactly once; it exists on B only', async () => {
    const q = queueOn('b', 'jobs');
    const consumer = await JsonWsClient.connect(nodes[C].url);
    await consumer.subscribe('s', `/queue/${q}`, { ack: 'client', prefetch: 10 });
    for (let i = 0; i < 200; i++) expect(await post(nodes[A], `/queue/${q}`, `m${i}`)).toBe(200);
    const got: Frame[] = [];
    while (got.length < 200) {
      const f = await consumer.take((x) => x.op === 'message', 10_000);
      got.push(f);
      consumer.send({ op: 'ack', tag: f.tag });
    }
    expect(got.map((f) => f.payload).sort()).toEqual(Array.from({ length: 200 }, (_, i) => `m${i}`).sort());
    expect(got.every((f) => f.redelivered !== true)).toBe(true);
    await waitFor(
      async () => {
        const onB = await localQueue(nodes[B], q);
        return onB.status === 200 && onB.json?.messages === 0 && onB.json?.consumers === 1;
      },
      5000,
      'B holds nothing more',
    );
    expect((await localQueue(nodes[A], q)).status).toBe(404);
    expect((await localQueue(nodes[C], q)).status).toBe(404);
    await sleep(200);
    expect(consumer.frames.filter((f) => f.op === 'message')).toEqual([]);
    await consumer.close();
  });
});
