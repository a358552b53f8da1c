/**
 * Shard sweep: the same CPU-heavy routing workload on brokers started with --shards 1, 2, 4 and the
 * machine's core count, runs interleaved across the brokers (all started once, idle ones park).
 *
 * Workload: a headers exchange `bench.sweep` with 64 queues spread over the shards by name. Each
 * queue has one binding that matches (x-match all on `region` + `kind`, a unique pair per queue)
 * and 7 decoy bindings (x-match any on headers no message carries), 512 bindings in all. Messages
 * carry 6 headers, so every shard decodes every message's properties and tests its share of the
 * 512 bindings: routing dominates, and it is the part that shards split. Each message reaches
 * exactly one queue; 4 consumer connections (auto ack) take 16 queues each. The main thread sends a
 * headers-exchange message to every shard that has bindings (it does not parse headers), so its
 * work per message grows with the shard count: the sweep shows where that bites.
 *
 * Pacing: ≤ WINDOW messages in flight end to end; bounded by a message count and a time limit.
 * Writes benchmarks/shard-sweep.svg.
 */
import { availableParallelism, cpus } from 'node:os';
import { startBrokerProcess, type BrokerProcess } from '../broker-process.js';
import { BinaryFrameWriter } from '../../protocol/ws-binary-encode.js';
import { machineLine } from '../machine.js';
import { Wakeup, drainUntil, roundOrder } from '../pacing.js';
import { ResourceMeter, mib, resourceCells, type ResourceSample } from '../proc.js';
import { formatRate, spread, summarize } from '../sample-stats.js';
import { lineChart } from '../svg.js';
import { BenchWsClient } from '../ws-binary-client.js';
import { roundsOf, type Workload, type WorkloadContext, type WorkloadResult } from '../workload.js';

const EXCHANGE = 'bench.sweep';
const REGIONS = 8;
const KINDS = 8;
const DECOYS_PER_QUEUE = 7;
const CONSUMER_CONNECTIONS = 4;
const BATCH = 100;
const PAYLOAD_BYTES = 128;
const WINDOW = 20_000;

const queueName = (r: number, k: number): string => `sweep.r${r}.k${k}`;

interface SweepBroker {
  readonly shards: number;
  readonly broker: BrokerProcess;
}

interface SweepRun {
  readonly shards: number;
  readonly sent: number;
  readonly delivered: number;
  readonly seconds: number;
  readonly resources: ResourceSample;
}

/** Declares the exchange, the queues and their bindings on one broker (management ops, awaited). */
async function setUp(url: string): Promise<void> {
  const admin = await BenchWsClient.connect(url);
  try {
    await admin.request((w, id) => w.declareExchange(id, EXCHANGE, 'headers'));
    const pending: Promise<unknown>[] = [];
    for (let r = 0; r < REGIONS; r++) {
      for (let k = 0; k < KINDS; k++) {
        const q = queueName(r, k);
        await admin.request((w, id) => w.declareQueue(id, q));
        pending.push(admin.request((w, id) => w.bindQueue(id, q, EXCHANGE, '', { 'x-match': 'all', region: `r${r}`, kind: `k${k}` })));
        for (let d = 0; d < DECOYS_PER_QUEUE; d++) {
          pending.push(
            admin.request((w, id) =>
              w.bindQueue(id, q, EXCHANGE, '', { 'x-match': 'any', [`absent${d}`]: `v${r}${k}`, [`missing${d}`]: d }),
            ),
          );
        }
      }
    }
    await Promise.all(pending);
  } finally {
    await admin.close();
  }
}

