/**
 * GET /metrics: the Prometheus text exposition (v0.0.4), every family with `# HELP` and `# TYPE`.
 * The `shardmq_global_*` and `shardmq_queue_*` families take the names and meanings of RabbitMQ's
 * Prometheus plugin (`rabbitmq_global_messages_received_total`, `rabbitmq_queue_messages_ready`…)
 * where they mean the same, so Grafana panels made for RabbitMQ port by a change of prefix.
 */
import { localName, vhostOf } from '../protocol/vhost-name.js';
import { COUNTER_NAMES, FSYNC_BUCKETS, type CounterName } from './shard-counters.js';

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
  /** Of `websocket`, the connections that spoke the binary protocol. */
  binaryConnections?: number;
  /** AMQP 0-9-1 connections, their open channels and consumers. */
  amqp?: { connections: number; channels: number; consumers: number };
  subscriptions: number;
  slowConnections: number;
  slowConsumerDropped: number;
  /** Of slowConsumerDropped, what shared streams' slow members lost (not in the shards' `dropped`). */
  streamDropped?: number;
  droppedSubscriptions: ReadonlyArray<{ connection: number; subscription: string | number; destination: string; dropped: number }>;
}

/** Counted on the main thread (control/publish-path.ts). */
export interface GlobalView {
  received: number;
  confirmed: number;
  /** Publishes that reached no shard (the shards count theirs in `unroutable`). */
  unroutable: number;
}

export interface VhostView {
  name: string;
  connections: number;
  queues: number;
}

export interface QueueView {
  name: string;
  shard: number;
  ready: number;
  unacked: number;
  consumers: number;
}

