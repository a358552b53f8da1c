/**
 * Prometheus text exposition (v0.0.4) of the per-shard counters, and the shared counter storage it
 * reads from (shard-counters.ts). The output is checked with a small parser of the text format:
 * every line is a `# HELP` line, a `# TYPE` line or a `name{labels} value` sample, each family's HELP
 * then TYPE come first and once, its samples are contiguous, counters end in `_total`, and every value is the counter given.
 */
import { describe, expect, it } from 'vitest';
import { prometheusParts, renderPrometheus } from '../../src/metrics/prometheus.js';
import {
  COUNTER_NAMES,
  COUNTER_SLOTS,
  CounterSlot,
  countFsync,
  createCounterStorage,
  readCounters,
  type CounterName,
} from '../../src/metrics/shard-counters.js';

type ShardView = Parameters<typeof renderPrometheus>[0][number];

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
  line: string;
}

interface Exposition {
  types: Map<string, string>;
  helps: Map<string, string>;
  samples: Sample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPE_LINE = /^# TYPE ([^ ]+) (counter|gauge|histogram|summary|untyped)$/;
const HELP_LINE = /^# HELP ([^ ]+) (.+)$/;
// name, optional {labels}, one space, a Go-ParseFloat-style value (incl. NaN, +Inf, -Inf, exponents).
const SAMPLE_LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? ((?:[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)|NaN|[+-]?Inf)$/;
const LABEL_PAIR = /^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"$/;

/**
 * Parses the text format strictly enough for our output: fails the test on any line that is not a
 * TYPE line or a sample, on a sample before its TYPE, on a repeated TYPE, and on a family whose
 * samples are not contiguous.
 */
function parseExposition(text: string): Exposition {
  expect(text.endsWith('\n'), 'exposition ends with a newline').toBe(true);
  const types = new Map<string, string>();
  const helps = new Map<string, string>();
  const samples: Sample[] = [];
  const closed = new Set<string>();
  let current: string | null = null;
  for (const line of text.slice(0, -1).split('\n')) {
    const help = HELP_LINE.exec(line);
    if (help !== null) {
      expect(helps.has(help[1]), `HELP ${help[1]} given twice`).toBe(false);
      helps.set(help[1], help[2]);
      continue;
    }
    const type = TYPE_LINE.exec(line);
    if (type !== null) {
      const [, name, kind] = type;
      expect(name, line).toMatch(METRIC_NAME);
      expect(helps.get(name), `HELP before TYPE ${name}`).toBeTruthy();
      expect(types.has(name), `TYPE ${name} given twice`).toBe(false);
      types.set(name, kind);
      if (current !== null) closed.add(current);
      current = name;
      continue;
    }
    const sample = SAMPLE_LINE.exec(line);
    expect(sample, `not a TYPE line or a sample: ${JSON.stringify(line)}`).not.toBeNull();
    const [, name, labelText, valueText] = sample as RegExpExecArray;
    const own = types.has(name) ? name : name.replace(/_(bucket|sum|count)$/, '');
    expect(types.has(own), `sample before its TYPE line: ${line}`).toBe(true);
    expect(closed.has(own), `samples of ${own} are not contiguous`).toBe(false);
    // A histogram's samples are its name with _bucket, _sum or _count.
    const family = types.get(current ?? '') === 'histogram' ? name.replace(/_(bucket|sum|count)$/, '') : name;
    expect(family, `sample under the TYPE of ${current}: ${line}`).toBe(current);
    const labels: Record<string, string> = {};
    if (labelText !== undefined) {
      for (const pair of labelText.split(',')) {
        const m = LABEL_PAIR.exec(pair);
        expect(m, `bad label pair ${JSON.stringify(pair)} in ${line}`).not.toBeNull();
        const [, key, value] = m as RegExpExecArray;
        expect(key).toMatch(LABEL_NAME);
        expect(key in labels, `label ${key} repeated in ${line}`).toBe(false);
        labels[key] = value;
      }
    }
    const value =
      valueText === 'NaN' ? NaN : valueText.endsWith('Inf') ? (valueText.startsWith('-') ? -Infinity : Infinity) : Number(valueText);
    samples.push({ name, labels, value, line });
  }
  return { types, helps, samples };
}

function find(exposition: Exposition, name: string, labels: Record<string, string>): Sample[] {
  return exposition.samples.filter((s) => s.name === name && JSON.stringify(s.labels) === JSON.stringify(labels));
}

/** The one sample with this name and exactly these labels. */
function metricValue(exposition: Exposition, name: string, labels: Record<string, string> = {}): number {
  const found = find(exposition, name, labels);
  expect(found, `${name}${JSON.stringify(labels)}`).toHaveLength(1);
  return found[0].value;
}

/** Counters from real shared storage, each slot a distinct value derived from the shard and slot. */
function countersFor(shard: number): Record<CounterName, number> {
  const storage = createCounterStorage();
  const slots = new Float64Array(storage);
  for (let i = 0; i < COUNTER_SLOTS; i++) slots[i] = 1000 * (shard + 1) + i;
  return readCounters(slots);
}

/** The front's figures, with one subscription that lost messages (its labels need escaping). */
const FRONT = {
  websocket: 0,
  subscriptions: 0,
  slowConnections: 1,
  slowConsumerDropped: 42,
  droppedSubscriptions: [{ connection: 3, subscription: 'a"b\\c', destination: '/topic/x.y', dropped: 42 }],
};

function shardView(index: number, alive = true): ShardView {
  return {
    index,
    alive,
    held: { bytes: 10 * index, flowHeld: index === 1, flowHolds: index },
    counters: countersFor(index),
    ring: {
      inbound: { usedBytes: 100 + index, capacityBytes: 4_194_304 },
      outbound: { usedBytes: 200 + index, capacityBytes: 2_097_152 },
    },
  };
}

/** Expected exposition name and type of each counter: written out so renames show up here. */
/** Counter → [metric, type, the divisor from the kept unit (ms) to the exported one (s)]. */
const EXPECTED_METRICS: Record<
  Exclude<CounterName, 'nextTagSeq' | 'fsyncs' | 'fsyncSeconds' | `fsyncLe${string}`>,
  [string, 'counter' | 'gauge', number?]
> = {
  published: ['shardmq_shard_published_total', 'counter'],
  delivered: ['shardmq_shard_delivered_total', 'counter'],
  acked: ['shardmq_shard_acked_total', 'counter'],
  redelivered: ['shardmq_shard_redelivered_total', 'counter'],
  dropped: ['shardmq_shard_dropped_total', 'counter'],
  unroutable: ['shardmq_shard_unroutable_total', 'counter'],
  ready: ['shardmq_shard_ready', 'gauge'],
  unacked: ['shardmq_shard_unacked', 'gauge'],
  queues: ['shardmq_shard_queues', 'gauge'],
  consumers: ['shardmq_shard_consumers', 'gauge'],
  restarts: ['shardmq_shard_restarts_total', 'counter'],
  lost: ['shardmq_shard_lost_total', 'counter'],
  inboundRecords: ['shardmq_shard_inbound_records_total', 'counter'],
  outboundFull: ['shardmq_shard_outbound_full_total', 'counter'],
  durable: ['shardmq_shard_durable', 'gauge'],
  corruptRecords: ['shardmq_shard_corrupt_records_total', 'counter'],
  gcPauses: ['shardmq_shard_gc_pauses_total', 'counter'],
  gcPauseMs: ['shardmq_shard_gc_pause_seconds_total', 'counter', 1000],
  gcMaxPauseMs: ['shardmq_shard_gc_max_pause_seconds', 'gauge', 1000],
  parks: ['shardmq_shard_parks_total', 'counter'],
  eventLoopUtilization: ['shardmq_shard_event_loop_utilization', 'gauge'],
  logBytes: ['shardmq_shard_log_bytes', 'gauge'],
};

describe('shard-counters', () => {
  it('counters - every slot name maps to a distinct slot below COUNTER_SLOTS', () => {
    const slots = COUNTER_NAMES.map((n) => CounterSlot[n]);
    expect(new Set(slots).size).toBe(COUNTER_NAMES.length);
    for (const s of slots) {
      expect(Number.isInteger(s)).toBe(true);
      expect(s).toBeGreaterThanOrEqual(0);
      expect(s).toBeLessThan(COUNTER_SLOTS);
    }
  });

  it('counters - createCounterStorage is a zeroed SharedArrayBuffer of COUNTER_SLOTS float64s', () => {
    const storage = createCounterStorage();
    expect(storage).toBeInstanceOf(SharedArrayBuffer);
    expect(storage.byteLength).toBe(COUNTER_SLOTS * 8);
    expect([...new Float64Array(storage)]).toEqual(new Array(COUNTER_SLOTS).fill(0));
  });

  it('counters - readCounters reads each named slot, including values beyond 2^32', () => {
    const slots = new Float64Array(createCounterStorage());
    slots[CounterSlot.published] = 2 ** 40 + 3;
    slots[CounterSlot.outboundFull] = 7;
    slots[CounterSlot.nextTagSeq] = 2 ** 52;
    const counters = readCounters(slots);
    expect(Object.keys(counters).sort()).toEqual([...COUNTER_NAMES].sort());
    expect(counters.published).toBe(2 ** 40 + 3);
    expect(counters.outboundFull).toBe(7);
    expect(counters.nextTagSeq).toBe(2 ** 52);
    expect(counters.acked).toBe(0);
  });

  it('counters - readCounters sees a write made through another view of the same storage', () => {
    const storage = createCounterStorage();
    const writer = new Float64Array(storage);
    const reader = new Float64Array(storage);
    writer[CounterSlot.delivered] = 12;
    expect(readCounters(reader).delivered).toBe(12);
  });
});

describe('renderPrometheus', () => {
  it('prometheus - every line parses as the text format, TYPE first, families contiguous', () => {
    const exposition = parseExposition(
      renderPrometheus([shardView(0), shardView(1), shardView(2, false)], { ...FRONT, websocket: 5, subscriptions: 9 }),
    );
    expect(exposition.samples.length).toBeGreaterThan(0);
    // No two samples share a name and label set.
    const keys = exposition.samples.map((s) => s.name + JSON.stringify(s.labels));
    expect(new Set(keys).size).toBe(keys.length);
  });

  it('prometheus - every counter ends in _total and no gauge does', () => {
    const { types } = parseExposition(renderPrometheus([shardView(0)], FRONT));
    expect(types.size).toBeGreaterThan(0);
    for (const [name, type] of types) {
      if (type === 'counter') expect(name, name).toMatch(/_total$/);
      else expect(name, name).not.toMatch(/_total$/);
    }
  });

  it('prometheus - each shard counter is exported under its expected name and type', () => {
    const { types } = parseExposition(renderPrometheus([shardView(0)], FRONT));
    for (const [, [metric, type]] of Object.entries(EXPECTED_METRICS)) expect(types.get(metric), metric).toBe(type);
  });

  it('prometheus - every shard counter value is the one given, per shard label', () => {
    const shards = [shardView(0), shardView(1), shardView(7)];
    const exposition = parseExposition(renderPrometheus(shards, FRONT));
    for (const s of shards) {
      for (const [name, [metric, , divisor]] of Object.entries(EXPECTED_METRICS)) {
        expect(metricValue(exposition, metric, { shard: String(s.index) }), `${metric} shard ${s.index}`).toBe(
          s.counters[name as CounterName] / (divisor ?? 1),
        );
      }
    }
  });

  it('prometheus - nextTagSeq (an internal sequence) is not exported', () => {
    const text = renderPrometheus([shardView(0)], FRONT);
    expect(text).not.toMatch(/tag_seq|nextTagSeq/i);
    expect(String(shardView(0).counters.nextTagSeq)).toBe('1010');
    expect(text).not.toMatch(/ 1010$/m);
  });

  it('prometheus - shard_up is 1 for a live shard and 0 for a dead one', () => {
    const exposition = parseExposition(renderPrometheus([shardView(0, true), shardView(1, false)], FRONT));
    expect(exposition.types.get('shardmq_shard_up')).toBe('gauge');
    expect(metricValue(exposition, 'shardmq_shard_up', { shard: '0' })).toBe(1);
    expect(metricValue(exposition, 'shardmq_shard_up', { shard: '1' })).toBe(0);
  });

  it('prometheus - ring used and capacity bytes per shard and direction', () => {
    const shards = [shardView(0), shardView(3)];
    const exposition = parseExposition(renderPrometheus(shards, FRONT));
    expect(exposition.types.get('shardmq_ring_used_bytes')).toBe('gauge');
    expect(exposition.types.get('shardmq_ring_capacity_bytes')).toBe('gauge');
    for (const s of shards) {
      for (const direction of ['inbound', 'outbound'] as const) {
        const labels = { shard: String(s.index), direction };
        expect(metricValue(exposition, 'shardmq_ring_used_bytes', labels)).toBe(s.ring[direction].usedBytes);
        expect(metricValue(exposition, 'shardmq_ring_capacity_bytes', labels)).toBe(s.ring[direction].capacityBytes);
      }
    }
  });

  it('prometheus - front gauges: websocket connections and subscriptions', () => {
    const exposition = parseExposition(renderPrometheus([shardView(0)], { ...FRONT, websocket: 12, subscriptions: 34 }));
    expect(exposition.types.get('shardmq_websocket_connections')).toBe('gauge');
    expect(metricValue(exposition, 'shardmq_websocket_connections')).toBe(12);
    expect(metricValue(exposition, 'shardmq_subscriptions')).toBe(34);
  });

  it('prometheus - with no shards the output still parses and carries the front gauges', () => {
    const exposition = parseExposition(renderPrometheus([], { ...FRONT, websocket: 1, subscriptions: 2 }));
    expect(exposition.samples.map((s) => s.name)).toEqual([
      'shardmq_websocket_connections',
      'shardmq_subscriptions',
      'shardmq_slow_connections',
      'shardmq_slow_consumer_dropped_total',
      'shardmq_subscription_dropped_total',
    ]);
  });

  it('prometheus - a subscription that lost messages is a sample with its labels escaped', () => {
    const exposition = parseExposition(renderPrometheus([], FRONT));
    const sample = exposition.samples.find((s) => s.name === 'shardmq_subscription_dropped_total');
    // As written on the wire: the quote and the backslash escaped.
    expect(sample?.labels).toEqual({ connection: '3', subscription: 'a\\"b\\\\c', destination: '/topic/x.y' });
    expect(sample?.value).toBe(42);
  });

  it('prometheus - large and fractional values render as parseable floats with their exact value', () => {
    const view = shardView(0);
    view.counters.published = 2 ** 53 - 1;
    view.counters.delivered = 1e21;
    view.counters.ready = 0.5;
    const exposition = parseExposition(renderPrometheus([view], FRONT));
    expect(metricValue(exposition, 'shardmq_shard_published_total', { shard: '0' })).toBe(2 ** 53 - 1);
    expect(metricValue(exposition, 'shardmq_shard_delivered_total', { shard: '0' })).toBe(1e21);
    expect(metricValue(exposition, 'shardmq_shard_ready', { shard: '0' })).toBe(0.5);
  });

  it('prometheus - the parser itself rejects malformed lines (so the checks above can fail)', () => {
    expect(() => parseExposition('shardmq_x 1\n')).toThrow(/sample before its TYPE/);
    expect(() => parseExposition('# HELP a x\n# TYPE a gauge\na{shard=0} 1\n')).toThrow(/bad label pair/);
    expect(() => parseExposition('# HELP a x\n# TYPE a gauge\na 1 2 3\n')).toThrow(/not a TYPE line or a sample/);
    expect(() => parseExposition('# HELP a x\n# TYPE a gauge\na 1\n# HELP b x\n# TYPE b gauge\nb 1\na 2\n')).toThrow(/not contiguous/);
    expect(() => parseExposition('# TYPE a gauge\na 1\n')).toThrow(/HELP before TYPE a/);
  });
});

describe('renderPrometheus - RabbitMQ-aligned families', () => {
  const GLOBAL = { received: 500, confirmed: 480, unroutable: 7 };
  const shards = [shardView(0), shardView(1)];
  const sumOf = (name: CounterName): number => shards.reduce((n, s) => n + s.counters[name], 0);

  it("global message counters carry RabbitMQ's names and the sums of the shards and the main thread", () => {
    const e = parseExposition(renderPrometheus(shards, { ...FRONT, streamDropped: 5 }, GLOBAL));
    const g = 'shardmq_global_messages';
    expect(metricValue(e, `${g}_received_total`)).toBe(500);
    expect(metricValue(e, `${g}_confirmed_total`)).toBe(480);
    expect(metricValue(e, `${g}_routed_total`)).toBe(sumOf('published') - sumOf('unroutable'));
    expect(metricValue(e, `${g}_delivered_total`)).toBe(sumOf('delivered'));
    expect(metricValue(e, `${g}_acknowledged_total`)).toBe(sumOf('acked'));
    expect(metricValue(e, `${g}_redelivered_total`)).toBe(sumOf('redelivered'));
    expect(metricValue(e, `${g}_dropped_total`, { reason: 'queue' })).toBe(sumOf('dropped'));
    expect(metricValue(e, `${g}_dropped_total`, { reason: 'stream' })).toBe(5);
    expect(metricValue(e, `${g}_unroutable_dropped_total`)).toBe(7 + sumOf('unroutable'));
    for (const [name, type] of e.types) if (name.startsWith(g)) expect(type, name).toBe('counter');
  });

  it('per-queue series (with their vhost), connections by protocol and by vhost', () => {
    const queues = [
      { name: 'jobs', shard: 0, ready: 10, unacked: 2, consumers: 1 },
      { name: 'we"ird', shard: 1, ready: 0, unacked: 0, consumers: 3 },
      // A queue of vhost 'staging' (its qualified name): labelled with the vhost and its own name.
      { name: 'staging\u001fjobs', shard: 1, ready: 4, unacked: 0, consumers: 0 },
    ];
    const vhosts = [
      { name: '/', connections: 5, queues: 2 },
      { name: 'staging', connections: 4, queues: 1 },
    ];
    const e = parseExposition(renderPrometheus(shards, { ...FRONT, websocket: 9, binaryConnections: 6 }, GLOBAL, queues, vhosts));
    expect(metricValue(e, 'shardmq_queue_messages_ready', { vhost: '/', queue: 'jobs', shard: '0' })).toBe(10);
    expect(metricValue(e, 'shardmq_queue_messages_unacked', { vhost: '/', queue: 'jobs', shard: '0' })).toBe(2);
    expect(metricValue(e, 'shardmq_queue_consumers', { vhost: '/', queue: 'we\\"ird', shard: '1' })).toBe(3);
    expect(metricValue(e, 'shardmq_queue_messages_ready', { vhost: 'staging', queue: 'jobs', shard: '1' })).toBe(4);
    expect(metricValue(e, 'shardmq_connections', { protocol: 'ws_binary' })).toBe(6);
    expect(metricValue(e, 'shardmq_connections', { protocol: 'ws_json' })).toBe(3);
    expect(metricValue(e, 'shardmq_vhost_connections', { vhost: 'staging' })).toBe(4);
    expect(metricValue(e, 'shardmq_vhost_queues', { vhost: '/' })).toBe(2);
    expect(e.types.get('shardmq_queue_messages_ready')).toBe('gauge');
    expect(e.types.get('shardmq_vhost_connections')).toBe('gauge');
  });

  it('many queues: the exposition comes in parts of whole lines, every queue in each of its three series once', () => {
    const queues = Array.from({ length: 1234 }, (_, i) => ({
      name: i % 2 === 0 ? `q${i}` : `staging\u001fq${i}`,
      shard: i % 2,
      ready: i,
      unacked: 0,
      consumers: 1,
    }));
    const parts = [...prometheusParts(shards, FRONT, GLOBAL, queues)];
    expect(parts.length).toBeGreaterThan(10);
    for (const part of parts) expect(part === '' || part.endsWith('\n')).toBe(true);
    const text = parts.join('');
    expect(text).toBe(renderPrometheus(shards, FRONT, GLOBAL, queues));
    const e = parseExposition(text);
    for (const i of [0, 249, 250, 1233]) {
      const labels = { vhost: i % 2 === 0 ? '/' : 'staging', queue: `q${i}`, shard: String(i % 2) };
      expect(metricValue(e, 'shardmq_queue_messages_ready', labels)).toBe(i);
      expect(metricValue(e, 'shardmq_queue_consumers', labels)).toBe(1);
    }
    expect(text.split('\n').filter((l) => l.startsWith('shardmq_queue_messages_unacked{'))).toHaveLength(1234);
  });

  it('ring fill is used over capacity, per shard and direction', () => {
    const e = parseExposition(renderPrometheus(shards, FRONT));
    for (const s of shards) {
      expect(metricValue(e, 'shardmq_ring_fill_ratio', { shard: String(s.index), direction: 'inbound' })).toBeCloseTo(
        s.ring.inbound.usedBytes / s.ring.inbound.capacityBytes,
        12,
      );
    }
  });

  it('every family has a HELP line', () => {
    const e = parseExposition(renderPrometheus(shards, FRONT, GLOBAL, []));
    for (const name of e.types.keys()) expect(e.helps.get(name), name).toBeTruthy();
  });
});

describe('renderPrometheus - fsync histogram', () => {
  it('buckets are cumulative, end in +Inf = count, and sum is the seconds counted', () => {
    const storage = new Float64Array(createCounterStorage());
    for (const seconds of [0.0005, 0.0005, 0.003, 0.02, 0.7, 2]) countFsync(storage, seconds);
    const shard = { ...shardView(0), counters: readCounters(storage) };
    const e = parseExposition(renderPrometheus([shard], FRONT));
    const f = 'shardmq_shard_fsync_duration_seconds';
    expect(e.types.get(f)).toBe('histogram');
    const bucket = (le: string): number => metricValue(e, `${f}_bucket`, { shard: '0', le });
    expect([
      bucket('0.001'),
      bucket('0.005'),
      bucket('0.01'),
      bucket('0.05'),
      bucket('0.1'),
      bucket('0.5'),
      bucket('1'),
      bucket('+Inf'),
    ]).toEqual([2, 3, 3, 4, 4, 4, 5, 6]);
    expect(metricValue(e, `${f}_count`, { shard: '0' })).toBe(6);
    expect(metricValue(e, `${f}_sum`, { shard: '0' })).toBeCloseTo(0.0005 * 2 + 0.003 + 0.02 + 0.7 + 2, 9);
  });
});
