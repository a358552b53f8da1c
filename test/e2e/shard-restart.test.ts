import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Broker } from '../../src/front/broker.js';
import { publish, startBroker } from '../helpers/broker.js';
import { JsonWsClient } from '../helpers/ws-client.js';
import { shardFor } from '../../src/router/shard-map.js';

interface ShardStats {
  index: number;
  alive: boolean;
  restarts: number;
  lost: number;
  ready: number;
}

async function stats(broker: Broker): Promise<{ shards: ShardStats[] }> {
  return (await (await fetch(`${broker.url}/v1/stats`)).json()) as { shards: ShardStats[] };
}

async function until(check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('e2e - a shard that dies is restarted', () => {
  let broker: Broker;
  beforeAll(async () => {
    broker = await startBroker({ shards: '2' });
  });
  afterAll(async () => {
    await broker.stop();
  });

  it('supervisor - counts lost transient messages, reports the shard, restores subscriptions; the other shard keeps serving', async () => {
    // A consumed queue and a holding queue on shard 0, a watched queue on shard 1.
    const onShard = (prefix: string, shard: number): string => {
      for (let i = 0; ; i++) if (shardFor(`${prefix}${i}`, 2) === shard) return `${prefix}${i}`;
    };
    const queue = onShard('q', 0);
    const heldQueue = onShard('held', 0);
    const watched = onShard('w', 1);
    const heldShard = 0;

    const watcher = await JsonWsClient.connect(broker.url);
    await watcher.subscribe('t', `/queue/${watched}`);
    const consumer = await JsonWsClient.connect(broker.url);
    await consumer.subscribe('q', `/queue/${queue}`);
    for (let i = 0; i < 3; i++) await publish(broker, `queue/${heldQueue}`, `held${i}`);
    // HTTP's 200 can precede the shard's batch end, where its ready gauge is published: wait for it.
    await until(async () => (await stats(broker)).shards[heldShard].ready === 3);
    expect((await stats(broker)).shards[heldShard].ready).toBe(3);

    await broker.supervisor.crash(heldShard);
    // The consumer of a queue on the crashed shard is told; the watcher of shard 1 is not.
    const err = await consumer.take((f) => f.op === 'error');
    expect(err).toMatchObject({ code: 'shard_restarted', subscription: 'q' });
    expect(watcher.frames.filter((f) => f.op === 'error')).toEqual([]);
    await until(async () => {
      const s = await stats(broker);
      return s.shards[heldShard].alive && s.shards[heldShard].restarts === 1;
    });
    const after = await stats(broker);
    expect(after.shards[heldShard].lost).toBe(3);
    expect(after.shards[heldShard].ready).toBe(0);
    expect((await fetch(`${broker.url}/healthz`)).status).toBe(200);

    // Both subscriptions work after the restart (the one on the restarted shard was re-registered).
    await publish(broker, `queue/${watched}`, 'tick');
    expect((await watcher.messages(1, 't'))[0].payload).toBe('tick');
    await publish(broker, `queue/${queue}`, 'job');
    expect((await consumer.messages(1, 'q'))[0].payload).toBe('job');
    await watcher.close();
    await consumer.close();
  });

  it('healthz - reports 503 naming the shard while it is down', async () => {
    const crashed = broker.supervisor.crash(1);
    await crashed;
    const res = await fetch(`${broker.url}/healthz`);
    const body = (await res.json()) as { shards: Array<{ index: number; up: boolean }> };
    if (res.status === 503) {
      expect(body.shards.find((s) => s.index === 1)?.up).toBe(false);
    } else {
      // The restart (50 ms backoff) can beat the request; then the shard must have restarted.
      expect((await stats(broker)).shards[1].restarts).toBeGreaterThanOrEqual(1);
    }
    await until(async () => (await fetch(`${broker.url}/healthz`)).status === 200);
  });
});

describe('e2e - AMQP consumers across a shard restart', () => {
  it('the consumer on the dead shard gets its deliveries again after the restart, an ack of a voided delivery is no error, the other shard never stops', async () => {
    const amqp = (await import('amqplib')).default;
    const broker = await startBroker({ shards: '2' });
    try {
      const onShard = (prefix: string, shard: number): string => {
        for (let i = 0; ; i++) if (shardFor(`${prefix}${i}`, 2) === shard) return `${prefix}${i}`;
      };
      const crashedQueue = onShard('amqp.q', 0);
      const otherQueue = onShard('amqp.w', 1);
      const connection = await amqp.connect(broker.amqpUrl ?? '');
      const ch = await connection.createChannel();
      const errors: Error[] = [];
      ch.on('error', (e: Error) => errors.push(e));
      connection.on('error', (e: Error) => errors.push(e));
      await ch.assertQueue(crashedQueue, { durable: false });
      await ch.assertQueue(otherQueue, { durable: false });
      const got: string[] = [];
      const unacked: Array<import('amqplib').ConsumeMessage> = [];
      await ch.consume(crashedQueue, (m) => {
        if (m === null) return;
        got.push(`${crashedQueue}:${m.content}`);
        unacked.push(m);
      });
      await ch.consume(otherQueue, (m) => m && got.push(`${otherQueue}:${m.content}`), { noAck: true });
      ch.sendToQueue(crashedQueue, Buffer.from('before'));
      await until(async () => got.length === 1);

      await broker.supervisor.crash(0);
      ch.sendToQueue(otherQueue, Buffer.from('during'));
      await until(async () => got.includes(`${otherQueue}:during`));
      await until(async () => {
        const s = (await stats(broker)).shards[0];
        return s.alive && s.restarts === 1;
      });
      // The delivery from before the crash is void (its shard forgot it); acking it is no channel error.
      ch.ack(unacked[0]);
      // The queue's topology came back with the shard, and the consumer with it.
      ch.sendToQueue(crashedQueue, Buffer.from('after'));
      await until(async () => got.includes(`${crashedQueue}:after`));
      expect(got).toEqual([`${crashedQueue}:before`, `${otherQueue}:during`, `${crashedQueue}:after`]);
      expect(errors).toEqual([]);
      await connection.close();
    } finally {
      await broker.stop();
    }
  });
});
