import { COUNTER_NAMES, type CounterName } from './shard-counters.js';

interface ShardView {
  index: number;
  alive: boolean;
  counters: Record<CounterName, number>;
  ring: { inbound: { usedBytes: number; capacityBytes: number }; outbound: { usedBytes: number; capacityBytes: number } };
  /** Publishes the main thread holds for the shard (ring full or flow control). */
  held: { bytes: number; flowHeld: boolean; flowHolds: number };
}

interface FrontView {
  websocket: number;
  subscriptions: number;
  slowConnections: number;
  slowConsumerDropped: number;
  droppedSubscriptions: ReadonlyArray<{ connection: number; subscription: string | number; destination: string; dropped: number }>;
}

/** A Prometheus label value: backslash, double quote and newline escaped. */
const label = (v: string | number): string => String(v).replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

/** Counters that only grow are Prometheus counters; the rest are gauges. */
const GAUGES = new Set<CounterName>(['ready', 'unacked', 'queues', 'consumers', 'nextTagSeq', 'durable', 'gcMaxPauseMs']);

const snake = (s: string): string => s.replace(/[A-Z]/g, (c) => '_' + c.toLowerCase());

/** Renders the per-shard counters in the Prometheus text exposition format (v0.0.4). */
export function renderPrometheus(shards: readonly ShardView[], front: FrontView): string {
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
  lines.push('# TYPE shardmq_held_publish_bytes gauge');
  for (const s of shards) lines.push(`shardmq_held_publish_bytes{shard="${s.index}"} ${s.held.bytes}`);
  lines.push('# TYPE shardmq_flow_control_active gauge');
  for (const s of shards) lines.push(`shardmq_flow_control_active{shard="${s.index}"} ${s.held.flowHeld ? 1 : 0}`);
  lines.push('# TYPE shardmq_flow_control_holds_total counter');
  for (const s of shards) lines.push(`shardmq_flow_control_holds_total{shard="${s.index}"} ${s.held.flowHolds}`);
  lines.push('# TYPE shardmq_slow_connections gauge', `shardmq_slow_connections ${front.slowConnections}`);
  lines.push('# TYPE shardmq_slow_consumer_dropped_total counter', `shardmq_slow_consumer_dropped_total ${front.slowConsumerDropped}`);
  lines.push('# TYPE shardmq_subscription_dropped_total counter');
  for (const d of front.droppedSubscriptions) {
    lines.push(
      `shardmq_subscription_dropped_total{connection="${d.connection}",subscription="${label(d.subscription)}",destination="${label(d.destination)}"} ${d.dropped}`,
    );
  }
  return lines.join('\n') + '\n';
}