async function runSweep(b: SweepBroker, maxMessages: number, maxSeconds: number): Promise<SweepRun> {
  const wakeup = new Wakeup();
  const consumers: BenchWsClient[] = [];
  let pub: BenchWsClient | null = null;
  try {
    for (let c = 0; c < CONSUMER_CONNECTIONS; c++) {
      const client = await BenchWsClient.connect(b.broker.url);
      client.onFrame = wakeup.wake;
      consumers.push(client);
    }
    const subs: Promise<unknown>[] = [];
    let i = 0;
    for (let r = 0; r < REGIONS; r++)
      for (let k = 0; k < KINDS; k++, i++) subs.push(consumers[i % CONSUMER_CONNECTIONS].subscribe(i + 1, `/queue/${queueName(r, k)}`));
    await Promise.all(subs);
    pub = await BenchWsClient.connect(b.broker.url);
    // One pre-encoded frame per (region, kind): a PUBLISH_BATCH of BATCH messages with 6 headers.
    const payload = new Uint8Array(PAYLOAD_BYTES).fill(0x73);
    const batch = Array.from({ length: BATCH }, () => payload);
    const frames: Uint8Array[] = [];
    const w = new BinaryFrameWriter();
    for (let r = 0; r < REGIONS; r++) {
      for (let k = 0; k < KINDS; k++) {
        const headers = { region: `r${r}`, kind: `k${k}`, site: 'plant-7', unit: 'celsius', level: 'info', seq: r * KINDS + k };
        frames.push(w.publishBatch(`/exchange/${EXCHANGE}/sweep`, batch, { headers }).finishCopy());
      }
    }
    const received = (): number => consumers.reduce((s, c) => s + c.delivered, 0);
    const meter = new ResourceMeter([b.broker.pid]);
    const started = performance.now();
    const deadline = started + maxSeconds * 1000;
    let sent = 0;
    let f = 0;
    while (sent < maxMessages && performance.now() < deadline) {
      if (sent + BATCH - received() > WINDOW || pub.bufferedAmount > 1 << 20 || pub.creditWaiting > 0) {
        await wakeup.wait(50);
        continue;
      }
      pub.sendPublishes(frames[f], BATCH, frames[f].byteLength);
      f = (f + 1) % frames.length;
      sent += BATCH;
      await new Promise((resolve) => setImmediate(resolve));
    }
    await drainUntil(() => received() >= sent, received);
    const resources = meter.stop();
    const seconds = (Math.max(...consumers.map((c) => c.lastDeliverAt)) - started) / 1000;
    const bad = [pub, ...consumers].find((c) => c.errors > 0);
    if (bad !== undefined) throw new Error(`shard-sweep: ERROR op from the broker: ${bad.lastError}`);
    return { shards: b.shards, sent, delivered: received(), seconds, resources };
  } finally {
    await pub?.close();
    await Promise.all(consumers.map((c) => c.close()));
  }
}

