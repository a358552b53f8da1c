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
import { tempDirs } from '../helpers/temp-dir.js';
import amqp from 'amqplib';
import { channelError } from '../helpers/amqp-client.js';
import { connect } from '../../src/index.js';
import { localName, VHOST_SEPARATOR } from '../../src/protocol/vhost-name.js';

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
      nodes.push(await startBroker({ cluster: nats.url, 'node-name': name, 'amqp-port': '0', shards: '2' }));
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

  it('prefetch and redelivery across nodes: a consumer on C holds 5 unacked, its socket closes, a consumer on A gets those 5 redelivered', async () => {
    const q = queueOn('b', 'redeliver');
    const first = await JsonWsClient.connect(nodes[C].url);
    await first.subscribe('s', `/queue/${q}`, { ack: 'client', prefetch: 5 });
    for (let i = 0; i < 12; i++) expect(await post(nodes[A], `/queue/${q}`, `r${i}`)).toBe(200);
    const held = await first.messages(5, 's');
    await sleep(300);
    // Prefetch 5, enforced by B's shard: nothing more while none is acked.
    expect(first.frames.filter((f) => f.op === 'message')).toEqual([]);
    expect(held.map((f) => f.payload)).toEqual(['r0', 'r1', 'r2', 'r3', 'r4']);
    await first.close();
    const second = await JsonWsClient.connect(nodes[A].url);
    await second.subscribe('s', `/queue/${q}`, { ack: 'client', prefetch: 100 });
    const got = await second.messages(12, 's');
    const redelivered = got.filter((f) => f.redelivered === true).map((f) => f.payload);
    expect(redelivered.sort()).toEqual(['r0', 'r1', 'r2', 'r3', 'r4']);
    expect(got.map((f) => f.payload).sort()).toEqual(Array.from({ length: 12 }, (_, i) => `r${i}`).sort());
    for (const f of got) second.send({ op: 'ack', tag: f.tag });
    await second.close();
  });

  it('a vhost`s queue placed on B: published in the vhost from A, consumed in it from C, exactly once; `/`s queue of that name is another', async () => {
    for (const n of nodes) {
      const res = await fetch(`${n.url}/v1/vhosts/staging`, { method: 'PUT', body: '{}', headers: { 'content-type': 'application/json' } });
      expect(res.status).toBeLessThan(300);
    }
    // Placement hashes vhost and name together (the qualified name).
    const q = localName(queueOn('b', `staging${VHOST_SEPARATOR}vjobs`));
    const consumer = await JsonWsClient.connect(nodes[C].url, undefined, 'staging');
    await consumer.subscribe('s', `/queue/${q}`, { ack: 'client', prefetch: 10 });
    for (let i = 0; i < 50; i++) expect(await post(nodes[A], `/queue/${q}?vhost=staging`, `v${i}`)).toBe(200);
    const got: Frame[] = [];
    while (got.length < 50) {
      const f = await consumer.take((x) => x.op === 'message', 10_000);
      got.push(f);
      consumer.send({ op: 'ack', tag: f.tag });
    }
    expect(got.map((f) => f.payload).sort()).toEqual(Array.from({ length: 50 }, (_, i) => `v${i}`).sort());
    expect(new Set(got.map((f) => f.destination))).toEqual(new Set([`/queue/${q}`]));
    // `/` has no queue of that name anywhere: the vhost's lives on B under its qualified name only.
    for (const n of nodes) expect((await localQueue(n, q)).status).toBe(404);
    await sleep(100);
    expect(consumer.frames.filter((f) => f.op === 'message')).toEqual([]);
    await consumer.close();
  });

  it('consumers on two nodes of a queue on a third take turns; every message exactly once', async () => {
    const q = queueOn('b', 'turns');
    const onA = await JsonWsClient.connect(nodes[A].url);
    const onC = await JsonWsClient.connect(nodes[C].url);
    await onA.subscribe('s', `/queue/${q}`, { ack: 'client', prefetch: 1 });
    await onC.subscribe('s', `/queue/${q}`, { ack: 'client', prefetch: 1 });
    await sleep(200);
    for (let i = 0; i < 40; i++) expect(await post(nodes[B], `/queue/${q}`, `t${i}`)).toBe(200);
    const seen: string[] = [];
    const perNode = [0, 0];
    const clients = [onA, onC];
    while (seen.length < 40) {
      for (let k = 0; k < 2; k++) {
        const i = clients[k].frames.findIndex((f) => f.op === 'message');
        if (i < 0) continue;
        const [f] = clients[k].frames.splice(i, 1);
        seen.push(String(f.payload));
        perNode[k]++;
        clients[k].send({ op: 'ack', tag: f.tag });
      }
      if (seen.length < 40) await sleep(5);
    }
    expect(seen.sort()).toEqual(Array.from({ length: 40 }, (_, i) => `t${i}`).sort());
    expect(perNode[0]).toBeGreaterThan(5);
    expect(perNode[1]).toBeGreaterThan(5);
    await onA.close();
    await onC.close();
  });

  it('B leaves holding messages: they are counted lost, its transient queue is placed anew, and C’s consumer moves with it', async () => {
    const q = queueOn('b', 'rehome');
    const consumer = await JsonWsClient.connect(nodes[C].url);
    await consumer.subscribe('s', `/queue/${q}`, { ack: 'client', prefetch: 1 });
    await sleep(100);
    for (let i = 0; i < 30; i++) expect(await post(nodes[A], `/queue/${q}`, `x${i}`)).toBe(200);
    await consumer.messages(1, 's');
    // B now holds 29 ready + 1 unacked; its next heartbeat says so.
    await sleep(700);
    const before = (await cluster(nodes[A])).queues;
    await nodes[B].stop();
    await waitFor(
      async () => (await cluster(nodes[A])).members.length === 2 && (await cluster(nodes[C])).members.length === 2,
      5000,
      'B out',
    );
    const after = (await cluster(nodes[A])).queues;
    expect(after.lostWithNodes - before.lostWithNodes).toBe(30);
    expect(after.rehomedQueues - before.rehomedQueues).toBeGreaterThanOrEqual(1);
    const c = (await cluster(nodes[C])).queues;
    expect(c.movedSubscriptions).toBeGreaterThanOrEqual(1);
    // The queue is placed anew among a and c, empty; the consumer on C gets what is published now.
    const owner = placeByHash(q, ['a', 'c']);
    await sleep(100);
    for (let i = 0; i < 5; i++) expect(await post(nodes[A], `/queue/${q}`, `y${i}`)).toBe(200);
    const got: string[] = [];
    while (got.length < 5) {
      const f = await consumer.take((x) => x.op === 'message' && String(x.payload).startsWith('y'), 5000);
      got.push(String(f.payload));
      consumer.send({ op: 'ack', tag: f.tag });
    }
    expect(got).toEqual(['y0', 'y1', 'y2', 'y3', 'y4']);
    expect((await localQueue(nodes[owner === 'a' ? A : C], q)).status).toBe(200);
    await consumer.close();
    nodes[B] = await startBroker({ cluster: nats.url, 'node-name': 'b', 'amqp-port': '0', shards: '2' });
    await waitFor(async () => (await cluster(nodes[A])).members.length === 3, 5000, 'B back');
  });

  it('AMQP: a queue declared on C is declared again (a no-op) and published to from A with confirms, consumed from B with acks, exactly once', async () => {
    const onC = await amqp.connect(nodes[C].amqpUrl as string);
    const onA = await amqp.connect(nodes[A].amqpUrl as string);
    const onB = await amqp.connect(nodes[B].amqpUrl as string);
    const q = 'amqp-tasks';
    await (await onC.createChannel()).assertQueue(q, { durable: false });
    await waitFor(
      async () => (await cluster(nodes[A])).queues.placed > 0 && (await localQueue(nodes[C], q)).status === 200,
      5000,
      'announced',
    );
    await sleep(100);
    const pub = await onA.createConfirmChannel();
    expect((await pub.assertQueue(q, { durable: false })).queue).toBe(q);
    for (let i = 0; i < 50; i++) pub.sendToQueue(q, Buffer.from(`a${i}`));
    await pub.waitForConfirms();
    const sub = await onB.createChannel();
    await sub.prefetch(5);
    const got: string[] = [];
    const done = new Promise<void>((resolve) => {
      void sub.consume(q, (m) => {
        if (m === null) return;
        got.push(m.content.toString());
        sub.ack(m);
        if (got.length === 50) resolve();
      });
    });
    await done;
    expect(got).toEqual(Array.from({ length: 50 }, (_, i) => `a${i}`));
    expect((await localQueue(nodes[A], q)).status).toBe(404);
    expect((await localQueue(nodes[B], q)).status).toBe(404);
    await waitFor(async () => (await localQueue(nodes[C], q)).json?.messages === 0, 5000, 'C holds none');
    await onA.close();
    await onB.close();
    await onC.close();
  });

  it('exclusive and server-named queues stay on their node; a topic subscription is never placed elsewhere', async () => {
    const onC = await JsonWsClient.connect(nodes[C].url);
    await onC.subscribe('t', '/topic/stay.here');
    const placed = (await cluster(nodes[A])).queues.placed;
    await sleep(200);
    expect((await cluster(nodes[A])).queues.placed).toBe(placed);
    await onC.close();
  });

  it('confirms: a publish to a queue on another node is confirmed once that node has it; with NATS away it is refused (node_unavailable), never confirmed', async () => {
    const q = queueOn('b', 'confirmed');
    const client = await connect(nodes[A].url, { confirms: true });
    await Promise.all(Array.from({ length: 100 }, (_, i) => client.publish(`/queue/${q}`, `c${i}`)));
    await waitFor(async () => (await localQueue(nodes[B], q)).json?.messages === 100, 2000, 'B holds the 100 confirmed');
    await client.close();
    await nats.kill();
    await waitFor(async () => !(await cluster(nodes[A])).nats.connected, 5000, 'A sees NATS gone');
    const refused = await fetch(`${nodes[A].url}/v1/publish/queue/${q}`, { method: 'POST', body: 'lost?' });
    expect(refused.status).toBe(503);
    expect(await refused.json()).toMatchObject({ error: 'node_unavailable' });
    await nats.restart();
    for (const n of nodes)
      await waitFor(async () => (await cluster(n)).nats.connected && (await cluster(n)).members.length === 3, 10_000, 'back');
    expect(await post(nodes[A], `/queue/${q}`, 'after')).toBe(200);
    await waitFor(async () => (await localQueue(nodes[B], q)).json?.messages === 101, 2000, 'B has the one after');
  });
});

