/**
 * AMQP 0-9-1 (design.md §4): shardmq's AMQP listener side by side with RabbitMQ (Debian's
 * rabbitmq-server, started by the harness on loopback: src/bench/rabbitmq-peer.ts), driven by the
 * SAME amqplib code (src/bench/amqp-load.ts), the brokers alternating run by run:
 *
 * - 1→1 and 1→16 fanout, open loop, consumers noAck: delivered msg/s ≥ 5× RabbitMQ's;
 * - confirms + manual acks (ConfirmChannel, ≤ 1000 unconfirmed; prefetch 100, one ack per message):
 *   delivered msg/s ≥ 5× RabbitMQ's;
 * - publish→deliver latency at 10,000 msg/s, 1→1, noAck: p99 ≤ RabbitMQ's / 3;
 *
 * and lost = 0 in every row. The same client against the null broker (amqp-null-broker.ts: forwards,
 * holds nothing) says what that client allows at all on this machine: a goal of k× RabbitMQ's is
 * reachable only where k× RabbitMQ's figure is within it. A machine without rabbitmq-server measures
 * shardmq (and the null broker) alone, with a note saying how to install it. Writes benchmarks/amqp.svg.
 */
import { startBrokerProcess, type BrokerProcess } from '../broker-process.js';
import {
  AMQP_PAYLOAD_BYTES,
  DRAIN_QUIET_MS,
  MAX_UNCONFIRMED,
  PREFETCH,
  runLatency,
  runThroughput,
  type AmqpBroker,
  type AmqpShape,
  type LatencyResult,
  type ThroughputResult,
  type ThroughputSpec,
} from '../amqp-load.js';
import { machineLine } from '../machine.js';
import { roundOrder } from '../pacing.js';
import { rabbitMqMissing, startRabbitMq, type RabbitMqServer } from '../rabbitmq-peer.js';
import { startNullBroker, type NullBroker } from '../amqp-null-peer.js';
import { LatencyHistogram } from '../../metrics/latency-histogram.js';
import { formatRate, spread, summarize } from '../sample-stats.js';
import { barChart } from '../svg.js';
import { roundsOf, type Workload, type WorkloadContext, type WorkloadResult } from '../workload.js';

/** design.md §4: shardmq's delivered msg/s at least this many times RabbitMQ's. */
export const AMQP_THROUGHPUT_GOAL = 5;
/** design.md §4: shardmq's p99 at 10,000 msg/s at most RabbitMQ's divided by this. */
export const AMQP_LATENCY_GOAL_DIVISOR = 3;
const LATENCY_RATE = 10_000;

interface Case {
  /** Figure part: amqp_<broker>_<id>_… */
  readonly id: string;
  readonly label: string;
  readonly shape: AmqpShape;
  readonly consumers: number;
}

const CASES: readonly Case[] = [
  { id: '1to1', label: '1→1, noAck', shape: 'queue', consumers: 1 },
  { id: 'fanout16', label: '1→16 fanout, noAck', shape: 'fanout', consumers: 16 },
  { id: 'confirms_acks', label: `1→1, confirms + manual acks`, shape: 'acks', consumers: 1 },
];

export function amqpSpec(c: Case, quick: boolean): ThroughputSpec {
  return {
    shape: c.shape,
    consumers: c.consumers,
    seconds: quick ? 2 : 5,
    // A bound in count as well as time; at the rates seen here, time ends a run first.
    maxMessages: quick ? 2_000_000 : 5_000_000,
    drainSeconds: quick ? 10 : 20,
  };
}

const count = (x: number): string => Math.round(x).toLocaleString('en-US');
const us = (x: number): string =>
  !Number.isFinite(x)
    ? 'n/a'
    : x >= 10_000
      ? `${(x / 1000).toFixed(1)} ms`
      : x >= 1000
        ? `${(x / 1000).toFixed(2)} ms`
        : `${x.toFixed(0)} µs`;

/**
 * Median over rounds of a ÷ b, a and b from the same round (rounds share the machine's moment).
 * NaN when either side has no runs.
 */
