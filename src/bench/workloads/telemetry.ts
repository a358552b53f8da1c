/**
 * Telemetry ingest: 64 producer WebSocket connections (binary protocol) sending small readings to
 * many topics `telemetry.<device>.<metric>`, and 4 wildcard consumers. Each producer owns 16
 * devices; each frame it sends is one device's readings, one PUBLISH_BATCH of 8 readings per metric
 * (4 metrics: 32 messages of 64 bytes per frame, frames pre-encoded).
 *
 * Consumers: `telemetry.#` (everything), `telemetry.*.temp`, `telemetry.*.battery` and `#.humidity`,
 * so a reading is delivered 1.75 times on average. Pacing is an end-to-end window on the slowest
 * consumer, as in src/bench/fanout.ts, so nothing is dropped; the clock stops when every consumer
 * has every reading it should. Bounded by a frame count and a time limit.
 */
import { startBrokerProcess } from '../broker-process.js';
import { BinaryFrameWriter } from '../../protocol/ws-binary-encode.js';
import { Wakeup, drainUntil } from '../pacing.js';
import { ResourceMeter, mib, resourceCells, type ResourceSample } from '../proc.js';
import { formatRate, spread, summarize } from '../sample-stats.js';
import { BenchWsClient } from '../ws-binary-client.js';
import { roundsOf, type Workload, type WorkloadContext, type WorkloadResult } from '../workload.js';

const PRODUCERS = 64;
const DEVICES_PER_PRODUCER = 16;
const METRICS = ['temp', 'humidity', 'pressure', 'battery'] as const;
const READINGS_PER_BATCH = 8;
const PAYLOAD_BYTES = 64;
const MESSAGES_PER_FRAME = METRICS.length * READINGS_PER_BATCH;
/** Consumer patterns and the share of readings each receives. */
const CONSUMERS: ReadonlyArray<readonly [string, number]> = [
  ['telemetry.#', 1],
  ['telemetry.*.temp', 0.25],
  ['telemetry.*.battery', 0.25],
  ['#.humidity', 0.25],
];
const DELIVERIES_PER_MESSAGE = CONSUMERS.reduce((s, [, share]) => s + share, 0);
/** Readings in flight (sent, not yet received by the `telemetry.#` consumer); below the 10,000 topic buffer. */
const WINDOW = 6000;

interface TelemetryRun {
  readonly sent: number;
  readonly delivered: number;
  readonly expected: number;
  readonly seconds: number;
  readonly resources: ResourceSample;
}

function device(p: number, d: number): string {
  return `dev${String(p * DEVICES_PER_PRODUCER + d).padStart(4, '0')}`;
}

