/**
 * Scale with the work (issue "Scale with the work"): does a message cost the same with 100,000
 * idle queues, subscriptions or connections as with one, what does each cost in memory, and does
 * managing them stall delivery? NATS core is measured side by side for subscriptions and
 * connections.
 *
 * Points (quick: the largest dropped): 1, 1k, 10k, 100k idle queues; 1, 1k, 10k, 100k wildcard
 * subscriptions over 10 connections; 1k and 10k idle connections with one subscription each; each
 * a fresh server (shardmq `--shards 1`). At 1 and the largest queue count, the management calls and
 * the worst delivery latency during a paginated walk; then 100,000 bindings through the client.
 * One run per point: a curve and a footprint, not a median; ratios are between points of this run.
 */
import { machineLine } from '../machine.js';
import { mib } from '../proc.js';
import { loadPeers, type NatsModule } from '../peers.js';
import { bindingsPoint, queuePair, queuePoint, type QueuePoint } from '../scale-queues.js';
import {
  connectionPoint,
  SUBSCRIPTION_CONNECTIONS,
  subscriptionPoint,
  type ConnectionPoint,
  type SubscriptionPoint,
} from '../scale-subscriptions.js';
import { lineChart } from '../svg.js';
import type { Workload, WorkloadResult } from '../workload.js';

/** The bound on broker memory per idle wildcard subscription. */
const MAX_BYTES_PER_SUBSCRIPTION = 1500;

const count = (n: number): string => n.toLocaleString('en-US');
const short = (n: number): string => (n >= 1000 ? `${n / 1000}k` : String(n));
const ms = (x: number): string => (Number.isFinite(x) ? `${x.toFixed(x < 10 ? 2 : 1)} ms` : '—');
const perSecond = (x: number): string => `${(x / 1e3).toFixed(0)} k/s`;
const kib = (bytes: number): string => (Number.isFinite(bytes) ? `${(bytes / 1024).toFixed(2)} KiB` : '—');
const verdict = (ok: boolean): string => (ok ? 'met' : 'not met');
const ratios = (rs: readonly number[]): string => rs.map((r) => `${r.toFixed(2)}×`).join(', ');

