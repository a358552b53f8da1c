/**
 * Scale points over idle queues: a fresh broker (`--shards 1`, so every idle queue sits on the
 * shard that carries the traffic) with N idle queues, then what one message costs there, and what
 * managing them costs. Also the client's binding bookkeeping at 100,000 bindings.
 */
import { connect, type ShardmqClient } from '../index.js';
import { startBrokerProcess, type BrokerProcess } from './broker-process.js';
import { runOpenLoop, type OpenLoopResult } from './open-loop.js';
import { roundOrder } from './pacing.js';
import { shardmqOpenLoop } from './open-loop-systems.js';
import { ResourceMeter } from './proc.js';
import { LatencyProbe, pct, prepareWalk, sleep, timedGet } from './scale-probe.js';
import { summarize } from './sample-stats.js';

const median = (values: readonly number[]): number => summarize(values).median;

const DECLARE_BATCH = 2000;
/** Rounds of (without, with the walk) at the management point. */
const WALK_ROUNDS = (quick: boolean): number => (quick ? 1 : 5);

export interface QueuePoint {
  readonly queues: number;
  readonly declareSeconds: number;
  readonly rssPerQueueBytes: number;
  readonly idleCores: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  readonly openLoopPerSecond: number;
  readonly lost: number;
  /** Management figures, measured at the points that ask for them. */
  readonly management: {
    readonly pageMs: number;
    readonly lookupMs: number;
    readonly statsMs: number;
    /** Worst delivery latency while the walk runs, and in the same rounds without it: medians over the rounds. */
    readonly walkMaxMs: number;
    readonly walkBaselineMaxMs: number;
    /** Median of the rounds' worst-with ÷ worst-without, and each round's. */
    readonly walkRatio: number;
    readonly walkRatios: readonly number[];
    /** How long a walk took (median), paced by --management-share. */
    readonly walkSeconds: number;
    readonly walkPages: number;
  } | null;
}

export interface PointOptions {
  readonly quick: boolean;
  readonly progress: (message: string) => void;
}

/** A fresh broker (`--shards 1`) holding `queues` idle queues, with a latency probe wired to it. */
interface QueueBroker {
  readonly broker: BrokerProcess;
  readonly clients: ShardmqClient[];
  readonly probe: LatencyProbe;
  readonly declareSeconds: number;
  readonly rssPerQueueBytes: number;
  readonly idleCores: number;
}

async function openQueueBroker(queues: number): Promise<QueueBroker> {
  const broker = await startBrokerProcess(['--shards', '1']);
  const clients: ShardmqClient[] = [];
  try {
    const admin = await connect(broker.url);
    clients.push(admin);
    const rssBefore = broker.rssBytes();
    const t0 = performance.now();
    for (let i = 0; i < queues; i += DECLARE_BATCH) {
      const batch: Promise<unknown>[] = [];
      for (let k = i; k < Math.min(queues, i + DECLARE_BATCH); k++) batch.push(admin.declareQueue(`scale-idle-${k}`));
      await Promise.all(batch);
    }
    const declareSeconds = (performance.now() - t0) / 1000;
    await sleep(500);
    const rssPerQueueBytes = queues > 1 ? (broker.rssBytes() - rssBefore) / queues : NaN;
    // CPU time comes in 10 ms ticks: over 5 s one tick is 0.2% of a core (over 2 s it was 0.5%,
    // so a 1% bound was judged on two ticks).
    const idle = new ResourceMeter([broker.pid]);
    await sleep(5000);
    const idleCores = idle.stop().cores;
    const sub = await connect(broker.url);
    const pub = await connect(broker.url, { confirms: false });
    clients.push(sub, pub);
    const probe = new LatencyProbe((sentAt) => pub.publishNoWait('/queue/scale.lat', sentAt));
    await sub.subscribe('/queue/scale.lat', {}, (m) => probe.record(m.text()));
    return { broker, clients, probe, declareSeconds, rssPerQueueBytes, idleCores };
  } catch (err) {
    await closeQueueBroker({ broker, clients });
    throw err;
  }
}

async function closeQueueBroker(b: Pick<QueueBroker, 'broker' | 'clients'>): Promise<void> {
  await Promise.all(b.clients.map((c) => c.close()));
  await b.broker.stop();
}

