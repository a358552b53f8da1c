/**
 * The durability promise under SIGKILL: every message the broker confirmed is delivered at
 * least once after a restart on the same data dir. Publishers stream persistent messages with
 * confirms to durable queues on every shard; the broker is killed at a seeded random moment;
 * a new broker on the same directory is drained; the accounting must add up.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBrokerProcess } from '../../src/bench/broker-process.js';
import { connect } from '../../src/index.js';
import { shardFor } from '../../src/router/shard-map.js';
import { Prng, testSeed } from '../helpers/prng.js';

const SHARDS = 2;
const QUEUES_PER_SHARD = 2;
const root = mkdtempSync(join(tmpdir(), 'shardmq-crash-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function queuesOnEveryShard(): string[] {
  const out: string[] = [];
  for (let s = 0; s < SHARDS; s++) {
    let found = 0;
    for (let i = 0; found < QUEUES_PER_SHARD; i++) {
      if (shardFor(`crash-${i}`, SHARDS) === s) {
        out.push(`crash-${i}`);
        found++;
      }
    }
  }
  return out;
}

interface Accounting {
  attempted: number;
  confirmed: number;
  received: number;
  lost: number;
  duplicates: number;
  unexpected: number;
}

async function runOnce(seed: number, fsync: 'batch' | 'always'): Promise<Accounting> {
  const rng = new Prng(seed);
  const dir = join(root, `run-${seed}-${fsync}`);
  const queues = queuesOnEveryShard();
  const args = ['--shards', String(SHARDS), '--data-dir', dir, '--fsync', fsync];
  const first = await startBrokerProcess(args);
  const attempted = new Set<string>();
  const confirmed = new Set<string>();
  // No reconnect: after the kill, in-flight publishes must fail, not wait for a new broker.
  const publisher = await connect(first.url, { reconnect: false });
  publisher.on('error', () => undefined);
  let stop = false;
  // One publishing loop per queue, 64 unconfirmed messages in flight each.
  const loops = queues.map(async (queue, q) => {
    for (let n = 0; !stop && n < 200_000; n += 64) {
      const batch: Promise<boolean>[] = [];
      for (let k = n; k < n + 64; k++) {
        const id = `${seed}-${q}-${k}`;
        attempted.add(id);
        batch.push(
          publisher.publish(`/queue/${queue}`, id).then(
            () => {
              confirmed.add(id);
              return true;
            },
            () => false,
          ),
        );
      }
      // Once the broker is gone publishes fail at once: stop, or this loop would spin on
      // microtasks and starve the timers.
      if (!(await Promise.all(batch)).every(Boolean)) break;
    }
  });
  // Kill at a seeded moment while traffic flows.
  await new Promise((r) => setTimeout(r, rng.int(400, 1600)));
  first.child.kill('SIGKILL');
  await new Promise((r) => first.child.once('exit', r));
  stop = true;
  await Promise.race([Promise.all(loops), new Promise((r) => setTimeout(r, 3000))]);
  await publisher.close().catch(() => undefined);

  const second = await startBrokerProcess(args);
  const received = new Map<string, number>();
  try {
    const consumer = await connect(second.url);
    for (const queue of queues) {
      const sub = await consumer.subscribe(`/queue/${queue}`, { ack: 'client', prefetch: 500 });
      for (;;) {
        const next = await Promise.race([sub[Symbol.asyncIterator]().next(), new Promise<null>((r) => setTimeout(() => r(null), 1500))]);
        if (next === null || next.done === true) break;
        const msg = next.value;
        received.set(msg.text(), (received.get(msg.text()) ?? 0) + 1);
        await msg.ack();
      }
      await sub.unsubscribe();
    }
    await consumer.close();
  } finally {
    await second.stop();
  }
  let lost = 0;
  for (const id of confirmed) if (!received.has(id)) lost++;
  let duplicates = 0;
  let unexpected = 0;
  for (const [id, count] of received) {
    if (count > 1) duplicates += count - 1;
    if (!attempted.has(id)) unexpected++;
  }
  let receivedTotal = 0;
  for (const c of received.values()) receivedTotal += c;
  return { attempted: attempted.size, confirmed: confirmed.size, received: receivedTotal, lost, duplicates, unexpected };
}

describe('e2e - crash recovery (SIGKILL)', () => {
  const seed = testSeed();
  it.each([
    [seed, 'batch'],
    [seed + 1, 'batch'],
    [seed + 2, 'always'],
  ] as const)(
    'crash - seed %i, fsync %s: every confirmed message is delivered after a SIGKILL',
    async (s, fsync) => {
      const a = await runOnce(s, fsync);
      console.log(
        `[crash seed=${s} fsync=${fsync}] attempted ${a.attempted}, confirmed ${a.confirmed}, received ${a.received}, lost ${a.lost}, duplicates ${a.duplicates}, unexpected ${a.unexpected}`,
      );
      expect(a.confirmed, 'the kill came after some messages were confirmed').toBeGreaterThan(0);
      expect(a.lost, `seed ${s}: confirmed messages lost`).toBe(0);
      expect(a.unexpected, `seed ${s}: messages nobody published`).toBe(0);
    },
    60_000,
  );
});
