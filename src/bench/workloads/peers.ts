/**
 * Closed loop (the publisher is paced by its slowest subscriber; the open-loop comparison the §4
 * goals are judged on is workloads/open-loop.ts): shardmq side by side with NATS core and Redis pub/sub: the same fanout driver, payloads, counts,
 * pacing and time caps as ws-fanout (1→1 and 1→16, 128-byte messages), every system in the same
 * run, interleaved round by round. Peers that are not installed are skipped with a note saying how
 * to install them (scripts/install-bench-peers.sh). Writes benchmarks/peers.svg.
 */
import { availableParallelism } from 'node:os';
import { startBrokerProcess, type BrokerProcess } from '../broker-process.js';
import { runFanout, shardmqSystem, type FanoutResult, type FanoutSystem } from '../fanout.js';
import { roundOrder } from '../pacing.js';
import { loadPeers, natsSystem, redisSystem, startNatsServer, startRedisServer, type PeerServer } from '../peers.js';
import { machineLine } from '../machine.js';
import { summarize } from '../sample-stats.js';
import { barChart } from '../svg.js';
import { roundsOf, type Workload, type WorkloadContext, type WorkloadResult } from '../workload.js';
import { FANOUT_COLUMNS, FANOUT_PAYLOAD_BYTES, fanoutLine, fanoutRow, fanoutSpec } from './ws-fanout.js';

type Key = 'shardmq' | 'nats' | 'redis';
const FIGURE_PREFIX: Record<Key, string> = { shardmq: 'peers_shardmq', nats: 'nats_core', redis: 'redis' };

/** Median over rounds of a ÷ b from the same round. */
function pairedRatio(a: readonly FanoutResult[], b: readonly FanoutResult[]): number {
  const n = Math.min(a.length, b.length);
  const ratios: number[] = [];
  for (let i = 0; i < n; i++) ratios.push(a[i].deliveredPerSecond / b[i].deliveredPerSecond);
  return summarize(ratios).median;
}

