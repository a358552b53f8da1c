/**
 * Fan-out late (src/front/delivery-groups.ts): auto-ack `/topic/` subscriptions of the exported
 * client to one pattern share one stream, one shard record and one encoded frame per message.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Broker } from '../../src/front/broker.js';
import { connect, type Message } from '../../src/index.js';
import { startBroker } from '../helpers/broker.js';
import { clientPool } from '../helpers/client-pool.js';
import { brokerStats, waitFor } from '../helpers/http.js';
import { JsonWsClient } from '../helpers/ws-client.js';

interface QueueRow {
  name: string;
  consumers: number;
  shard: number;
  arguments: Record<string, unknown>;
}

const queues = async (broker: Broker): Promise<QueueRow[]> => (await (await fetch(`${broker.url}/v1/queues`)).json()) as QueueRow[];
/** The carrier queue of `/`'s amq.topic: every light subscription to it takes its messages from it. */
const carrier = async (broker: Broker): Promise<QueueRow | undefined> =>
  (await queues(broker)).find((q) => q.arguments['x-shardmq-carries'] === 'amq.topic');
/**
 * A subscriber's handler that records each message's number (`<n>:…`) and stops at the first until
 * `release()`: its client's buffer fills, it stops reading, its socket fills past high water.
 */
function stallAfterFirst(): { got: number[]; handler: (m: Message) => Promise<void>; release: () => void } {
  const got: number[] = [];
  let release: () => void = () => undefined;
  const held = new Promise<void>((r) => {
    release = r;
  });
  const handler = async (m: Message): Promise<void> => {
    got.push(Number(m.text().split(':')[0]));
    if (got.length === 1) await held;
  };
  return { got, handler, release: () => release() };
}

/** Messages in `/`'s amq.topic carrier (ready and unacked). */
const depthOfCarrier = async (broker: Broker): Promise<number> =>
  ((await carrier(broker)) as unknown as { messages?: number } | undefined)?.messages ?? 0;
const streams = async (broker: Broker): Promise<number> =>
  ((await brokerStats(broker.url)) as unknown as { connections: { streams: number } }).connections.streams;
const delivered = async (broker: Broker): Promise<number> => (await brokerStats(broker.url)).shards.reduce((s, x) => s + x.delivered, 0);