export function pairedRatio(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  const ratios: number[] = [];
  for (let i = 0; i < n; i++) if (b[i] > 0) ratios.push(a[i] / b[i]);
  return summarize(ratios).median;
}

function throughputFlags(r: ThroughputResult): string[] {
  return [
    r.publisherErrors > 0 ? `${r.publisherErrors} publisher error(s), first: ${r.firstPublisherError}` : '',
    r.consumerErrors > 0 ? `${r.consumerErrors} consumer error(s), last: ${r.lastConsumerError}` : '',
    r.consumersClosed > 0 ? `${r.consumersClosed} consumer connection(s) closed by the broker` : '',
    r.nacked > 0 ? `${count(r.nacked)} nacked` : '',
    r.confirmsTimedOut ? 'FINAL CONFIRMS TIMED OUT' : '',
  ].filter((x) => x !== '');
}

function throughputLine(label: string, r: ThroughputResult): string {
  const flags = throughputFlags(r);
  const copies = r.shape === 'fanout' ? ` (× ${r.consumers} copies)` : '';
  return (
    `${r.broker} ${label}: sent ${count(r.sent)}${copies} at ${formatRate(r.publishedPerSecond)}/s in ${r.publishSeconds.toFixed(2)} s ` +
    `(held ${(r.heldMs / 1000).toFixed(2)} s by drain/confirms), delivered ${count(r.delivered)} of ${count(r.expected)} at ${formatRate(r.deliveredPerSecond)}/s, ` +
    `LOST ${count(r.lost)}; server ${r.resources.cores.toFixed(2)} cores, consumer process ${r.consumerCores.toFixed(2)} cores, ` +
    `publisher (harness) ${r.resources.harnessCores.toFixed(2)} cores, foreign ${r.resources.foreignCores.toFixed(2)} cores` +
    (flags.length > 0 ? ` [${flags.join('; ')}]` : '')
  );
}

function latencyLine(r: LatencyResult): string {
  const h = r.histogram;
  return (
    `${r.broker} latency at ${formatRate(r.rate)} msg/s: p50 ${us(h.percentile(50))}, p99 ${us(h.percentile(99))}, p99.9 ${us(h.percentile(99.9))}, max ${us(h.max)}; ` +
    `${count(r.received)} recorded of ${count(r.sent)} sent${r.saturated ? ', SATURATED' : ''}, worst send lag ${r.maxScheduleLagMs.toFixed(1)} ms; ` +
    `server ${r.resources.cores.toFixed(2)} cores, foreign ${r.resources.foreignCores.toFixed(2)} cores` +
    (r.errors > 0 ? ` [${r.errors} error(s), last: ${r.lastError}]` : '')
  );
}