async function runTelemetry(url: string, pid: number, maxFrames: number, maxSeconds: number): Promise<TelemetryRun> {
  const wakeup = new Wakeup();
  const consumers: BenchWsClient[] = [];
  const producers: BenchWsClient[] = [];
  try {
    for (const [pattern] of CONSUMERS) {
      const c = await BenchWsClient.connect(url);
      c.onFrame = wakeup.wake;
      await c.subscribe(1, `/topic/${pattern}`);
      consumers.push(c);
    }
    // Pre-encoded frames: producer p, device d → one frame of 4 PUBLISH_BATCH ops.
    const payload = new Uint8Array(PAYLOAD_BYTES).fill(0x74);
    const readings = Array.from({ length: READINGS_PER_BATCH }, () => payload);
    const frames: Uint8Array[][] = [];
    for (let p = 0; p < PRODUCERS; p++) {
      producers.push(await BenchWsClient.connect(url));
      const w = new BinaryFrameWriter();
      const mine: Uint8Array[] = [];
      for (let d = 0; d < DEVICES_PER_PRODUCER; d++) {
        for (const m of METRICS) w.publishBatch(`/topic/telemetry.${device(p, d)}.${m}`, readings);
        mine.push(w.finishCopy());
      }
      frames.push(mine);
    }
    const all = consumers[0];
    const meter = new ResourceMeter([pid]);
    const started = performance.now();
    const deadline = started + maxSeconds * 1000;
    let framesSent = 0;
    let p = 0;
    while (framesSent < maxFrames && performance.now() < deadline) {
      const inFlight = framesSent * MESSAGES_PER_FRAME - all.delivered;
      if (inFlight + MESSAGES_PER_FRAME > WINDOW || producers[p].bufferedAmount > 256 * 1024 || producers[p].creditWaiting > 0) {
        await wakeup.wait(50);
        continue;
      }
      const frame = frames[p][Math.floor(framesSent / PRODUCERS) % DEVICES_PER_PRODUCER];
      producers[p].sendPublishes(frame, MESSAGES_PER_FRAME, frame.byteLength);
      framesSent++;
      p = (p + 1) % PRODUCERS;
      if (p === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    const sent = framesSent * MESSAGES_PER_FRAME;
    const perMetric = sent / METRICS.length;
    const expected = sent + 3 * perMetric;
    const expectedOf = [sent, perMetric, perMetric, perMetric];
    const total = (): number => consumers.reduce((s, c) => s + c.delivered, 0);
    await drainUntil(() => consumers.every((c, i) => c.delivered >= expectedOf[i]), total);
    const resources = meter.stop();
    const delivered = total();
    const seconds = (Math.max(...consumers.map((c) => c.lastDeliverAt)) - started) / 1000;
    const errors = [...producers, ...consumers].filter((c) => c.errors > 0);
    if (errors.length > 0) throw new Error(`telemetry: ${errors.length} connection(s) got ERROR ops; e.g. ${errors[0].lastError}`);
    return { sent, delivered, expected, seconds, resources };
  } finally {
    await Promise.all([...producers, ...consumers].map((c) => c.close()));
  }
}

export const telemetry: Workload = {
  name: 'telemetry',
  description: `telemetry ingest: ${PRODUCERS} binary WebSocket producers × ${PAYLOAD_BYTES}-byte readings into ${PRODUCERS * DEVICES_PER_PRODUCER * METRICS.length} topics telemetry.<device>.<metric>, ${CONSUMERS.length} wildcard consumers`,
  async run(ctx: WorkloadContext): Promise<WorkloadResult> {
    const runs = roundsOf(ctx);
    const maxSeconds = ctx.quick ? 2 : 8;
    const maxFrames = ctx.quick ? 15_000 : 150_000;
    const broker = await startBrokerProcess([]);
    const results: TelemetryRun[] = [];
    try {
      await runTelemetry(broker.url, broker.pid, 2000, 1); // warm-up
      for (let i = 0; i < runs; i++) {
        const r = await runTelemetry(broker.url, broker.pid, maxFrames, maxSeconds);
        results.push(r);
        ctx.progress(
          `telemetry run ${i + 1}/${runs}: ingested ${formatRate(r.sent / r.seconds)} msg/s, delivered ${formatRate(r.delivered / r.seconds)} msg/s (${r.delivered.toLocaleString('en-US')} of ${r.expected.toLocaleString('en-US')}) in ${r.seconds.toFixed(2)} s; ` +
            `broker ${r.resources.cores.toFixed(2)} cores, RSS ${mib(r.resources.peakRssBytes)}; harness ${r.resources.harnessCores.toFixed(2)}; foreign ${r.resources.foreignCores.toFixed(2)}`,
        );
      }
    } finally {
      await broker.stop();
    }
    const ingest = summarize(results.map((r) => r.sent / r.seconds));
    const delivered = summarize(results.map((r) => r.delivered / r.seconds));
    const complete = results.every((r) => r.delivered === r.expected);
    const cores = summarize(results.map((r) => r.resources.cores)).median;
    const res = resourceCells(results.map((r) => r.resources));
    return {
      tables: [
        {
          title: `Telemetry, ${PRODUCERS} producers × ${DEVICES_PER_PRODUCER} devices × ${METRICS.length} metrics, ${PAYLOAD_BYTES}-byte readings, ${CONSUMERS.length} wildcard consumers, ${runs} run(s)`,
          columns: [
            'flow',
            'msg/s median',
            'min–max',
            'payload MB/s',
            'broker CPU (cores)',
            'broker peak RSS',
            'foreign CPU (cores)',
            'complete',
          ],
          rows: [
            [
              'ingested (published, received by `telemetry.#`)',
              formatRate(ingest.median),
              spread(ingest),
              ((ingest.median * PAYLOAD_BYTES) / 1e6).toFixed(1),
              res.cores,
              res.peakRss,
              res.foreign,
              complete ? 'yes' : 'NO',
            ],
            [
              `delivered (all consumers, ${DELIVERIES_PER_MESSAGE}× per reading)`,
              formatRate(delivered.median),
              spread(delivered),
              ((delivered.median * PAYLOAD_BYTES) / 1e6).toFixed(1),
              '',
              '',
              '',
              '',
            ],
          ],
          notes: [
            `consumers: ${CONSUMERS.map(([p]) => `\`${p}\``).join(', ')}; each frame is one device's ${MESSAGES_PER_FRAME} readings as ${METRICS.length} PUBLISH_BATCH ops of ${READINGS_PER_BATCH}, producers take turns; ≤ ${WINDOW.toLocaleString('en-US')} readings in flight (end-to-end window on \`telemetry.#\`)`,
            `per run: up to ${(maxFrames * MESSAGES_PER_FRAME).toLocaleString('en-US')} readings or ${maxSeconds} s of sending; the clock stops when every consumer has every reading it matches`,
          ],
        },
      ],
      figures: {
        telemetry_ingest_msgs_per_s: ingest.median,
        telemetry_ingest_bytes_per_s: ingest.median * PAYLOAD_BYTES,
        telemetry_delivered_msgs_per_s: delivered.median,
        telemetry_delivered_bytes_per_s: delivered.median * PAYLOAD_BYTES,
        telemetry_broker_cores: cores,
      },
    };
  },
};
