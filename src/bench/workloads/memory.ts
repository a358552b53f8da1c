/**
 * Memory under a consumer that never reads (design.md §4: "a consumer that never reads costs at most
 * its configured buffer"). One subscriber on /topic/bench.memory stops reading its socket (the TCP
 * socket is paused, so the kernel buffers fill and the broker sees backpressure); a publisher then
 * sends many more 1 KiB messages than the subscriber's buffer holds. The broker's RSS growth is
 * compared with what the configuration allows that subscriber:
 *   topic buffer (--topic-buffer messages) + delivery window (--delivery-window messages) in flight
 *   to the socket, each message counted as payload + BOOKKEEPING_BYTES, + the socket high-water mark,
 *   + the main thread's publish overflow (--overflow-bytes, filled only when the publisher outruns
 *   the shard; publishers get `saturated` past it).
 * Before the stalled phase a reading subscriber takes the same number of messages, so ring pages,
 * the heap and the allocator are warm: the growth measured is what the stalled consumer retains.
 * Bounded by a message count and a time limit; one run (a footprint, not a rate).
 */
import type WebSocket from 'ws';
import { DEFAULT_DELIVERY_WINDOW, DEFAULT_OVERFLOW_BYTES, DEFAULT_SOCKET_HIGH_WATER, DEFAULT_TOPIC_BUFFER } from '../../config/defaults.js';
import { startBrokerProcess } from '../broker-process.js';
import { runFanout, shardmqSystem } from '../fanout.js';
import { ResourceMeter, mib } from '../proc.js';
import { formatRate } from '../sample-stats.js';
import { BenchWsClient } from '../ws-binary-client.js';
import type { Workload, WorkloadContext, WorkloadResult } from '../workload.js';

const PAYLOAD_BYTES = 1024;
const TOPIC = 'bench.memory';
/** Allowance per held message for the queue entry, its headers and the allocator (JS objects). */
const BOOKKEEPING_BYTES = 512;
const BATCH = 100;

interface StatsQueue {
  readonly name: string;
  readonly depth: number;
  readonly stats?: Readonly<Record<string, number>>;
}

async function stats(url: string): Promise<{ depth: number; dropped: number }> {
  try {
    const res = await fetch(`${url}/v1/stats`, { signal: AbortSignal.timeout(5000) });
    const body = (await res.json()) as { queues?: StatsQueue[] };
    const queues = body.queues ?? [];
    const depth = Math.max(0, ...queues.map((q) => q.depth));
    // Messages a queue dropped for its length limit (drop-head), as the queues count them.
    const dropped = queues.reduce((s, q) => s + (q.stats?.maxlenDropped ?? 0) + (q.stats?.overflowed ?? 0), 0);
    return { depth, dropped };
  } catch {
    return { depth: NaN, dropped: NaN };
  }
}

