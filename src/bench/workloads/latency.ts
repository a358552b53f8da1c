/**
 * Publish → deliver latency at fixed rates: 10,000 msg/s (design.md §4), then 50% and 90% of the
 * maximum 1→1 rate (ws-fanout's figure from the same run, or a short measurement of its own).
 * One publisher and one subscriber connection in a client process of their own, fresh for each run
 * (latency-runner.ts), so one clock (performance.now()) stamps the message at send and reads it at
 * delivery: no cross-process clock skew, and no stall of the harness's own heap in the figures.
 *
 * Beside it, in the same rounds, at 10,000 msg/s: uWebSockets.js's built-in pub/sub (one thread, no
 * hop between threads: the reference for what this machine's wake-ups and loopback cost), and a
 * broker started with `--latency-sample 1`, whose hop trace (GET /v1/stats/latency, taken before and
 * after the measured part) says where the time goes inside the broker.
 *
 * The publisher wakes about once per millisecond (setTimeout) and sends what is due since the last
 * wake as one PUBLISH_BATCH, each message stamped with the send time; so at 10,000 msg/s a frame
 * carries about 10 messages. The stamp is the actual send time, so the histogram measures broker +
 * loopback + client decode; how late the sends ran behind the schedule is reported beside it
 * (coordinated omission shows there). Runs are bounded in time, and end early if more than
 * MAX_IN_FLIGHT messages are outstanding (the broker cannot keep up at that rate: "saturated").
 */
import { type BrokerProcess, startBrokerProcess } from '../broker-process.js';
import { HOP_NAMES, HOPS, type HopName } from '../../metrics/hop-trace.js';
import { startUwsPubSub, type UwsPubSubServer } from '../open-loop-systems.js';
import { runFanout, shardmqSystem } from '../fanout.js';
import { LatencyHistogram } from '../../metrics/latency-histogram.js';
import { roundOrder } from '../pacing.js';
import { resourceCells } from '../proc.js';
import { formatRate, spread, summarize } from '../sample-stats.js';
import { roundsOf, type Workload, type WorkloadContext, type WorkloadResult, type WorkloadTable } from '../workload.js';
import { fanoutSpec } from './ws-fanout.js';
import { type LatencyRun, type LatencySystemSpec, PAYLOAD_BYTES, LatencyClients, systemOf, type ThreadFigures } from '../latency-runner.js';

const usText = (x: number): string =>
  !Number.isFinite(x)
    ? 'n/a'
    : x >= 10_000
      ? `${(x / 1000).toFixed(1)} ms`
      : x >= 1000
        ? `${(x / 1000).toFixed(2)} ms`
        : `${x.toFixed(0)} µs`;

/** Samples, p50, p90, p99, p99.9 and max of a histogram, as table cells. */
const histogramCells = (h: LatencyHistogram): string[] => [
  h.count.toLocaleString('en-US'),
  ...[50, 90, 99, 99.9].map((p) => usText(h.percentile(p))),
  usText(h.max),
];

/** The bare two-hop relay (ring-relay-server.ts): what the shape of shardmq costs with no broker in it. */
const RELAY_NAME = 'uWS + worker ring relay (floor)';

