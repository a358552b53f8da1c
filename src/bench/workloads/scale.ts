/**
 * Scale with the work (issue "Scale with the work"): does a message cost the same with 100,000 idle
 * queues on its shard as with one, and does managing them stall delivery?
 *
 * For 1 and 100,000 idle queues (quick: 1 and 10,000), one broker each, `--shards 1` so every idle
 * queue sits on the shard that carries the traffic:
 * 1. declare the idle queues through the exported client (time; broker RSS before and after);
 * 2. idle broker CPU over 2 s;
 * 3. publish → deliver latency at 2,000 msg/s to one other queue (exported client, the send time in
 *    the payload; 3 s measured after 0.5 s);
 * 4. 1→1 open-loop throughput through the exported client (open-loop.ts, 128-byte messages), lost;
 * 5. management: a page of 100 of /v1/queues, one queue by name, /v1/stats (the second call each:
 *    the first sorts the names), and the worst delivery latency at 2,000 msg/s while /v1/stats,
 *    /metrics and every page of 500 of /v1/queues are fetched one after the other (by a child
 *    process, so the harness's own GC stays out of it), against the worst in step 3;
 * then 100,000 bindings (quick: 10,000) onto 1,000 queues through the client, one broker with its
 * default shards. One run per point: a curve and a footprint, not a median; ratios are between
 * points of this run.
 */
import { spawn } from 'node:child_process';
import { connect, type ShardmqClient } from '../../index.js';
import { startBrokerProcess, type BrokerProcess } from '../broker-process.js';
import { runOpenLoop } from '../open-loop.js';
import { shardmqOpenLoop } from '../open-loop-systems.js';
import { mib, ResourceMeter } from '../proc.js';
import type { Workload, WorkloadContext, WorkloadResult } from '../workload.js';

const LATENCY_RATE = 2000;
const DECLARE_BATCH = 2000;

interface Point {
  readonly queues: number;
  readonly declareSeconds: number;
  readonly rssPerQueueBytes: number;
  readonly idleCores: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  readonly openLoopPerSecond: number;
  readonly lost: number;
  readonly pageMs: number;
  readonly lookupMs: number;
  readonly statsMs: number;
  readonly walkMaxMs: number;
  readonly walkPages: number;
}

const pct = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function timed(url: string): Promise<number> {
  const t = performance.now();
  const res = await fetch(url, { signal: AbortSignal.timeout(30_000) });
  await res.arrayBuffer();
  if (res.status !== 200) throw new Error(`${url} answered ${res.status}`);
  return performance.now() - t;
}

/**
 * Publishes at LATENCY_RATE to `queue` for `ms` (after a 0.5 s warm-up) and returns the sorted
 * latencies (ms); `during`, when given, runs alongside from the start of the measured part.
 */
async function latencyRun(
  pub: ShardmqClient,
  lat: { values: number[]; measuring: boolean },
  queue: string,
  ms: number,
  during?: () => Promise<void>,
): Promise<number[]> {
  const warmMs = 500;
  const start = performance.now();
  let sent = 0;
  let side: Promise<void> | null = null;
  lat.values = [];
  lat.measuring = false;
  while (performance.now() - start < warmMs + ms) {
    const now = performance.now();
    if (!lat.measuring && now - start >= warmMs) {
      lat.measuring = true;
      if (during !== undefined) side = during();
    }
    const due = Math.floor(((now - start) / 1000) * LATENCY_RATE);
    while (sent < due) {
      pub.publishNoWait(queue, String(performance.now()));
      sent++;
    }
    await sleep(1);
  }
  if (side !== null) await side;
  await sleep(300);
  lat.measuring = false;
  return lat.values.sort((a, b) => a - b);
}

/**
 * The management walk, from a process of its own: fetched in the harness it would put the harness's
 * own parsing and GC (it is also the subscriber that measures) into the latencies.
 */
