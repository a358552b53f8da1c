/**
 * Scale points over subscriptions and connections, for shardmq and, side by side, NATS core:
 * - N wildcard subscriptions (`a.<i>.*`, each its own pattern) spread over 10 connections, then the
 *   broker's memory per subscription, latency at 2k msg/s and 1→1 open-loop throughput on other
 *   subjects (what every message pays for the subscriptions that exist);
 * - N idle connections with one subscription each, then memory per connection and latency.
 * A fresh server per point; shardmq with `--shards 1`, so all of it sits on the shard that carries
 * the traffic.
 */
import { connect, type ShardmqClient } from '../index.js';
import { startBrokerProcess } from './broker-process.js';
import { runOpenLoop, type OpenLoopSystem } from './open-loop.js';
import { natsOpenLoop, shardmqOpenLoop } from './open-loop-systems.js';
import { startNatsServer, type NatsConnection, type NatsModule } from './peers.js';
import { processRssBytes } from './proc.js';
import { LatencyProbe, pct, sleep } from './scale-probe.js';

/** Connections the wildcard subscriptions are spread over (the "over 10 connections"). */
export const SUBSCRIPTION_CONNECTIONS = 10;
const SETUP_BATCH = 2000;
const CONNECT_BATCH = 200;

export type ScaleSystem = 'shardmq' | 'nats';

export interface SubscriptionPoint {
  readonly system: ScaleSystem;
  readonly subscriptions: number;
  readonly setupSeconds: number;
  readonly rssPerSubscriptionBytes: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly openLoopPerSecond: number;
  readonly lost: number;
  /** What the server said it dropped during the open-loop run (null: it does not say). */
  readonly dropped: number | null;
}

export interface ConnectionPoint {
  readonly system: ScaleSystem;
  readonly connections: number;
  readonly setupSeconds: number;
  readonly rssPerConnectionBytes: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
}

export interface ScaleOptions {
  readonly quick: boolean;
  readonly progress: (message: string) => void;
}

/** A server under test: its pid and URL, how to open clients, subscribe, publish, and stop. */
interface Server {
  readonly pid: number;
  openLoop(): OpenLoopSystem;
  /** A client; `subscribe` calls `onMessage` with each payload as text. */
  client(): Promise<ScaleClient>;
  stop(): Promise<void>;
}
interface ScaleClient {
  subscribe(subject: string, onMessage?: (text: string) => void): Promise<void>;
  publish(subject: string, text: string): void;
  close(): Promise<void>;
}

async function shardmqServer(extra: readonly string[]): Promise<Server> {
  const broker = await startBrokerProcess(['--shards', '1', ...extra]);
  const client = async (): Promise<ScaleClient> => {
    const c: ShardmqClient = await connect(broker.url, { confirms: false, reconnect: false });
    return {
      subscribe: async (subject, onMessage) => {
        await c.subscribe(`/topic/${subject}`, { ack: 'auto' }, onMessage === undefined ? () => undefined : (m) => onMessage(m.text()));
      },
      publish: (subject, text) => c.publishNoWait(`/topic/${subject}`, text),
      close: () => c.close(),
    };
  };
  return { pid: broker.pid, openLoop: () => shardmqOpenLoop(broker.url, broker.pid, false), client, stop: () => broker.stop() };
}

async function natsServer(nats: NatsModule, binary: string): Promise<Server> {
  const server = await startNatsServer(binary);
  const servers = `127.0.0.1:${server.port}`;
  const encoder = new TextEncoder();
  const decoder = new TextDecoder();
  const client = async (): Promise<ScaleClient> => {
    const nc: NatsConnection = await nats.connect({ servers, noEcho: true, maxReconnectAttempts: 0 });
    return {
      subscribe: async (subject, onMessage) => {
        nc.subscribe(subject, { callback: (_err, msg) => onMessage?.(decoder.decode(msg.data)) });
        await nc.flush(); // the server has the subscription
      },
      publish: (subject, text) => nc.publish(subject, encoder.encode(text)),
      close: () => nc.close(),
    };
  };
  return { pid: server.pid, openLoop: () => natsOpenLoop(nats, server), client, stop: () => server.stop() };
}

/** Latency at 2k msg/s on a subject of its own, through a publisher and a subscriber of their own. */
async function latency(server: Server, quick: boolean): Promise<{ p50Ms: number; p99Ms: number }> {
  const sub = await server.client();
  const pub = await server.client();
  try {
    const probe = new LatencyProbe((sentAt) => pub.publish('scale.lat', sentAt));
    await sub.subscribe('scale.lat', (text) => probe.record(text));
    const sorted = await probe.run(quick ? 1500 : 3000);
    return { p50Ms: pct(sorted, 50), p99Ms: pct(sorted, 99) };
  } finally {
    await Promise.all([sub.close(), pub.close()]);
  }
}