describe('e2e - shared streams', () => {
  const pool = clientPool({ shards: '2' });
  const open = pool.open.bind(pool);

  it('one record per message for every member: each gets all, in order, with its exchange, key and properties', async () => {
    const members = await Promise.all([open(), open(), open()]);
    const got: Message[][] = [[], [], []];
    for (const [i, c] of members.entries()) await c.subscribe('/topic/shared.*', {}, (m) => void got[i].push(m));
    // Beside them, a JSON subscriber (its own queue, as before).
    const json = await JsonWsClient.connect(pool.broker.url);
    await json.subscribe('j', '/topic/shared.*');
    const before = await delivered(pool.broker);
    const pub = await open();
    const n = 300;
    for (let i = 0; i < n; i++) pub.publishNoWait(`/topic/shared.k${i % 3}`, `m${i}`, { properties: { headers: { i } } });
    await pub.flush();
    await waitFor(() => got.every((g) => g.length >= n), 10_000, 'every member has every message');
    for (const g of got) {
      expect(g.map((m) => m.text())).toEqual(Array.from({ length: n }, (_, i) => `m${i}`));
      expect(g.map((m) => m.destination)).toEqual(Array.from({ length: n }, (_, i) => `/topic/shared.k${i % 3}`));
      expect(g.every((m, i) => m.exchange === 'amq.topic' && m.properties.headers?.i === i && m.tag === 0 && m.settled)).toBe(true);
    }
    expect((await json.messages(n, 'j')).map((f) => f.payload)).toEqual(Array.from({ length: n }, (_, i) => `m${i}`));
    // The shards wrote one delivery per message for the three members, plus the JSON subscriber's own.
    expect((await delivered(pool.broker)) - before).toBe(2 * n);
    // The stream's carrier (one consumer: the carrier's) and the JSON subscriber's own queue, bound.
    expect((await carrier(pool.broker))?.consumers).toBe(1);
    const bindings = (await (await fetch(`${pool.broker.url}/v1/bindings`)).json()) as Array<{ destination: string; routing_key: string }>;
    expect(bindings.filter((x) => x.routing_key === 'shared.*')).toHaveLength(1);
    await json.close();
  });

  it('two subscriptions of one client to one pattern both get every message; the stream ends with its last member', async () => {
    const c = await open();
    const a: string[] = [];
    const b: string[] = [];
    const subA = await c.subscribe('/topic/twice.#', {}, (m) => void a.push(m.text()));
    const subB = await c.subscribe('/topic/twice.#', {}, (m) => void b.push(m.text()));
    const other = await open();
    const o: string[] = [];
    const subO = await other.subscribe('/topic/twice.#', {}, (m) => void o.push(m.text()));
    const streamsBefore = await streams(pool.broker);
    const pub = await open();
    for (let i = 0; i < 50; i++) pub.publishNoWait('/topic/twice.x', `t${i}`);
    await pub.flush();
    await waitFor(() => a.length >= 50 && b.length >= 50 && o.length >= 50, 5000, 'all three');
    expect(a).toEqual(b);
    expect(o).toEqual(a);
    // One member of the stream leaves: the others go on.
    await subA.unsubscribe();
    for (let i = 50; i < 60; i++) pub.publishNoWait('/topic/twice.x', `t${i}`);
    await pub.flush();
    await waitFor(() => b.length >= 60 && o.length >= 60, 5000, 'after one left');
    expect(a).toHaveLength(50);
    expect(b.slice(50)).toEqual(Array.from({ length: 10 }, (_, i) => `t${50 + i}`));
    await subB.unsubscribe();
    await subO.unsubscribe();
    // The last member gone, the stream goes too.
    await waitFor(async () => (await streams(pool.broker)) === streamsBefore - 1, 5000, 'the stream dropped');
  });

  it('deleting the carrier queue (management API) cancels every member; a new subscription starts a new stream', async () => {
    const a = await open();
    const b = await open();
    // With a handler, a cancel is also reported as an 'error' event.
    const reported: string[] = [];
    for (const c of [a, b]) c.on('error', (e) => reported.push(e.code));
    const subA = await a.subscribe('/topic/gone.x', {}, () => undefined);
    const subB = await b.subscribe('/topic/gone.x', {}, () => undefined);
    const queue = (await carrier(pool.broker))?.name;
    expect(queue).toMatch(/^amq\.gen-/);
    expect((await fetch(`${pool.broker.url}/v1/queues/${queue}`, { method: 'DELETE' })).status).toBe(200);
    const [endA, endB] = await Promise.all([subA.closed, subB.closed]);
    expect(endA.reason).toBe('cancelled');
    expect(endB.reason).toBe('cancelled');
    expect(reported).toEqual(['consumer_cancelled', 'consumer_cancelled']);
    const again: string[] = [];
    await a.subscribe('/topic/gone.x', {}, (m) => void again.push(m.text()));
    const pub = await open();
    pub.publishNoWait('/topic/gone.x', 'after');
    await pub.flush();
    await waitFor(() => again.length === 1, 5000, 'the new stream');
    expect(again).toEqual(['after']);
  });

  it('a member that joins later starts with the messages after it subscribed', async () => {
    const early = await open();
    const e: string[] = [];
    await early.subscribe('/topic/late.x', {}, (m) => void e.push(m.text()));
    const pub = await open();
    for (let i = 0; i < 20; i++) pub.publishNoWait('/topic/late.x', `a${i}`);
    await pub.flush();
    await waitFor(() => e.length >= 20, 5000, 'early member');
    const late = await open();
    const l: string[] = [];
    await late.subscribe('/topic/late.x', {}, (m) => void l.push(m.text()));
    for (let i = 0; i < 20; i++) pub.publishNoWait('/topic/late.x', `b${i}`);
    await pub.flush();
    await waitFor(() => e.length >= 40 && l.length >= 20, 5000, 'both');
    expect(l).toEqual(Array.from({ length: 20 }, (_, i) => `b${i}`));
  });

  it('a stream of one member is sent to it directly; a second member moves it to a uWS topic with no gap or duplicate for the first', async () => {
    const first = await open();
    const f: string[] = [];
    await first.subscribe('/topic/solo.x', {}, (m) => void f.push(m.text()));
    const pub = await open();
    const send = async (prefix: string): Promise<void> => {
      for (let i = 0; i < 20; i++) pub.publishNoWait('/topic/solo.x', `${prefix}${i}`);
      await pub.flush();
    };
    const run = (prefix: string): string[] => Array.from({ length: 20 }, (_, i) => `${prefix}${i}`);
    await send('a');
    await waitFor(() => f.length >= 20, 5000, 'the only member');
    const second = await open();
    const g: string[] = [];
    const subSecond = await second.subscribe('/topic/solo.x', {}, (m) => void g.push(m.text()));
    await send('b');
    await waitFor(() => f.length >= 40 && g.length >= 20, 5000, 'both members');
    // The first one leaves; the second (now alone on the topic) goes on, then a third joins.
    await first.close();
    await send('c');
    await waitFor(() => g.length >= 40, 5000, 'the second after the first left');
    const third = await open();
    const t: string[] = [];
    await third.subscribe('/topic/solo.x', {}, (m) => void t.push(m.text()));
    await send('d');
    await waitFor(() => g.length >= 60 && t.length >= 20, 5000, 'second and third');
    await new Promise((r) => setTimeout(r, 100)); // nothing more arrives
    expect(f).toEqual([...run('a'), ...run('b')]);
    expect(g).toEqual([...run('b'), ...run('c'), ...run('d')]);
    expect(t).toEqual(run('d'));
    await subSecond.unsubscribe();
  });
});

