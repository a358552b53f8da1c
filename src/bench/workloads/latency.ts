/**
 * Publish → deliver latency at fixed rates: 10,000 msg/s (design.md §4), then 50% and 90% of the
 * maximum 1→1 rate (ws-fanout's figure from the same run, or a short measurement of its own).
 * One publisher and one subscriber connection in this process, so one clock (performance.now())
 * stamps the message at send and reads it at delivery: no cross-process clock skew.
 *
 * The publisher wakes about once per millisecond (setTimeout) and sends what is due since the last
 * wake as one PUBLISH_BATCH, each message stamped with the send time; so at 10,000 msg/s a frame
 * carries about 10 messages. The stamp is the actual send time, so the histogram measures broker +
 * loopback + client decode; how late the sends ran behind the schedule is reported beside it
 * (coordinated omission shows there). Runs are bounded in time, and end early if more than
 * MAX_IN_FLIGHT messages are outstanding (the broker cannot keep up at that rate: "saturated").
 */
import { startBrokerProcess } from '../broker-process.js';
import { runFanout, shardmqSystem } from '../fanout.js';
import { LatencyHistogram } from '../histogram.js';
import { roundOrder } from '../pacing.js';
import { ResourceMeter, resourceCells, type ResourceSample } from '../proc.js';
import { formatRate, spread, summarize } from '../sample-stats.js';
import { BenchWsClient } from '../ws-binary-client.js';
import { roundsOf, type Workload, type WorkloadContext, type WorkloadResult } from '../workload.js';
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
}