export const latency: Workload = {
  name: 'latency',
  description:
    'publish→deliver latency of 128-byte messages, 1→1 over the binary WebSocket protocol, at 10,000 msg/s and at 50% and 90% of the measured 1→1 maximum',
  async run(ctx: WorkloadContext): Promise<WorkloadResult> {
    const runs = roundsOf(ctx);
    const seconds = ctx.quick ? 2 : 5;
    const warm = ctx.quick ? 0.3 : 1;
    const byRate = new Map<string, LatencyRun[]>();
    const uwsRuns: LatencyRun[] = [];
    const relayRuns: LatencyRun[] = [];
    const tracedRuns: LatencyRun[] = [];
    let max = ctx.results.ws_1to1_msgs_per_s;
    let maxSource = 'ws-fanout 1→1 median, same run';
    let broker: BrokerProcess | null = null;
    let traced: BrokerProcess | null = null;
    let uws: UwsPubSubServer | null = null;
    let relay: UwsPubSubServer | null = null;
    const clientsOf = new Map<string, LatencyClients>();
    const report = (label: string, round: number, rate: number, r: LatencyRun): void => {
      const h = r.histogram;
      ctx.progress(
        `latency run ${round + 1}/${runs}, ${label} at ${formatRate(rate)} msg/s: p50 ${usText(h.percentile(50))}, p99 ${usText(h.percentile(99))}, p99.9 ${usText(h.percentile(99.9))}, max ${usText(h.max)}; ` +
          `${h.count.toLocaleString('en-US')} recorded of ${r.sent.toLocaleString('en-US')} sent${r.saturated ? ', SATURATED' : ''}; server ${r.resources.cores.toFixed(2)} cores; foreign ${r.resources.foreignCores.toFixed(2)} cores`,
      );
    };
    try {
      broker = await startBrokerProcess([]);
      traced = await startBrokerProcess(['--latency-sample', '1']);
      uws = await startUwsPubSub();
      relay = await startUwsPubSub('ring-relay-server.js');
      const shardmq: LatencySystemSpec = { kind: 'shardmq', url: broker.url, pid: broker.pid, traced: false };
      const tracing: LatencySystemSpec = { kind: 'shardmq', url: traced.url, pid: traced.pid, traced: true };
      const reference: LatencySystemSpec = { kind: 'uws', url: uws.url, pid: uws.pid };
      const floor: LatencySystemSpec = { kind: 'uws', url: relay.url, pid: relay.pid, name: RELAY_NAME };
      const nameOf = (spec: LatencySystemSpec): string => systemOf(spec).name;
      if (!(max > 0)) {
        const r = await runFanout(shardmqSystem(broker.url, broker.pid), { ...fanoutSpec(1, true), maxSeconds: 1.5 });
        max = r.deliveredPerSecond;
        maxSource = 'a 1.5 s ws-fanout 1→1 run of its own (ws-fanout was not run first)';
        ctx.progress(`latency: max 1→1 ${formatRate(max)} msg/s (own quick measurement)`);
      }
      type Step = { name: string; rate: number; system: LatencySystemSpec; into: (r: LatencyRun) => void };
      const steps: Step[] = [
        ['10k', 10_000],
        ['50pct_max', Math.round(max * 0.5)],
        ['90pct_max', Math.round(max * 0.9)],
      ].map(([name, rate]) => ({
        name: name as string,
        rate: rate as number,
        system: shardmq,
        into: (r: LatencyRun) => byRate.set(name as string, [...(byRate.get(name as string) ?? []), r]),
      }));
      steps.push({ name: 'uws', rate: 10_000, system: reference, into: (r) => uwsRuns.push(r) });
      steps.push({ name: 'relay', rate: 10_000, system: floor, into: (r) => relayRuns.push(r) });
      steps.push({ name: 'traced', rate: 10_000, system: tracing, into: (r) => tracedRuns.push(r) });
      // Each step has a client process of its own for all its rounds (a user's clients are long-lived:
      // LatencyClients), so a 10k run never follows a saturating run in the same client heap.
      for (const step of steps) clientsOf.set(step.name, await LatencyClients.start(step.system));
      const clients = (step: Step): LatencyClients => clientsOf.get(step.name) as LatencyClients;
      // A fresh process's first seconds are not its steady state (JIT tiers, the first full GC of
      // what start-up allocated: a 6 ms main-thread pause measured in the first run): each server
      // and each client process gets one discarded run at 10k msg/s before the measured rounds.
      for (const step of steps) {
        const r = await clients(step).run(10_000, 0, ctx.quick ? 1 : 3);
        ctx.progress(
          `latency warm-up (discarded), ${nameOf(step.system)} (${step.name}): p99 ${usText(r.histogram.percentile(99))}, p99.9 ${usText(r.histogram.percentile(99.9))}`,
        );
      }
      for (let i = 0; i < runs; i++) {
        for (const step of roundOrder(steps, i)) {
          const r = await clients(step).run(step.rate, warm, seconds);
          step.into(r);
          report(nameOf(step.system), i, step.rate, r);
        }
      }
    } finally {
      for (const c of clientsOf.values()) await c.stop();
      await broker?.stop();
      await traced?.stop();
      await uws?.stop();
      await relay?.stop();
    }
    const figures: Record<string, number> = { latency_max_rate_basis_msgs_per_s: max };
    const rows: (string | number)[][] = [];
    const rowOf = (label: string, rs: readonly LatencyRun[]): (string | number)[] => {
      const merged = rs.reduce((m, r) => m.merge(r.histogram), new LatencyHistogram());
      const p99s = summarize(rs.map((r) => r.histogram.percentile(99)));
      const achieved = summarize(rs.map((r) => r.received / r.seconds));
      const lost = rs.reduce((s, r) => s + (r.sent - r.received), 0);
      const res = resourceCells(rs.map((r) => r.resources));
      return [
        label,
        formatRate(achieved.median),
        ...histogramCells(merged),
        spread(p99s, usText),
        `${Math.max(...rs.map((r) => r.maxScheduleLagMs)).toFixed(1)} ms`,
        lost === 0 && rs.every((r) => !r.saturated) ? '0' : `${lost}${rs.some((r) => r.saturated) ? ' (saturated)' : ''}`,
        res.cores,
        res.peakRss,
        res.foreign,
      ];
    };
    const merge = (rs: readonly LatencyRun[]): LatencyHistogram => rs.reduce((m, r) => m.merge(r.histogram), new LatencyHistogram());
    for (const [name, rs] of byRate) {
      const merged = merge(rs);
      const rate = rs[0]?.rate ?? 0;
      rows.push(rowOf(`shardmq, ${formatRate(rate)} msg/s${name === '10k' ? '' : ` (${name.replace('pct_max', '% of max')})`}`, rs));
      figures[`latency_p50_us_at_${name}`] = merged.percentile(50);
      figures[`latency_p99_us_at_${name}`] = merged.percentile(99);
      figures[`latency_p999_us_at_${name}`] = merged.percentile(99.9);
      figures[`latency_max_us_at_${name}`] = merged.max;
      if (name !== '10k') figures[`latency_rate_${name}_msgs_per_s`] = rate;
    }
    const ratioNotes: string[] = [];
    if (uwsRuns.length > 0) {
      rows.push(rowOf('uWebSockets.js pub/sub, 10.0 k msg/s', uwsRuns));
      const u = merge(uwsRuns);
      figures.latency_uws_p50_us_at_10k = u.percentile(50);
      figures.latency_uws_p99_us_at_10k = u.percentile(99);
      figures.latency_uws_p999_us_at_10k = u.percentile(99.9);
      const ours = byRate.get('10k') ?? [];
      if (ours.length > 0) {
        // Per round, as the other side-by-side ratios: rounds share the machine's moment.
        const ratios = ours
          .map((r, i) => r.histogram.percentile(99) / (uwsRuns[i]?.histogram.percentile(99) ?? NaN))
          .filter(Number.isFinite);
        figures.latency_p99_vs_uws_ratio_at_10k = summarize(ratios).median;
        ratioNotes.push(
          `shardmq ÷ uWebSockets.js pub/sub, p99 at 10,000 msg/s: ${figures.latency_p99_vs_uws_ratio_at_10k.toFixed(2)}× (median of per-round ratios; goal ≤ 1.5×)`,
        );
      }
    }
    if (relayRuns.length > 0 && uwsRuns.length > 0) {
      rows.push(rowOf(`${RELAY_NAME}, 10.0 k msg/s`, relayRuns));
      const r = merge(relayRuns);
      figures.latency_relay_p50_us_at_10k = r.percentile(50);
      figures.latency_relay_p99_us_at_10k = r.percentile(99);
      figures.latency_relay_p999_us_at_10k = r.percentile(99.9);
      const perRound = (num: readonly LatencyRun[], den: readonly LatencyRun[]): number =>
        summarize(num.map((x, i) => x.histogram.percentile(99) / (den[i]?.histogram.percentile(99) ?? NaN)).filter(Number.isFinite)).median;
      figures.latency_relay_p99_vs_uws_ratio_at_10k = perRound(relayRuns, uwsRuns);
      const ours = byRate.get('10k') ?? [];
      if (ours.length > 0) figures.latency_p99_vs_relay_ratio_at_10k = perRound(ours, relayRuns);
      ratioNotes.push(
        `the two-hop floor (${RELAY_NAME}: uWS main thread → SPSC ring → worker → SPSC ring → main thread → app.publish, parked and woken as the broker's threads, no broker code; src/bench/ring-relay-server.ts) ÷ uWebSockets.js pub/sub, p99 at 10,000 msg/s: ${figures.latency_relay_p99_vs_uws_ratio_at_10k.toFixed(2)}×` +
          (ours.length > 0 ? `; shardmq ÷ that floor: ${figures.latency_p99_vs_relay_ratio_at_10k.toFixed(2)}×` : ''),
      );
    }
    if (tracedRuns.length > 0) rows.push(rowOf('shardmq --latency-sample 1, 10.0 k msg/s', tracedRuns));
    const clientGc = (rs: readonly LatencyRun[]): string => {
      const secs = rs.reduce((n, r) => n + r.seconds, 0);
      const pauses = rs.reduce((n, r) => n + r.clientGc.pauses, 0);
      const ms = rs.reduce((n, r) => n + r.clientGc.pauseMs, 0);
      const worst = Math.max(0, ...rs.map((r) => r.clientGc.maxPauseMs));
      return `${(pauses / secs).toFixed(1)} pauses/s, ${(ms / secs).toFixed(1)} ms/s, worst ${worst.toFixed(2)} ms`;
    };
    const clientGcNotes = [
      ['shardmq', byRate.get('10k') ?? []],
      ['uWS', uwsRuns],
      ['relay', relayRuns],
    ]
      .filter(([, rs]) => (rs as LatencyRun[]).length > 0)
      .map(([name, rs]) => `${name as string} ${clientGc(rs as LatencyRun[])}`);
    const p99 = figures.latency_p99_us_at_10k;
    const p999 = figures.latency_p999_us_at_10k;
    const columns = [
      'system, target rate',
      'delivered msg/s',
      'samples',
      'p50',
      'p90',
      'p99',
      'p99.9',
      'max',
      'p99 per run (min–max)',
      'worst send lag',
      'lost',
      'server CPU (cores)',
      'server peak RSS',
      'foreign CPU (cores)',
    ];
    const tables: WorkloadTable[] = [
      {
        title: `Publish→deliver latency, ${PAYLOAD_BYTES}-byte messages, 1→1, binary WebSocket, ${seconds} s per rate after ${warm} s warm-up × ${runs} interleaved run(s)`,
        columns,
        rows,
        notes: [
          ...ratioNotes,
          `max 1→1 rate: ${formatRate(max)} msg/s (${maxSource}); percentiles from a log-linear histogram (src/metrics/latency-histogram.ts, ≤ 1.6% bucket error) merged over runs`,
          "each row's publisher and subscriber run in a client process of their own, kept for all that row's rounds as a user's clients are long-lived (src/bench/latency-runner.ts LatencyClients), for every system alike: in the harness they shared a heap that the earlier workloads had grown, whose collections stalled them (worst send lag 13.1 ms against the broker's own worst 5.3 ms), and a fresh process per run measured its own cold code (uWS's p50 rose from 52 to 95 µs)",
          `before the measured rounds each row (its server and its client process) had one discarded ${ctx.quick ? 1 : 3} s run at 10,000 msg/s: a fresh process's JIT tiers and its first full GC of start-up garbage are not its steady state`,
          'the publisher wakes about every millisecond (setTimeout) and sends what is due as one write stamped with the send time (shardmq: one PUBLISH_BATCH frame; uWebSockets.js: one frame per message, corked into one write); "worst send lag" is how far a send ran behind its schedule (latency that the stamp does not see)',
          'uWebSockets.js pub/sub: src/bench/uws-pubsub-server.ts, one thread, `app.publish` per message, `ws` clients; the shardmq broker with `--latency-sample 1` traces every publish hop by hop (next table)',
          `the client process's own GC at 10,000 msg/s (in every figure, not the server's doing): ${clientGcNotes.join('; ')}`,
          `goal (design.md §4) at 10,000 msg/s: p99 ≤ 1 ms — ${p99 <= 1000 ? 'met' : 'not met'} (${usText(p99)}); p99.9 ≤ 3 ms — ${p999 <= 3000 ? 'met' : 'not met'} (${usText(p999)})`,
        ],
      },
    ];
    const withHops = tracedRuns.filter((r) => r.hops !== null);
    if (withHops.length > 0) {
      const hop = (name: HopName): LatencyHistogram =>
        withHops.reduce((m, r) => m.merge((r.hops as Record<HopName, LatencyHistogram>)[name]), new LatencyHistogram());
      const e2e = merge(withHops);
      const hopRows: (string | number)[][] = [];
      const line = (label: string, meaning: string, h: LatencyHistogram): (string | number)[] => [label, meaning, ...histogramCells(h)];
      hopRows.push(line('end to end', 'publisher stamp → subscriber callback (one client process, one clock)', e2e));
      for (const name of HOP_NAMES) {
        const h = hop(name);
        hopRows.push(line(name === 'total' ? 'in the broker' : name, HOPS[name], h));
        figures[`latency_hop_${name}_p50_us`] = h.percentile(50);
        figures[`latency_hop_${name}_p99_us`] = h.percentile(99);
        figures[`latency_hop_${name}_p999_us`] = h.percentile(99.9);
      }
      const t = withHops.map((r) => r.threads as ThreadFigures);
      const secs = t.reduce((n, x) => n + x.seconds, 0);
      const per = (pick: (x: ThreadFigures) => number): string => (t.reduce((n, x) => n + pick(x), 0) / secs).toFixed(1);
      const e2eMedian = e2e.percentile(50);
      const brokerMedian = hop('total').percentile(50);
      tables.push({
        title: `Where the time goes at 10,000 msg/s: hops inside the broker (--latency-sample 1), ${runs} run(s) merged`,
        columns: ['hop', 'what it covers', 'samples', 'p50', 'p90', 'p99', 'p99.9', 'max'],
        rows: hopRows,
        notes: [
          'stamps on the machine-wide monotonic clock (src/metrics/clock.ts) at front-in (the publish written to its ring), shard-in (the shard picked up the batch holding it), shard-out (its deliveries written), front read (the main thread read them) and socket (the chunk handed to uWS); src/metrics/hop-trace.ts',
          `outside the broker (publisher client, loopback both ways, subscriber client) is what the end-to-end median leaves: ${usText(e2eMedian - brokerMedian)} at the median (${usText(e2eMedian)} − ${usText(brokerMedian)}); percentiles of hops do not add up, each is its own distribution`,
          `per second of measurement: main thread GC ${per((x) => x.mainGcPauses)} pauses (${per((x) => x.mainGcMs)} ms), shard GC ${per((x) => x.shardGcPauses)} pauses (${per((x) => x.shardGcMs)} ms); parks (a thread going to sleep, woken by the next record: one wake-up each): main-thread pump ${per((x) => x.pumpParks)}, shard ${per((x) => x.shardParks)}`,
        ],
      });
    }
    return { tables, figures };
  },
};