export const scale: Workload = {
  name: 'scale',
  description:
    'Scale with the work: 1 to 100,000 idle queues and wildcard subscriptions (latency at 2k msg/s, 1→1 open loop, memory each), 1k and 10k idle connections, NATS side by side; management at 100,000 queues and delivery during a paginated walk; 100,000 bindings through the client',
  async run(ctx): Promise<WorkloadResult> {
    const o = { quick: ctx.quick, progress: (m: string) => ctx.progress(m) };
    const counts = ctx.quick ? [1, 1000, 10_000] : [1, 1000, 10_000, 100_000];
    const connectionCounts = ctx.quick ? [1000] : [1000, 10_000];
    const big = counts[counts.length - 1];
    const notes: string[] = [];
    const peers = await loadPeers();
    let nats: { client: NatsModule; binary: string } | null = null;
    if ('missing' in peers.nats) notes.push(`NATS skipped: ${peers.nats.missing}`);
    else nats = peers.nats;

    const queues: QueuePoint[] = [];
    for (const n of counts) queues.push(await queuePoint(o, n, n === 1 || n === big));
    const pair = await queuePair(o, big);
    const subs: SubscriptionPoint[] = [];
    for (const n of counts) {
      subs.push(await subscriptionPoint(o, 'shardmq', n, null));
      if (nats !== null) subs.push(await subscriptionPoint(o, 'nats', n, nats));
    }
    const conns: ConnectionPoint[] = [];
    for (const n of connectionCounts) {
      conns.push(await connectionPoint(o, 'shardmq', n, null));
      if (nats !== null) conns.push(await connectionPoint(o, 'nats', n, nats));
    }
    const bindCount = ctx.quick ? 10_000 : 100_000;
    const bindSeconds = await bindingsPoint(o, bindCount);

    const many = queues[queues.length - 1];
    // Judged on the paired rounds (two live brokers, alternated), not the curve's single runs.
    const p50Ratio = pair.p50Ratio;
    const tputRatio = pair.openLoopRatio;
    const queueLost = queues.reduce((s, p) => s + p.lost, 0) + pair.lost;
    const subsOf = (system: string): SubscriptionPoint[] => subs.filter((p) => p.system === system);
    const ours = subsOf('shardmq');
    const theirs = subsOf('nats');
    const subOne = ours[0];
    const subMany = ours[ours.length - 1];
    const subRatio = subMany.openLoopPerSecond / subOne.openLoopPerSecond;
    const subDropped = ours.reduce((s, p) => s + (p.dropped ?? 0), 0);
    const subLost = ours.reduce((s, p) => s + p.lost, 0);
    const mgmt = many.management;

    const figures: Record<string, number> = {
      scale_idle_queues: big,
      scale_latency_p50_ms_1_queue: pair.p50Ms.one,
      scale_latency_p50_ms_many_queues: pair.p50Ms.many,
      scale_latency_p50_ratio: p50Ratio,
      scale_open_loop_1_queue_msgs_per_s: pair.openLoopPerSecond.one,
      scale_open_loop_many_queues_msgs_per_s: pair.openLoopPerSecond.many,
      scale_open_loop_ratio: tputRatio,
      scale_open_loop_lost: queueLost,
      scale_idle_cpu_cores_many_queues: many.idleCores,
      scale_rss_bytes_per_queue: many.rssPerQueueBytes,
      scale_bindings: bindCount,
      scale_bindings_seconds: bindSeconds,
      scale_subscriptions: big,
      scale_subscriptions_open_loop_1_msgs_per_s: subOne.openLoopPerSecond,
      scale_subscriptions_open_loop_many_msgs_per_s: subMany.openLoopPerSecond,
      scale_subscriptions_open_loop_ratio: subRatio,
      scale_subscriptions_dropped: subDropped,
      scale_subscriptions_lost: subLost,
      scale_rss_bytes_per_subscription: subMany.rssPerSubscriptionBytes,
    };
    if (mgmt !== null) {
      figures.scale_page_ms = mgmt.pageMs;
      figures.scale_lookup_ms = mgmt.lookupMs;
      figures.scale_stats_ms = mgmt.statsMs;
      figures.scale_walk_worst_latency_ratio = mgmt.walkRatio;
      figures.scale_walk_seconds = mgmt.walkSeconds;
    }
    if (theirs.length > 0) {
      const natsMany = theirs[theirs.length - 1];
      figures.scale_nats_rss_bytes_per_subscription = natsMany.rssPerSubscriptionBytes;
      figures.scale_nats_subscriptions_open_loop_ratio = natsMany.openLoopPerSecond / theirs[0].openLoopPerSecond;
    }
    for (const c of conns) figures[`scale_${c.system}_rss_bytes_per_connection_${short(c.connections)}`] = c.rssPerConnectionBytes;

    const queueRow = (p: QueuePoint): Array<string | number> => [
      count(p.queues),
      ms(p.p50Ms),
      ms(p.p99Ms),
      ms(p.maxMs),
      perSecond(p.openLoopPerSecond),
      p.lost,
      `${(p.idleCores * 100).toFixed(1)}%`,
      p.queues > 1 ? kib(p.rssPerQueueBytes) : '—',
      `${p.declareSeconds.toFixed(1)} s`,
    ];
    const mgmtRows = queues
      .filter((p) => p.management !== null)
      .map((p) => {
        const m = p.management as NonNullable<QueuePoint['management']>;
        return [
          count(p.queues),
          ms(m.pageMs),
          ms(m.lookupMs),
          ms(m.statsMs),
          `${ms(m.walkMaxMs)} (${m.walkPages} pages in ${m.walkSeconds.toFixed(1)} s)`,
          ms(m.walkBaselineMaxMs),
          `${m.walkRatio.toFixed(2)}× (${m.walkRatios.map((r) => r.toFixed(2)).join(', ')})`,
        ];
      });
    const name = (system: string): string => (system === 'nats' ? 'NATS core' : 'shardmq');
    const subRow = (p: SubscriptionPoint): Array<string | number> => [
      count(p.subscriptions),
      name(p.system),
      `${p.setupSeconds.toFixed(1)} s`,
      p.subscriptions > 1 ? kib(p.rssPerSubscriptionBytes) : '—',
      ms(p.p50Ms),
      ms(p.p99Ms),
      perSecond(p.openLoopPerSecond),
      p.lost,
      p.dropped ?? 'n/a',
    ];
    const connRow = (p: ConnectionPoint): Array<string | number> => [
      count(p.connections),
      name(p.system),
      `${p.setupSeconds.toFixed(1)} s`,
      kib(p.rssPerConnectionBytes),
      ms(p.p50Ms),
      ms(p.p99Ms),
    ];

    const caption = `${machineLine(ctx.machine)}${ctx.quick ? ' — QUICK RUN, not for quoting' : ''}. Generated by shardmq bench (src/bench/workloads/scale.ts); one run per point.`;
    const categories = counts.map(short);
    const throughputChart = lineChart({
      title: '1→1 open loop, delivered msg/s, beside N idle queues or subscriptions',
      categories,
      series: [
        { name: 'shardmq, idle queues', values: queues.map((p) => p.openLoopPerSecond) },
        { name: 'shardmq, wildcard subscriptions', values: ours.map((p) => p.openLoopPerSecond) },
        ...(theirs.length > 0 ? [{ name: 'NATS core, wildcard subscriptions', values: theirs.map((p) => p.openLoopPerSecond) }] : []),
      ],
      yLabel: 'delivered messages / s',
      xLabel: 'idle queues or wildcard subscriptions on the server',
      caption,
    });
    const latencyChart = lineChart({
      title: 'p50 publish → deliver at 2,000 msg/s, beside N idle queues or subscriptions',
      categories,
      series: [
        { name: 'shardmq, idle queues', values: queues.map((p) => p.p50Ms) },
        { name: 'shardmq, wildcard subscriptions', values: ours.map((p) => p.p50Ms) },
        ...(theirs.length > 0 ? [{ name: 'NATS core, wildcard subscriptions', values: theirs.map((p) => p.p50Ms) }] : []),
      ],
      yLabel: 'p50 latency (ms)',
      xLabel: 'idle queues or wildcard subscriptions on the server',
      caption,
    });

    return {
      notes,
      tables: [
        {
          title: 'Idle queues on the shard that carries the traffic (one shard), 128-byte messages',
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
          rows: queues.map(queueRow),
          notes: [
            `${count(big)} vs 1 idle queue: p50 ${p50Ratio.toFixed(2)}× (goal ≤ 1.5×: ${verdict(p50Ratio <= 1.5)}), 1→1 open loop ${tputRatio.toFixed(2)}× (goal ≥ 0.9×: ${verdict(tputRatio >= 0.9)}), lost ${queueLost}, idle broker CPU ${(many.idleCores * 100).toFixed(2)}% of a core (goal ≤ 1%: ${verdict(many.idleCores <= 0.01)})`,
            `the ratios are medians of ${pair.p50Ratios.length} paired rounds on two brokers up at once (one queue; ${count(big)} idle queues), measured alternately: p50 ${pair.p50Ms.one.toFixed(2)} vs ${pair.p50Ms.many.toFixed(2)} ms (rounds ${ratios(pair.p50Ratios)}), 1→1 ${perSecond(pair.openLoopPerSecond.one)} vs ${perSecond(pair.openLoopPerSecond.many)} (rounds ${ratios(pair.openLoopRatios)})`,
            `RSS per queue: the broker's RSS growth over the declares ÷ queues (${mib(many.rssPerQueueBytes * big)} for ${count(big)}), garbage not yet collected included`,
            'the rows: one run per point (each a fresh broker, `--shards 1`): a curve, not a median',
          ],
        },
        {
          title: 'Management at that size, and delivery while it runs',
          columns: ['queues', 'page of 100', 'one queue by name', '/v1/stats', 'worst delivery during a walk', 'worst without', 'ratio'],
          rows: mgmtRows,
          notes: [
            mgmt === null
              ? 'no management figures'
              : `at ${count(big)} queues: a page of 100 in ${ms(mgmt.pageMs)} (goal ≤ 50 ms: ${verdict(mgmt.pageMs <= 50)}), one by name in ${ms(mgmt.lookupMs)} (goal ≤ 5 ms: ${verdict(mgmt.lookupMs <= 5)}), worst delivery latency during the walk ${mgmt.walkRatio.toFixed(2)}× its value without (goal ≤ 2×: ${verdict(mgmt.walkRatio <= 2)})`,
            'the walk: /v1/stats, /metrics, then every page of 500 of /v1/queues in turn, fetched by a child process (started and its HTTP client warmed before the measured window) while the harness publishes at 2,000 msg/s and measures; "worst without" is the same measurement with no management calls, taken just before each walk on the same broker. The worst of a few thousand latencies is a single sample that swings several-fold between equal runs on two cores, so the ratio is the median of the rounds\' ratios (each round in brackets) and both worst figures are medians over the rounds',
            'the broker paces a long answer to `--management-share` (25% of the time by default): the walk takes the seconds shown rather than a fraction of one',
            'page of 100, one queue by name and /v1/stats: medians of five calls each, after one unmeasured call',
          ],
        },
        {
          title: `Wildcard subscriptions (\`a.<i>.*\`, each its own pattern) over ${SUBSCRIPTION_CONNECTIONS} connections, traffic on other subjects`,
          columns: [
            'subscriptions',
            'server',
            'set-up time',
            'RSS per subscription',
            'p50 at 2k msg/s',
            'p99',
            '1→1 open loop',
            'lost',
            'dropped',
          ],
          rows: subs.map(subRow),
          notes: [
            `shardmq at ${count(big)} vs 1 subscription: 1→1 open loop ${subRatio.toFixed(2)}× (goal ≥ 0.9×: ${verdict(subRatio >= 0.9)}), dropped ${subDropped} and lost ${subLost} over every point (goal 0: ${verdict(subDropped === 0 && subLost === 0)}), ${kib(subMany.rssPerSubscriptionBytes)} per subscription (goal ≤ 1.5 KB: ${verdict(subMany.rssPerSubscriptionBytes <= MAX_BYTES_PER_SUBSCRIPTION)})` +
              (theirs.length > 0
                ? `; NATS core at ${count(big)}: ${kib(theirs[theirs.length - 1].rssPerSubscriptionBytes)} per subscription, open loop ${(theirs[theirs.length - 1].openLoopPerSecond / theirs[0].openLoopPerSecond).toFixed(2)}× its 1-subscription figure`
                : ''),
            "RSS per subscription: the server's RSS growth over the subscribes ÷ subscriptions; shardmq subscriptions are the exported client's `subscribe('/topic/a.<i>.*', { ack: 'auto' })` (shared streams), NATS's `nc.subscribe('a.<i>.*')`",
            "latency: a publisher and a subscriber of their own on `scale.lat`; open loop: 128-byte messages on `bench`, the open-loop workload's pacing, its subscriber in a child process; dropped = what the server counted as dropped during the run (NATS does not say: n/a)",
          ],
        },
        {
          title: 'Idle connections, one subscription each (`c.<i>`), and latency beside them',
          columns: ['connections', 'server', 'set-up time', 'RSS per connection', 'p50 at 2k msg/s', 'p99'],
          rows: conns.map(connRow),
          notes: [
            "RSS per connection: the server's RSS growth over the connects and subscribes ÷ connections; shardmq connections are the exported client's, over WebSocket; NATS's are nats.js over TCP",
          ],
        },
        {
          title: 'Bindings through the exported client',
          columns: ['bindings', 'onto queues', 'time'],
          rows: [[count(bindCount), '1,000', `${bindSeconds.toFixed(2)} s`]],
          notes: [`goal: 100,000 in ≤ 5 s (${ctx.quick ? 'quick run: 10,000, not judged' : verdict(bindSeconds <= 5)})`],
        },
      ],
      figures,
      charts: [
        {
          file: 'benchmarks/scale-throughput.svg',
          title: 'Scale: 1→1 open loop beside N idle queues or subscriptions (line chart)',
          svg: throughputChart,
        },
        {
          file: 'benchmarks/scale-latency.svg',
          title: 'Scale: p50 latency beside N idle queues or subscriptions (line chart)',
          svg: latencyChart,
        },
      ],
    };
  },
};
