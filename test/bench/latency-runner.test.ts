import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HOP_NAMES } from '../../src/metrics/hop-trace.js';
import { LatencyHistogram } from '../../src/metrics/latency-histogram.js';
import { deserializeRun, type LatencyRun, serializeRun } from '../../src/bench/latency-runner.js';
import type { Broker } from '../../src/front/broker.js';
import { startBroker } from '../helpers/broker.js';

function histogramOf(values: readonly number[]): LatencyHistogram {
  const h = new LatencyHistogram();
  for (const v of values) h.record(v);
  return h;
}

describe('latency runner', () => {
  it('a run crosses the IPC channel whole: histograms, hops and figures', () => {
    const hops = Object.fromEntries(HOP_NAMES.map((h, i) => [h, histogramOf([10 * (i + 1), 20 * (i + 1), 5000])])) as LatencyRun['hops'];
    const run: LatencyRun = {
      rate: 10_000,
      histogram: histogramOf([100, 120, 130, 4000, 15_000]),
      sent: 5,
      received: 5,
      seconds: 1.5,
      saturated: false,
      maxScheduleLagMs: 3.25,
      resources: {
        seconds: 1.5,
        cores: 0.1,
        peakRssBytes: 1,
        endRssBytes: 1,
        harnessCores: 0.2,
        foreignCores: 0,
      } as LatencyRun['resources'],
      hops,
      threads: null,
      clientGc: { pauses: 3, pauseMs: 1.5, maxPauseMs: 0.75 },
    };
    const back = deserializeRun(JSON.parse(JSON.stringify(serializeRun(run))));
    expect(back.histogram.count).toBe(5);
    for (const p of [50, 99, 99.9]) expect(back.histogram.percentile(p)).toBe(run.histogram.percentile(p));
    expect(back.histogram.max).toBe(run.histogram.max);
    for (const h of HOP_NAMES) expect(back.hops?.[h].percentile(99)).toBe(run.hops?.[h].percentile(99));
    expect({ ...back, histogram: null, hops: null }).toEqual({ ...run, histogram: null, hops: null });
  });
});

describe('latency runner, in its own process', () => {
  let broker: Broker;
  beforeAll(async () => {
    broker = await startBroker();
  });
  afterAll(async () => {
    await broker.stop();
  });

  it('measures a short run against a broker from a child process: every message sent is recorded', async () => {
    const { runAtRateInChild } = await import('../../src/bench/latency-runner.js');
    const run = await runAtRateInChild({
      system: { kind: 'shardmq', url: broker.url, pid: process.pid, traced: false },
      rate: 2000,
      warmSeconds: 0.2,
      seconds: 0.5,
    });
    expect(run.sent).toBeGreaterThan(500);
    expect(run.received).toBe(run.sent);
    expect(run.histogram.count).toBe(run.sent);
    expect(run.saturated).toBe(false);
  }, 30_000);
});

describe('latency runner, across the nodes of a cluster', () => {
  it('the subscriber on another node than the publisher: every message crosses and is recorded', async () => {
    const { NatsServer } = await import('../helpers/nats-server.js');
    const { runAtRate, shardmqLatency } = await import('../../src/bench/latency-runner.js');
    const nats = await NatsServer.start();
    const a = await startBroker({ cluster: nats.url, 'node-name': 'a' });
    const b = await startBroker({ cluster: nats.url, 'node-name': 'b' });
    try {
      const run = await runAtRate(shardmqLatency(a.url, process.pid, false, b.url, 'a → b'), 2000, 0.2, 0.5);
      expect(run.sent).toBeGreaterThan(500);
      expect(run.received).toBe(run.sent);
      expect(run.histogram.count).toBe(run.sent);
      const onB = (await (await fetch(`${b.url}/v1/cluster`)).json()) as { received: { messages: number } };
      // Warm-up messages crossed too (they are sent, not recorded).
      expect(onB.received.messages).toBeGreaterThanOrEqual(run.sent);
    } finally {
      await a.stop();
      await b.stop();
      await nats.stop();
    }
  }, 30_000);
});
