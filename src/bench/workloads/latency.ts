/**
 * Publish → deliver latency at fixed rates: 10,000 msg/s (design.md §4), then 50% and 90% of the
 * maximum 1→1 rate (ws-fanout's figure from the same run, or a short measurement of its own).
 * One publisher and one subscriber connection in this process, so one clock (performance.now())
 * stamps the message at send and reads it at delivery: no cross-process clock skew.
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
import WebSocket from 'ws';
import { type BrokerProcess, startBrokerProcess } from '../broker-process.js';
import { HOP_NAMES, HOPS, type HopName } from '../../metrics/hop-trace.js';
import type { ExportedHistogram } from '../../metrics/latency-histogram.js';
import { startUwsPubSub, type UwsPubSubServer } from '../open-loop-systems.js';
import { runFanout, shardmqSystem } from '../fanout.js';
import { LatencyHistogram } from '../../metrics/latency-histogram.js';
import { roundOrder } from '../pacing.js';
import { ResourceMeter, resourceCells, type ResourceSample } from '../proc.js';
import { formatRate, spread, summarize } from '../sample-stats.js';
import { BenchWsClient } from '../ws-binary-client.js';
import { roundsOf, type Workload, type WorkloadContext, type WorkloadResult, type WorkloadTable } from '../workload.js';
import { fanoutSpec } from './ws-fanout.js';

const PAYLOAD_BYTES = 128;
const TOPIC = 'bench.latency';
/** Beyond this many outstanding messages the run stops: latency there only measures queueing. */
const MAX_IN_FLIGHT = 100_000;
/** Most messages per frame when the publisher fell behind (a stall must not build one huge frame). */
const MAX_FRAME_MESSAGES = 1000;
/** Payload layout: f64 send time (ms, performance.now()) at 0, u8 "record me" at 8 (0 during warm-up). */
const STAMP_AT = 0;
const FLAG_AT = 8;

interface LatencyRun {
  readonly rate: number;
  readonly histogram: LatencyHistogram;
  readonly sent: number;
  readonly received: number;
  readonly seconds: number;
  readonly saturated: boolean;
  /** Largest lag of a send behind its schedule, ms. */
  readonly maxScheduleLagMs: number;
  readonly resources: ResourceSample;
  /** The broker's hop trace over the measured part (a traced broker only). */
  readonly hops: Record<HopName, LatencyHistogram> | null;
  readonly threads: ThreadFigures | null;
}

/** GC pauses and parks over the measured part, per second (from GET /v1/stats/latency). */
interface ThreadFigures {
  readonly seconds: number;
  readonly mainGcPauses: number;
  readonly mainGcMs: number;
  readonly shardGcPauses: number;
  readonly shardGcMs: number;
  readonly pumpParks: number;
  readonly shardParks: number;
}

/** One publisher and one subscriber connection of a system, in this process. */
interface LatencyPair {
  /** Sends `n` copies of `payload` now, gathered into one write. */
  send(payload: Uint8Array, n: number): void;
  /** Errors the publisher got back (shardmq ERROR ops), with the last one. */
  readonly errors: number;
  readonly lastError: string;
  close(): Promise<void>;
}

interface LatencySystem {
  readonly name: string;
  readonly pid: number;
  /** Connects a publisher and a subscriber (subscribed when this resolves); `onPayload` gets every delivery. */
  open(onPayload: (payload: Uint8Array) => void): Promise<LatencyPair>;
  /** GET /v1/stats/latency, for a traced broker; null otherwise. */
  readonly traceUrl: string | null;
}

function shardmqLatency(url: string, pid: number, traced: boolean): LatencySystem {
  return {
    name: traced ? 'shardmq, --latency-sample 1' : 'shardmq',
    pid,
    traceUrl: traced ? `${url}/v1/stats/latency` : null,
    async open(onPayload) {
      const sub = await BenchWsClient.connect(url, (ev) => onPayload(ev.payload));
      const pub = await BenchWsClient.connect(url);
      await sub.subscribe(1, `/topic/${TOPIC}`);
      const destination = `/topic/${TOPIC}`;
      return {
        send: (payload, n) =>
          pub.sendPublishes(
            pub.writer
              .publishBatch(
                destination,
                Array.from({ length: n }, () => payload),
              )
              .finishCopy(),
            n,
            n * payload.byteLength,
          ),
        get errors() {
          return pub.errors;
        },
        get lastError() {
          return pub.lastError;
        },
        close: async () => {
          await pub.close();
          await sub.close();
        },
      };
    },
  };
}

