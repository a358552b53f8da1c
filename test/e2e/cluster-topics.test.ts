/**
 * Three brokers joined through a real nats-server on loopback: a publish on any node reaches
 * every matching topic and exchange subscriber on every node, exactly once, and crosses only
 * to nodes with a matching binding; membership sees a node leave at once and come back.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Broker } from '../../src/front/broker.js';
import type { ClusterStatus } from '../../src/cluster/cluster-node.js';
import { startBroker } from '../helpers/broker.js';
import { NatsServer } from '../helpers/nats-server.js';
import { JsonWsClient } from '../helpers/ws-client.js';
import { sleep, waitFor } from '../helpers/http.js';

let nats: NatsServer;
const nodes: Broker[] = [];

async function cluster(broker: Broker): Promise<ClusterStatus> {
  return (await (await fetch(`${broker.url}/v1/cluster`)).json()) as ClusterStatus;
}

async function startNode(name: string): Promise<Broker> {
  return startBroker({ cluster: nats.url, 'node-name': name, 'amqp-port': 'off' });
}

async function post(broker: Broker, destination: string, body: string): Promise<number> {
  return (await fetch(`${broker.url}/v1/publish/${destination.replace(/^\//, '')}`, { method: 'POST', body })).status;
}

async function api(broker: Broker, method: string, path: string, body?: unknown): Promise<number> {
  const res = await fetch(broker.url + path, {
    method,
    body: body === undefined ? undefined : JSON.stringify(body),
    headers: { 'content-type': 'application/json' },
  });
  await res.arrayBuffer();
  return res.status;
}

/** Waits until every node sees `names` as the members. */
async function membersAre(names: string[], on: Broker[] = nodes): Promise<void> {
  await waitFor(
    async () => {
      for (const b of on) {
        const got = (await cluster(b)).members.map((m) => m.name);
        if (JSON.stringify(got) !== JSON.stringify(names)) return false;
      }
      return true;
    },
    5000,
    `members ${names.join(',')}`,
  );
}

/** Waits until `broker` subscribes on NATS to at least `n` subjects (its interest reached NATS). */
async function interestAtLeast(broker: Broker, n: number): Promise<void> {
  await waitFor(async () => (await cluster(broker)).interest.subjects >= n, 5000, 'interest');
  // The SUB reached the NATS server once a round trip after it: the status answer took one.
  await sleep(50);
}

