import { COUNTER_NAMES, type CounterName } from './shard-counters.js';

interface ShardView {
  index: number;
  alive: boolean;
  counters: Record<CounterName, number>;
  ring: { inbound: { usedBytes: number; capacityBytes: number }; outbound: { usedBytes: number; capacityBytes: number } };
}

/** Counters that only grow are Prometheus counters; the rest are gauges. */
const GAUGES = new Set<CounterName>(['ready', 'unacked', 'queues', 'consumers', 'nextTagSeq', 'durable']);

const snake = (s: string): string => s.replace(/[A-Z]/g, (c) => '_' + c.toLowerCase());

/** Renders the per-shard counters in the Prometheus text exposition format (v0.0.4). */
export function renderPrometheus(shards: readonly ShardView[], front: { websocket: number; subscriptions: number }): string {
  const lines: string[] = [];
  for (const name of COUNTER_NAMES) {
    if (name === 'nextTagSeq') continue;
    const gauge = GAUGES.has(name);
    const metric = `shardmq_shard_${snake(name)}${gauge ? '' : '_total'}`;
    lines.push(`# TYPE ${metric} ${gauge ? 'gauge' : 'counter'}`);
    for (const s of shards) lines.push(`${metric}{shard="${s.index}"} ${s.counters[name]}`);
  }
  lines.push('# TYPE shardmq_shard_up gauge');
  for (const s of shards) lines.push(`shardmq_shard_up{shard="${s.index}"} ${s.alive ? 1 : 0}`);
  lines.push('# TYPE shardmq_ring_used_bytes gauge');
  for (const s of shards) {
    lines.push(`shardmq_ring_used_bytes{shard="${s.index}",direction="inbound"} ${s.ring.inbound.usedBytes}`);
    lines.push(`shardmq_ring_used_bytes{shard="${s.index}",direction="outbound"} ${s.ring.outbound.usedBytes}`);
  }
  lines.push('# TYPE shardmq_ring_capacity_bytes gauge');
  for (const s of shards) {
    lines.push(`shardmq_ring_capacity_bytes{shard="${s.index}",direction="inbound"} ${s.ring.inbound.capacityBytes}`);
    lines.push(`shardmq_ring_capacity_bytes{shard="${s.index}",direction="outbound"} ${s.ring.outbound.capacityBytes}`);
  }
  lines.push('# TYPE shardmq_websocket_connections gauge', `shardmq_websocket_connections ${front.websocket}`);
  lines.push('# TYPE shardmq_subscriptions gauge', `shardmq_subscriptions ${front.subscriptions}`);
  return lines.join('\n') + '\n';
}