export async function subscriptionPoint(
  o: ScaleOptions,
  system: ScaleSystem,
  subscriptions: number,
  nats: { client: NatsModule; binary: string } | null,
): Promise<SubscriptionPoint> {
  const perConnection = Math.ceil(subscriptions / SUBSCRIPTION_CONNECTIONS);
  const server =
    system === 'shardmq'
      ? await shardmqServer(['--max-subscriptions', String(Math.max(1000, perConnection + 10))])
      : await natsServer((nats as NonNullable<typeof nats>).client, (nats as NonNullable<typeof nats>).binary);
  const clients: ScaleClient[] = [];
  try {
    for (let i = 0; i < SUBSCRIPTION_CONNECTIONS; i++) clients.push(await server.client());
    await sleep(300);
    const rssBefore = processRssBytes(server.pid);
    const t0 = performance.now();
    for (let i = 0; i < subscriptions; i += SETUP_BATCH) {
      const batch: Promise<void>[] = [];
      for (let k = i; k < Math.min(subscriptions, i + SETUP_BATCH); k++) batch.push(clients[k % clients.length].subscribe(`a.${k}.*`));
      await Promise.all(batch);
    }
    const setupSeconds = (performance.now() - t0) / 1000;
    await sleep(1000);
    const rssPerSubscriptionBytes = (processRssBytes(server.pid) - rssBefore) / subscriptions;
    const lat = await latency(server, o.quick);
    const open = await runOpenLoop(server.openLoop(), {
      subscribers: 1,
      messages: o.quick ? 100_000 : 500_000,
      maxSeconds: 30,
      drainSeconds: 10,
      payloadBytes: 128,
    });
    const point: SubscriptionPoint = {
      system,
      subscriptions,
      setupSeconds,
      rssPerSubscriptionBytes,
      ...lat,
      openLoopPerSecond: open.deliveredPerSecond,
      lost: open.lost,
      dropped: open.serverDropped,
    };
    o.progress(
      `scale ${system} ${subscriptions.toLocaleString('en-US')} wildcard subscriptions: set up in ${setupSeconds.toFixed(1)} s, ` +
        `${(rssPerSubscriptionBytes / 1024).toFixed(2)} KiB each; latency p50 ${lat.p50Ms.toFixed(2)} ms p99 ${lat.p99Ms.toFixed(2)} ms; ` +
        `1→1 ${(open.deliveredPerSecond / 1e3).toFixed(0)}k/s lost ${open.lost} dropped ${open.serverDropped ?? 'n/a'}`,
    );
    return point;
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await server.stop();
  }
}

export async function connectionPoint(
  o: ScaleOptions,
  system: ScaleSystem,
  connections: number,
  nats: { client: NatsModule; binary: string } | null,
): Promise<ConnectionPoint> {
  const server =
    system === 'shardmq'
      ? await shardmqServer(['--max-connections', String(connections + 100)])
      : await natsServer((nats as NonNullable<typeof nats>).client, (nats as NonNullable<typeof nats>).binary);
  const clients: ScaleClient[] = [];
  try {
    await sleep(300);
    const rssBefore = processRssBytes(server.pid);
    const t0 = performance.now();
    for (let i = 0; i < connections; i += CONNECT_BATCH) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(CONNECT_BATCH, connections - i) }, async (_, k) => {
          const c = await server.client();
          await c.subscribe(`c.${i + k}`);
          return c;
        }),
      );
      clients.push(...batch);
    }
    const setupSeconds = (performance.now() - t0) / 1000;
    await sleep(1000);
    const rssPerConnectionBytes = (processRssBytes(server.pid) - rssBefore) / connections;
    const lat = await latency(server, o.quick);
    o.progress(
      `scale ${system} ${connections.toLocaleString('en-US')} idle connections (one subscription each): set up in ${setupSeconds.toFixed(1)} s, ` +
        `${(rssPerConnectionBytes / 1024).toFixed(1)} KiB each; latency p50 ${lat.p50Ms.toFixed(2)} ms p99 ${lat.p99Ms.toFixed(2)} ms`,
    );
    return { system, connections, setupSeconds, rssPerConnectionBytes, ...lat };
  } finally {
    for (let i = 0; i < clients.length; i += CONNECT_BATCH) await Promise.all(clients.slice(i, i + CONNECT_BATCH).map((c) => c.close()));
    await server.stop();
  }
}
