import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Broker } from '../../src/front/broker.js';
import { startBroker, publish } from '../helpers/broker.js';
import { JsonWsClient } from '../helpers/ws-client.js';
import { HOP_NAMES } from '../../src/metrics/hop-trace.js';

interface LatencyAnswer {
  sampleEvery: number;
  traced: number;
  hops: Record<string, { count: number; p50: number | null; p99: number | null; buckets: Array<[number, number]> }>;
  main: { gcPauses: number; pumpParks: number };
  shards: Array<{ index: number; gcPauses: number; parks: number }>;
}

const latency = async (broker: Broker): Promise<LatencyAnswer> =>
  (await (await fetch(`${broker.url}/v1/stats/latency`)).json()) as LatencyAnswer;

describe('e2e - hop trace (GET /v1/stats/latency)', () => {
  let broker: Broker;
  let off: Broker;
  beforeAll(async () => {
    broker = await startBroker({ shards: '2', 'latency-sample': '2' });
    off = await startBroker({ 'latency-sample': '0' });
  });
  afterAll(async () => {
    await broker.stop();
    await off.stop();
  });

  it('traces one publish in --latency-sample, through every hop, with per-thread GC and parks', async () => {
    const sub = await JsonWsClient.connect(broker.url);
    try {
      await sub.subscribe('s', '/topic/trace.*');
      const before = await latency(broker);
      expect(before.sampleEvery).toBe(2);
      for (let i = 0; i < 40; i++) expect((await publish(broker, 'topic/trace.x', `m${i}`)).status).toBe(200);
      await sub.messages(40, 's');
      // The traced records come right behind their deliveries: by now they have been read.
      await expect.poll(async () => (await latency(broker)).traced - before.traced).toBe(20);
      const after = await latency(broker);
      for (const name of HOP_NAMES) {
        expect(after.hops[name].count - before.hops[name].count, name).toBe(20);
        expect(after.hops[name].p50, name).not.toBeNull();
      }
      expect(after.hops.total.p50).toBeGreaterThanOrEqual(after.hops.shard.p50 ?? Infinity);
      expect(after.shards.map((s) => s.index)).toEqual([0, 1]);
      expect(after.main.pumpParks).toBeGreaterThan(0); // the pumps sleep between publishes
      expect(after.shards.some((s) => s.parks > 0)).toBe(true);
    } finally {
      await sub.close();
    }
  });

  it('--latency-sample 0 traces nothing', async () => {
    for (let i = 0; i < 10; i++) expect((await publish(off, 'topic/none', `m${i}`)).status).toBe(200);
    const a = await latency(off);
    expect(a.sampleEvery).toBe(0);
    expect(a.traced).toBe(0);
    expect(a.hops.total.count).toBe(0);
    expect(a.hops.total.p50).toBeNull();
  });
});