describe('e2e - shared streams across a shard restart', () => {
  // A broker of its own: every client on the crashed shard is told, and only these listen.
  const pool = clientPool({ shards: '2' });
  const open = pool.open.bind(pool);

  it('a shard restart: members are told, the stream comes back on the restarted shard and delivers again', async () => {
    const a = await open();
    const b = await open();
    const errors: string[] = [];
    for (const c of [a, b]) c.on('error', (e) => errors.push(e.code));
    const gotA: string[] = [];
    const gotB: string[] = [];
    await a.subscribe('/topic/restart.x', {}, (m) => void gotA.push(m.text()));
    await b.subscribe('/topic/restart.x', {}, (m) => void gotB.push(m.text()));
    const shard = (await carrier(pool.broker))?.shard ?? -1;
    await pool.broker.supervisor.crash(shard);
    await waitFor(() => errors.length >= 2, 5000, 'both members told');
    expect(errors).toEqual(['shard_restarted', 'shard_restarted']);
    await waitFor(
      async () => {
        const s = await brokerStats(pool.broker.url);
        return s.shards[shard].alive && s.shards[shard].restarts >= 1;
      },
      10_000,
      'the shard restarted',
    );
    const pub = await open();
    // Publishes may reach the shard before the stream's consumer is back: poll until one arrives.
    await waitFor(
      async () => {
        pub.publishNoWait('/topic/restart.x', 'again');
        await pub.flush();
        return gotA.length > 0 && gotB.length > 0;
      },
      10_000,
      'deliveries after the restart',
    );
    expect(gotA.every((t) => t === 'again')).toBe(true);
    expect(gotB.every((t) => t === 'again')).toBe(true);
  });
  it('many streams touched in one chunk each get their own frame: every member gets its messages only, in order', async () => {
    // Each stream borrows a frame writer from a shared pool for the chunk and gives it back when its
    // frame goes to uWS: deliveries interleaved across 200 streams must not cross between them.
    const streams = 200;
    const members = await Promise.all([open(), open()]);
    const got: string[][][] = [[], []];
    for (const [m, c] of members.entries()) {
      for (let i = 0; i < streams; i++) {
        const mine: string[] = [];
        got[m].push(mine);
        await c.subscribe(`/topic/many.${i}.*`, {}, (msg) => void mine.push(msg.text()));
      }
    }
    const pub = await open();
    const rounds = 20;
    for (let r = 0; r < rounds; r++) for (let i = 0; i < streams; i++) pub.publishNoWait(`/topic/many.${i}.x`, `${i}:${r}`);
    await pub.flush();
    await waitFor(() => got.every((g) => g.every((x) => x.length >= rounds)), 20_000, 'every stream has every message');
    for (const g of got) {
      for (let i = 0; i < streams; i++) expect(g[i]).toEqual(Array.from({ length: rounds }, (_, r) => `${i}:${r}`));
    }
  }, 60_000);
});