export const peers: Workload = {
  name: 'peers',
  description:
    'Closed loop (publisher paced by its slowest subscriber, as in ws-fanout; the §4 goals are judged on open-loop): shardmq vs NATS core (nats-server + `nats`) and Redis pub/sub (redis-server + `ioredis`), same 1→1 and 1→16 fanout of 128-byte messages, interleaved in one run',
  async run(ctx: WorkloadContext): Promise<WorkloadResult> {
    const runs = roundsOf(ctx);
    const available = await loadPeers();
    const notes: string[] = [];
    const servers: PeerServer[] = [];
    const systems = new Map<Key, FanoutSystem>();
    let broker: BrokerProcess | null = null;
    const results = new Map<string, FanoutResult[]>();
    const versions: string[] = [];
    /** A missing peer is skipped with a note, not a failure: the other systems still compare. */
    const addPeer = async <C>(
      key: Key,
      label: string,
      found: { binary: string; client: C } | { missing: string },
      start: (binary: string) => Promise<PeerServer>,
      system: (client: C, server: PeerServer) => FanoutSystem,
    ): Promise<void> => {
      if ('missing' in found) {
        notes.push(`${label} skipped: ${found.missing}`);
        return;
      }
      const s = await start(found.binary);
      servers.push(s);
      versions.push(s.version);
      systems.set(key, system(found.client, s));
    };
    try {
      broker = await startBrokerProcess([]);
      systems.set('shardmq', shardmqSystem(broker.url, broker.pid));
      await addPeer('nats', 'NATS', available.nats, startNatsServer, natsSystem);
      await addPeer('redis', 'Redis', available.redis, startRedisServer, redisSystem);
      for (const n of notes) ctx.progress(`peers: ${n}`);
      const keys = [...systems.keys()];
      for (const k of keys) await runFanout(systems.get(k)!, { ...fanoutSpec(1, true), messages: 50_000, maxSeconds: 1 }); // warm-up
      for (let i = 0; i < runs; i++) {
        for (const n of [1, 16] as const) {
          for (const k of roundOrder(keys, i)) {
            const r = await runFanout(systems.get(k)!, fanoutSpec(n, ctx.quick));
            const id = `${k}/${n}`;
            results.set(id, [...(results.get(id) ?? []), r]);
            ctx.progress(`peers run ${i + 1}/${runs}: ${fanoutLine(r)}`);
          }
        }
      }
    } finally {
      await broker?.stop();
      for (const s of servers) await s.stop();
    }

    const keys = [...systems.keys()];
    const figures: Record<string, number> = {};
    const rows: (string | number)[][] = [];
    for (const n of [1, 16] as const) {
      for (const k of keys) {
        const rs = results.get(`${k}/${n}`) ?? [];
        rows.push(fanoutRow(`${systems.get(k)!.name} 1→${n}`, rs));
        figures[`${FIGURE_PREFIX[k]}_${n === 1 ? '1to1_msgs_per_s' : 'fanout16_delivered_msgs_per_s'}`] = summarize(
          rs.map((r) => r.deliveredPerSecond),
        ).median;
        figures[`${FIGURE_PREFIX[k]}_${n === 1 ? '1to1' : 'fanout16'}_server_cores`] = summarize(rs.map((r) => r.resources.cores)).median;
      }
      const ours = results.get(`shardmq/${n}`) ?? [];
      const tag = n === 1 ? 'ws_1to1' : 'ws_fanout16';
      if (systems.has('nats')) figures[`${tag}_vs_nats_core_ratio`] = pairedRatio(ours, results.get(`nats/${n}`) ?? []);
      if (systems.has('redis')) figures[`${tag}_vs_redis_ratio`] = pairedRatio(ours, results.get(`redis/${n}`) ?? []);
    }
    const ratioNotes: string[] = [];
    for (const [peer, label] of [
      ['nats', 'NATS core'],
      ['redis', 'Redis pub/sub'],
    ] as const) {
      if (!systems.has(peer)) continue;
      const r1 = figures[`ws_1to1_vs_${peer === 'nats' ? 'nats_core' : 'redis'}_ratio`];
      const r16 = figures[`ws_fanout16_vs_${peer === 'nats' ? 'nats_core' : 'redis'}_ratio`];
      ratioNotes.push(`shardmq ÷ ${label} (median of per-round ratios): 1→1 ${r1.toFixed(2)}×, 1→16 ${r16.toFixed(2)}×`);
    }
    if (systems.has('nats')) {
      const met = figures.ws_1to1_vs_nats_core_ratio >= 1 && figures.ws_fanout16_vs_nats_core_ratio >= 1;
      ratioNotes.push(
        `closed loop: at least NATS core's delivered msg/s for 1→1 and 1→16 — ${met ? 'yes' : 'no'} (the design.md §4 goal itself is judged on the open-loop workload)`,
      );
    }
    const spec1 = fanoutSpec(1, ctx.quick);
    const spec16 = fanoutSpec(16, ctx.quick);
    const chart = barChart({
      title: `Closed loop: delivered msg/s, ${FANOUT_PAYLOAD_BYTES}-byte messages (median of ${runs} run${runs > 1 ? 's' : ''})`,
      categories: ['1 → 1', '1 → 16 (sum over subscribers)'],
      series: keys.map((k) => ({
        name: systems.get(k)!.name,
        values: [1, 16].map((n) => summarize((results.get(`${k}/${n}`) ?? []).map((r) => r.deliveredPerSecond)).median),
      })),
      yLabel: 'delivered messages / s',
      caption: `${machineLine(ctx.machine)}${ctx.quick ? ' — QUICK RUN, not for quoting' : ''}. Generated by shardmq bench (src/bench/workloads/peers.ts).`,
    });
    return {
      notes,
      tables: [
        {
          title: `Closed loop: shardmq vs peers, ${FANOUT_PAYLOAD_BYTES}-byte messages, one publisher connection, 1 or 16 subscriber connections, ${runs} interleaved run(s)`,
          columns: FANOUT_COLUMNS,
          rows,
          notes: [
            ...ratioNotes,
            `same driver for every system (src/bench/fanout.ts): up to ${spec1.messages.toLocaleString('en-US')} (1→1) / ${spec16.messages.toLocaleString('en-US')} (1→16) messages or ${spec1.maxSeconds} s of sending per run, ≤ ${spec1.window.toLocaleString('en-US')} in flight per subscriber, bursts of ${spec1.batch} (shardmq: one PUBLISH_BATCH; NATS: ${spec1.batch} publishes gathered by the client; Redis: one pipeline)`,
            `shardmq: binary WebSocket, broker default shards (${Math.max(1, availableParallelism() - 1)}), no confirms; NATS core over TCP (no JetStream); Redis PUBLISH/SUBSCRIBE over TCP, persistence off; servers: ${versions.join(', ') || 'none'}`,
            'server CPU counts the server process only (nats-server and redis-server are one process each; shardmq is main thread + shard workers); every client runs in the harness process',
          ],
        },
      ],
      figures,
      charts: [{ file: 'benchmarks/peers.svg', title: 'Closed loop: shardmq vs NATS core and Redis pub/sub (bar chart)', svg: chart }],
    };
  },
};