/** uWebSockets.js's built-in pub/sub (src/bench/uws-pubsub-server.ts): every message its own frame and app.publish. */
function uwsLatency(server: UwsPubSubServer): LatencySystem {
  const connect = (path: string): Promise<WebSocket> =>
    new Promise((resolve, reject) => {
      const ws = new WebSocket(`${server.url}${path}`, { perMessageDeflate: false });
      ws.once('open', () => resolve(ws));
      ws.once('error', reject);
    });
  return {
    name: 'uWebSockets.js pub/sub',
    pid: server.pid,
    traceUrl: null,
    async open(onPayload) {
      let subscribed: () => void = () => undefined;
      const ready = new Promise<void>((resolve) => {
        subscribed = resolve;
      });
      const sub = new WebSocket(`${server.url}/sub`, { perMessageDeflate: false });
      // Listening before 'open': the server's `ready` text frame can come in the same read as the handshake.
      sub.on('message', (data: Buffer, isBinary: boolean) => {
        if (isBinary) onPayload(data);
        else subscribed();
      });
      await new Promise<void>((resolve, reject) => {
        sub.once('error', reject);
        ready.then(resolve, reject);
      });
      const pub = await connect('/pub');
      const socket = (pub as unknown as { _socket: { cork(): void; uncork(): void } })._socket;
      return {
        send: (payload, n) => {
          // One write for the frames of one wake, as the shardmq publisher's one PUBLISH_BATCH frame.
          socket.cork();
          for (let i = 0; i < n; i++) pub.send(payload);
          socket.uncork();
        },
        errors: 0,
        lastError: '',
        close: async () => {
          for (const ws of [pub, sub]) {
            await new Promise<void>((resolve) => {
              ws.once('close', () => resolve());
              ws.close();
            });
          }
        },
      };
    },
  };
}

async function latencyStats(url: string): Promise<LatencyStatsAnswer> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`GET ${url}: ${res.status}`);
  return (await res.json()) as LatencyStatsAnswer;
}

interface LatencyStatsAnswer {
  readonly hops: Record<HopName, ExportedHistogram>;
  readonly main: { gcPauses: number; gcPauseMs: number; pumpParks: number };
  readonly shards: ReadonlyArray<{ gcPauses: number; gcPauseMs: number; parks: number }>;
}

function threadFigures(a: LatencyStatsAnswer, b: LatencyStatsAnswer, seconds: number): ThreadFigures {
  const sum = (x: LatencyStatsAnswer, pick: (s: LatencyStatsAnswer['shards'][number]) => number): number =>
    x.shards.reduce((n, s) => n + pick(s), 0);
  return {
    seconds,
    mainGcPauses: b.main.gcPauses - a.main.gcPauses,
    mainGcMs: b.main.gcPauseMs - a.main.gcPauseMs,
    shardGcPauses: sum(b, (s) => s.gcPauses) - sum(a, (s) => s.gcPauses),
    shardGcMs: sum(b, (s) => s.gcPauseMs) - sum(a, (s) => s.gcPauseMs),
    pumpParks: b.main.pumpParks - a.main.pumpParks,
    shardParks: sum(b, (s) => s.parks) - sum(a, (s) => s.parks),
  };
}

