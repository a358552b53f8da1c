/**
 * The cluster (docs/scale-out.md), side by side in one run with what it is compared to:
 * - shardmq, one node (default flags);
 * - shardmq, three nodes on loopback joined through one nats-server (`--cluster`);
 * - NATS core, three nats-servers joined by routes (a NATS cluster), the same `nats` clients.
 * Open-loop 1→16 fan-out of 128-byte messages on one topic, the publisher on the first node and the
 * 16 subscribers spread over the three (so two thirds of the deliveries cross), paced as the
 * open-loop headline (open-loop.ts); and publish→deliver latency at 10,000 msg/s with the
 * publisher on one node and the subscriber on another. Every row carries its lost count; the
 * cluster's own drop counters (GET /v1/cluster) are summed over the run.
 */
import { startBrokerProcess, type BrokerProcess } from '../broker-process.js';
import { runOpenLoop, type OpenLoopPublisher, type OpenLoopResult, type OpenLoopSystem } from '../open-loop.js';
import { brokerDropped, natsOpenLoop, shardmqOpenLoop } from '../open-loop-systems.js';
import { OPEN_LOOP_COLUMNS, openLoopRow, openLoopSpec } from './open-loop.js';
import { connect } from '../../index.js';
import { roundOrder } from '../pacing.js';
import { freePort, loadPeers, startNatsServer, startPeerServer, type NatsModule, type PeerServer } from '../peers.js';
import { formatRate, summarize } from '../sample-stats.js';
import { LatencyHistogram } from '../../metrics/latency-histogram.js';
import { CLUSTER_INTEREST_MS, LatencyClients, type LatencyRun, type LatencySystemSpec } from '../latency-runner.js';
import { roundsOf, type Workload, type WorkloadContext, type WorkloadResult } from '../workload.js';

const NODES = ['a', 'b', 'c'] as const;
const FANOUT = 16;
const LATENCY_RATE = 10_000;
const TOPIC = '/topic/bench';

const usText = (x: number): string => (!Number.isFinite(x) ? 'n/a' : x >= 1000 ? `${(x / 1000).toFixed(2)} ms` : `${x.toFixed(0)} µs`);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface ClusterDrops {
  forwarded: number;
  received: number;
  dropped: number;
}

/** What the nodes' /v1/cluster says crossed and was dropped, summed. */
async function clusterCounters(urls: readonly string[]): Promise<ClusterDrops> {
  const out: ClusterDrops = { forwarded: 0, received: 0, dropped: 0 };
  for (const url of urls) {
    const s = (await (await fetch(`${url}/v1/cluster`, { signal: AbortSignal.timeout(5000) })).json()) as {
      forwarded: Record<string, number>;
      received: Record<string, number>;
    };
    out.forwarded += s.forwarded.messages;
    out.received += s.received.messages;
    out.dropped += s.forwarded.droppedOverBuffer + s.forwarded.droppedTooLarge + s.forwarded.droppedDisconnected + s.received.dropped;
  }
  return out;
}

/** Three shardmq nodes: the publisher on the first, subscribers over all three. */
function clusterOpenLoop(nodes: readonly BrokerProcess[], nats: PeerServer): OpenLoopSystem {
  const urls = nodes.map((n) => n.url);
  return {
    key: 'cluster',
    name: 'shardmq, 3 nodes + nats-server',
    pids: [...nodes.map((n) => n.pid), nats.pid],
    subscriberSpec: (subscribers) => ({ kind: 'shardmq', url: urls.join(','), subscribers, destination: TOPIC }),
    async publisher(payload, onError): Promise<OpenLoopPublisher> {
      await sleep(CLUSTER_INTEREST_MS);
      const client = await connect(urls[0], { confirms: false, reconnect: false });
      client.on('error', onError);
      return { publish: () => client.publishNoWait(TOPIC, payload), flush: () => client.flush(), close: () => client.close() };
    },
    dropped: async () => {
      let sum = 0;
      for (const url of urls) sum += (await brokerDropped(url)) ?? 0;
      return sum + (await clusterCounters(urls)).dropped;
    },
  };
}

/** Three nats-servers joined by routes: the publisher on the first, subscribers over all three. */
function natsClusterOpenLoop(nats: NatsModule, servers: readonly PeerServer[]): OpenLoopSystem {
  const one = natsOpenLoop(nats, servers[0]);
  return {
    ...one,
    key: 'nats_cluster',
    name: 'NATS core, 3 servers with routes',
    pids: servers.map((s) => s.pid),
    subscriberSpec: (subscribers) => ({ ...one.subscriberSpec(subscribers), url: servers.map((s) => `127.0.0.1:${s.port}`).join(',') }),
    async publisher(payload, onError) {
      await sleep(CLUSTER_INTEREST_MS);
      return one.publisher(payload, onError);
    },
  };
}