export const memory: Workload = {
  name: 'memory',
  description: `broker memory with a subscriber that never reads: ${PAYLOAD_BYTES}-byte messages published far past its buffer, RSS growth vs the configured bound`,
  async run(ctx: WorkloadContext): Promise<WorkloadResult> {
    const messages = ctx.quick ? 60_000 : 300_000;
    const maxSeconds = ctx.quick ? 10 : 30;
    const broker = await startBrokerProcess([]);
    const consumerBound =
      (DEFAULT_TOPIC_BUFFER + DEFAULT_DELIVERY_WINDOW) * (PAYLOAD_BYTES + BOOKKEEPING_BYTES) + DEFAULT_SOCKET_HIGH_WATER;
    const bound = consumerBound + DEFAULT_OVERFLOW_BYTES;
    let baseline = 0;
    let peak = 0;
    let end = 0;
    let sent = 0;
    let seconds = 0;
    let after = { depth: NaN, dropped: NaN };
    let stalledGot = 0;
    let cores = 0;
    let refused = 0;
    let refusal = '';
    try {
      // Warm-up: the same volume through a subscriber that reads.
      const warm = await runFanout(shardmqSystem(broker.url, broker.pid), {
        subscribers: 1,
        messages,
        maxSeconds,
        payloadBytes: PAYLOAD_BYTES,
        window: 5000,
        batch: BATCH,
        topic: TOPIC,
      });
      ctx.progress(
        `memory: warm-up through a reading subscriber: ${formatRate(warm.deliveredPerSecond)} msg/s, broker RSS ${mib(warm.resources.endRssBytes)}`,
      );
      await new Promise((r) => setTimeout(r, 500));
      const stalled = await BenchWsClient.connect(broker.url);
      const pub = await BenchWsClient.connect(broker.url);
      try {
        await stalled.subscribe(1, `/topic/${TOPIC}`);
        // Stop reading: the kernel's receive buffer fills, then the broker's send buffer.
        (stalled.ws as WebSocket & { _socket: { pause(): void } })._socket.pause();
        baseline = broker.rssBytes();
        const payload = new Uint8Array(PAYLOAD_BYTES).fill(0x6d);
        const frame = pub.writer
          .publishBatch(
            `/topic/${TOPIC}`,
            Array.from({ length: BATCH }, () => payload),
          )
          .finishCopy();
        const meter = new ResourceMeter([broker.pid]);
        const started = performance.now();
        let lastProgress = started;
        while (sent < messages && performance.now() - started < maxSeconds * 1000) {
          if (pub.bufferedAmount > 256 * 1024 || pub.creditWaiting > 0) {
            await new Promise((r) => setTimeout(r, 5));
            continue;
          }
          // Frame bytes overstate the payload bytes the broker counts: never past the credit.
          pub.sendPublishes(frame, BATCH, frame.byteLength);
          sent += BATCH;
          await new Promise((r) => setImmediate(r));
          if (performance.now() - lastProgress > 1000) {
            lastProgress = performance.now();
            ctx.progress(`memory: ${sent.toLocaleString('en-US')} sent to the stalled subscriber, broker RSS ${mib(broker.rssBytes())}`);
          }
        }
        await new Promise((r) => setTimeout(r, 1000)); // let the broker settle what is in flight
        seconds = (performance.now() - started) / 1000;
        const sample = meter.stop();
        peak = sample.peakRssBytes;
        end = sample.endRssBytes;
        cores = sample.cores;
        after = await stats(broker.url);
        stalledGot = stalled.delivered;
        // Refusals (`saturated`: ring and overflow full) are the broker pushing back, not a failure.
        refused = pub.errors;
        refusal = pub.lastError;
      } finally {
        await pub.close();
        stalled.ws.terminate();
      }
    } finally {
      await broker.stop();
    }
    const growth = Math.max(0, peak - baseline);
    // A refused frame may have had some of its messages written before the ring filled: ≈.
    const published = Math.max(0, sent - refused * BATCH) * PAYLOAD_BYTES;
    const ratio = growth / bound;
    ctx.progress(
      `memory: RSS ${mib(baseline)} → peak ${mib(peak)} (+${mib(growth)}) after ${mib(published)} accepted (${refused} frames refused); bound ${mib(bound)}; deepest queue ${after.depth}, dropped ${after.dropped}`,
    );
    return {
      tables: [
        {
          title: `A subscriber that never reads, ${PAYLOAD_BYTES}-byte messages, ${sent.toLocaleString('en-US')} published in ${seconds.toFixed(1)} s, broker defaults`,
          columns: [
            'broker RSS before',
            'peak',
            'growth',
            'accepted bytes (≈)',
            'configured bound',
            'growth ÷ bound',
            'deepest queue',
            'dropped by the buffer',
            'publish frames refused',
            'broker CPU (cores)',
          ],
          rows: [
            [
              mib(baseline),
              mib(peak),
              mib(growth),
              mib(published),
              mib(bound),
              `${(ratio * 100).toFixed(0)}%`,
              Number.isFinite(after.depth) ? after.depth : 'n/a',
              Number.isFinite(after.dropped) ? after.dropped : 'n/a',
              refused,
              cores.toFixed(2),
            ],
          ],
          notes: [
            `bound = (topic buffer ${DEFAULT_TOPIC_BUFFER.toLocaleString('en-US')} + delivery window ${DEFAULT_DELIVERY_WINDOW.toLocaleString('en-US')}) × (${PAYLOAD_BYTES} B + ${BOOKKEEPING_BYTES} B bookkeeping allowance) + socket high-water ${mib(DEFAULT_SOCKET_HIGH_WATER)} = ${mib(consumerBound)} for the consumer, + publish overflow ${mib(DEFAULT_OVERFLOW_BYTES)} (used only while the publisher outruns the shard); RSS end of run ${mib(end)}; the stalled socket took ${stalledGot.toLocaleString('en-US')} messages before it stopped reading`,
            ...(refused > 0
              ? [
                  `${refused} publish frame(s) were refused while the broker was full (ERROR ${refusal.split(':')[0]}): backpressure, the publisher was told`,
                ]
              : []),
            'RSS includes garbage not yet collected, so growth is an upper bound on what the stalled subscriber retains; the reading warm-up beforehand brings the heap and the rings to their working size',
            `goal (design.md §4): a consumer that never reads costs at most its configured buffer — ${ratio <= 1 ? 'met' : 'not met'} (${(ratio * 100).toFixed(0)}% of the bound)`,
          ],
        },
      ],
      figures: {
        memory_stalled_consumer_rss_growth_bytes: growth,
        memory_stalled_consumer_bound_bytes: bound,
        memory_stalled_consumer_own_bound_bytes: consumerBound,
        memory_stalled_consumer_growth_vs_bound: ratio,
        memory_stalled_consumer_published_bytes: published,
      },
    };
  },
};
