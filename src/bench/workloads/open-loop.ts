/**
 * The headline of benchmarks.md (design.md §4): open-loop WebSocket pub/sub, 1→1 and 1→16, 128-byte
 * messages on one topic, the publisher paced only by each system's flow control (a flush every
 * 1024 publishes, at most 4 outstanding, as nats.js users do). Side by side in one run, interleaved
 * round by round: shardmq through its exported client with confirms off and on and over its JSON
 * protocol (credit honoured, a receipt as the flush), NATS core with the
 * `nats` client, and uWebSockets.js's built-in pub/sub with `ws` clients. Every row carries its lost
 * count; the server's CPU per delivered message is compared with uWebSockets.js's. Driver:
 * src/bench/open-loop.ts. Writes benchmarks/open-loop.svg.
 */
import { startBrokerProcess, type BrokerProcess } from '../broker-process.js';
import { machineLine } from '../machine.js';
import {
  runOpenLoop,
  FLUSH_EVERY,
  MAX_PENDING_FLUSHES,
  QUIET_MS,
  type OpenLoopResult,
  type OpenLoopSpec,
  type OpenLoopSystem,
} from '../open-loop.js';
import {
  natsOpenLoop,
  shardmqJsonOpenLoop,
  shardmqOpenLoop,
  startUwsPubSub,
  uwsOpenLoop,
  type UwsPubSubServer,
} from '../open-loop-systems.js';
import { roundOrder } from '../pacing.js';
import { loadPeers, startNatsServer, type PeerServer } from '../peers.js';
import { formatRate, spread, summarize } from '../sample-stats.js';
import { barChart } from '../svg.js';
import { roundsOf, type Workload, type WorkloadContext, type WorkloadResult } from '../workload.js';

export const OPEN_LOOP_PAYLOAD_BYTES = 128;
const FANOUTS = [1, 16] as const;
type Fanout = (typeof FANOUTS)[number];

export function openLoopSpec(subscribers: number, quick: boolean): OpenLoopSpec {
  return {
    subscribers,
    messages: quick ? 200_000 : 1_000_000,
    maxSeconds: quick ? 10 : 30,
    drainSeconds: quick ? 5 : 10,
    payloadBytes: OPEN_LOOP_PAYLOAD_BYTES,
  };
}

/** `1to1`, `1to16`: the workload part of figure names. */
const tag = (n: Fanout): string => `1to${n}`;
const count = (x: number): string => Math.round(x).toLocaleString('en-US');
const pct = (x: number): string => (x === 0 ? '0%' : Math.abs(x) < 0.01 ? `${x.toFixed(4)}%` : `${x.toFixed(2)}%`);

function line(r: OpenLoopResult): string {
  const extras = [
    r.hitTimeCap ? 'TIME CAP' : '',
    r.flushTimedOut ? 'FINAL FLUSH TIMED OUT' : '',
    r.publisherErrors > 0 ? `${r.publisherErrors} publisher error(s), first: ${r.firstPublisherError}` : '',
    r.subscriberErrors > 0 ? `${r.subscriberErrors} subscriber error(s), last: ${r.lastSubscriberError}` : '',
    r.subscribersClosed > 0 ? `${r.subscribersClosed} subscriber connection(s) closed by the server` : '',
  ].filter((x) => x !== '');
  return (
    `${r.system} 1→${r.subscribers}: published ${count(r.published)} at ${formatRate(r.publishedPerSecond)}/s (${r.publishSeconds.toFixed(2)} s), ` +
    `delivered ${count(r.delivered)} of ${count(r.expected)} at ${formatRate(r.deliveredPerSecond)}/s (${r.deliverSeconds.toFixed(2)} s), ` +
    `LOST ${count(r.lost)} (${pct(r.lostPercent)})` +
    (r.serverDropped !== null ? `, broker dropped ${count(r.serverDropped)}` : '') +
    `; server ${Number.isFinite(r.cpuUsPerDelivered) ? r.cpuUsPerDelivered.toFixed(2) : 'n/a'} µs CPU/delivered (${r.resources.cores.toFixed(2)} cores), ` +
    `subscriber process ${r.subscriberCores.toFixed(2)} cores, publisher (harness) ${r.resources.harnessCores.toFixed(2)} cores, foreign ${r.resources.foreignCores.toFixed(2)} cores` +
    (extras.length > 0 ? ` [${extras.join('; ')}]` : '')
  );
}

