/**
 * A stream on disk against a model, over random operations: appends of random sizes (across the
 * hot part, segment files and the read buffer's edges), flushes, retention by bytes, stored
 * offsets, clean restarts, and readers starting anywhere. After every read the model says exactly
 * which offsets come, with which bytes, and how many were skipped; after every restart nothing that
 * was flushed is missing and counting goes on.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { StreamStore } from '../../src/store/stream-store.js';
import { Prng, testSeed } from '../helpers/prng.js';
import { readAll } from '../helpers/stream-reader.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function bodyOf(offset: number, size: number): Buffer {
  const b = Buffer.alloc(size);
  for (let k = 0; k < size; k++) b[k] = (offset * 131 + k * 7) & 0xff;
  return b;
}

async function untilDurable(store: StreamStore): Promise<void> {
  const seq = store.seq;
  store.requestFlush();
  for (let i = 0; i < 5000 && store.durableSeq < seq; i++) await new Promise((r) => setTimeout(r, 1));
  expect(store.durableSeq).toBeGreaterThanOrEqual(seq);
}

describe('DurableStreamLog against a model', () => {
  const seed = testSeed();
  it(`random appends, flushes, retention, stored offsets, restarts and reads agree with the model (seed ${seed})`, async () => {
    const rng = new Prng(seed);
    const dir = mkdtempSync(join(tmpdir(), 'smq-stream-model-'));
    dirs.push(dir);
    const segmentBytes = 8 * 1024 + rng.int(0, 24 * 1024);
    const limits = { hotBytes: 4096 + rng.int(0, 16 * 1024), maxBytes: 200 * 1024 };
    let store = new StreamStore({ dir, fsync: 'always', batchIntervalMs: 0 });
    let log = store.open('model', segmentBytes, limits);
    /** Sizes of every entry ever appended, by offset; entries below the log's first offset are gone. */
    const sizes: number[] = [];
    const stored = new Map<string, number>();
    let time = 1_000;
    for (let step = 0; step < 400; step++) {
      const op = rng.int(0, 99);
      if (op < 55) {
        for (let k = rng.int(1, 60); k > 0; k--) {
          const size = rng.int(0, 9) === 0 ? rng.int(600, 40_000) : rng.int(1, 400);
          const offset = sizes.length;
          const b = bodyOf(offset, size);
          time += rng.int(0, 3);
          expect(log.appendWith(size, time, (bytes, at) => bytes.set(b, at))).toBe(offset);
          sizes.push(size);
        }
      } else if (op < 70) {
        await untilDurable(store);
        log.applyRetention(time);
        expect(log.bytes).toBeLessThanOrEqual(limits.maxBytes + segmentBytes + 40_100);
      } else if (op < 75 && sizes.length > 0) {
        const name = `c${rng.int(0, 3)}`;
        const offset = rng.int(0, sizes.length - 1);
        log.storeOffset(name, offset);
        stored.set(name, offset);
      } else if (op < 80) {
        await untilDurable(store);
        await store.close();
        store = new StreamStore({ dir, fsync: 'always', batchIntervalMs: 0 });
        log = store.open('model', segmentBytes, limits);
        expect(log.nextOffset).toBe(sizes.length);
        expect(log.recovery.corruptSkipped).toBe(0);
        expect(Object.fromEntries(log.stored)).toEqual(Object.fromEntries(stored));
      } else {
        await untilDurable(store);
        const first = log.firstOffset;
        const from = rng.int(0, sizes.length);
        const { got, skipped } = await readAll(log, from, { batch: (i) => 1 + (i % 300), maxBytes: 48 * 1024 });
        const offsets = got.map(([o]) => o);
        const bodies = got.map(([, b]) => Buffer.from(b));
        const start = Math.max(from, first);
        expect(skipped).toBe(start - from);
        expect(offsets).toEqual(Array.from({ length: sizes.length - start }, (_, i) => start + i));
        for (let i = 0; i < offsets.length; i++) {
          const o = offsets[i] as number;
          if (!bodies[i]?.equals(bodyOf(o, sizes[o] as number))) throw new Error(`offset ${o}: wrong bytes (seed ${seed})`);
        }
      }
    }
    await store.close();
  }, 60_000);
});