/** One latency run at 2k msg/s and one 1→1 open-loop run on `b`. */
async function measureQueueBroker(o: PointOptions, b: QueueBroker): Promise<{ latencies: number[]; open: OpenLoopResult }> {
  const latencies = await b.probe.run(o.quick ? 1500 : 3000);
  const open = await runOpenLoop(shardmqOpenLoop(b.broker.url, b.broker.pid, false), {
    subscribers: 1,
    messages: o.quick ? 100_000 : 500_000,
    maxSeconds: 30,
    drainSeconds: 10,
    payloadBytes: 128,
  });
  return { latencies, open };
}

/** Declares `queues` idle queues through the exported client, then measures; `management` adds the management calls and the walk. */
export async function queuePoint(o: PointOptions, queues: number, management: boolean): Promise<QueuePoint> {
  const b = await openQueueBroker(queues);
  try {
    const { broker, probe } = b;
    const { latencies: plain, open } = await measureQueueBroker(o, b);
    const measureMs = o.quick ? 1500 : 3000;
    let mgmt: QueuePoint['management'] = null;
    if (management) {
      const base = broker.url;
      const some = `scale-idle-${Math.floor(queues / 2)}`;
      await timedGet(`${base}/v1/queues?page=1&page_size=100`); // the first sorts the names
      await timedGet(`${base}/v1/stats`);
      // Medians of five calls each: one call is one sample, and a GC pause in it is not the call's cost.
      const timed = async (path: string): Promise<number> => {
        const times: number[] = [];
        for (let i = 0; i < 5; i++) times.push(await timedGet(`${base}${path}`));
        return median(times);
      };
      const pageMs = await timed('/v1/queues?page=1&page_size=100');
      const lookupMs = await timed(`/v1/queues/${some}`);
      const statsMs = await timed('/v1/stats');
      const pages = Math.ceil((queues + 1) / 500);
      // The worst of a few thousand latencies is one sample: on two noisy cores it swings several
      // times over between equal runs. So rounds of (without, with) back to back, their ratios,
      // and the median of those.
      const withs: number[] = [];
      const withouts: number[] = [];
      const ratios: number[] = [];
      const walkSeconds: number[] = [];
      for (let round = 0; round < WALK_ROUNDS(o.quick); round++) {
        const without = await probe.run(measureMs);
        const walk = await prepareWalk(base, pages);
        let walkStarted = 0;
        const walked = await probe.run(measureMs, () => {
          walkStarted = performance.now();
          return walk.start().then(() => {
            walkSeconds.push((performance.now() - walkStarted) / 1000);
          });
        });
        withouts.push(without[without.length - 1] ?? NaN);
        withs.push(walked[walked.length - 1] ?? NaN);
        ratios.push(withs[withs.length - 1] / withouts[withouts.length - 1]);
      }
      mgmt = {
        pageMs,
        lookupMs,
        statsMs,
        walkMaxMs: median(withs),
        walkBaselineMaxMs: median(withouts),
        walkRatio: median(ratios),
        walkRatios: ratios,
        walkSeconds: median(walkSeconds),
        walkPages: pages,
      };
    }
    const point: QueuePoint = {
      queues,
      declareSeconds: b.declareSeconds,
      rssPerQueueBytes: b.rssPerQueueBytes,
      idleCores: b.idleCores,
      p50Ms: pct(plain, 50),
      p99Ms: pct(plain, 99),
      maxMs: plain[plain.length - 1] ?? NaN,
      openLoopPerSecond: open.deliveredPerSecond,
      lost: open.lost,
      management: mgmt,
    };
    o.progress(
      `scale ${queues.toLocaleString('en-US')} idle queues: declared in ${b.declareSeconds.toFixed(1)} s, idle CPU ${(b.idleCores * 100).toFixed(1)}%, ` +
        `latency p50 ${point.p50Ms.toFixed(2)} ms p99 ${point.p99Ms.toFixed(2)} ms max ${point.maxMs.toFixed(1)} ms; 1→1 ${(point.openLoopPerSecond / 1e3).toFixed(0)}k/s lost ${point.lost}` +
        (mgmt === null
          ? ''
          : `; page ${mgmt.pageMs.toFixed(1)} ms, lookup ${mgmt.lookupMs.toFixed(1)} ms, stats ${mgmt.statsMs.toFixed(1)} ms; worst delivery during a walk of ${mgmt.walkPages} pages ${mgmt.walkMaxMs.toFixed(1)} ms vs ${mgmt.walkBaselineMaxMs.toFixed(1)} without (${mgmt.walkRatios.map((r) => `${r.toFixed(2)}×`).join(', ')}; walk ${mgmt.walkSeconds.toFixed(1)} s)`),
    );
    return point;
  } finally {
    await closeQueueBroker(b);
  }
}

