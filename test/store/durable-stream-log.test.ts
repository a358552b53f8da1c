import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { nodeFs } from '../../src/store/fs-seam.js';
import { StreamStore } from '../../src/store/stream-store.js';
import type { DurableStreamLog, DurableStreamLimits } from '../../src/store/durable-stream-log.js';
import { FaultyFs } from '../helpers/faulty-fs.js';
import { readAll } from '../helpers/stream-reader.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'smq-stream-'));
  dirs.push(d);
  return d;
}

/** A deterministic PRNG (tests must repeat). */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 4294967296;
  };
}

/** The body of entry `i`: its size from `sizes`, its bytes a function of i (so a wrong entry shows). */
function body(i: number, size: number): Uint8Array {
  const b = new Uint8Array(size);
  for (let k = 0; k < size; k++) b[k] = (i * 31 + k) & 0xff;
  if (size >= 4) new DataView(b.buffer).setUint32(0, i, true);
  return b;
}

function storeAt(dir: string, fs = nodeFs): StreamStore {
  return new StreamStore({ dir, fsync: 'always', batchIntervalMs: 0, fs });
}

async function durable(store: StreamStore): Promise<void> {
  const seq = store.seq;
  store.requestFlush();
  for (let i = 0; i < 2000 && store.durableSeq < seq; i++) await new Promise((r) => setTimeout(r, 2));
  expect(store.durableSeq).toBeGreaterThanOrEqual(seq);
}

function open(store: StreamStore, name: string, segmentBytes: number, limits: DurableStreamLimits = {}): DurableStreamLog {
  return store.open(name, segmentBytes, { hotBytes: 8 * 1024, ...limits });
}