describe('cluster - topics and exchanges across three nodes', () => {
  beforeAll(async () => {
    nats = await NatsServer.start();
    for (const name of ['a', 'b', 'c']) nodes.push(await startNode(name));
    await membersAre(['a', 'b', 'c']);
  }, 30_000);

  afterAll(async () => {
    for (const b of nodes) await b.stop();
    await nats?.stop();
  });

  it('membership - every node lists all three, with where clients reach each', async () => {
    const status = await cluster(nodes[0]);
    expect(status.enabled).toBe(true);
    expect(status.node).toBe('a');
    expect(status.nats.connected).toBe(true);
    expect(status.members.map((m) => [m.name, m.self, m.state])).toEqual([
      ['a', true, 'up'],
      ['b', false, 'up'],
      ['c', false, 'up'],
    ]);
    expect(status.members[1].http).toBe(nodes[1].url);
  });

  it('vhosts - a publish in staging on A reaches staging`s exchange subscribers on B and C, named as staging names it; `/`s gets nothing', async () => {
    for (const b of nodes) expect(await api(b, 'PUT', '/v1/vhosts/staging', {})).toBeLessThan(300);
    const before = await Promise.all(nodes.map(async (b) => (await cluster(b)).interest.subjects));
    const staging = await Promise.all(nodes.slice(1).map((b) => JsonWsClient.connect(b.url, undefined, 'staging')));
    const root = await JsonWsClient.connect(nodes[2].url);
    for (const c of [...staging, root]) await c.subscribe('x', '/exchange/amq.topic/vh.#');
    for (const i of [1, 2]) await interestAtLeast(nodes[i], before[i] + 1);
    for (let i = 0; i < 10; i++) expect(await post(nodes[0], `/exchange/amq.topic/vh.t?vhost=staging`, `s${i}`)).toBe(200);
    for (const c of staging) {
      const got = await c.messages(10, 'x');
      expect(got.map((f) => f.payload)).toEqual(Array.from({ length: 10 }, (_, i) => `s${i}`));
      // The exchange as staging's clients name it, though it crossed nodes under its qualified name.
      expect(new Set(got.map((f) => f.destination))).toEqual(new Set(['/exchange/amq.topic/vh.t']));
    }
    await sleep(200);
    expect(root.frames.filter((f) => f.op === 'message')).toEqual([]);
    for (const c of staging) expect(c.frames.filter((f) => f.op === 'message')).toEqual([]);
    await Promise.all([...staging, root].map((c) => c.close()));
  });

  it('topics - a publish on A reaches exact, *, # and mid-# subscribers on A, B and C once each, and nothing else', async () => {
    const clients = await Promise.all(nodes.map((b) => JsonWsClient.connect(b.url)));
    const patterns = ['sensors.temp', 'sensors.*', 'sensors.#', '#.temp', 'other.*'];
    for (const c of clients) for (const p of patterns) await c.subscribe(p, `/topic/${p}`);
    for (const b of nodes.slice(1)) await interestAtLeast(b, 5);
    for (let i = 0; i < 20; i++) expect(await post(nodes[0], '/topic/sensors.temp', `m${i}`)).toBe(200);
    for (const c of clients) {
      for (const p of patterns.slice(0, 4)) {
        const got = await c.messages(20, p);
        expect(got.map((f) => f.payload)).toEqual(Array.from({ length: 20 }, (_, i) => `m${i}`));
      }
    }
    // Published on C this time: A and B get it too; still nothing for other.* anywhere, and no extra copy.
    expect(await post(nodes[2], '/topic/sensors.humidity', 'h')).toBe(200);
    for (const c of clients) {
      expect((await c.messages(1, 'sensors.*'))[0].payload).toBe('h');
      expect((await c.messages(1, 'sensors.#'))[0].payload).toBe('h');
    }
    await sleep(200);
    for (const c of clients) expect(c.frames.filter((f) => f.op === 'message')).toEqual([]);
    // B got each batch once although several of its subjects matched it (the second copy is dropped).
    const b = await cluster(nodes[1]);
    expect(b.received.duplicateBatches).toBeGreaterThan(0);
    await Promise.all(clients.map((c) => c.close()));
  });

  it('interest - a message crosses only to nodes with a matching binding', async () => {
    const before = await Promise.all(nodes.map(cluster));
    const onlyB = await JsonWsClient.connect(nodes[1].url);
    await onlyB.subscribe('s', '/topic/only.b');
    await interestAtLeast(nodes[1], 1);
    for (let i = 0; i < 10; i++) expect(await post(nodes[0], '/topic/only.b', `x${i}`)).toBe(200);
    expect((await onlyB.messages(10, 's')).map((f) => f.payload)).toEqual(Array.from({ length: 10 }, (_, i) => `x${i}`));
    await sleep(200);
    const after = await Promise.all(nodes.map(cluster));
    expect(after[1].received.messages - before[1].received.messages).toBe(10);
    expect(after[2].received.messages - before[2].received.messages).toBe(0);
    expect(after[0].forwarded.messages - before[0].forwarded.messages).toBe(10);
    await onlyB.close();
  });

  it('exchanges - fanout and direct exchanges declared on each node route across nodes', async () => {
    for (const b of nodes) {
      expect(await api(b, 'PUT', '/v1/exchanges/logs', { type: 'fanout' })).toBe(201);
      expect(await api(b, 'PUT', '/v1/exchanges/alerts', { type: 'direct' })).toBe(201);
    }
    const clients = await Promise.all(nodes.map((b) => JsonWsClient.connect(b.url)));
    for (const c of clients) {
      await c.subscribe('logs', '/exchange/logs');
      await c.subscribe('crit', '/exchange/alerts/critical');
    }
    for (const b of nodes.slice(1)) await interestAtLeast(b, 3);
    expect(await post(nodes[1], '/exchange/logs/anything', 'L')).toBe(200);
    expect(await post(nodes[1], '/exchange/alerts/info', 'not for crit')).toBe(200);
    expect(await post(nodes[1], '/exchange/alerts/critical', 'C')).toBe(200);
    for (const c of clients) {
      expect((await c.messages(1, 'logs'))[0].payload).toBe('L');
      expect((await c.messages(1, 'crit'))[0].payload).toBe('C');
    }
    await sleep(200);
    for (const c of clients) expect(c.frames.filter((f) => f.op === 'message')).toEqual([]);
    await Promise.all(clients.map((c) => c.close()));
  });

  it('membership - a node that stops is out at once everywhere, and back when it restarts', async () => {
    const b = nodes[1];
    await b.stop();
    await membersAre(['a', 'c'], [nodes[0], nodes[2]]);
    const changes = (await cluster(nodes[0])).changes.map((c) => [c.kind, c.node]);
    expect(changes).toContainEqual(['left', 'b']);
    nodes[1] = await startNode('b');
    await membersAre(['a', 'b', 'c']);
    expect((await cluster(nodes[0])).changes.map((c) => [c.kind, c.node])).toContainEqual(['joined', 'b']);
  });
});