/** What `queues` idle queues cost one message, against one queue: paired rounds on two live brokers. */
export interface QueuePair {
  readonly queues: number;
  /** Medians of the rounds' (with `queues`) ÷ (with one) ratios, and each round's. */
  readonly p50Ratio: number;
  readonly p50Ratios: readonly number[];
  readonly openLoopRatio: number;
  readonly openLoopRatios: readonly number[];
  /** Medians over the rounds, each broker. */
  readonly p50Ms: { readonly one: number; readonly many: number };
  readonly openLoopPerSecond: { readonly one: number; readonly many: number };
  readonly lost: number;
}

/** Rounds of the paired comparison. */
const PAIR_ROUNDS = (quick: boolean): number => (quick ? 1 : 5);

/**
 * The judged comparison: a broker with one queue and a broker with `queues` idle ones, both up at
 * once, measured alternately round by round (which goes first alternates too), so both see the
 * same machine. A fresh broker per point (queuePoint) draws the curve; one run per point there
 * swung p50 and throughput by ±20% between equal runs on this machine, more than the bounds judged.
 */
export async function queuePair(o: PointOptions, queues: number): Promise<QueuePair> {
  const one = await openQueueBroker(1);
  let many: QueueBroker | null = null;
  try {
    many = await openQueueBroker(queues);
    const sides = [
      { key: 'one', b: one },
      { key: 'many', b: many },
    ] as const;
    const p50 = { one: [] as number[], many: [] as number[] };
    const rate = { one: [] as number[], many: [] as number[] };
    let lost = 0;
    for (let round = 0; round < PAIR_ROUNDS(o.quick); round++) {
      for (const side of roundOrder(sides, round)) {
        const m = await measureQueueBroker(o, side.b);
        p50[side.key].push(pct(m.latencies, 50));
        rate[side.key].push(m.open.deliveredPerSecond);
        lost += m.open.lost;
      }
      o.progress(
        `scale pair round ${round + 1}: p50 ${p50.one[round].toFixed(2)} ms (1 queue) vs ${p50.many[round].toFixed(2)} ms (${queues.toLocaleString('en-US')}), ` +
          `1→1 ${(rate.one[round] / 1e3).toFixed(0)}k vs ${(rate.many[round] / 1e3).toFixed(0)}k/s, lost ${lost}`,
      );
    }
    const p50Ratios = p50.many.map((v, i) => v / p50.one[i]);
    const openLoopRatios = rate.many.map((v, i) => v / rate.one[i]);
    return {
      queues,
      p50Ratio: median(p50Ratios),
      p50Ratios,
      openLoopRatio: median(openLoopRatios),
      openLoopRatios,
      p50Ms: { one: median(p50.one), many: median(p50.many) },
      openLoopPerSecond: { one: median(rate.one), many: median(rate.many) },
      lost,
    };
  } finally {
    await closeQueueBroker(one);
    if (many !== null) await closeQueueBroker(many);
  }
}

/** Seconds to set up `n` bindings (onto 1,000 queues) through the client, one broker with its default shards. */
export async function bindingsPoint(o: PointOptions, n: number): Promise<number> {
  const broker = await startBrokerProcess([]);
  const client = await connect(broker.url);
  try {
    for (let i = 0; i < 1000; i += 250) await Promise.all(Array.from({ length: 250 }, (_, k) => client.declareQueue(`scale-bq-${i + k}`)));
    const t0 = performance.now();
    for (let i = 0; i < n; i += DECLARE_BATCH) {
      const batch: Promise<unknown>[] = [];
      for (let k = i; k < Math.min(n, i + DECLARE_BATCH); k++)
        batch.push(client.bindQueue(`scale-bq-${k % 1000}`, 'amq.topic', `dev.${k}.*`));
      await Promise.all(batch);
    }
    const seconds = (performance.now() - t0) / 1000;
    o.progress(`scale: ${n.toLocaleString('en-US')} bindings through the client in ${seconds.toFixed(2)} s`);
    return seconds;
  } finally {
    await client.close();
    await broker.stop();
  }
}