describe('DurableStreamLog (a stream on disk)', () => {
  it('reads back every entry, in order, from any offset, across segment files and the hot part (random sizes)', async () => {
    const dir = tempDir();
    const store = storeAt(dir);
    const log = open(store, 'events', 16 * 1024);
    const next = rng(7);
    const sizes: number[] = [];
    for (let i = 0; i < 3000; i++) {
      const size = 1 + Math.floor(next() * (next() < 0.05 ? 9000 : 300));
      sizes.push(size);
      const b = body(i, size);
      expect(log.appendWith(size, 1000 + i, (bytes, at) => bytes.set(b, at))).toBe(i);
    }
    expect(log.readableEnd).toBe(0); // nothing durable yet: readers see nothing
    await durable(store);
    expect(log.readableEnd).toBe(3000);
    expect(log.segmentCount).toBeGreaterThan(20);
    for (const from of [0, 1, 1234, 2999, 3000, Math.floor(next() * 3000)]) {
      const { got, skipped } = await readAll(log, from);
      expect(skipped).toBe(0);
      expect(got.map(([o]) => o)).toEqual(Array.from({ length: 3000 - from }, (_, k) => from + k));
      for (const [o, b] of got) expect(Buffer.from(b).equals(Buffer.from(body(o, sizes[o] as number)))).toBe(true);
    }
    await store.close();
  });

  it('finds a time exactly (first entry at or after it) on disk and in memory, against a linear scan', async () => {
    const dir = tempDir();
    const store = storeAt(dir);
    const log = open(store, 't', 8 * 1024);
    const times: number[] = [];
    const next = rng(11);
    let t = 5000;
    for (let i = 0; i < 4000; i++) {
      t += Math.floor(next() * 3); // repeats and steps
      times.push(t);
      const b = body(i, 40);
      log.appendWith(40, t, (bytes, at) => bytes.set(b, at));
    }
    await durable(store);
    for (let k = 0; k < 60; k++) {
      const ms = 4990 + Math.floor(next() * (t - 4980));
      const expected = times.findIndex((x) => x >= ms);
      expect(log.offsetAtTime(ms)).toBe(expected === -1 ? 4000 : expected);
    }
    await store.close();
  });

  it('finds the time of an entry larger than the seek buffer (300 KB) from the files', async () => {
    const dir = tempDir();
    const store = storeAt(dir);
    const log = open(store, 'big', 1024 * 1024);
    for (let i = 0; i < 100; i++) log.appendWith(30, 1000, (bytes, at) => bytes.fill(1, at, at + 30));
    log.appendWith(300_000, 2000, (bytes, at) => bytes.fill(2, at, at + 300_000)); // offset 100
    for (let i = 0; i < 100; i++) log.appendWith(30, 3000, (bytes, at) => bytes.fill(3, at, at + 30));
    await durable(store);
    log.applyRetention(0); // trims the in-memory part: the seek reads the file
    expect(log.offsetAtTime(1500)).toBe(100);
    expect(log.offsetAtTime(2500)).toBe(101);
    expect(log.offsetAtTime(500)).toBe(0);
    await store.close();
  });

  it('recovers offsets, times, bodies and stored offsets after a restart, and continues counting', async () => {
    const dir = tempDir();
    let store = storeAt(dir);
    let log = open(store, 'telemetry', 4096);
    for (let i = 0; i < 500; i++) {
      const b = body(i, 50 + (i % 70));
      log.appendWith(b.byteLength, 10_000 + i, (bytes, at) => bytes.set(b, at));
    }
    log.storeOffset('dash', 120);
    for (let i = 500; i < 700; i++) {
      const b = body(i, 50 + (i % 70));
      log.appendWith(b.byteLength, 10_000 + i, (bytes, at) => bytes.set(b, at));
    }
    log.storeOffset('dash', 650);
    log.storeOffset('audit', 3);
    await durable(store);
    await store.close();

    store = storeAt(dir);
    log = open(store, 'telemetry', 4096);
    expect(log.recovery).toMatchObject({ entries: 700, corruptSkipped: 0, tornBytesTruncated: 0 });
    expect(log.nextOffset).toBe(700);
    expect(log.readableEnd).toBe(700);
    expect(Object.fromEntries(log.stored)).toEqual({ dash: 650, audit: 3 });
    expect(log.offsetAtTime(10_300)).toBe(300);
    const { got } = await readAll(log, 0);
    expect(got.length).toBe(700);
    for (const [o, b] of got) expect(Buffer.from(b).equals(Buffer.from(body(o, 50 + (o % 70))))).toBe(true);
    const b = body(700, 10);
    expect(log.appendWith(10, 1, (bytes, at) => bytes.set(b, at))).toBe(700);
    await durable(store);
    expect(log.lastTimestamp).toBe(10_699); // times never go back, across a restart too
    await store.close();
  });

  it('keeps stored offsets when retention drops the segments they were committed in', async () => {
    const dir = tempDir();
    let store = storeAt(dir);
    let log = open(store, 's', 2048, { maxBytes: 6000 });
    log.storeOffset('early', 0);
    for (let i = 0; i < 400; i++) {
      const b = body(i, 60);
      log.appendWith(60, i, (bytes, at) => bytes.set(b, at));
      if (i % 50 === 0) {
        await durable(store);
        log.applyRetention(0);
      }
    }
    await durable(store);
    log.applyRetention(0);
    expect(log.firstOffset).toBeGreaterThan(0); // the segment holding the commit is gone
    expect(log.bytes).toBeLessThanOrEqual(6000 + 2048);
    await store.close();
    store = storeAt(dir);
    log = open(store, 's', 2048, { maxBytes: 6000 });
    expect(log.stored.get('early')).toBe(0);
    await store.close();
  });

  it('x-max-age drops whole files whose newest entry is too old, never the newest, and a reader behind is told the skip', async () => {
    const dir = tempDir();
    const store = storeAt(dir);
    const log = open(store, 'aging', 2048, { maxAgeMs: 1000 });
    for (let i = 0; i < 200; i++) {
      const b = body(i, 50);
      log.appendWith(50, i < 150 ? 10_000 : 20_000, (bytes, at) => bytes.set(b, at));
    }
    await durable(store);
    const segments = log.segmentCount;
    expect(log.applyRetention(10_500)).toBe(0); // nothing older than a second yet
    const dropped = log.applyRetention(20_500);
    expect(dropped).toBeGreaterThan(100);
    expect(dropped).toBeLessThanOrEqual(150); // only files of the old entries, whole
    expect(log.segmentCount).toBeLessThan(segments);
    expect(log.firstOffset).toBe(dropped);
    const { got, skipped } = await readAll(log, 0);
    expect(skipped).toBe(dropped);
    expect(got[0]?.[0]).toBe(dropped);
    expect(got.length).toBe(200 - dropped);
    expect(log.applyRetention(1_000_000)).toBeLessThan(200 - dropped); // the newest file stays
    expect(log.count).toBeGreaterThan(0);
    await store.close();
  });

  it('cuts a torn tail, skips a damaged record and tells a reader how many entries it lost', async () => {
    const dir = tempDir();
    let store = storeAt(dir);
    let log = open(store, 'damaged', 4096);
    for (let i = 0; i < 300; i++) {
      const b = body(i, 100);
      log.appendWith(100, i, (bytes, at) => bytes.set(b, at));
    }
    await durable(store);
    await store.close();
    const streamDir = join(dir, 'streams', readdirSync(join(dir, 'streams'))[0] as string);
    const segs = readdirSync(streamDir)
      .filter((n) => n.endsWith('.seg'))
      .sort();
    // A bit flipped in the middle of the first segment's third record, and half a record torn off the newest.
    const first = join(streamDir, segs[0] as string);
    const bytes = readFileSync(first);
    const recordBytes = 9 + 16 + 100;
    bytes[2 * recordBytes + 40] ^= 0xff;
    writeFileSync(first, bytes);
    const last = join(streamDir, segs.at(-1) as string);
    truncateSync(last, statSync(last).size - 50);

    store = storeAt(dir);
    log = open(store, 'damaged', 4096);
    expect(log.recovery.corruptSkipped).toBe(1);
    expect(log.recovery.tornBytesTruncated).toBe(recordBytes - 50);
    expect(log.nextOffset).toBe(299); // the torn entry was never confirmed: its offset is given again
    const { got, skipped } = await readAll(log, 0);
    expect(skipped).toBe(1);
    expect(got.map(([o]) => o)).toEqual([0, 1, ...Array.from({ length: 296 }, (_, k) => k + 3)]);
    await store.close();
  });

  it('a failed write keeps the entries pending and unreadable; the next flush writes them', async () => {
    const dir = tempDir();
    const fs = new FaultyFs();
    const store = storeAt(dir, fs);
    const errors: number[] = [];
    store.onFlushError = (_err, seq) => errors.push(seq);
    const log = open(store, 'f', 4096);
    for (let i = 0; i < 50; i++) {
      const b = body(i, 80);
      log.appendWith(80, i, (bytes, at) => bytes.set(b, at));
    }
    fs.fail('fsync', { times: 1 });
    store.requestFlush();
    for (let i = 0; i < 500 && errors.length === 0; i++) await new Promise((r) => setTimeout(r, 2));
    expect(errors).toEqual([50]);
    expect(log.readableEnd).toBe(0);
    await durable(store);
    expect(log.readableEnd).toBe(50);
    const { got } = await readAll(log, 0);
    expect(got.length).toBe(50);
    await store.close();
  });

  it('a deleted stream leaves nothing behind; a directory no stream owns is moved aside, not deleted', async () => {
    const dir = tempDir();
    const store = storeAt(dir);
    const a = open(store, 'a', 4096);
    open(store, 'b', 4096);
    const b = body(1, 10);
    a.appendWith(10, 0, (bytes, at) => bytes.set(b, at));
    await durable(store);
    store.remove(a);
    await new Promise((r) => setTimeout(r, 50));
    const entries = readdirSync(join(dir, 'streams'));
    expect(entries.length).toBe(1);
    expect(store.sweep(['a'])).toHaveLength(1); // b is not declared any more
    expect(readdirSync(join(dir, 'streams')).some((n) => n.includes('.orphaned-'))).toBe(true);
    await store.close();
  });
});