/** Median over rounds of pick(a) ÷ pick(b), a and b from the same round. */
export function pairedRatio<T = OpenLoopResult>(a: readonly T[], b: readonly T[], pick: (r: T) => number): number {
  const n = Math.min(a.length, b.length);
  const ratios: number[] = [];
  for (let i = 0; i < n; i++) ratios.push(pick(a[i]) / pick(b[i]));
  return summarize(ratios).median;
}

export const OPEN_LOOP_COLUMNS = [
  'system, workload',
  'published msg/s',
  'delivered msg/s',
  'delivered min–max',
  'lost (worst run)',
  'lost %',
  'server CPU µs / delivered',
  'server CPU (cores)',
  'broker dropped',
  'subscriber process CPU (cores)',
  'foreign CPU (cores)',
];

export function openLoopRow(label: string, rs: readonly OpenLoopResult[]): (string | number)[] {
  const med = (pick: (r: OpenLoopResult) => number): number => summarize(rs.map(pick)).median;
  const delivered = summarize(rs.map((r) => r.deliveredPerSecond));
  const lostMedian = med((r) => r.lost);
  const lostWorst = Math.max(...rs.map((r) => r.lost));
  const dropped = rs.map((r) => r.serverDropped).filter((x): x is number => x !== null);
  const flags = [
    rs.some((r) => r.hitTimeCap) ? 'time cap' : '',
    rs.some((r) => r.flushTimedOut) ? 'flush timed out' : '',
    rs.some((r) => r.publisherErrors > 0) ? 'publisher errors' : '',
    rs.some((r) => r.subscribersClosed > 0) ? 'subscribers closed' : '',
  ].filter((x) => x !== '');
  return [
    label + (flags.length > 0 ? ` (${flags.join(', ')})` : ''),
    formatRate(med((r) => r.publishedPerSecond)),
    formatRate(delivered.median),
    spread(delivered),
    rs.length > 1 && lostWorst !== lostMedian ? `${count(lostMedian)} (${count(lostWorst)})` : count(lostMedian),
    pct(med((r) => r.lostPercent)),
    med((r) => r.cpuUsPerDelivered).toFixed(2),
    med((r) => r.resources.cores).toFixed(2),
    dropped.length === 0 ? '—' : count(summarize(dropped).median),
    med((r) => r.subscriberCores).toFixed(2),
    med((r) => r.resources.foreignCores).toFixed(2),
  ];
}

