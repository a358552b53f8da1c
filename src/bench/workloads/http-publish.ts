/**
 * HTTP publish under autocannon, side by side with a bare uWebSockets.js endpoint
 * (the ceiling), interleaved A/B in one run; plus end-to-end delivery to a WebSocket
 * subscriber measured at the subscriber; plus NDJSON batches (100 × 128 B per request),
 * plain and gzip-compressed, in messages per second.
 */
import autocannon from 'autocannon';
import { spawn } from 'node:child_process';
import { gzipSync } from 'node:zlib';
import { startBrokerProcess } from '../broker-process.js';
import { nodeScriptArgs, stopChild } from '../child.js';
import { countingSubscriber } from '../json-ws.js';
import { drainUntil } from '../pacing.js';
import { ResourceMeter, mib, type ResourceSample } from '../proc.js';
import { formatRate, minMax, spread, summarize } from '../sample-stats.js';
import { BenchWsClient } from '../ws-binary-client.js';
import { roundsOf, type Workload, type WorkloadContext, type WorkloadResult } from '../workload.js';

const PAYLOAD_128 = 'x'.repeat(128);
/** NDJSON batches: 100 messages of 128 bytes per request (each line is one message). */
const NDJSON_LINES = 100;
const NDJSON_BODY =
  Array.from({ length: NDJSON_LINES }, (_, i) => `{"seq":${String(i).padStart(3, '0')},"v":"${'n'.repeat(128 - 18)}"}`).join('\n') + '\n';
const NDJSON_GZIP = gzipSync(Buffer.from(NDJSON_BODY));
/**
 * Batches go to a queue without consumers, capped (drop-head) so memory stays bounded: the full
 * ingest path (parse, split, ring, shard enqueue) without a subscriber becoming the bottleneck.
 */
const NDJSON_QUEUE = 'bench.ndjson';
const NDJSON_QUEUE_MAX = 100_000;
/**
 * The 90% comparison (issue 13's terms: autocannon, 50 connections, 128 B, pipelining 1 and 10)
 * publishes single messages to a topic nobody subscribes to: the front's whole request path
 * (headers, body, destination, authorization, routing), answered once routing finds no queue, with
 * nothing else in the harness process competing with autocannon. Beside it, the same requests to a
 * capped queue with no consumer: the full ingest path, each answered once its shard confirmed it
 * (a ring round trip per request). Delivery to a WebSocket subscriber is measured in a run of its own.
 */
const SINGLE_QUEUE = 'bench.http';
const NOWHERE_TOPIC = 'bench.http.nobody';
/** autocannon settings shared by both sides of the comparison. */
const CONNECTIONS = 50;
const PIPELINING = 1;
const PIPELININGS = [1, 10] as const;
/** Deliveries to the WS subscriber are over once they have not moved for this long; the rest is lost. */
const DELIVERY_QUIET_MS = 1000;

interface CannonResult {
  readonly rps: number;
  readonly ok: number;
  /** Requests written but not answered when autocannon stopped (the server may still have taken them). */
  readonly unanswered: number;
  readonly non2xx: number;
  readonly errors: number;
  readonly p99ms: number;
}

export function runCannon(
  url: string,
  seconds: number,
  body: string | Buffer,
  headers: Record<string, string> = {},
  pipelining: number = PIPELINING,
): Promise<CannonResult> {
  return new Promise((resolve, reject) => {
    autocannon(
      {
        url,
        method: 'POST',
        body,
        headers: { 'content-type': 'text/plain', ...headers },
        connections: CONNECTIONS,
        pipelining,
        duration: seconds,
      },
      (err, result) => {
        if (err) {
          reject(err);
          return;
        }
        resolve({
          rps: result.requests.average,
          ok: result['2xx'],
          unanswered: Math.max(0, result.requests.sent - result['2xx'] - result.non2xx),
          non2xx: result.non2xx,
          errors: result.errors + result.timeouts,
          p99ms: result.latency.p99,
        });
      },
    );
  });
}