/** A NATS cluster of `n` servers on loopback, every one routed to every other. */
async function startNatsCluster(binary: string, n: number): Promise<PeerServer[]> {
  const clientPorts: number[] = [];
  const routePorts: number[] = [];
  for (let i = 0; i < n; i++) {
    clientPorts.push(await freePort());
    routePorts.push(await freePort());
  }
  const routes = routePorts.map((p) => `nats://127.0.0.1:${p}`);
  const servers: PeerServer[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const others = routes.filter((_, j) => j !== i).join(',');
      servers.push(
        await startPeerServer(
          `nats-server ${i + 1}/${n}`,
          binary,
          ['-a', '127.0.0.1', '-p', String(clientPorts[i]), '--cluster_name', 'bench', '--cluster', routes[i], '--routes', others],
          clientPorts[i],
        ),
      );
    }
  } catch (err) {
    for (const s of servers) await s.stop();
    throw err;
  }
  return servers;
}

async function waitForMembers(urls: readonly string[], n: number): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (const url of urls) {
    for (;;) {
      const s = (await (await fetch(`${url}/v1/cluster`)).json()) as { members: unknown[] };
      if (s.members.length === n) break;
      if (Date.now() > deadline) throw new Error(`cluster bench: ${url} sees ${s.members.length} of ${n} nodes after 15 s`);
      await sleep(50);
    }
  }
}