describe('cluster - a durable queue waits for its node', () => {
  const dirs = tempDirs('shardmq-cluster-');
  let server: NatsServer;
  let a: Broker;
  let b: Broker;
  const startB = (dataDir: string): Promise<Broker> =>
    startBroker({ cluster: server.url, 'node-name': 'b', 'amqp-port': '0', 'data-dir': dataDir });

  beforeAll(async () => {
    server = await NatsServer.start();
    a = await startBroker({ cluster: server.url, 'node-name': 'a', 'amqp-port': '0' });
    b = await startB(dirs.make());
  }, 30_000);

  afterAll(async () => {
    await a?.stop();
    await b?.stop();
    await server?.stop();
    dirs.cleanup();
  });

  it('its node out: publishes from A get 503 node_unavailable, nothing is placed elsewhere; back with its node and its messages', async () => {
    const q = queueOn('b', 'durable', ['a', 'b']);
    const dir = dirs.make();
    await b.stop();
    b = await startB(dir);
    await waitFor(async () => (await cluster(a)).members.length === 2, 5000, 'two members');
    // Confirmed (200) only once B's shard has them on disk: B's log has them however soon it stops.
    for (let i = 0; i < 3; i++) expect(await post(a, `/queue/${q}`, `d${i}`)).toBe(200);
    expect((await localQueue(b, q)).json?.messages).toBe(3);
    expect((await localQueue(b, q)).json?.durable).toBe(true);
    await b.stop();
    await waitFor(async () => (await cluster(a)).members.length === 1, 5000, 'B out');
    const refused = await fetch(`${a.url}/v1/publish/queue/${q}`, { method: 'POST', body: 'while away' });
    expect(refused.status).toBe(503);
    expect(await refused.json()).toMatchObject({ error: 'node_unavailable', message: expect.stringContaining("lives on node 'b'") });
    expect((await localQueue(a, q)).status).toBe(404);
    // AMQP: as RabbitMQ says of a durable queue whose home node is down, NOT_FOUND, closing the channel.
    const amqpA = await amqp.connect(a.amqpUrl as string);
    const err = await channelError(amqpA, (ch) => {
      ch.sendToQueue(q, Buffer.from('while away'));
      return ch.checkQueue(q);
    });
    expect(err.code).toBe(404);
    expect(err.message).toMatch(/lives on node 'b', which is out of the cluster/);
    await amqpA.close();
    b = await startB(dir);
    await waitFor(async () => (await post(a, `/queue/${q}`, 'd3')) === 200, 5000, 'B back: publishes go through');
    const consumer = await JsonWsClient.connect(a.url);
    await consumer.subscribe('s', `/queue/${q}`);
    expect((await consumer.messages(4, 's')).map((f) => f.payload)).toEqual(['d0', 'd1', 'd2', 'd3']);
    await consumer.close();
  });
});