async function startBareUws(): Promise<{ url: string; stop: () => Promise<void> }> {
  const child = spawn(process.execPath, nodeScriptArgs(new URL('../bare-uws-server.js', import.meta.url)), {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout?.once('data', (d: Buffer) => resolve((JSON.parse(d.toString()) as { url: string }).url));
    child.once('exit', (code) => reject(new Error(`bare uWS server exited ${code}`)));
  });
  return { url, stop: () => stopChild(child, 10_000) };
}

export const httpPublish: Workload = {
  name: 'http-publish',
  description:
    'HTTP publish (autocannon, 128 B) vs a bare uWebSockets.js endpoint, HTTP → WebSocket delivery, and NDJSON batches (plain and gzip)',
  async run(ctx: WorkloadContext): Promise<WorkloadResult> {
    const seconds = ctx.quick ? 2 : 8;
    const runs = roundsOf(ctx);
    const bare = await startBareUws();
    const broker = await startBrokerProcess([]);
    const sub = await countingSubscriber(broker.url, '/topic/bench.http');
    type Pip = (typeof PIPELININGS)[number];
    const perPip = <T>(make: () => T): Record<Pip, T> => ({ 1: make(), 10: make() });
    const bareRps = perPip<number[]>(() => []);
    const nowhereRps = perPip<number[]>(() => []);
    const queueRps = perPip<number[]>(() => []);
    const topicRps: number[] = [];
    const deliveredRate: number[] = [];
    const cpu: number[] = [];
    const ndjsonRate: number[] = [];
    const gzipRate: number[] = [];
    const resources: ResourceSample[] = [];
    const batchResources: ResourceSample[] = [];
    let non2xx = 0;
    let errors = 0;
    let batchNon2xx = 0;
    /** 2xx answers of the topic runs (summed), and accepted − delivered per run. */
    let accepted = 0;
    const lostPerRun: number[] = [];
    /** Per run, how many of the unanswered requests may also have been lost (upper bound − lower bound). */
    const maybeLostPerRun: number[] = [];
    try {
      const admin = await BenchWsClient.connect(broker.url);
      await admin.request((w, id) => w.declareQueue(id, NDJSON_QUEUE, { arguments: { 'x-max-length': NDJSON_QUEUE_MAX } }));
      await admin.request((w, id) => w.declareQueue(id, SINGLE_QUEUE, { arguments: { 'x-max-length': NDJSON_QUEUE_MAX } }));
      await admin.close();
      const ndjsonUrl = `${broker.url}/v1/publish/queue/${NDJSON_QUEUE}`;
      for (let i = 0; i < runs; i++) {
        for (const pip of PIPELININGS) {
          const b = await runCannon(`${bare.url}/v1/publish/topic/bench.http`, seconds, PAYLOAD_128, {}, pip);
          bareRps[pip].push(b.rps);
          const meterN = new ResourceMeter([broker.pid]);
          const n = await runCannon(`${broker.url}/v1/publish/topic/${NOWHERE_TOPIC}`, seconds, PAYLOAD_128, {}, pip);
          resources.push(meterN.stop());
          nowhereRps[pip].push(n.rps);
          const meterQ = new ResourceMeter([broker.pid]);
          const q = await runCannon(`${broker.url}/v1/publish/queue/${SINGLE_QUEUE}`, seconds, PAYLOAD_128, {}, pip);
          resources.push(meterQ.stop());
          queueRps[pip].push(q.rps);
          non2xx += n.non2xx + q.non2xx;
          errors += n.errors + q.errors;
          ctx.progress(
            `http-publish run ${i + 1}/${runs}, pipelining ${pip}: bare uWS ${formatRate(b.rps)} req/s; shardmq → /topic/${NOWHERE_TOPIC} ${formatRate(n.rps)} (${((n.rps / b.rps) * 100).toFixed(0)}% of bare), → /queue/${SINGLE_QUEUE} ${formatRate(q.rps)} (${((q.rps / b.rps) * 100).toFixed(0)}%)`,
          );
        }
        const before = sub.count();
        const cpu0 = broker.cpuSeconds();
        const meter = new ResourceMeter([broker.pid]);
        const t0 = performance.now();
        const r = await runCannon(broker.url + '/v1/publish/topic/bench.http', seconds, PAYLOAD_128);
        // Wait until the subscriber has everything the broker accepted, or deliveries have been quiet
        // for 1 s (the rest is lost), at most 10 s.
        await drainUntil(
          () => sub.count() - before >= r.ok,
          () => sub.count(),
          { quietMs: DELIVERY_QUIET_MS, maxMs: 10_000 },
        );
        const delivered = sub.count() - before;
        accepted += r.ok;
        lostPerRun.push(r.ok - delivered);
        maybeLostPerRun.push(Math.max(0, r.ok + r.unanswered - delivered) - Math.max(0, r.ok - delivered));
        const elapsed = (sub.lastAt() - t0) / 1000;
        resources.push(meter.stop());
        cpu.push((broker.cpuSeconds() - cpu0) / elapsed);
        topicRps.push(r.rps);
        deliveredRate.push(delivered / elapsed);
        non2xx += r.non2xx;
        errors += r.errors;
        ctx.progress(
          `http-publish run ${i + 1}/${runs}: shardmq → /topic/bench.http + WS subscriber ${formatRate(r.rps)} req/s, delivered ${delivered}/${r.ok} (${formatRate(delivered / elapsed)} msg/s), LOST ${r.ok - delivered}`,
        );
        // NDJSON batches, plain then gzip (interleaved with the above in every round).
        for (const gzip of [false, true]) {
          const m = new ResourceMeter([broker.pid]);
          const n = await runCannon(ndjsonUrl, seconds, gzip ? NDJSON_GZIP : NDJSON_BODY, {
            'content-type': 'application/x-ndjson',
            ...(gzip ? { 'content-encoding': 'gzip' } : {}),
          });
          batchResources.push(m.stop());
          const msgs = (n.ok / seconds) * NDJSON_LINES;
          (gzip ? gzipRate : ndjsonRate).push(msgs);
          batchNon2xx += n.non2xx;
          errors += n.errors;
          ctx.progress(
            `http-publish run ${i + 1}/${runs}: NDJSON${gzip ? ' gzip' : ''} ${formatRate(n.rps)} req/s = ${formatRate(msgs)} msg/s (non-2xx ${n.non2xx})`,
          );
        }
      }
    } finally {
      sub.close();
      await broker.stop();
      await bare.stop();
    }
    const delS = summarize(deliveredRate);
    const ndS = summarize(ndjsonRate);
    const gzS = summarize(gzipRate);
    const topicS = summarize(topicRps);
    // Median over rounds of (shardmq ÷ bare) in the same round: the runs are interleaved A/B.
    const ratioOf = (xs: readonly number[], pip: Pip): number => summarize(xs.map((x, i) => x / bareRps[pip][i])).median;
    const nowhereRatio = perPip(() => 0);
    const queueRatio = perPip(() => 0);
    for (const pip of PIPELININGS) {
      nowhereRatio[pip] = ratioOf(nowhereRps[pip], pip);
      queueRatio[pip] = ratioOf(queueRps[pip], pip);
    }
    const ratio = Math.min(nowhereRatio[1], nowhereRatio[10]);
    const bare1 = summarize(bareRps[1]);
    const singleRows: (string | number)[][] = [];
    for (const pip of PIPELININGS) {
      const row = (label: string, xs: readonly number[], r: string): (string | number)[] => {
        const x = summarize(xs);
        return [label, pip, formatRate(x.median), minMax(x), `${x.sePercent.toFixed(1)}%`, r];
      };
      singleRows.push(row('bare uWebSockets.js (reads body, answers 200)', bareRps[pip], '1.00'));
      singleRows.push(
        row(
          `shardmq POST /v1/publish/topic/${NOWHERE_TOPIC} (no subscriber: routed, answered)`,
          nowhereRps[pip],
          nowhereRatio[pip].toFixed(2),
        ),
      );
      singleRows.push(
        row(
          `shardmq POST /v1/publish/queue/${SINGLE_QUEUE} (capped queue, no consumer: answered on the shard's confirm)`,
          queueRps[pip],
          queueRatio[pip].toFixed(2),
        ),
      );
    }
    const peakRss = Math.max(...resources.map((r) => r.peakRssBytes), ...batchResources.map((r) => r.peakRssBytes));
    const foreign = summarize(resources.map((r) => r.foreignCores)).median;
    // Requests still in flight when autocannon stopped may have been taken by the broker without their
    // 2xx being counted (a run delivers more than its 2xx): lost counts only what is certain, per run
    // (one run's surplus never makes up for another's loss); maybeLost is how many more it could be.
    const lost = lostPerRun.reduce((sum, x) => sum + Math.max(0, x), 0);
    const maybeLost = maybeLostPerRun.reduce((sum, x) => sum + x, 0);
    const lostPct = accepted > 0 ? (lost / accepted) * 100 : 0;
    return {
      tables: [
        {
          title: `HTTP publish, 128-byte body, autocannon ${CONNECTIONS} connections, pipelining 1 and 10, ${seconds} s × ${runs} runs (interleaved)`,
          columns: ['endpoint', 'pipelining', 'req/s median', 'min–max', '± SE', 'vs bare uWS'],
          rows: singleRows,
          notes: [
            `goal (design.md §4, issue 13's terms): ≥ 90% of bare uWS at pipelining 1 and 10; measured ${(nowhereRatio[1] * 100).toFixed(0)}% / ${(nowhereRatio[10] * 100).toFixed(0)}% (no-subscriber topic, median of per-round ratios) — ${ratio >= 0.9 ? 'met' : 'not met'}`,
            `the capped-queue rows pay a ring round trip per request before the 200 (the shard's confirm: the message is held): ${(queueRatio[1] * 100).toFixed(0)}% / ${(queueRatio[10] * 100).toFixed(0)}% of bare uWS`,
            'vs bare uWS = median over rounds of the ratio to the bare endpoint at the same pipelining in the same round; autocannon runs in the harness process, nothing else beside it',
            `non-2xx answers: ${non2xx}, errors/timeouts: ${errors}; broker CPU ${summarize(resources.map((r) => r.cores)).median.toFixed(2)} cores, peak RSS ${mib(peakRss)}; foreign CPU ${foreign.toFixed(2)} cores`,
          ],
        },
        {
          title: `HTTP → WebSocket: POST /v1/publish/topic/bench.http with 1 JSON WS subscriber in the harness, autocannon ${CONNECTIONS} connections, pipelining ${PIPELINING}, ${seconds} s × ${runs} runs`,
          columns: ['figure', 'median', 'min–max', '± SE', 'vs bare uWS'],
          rows: [
            [
              'published (req/s)',
              formatRate(topicS.median),
              minMax(topicS),
              `${topicS.sePercent.toFixed(1)}%`,
              (topicS.median / bare1.median).toFixed(2),
            ],
            ['delivered to the WS subscriber (msg/s)', formatRate(delS.median), minMax(delS), `${delS.sePercent.toFixed(1)}%`, '—'],
            [
              'LOST on the way to that WS subscriber (2xx accepted − delivered, all runs)',
              `${lost.toLocaleString('en-US')} of ${accepted.toLocaleString('en-US')} (${lostPct.toFixed(lostPct > 0 && lostPct < 0.01 ? 4 : 2)}%)` +
                (maybeLost > 0 ? `, up to ${maybeLost.toLocaleString('en-US')} more among requests unanswered at the end` : ''),
              `per run: ${lostPerRun.map((x) => x.toLocaleString('en-US')).join(', ')}`,
              '—',
              '—',
            ],
          ],
          notes: [
            'the harness also parses every JSON delivery, which costs autocannon CPU on this machine',
            `lost = 2xx answers − messages the subscriber received, counted once deliveries have been quiet for ${DELIVERY_QUIET_MS / 1000} s (at most 10 s); per run (a negative run delivered more than its 2xx answers: requests still in flight when autocannon stopped, up to ${CONNECTIONS * PIPELINING}, taken by the broker without their answer being counted; they could also hide as many losses, shown as "up to N more")`,
            `broker CPU ${summarize(cpu).median.toFixed(2)} cores (topic + subscriber)`,
          ],
        },
        {
          title: `HTTP publish, NDJSON batches of ${NDJSON_LINES} × 128 B per request (plain ${(NDJSON_BODY.length / 1024).toFixed(1)} KiB, gzip ${(NDJSON_GZIP.length / 1024).toFixed(1)} KiB), autocannon ${CONNECTIONS} connections, ${seconds} s × ${runs} runs (interleaved)`,
          columns: ['body', 'msg/s median', 'min–max', '± SE', 'broker CPU (cores)'],
          rows: [
            [
              'application/x-ndjson',
              formatRate(ndS.median),
              spread(ndS),
              `${ndS.sePercent.toFixed(1)}%`,
              summarize(batchResources.filter((_, i) => i % 2 === 0).map((r) => r.cores)).median.toFixed(2),
            ],
            [
              'application/x-ndjson + Content-Encoding: gzip',
              formatRate(gzS.median),
              spread(gzS),
              `${gzS.sePercent.toFixed(1)}%`,
              summarize(batchResources.filter((_, i) => i % 2 === 1).map((r) => r.cores)).median.toFixed(2),
            ],
          ],
          notes: [
            `msg/s = 2xx responses × ${NDJSON_LINES} ÷ seconds (each 200 says {"accepted":${NDJSON_LINES}}); to /queue/${NDJSON_QUEUE}, no consumer, x-max-length ${NDJSON_QUEUE_MAX.toLocaleString('en-US')} (drop-head) so memory stays bounded`,
            `non-2xx answers to batches: ${batchNon2xx}`,
          ],
        },
      ],
      figures: {
        http_publish_bare_uws_rps: bare1.median,
        http_publish_bare_uws_rps_pipelining_10: summarize(bareRps[10]).median,
        http_publish_rps: summarize(nowhereRps[1]).median,
        http_publish_rps_pipelining_10: summarize(nowhereRps[10]).median,
        http_publish_queue_rps: summarize(queueRps[1]).median,
        http_publish_queue_rps_pipelining_10: summarize(queueRps[10]).median,
        http_publish_topic_with_ws_subscriber_rps: topicS.median,
        http_publish_ratio_vs_bare_uws: ratio,
        http_publish_ratio_vs_bare_uws_pipelining_1: nowhereRatio[1],
        http_publish_ratio_vs_bare_uws_pipelining_10: nowhereRatio[10],
        http_publish_queue_ratio_vs_bare_uws_pipelining_1: queueRatio[1],
        http_publish_queue_ratio_vs_bare_uws_pipelining_10: queueRatio[10],
        http_to_ws_delivered_msgs_per_s: delS.median,
        http_to_ws_lost: lost,
        http_to_ws_lost_upper_bound: lost + maybeLost,
        http_to_ws_lost_pct: lostPct,
        http_to_ws_accepted: accepted,
        http_publish_ndjson_msgs_per_s: ndS.median,
        http_publish_ndjson_gzip_msgs_per_s: gzS.median,
        http_publish_broker_peak_rss_bytes: peakRss,
      },
    };
  },
};