export const cluster: Workload = {
  name: 'cluster',
  description:
    '3 shardmq nodes joined through nats-server on loopback vs one node vs a 3-server NATS cluster (routes): open-loop 1→16 fan-out with subscribers spread over the nodes, and cross-node latency at 10,000 msg/s',
  async run(ctx: WorkloadContext): Promise<WorkloadResult> {
    const runs = roundsOf(ctx);
    const notes: string[] = [];
    const peers = await loadPeers();
    if ('missing' in peers.nats) {
      notes.push(`cluster skipped: ${peers.nats.missing}`);
      return { notes, tables: [], figures: {} };
    }
    const natsBinary = peers.nats.binary;
    let single: BrokerProcess | null = null;
    let hub: PeerServer | null = null;
    const nodes: BrokerProcess[] = [];
    let natsCluster: PeerServer[] = [];
    const openLoop = new Map<string, OpenLoopResult[]>();
    const latency = new Map<string, LatencyRun[]>();
    const crossed: ClusterDrops[] = [];
    const clients: Array<{ key: string; name: string; clients: LatencyClients }> = [];
    try {
      single = await startBrokerProcess([]);
      hub = await startNatsServer(natsBinary);
      for (const name of NODES) nodes.push(await startBrokerProcess(['--cluster', `nats://127.0.0.1:${hub.port}`, '--node-name', name]));
      const urls = nodes.map((n) => n.url);
      await waitForMembers(urls, NODES.length);
      natsCluster = await startNatsCluster(natsBinary, 3);
      const systems: OpenLoopSystem[] = [
        { ...shardmqOpenLoop(single.url, single.pid, false), key: 'single', name: 'shardmq, one node' },
        clusterOpenLoop(nodes, hub),
        natsClusterOpenLoop(peers.nats.client, natsCluster),
      ];
      const latencySpecs: Array<{ key: string; spec: LatencySystemSpec }> = [
        { key: 'single', spec: { kind: 'shardmq', url: single.url, pid: single.pid, traced: false, name: 'shardmq, one node' } },
        {
          key: 'cluster',
          spec: {
            kind: 'shardmq',
            url: urls[0],
            subscribeUrl: urls[1],
            pid: nodes[0].pid,
            traced: false,
            name: 'shardmq, node a → node b',
          },
        },
        {
          key: 'nats_cluster',
          spec: {
            kind: 'nats',
            servers: `127.0.0.1:${natsCluster[0].port}`,
            subscribeServers: `127.0.0.1:${natsCluster[1].port}`,
            pid: natsCluster[0].pid,
            name: 'NATS core, server 1 → server 2',
          },
        },
      ];
      for (const { key, spec } of latencySpecs) clients.push({ key, name: spec.name ?? key, clients: await LatencyClients.start(spec) });

      for (const s of systems) {
        ctx.progress(`cluster: warm-up ${s.name}`);
        await runOpenLoop(s, { ...openLoopSpec(FANOUT, true), messages: 20_000, maxSeconds: 2, drainSeconds: 2 });
      }
      for (const c of clients) await c.clients.run(LATENCY_RATE, 0, ctx.quick ? 1 : 2);
      const spec = { ...openLoopSpec(FANOUT, ctx.quick), messages: ctx.quick ? 100_000 : 500_000, maxSeconds: ctx.quick ? 8 : 20 };
      for (let i = 0; i < runs; i++) {
        for (const s of roundOrder(systems, i)) {
          const before = s.key === 'cluster' ? await clusterCounters(urls) : null;
          const r = await runOpenLoop(s, spec);
          if (before !== null) {
            const after = await clusterCounters(urls);
            crossed.push({
              forwarded: after.forwarded - before.forwarded,
              received: after.received - before.received,
              dropped: after.dropped - before.dropped,
            });
          }
          openLoop.set(s.key, [...(openLoop.get(s.key) ?? []), r]);
          ctx.progress(
            `cluster run ${i + 1}/${runs}: ${s.name} 1→${FANOUT}: delivered ${formatRate(r.deliveredPerSecond)}/s, lost ${r.lost}, server ${r.resources.cores.toFixed(2)} cores`,
          );
        }
        for (const c of roundOrder(clients, i)) {
          const r = await c.clients.run(LATENCY_RATE, 1, ctx.quick ? 2 : 5);
          latency.set(c.key, [...(latency.get(c.key) ?? []), r]);
          ctx.progress(
            `cluster latency run ${i + 1}/${runs}, ${c.name}: p50 ${usText(r.histogram.percentile(50))}, p99 ${usText(r.histogram.percentile(99))}, lost ${r.sent - r.received}`,
          );
        }
      }
    } finally {
      for (const c of clients) await c.clients.stop();
      await single?.stop();
      for (const n of nodes) await n.stop();
      await hub?.stop();
      for (const s of natsCluster) await s.stop();
    }

    const figures: Record<string, number> = {};
    const names: Record<string, string> = {
      single: 'shardmq, one node',
      cluster: 'shardmq, 3 nodes + nats-server',
      nats_cluster: 'NATS core, 3 servers with routes',
    };
    const openRows: (string | number)[][] = [];
    for (const key of ['single', 'cluster', 'nats_cluster']) {
      const rs = openLoop.get(key) ?? [];
      if (rs.length === 0) continue;
      openRows.push(openLoopRow(`${names[key]} 1→${FANOUT}`, rs));
      figures[`cluster_${key}_1to16_delivered_msgs_per_s`] = summarize(rs.map((r) => r.deliveredPerSecond)).median;
      figures[`cluster_${key}_1to16_lost`] = summarize(rs.map((r) => r.lost)).median;
      figures[`cluster_${key}_1to16_lost_max`] = Math.max(...rs.map((r) => r.lost));
      figures[`cluster_${key}_1to16_server_cores`] = summarize(rs.map((r) => r.resources.cores)).median;
    }
    const perRound = (a: string, b: string, pick: (r: OpenLoopResult) => number): number => {
      const x = openLoop.get(a) ?? [];
      const y = openLoop.get(b) ?? [];
      return summarize(x.map((r, i) => pick(r) / pick(y[i] ?? r)).slice(0, Math.min(x.length, y.length))).median;
    };
    const ratioNotes: string[] = [];
    if (openLoop.has('cluster') && openLoop.has('single')) {
      figures.cluster_vs_single_1to16_delivered_ratio = perRound('cluster', 'single', (r) => r.deliveredPerSecond);
      ratioNotes.push(
        `3 shardmq nodes ÷ one node, delivered msg/s 1→16: ${figures.cluster_vs_single_1to16_delivered_ratio.toFixed(2)}× (median of per-round ratios)`,
      );
    }
    if (openLoop.has('cluster') && openLoop.has('nats_cluster')) {
      figures.cluster_vs_nats_cluster_1to16_delivered_ratio = perRound('cluster', 'nats_cluster', (r) => r.deliveredPerSecond);
      ratioNotes.push(
        `3 shardmq nodes ÷ a 3-server NATS cluster, delivered msg/s 1→16: ${figures.cluster_vs_nats_cluster_1to16_delivered_ratio.toFixed(2)}×`,
      );
    }
    if (crossed.length > 0) {
      const f = summarize(crossed.map((c) => c.forwarded)).median;
      const rcv = summarize(crossed.map((c) => c.received)).median;
      const dropped = Math.max(...crossed.map((c) => c.dropped));
      figures.cluster_forwarded_per_run = f;
      figures.cluster_received_per_run = rcv;
      figures.cluster_dropped_max = dropped;
      ratioNotes.push(
        `per cluster run (median): ${Math.round(f).toLocaleString('en-US')} messages forwarded by node a, ${Math.round(rcv).toLocaleString('en-US')} received by nodes b and c together (each message once per node with a subscriber), cluster drops (worst run) ${dropped}`,
      );
    }
    const latRows: (string | number)[][] = [];
    for (const c of clients) {
      const rs = latency.get(c.key) ?? [];
      if (rs.length === 0) continue;
      const merged = rs.reduce((m, r) => m.merge(r.histogram), new LatencyHistogram());
      const lost = rs.reduce((s, r) => s + (r.sent - r.received), 0);
      latRows.push([
        c.name,
        formatRate(summarize(rs.map((r) => r.received / r.seconds)).median),
        merged.count.toLocaleString('en-US'),
        ...[50, 90, 99, 99.9].map((p) => usText(merged.percentile(p))),
        usText(merged.max),
        lost === 0 && rs.every((r) => !r.saturated) ? '0' : `${lost}${rs.some((r) => r.saturated) ? ' (saturated)' : ''}`,
      ]);
      figures[`cluster_latency_${c.key}_p50_us`] = merged.percentile(50);
      figures[`cluster_latency_${c.key}_p99_us`] = merged.percentile(99);
      figures[`cluster_latency_${c.key}_p999_us`] = merged.percentile(99.9);
    }
    const latNotes: string[] = [];
    const p99Ratio = (a: string, b: string): number => {
      const x = latency.get(a) ?? [];
      const y = latency.get(b) ?? [];
      return summarize(x.map((r, i) => r.histogram.percentile(99) / (y[i]?.histogram.percentile(99) ?? NaN)).filter(Number.isFinite))
        .median;
    };
    if (latency.has('cluster') && latency.has('nats_cluster')) {
      figures.cluster_latency_p99_vs_nats_cluster_ratio = p99Ratio('cluster', 'nats_cluster');
      latNotes.push(
        `p99, shardmq across nodes ÷ NATS across routes: ${figures.cluster_latency_p99_vs_nats_cluster_ratio.toFixed(2)}× (median of per-round ratios)`,
      );
    }
    if (latency.has('cluster') && latency.has('single')) {
      figures.cluster_latency_p99_vs_single_ratio = p99Ratio('cluster', 'single');
      latNotes.push(`p99, shardmq across nodes ÷ shardmq on one node: ${figures.cluster_latency_p99_vs_single_ratio.toFixed(2)}×`);
    }
    return {
      notes,
      tables: [
        {
          title: `Cluster, open loop: 1 publisher → ${FANOUT} subscribers spread over the nodes, 128-byte messages on one topic, ${runs} interleaved run(s), medians`,
          columns: OPEN_LOOP_COLUMNS,
          rows: openRows,
          notes: [
            ...ratioNotes,
            'shardmq, 3 nodes: three broker processes with default flags (one shard each on this machine) joined through one nats-server, all on loopback; the publisher on node a, subscriber i on node i mod 3 (so 10 of the 16 subscribers are on another node); each message crosses NATS once per node with a subscriber (one batch per subject per event-loop turn)',
            'NATS cluster: three nats-servers joined by routes (no JetStream), the publisher on server 1, subscriber i on server i mod 3; the same `nats` client as the NATS rows elsewhere',
            'server CPU counts every server process of the system (three brokers and nats-server; three nats-servers). On 2 cores, 3 broker processes (6 threads) and NATS share two cores with the clients: the cluster shows what crossing costs, not what three machines would do',
            "lost = published × 16 − delivered at the subscribers; broker dropped (cluster) = the shards' dropped counters plus the cluster's drop counters of GET /v1/cluster over the run",
          ],
        },
        {
          title: `Cluster, latency: publish → deliver at ${LATENCY_RATE.toLocaleString('en-US')} msg/s, 1→1, the subscriber on another node (another server), ${runs} run(s) merged`,
          columns: ['system', 'achieved msg/s', 'samples', 'p50', 'p90', 'p99', 'p99.9', 'max', 'lost'],
          rows: latRows,
          notes: [
            ...latNotes,
            'shardmq one node: publisher and subscriber on the same broker; node a → node b: the publisher on a, the subscriber on b, every message through nats-server; NATS: publisher on server 1, subscriber on server 2 (one route hop). Both clients in one process (one clock), long-lived for all rounds, one discarded warm-up run each',
          ],
        },
      ],
      figures,
    };
  },
};
