/**
 * Closed-loop WebSocket fanout (the publisher is paced by its slowest subscriber; the open-loop
 * headline is workloads/open-loop.ts) through the binary protocol: one publisher connection sending PUBLISH_BATCH of
 * 128-byte messages to /topic/bench.fanout, and 1 or 16 subscriber connections, each subscribed to
 * it. Delivered messages per second are counted at the receivers (DELIVER ops); the 1→1 and 1→16
 * runs are interleaved. Pacing and bounds: src/bench/fanout.ts.
 */
import { availableParallelism } from 'node:os';
import { startBrokerProcess } from '../broker-process.js';
import { DEFAULT_BATCH, DEFAULT_WINDOW, runFanout, shardmqSystem, type FanoutResult, type FanoutSpec } from '../fanout.js';
import { roundOrder } from '../pacing.js';
import { mib, resourceCells } from '../proc.js';
import { formatRate, spread, summarize } from '../sample-stats.js';
import { roundsOf, type Workload, type WorkloadContext, type WorkloadResult } from '../workload.js';

export const FANOUT_PAYLOAD_BYTES = 128;
export const FANOUT_TOPIC = 'bench.fanout';

/** Message counts and time caps per run, shared with the peers workload (same payloads and counts). */
export function fanoutSpec(subscribers: number, quick: boolean): FanoutSpec {
  const messages = subscribers === 1 ? (quick ? 300_000 : 3_000_000) : quick ? 40_000 : 400_000;
  return {
    subscribers,
    messages,
    maxSeconds: quick ? 2 : 8,
    payloadBytes: FANOUT_PAYLOAD_BYTES,
    window: DEFAULT_WINDOW,
    batch: DEFAULT_BATCH,
    topic: FANOUT_TOPIC,
  };
}

export function fanoutLine(r: FanoutResult): string {
  return (
    `${r.system} 1→${r.subscribers}: ${formatRate(r.deliveredPerSecond)} delivered msg/s (${r.delivered.toLocaleString('en-US')} of ${(r.sent * r.subscribers).toLocaleString('en-US')}` +
    `${r.complete ? '' : ', INCOMPLETE'}) in ${r.seconds.toFixed(2)} s; server ${r.resources.cores.toFixed(2)} cores, RSS ${mib(r.resources.peakRssBytes)}; ` +
    `harness ${r.resources.harnessCores.toFixed(2)} cores; foreign ${r.resources.foreignCores.toFixed(2)} cores`
  );
}

/** One table row: rate median (min–max) ±SE, and the resources beside it. */
export function fanoutRow(label: string, rs: readonly FanoutResult[]): (string | number)[] {
  const rate = summarize(rs.map((r) => r.deliveredPerSecond));
  const res = resourceCells(rs.map((r) => r.resources));
  const incomplete = rs.filter((r) => !r.complete).length;
  return [
    label,
    formatRate(rate.median),
    spread(rate),
    rs.length > 1 ? `${rate.sePercent.toFixed(1)}%` : '—',
    res.cores,
    res.peakRss,
    res.harness,
    res.foreign,
    incomplete === 0 ? 'yes' : `NO (${incomplete} run(s) lost messages)`,
  ];
}

export const FANOUT_COLUMNS = [
  'system, fanout',
  'delivered msg/s median',
  'min–max',
  '± SE',
  'server CPU (cores)',
  'server peak RSS',
  'harness CPU (cores)',
  'foreign CPU (cores)',
  'complete',
];

export const wsFanout: Workload = {
  name: 'ws-fanout',
  description:
    'Closed loop (the publisher waits for its slowest subscriber: at most 8,000 messages in flight per subscriber, so nothing is dropped by design; the §4 goals are judged on open-loop): WebSocket 1→1 and 1→16 fanout of 128-byte messages through the binary protocol (PUBLISH_BATCH in, DELIVER counted at the receivers)',
  async run(ctx: WorkloadContext): Promise<WorkloadResult> {
    const runs = roundsOf(ctx);
    const broker = await startBrokerProcess([]);
    const system = shardmqSystem(broker.url, broker.pid);
    const results: Record<1 | 16, FanoutResult[]> = { 1: [], 16: [] };
    try {
      // Warm-up (not recorded): JIT on both sides, first connections.
      await runFanout(system, { ...fanoutSpec(1, true), messages: 50_000, maxSeconds: 1 });
      for (let i = 0; i < runs; i++) {
        for (const n of roundOrder([1, 16] as const, i)) {
          const r = await runFanout(system, fanoutSpec(n, ctx.quick));
          results[n].push(r);
          ctx.progress(`ws-fanout run ${i + 1}/${runs}: ${fanoutLine(r)}`);
        }
      }
    } finally {
      await broker.stop();
    }
    const one = summarize(results[1].map((r) => r.deliveredPerSecond));
    const sixteen = summarize(results[16].map((r) => r.deliveredPerSecond));
    const s1 = fanoutSpec(1, ctx.quick);
    const s16 = fanoutSpec(16, ctx.quick);
    const shards = Math.max(1, availableParallelism() - 1);
    return {
      tables: [
        {
          title: `Closed loop: WebSocket fanout, ${FANOUT_PAYLOAD_BYTES}-byte messages, binary protocol, broker default shards (${shards}), ${runs} interleaved run(s)`,
          columns: FANOUT_COLUMNS,
          rows: [fanoutRow('shardmq 1→1', results[1]), fanoutRow('shardmq 1→16', results[16])],
          notes: [
            `per run: up to ${s1.messages.toLocaleString('en-US')} (1→1) / ${s16.messages.toLocaleString('en-US')} (1→16) messages or ${s1.maxSeconds} s of sending; PUBLISH_BATCH of ${s1.batch}, no publisher confirms; at most ${s1.window.toLocaleString('en-US')} messages in flight per subscriber (end-to-end window, below the 10,000-message topic buffer)`,
            'delivered msg/s = DELIVER ops counted at all receivers ÷ time from the first publish to the last delivery; every connection is its own `ws` socket in the harness process',
            'publisher, subscribers and broker share the machine: harness CPU is what the client side cost; foreign CPU is other load on the machine during the run (noise)',
          ],
        },
      ],
      figures: {
        ws_1to1_msgs_per_s: one.median,
        ws_fanout16_delivered_msgs_per_s: sixteen.median,
        ws_1to1_broker_cores: summarize(results[1].map((r) => r.resources.cores)).median,
        ws_fanout16_broker_cores: summarize(results[16].map((r) => r.resources.cores)).median,
      },
    };
  },
};
