/**
 * A cluster losing a node and its NATS server: SIGKILL of node B (a process of its own) while C
 * publishes and A subscribes; B's client fails over to A with its subscription back; the
 * membership drops B within 3 s and takes it back when it restarts; what B's queue held is counted
 * lost and the queue placed anew; what B's consumer held unacked of A's queue is redelivered; NATS killed and restarted:
 * nodes reconnect, traffic resumes, and what could not cross meanwhile is counted.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Broker } from '../../src/front/broker.js';
import type { ClusterStatus } from '../../src/cluster/cluster-node.js';
import { connect, type ShardmqClient } from '../../src/index.js';
import { startBroker } from '../helpers/broker.js';
import { NatsServer } from '../helpers/nats-server.js';
import { killServe, startServe, type ServeProcess } from '../helpers/serve-process.js';
import { JsonWsClient } from '../helpers/ws-client.js';
import { placeByHash } from '../../src/cluster/queue-placement.js';
import { sleep, waitFor } from '../helpers/http.js';

let nats: NatsServer;
let a: Broker;
let c: Broker;
let b: ServeProcess;

async function cluster(url: string): Promise<ClusterStatus> {
  return (await (await fetch(`${url}/v1/cluster`)).json()) as ClusterStatus;
}

async function names(url: string): Promise<string[]> {
  return (await cluster(url)).members.map((m) => m.name);
}

function startB(): Promise<ServeProcess> {
  return startServe(['--shards', '1', '--amqp-port', 'off', '--cluster', nats.url, '--node-name', 'b']);
}

/** A queue name the three nodes place on `node`. */
function queueOn(node: string, prefix: string): string {
  for (let i = 0; ; i++) if (placeByHash(`${prefix}${i}`, ['a', 'b', 'c']) === node) return `${prefix}${i}`;
}

async function post(url: string, destination: string, body: string): Promise<number> {
  return (await fetch(`${url}/v1/publish/${destination.replace(/^\//, '')}`, { method: 'POST', body })).status;
}

