/**
 * GET /metrics under load: the RabbitMQ-aligned families exist and move as messages flow, and the
 * whole exposition passes `promtool check metrics` (Debian's prometheus package; scripts/ci-deps.sh
 * installs it).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Broker } from '../../src/front/broker.js';
import { connect } from '../../src/index.js';
import { startBroker } from '../helpers/broker.js';

/** `name{labels} value` → value, for the sample with exactly that name and label text. */
function value(text: string, sample: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${sample} `));
  expect(line, sample).toBeDefined();
  return Number(line?.slice(sample.length + 1));
}

describe('e2e - /metrics', () => {
  let broker: Broker;
  beforeAll(async () => {
    broker = await startBroker({ shards: '2' });
  });
  afterAll(async () => {
    await broker.stop();
  });

  it('the global, queue and connection families move with the traffic, and promtool accepts the exposition', async () => {
    const metrics = async (): Promise<string> => (await fetch(`${broker.url}/metrics`)).text();
    const before = await metrics();
    const client = await connect(broker.url, { confirms: true });
    try {
      await client.declareQueue('metered');
      const n = 2000;
      for (let i = 0; i < n; i++) client.publishNoWait('/queue/metered', `m${i}`);
      client.publishNoWait('/exchange/amq.direct/nobody', 'unroutable');
      await client.flush();
      let got = 0;
      const sub = await client.subscribe('/queue/metered', { ack: 'client', prefetch: 100 }, async (m) => {
        await m.ack();
        got++;
      });
      const deadline = Date.now() + 10_000;
      while (got < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(got).toBe(n);
      // Acks travel after the deliveries: wait until the shards counted them all.
      const settled = Date.now() + 5000;
      let after = await metrics();
      while (
        value(after, 'shardmq_global_messages_acknowledged_total') - value(before, 'shardmq_global_messages_acknowledged_total') < n &&
        Date.now() < settled
      ) {
        await new Promise((r) => setTimeout(r, 20));
        after = await metrics();
      }
      const moved = (name: string): number => value(after, name) - value(before, name);
      expect(moved('shardmq_global_messages_received_total')).toBe(n + 1);
      expect(moved('shardmq_global_messages_confirmed_total')).toBe(n + 1);
      expect(moved('shardmq_global_messages_routed_total')).toBe(n);
      expect(moved('shardmq_global_messages_delivered_total')).toBe(n);
      expect(moved('shardmq_global_messages_acknowledged_total')).toBe(n);
      expect(moved('shardmq_global_messages_unroutable_dropped_total')).toBe(1);
      expect(value(after, 'shardmq_connections{protocol="ws_binary"}')).toBe(1);
      expect(after).toMatch(/^shardmq_queue_consumers\{vhost="\/",queue="metered",shard="\d"\} 1$/m);
      expect(after).toMatch(/^shardmq_queue_messages_ready\{vhost="\/",queue="metered",shard="\d"\} 0$/m);
      expect(after).toMatch(/^shardmq_vhost_queues\{vhost="\/"\} \d+$/m);
      await sub.unsubscribe();

      const check = spawnSync('promtool', ['check', 'metrics'], { input: after, encoding: 'utf8' });
      expect(check.error, 'promtool must be installed (bash scripts/ci-deps.sh)').toBeUndefined();
      expect(`${check.stdout}${check.stderr}`).toBe('');
      expect(check.status).toBe(0);
    } finally {
      await client.close();
    }
  });

  it('with many queues, /metrics and /v1/stats (built a part per turn) list every queue exactly once, well formed', async () => {
    const client = await connect(broker.url);
    try {
      const names = Array.from({ length: 700 }, (_, i) => `many-${i}`);
      await Promise.all(names.map((n) => client.declareQueue(n)));
      for (let i = 0; i < 5; i++) client.publishNoWait('/queue/many-699', `x${i}`);
      await client.flush();
      const text = await (await fetch(`${broker.url}/metrics`)).text();
      for (const family of ['shardmq_queue_messages_ready', 'shardmq_queue_consumers']) {
        const listed = text.split('\n').filter((l) => l.startsWith(`${family}{`) && l.includes('queue="many-'));
        expect(new Set(listed.map((l) => /queue="([^"]+)"/.exec(l)?.[1])).size, family).toBe(700);
        expect(listed, family).toHaveLength(700);
      }
      expect(text.split('\n').find((l) => l.startsWith('shardmq_queue_messages_ready{') && l.includes('queue="many-699"'))).toMatch(/ 5$/);
      const stats = (await (await fetch(`${broker.url}/v1/stats`)).json()) as {
        queues: Array<{ name: string; vhost: string }>;
        queuesTotal: number;
      };
      const mine = stats.queues.filter((q) => q.name.startsWith('many-'));
      expect(new Set(mine.map((q) => q.name)).size).toBe(700);
      expect(mine).toHaveLength(700);
      expect(mine.every((q) => q.vhost === '/')).toBe(true);
      expect(stats.queuesTotal).toBeGreaterThanOrEqual(700);
    } finally {
      await client.close();
    }
  });
});

describe('e2e - /metrics with --data-dir', () => {
  it('the fsync histogram and the log size move as persistent messages are confirmed', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'shardmq-metrics-'));
    const broker = await startBroker({ shards: '1', 'data-dir': dir });
    const client = await connect(broker.url, { confirms: true });
    try {
      await client.declareQueue('kept', { durable: true });
      for (let i = 0; i < 200; i++) client.publishNoWait('/queue/kept', `m${i}`, { properties: { deliveryMode: 2 } });
      await client.flush();
      await new Promise((r) => setTimeout(r, 1100)); // the log size is written once a second
      const text = await (await fetch(`${broker.url}/metrics`)).text();
      const fsyncs = value(text, 'shardmq_shard_fsync_duration_seconds_count{shard="0"}');
      expect(fsyncs).toBeGreaterThan(0);
      expect(value(text, 'shardmq_shard_fsync_duration_seconds_bucket{shard="0",le="+Inf"}')).toBe(fsyncs);
      expect(value(text, 'shardmq_shard_fsync_duration_seconds_sum{shard="0"}')).toBeGreaterThan(0);
      expect(value(text, 'shardmq_shard_log_bytes{shard="0"}')).toBeGreaterThan(200 * 2);
      const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
      expect(`${check.stdout}${check.stderr}`).toBe('');
      expect(check.status).toBe(0);
    } finally {
      await client.close();
      await broker.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