export const openLoop: Workload = {
  name: 'open-loop',
  headline: 'Open loop (headline): shardmq vs NATS core vs uWebSockets.js pub/sub, 1→1 and 1→16',
  description:
    'open-loop WebSocket pub/sub, 1→1 and 1→16, 128-byte messages: shardmq (exported client, confirms off and on; JSON protocol) vs NATS core (`nats`) vs uWebSockets.js built-in pub/sub (`ws`), publisher paced only by flush() every 1024 publishes (≤ 4 outstanding), lost counted at the subscribers',
  async run(ctx: WorkloadContext): Promise<WorkloadResult> {
    const runs = roundsOf(ctx);
    const notes: string[] = [];
    const versions: string[] = [];
    const systems: OpenLoopSystem[] = [];
    const results = new Map<string, OpenLoopResult[]>();
    let broker: BrokerProcess | null = null;
    let nats: PeerServer | null = null;
    let uws: UwsPubSubServer | null = null;
    try {
      broker = await startBrokerProcess([]);
      systems.push(
        shardmqOpenLoop(broker.url, broker.pid, false),
        shardmqOpenLoop(broker.url, broker.pid, true),
        shardmqJsonOpenLoop(broker.url, broker.pid),
      );
      const peers = await loadPeers();
      if ('missing' in peers.nats) notes.push(`NATS skipped: ${peers.nats.missing}`);
      else {
        nats = await startNatsServer(peers.nats.binary);
        versions.push(nats.version);
        systems.push(natsOpenLoop(peers.nats.client, nats));
      }
      uws = await startUwsPubSub();
      systems.push(uwsOpenLoop(uws));
      for (const n of notes) ctx.progress(`open-loop: ${n}`);

      // Warm-up (not recorded): JIT on every side, first connections.
      for (const s of systems) {
        ctx.progress(`open-loop: warm-up ${s.name}`);
        await runOpenLoop(s, { ...openLoopSpec(1, true), messages: 20_000, maxSeconds: 2, drainSeconds: 2 });
      }
      for (let i = 0; i < runs; i++) {
        for (const n of FANOUTS) {
          for (const s of roundOrder(systems, i)) {
            const r = await runOpenLoop(s, openLoopSpec(n, ctx.quick));
            const id = `${s.key}/${n}`;
            results.set(id, [...(results.get(id) ?? []), r]);
            ctx.progress(`open-loop run ${i + 1}/${runs}: ${line(r)}`);
          }
        }
      }
    } finally {
      await broker?.stop();
      await nats?.stop();
      await uws?.stop();
    }

    const figures: Record<string, number> = {};
    const rows: (string | number)[][] = [];
    const of = (key: string, n: Fanout): OpenLoopResult[] => results.get(`${key}/${n}`) ?? [];
    for (const n of FANOUTS) {
      for (const s of systems) {
        const rs = of(s.key, n);
        if (rs.length === 0) continue;
        rows.push(openLoopRow(`${s.name} 1→${n}`, rs));
        const p = `open_loop_${s.key}_${tag(n)}`;
        const med = (pick: (r: OpenLoopResult) => number): number => summarize(rs.map(pick)).median;
        figures[`${p}_published_msgs_per_s`] = med((r) => r.publishedPerSecond);
        figures[`${p}_delivered_msgs_per_s`] = med((r) => r.deliveredPerSecond);
        figures[`${p}_lost`] = med((r) => r.lost);
        figures[`${p}_lost_max`] = Math.max(...rs.map((r) => r.lost));
        figures[`${p}_lost_pct`] = med((r) => r.lostPercent);
        figures[`${p}_cpu_us_per_delivered`] = med((r) => r.cpuUsPerDelivered);
        figures[`${p}_server_cores`] = med((r) => r.resources.cores);
        const dropped = rs.map((r) => r.serverDropped).filter((x): x is number => x !== null);
        if (dropped.length > 0) {
          figures[`${p}_broker_dropped`] = summarize(dropped).median;
          figures[`${p}_broker_dropped_max`] = Math.max(...dropped);
        }
      }
    }
    const has = (key: string): boolean => systems.some((s) => s.key === key);
    const delivered = (r: OpenLoopResult): number => r.deliveredPerSecond;
    const cpu = (r: OpenLoopResult): number => r.cpuUsPerDelivered;
    const ratioNotes: string[] = [];
    const label: Record<string, string> = { shardmq: 'shardmq', shardmq_confirms: 'shardmq (confirms on)' };
    for (const n of FANOUTS) {
      for (const ours of ['shardmq', 'shardmq_confirms']) {
        if (has('nats')) {
          const x = pairedRatio(of(ours, n), of('nats', n), delivered);
          figures[`open_loop_${ours}_vs_nats_${tag(n)}_delivered_ratio`] = x;
          ratioNotes.push(`${label[ours]} ÷ NATS core, delivered msg/s 1→${n}: ${x.toFixed(2)}× (median of per-round ratios)`);
        }
        if (has('uws')) {
          const c = pairedRatio(of(ours, n), of('uws', n), cpu);
          figures[`open_loop_${ours}_vs_uws_${tag(n)}_cpu_ratio`] = c;
          ratioNotes.push(
            `${label[ours]} ÷ uWebSockets.js pub/sub, server CPU per delivered message 1→${n}: ${c.toFixed(2)}× (lower is better)`,
          );
        }
      }
    }
    const spec1 = openLoopSpec(1, ctx.quick);
    const chart = barChart({
      title: `Open loop: delivered msg/s, ${OPEN_LOOP_PAYLOAD_BYTES}-byte messages (median of ${runs} run${runs > 1 ? 's' : ''})`,
      categories: ['1 → 1', '1 → 16 (sum over subscribers)'],
      series: systems.map((s) => ({
        name: s.name,
        values: FANOUTS.map((n) => summarize(of(s.key, n).map(delivered)).median),
      })),
      yLabel: 'delivered messages / s',
      caption: `${machineLine(ctx.machine)}${ctx.quick ? ' — QUICK RUN, not for quoting' : ''}. Generated by shardmq bench (src/bench/workloads/open-loop.ts).`,
    });
    return {
      notes,
      tables: [
        {
          title: `Open loop, ${OPEN_LOOP_PAYLOAD_BYTES}-byte messages on one topic, 1 publisher → 1 or 16 subscribers, ${runs} interleaved run(s), medians`,
          columns: OPEN_LOOP_COLUMNS,
          rows,
          notes: [
            ...ratioNotes,
            `pacing, the same for every system: fire-and-forget publishes as fast as the client takes them, flush() after every ${FLUSH_EVERY.toLocaleString('en-US')}, at most ${MAX_PENDING_FLUSHES} flushes outstanding (the oldest awaited when ${MAX_PENDING_FLUSHES} are pending); nothing waits for the subscribers`,
            `per run: ${spec1.messages.toLocaleString('en-US')} messages or ${spec1.maxSeconds} s of publishing, whichever comes first; deliveries then end when complete, after ${QUIET_MS / 1000} s without one, or after ${spec1.drainSeconds} s`,
            'published msg/s = messages ÷ time from the first publish until the last flush resolved; delivered msg/s = messages received by all subscribers ÷ time from the first publish to the last delivery (one monotonic clock across processes)',
            "lost = published × subscribers − delivered, median over runs (worst run in brackets); a row with loss is never a win. broker dropped = the shards' `dropped` counters (GET /v1/stats) over the run",
            'server CPU = user + system time of the server process (all threads) from the first publish to the last delivery seen, ÷ messages delivered',
            "shardmq: broker with default flags in its own process, the exported client (`connect`, `publishNoWait`, `flush`; subscribers `subscribe('/topic/bench', { ack: 'auto' }, handler)`); NATS core: nats-server, no JetStream, subject `bench`; uWebSockets.js: src/bench/uws-pubsub-server.ts, `app.publish` per message, flush = an echoed text frame, maxBackpressure 64 MiB per socket; its `ws` publisher corks the socket between flushes so the frames leave in one write, as nats.js and shardmq's client gather theirs (each message is still its own frame and its own `app.publish`)" +
              (versions.length > 0 ? `; servers: ${versions.join(', ')}` : ''),
            'processes: server; publisher in the harness process; all subscribers of a run in one child process, so receiving cannot slow the publisher through a shared event loop. On a 2-core machine they still share the cores: watch the CPU columns',
          ],
        },
      ],
      figures,
      charts: [
        { file: 'benchmarks/open-loop.svg', title: 'Open loop: shardmq vs NATS core vs uWebSockets.js pub/sub (bar chart)', svg: chart },
      ],
    };
  },
};