describe('cluster - a node and NATS fail', () => {
  beforeAll(async () => {
    nats = await NatsServer.start();
    a = await startBroker({ cluster: nats.url, 'node-name': 'a', 'amqp-port': 'off' });
    c = await startBroker({ cluster: nats.url, 'node-name': 'c', 'amqp-port': 'off' });
    b = await startB();
    await waitFor(async () => (await names(a.url)).join() === 'a,b,c' && (await names(c.url)).join() === 'a,b,c', 10_000, 'three members');
  }, 40_000);

  afterAll(async () => {
    await killServe(b);
    await a?.stop();
    await c?.stop();
    await nats?.stop();
  });

  it('SIGKILL of B: A and C keep serving, B is out within 3 s, its client fails over to A with its subscription, B rejoins', async () => {
    const onA = await JsonWsClient.connect(a.url);
    await onA.subscribe('s', '/topic/fo.#');
    const client: ShardmqClient = await connect([b.url, a.url], { reconnect: { initialDelayMs: 50, maxDelayMs: 200 } });
    const got: string[] = [];
    const sub = await client.subscribe('/topic/fo.#', {}, (m) => {
      got.push(m.text());
    });
    await waitFor(
      async () => (await cluster(b.url)).interest.subjects >= 2 && (await cluster(a.url)).interest.subjects >= 2,
      5000,
      'interest',
    );
    await sleep(50);
    expect(await post(c.url, '/topic/fo.x', 'before')).toBe(200);
    await waitFor(() => got.includes('before'), 5000, 'the client on B got the first message');
    expect((await onA.messages(1, 's'))[0].payload).toBe('before');

    // B holds a queue with 7 messages nobody consumes, and consumes 3 (unacked) of a queue on A.
    const held = queueOn('b', 'held');
    const onAQueue = queueOn('a', 'consumed');
    for (let i = 0; i < 7; i++) expect(await post(c.url, `/queue/${held}`, `h${i}`)).toBe(200);
    const consumerOnB = await JsonWsClient.connect(b.url);
    await consumerOnB.subscribe('q', `/queue/${onAQueue}`, { ack: 'client', prefetch: 3 });
    for (let i = 0; i < 5; i++) expect(await post(c.url, `/queue/${onAQueue}`, `u${i}`)).toBe(200);
    expect((await consumerOnB.messages(3, 'q')).map((f) => f.payload)).toEqual(['u0', 'u1', 'u2']);
    // B's next heartbeat carries what it holds.
    await sleep(700);
    const lostBefore = (await cluster(a.url)).queues.lostWithNodes;

    const failedOver = new Promise<void>((resolve) => client.once('reconnected', () => resolve()));
    const killedAt = Date.now();
    await killServe(b);
    // C goes on publishing and A's subscriber goes on receiving while B is gone.
    for (let i = 0; i < 20; i++) expect(await post(c.url, '/topic/fo.x', `during${i}`)).toBe(200);
    expect((await onA.messages(20, 's')).map((f) => f.payload)).toEqual(Array.from({ length: 20 }, (_, i) => `during${i}`));
    await waitFor(async () => (await names(a.url)).join() === 'a,c' && (await names(c.url)).join() === 'a,c', 3000, 'B out within 3 s');
    const outAfter = Date.now() - killedAt;
    expect(outAfter).toBeLessThanOrEqual(3000);
    expect((await cluster(a.url)).changes.map((x) => [x.kind, x.node])).toContainEqual(['expired', 'b']);
    // What B held is counted lost (7 ready; the 3 it consumed were A's, and come back: below).
    expect((await cluster(a.url)).queues.lostWithNodes - lostBefore).toBe(7);
    // Its transient queue is placed anew, empty, and works.
    expect(await post(c.url, `/queue/${held}`, 'again')).toBe(200);
    const rehomed = await JsonWsClient.connect(c.url);
    await rehomed.subscribe('h', `/queue/${held}`);
    expect((await rehomed.messages(1, 'h'))[0].payload).toBe('again');
    // The 3 deliveries B's consumer held unacked went back to A's queue, redelivered.
    await rehomed.subscribe('u', `/queue/${onAQueue}`, { ack: 'client', prefetch: 10 });
    const back = await rehomed.messages(5, 'u');
    expect(back.filter((f) => f.redelivered === true).map((f) => f.payload)).toEqual(['u0', 'u1', 'u2']);
    expect(back.map((f) => f.payload).sort()).toEqual(['u0', 'u1', 'u2', 'u3', 'u4']);
    await rehomed.close();

    await failedOver;
    expect(client.url).toContain(`:${new URL(a.url).port}/`);
    // The restored subscription is on A now: a publish on C reaches the client there.
    await waitFor(
      async () => {
        await post(c.url, '/topic/fo.y', 'after');
        await sleep(100);
        return got.includes('after');
      },
      5000,
      'the failed-over client receives again',
    );
    expect(sub.active).toBe(true);

    b = await startB();
    await waitFor(async () => (await names(a.url)).join() === 'a,b,c', 5000, 'B back');
    const changes = (await cluster(a.url)).changes.map((x) => [x.kind, x.node]);
    expect(changes.filter(([, n]) => n === 'b').map(([k]) => k)).toEqual(['joined', 'expired', 'joined']);
    await client.close();
    await onA.close();
  }, 40_000);

  it('NATS restarted: every node reconnects and traffic resumes; what was published meanwhile is counted, not lost silently', async () => {
    const onA = await JsonWsClient.connect(a.url);
    await onA.subscribe('s', '/topic/nr.*');
    await waitFor(async () => (await cluster(a.url)).interest.subjects >= 1, 5000, 'interest');
    await sleep(50);
    expect(await post(c.url, '/topic/nr.x', 'up')).toBe(200);
    expect((await onA.messages(1, 's'))[0].payload).toBe('up');

    const before = await cluster(c.url);
    await nats.kill();
    await waitFor(async () => !(await cluster(c.url)).nats.connected, 5000, 'C sees NATS gone');
    for (let i = 0; i < 7; i++) expect(await post(c.url, '/topic/nr.x', `down${i}`)).toBe(200);
    const down = await cluster(c.url);
    expect(down.forwarded.droppedDisconnected - before.forwarded.droppedDisconnected).toBe(7);

    await nats.restart();
    for (const url of [a.url, c.url, b.url]) {
      await waitFor(
        async () => {
          const s = await cluster(url);
          return s.nats.connected && s.nats.reconnects >= 1 && s.members.length === 3;
        },
        10_000,
        `${url} reconnected`,
      );
    }
    expect(await post(c.url, '/topic/nr.x', 'again')).toBe(200);
    expect((await onA.messages(1, 's', 5000))[0].payload).toBe('again');
    // None of the seven reached A (they were counted on C instead).
    expect(onA.frames.filter((f) => f.op === 'message')).toEqual([]);
    await onA.close();
  }, 40_000);
});
