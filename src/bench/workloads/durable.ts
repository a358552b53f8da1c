/**
 * Durable messaging: persistent 1→1 with publisher confirms to a durable queue under
 * `--fsync batch` and `--fsync always`, side by side in one run; then recovery: how fast a
 * broker restarted on a data dir full of persistent messages gets them back (from its log line).
 * Driven by the package's own TypeScript client (binary protocol, confirms).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '../../client/client.js';
import { startBrokerProcess } from '../broker-process.js';
import { formatRate, minMax, summarize } from '../sample-stats.js';
import { roundsOf, type Workload, type WorkloadContext, type WorkloadResult } from '../workload.js';

const PAYLOAD = new Uint8Array(128).fill(0x61);
/** Unconfirmed publishes in flight: enough to fill a group commit, bounded so memory is. */
const WINDOW = 2000;
const QUEUE = '/queue/bench-durable';

interface DurableRun {
  readonly confirmedPerS: number;
  readonly deliveredPerS: number;
}

async function persistentOneToOne(fsync: 'batch' | 'always', count: number, seconds: number): Promise<DurableRun> {
  const dir = mkdtempSync(join(tmpdir(), 'shardmq-bench-durable-'));
  const broker = await startBrokerProcess(['--shards', '1', '--data-dir', dir, '--fsync', fsync]);
  try {
    const publisher = await connect(broker.url, { reconnect: false });
    const consumer = await connect(broker.url, { reconnect: false });
    let delivered = 0;
    let lastDelivery = 0;
    const sub = await consumer.subscribe(QUEUE, { ack: 'client', prefetch: 1000 }, (msg) => {
      delivered++;
      lastDelivery = performance.now();
      void msg.ack().catch(() => undefined);
    });
    const deadline = performance.now() + seconds * 1000;
    const t0 = performance.now();
    let confirmed = 0;
    let sent = 0;
    const inFlight = new Set<Promise<void>>();
    while (sent < count && performance.now() < deadline) {
      const p: Promise<void> = publisher.publish(QUEUE, PAYLOAD).then(() => {
        confirmed++;
        inFlight.delete(p);
      });
      inFlight.add(p);
      sent++;
      if (inFlight.size >= WINDOW) await Promise.race(inFlight);
    }
    await Promise.all(inFlight);
    const publishSeconds = (performance.now() - t0) / 1000;
    const waitUntil = performance.now() + 10_000;
    while (delivered < confirmed && performance.now() < waitUntil) await new Promise((r) => setTimeout(r, 10));
    await sub.unsubscribe();
    await publisher.close();
    await consumer.close();
    return { confirmedPerS: confirmed / publishSeconds, deliveredPerS: delivered / ((lastDelivery - t0) / 1000) };
  } finally {
    await broker.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function recoveryRate(messages: number): Promise<{ messages: number; ms: number; perS: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'shardmq-bench-recovery-'));
  try {
    const first = await startBrokerProcess(['--shards', '1', '--data-dir', dir]);
    const client = await connect(first.url, { reconnect: false });
    const pending = new Set<Promise<void>>();
    for (let i = 0; i < messages; i++) {
      const p: Promise<void> = client.publish(QUEUE, PAYLOAD).then(() => void pending.delete(p));
      pending.add(p);
      if (pending.size >= WINDOW) await Promise.race(pending);
    }
    await Promise.all(pending);
    await client.close();
    await first.stop();
    const second = await startBrokerProcess(['--shards', '1', '--data-dir', dir]);
    await second.stop();
    // The broker logs "recovered N persistent messages from the log in X ms" before it listens.
    const m = /"messages":(\d+),"durationMs":(\d+(?:\.\d+)?)/.exec(second.startupLog);
    if (m === null) throw new Error(`no recovery line in the broker's start-up log: ${second.startupLog.slice(0, 500)}`);
    const recovered = Number(m[1]);
    const ms = Math.max(Number(m[2]), 0.001);
    return { messages: recovered, ms, perS: recovered / (ms / 1000) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export const durable: Workload = {
  name: 'durable',
  description:
    'Persistent 1→1 with publisher confirms to a durable queue, --fsync batch vs always (interleaved), and recovery rate after a restart',
  async run(ctx: WorkloadContext): Promise<WorkloadResult> {
    const runs = roundsOf(ctx);
    const count = ctx.quick ? 20_000 : 200_000;
    const seconds = ctx.quick ? 3 : 10;
    const results: Record<'batch' | 'always', DurableRun[]> = { batch: [], always: [] };
    for (let i = 0; i < runs; i++) {
      for (const fsync of ['batch', 'always'] as const) {
        const r = await persistentOneToOne(fsync, count, seconds);
        results[fsync].push(r);
        ctx.progress(
          `durable run ${i + 1}/${runs} fsync=${fsync}: ${formatRate(r.confirmedPerS)} confirmed/s, ${formatRate(r.deliveredPerS)} delivered/s`,
        );
      }
    }
    const rec = await recoveryRate(ctx.quick ? 50_000 : 500_000);
    ctx.progress(`durable recovery: ${rec.messages} messages in ${rec.ms.toFixed(0)} ms (${formatRate(rec.perS)}/s)`);
    const b = summarize(results.batch.map((r) => r.confirmedPerS));
    const a = summarize(results.always.map((r) => r.confirmedPerS));
    const bd = summarize(results.batch.map((r) => r.deliveredPerS));
    const ad = summarize(results.always.map((r) => r.deliveredPerS));
    return {
      tables: [
        {
          title: `Persistent 1→1, 128-byte messages, publisher confirms (window ${WINDOW}), client acks, 1 shard, ${runs} run(s)`,
          columns: ['fsync', 'confirmed msg/s (median)', 'min–max', 'delivered msg/s (median)'],
          rows: [
            ['batch (group commit every 5 ms)', formatRate(b.median), minMax(b), formatRate(bd.median)],
            ['always (fsync before every confirm batch)', formatRate(a.median), minMax(a), formatRate(ad.median)],
          ],
          notes: [`a confirm is sent only after the fsync that covers the message (design.md §3 Durability)`],
        },
        {
          title: 'Recovery after a restart on the same data dir',
          columns: ['messages recovered', 'time', 'messages/s'],
          rows: [[rec.messages, `${rec.ms.toFixed(0)} ms`, formatRate(rec.perS)]],
        },
      ],
      figures: {
        durable_1to1_confirmed_msgs_per_s_fsync_batch: b.median,
        durable_1to1_confirmed_msgs_per_s_fsync_always: a.median,
        durable_1to1_delivered_msgs_per_s_fsync_batch: bd.median,
        durable_recovery_msgs_per_s: rec.perS,
        durable_recovery_ms: rec.ms,
        durable_recovery_messages: rec.messages,
      },
    };
  },
};