export const shardSweep: Workload = {
  name: 'shard-sweep',
  description:
    'shard sweep: one CPU-heavy routing workload (headers exchange, 512 bindings over 64 queues, 6 headers per message) on brokers with 1, 2, 4 and <cores> shards',
  async run(ctx: WorkloadContext): Promise<WorkloadResult> {
    const runs = roundsOf(ctx);
    const maxSeconds = ctx.quick ? 1.5 : 6;
    const maxMessages = ctx.quick ? 200_000 : 2_000_000;
    const cores = availableParallelism();
    const counts = [...new Set([1, 2, 4, cores])].sort((a, b) => a - b);
    const brokers: SweepBroker[] = [];
    const results = new Map<number, SweepRun[]>();
    try {
      for (const shards of counts) {
        const broker = await startBrokerProcess(['--shards', String(shards)]);
        brokers.push({ shards, broker });
        await setUp(broker.url);
        await runSweep({ shards, broker }, 20_000, 1); // warm-up
        ctx.progress(`shard-sweep: broker with ${shards} shard(s) ready`);
      }
      for (let i = 0; i < runs; i++) {
        for (const b of roundOrder(brokers, i)) {
          const r = await runSweep(b, maxMessages, maxSeconds);
          results.set(b.shards, [...(results.get(b.shards) ?? []), r]);
          ctx.progress(
            `shard-sweep run ${i + 1}/${runs}, shards=${b.shards}: ${formatRate(r.delivered / r.seconds)} msg/s (${r.delivered.toLocaleString('en-US')} of ${r.sent.toLocaleString('en-US')}) in ${r.seconds.toFixed(2)} s; ` +
              `broker ${r.resources.cores.toFixed(2)} cores, RSS ${mib(r.resources.peakRssBytes)}; harness ${r.resources.harnessCores.toFixed(2)}; foreign ${r.resources.foreignCores.toFixed(2)}`,
          );
        }
      }
    } finally {
      for (const b of brokers) await b.broker.stop();
    }
    const figures: Record<string, number> = { shard_sweep_machine_cores: cores };
    const medians = new Map<number, number>();
    for (const n of counts) medians.set(n, summarize((results.get(n) ?? []).map((r) => r.delivered / r.seconds)).median);
    const base = medians.get(1) ?? NaN;
    const rows = counts.map((n, idx) => {
      const rs = results.get(n) ?? [];
      const rate = summarize(rs.map((r) => r.delivered / r.seconds));
      const res = resourceCells(rs.map((r) => r.resources));
      const prev = idx > 0 ? medians.get(counts[idx - 1])! : NaN;
      figures[`shard_sweep_${n}_msgs_per_s`] = rate.median;
      figures[`shard_sweep_${n}_broker_cores`] = summarize(rs.map((r) => r.resources.cores)).median;
      if (n !== 1) figures[`shard_sweep_gain_1_to_${n}`] = rate.median / base;
      return [
        `shards=${n}`,
        formatRate(rate.median),
        spread(rate),
        rs.length > 1 ? `${rate.sePercent.toFixed(1)}%` : '—',
        idx === 0 ? '—' : `×${(rate.median / prev).toFixed(2)}`,
        `×${(rate.median / base).toFixed(2)}`,
        res.cores,
        res.peakRss,
        res.harness,
        res.foreign,
        rs.every((r) => r.delivered === r.sent) ? 'yes' : 'NO',
      ];
    });
    const best = counts.reduce((a, n) => ((medians.get(n) ?? 0) > (medians.get(a) ?? 0) ? n : a), 1);
    const verdict =
      cores <= 2
        ? `this machine has ${cores} cores (${cpus()[0]?.model.trim() ?? 'unknown CPU'}): the main thread, the shards and this harness share them, so little gain past 1–2 shards is expected; more shards than cores only add contention. Best here: ${best} shard(s), ×${((medians.get(best) ?? 0) / base).toFixed(2)} of 1 shard`
        : `this machine has ${cores} cores; best: ${best} shard(s), ×${((medians.get(best) ?? 0) / base).toFixed(2)} of 1 shard`;
    const chart = lineChart({
      title: 'Shard sweep: delivered msg/s (headers-exchange routing, 512 bindings)',
      categories: counts.map((n) => `${n} shard${n > 1 ? 's' : ''}`),
      series: [{ name: 'shardmq, delivered msg/s (median)', values: counts.map((n) => medians.get(n) ?? NaN) }],
      yLabel: 'delivered messages / s',
      xLabel: `--shards (machine: ${cores} cores)`,
      caption: `${machineLine(ctx.machine)}${ctx.quick ? ' — QUICK RUN, not for quoting' : ''}. ${runs} run(s) per point. Generated by shardmq bench (src/bench/workloads/shard-sweep.ts).`,
    });
    return {
      tables: [
        {
          title: `Shard sweep, headers exchange (${REGIONS * KINDS} queues × ${1 + DECOYS_PER_QUEUE} bindings), ${PAYLOAD_BYTES}-byte messages with 6 headers, ${runs} interleaved run(s); machine: ${cores} cores`,
          columns: [
            'shards',
            'delivered msg/s median',
            'min–max',
            '± SE',
            'gain vs previous',
            'gain vs 1 shard',
            'broker CPU (cores)',
            'broker peak RSS',
            'harness CPU (cores)',
            'foreign CPU (cores)',
            'complete',
          ],
          rows,
          notes: [
            verdict,
            `per run: up to ${maxMessages.toLocaleString('en-US')} messages or ${maxSeconds} s of sending, PUBLISH_BATCH of ${BATCH} to /exchange/${EXCHANGE}/sweep, ≤ ${WINDOW.toLocaleString('en-US')} in flight; each message matches exactly one queue; ${CONSUMER_CONNECTIONS} consumer connections, auto ack`,
            'the main thread writes every headers-exchange message into every shard with bindings (it does not decode headers), so each shard decodes every message and tests its own share of the bindings',
          ],
        },
      ],
      figures,
      charts: [{ file: 'benchmarks/shard-sweep.svg', title: 'shard sweep (line chart)', svg: chart }],
    };
  },
};
