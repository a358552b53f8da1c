/**
 * Streams under --data-dir: the broker SIGKILLed while a publisher streams into a stream with
 * confirms and a named consumer reads and commits; a new broker on the same directory has every
 * confirmed message at its offset (offsets 0..n-1, no gap, no repeat), the consumer's stored offset,
 * and goes on counting from where the stream ended. Then a restart after a clean stop, and a
 * reader far behind the in-memory tail reading everything back from the files.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startBrokerProcess } from '../../src/bench/broker-process.js';
import { connect, type Message, type ShardmqClient } from '../../src/index.js';
import { Prng, testSeed } from '../helpers/prng.js';

const root = mkdtempSync(join(tmpdir(), 'shardmq-stream-crash-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Reads the stream from `offset` until `n` messages came or 1.5 s pass with none. */
async function drain(
  c: ShardmqClient,
  offset: number | Date | 'first' | 'stored',
  options: { consumerName?: string } = {},
): Promise<Message[]> {
  const got: Message[] = [];
  let last = Date.now();
  const sub = await c.subscribe('/queue/metrics', { offset, ...options }, (m) => {
    got.push(m);
    last = Date.now();
  });
  const started = Date.now();
  while (Date.now() - last < 1500 && Date.now() - started < 60_000) await new Promise((r) => setTimeout(r, 50));
  await sub.unsubscribe();
  return got;
}