const NEEDS_ESCAPE = /[\\"\n]/;
/** A Prometheus label value: backslash, double quote and newline escaped. */
const label = (v: string | number): string => {
  const s = String(v);
  // Most names need no escape: one test instead of three replaces (1,000 queues × 3 labels × 3 series).
  return NEEDS_ESCAPE.test(s) ? s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n') : s;
};
/** HELP text: backslash and newline escaped. */
const helpText = (v: string): string => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');

/** Counters that only grow are Prometheus counters; the rest are gauges. */
const GAUGES = new Set<CounterName>([
  'ready',
  'unacked',
  'queues',
  'consumers',
  'nextTagSeq',
  'durable',
  'gcMaxPauseMs',
  'eventLoopUtilization',
  'logBytes',
]);

/** Slots rendered as the fsync histogram, not one family each; and the internal tag sequence, not at all. */
const NOT_PLAIN = new Set<CounterName>([
  'nextTagSeq',
  'fsyncs',
  'fsyncSeconds',
  ...(COUNTER_NAMES.filter((n) => n.startsWith('fsyncLe')) as CounterName[]),
]);

const SHARD_HELP: Readonly<Partial<Record<CounterName, string>>> = {
  published: 'Messages the shard took from the main thread (a message routed to queues on two shards counts on each)',
  delivered: 'Deliveries the shard wrote towards subscribers, redeliveries included',
  acked: 'Client acks that settled a delivery',
  redelivered: 'Deliveries that were requeued and sent again',
  dropped: "Messages a queue dropped: a slow subscriber's full topic buffer, drop-head, a nack without requeue",
  unroutable: 'Messages that reached the shard and matched no queue there',
  ready: 'Messages waiting in queues, not yet delivered',
  unacked: 'Deliveries not yet acked',
  queues: 'Queues the shard owns',
  consumers: 'Consumers on the shard',
  nextTagSeq: '',
  restarts: 'Times the supervisor restarted the shard',
  lost: 'Messages lost: held by a shard that died, or in log records recovery had to skip as damaged',
  inboundRecords: 'Records drained from the inbound ring',
  outboundFull: 'Times the shard found its outbound ring full and waited',
  durable: 'Persistent messages held that are on disk',
  corruptRecords: 'Damaged log records recovery skipped',
  gcPauses: 'Garbage-collection pauses of the shard thread',
  gcPauseMs: 'Seconds the shard thread spent in garbage-collection pauses',
  gcMaxPauseMs: 'The longest garbage-collection pause of the shard thread, seconds',
  parks: 'Times the shard loop went to sleep on its empty inbound ring',
  eventLoopUtilization: "Share of the last second the shard thread's event loop was busy (0 to 1)",
  logBytes: "Bytes of the shard's log on disk (0 without --data-dir)",
};

const snake = (s: string): string => s.replace(/[A-Z]/g, (c) => '_' + c.toLowerCase());

/** Counters kept in milliseconds, exported in seconds under a unit name (Prometheus's base units; promtool refuses `_ms`). */
const IN_SECONDS: Partial<Record<CounterName, string>> = { gcPauseMs: 'gc_pause_seconds', gcMaxPauseMs: 'gc_max_pause_seconds' };

/** Lines of an exposition: each family opened once with its HELP and TYPE, then its samples. */
class Lines {
  readonly out: string[] = [];

  family(name: string, type: 'counter' | 'gauge', help: string): this {
    this.out.push(`# HELP ${name} ${helpText(help)}`, `# TYPE ${name} ${type}`);
    return this;
  }

  sample(name: string, labels: Readonly<Record<string, string | number>> | null, value: number): this {
    const pairs =
      labels === null
        ? ''
        : Object.entries(labels)
            .map(([k, v]) => `${k}="${label(v)}"`)
            .join(',');
    this.out.push(`${name}${pairs === '' ? '' : `{${pairs}}`} ${value}`);
    return this;
  }
}

const sum = (shards: readonly ShardView[], name: CounterName): number => shards.reduce((n, s) => n + s.counters[name], 0);

/**
 * Renders the exposition. `global` adds the RabbitMQ-aligned `shardmq_global_*` families,
 * `queues` the per-queue series (at most --stats-max-queues per shard; none when it is 0).
 */
export function renderPrometheus(
  shards: readonly ShardView[],
  front: FrontView,
  global?: GlobalView,
  queues?: readonly QueueView[],
  vhosts?: readonly VhostView[],
): string {
  return [...prometheusParts(shards, front, global, queues, vhosts)].join('');
}

/** Queues whose series one part of the exposition renders. */
const QUEUE_PART = 250;

/**
 * The exposition in parts, each a whole number of lines: the broker's series first, then the
 * per-queue series a slice of queues at a time, so the route can let deliveries run between parts
 * (at 1,000 queues per shard the queue series were most of a ~6 ms turn of the main thread).
 */
export function* prometheusParts(
  shards: readonly ShardView[],
  front: FrontView,
  global?: GlobalView,
  queues?: readonly QueueView[],
  vhosts?: readonly VhostView[],
): Generator<string> {
  const l = new Lines();
  if (vhosts !== undefined) {
    l.family('shardmq_vhost_connections', 'gauge', 'Open connections (WebSocket, AMQP) by vhost');
    for (const v of vhosts) l.sample('shardmq_vhost_connections', { vhost: v.name }, v.connections);
    l.family('shardmq_vhost_queues', 'gauge', 'Queues by vhost');
    for (const v of vhosts) l.sample('shardmq_vhost_queues', { vhost: v.name }, v.queues);
  }
  if (global !== undefined) {
    const g = 'shardmq_global_messages';
    l.family(`${g}_received_total`, 'counter', 'Messages received from publishers').sample(`${g}_received_total`, null, global.received);
    l.family(`${g}_routed_total`, 'counter', 'Messages routed to at least one queue, counted on each shard that had one').sample(
      `${g}_routed_total`,
      null,
      sum(shards, 'published') - sum(shards, 'unroutable'),
    );
    l.family(`${g}_delivered_total`, 'counter', 'Messages delivered to consumers, redeliveries included').sample(
      `${g}_delivered_total`,
      null,
      sum(shards, 'delivered'),
    );
    l.family(`${g}_acknowledged_total`, 'counter', 'Messages acknowledged by consumers').sample(
      `${g}_acknowledged_total`,
      null,
      sum(shards, 'acked'),
    );
    l.family(`${g}_confirmed_total`, 'counter', 'Messages confirmed to publishers (binary confirms, HTTP 200)').sample(
      `${g}_confirmed_total`,
      null,
      global.confirmed,
    );
    l.family(`${g}_redelivered_total`, 'counter', 'Messages delivered again after a requeue').sample(
      `${g}_redelivered_total`,
      null,
      sum(shards, 'redelivered'),
    );
    l.family(`${g}_dropped_total`, 'counter', 'Messages dropped for a slow subscriber or a queue limit, by where')
      .sample(`${g}_dropped_total`, { reason: 'queue' }, sum(shards, 'dropped'))
      .sample(`${g}_dropped_total`, { reason: 'stream' }, front.streamDropped ?? 0);
    l.family(`${g}_unroutable_dropped_total`, 'counter', 'Messages that matched no queue and were dropped').sample(
      `${g}_unroutable_dropped_total`,
      null,
      global.unroutable + sum(shards, 'unroutable'),
    );
  }
  for (const name of COUNTER_NAMES) {
    if (NOT_PLAIN.has(name)) continue;
    const gauge = GAUGES.has(name);
    const seconds = IN_SECONDS[name];
    const metric = `shardmq_shard_${seconds ?? snake(name)}${gauge ? '' : '_total'}`;
    l.family(metric, gauge ? 'gauge' : 'counter', SHARD_HELP[name] ?? name);
    for (const s of shards) l.sample(metric, { shard: s.index }, seconds === undefined ? s.counters[name] : s.counters[name] / 1000);
  }
  const fsync = 'shardmq_shard_fsync_duration_seconds';
  l.out.push(`# HELP ${fsync} How long the shard's log fsyncs took (with --data-dir)`, `# TYPE ${fsync} histogram`);
  for (const s of shards) {
    let cumulative = 0;
    for (const [bound, name] of FSYNC_BUCKETS) {
      cumulative += s.counters[name];
      l.sample(`${fsync}_bucket`, { shard: s.index, le: bound }, cumulative);
    }
    l.sample(`${fsync}_bucket`, { shard: s.index, le: '+Inf' }, s.counters.fsyncs);
    l.sample(`${fsync}_sum`, { shard: s.index }, s.counters.fsyncSeconds);
    l.sample(`${fsync}_count`, { shard: s.index }, s.counters.fsyncs);
  }
  l.family('shardmq_shard_up', 'gauge', '1 while the shard thread runs, 0 while it is down');
  for (const s of shards) l.sample('shardmq_shard_up', { shard: s.index }, s.alive ? 1 : 0);
  l.family('shardmq_ring_used_bytes', 'gauge', 'Bytes in a shard ring not yet read');
  for (const s of shards) {
    l.sample('shardmq_ring_used_bytes', { shard: s.index, direction: 'inbound' }, s.ring.inbound.usedBytes);
    l.sample('shardmq_ring_used_bytes', { shard: s.index, direction: 'outbound' }, s.ring.outbound.usedBytes);
  }
  l.family('shardmq_ring_capacity_bytes', 'gauge', 'Capacity of a shard ring');
  for (const s of shards) {
    l.sample('shardmq_ring_capacity_bytes', { shard: s.index, direction: 'inbound' }, s.ring.inbound.capacityBytes);
    l.sample('shardmq_ring_capacity_bytes', { shard: s.index, direction: 'outbound' }, s.ring.outbound.capacityBytes);
  }
  l.family('shardmq_ring_fill_ratio', 'gauge', 'Fraction of a shard ring in use (0 to 1)');
  for (const s of shards) {
    l.sample('shardmq_ring_fill_ratio', { shard: s.index, direction: 'inbound' }, s.ring.inbound.usedBytes / s.ring.inbound.capacityBytes);
    l.sample(
      'shardmq_ring_fill_ratio',
      { shard: s.index, direction: 'outbound' },
      s.ring.outbound.usedBytes / s.ring.outbound.capacityBytes,
    );
  }
  l.family('shardmq_websocket_connections', 'gauge', 'Open WebSocket connections').sample(
    'shardmq_websocket_connections',
    null,
    front.websocket,
  );
  if (front.binaryConnections !== undefined) {
    l.family('shardmq_connections', 'gauge', 'Open connections by protocol (ws_json: JSON, or nothing sent yet)')
      .sample('shardmq_connections', { protocol: 'ws_binary' }, front.binaryConnections)
      .sample('shardmq_connections', { protocol: 'ws_json' }, front.websocket - front.binaryConnections);
    if (front.amqp !== undefined) l.sample('shardmq_connections', { protocol: 'amqp' }, front.amqp.connections);
  }
  if (front.amqp !== undefined) {
    l.family('shardmq_amqp_channels', 'gauge', 'Open AMQP channels').sample('shardmq_amqp_channels', null, front.amqp.channels);
    l.family('shardmq_amqp_consumers', 'gauge', 'AMQP consumers (basic.consume)').sample(
      'shardmq_amqp_consumers',
      null,
      front.amqp.consumers,
    );
  }
  l.family('shardmq_subscriptions', 'gauge', 'Subscriptions of open connections').sample(
    'shardmq_subscriptions',
    null,
    front.subscriptions,
  );
  l.family('shardmq_held_publish_bytes', 'gauge', 'Publishes the main thread holds for a shard (its ring full, or its flow control)');
  for (const s of shards) l.sample('shardmq_held_publish_bytes', { shard: s.index }, s.held.bytes);
  l.family('shardmq_flow_control_active', 'gauge', '1 while a shard asks for publishes to be held');
  for (const s of shards) l.sample('shardmq_flow_control_active', { shard: s.index }, s.held.flowHeld ? 1 : 0);
  l.family('shardmq_flow_control_holds_total', 'counter', 'Times a shard asked for publishes to be held');
  for (const s of shards) l.sample('shardmq_flow_control_holds_total', { shard: s.index }, s.held.flowHolds);
  l.family('shardmq_slow_connections', 'gauge', 'Connections found slow (socket above high water too long)').sample(
    'shardmq_slow_connections',
    null,
    front.slowConnections,
  );
  l.family('shardmq_slow_consumer_dropped_total', 'counter', 'Messages slow subscribers lost, as they were told').sample(
    'shardmq_slow_consumer_dropped_total',
    null,
    front.slowConsumerDropped,
  );
  l.family('shardmq_subscription_dropped_total', 'counter', 'Messages one slow subscription lost, as it was told');
  for (const d of front.droppedSubscriptions) {
    l.sample(
      'shardmq_subscription_dropped_total',
      { connection: d.connection, subscription: d.subscription, destination: d.destination },
      d.dropped,
    );
  }
  yield l.out.join('\n') + '\n';
  if (queues === undefined) return;
  // Each queue's label set, made by the first series for all three.
  const labels: string[] = [];
  const labelsOf = (k: number, q: QueueView): string =>
    (labels[k] ??= `{vhost="${label(vhostOf(q.name))}",queue="${label(localName(q.name))}",shard="${q.shard}"}`);
  const series: Array<[string, string, (q: QueueView) => number]> = [
    ['shardmq_queue_messages_ready', 'Messages ready in a queue', (q) => q.ready],
    ['shardmq_queue_messages_unacked', 'Deliveries of a queue not yet acked', (q) => q.unacked],
    ['shardmq_queue_consumers', 'Consumers of a queue', (q) => q.consumers],
  ];
  for (const [name, help, value] of series) {
    yield `# HELP ${name} ${helpText(help)}\n# TYPE ${name} gauge\n`;
    for (let i = 0; i < queues.length; i += QUEUE_PART) {
      let part = '';
      const end = Math.min(queues.length, i + QUEUE_PART);
      for (let k = i; k < end; k++) part += `${name}${labelsOf(k, queues[k])} ${value(queues[k])}\n`;
      yield part;
    }
  }
}