async function runAtRate(url: string, pid: number, rate: number, warmSeconds: number, seconds: number): Promise<LatencyRun> {
  const histogram = new LatencyHistogram();
  const stamp = new Float64Array(1);
  const stampBytes = new Uint8Array(stamp.buffer);
  let received = 0;
  const sub = await BenchWsClient.connect(url, (ev) => {
    received++;
    const p = ev.payload;
    if (p[FLAG_AT] !== 1) return;
    for (let i = 0; i < 8; i++) stampBytes[i] = p[STAMP_AT + i];
    histogram.record((performance.now() - stamp[0]) * 1000);
  });
  const pub = await BenchWsClient.connect(url);
  try {
    await sub.subscribe(1, `/topic/${TOPIC}`);
    const payload = new Uint8Array(PAYLOAD_BYTES).fill(0x6c);
    const payloadStamp = new Float64Array(1);
    const payloadStampBytes = new Uint8Array(payloadStamp.buffer);
    const destination = `/topic/${TOPIC}`;
    const started = performance.now();
    const warmEnd = started + warmSeconds * 1000;
    const total = Math.round(rate * (warmSeconds + seconds));
    let sent = 0;
    let saturated = false;
    let maxLag = 0;
    let meter: ResourceMeter | null = null;
    let measuredFrom = 0;
    let sentAtMeasureStart = 0;
    while (sent < total) {
      const now = performance.now();
      if (meter === null && now >= warmEnd) {
        meter = new ResourceMeter([pid]);
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
        payload[FLAG_AT] = now >= warmEnd ? 1 : 0;
        pub.sendPublishes(
          pub.writer
            .publishBatch(
              destination,
              Array.from({ length: n }, () => payload),
            )
            .finishCopy(),
          n,
          n * payload.byteLength,
        );
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
    const resources = (meter ?? new ResourceMeter([pid])).stop();
    const measuredSeconds = ((sub.lastDeliverAt || performance.now()) - (measuredFrom || started)) / 1000;
    if (pub.errors > 0) throw new Error(`latency publisher got ${pub.errors} ERROR op(s); last: ${pub.lastError}`);
    return {
      rate,
      histogram,
      sent: sent - sentAtMeasureStart,
      received: histogram.count,
      seconds: measuredSeconds,
      saturated,
      maxScheduleLagMs: maxLag,
      resources,
    };
  } finally {
    await pub.close();
    await sub.close();
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

export const latency: Workload = {
  name: 'latency',
  description:
    'publish→deliver latency of 128-byte messages, 1→1 over the binary WebSocket protocol, at 10,000 msg/s and at 50% and 90% of the measured 1→1 maximum',
  async run(ctx: WorkloadContext): Promise<WorkloadResult> {
    const runs = roundsOf(ctx);
    const seconds = ctx.quick ? 2 : 5;
    const warm = ctx.quick ? 0.3 : 1;
    const broker = await startBrokerProcess([]);
    const byRate = new Map<string, LatencyRun[]>();
    let max = ctx.results.ws_1to1_msgs_per_s;
    let maxSource = 'ws-fanout 1→1 median, same run';
    try {
      if (!(max > 0)) {
        const r = await runFanout(shardmqSystem(broker.url, broker.pid), { ...fanoutSpec(1, true), maxSeconds: 1.5 });
        max = r.deliveredPerSecond;
        maxSource = 'a 1.5 s ws-fanout 1→1 run of its own (ws-fanout was not run first)';
        ctx.progress(`latency: max 1→1 ${formatRate(max)} msg/s (own quick measurement)`);
      }
      const rates: Array<[string, number]> = [
        ['10k', 10_000],
        ['50pct_max', Math.round(max * 0.5)],
        ['90pct_max', Math.round(max * 0.9)],
      ];
      for (let i = 0; i < runs; i++) {
        for (const [name, rate] of roundOrder(rates, i)) {
          const r = await runAtRate(broker.url, broker.pid, rate, warm, seconds);
          byRate.set(name, [...(byRate.get(name) ?? []), r]);
          const h = r.histogram;
          ctx.progress(
            `latency run ${i + 1}/${runs} at ${formatRate(rate)} msg/s: p50 ${usText(h.percentile(50))}, p99 ${usText(h.percentile(99))}, p99.9 ${usText(h.percentile(99.9))}, max ${usText(h.max)}; ` +
              `${h.count.toLocaleString('en-US')} recorded of ${r.sent.toLocaleString('en-US')} sent${r.saturated ? ', SATURATED' : ''}; broker ${r.resources.cores.toFixed(2)} cores; foreign ${r.resources.foreignCores.toFixed(2)} cores`,
          );
        }
      }
    } finally {
      await broker.stop();
    }
    const figures: Record<string, number> = { latency_max_rate_basis_msgs_per_s: max };
    const rows: (string | number)[][] = [];
    for (const [name, rs] of byRate) {
      const merged = rs.reduce((m, r) => m.merge(r.histogram), new LatencyHistogram());
      const p99s = summarize(rs.map((r) => r.histogram.percentile(99)));
      const rate = rs[0]?.rate ?? 0;
      const achieved = summarize(rs.map((r) => r.received / r.seconds));
      const lost = rs.reduce((s, r) => s + (r.sent - r.received), 0);
      const res = resourceCells(rs.map((r) => r.resources));
      rows.push([
        `${formatRate(rate)} msg/s${name === '10k' ? '' : ` (${name.replace('pct_max', '% of max')})`}`,
        formatRate(achieved.median),
        merged.count.toLocaleString('en-US'),
        usText(merged.percentile(50)),
        usText(merged.percentile(90)),
        usText(merged.percentile(99)),
        usText(merged.percentile(99.9)),
        usText(merged.max),
        spread(p99s, usText),
        `${Math.max(...rs.map((r) => r.maxScheduleLagMs)).toFixed(1)} ms`,
        lost === 0 && rs.every((r) => !r.saturated) ? '0' : `${lost}${rs.some((r) => r.saturated) ? ' (saturated)' : ''}`,
        res.cores,
        res.peakRss,
        res.foreign,
      ]);
      figures[`latency_p50_us_at_${name}`] = merged.percentile(50);
      figures[`latency_p99_us_at_${name}`] = merged.percentile(99);
      figures[`latency_p999_us_at_${name}`] = merged.percentile(99.9);
      figures[`latency_max_us_at_${name}`] = merged.max;
      if (name !== '10k') figures[`latency_rate_${name}_msgs_per_s`] = rate;
    }
    const p99 = figures.latency_p99_us_at_10k;
    const p999 = figures.latency_p999_us_at_10k;
    return {
      tables: [
        {
          title: `Publish→deliver latency, ${PAYLOAD_BYTES}-byte messages, 1→1, binary WebSocket, ${seconds} s per rate after ${warm} s warm-up × ${runs} interleaved run(s)`,
          columns: [
            'target rate',
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
            'broker CPU (cores)',
            'broker peak RSS',
            'foreign CPU (cores)',
          ],
          rows,
          notes: [
            `max 1→1 rate: ${formatRate(max)} msg/s (${maxSource}); percentiles from a log-linear histogram (src/bench/histogram.ts, ≤ 1.6% bucket error) merged over runs`,
            'the publisher wakes about every millisecond (setTimeout) and sends what is due as one PUBLISH_BATCH stamped with the send time; "worst send lag" is how far a send ran behind its schedule (latency that the stamp does not see)',
            `goal (design.md §4) at 10,000 msg/s: p99 ≤ 1 ms — ${p99 <= 1000 ? 'met' : 'not met'} (${usText(p99)}); p99.9 ≤ 3 ms — ${p999 <= 3000 ? 'met' : 'not met'} (${usText(p999)})`,
          ],
        },
      ],
      figures,
    };
  },
};