describe('e2e - streams on disk', () => {
  const seed = testSeed();
  it(`every confirmed message is at its offset after a SIGKILL; stored offsets and counting survive (seed ${seed})`, async () => {
    const rng = new Prng(seed);
    const dir = join(root, `kill-${seed}`);
    // Small segments: the kill lands with many files, the newest one being written.
    const args = ['--shards', '2', '--data-dir', dir, '--fsync', 'batch'];
    const first = await startBrokerProcess(args);
    const admin = await connect(first.url, { reconnect: false });
    await admin.declareQueue('metrics', {
      durable: true,
      arguments: { 'x-queue-type': 'stream', 'x-stream-max-segment-size-bytes': 64 * 1024 },
    });
    const confirmed = new Set<number>();
    const publisher = await connect(first.url, { reconnect: false });
    publisher.on('error', () => undefined);
    admin.on('error', () => undefined);
    // A named consumer reads live and commits what it processed every 500 messages.
    let committed = -1;
    let commits = Promise.resolve();
    const live = await admin.subscribe('/queue/metrics', { offset: 'first', consumerName: 'dash' }, (m) => {
      const o = m.offset as number;
      if (o % 500 === 499) {
        commits = commits.then(() =>
          live.commit(o).then(
            () => {
              committed = Math.max(committed, o);
            },
            () => undefined,
          ),
        );
      }
    });
    let stop = false;
    const loop = (async () => {
      for (let n = 0; !stop && n < 2_000_000; n += 128) {
        const batch: Promise<boolean>[] = [];
        for (let k = n; k < n + 128; k++) {
          batch.push(
            publisher.publish('/queue/metrics', `m${k}`).then(
              () => {
                confirmed.add(k);
                return true;
              },
              () => false,
            ),
          );
        }
        if (!(await Promise.all(batch)).every(Boolean)) break;
      }
    })();
    await new Promise((r) => setTimeout(r, rng.int(800, 2000)));
    first.child.kill('SIGKILL');
    await new Promise((r) => first.child.once('exit', r));
    stop = true;
    await Promise.race([loop, new Promise((r) => setTimeout(r, 3000))]);
    await publisher.close().catch(() => undefined);
    await admin.close().catch(() => undefined);
    expect(confirmed.size).toBeGreaterThan(1000);

    const second = await startBrokerProcess(args);
    try {
      const c = await connect(second.url, { reconnect: false });
      const all = await drain(c, 'first');
      const offsets = all.map((m) => m.offset);
      // Offsets 0..n-1, in order, each once; each body is the k-th publish (one publisher, in order).
      expect(offsets).toEqual(Array.from({ length: all.length }, (_, i) => i));
      expect(all.map((m) => m.text())).toEqual(Array.from({ length: all.length }, (_, i) => `m${i}`));
      let lost = 0;
      for (const k of confirmed) if (k >= all.length) lost++;
      expect(lost).toBe(0);
      // The consumer's last commit made before the kill is stored (a commit is durable with the next group commit).
      if (committed >= 0) {
        const resumed = await drain(c, 'stored', { consumerName: 'dash' });
        expect(resumed[0]?.offset).toBeGreaterThanOrEqual(committed + 1);
        expect(resumed.at(-1)?.offset).toBe(all.length - 1);
      }
      // Counting goes on after the last offset.
      await c.publish('/queue/metrics', 'after');
      const tail = await drain(c, all.length);
      expect(tail.map((m) => [m.offset, m.text()])).toEqual([[all.length, 'after']]);
      await c.close();
    } finally {
      await second.stop();
    }
  }, 120_000);

  it('after a clean restart, readers at first, at 50,000 and at a time in the middle each get exactly their suffix from the files', async () => {
    const dir = join(root, 'behind');
    const args = ['--shards', '1', '--data-dir', dir];
    const n = 100_000; // ~20 MB of entries: far past the 4 MiB kept in memory
    let broker = await startBrokerProcess(args);
    try {
      const c = await connect(broker.url, { reconnect: false });
      await c.declareQueue('metrics', { durable: true, arguments: { 'x-queue-type': 'stream' } });
      const payload = 'x'.repeat(150);
      for (let k = 0; k < n; k += 500)
        await Promise.all(Array.from({ length: 500 }, (_, j) => c.publish('/queue/metrics', `${k + j}:${payload}`)));
      await c.close();
    } finally {
      await broker.stop();
    }
    broker = await startBrokerProcess(args);
    try {
      const c = await connect(broker.url, { reconnect: false });
      const line = async (offset: number): Promise<{ offset: number; timestamp: string; payload: string }> => {
        const res = await fetch(`${broker.url}/v1/streams/metrics/messages?offset=${offset}&limit=1`);
        return JSON.parse((await res.text()).trim()) as { offset: number; timestamp: string; payload: string };
      };
      const middle = await line(50_000);
      const at = new Date(middle.timestamp);
      // Three consumers at once, nothing of the stream in memory after the restart.
      const [all, fromOffset, fromTime] = await Promise.all([drain(c, 'first'), drain(c, 50_000), drain(c, at)]);
      const suffix = (ms: Message[], from: number): boolean =>
        ms.length === n - from && ms.every((m, i) => m.offset === from + i && m.text().startsWith(`${from + i}:`));
      expect(suffix(all, 0)).toBe(true);
      expect(suffix(fromOffset, 50_000)).toBe(true);
      // The time reader starts at the first entry stamped at or after the time: at 50,000 or before it, never after.
      const t0 = fromTime[0]?.offset as number;
      expect(t0).toBeLessThanOrEqual(50_000);
      expect(new Date((await line(t0)).timestamp).getTime()).toBeGreaterThanOrEqual(at.getTime());
      if (t0 > 0) expect(new Date((await line(t0 - 1)).timestamp).getTime()).toBeLessThan(at.getTime());
      expect(suffix(fromTime, t0)).toBe(true);
      // The HTTP read gives the same messages from the files.
      const res = await fetch(`${broker.url}/v1/streams/metrics/messages?offset=25000&limit=2000`);
      expect(res.status).toBe(200);
      const lines = (await res.text())
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { offset: number; payload: string });
      expect(lines.map((l) => [l.offset, l.payload])).toEqual(all.slice(25_000, 27_000).map((m) => [m.offset, m.text()]));
      const info = (await (await fetch(`${broker.url}/v1/streams/metrics`)).json()) as { durable: boolean; next_offset: number };
      expect(info).toMatchObject({ durable: true, next_offset: n });
      await c.close();
    } finally {
      await broker.stop();
    }
  }, 120_000);

  it('an HTTP NDJSON batch answered 200 is on disk: SIGKILL right after the answer loses none of it', async () => {
    const dir = join(root, 'http');
    // A slow group commit (300 ms): an answer that did not wait for it would come well before the data is on disk.
    const args = ['--shards', '1', '--data-dir', dir, '--fsync-interval-ms', '300'];
    const first = await startBrokerProcess(args);
    // Declared non-durable on purpose: a stream is durable anyway, and its publishers wait for the disk.
    const put = await fetch(`${first.url}/v1/queues/tele`, {
      method: 'PUT',
      body: JSON.stringify({ durable: false, arguments: { 'x-queue-type': 'stream' } }),
    });
    expect(put.status).toBeLessThan(300);
    const lines = Array.from({ length: 5000 }, (_, i) => JSON.stringify({ reading: i }));
    const res = await fetch(`${first.url}/v1/publish/queue/tele`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-ndjson' },
      body: `${lines.join('\n')}\n`,
    });
    expect(await res.json()).toEqual({ accepted: 5000 });
    first.child.kill('SIGKILL');
    await new Promise((r) => first.child.once('exit', r));
    const second = await startBrokerProcess(args);
    try {
      const info = (await (await fetch(`${second.url}/v1/streams/tele`)).json()) as { next_offset: number };
      expect(info.next_offset).toBe(5000);
      const read = await fetch(`${second.url}/v1/streams/tele/messages?offset=first&limit=5000`);
      const got = (await read.text())
        .trim()
        .split('\n')
        .map((l) => (JSON.parse(l) as { payload: string }).payload);
      expect(got).toEqual(lines);
    } finally {
      await second.stop();
    }
  }, 60_000);
});