describe('e2e - shared streams, a slow member (--slow-consumer drop)', () => {
  let broker: Broker;
  beforeAll(async () => {
    broker = await startBroker({ shards: '1', 'slow-consumer-ms': '200', 'topic-buffer': '2000' });
  });
  afterAll(async () => {
    await broker.stop();
  });

  it('only the stalled member misses messages, the oldest: it gets the newest --topic-buffer and is told exactly how many it lost; the others get all', async () => {
    const healthy = await connect(broker.url);
    const stalled = await connect(broker.url);
    const pub = await connect(broker.url);
    try {
      const h: number[] = [];
      const { got: s, handler: stall, release } = stallAfterFirst();
      await healthy.subscribe('/topic/slow.x', {}, (m) => void h.push(Number(m.text().split(':')[0])));
      // The stalled one stops in its handler: its buffer fills, the client stops reading, its socket
      // fills past high water and stays there past --slow-consumer-ms.
      const stalledSub = await stalled.subscribe('/topic/slow.x', { bufferSize: 16 }, stall);
      const n = 30_000;
      const pad = 'x'.repeat(2048); // 60 MB: more than loopback's socket buffers take
      const pending: Promise<void>[] = [];
      for (let i = 0; i < n; i++) {
        pub.publishNoWait('/topic/slow.x', `${i}:${pad}`);
        if ((i + 1) % 1024 === 0) {
          pending.push(pub.flush());
          if (pending.length >= 4) await pending.shift();
        }
      }
      await Promise.all([...pending, pub.flush()]);
      await waitFor(() => h.length >= n, 20_000, `the healthy member's ${n} messages (have ${h.length})`);
      expect(h).toEqual(Array.from({ length: n }, (_, i) => i));
      release();
      await waitFor(() => s.length + stalledSub.brokerDropped >= n, 20_000, 'the stalled member caught up or was told');
      // What it got is in order, without duplicates, and with what it was told it lost makes n.
      expect(s.every((x, i) => i === 0 || x > s[i - 1])).toBe(true);
      expect(stalledSub.brokerDropped).toBeGreaterThan(0);
      expect(s.length + stalledSub.brokerDropped).toBe(n);
      // Drop-oldest, as a private topic queue: the newest 2,000 (--topic-buffer) reached it.
      expect(s.slice(-2000)).toEqual(Array.from({ length: 2000 }, (_, i) => n - 2000 + i));
      const stats = await brokerStats(broker.url);
      expect(stats.slowConsumers.dropped).toBe(stalledSub.brokerDropped);
      expect((stats.slowConsumers as unknown as { streamDropped: number }).streamDropped).toBe(stalledSub.brokerDropped);
    } finally {
      await Promise.all([healthy.close(), stalled.close(), pub.close()]);
    }
  }, 60_000);

  it('a stream with a single member that stalls: it gets the newest --topic-buffer and is told exactly how many it lost', async () => {
    const stalled = await connect(broker.url);
    const pub = await connect(broker.url);
    try {
      const { got: s, handler: stall, release } = stallAfterFirst();
      const stalledSub = await stalled.subscribe('/topic/slow.solo', { bufferSize: 16 }, stall);
      const n = 30_000;
      const pad = 'x'.repeat(2048);
      const pending: Promise<void>[] = [];
      for (let i = 0; i < n; i++) {
        pub.publishNoWait('/topic/slow.solo', `${i}:${pad}`);
        if ((i + 1) % 1024 === 0) {
          pending.push(pub.flush());
          if (pending.length >= 4) await pending.shift();
        }
      }
      await Promise.all([...pending, pub.flush()]);
      release();
      await waitFor(() => s.length + stalledSub.brokerDropped >= n, 20_000, 'the stalled member caught up or was told');
      expect(s.every((x, i) => i === 0 || x > s[i - 1])).toBe(true);
      expect(stalledSub.brokerDropped).toBeGreaterThan(0);
      expect(s.length + stalledSub.brokerDropped).toBe(n);
      expect(s.slice(-2000)).toEqual(Array.from({ length: 2000 }, (_, i) => n - 2000 + i));
    } finally {
      await Promise.all([stalled.close(), pub.close()]);
    }
  }, 60_000);
});