async function runAtRate(system: LatencySystem, rate: number, warmSeconds: number, seconds: number): Promise<LatencyRun> {
  const histogram = new LatencyHistogram();
  const stamp = new Float64Array(1);
  const stampBytes = new Uint8Array(stamp.buffer);
  let received = 0;
  let lastDeliverAt = 0;
  const pair = await system.open((p) => {
    received++;
    const now = performance.now();
    lastDeliverAt = now;
    if (p[FLAG_AT] !== 1) return;
    for (let i = 0; i < 8; i++) stampBytes[i] = p[STAMP_AT + i];
    histogram.record((now - stamp[0]) * 1000);
  });
  try {
    const payload = new Uint8Array(PAYLOAD_BYTES).fill(0x6c);
    const payloadStamp = new Float64Array(1);
    const payloadStampBytes = new Uint8Array(payloadStamp.buffer);
    let started = performance.now();
    const warmEnd = started + warmSeconds * 1000;
    const total = Math.round(rate * (warmSeconds + seconds));
    let sent = 0;
    let saturated = false;
    let maxLag = 0;
    let meter: ResourceMeter | null = null;
    let measuredFrom = 0;
    let sentAtMeasureStart = 0;
    let traceBefore: LatencyStatsAnswer | null = null;
    while (sent < total) {
      let now = performance.now();
      if (meter === null && now >= warmEnd) {
        if (system.traceUrl !== null) {
          traceBefore = await latencyStats(system.traceUrl);
          // The request took time the schedule does not owe: start it again from here.
          const fetched = performance.now();
          started += fetched - now;
          now = fetched;
        }
        meter = new ResourceMeter([system.pid]);
        measuredFrom = now;
        sentAtMeasureStart = sent;
      }
      const due = Math.min(total, Math.floor(((now - started) / 1000) * rate));
      if (due > sent) {
        // The oldest due message was scheduled at (sent + 1) / rate; how late is it going out?
        maxLag = now >= warmEnd ? Math.max(maxLag, now - (started + ((sent + 1) / rate) * 1000)) : maxLag;
        const n = Math.min(due - sent, MAX_FRAME_MESSAGES);
        payloadStamp[0] = performance.now();
        payload.set(payloadStampBytes, STAMP_AT);
        payload[FLAG_AT] = meter !== null ? 1 : 0;
        pair.send(payload, n);
        sent += n;
      }
      if (sent - received > MAX_IN_FLIGHT) {
        saturated = true;
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    // Drain (bounded): whatever is still on its way.
    const drainDeadline = performance.now() + 3000;
    while (received < sent && performance.now() < drainDeadline) await new Promise((resolve) => setTimeout(resolve, 5));
    const resources = (meter ?? new ResourceMeter([system.pid])).stop();
    const measuredSeconds = ((lastDeliverAt || performance.now()) - (measuredFrom || started)) / 1000;
    let hops: Record<HopName, LatencyHistogram> | null = null;
    let threads: ThreadFigures | null = null;
    if (system.traceUrl !== null && traceBefore !== null) {
      const after = await latencyStats(system.traceUrl);
      hops = {} as Record<HopName, LatencyHistogram>;
      for (const name of HOP_NAMES) hops[name] = LatencyHistogram.fromExport(after.hops[name]).since(traceBefore.hops[name]);
      threads = threadFigures(traceBefore, after, measuredSeconds);
    }
    if (pair.errors > 0) throw new Error(`latency publisher got ${pair.errors} ERROR op(s); last: ${pair.lastError}`);
    return {
      rate,
      histogram,
      sent: sent - sentAtMeasureStart,
      received: histogram.count,
      seconds: measuredSeconds,
      saturated,
      maxScheduleLagMs: maxLag,
      resources,
      hops,
      threads,
    };
  } finally {
    await pair.close();
  }
}

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
    const tracedRuns: LatencyRun[] = [];
    let max = ctx.results.ws_1to1_msgs_per_s;
    let maxSource = 'ws-fanout 1→1 median, same run';
    let broker: BrokerProcess | null = null;
    let traced: BrokerProcess | null = null;
    let uws: UwsPubSubServer | null = null;
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
      const shardmq = shardmqLatency(broker.url, broker.pid, false);
      const tracing = shardmqLatency(traced.url, traced.pid, true);
      const reference = uwsLatency(uws);
      if (!(max > 0)) {
        const r = await runFanout(shardmqSystem(broker.url, broker.pid), { ...fanoutSpec(1, true), maxSeconds: 1.5 });
        max = r.deliveredPerSecond;
        maxSource = 'a 1.5 s ws-fanout 1→1 run of its own (ws-fanout was not run first)';
        ctx.progress(`latency: max 1→1 ${formatRate(max)} msg/s (own quick measurement)`);
      }
      type Step = { name: string; rate: number; system: LatencySystem; into: (r: LatencyRun) => void };
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
      steps.push({ name: 'traced', rate: 10_000, system: tracing, into: (r) => tracedRuns.push(r) });
      // A fresh process's first seconds are not its steady state (JIT tiers, the first full GC of
      // what start-up allocated: a 6 ms main-thread pause measured in the first run): each server
      // gets one discarded run at 10k msg/s before the measured rounds, for every system alike.
      for (const system of [shardmq, tracing, reference]) {
        const r = await runAtRate(system, 10_000, 0, ctx.quick ? 1 : 3);
        ctx.progress(
          `latency warm-up (discarded), ${system.name}: p99 ${usText(r.histogram.percentile(99))}, p99.9 ${usText(r.histogram.percentile(99.9))}`,
        );
      }
      for (let i = 0; i < runs; i++) {
        for (const step of roundOrder(steps, i)) {
          const r = await runAtRate(step.system, step.rate, warm, seconds);
          step.into(r);
          report(step.system.name, i, step.rate, r);
        }
      }
    } finally {
      await broker?.stop();
      await traced?.stop();
      await uws?.stop();
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
    if (tracedRuns.length > 0) rows.push(rowOf('shardmq --latency-sample 1, 10.0 k msg/s', tracedRuns));
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
          `before the measured rounds each server (both shardmq brokers and uWS) had one discarded ${ctx.quick ? 1 : 3} s run at 10,000 msg/s: a fresh process's JIT tiers and its first full GC of start-up garbage are not its steady state`,
          'the publisher wakes about every millisecond (setTimeout) and sends what is due as one write stamped with the send time (shardmq: one PUBLISH_BATCH frame; uWebSockets.js: one frame per message, corked into one write); "worst send lag" is how far a send ran behind its schedule (latency that the stamp does not see)',
          'uWebSockets.js pub/sub: src/bench/uws-pubsub-server.ts, one thread, `app.publish` per message, `ws` clients; the shardmq broker with `--latency-sample 1` traces every publish hop by hop (next table)',
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
      hopRows.push(line('end to end', 'publisher stamp → subscriber callback (this process)', e2e));
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