export const amqpWorkload: Workload = {
  name: 'amqp',
  description:
    "AMQP 0-9-1 with amqplib, the same client code against shardmq, RabbitMQ (Debian rabbitmq-server, started by the harness on loopback) and a null broker that only forwards (the client's own ceiling), interleaved: 1→1 and 1→16 fanout open loop with noAck consumers, confirms + manual acks, and publish→deliver latency at 10,000 msg/s; 128-byte messages",
  async run(ctx: WorkloadContext): Promise<WorkloadResult> {
    const runs = roundsOf(ctx);
    const warm = ctx.quick ? 0.3 : 1;
    const latencySeconds = ctx.quick ? 2 : 5;
    const notes: string[] = [];
    const brokers: AmqpBroker[] = [];
    const throughput = new Map<string, ThroughputResult[]>();
    const latency = new Map<string, LatencyResult[]>();
    let shardmq: BrokerProcess | null = null;
    let rabbit: RabbitMqServer | null = null;
    let nullBroker: NullBroker | null = null;
    try {
      shardmq = await startBrokerProcess([]);
      if (shardmq.amqpUrl === null) {
        throw new Error(
          `the shardmq broker (pid ${shardmq.pid}) came up without an AMQP listener: its start-up line has no "amqp" URL although the harness passes --amqp-port 0; start-up log: ${shardmq.startupLog.trim().slice(0, 500)}`,
        );
      }
      brokers.push({ key: 'shardmq', name: 'shardmq', url: shardmq.amqpUrl, pid: shardmq.pid });
      const missing = rabbitMqMissing();
      if (missing !== null) notes.push(`RabbitMQ skipped: ${missing}`);
      else {
        ctx.progress('amqp: starting RabbitMQ (its own node, temp dir, loopback, free ports)');
        rabbit = await startRabbitMq();
        ctx.progress(
          `amqp: ${rabbit.version} accepting AMQP at ${rabbit.url} after ${rabbit.bootSeconds.toFixed(1)} s (VM pid ${rabbit.pid})`,
        );
        brokers.push({ key: 'rabbitmq', name: 'RabbitMQ', url: rabbit.url, pid: rabbit.pid });
      }
      nullBroker = await startNullBroker();
      brokers.push({ key: 'null', name: 'null broker (client ceiling)', url: nullBroker.url, pid: nullBroker.pid });
      for (const n of notes) ctx.progress(`amqp: ${n}`);

      // Warm-up (not recorded): JIT on every side, first connections.
      for (const b of brokers) {
        ctx.progress(`amqp: warm-up ${b.name}`);
        await runThroughput(b, { ...amqpSpec(CASES[0], true), seconds: 1, drainSeconds: 5 });
      }
      for (let i = 0; i < runs; i++) {
        for (const c of CASES) {
          for (const b of roundOrder(brokers, i)) {
            const r = await runThroughput(b, amqpSpec(c, ctx.quick));
            const id = `${b.key}/${c.id}`;
            throughput.set(id, [...(throughput.get(id) ?? []), r]);
            ctx.progress(`amqp run ${i + 1}/${runs}: ${throughputLine(c.label, r)}`);
          }
        }
        for (const b of roundOrder(brokers, i)) {
          const r = await runLatency(b, LATENCY_RATE, warm, latencySeconds);
          latency.set(b.key, [...(latency.get(b.key) ?? []), r]);
          ctx.progress(`amqp run ${i + 1}/${runs}: ${latencyLine(r)}`);
        }
      }
    } finally {
      await shardmq?.stop();
      await rabbit?.stop();
      await nullBroker?.stop();
    }

    const figures: Record<string, number> = {};
    const hasRabbit = brokers.some((b) => b.key === 'rabbitmq');
    const of = (key: string, c: Case): ThroughputResult[] => throughput.get(`${key}/${c.id}`) ?? [];
    const delivered = (rs: readonly ThroughputResult[]): number[] => rs.map((r) => r.deliveredPerSecond);
    /** A broker's delivered msg/s ÷ RabbitMQ's, round by round (NaN without RabbitMQ). */
    const throughputVsRabbit = (key: string, c: Case): number =>
      hasRabbit ? pairedRatio(delivered(of(key, c)), delivered(of('rabbitmq', c))) : NaN;
    const p99s = (key: string): number[] => (latency.get(key) ?? []).map((r) => r.histogram.percentile(99));

    // ---- throughput table
    const rows: (string | number)[][] = [];
    const goalNotes: string[] = [];
    let latencyGoalNote: string | null = null;
    for (const c of CASES) {
      const ratio = throughputVsRabbit('shardmq', c);
      if (hasRabbit) figures[`amqp_${c.id}_vs_rabbitmq_ratio`] = ratio;
      // What the client allows at all here: the null broker's figure ÷ RabbitMQ's, round by round.
      const ceiling = throughputVsRabbit('null', c);
      if (hasRabbit) figures[`amqp_null_${c.id}_vs_rabbitmq_ratio`] = ceiling;
      for (const b of brokers) {
        const rs = of(b.key, c);
        if (rs.length === 0) continue;
        const med = (pick: (r: ThroughputResult) => number): number => summarize(rs.map(pick)).median;
        const d = summarize(delivered(rs));
        const sent = rs.reduce((s, r) => s + r.sent, 0);
        const got = rs.reduce((s, r) => s + r.delivered, 0);
        const lost = rs.reduce((s, r) => s + r.lost, 0);
        const flags = [
          rs.some((r) => r.publisherErrors > 0) ? 'publisher errors' : '',
          rs.some((r) => r.consumerErrors > 0) ? 'consumer errors' : '',
          rs.some((r) => r.consumersClosed > 0) ? 'consumers closed' : '',
          rs.some((r) => r.nacked > 0) ? 'nacked' : '',
          rs.some((r) => r.confirmsTimedOut) ? 'confirms timed out' : '',
        ].filter((x) => x !== '');
        rows.push([
          `${b.name}, ${c.label}` + (flags.length > 0 ? ` (${flags.join('; ')})` : ''),
          formatRate(med((r) => r.publishedPerSecond)),
          formatRate(d.median),
          spread(d),
          !hasRabbit || b.key === 'rabbitmq' ? '—' : `${(b.key === 'shardmq' ? ratio : ceiling).toFixed(2)}×`,
          c.shape === 'fanout' ? `${count(sent)} × ${c.consumers}` : count(sent),
          count(got),
          count(lost),
          `${(100 * med((r) => (r.publishSeconds > 0 ? r.heldMs / 1000 / r.publishSeconds : 0))).toFixed(0)}%`,
          med((r) => r.resources.cores).toFixed(2),
          med((r) => r.resources.harnessCores).toFixed(2),
          med((r) => r.consumerCores).toFixed(2),
          med((r) => r.resources.foreignCores).toFixed(2),
        ]);
        const p = `amqp_${b.key}_${c.id}`;
        figures[`${p}_delivered_msgs_per_s`] = d.median;
        figures[`${p}_published_msgs_per_s`] = med((r) => r.publishedPerSecond);
        figures[`${p}_lost_max`] = Math.max(...rs.map((r) => r.lost));
        figures[`${p}_server_cores`] = med((r) => r.resources.cores);
      }
      if (hasRabbit) {
        const lostS = figures[`amqp_shardmq_${c.id}_lost_max`];
        const lostR = figures[`amqp_rabbitmq_${c.id}_lost_max`];
        const met = ratio >= AMQP_THROUGHPUT_GOAL && lostS === 0 && lostR === 0;
        const reachable = ceiling >= AMQP_THROUGHPUT_GOAL;
        goalNotes.push(
          `goal ${c.label}: delivered msg/s ≥ ${AMQP_THROUGHPUT_GOAL}× RabbitMQ's, lost 0 — ${met ? 'met' : 'not met'} (${ratio.toFixed(2)}×; lost ${count(lostS)} / ${count(lostR)}, shardmq / RabbitMQ, worst run); ` +
            `the null broker, with the same client: ${ceiling.toFixed(2)}× RabbitMQ's${reachable ? '' : `, so ${AMQP_THROUGHPUT_GOAL}× is beyond what this client reaches on this machine against any broker`}`,
        );
      }
    }

    // ---- latency table
    const latencyRows: (string | number)[][] = [];
    const merge = (rs: readonly LatencyResult[]): LatencyHistogram => rs.reduce((m, r) => m.merge(r.histogram), new LatencyHistogram());
    const p99Ratio = hasRabbit ? pairedRatio(p99s('shardmq'), p99s('rabbitmq')) : NaN;
    if (hasRabbit) figures.amqp_latency_p99_vs_rabbitmq_ratio_at_10k = p99Ratio;
    const p99Floor = hasRabbit ? pairedRatio(p99s('null'), p99s('rabbitmq')) : NaN;
    if (hasRabbit) figures.amqp_null_latency_p99_vs_rabbitmq_ratio_at_10k = p99Floor;
    for (const b of brokers) {
      const rs = latency.get(b.key) ?? [];
      if (rs.length === 0) continue;
      const h = merge(rs);
      const sent = rs.reduce((s, r) => s + r.sent, 0);
      const lost = rs.reduce((s, r) => s + (r.sent - r.received), 0);
      const achieved = summarize(rs.map((r) => (r.seconds > 0 ? r.received / r.seconds : 0)));
      const flags = [rs.some((r) => r.saturated) ? 'saturated' : '', rs.some((r) => r.errors > 0) ? 'errors' : ''].filter((x) => x !== '');
      latencyRows.push([
        b.name + (flags.length > 0 ? ` (${flags.join(', ')})` : ''),
        formatRate(LATENCY_RATE),
        formatRate(achieved.median),
        count(h.count),
        ...[50, 90, 99, 99.9].map((p) => us(h.percentile(p))),
        us(h.max),
        spread(summarize(rs.map((r) => r.histogram.percentile(99))), us),
        !hasRabbit || b.key === 'rabbitmq' ? '—' : `${(b.key === 'shardmq' ? p99Ratio : p99Floor).toFixed(2)}×`,
        `${Math.max(...rs.map((r) => r.maxScheduleLagMs)).toFixed(1)} ms`,
        count(sent),
        count(lost),
        summarize(rs.map((r) => r.resources.cores)).median.toFixed(2),
        summarize(rs.map((r) => r.resources.foreignCores)).median.toFixed(2),
      ]);
      const p = `amqp_${b.key}_latency`;
      figures[`${p}_p50_us_at_10k`] = h.percentile(50);
      figures[`${p}_p99_us_at_10k`] = h.percentile(99);
      figures[`${p}_p999_us_at_10k`] = h.percentile(99.9);
      figures[`amqp_${b.key}_latency_10k_lost_max`] = Math.max(...rs.map((r) => r.sent - r.received));
    }
    if (hasRabbit) {
      const lostS = figures.amqp_shardmq_latency_10k_lost_max;
      const lostR = figures.amqp_rabbitmq_latency_10k_lost_max;
      const met = p99Ratio <= 1 / AMQP_LATENCY_GOAL_DIVISOR && lostS === 0 && lostR === 0;
      latencyGoalNote = `goal latency at 10,000 msg/s: p99 ≤ RabbitMQ's / ${AMQP_LATENCY_GOAL_DIVISOR}, lost 0 — ${met ? 'met' : 'not met'} (shardmq ${us(figures.amqp_shardmq_latency_p99_us_at_10k)} vs RabbitMQ ${us(figures.amqp_rabbitmq_latency_p99_us_at_10k)} = ${p99Ratio.toFixed(2)}×, goal ≤ ${(1 / AMQP_LATENCY_GOAL_DIVISOR).toFixed(2)}×; lost ${count(lostS)} / ${count(lostR)}); the null broker, with the same client: p99 ${us(figures.amqp_null_latency_p99_us_at_10k)} = ${p99Floor.toFixed(2)}× RabbitMQ's${p99Floor > 1 / AMQP_LATENCY_GOAL_DIVISOR ? `, so ≤ ${(1 / AMQP_LATENCY_GOAL_DIVISOR).toFixed(2)}× is beyond what this client reaches on this machine against any broker` : ''}`;
    }

    const spec = amqpSpec(CASES[0], ctx.quick);
    const serverVersions = `shardmq: broker with default flags in its own process, AMQP listener on 127.0.0.1 (--amqp-port 0)${rabbit !== null ? `; ${rabbit.version}, Debian's rabbitmq-server with its defaults (no plugins), its own node on 127.0.0.1, Mnesia and logs in a temp dir` : ''}`;
    const chart = barChart({
      title: `AMQP (amqplib): delivered msg/s, ${AMQP_PAYLOAD_BYTES}-byte messages (median of ${runs} run${runs > 1 ? 's' : ''})`,
      categories: CASES.map((c) => c.label),
      series: brokers.map((b) => ({ name: b.name, values: CASES.map((c) => summarize(delivered(of(b.key, c))).median) })),
      yLabel: 'delivered messages / s',
      caption: `${machineLine(ctx.machine)}${ctx.quick ? ' — QUICK RUN, not for quoting' : ''}. Generated by shardmq bench (src/bench/workloads/amqp.ts).`,
    });
    return {
      notes,
      tables: [
        {
          title: `AMQP 0-9-1 throughput, amqplib against shardmq, RabbitMQ and a null broker, ${AMQP_PAYLOAD_BYTES}-byte messages, ${runs} interleaved run(s), medians`,
          columns: [
            'broker, workload',
            'published msg/s',
            'delivered msg/s',
            'delivered min–max',
            '÷ RabbitMQ',
            'sent (all runs)',
            'delivered (all runs)',
            'lost (all runs)',
            'publisher waiting',
            'server CPU (cores)',
            'publisher process CPU (cores)',
            'consumer process CPU (cores)',
            'foreign CPU (cores)',
          ],
          rows,
          notes: [
            ...goalNotes,
            'the same client code for every broker (src/bench/amqp-load.ts, amqplib from devDependencies); ÷ RabbitMQ = median of per-round ratios of delivered msg/s; the brokers alternate run by run',
            'null broker: src/bench/amqp-null-broker.ts in its own process, an AMQP server that forwards each publish to a consumer as soon as it is whole and holds nothing (no queue, no prefetch, no persistence; one frame parse and one copy per message); what it reaches is the most this client allows on this machine, whatever the broker',
            `open loop: the publisher publishes as fast as amqplib takes messages, honouring \`channel.publish\` returning false by waiting for 'drain'; ${spec.seconds} s of publishing (at most ${count(spec.maxMessages)} messages) per run; deliveries then end when complete, after ${DRAIN_QUIET_MS / 1000} s without one, or after ${spec.drainSeconds} s`,
            `1→1: one queue (exclusive, declared by the consumer), published through the default exchange, one consumer connection with noAck; 1→16: a fanout exchange bound to 16 server-named exclusive queues, one consumer connection each, noAck, delivered counts every copy (expected = sent × 16); confirms + manual acks: a ConfirmChannel publisher with at most ${MAX_UNCONFIRMED.toLocaleString('en-US')} unconfirmed, one consumer with prefetch ${PREFETCH} acking each message`,
            'delivered msg/s = deliveries ÷ time from the first publish to the last delivery (one monotonic clock across processes); lost = expected − delivered after the drain; published msg/s = messages ÷ publishing time (confirms: until the last confirm)',
            "processes: broker; publisher in the harness process; all consumers of a run in one child process. On a 2-core machine they share the cores, and amqplib itself can be the limit: publisher waiting = share of the publishing time spent waiting for 'drain' (or, with confirms, for the window): near 0% the broker took everything the client could write, and the client, not the broker, set the pace",
            serverVersions,
          ],
        },
        {
          title: `AMQP 0-9-1 publish→deliver latency at ${formatRate(LATENCY_RATE)} msg/s, 1→1, noAck, ${AMQP_PAYLOAD_BYTES}-byte messages, ${latencySeconds} s after ${warm} s warm-up × ${runs} interleaved run(s)`,
          columns: [
            'broker',
            'target rate',
            'delivered msg/s',
            'samples',
            'p50',
            'p90',
            'p99',
            'p99.9',
            'max',
            'p99 per run (min–max)',
            'p99 ÷ RabbitMQ',
            'worst send lag',
            'sent',
            'lost',
            'server CPU (cores)',
            'foreign CPU (cores)',
          ],
          rows: latencyRows,
          notes: [
            ...(latencyGoalNote !== null ? [latencyGoalNote] : []),
            'publisher and consumer connections in the harness process, amqplib with `noDelay: true` (its default leaves Nagle on, which put p50 near 18 ms for both brokers), so one clock (performance.now()) stamps each message as it is handed to amqplib and reads it in the consumer callback; the publisher wakes about every millisecond and publishes what is due; "worst send lag" is how far a send ran behind its schedule (latency the stamp does not see)',
            'percentiles from a log-linear histogram (src/metrics/latency-histogram.ts, ≤ 1.6% bucket error) merged over runs; the ratio is the median of per-round p99 ratios',
          ],
        },
      ],
      figures,
      charts: [{ file: 'benchmarks/amqp.svg', title: 'AMQP: shardmq vs RabbitMQ with amqplib (bar chart)', svg: chart }],
    };
  },
};