describe('e2e - light subscriptions: backlogged and back (--slow-consumer block)', () => {
  let broker: Broker;
  beforeAll(async () => {
    broker = await startBroker({ shards: '2', 'slow-consumer': 'block', 'slow-consumer-ms': '200', 'topic-buffer': '500' });
  });
  afterAll(async () => {
    await broker.stop();
  });

  it('a stalled light subscriber backs up its carrier, then catches up: it and a light subscriber beside it lose and reorder nothing', async () => {
    const stalled = await connect(broker.url);
    const beside = await connect(broker.url);
    const pub = await connect(broker.url);
    try {
      const b: number[] = [];
      const { got: s, handler: stall, release } = stallAfterFirst();
      // Two patterns on one carrier (amq.topic): a stall of one holds the carrier for both.
      const stalledSub = await stalled.subscribe('/topic/backlog.*.a', { bufferSize: 16 }, stall);
      const besideSub = await beside.subscribe('/topic/backlog.#', {}, (m) => void b.push(Number(m.text().split(':')[0])));
      const n = 20_000;
      const pad = 'x'.repeat(2048); // 40 MB: past loopback's socket buffers and the carrier's 500 messages
      const published = (async () => {
        const pending: Promise<void>[] = [];
        for (let i = 0; i < n; i++) {
          pub.publishNoWait(`/topic/backlog.${i % 7}.a`, `${i}:${pad}`);
          if ((i + 1) % 512 === 0) {
            pending.push(pub.flush());
            if (pending.length >= 4) await pending.shift();
          }
        }
        await Promise.all([...pending, pub.flush()]);
      })();
      // Backlogged: the stalled socket holds the carrier, which fills to --topic-buffer and holds the publisher.
      let carrierDepth = 0;
      await waitFor(
        async () => {
          carrierDepth = await depthOfCarrier(broker);
          return carrierDepth >= 400;
        },
        20_000,
        'the carrier backs up',
      );
      expect(b.length).toBeLessThan(n);
      release();
      await published;
      await waitFor(() => s.length >= n && b.length >= n, 30_000, `both caught up (have ${s.length}, ${b.length})`);
      const all = Array.from({ length: n }, (_, i) => i);
      expect(s).toEqual(all);
      expect(b).toEqual(all);
      expect(stalledSub.brokerDropped).toBe(0);
      expect(besideSub.brokerDropped).toBe(0);
      expect((await brokerStats(broker.url)).slowConsumers.dropped).toBe(0);
      // Back to light: the carrier is empty again.
      await waitFor(async () => (await depthOfCarrier(broker)) === 0, 5000, 'the carrier drained');
    } finally {
      await Promise.all([stalled.close(), beside.close(), pub.close()]);
    }
  }, 90_000);

  it('messages no light pattern matches never reach the carrier', async () => {
    const c = await connect(broker.url);
    const pub = await connect(broker.url);
    try {
      const got: string[] = [];
      await c.subscribe('/topic/only.this', {}, (m) => void got.push(m.text()));
      const before = await delivered(broker);
      for (let i = 0; i < 500; i++) pub.publishNoWait(`/topic/only.other.${i}`, `no${i}`);
      pub.publishNoWait('/topic/only.this', 'yes');
      await pub.flush();
      await waitFor(() => got.length === 1, 5000, 'the matching one');
      // One deliver record (the match), none for the 500 others: they were routed nowhere.
      expect((await delivered(broker)) - before).toBe(1);
      expect(got).toEqual(['yes']);
    } finally {
      await Promise.all([c.close(), pub.close()]);
    }
  });
});