function walkInChild(base: string, pages: number): Promise<void> {
  const script = `
    const get = async (path) => {
      const res = await fetch(${JSON.stringify(base)} + path, { signal: AbortSignal.timeout(30000) });
      await res.arrayBuffer();
      if (res.status !== 200) throw new Error(path + ' answered ' + res.status);
    };
    await get('/v1/stats');
    await get('/metrics');
    for (let p = 1; p <= ${pages}; p++) await get('/v1/queues?page=' + p + '&page_size=500');
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`management walk exited with ${code}: ${err.slice(0, 500)}`));
    });
  });
}

async function point(ctx: WorkloadContext, queues: number): Promise<Point> {
  const broker: BrokerProcess = await startBrokerProcess(['--shards', '1']);
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
    const idle = new ResourceMeter([broker.pid]);
    await sleep(2000);
    const idleCores = idle.stop().cores;
    ctx.progress(
      `scale ${queues.toLocaleString('en-US')} idle queues: declared in ${declareSeconds.toFixed(1)} s, idle CPU ${(idleCores * 100).toFixed(1)}%`,
    );

    const sub = await connect(broker.url);
    const pub = await connect(broker.url, { confirms: false });
    clients.push(sub, pub);
    const lat = { values: [] as number[], measuring: false };
    await sub.subscribe('/queue/scale.lat', {}, (m) => {
      if (lat.measuring) lat.values.push(performance.now() - Number(m.text()));
    });
    const plain = await latencyRun(pub, lat, '/queue/scale.lat', ctx.quick ? 1500 : 3000);
    const open = await runOpenLoop(shardmqOpenLoop(broker.url, broker.pid, false), {
      subscribers: 1,
      messages: ctx.quick ? 100_000 : 500_000,
      maxSeconds: 30,
      drainSeconds: 10,
      payloadBytes: 128,
    });
    const base = broker.url;
    const some = `scale-idle-${Math.floor(queues / 2)}`;
    await timed(`${base}/v1/queues?page=1&page_size=100`);
    const pageMs = await timed(`${base}/v1/queues?page=1&page_size=100`);
    const lookupMs = await timed(`${base}/v1/queues/${some}`);
    await timed(`${base}/v1/stats`);
    const statsMs = await timed(`${base}/v1/stats`);
    const pages = Math.ceil((queues + 1) / 500);
    const walked = await latencyRun(pub, lat, '/queue/scale.lat', ctx.quick ? 1500 : 3000, () => walkInChild(base, pages));
    const result: Point = {
      queues,
      declareSeconds,
      rssPerQueueBytes,
      idleCores,
      p50Ms: pct(plain, 50),
      p99Ms: pct(plain, 99),
      maxMs: plain[plain.length - 1] ?? NaN,
      openLoopPerSecond: open.deliveredPerSecond,
      lost: open.lost,
      pageMs,
      lookupMs,
      statsMs,
      walkMaxMs: walked[walked.length - 1] ?? NaN,
      walkPages: pages,
    };
    ctx.progress(
      `scale ${queues.toLocaleString('en-US')} idle queues: latency p50 ${result.p50Ms.toFixed(2)} ms p99 ${result.p99Ms.toFixed(2)} ms max ${result.maxMs.toFixed(1)} ms; ` +
        `1→1 ${(result.openLoopPerSecond / 1e3).toFixed(0)}k/s lost ${result.lost}; page ${pageMs.toFixed(1)} ms, lookup ${lookupMs.toFixed(1)} ms, stats ${statsMs.toFixed(1)} ms; ` +
        `worst delivery during a walk of ${pages} pages ${result.walkMaxMs.toFixed(1)} ms`,
    );
    return result;
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await broker.stop();
  }
}

async function bindings(ctx: WorkloadContext, n: number): Promise<number> {
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
    ctx.progress(`scale: ${n.toLocaleString('en-US')} bindings through the client in ${seconds.toFixed(2)} s`);
    return seconds;
  } finally {
    await client.close();
    await broker.stop();
  }
}

export const scale: Workload = {
  name: 'scale',
  description:
    'Scale with the work: 1 vs 100,000 idle queues on the shard that carries the traffic (latency at 2k msg/s, 1→1 open loop, idle CPU, RSS per queue), management calls at that size and the worst delivery latency during a paginated walk, 100,000 bindings through the client',
  async run(ctx): Promise<WorkloadResult> {
    const big = ctx.quick ? 10_000 : 100_000;
    const one = await point(ctx, 1);
    const many = await point(ctx, big);
    const bindCount = ctx.quick ? 10_000 : 100_000;
    const bindSeconds = await bindings(ctx, bindCount);
    const ms = (x: number): string => (Number.isFinite(x) ? `${x.toFixed(x < 10 ? 2 : 1)} ms` : '—');
    const row = (p: Point): Array<string | number> => [
      p.queues.toLocaleString('en-US'),
      ms(p.p50Ms),
      ms(p.p99Ms),
      ms(p.maxMs),
      `${(p.openLoopPerSecond / 1e3).toFixed(0)} k/s`,
      p.lost,
      `${(p.idleCores * 100).toFixed(1)}%`,
      Number.isFinite(p.rssPerQueueBytes) ? `${(p.rssPerQueueBytes / 1024).toFixed(2)} KiB` : '—',
      `${p.declareSeconds.toFixed(1)} s`,
    ];
    const mgmtRow = (p: Point): Array<string | number> => [
      p.queues.toLocaleString('en-US'),
      ms(p.pageMs),
      ms(p.lookupMs),
      ms(p.statsMs),
      `${ms(p.walkMaxMs)} (${p.walkPages} pages)`,
      ms(p.maxMs),
      `${(p.walkMaxMs / p.maxMs).toFixed(1)}×`,
    ];
    const p50Ratio = many.p50Ms / one.p50Ms;
    const tputRatio = many.openLoopPerSecond / one.openLoopPerSecond;
    const verdict = (ok: boolean): string => (ok ? 'met' : 'not met');
    const figures: Record<string, number> = {
      scale_idle_queues: big,
      scale_latency_p50_ms_1_queue: one.p50Ms,
      scale_latency_p50_ms_many_queues: many.p50Ms,
      scale_latency_p50_ratio: p50Ratio,
      scale_open_loop_1_queue_msgs_per_s: one.openLoopPerSecond,
      scale_open_loop_many_queues_msgs_per_s: many.openLoopPerSecond,
      scale_open_loop_ratio: tputRatio,
      scale_open_loop_lost: one.lost + many.lost,
      scale_idle_cpu_cores_many_queues: many.idleCores,
      scale_rss_bytes_per_queue: many.rssPerQueueBytes,
      scale_page_ms: many.pageMs,
      scale_lookup_ms: many.lookupMs,
      scale_stats_ms: many.statsMs,
      scale_walk_worst_latency_ratio: many.walkMaxMs / many.maxMs,
      scale_bindings: bindCount,
      scale_bindings_seconds: bindSeconds,
    };
    return {
      tables: [
        {
          title: `Idle queues on the shard that carries the traffic (one shard), 128-byte messages`,
          columns: [
            'idle queues',
            'p50 at 2k msg/s',
            'p99',
            'max',
            '1→1 open loop',
            'lost',
            'idle broker CPU',
            'RSS per queue',
            'declare time',
          ],
          rows: [row(one), row(many)],
          notes: [
            `${big.toLocaleString('en-US')} vs 1 idle queue: p50 ${p50Ratio.toFixed(2)}× (goal ≤ 1.5×: ${verdict(p50Ratio <= 1.5)}), 1→1 open loop ${tputRatio.toFixed(2)}× (goal ≥ 0.9×: ${verdict(tputRatio >= 0.9)}), lost ${one.lost + many.lost}, idle broker CPU ${(many.idleCores * 100).toFixed(1)}% of a core (goal ≤ 1%: ${verdict(many.idleCores <= 0.01)})`,
            `RSS per queue: the broker's RSS growth over the declares ÷ queues (${mib(many.rssPerQueueBytes * big)} for ${big.toLocaleString('en-US')}), garbage not yet collected included`,
            'one run per point (each a fresh broker, `--shards 1`): a curve, not a median',
          ],
        },
        {
          title: 'Management at that size, and delivery while it runs',
          columns: ['queues', 'page of 100', 'one queue by name', '/v1/stats', 'worst delivery during a walk', 'worst without', 'ratio'],
          rows: [mgmtRow(one), mgmtRow(many)],
          notes: [
            `at ${big.toLocaleString('en-US')} queues: a page of 100 in ${ms(many.pageMs)} (goal ≤ 50 ms: ${verdict(many.pageMs <= 50)}), one by name in ${ms(many.lookupMs)} (goal ≤ 5 ms: ${verdict(many.lookupMs <= 5)}), worst delivery latency during the walk ${(many.walkMaxMs / many.maxMs).toFixed(1)}× its value without (goal ≤ 2×: ${verdict(many.walkMaxMs <= 2 * many.maxMs)})`,
            'the walk: /v1/stats, /metrics, then every page of 500 of /v1/queues in turn, fetched by a child process while the harness publishes at 2,000 msg/s and measures; "worst without" is the same measurement with no management calls (previous table)',
          ],
        },
        {
          title: 'Bindings through the exported client',
          columns: ['bindings', 'onto queues', 'time'],
          rows: [[bindCount.toLocaleString('en-US'), '1,000', `${bindSeconds.toFixed(2)} s`]],
          notes: [`goal: 100,000 in ≤ 5 s (${ctx.quick ? 'quick run: 10,000, not judged' : verdict(bindSeconds <= 5)})`],
        },
      ],
      figures,
    };
  },
};
