import { describe, expect, it } from 'vitest';
import { StreamCursor, StreamLog } from '../../src/stream/stream-log.js';

/** Deterministic PRNG (mulberry32), so a failing case can be replayed from its seed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Body of entry `i`: its length from the seed, each byte a function of (i, position). */
function bodyOf(i: number, length: number): Uint8Array {
  const b = new Uint8Array(length);
  for (let k = 0; k < length; k++) b[k] = (i * 31 + k * 7) & 0xff;
  return b;
}

function sameBody(i: number, bytes: Uint8Array, start: number, end: number, length: number): boolean {
  if (end - start !== length) return false;
  for (let k = 0; k < length; k++) if (bytes[start + k] !== ((i * 31 + k * 7) & 0xff)) return false;
  return true;
}

/** Reads everything from `cursor` in batches of random size; returns [offset, timestamp, ok] per entry. */
function readAll(log: StreamLog, cursor: StreamCursor, lengths: Map<number, number>, next: () => number): Array<[number, number, boolean]> {
  const out: Array<[number, number, boolean]> = [];
  for (;;) {
    const n = log.read(cursor, 1 + Math.floor(next() * 50), 1 + Math.floor(next() * 20_000), (offset, ts, bytes, start, end) => {
      out.push([offset, ts, sameBody(offset, bytes, start, end, lengths.get(offset) ?? -1)]);
    });
    if (n === 0) return out;
  }
}

describe('StreamLog', () => {
  it('gives every entry back whole, in order, with its offset, for random sizes across segment boundaries (property, 30 seeds)', () => {
    for (let seed = 1; seed <= 30; seed++) {
      const next = rng(seed);
      const segmentBytes = 256 + Math.floor(next() * 8192);
      const log = new StreamLog({ segmentBytes });
      const lengths = new Map<number, number>();
      const total = 500 + Math.floor(next() * 1500);
      for (let i = 0; i < total; i++) {
        // Mostly small, some bigger than a whole segment (they get a segment of their own).
        const length = next() < 0.05 ? segmentBytes + Math.floor(next() * segmentBytes) : Math.floor(next() * 600);
        lengths.set(i, length);
        expect(log.append(bodyOf(i, length), 1000 + i)).toBe(i);
      }
      const got = readAll(log, new StreamCursor(0), lengths, next);
      expect(got.length, `seed ${seed}`).toBe(total);
      expect(
        got.every(([o, ts, ok], k) => o === k && ts === 1000 + k && ok),
        `seed ${seed}`,
      ).toBe(true);
      expect(log.segmentCount).toBeGreaterThan(1);
      expect(log.bytes).toBe([...lengths.values()].reduce((a, b) => a + b, 0));
      // From the middle too: exactly the suffix.
      const from = Math.floor(next() * total);
      const suffix = readAll(log, new StreamCursor(from), lengths, next);
      expect(suffix.map(([o]) => o)).toEqual(Array.from({ length: total - from }, (_, k) => from + k));
    }
  });

  it('100,000 entries: readers at first, at 50,000 and at a time in the middle each get exactly their suffix', () => {
    const log = new StreamLog({ segmentBytes: 64 * 1024 });
    const lengths = new Map<number, number>();
    for (let i = 0; i < 100_000; i++) {
      lengths.set(i, 128);
      log.append(bodyOf(i, 128), 1_700_000_000_000 + i * 10);
    }
    const next = rng(7);
    const fromTime = log.offsetAtTime(1_700_000_000_000 + 73_333 * 10 - 5);
    expect(fromTime).toBe(73_333);
    for (const start of [0, 50_000, fromTime]) {
      const got = readAll(log, new StreamCursor(start), lengths, next);
      expect(got.length).toBe(100_000 - start);
      expect(got.every(([o, , ok], k) => o === start + k && ok)).toBe(true);
    }
  });

  it('a time seek finds the first entry at or after the time, against a linear scan (property); stamps never go down', () => {
    const next = rng(99);
    const log = new StreamLog({ segmentBytes: 2000 });
    const stamps: number[] = [];
    let t = 5000;
    for (let i = 0; i < 3000; i++) {
      // Steps forward, repeats, and now and then a clock stepping back (taken as the last stamp).
      t += next() < 0.1 ? -50 : Math.floor(next() * 3);
      log.append(bodyOf(i, 40), t);
      stamps.push(Math.max(t, stamps.at(-1) ?? -Infinity));
    }
    for (let k = 0; k < 500; k++) {
      const at = 4900 + Math.floor(next() * (t - 4800));
      const want = stamps.findIndex((s) => s >= at);
      expect(log.offsetAtTime(at)).toBe(want === -1 ? 3000 : want);
    }
    const seen: number[] = [];
    log.read(new StreamCursor(0), Infinity, Infinity, (_o, ts) => seen.push(ts));
    expect(seen).toEqual(stamps);
  });

  it('retention by bytes drops whole old segments, never the newest, and a lagging reader is moved up with the skip counted', () => {
    const log = new StreamLog({ segmentBytes: 1000, maxBytes: 3000 });
    const lengths = new Map<number, number>();
    const lagging = new StreamCursor(0);
    let dropped = 0;
    for (let i = 0; i < 100; i++) {
      lengths.set(i, 100);
      log.append(bodyOf(i, 100), i);
      dropped += log.applyRetention(i);
      expect(log.bytes).toBeLessThanOrEqual(3000 + 1000);
    }
    // Segments of 10 entries; whole ones went: the first offset held is a segment boundary.
    expect(log.firstOffset % 10).toBe(0);
    expect(dropped).toBe(log.firstOffset);
    expect(log.count).toBe(100 - dropped);
    const got = readAll(log, lagging, lengths, rng(3));
    expect(lagging.skipped).toBe(dropped);
    expect(got.map(([o]) => o)).toEqual(Array.from({ length: 100 - dropped }, (_, k) => dropped + k));
    expect(got.every(([, , ok]) => ok)).toBe(true);
  });

  it('retention by age drops a segment once its newest entry is older than the limit, and keeps the newest segment whatever its age', () => {
    const log = new StreamLog({ segmentBytes: 500, maxAgeMs: 1000 });
    for (let i = 0; i < 20; i++) log.append(bodyOf(i, 100), i * 100); // segments [0..4], [5..9], [10..14], [15..19]
    expect(log.segmentCount).toBe(4);
    expect(log.applyRetention(1400)).toBe(0); // newest of segment 0 is at 400: 1000 ms old, not older
    expect(log.applyRetention(1401)).toBe(5);
    expect(log.firstOffset).toBe(5);
    expect(log.applyRetention(1_000_000)).toBe(10);
    expect(log.firstOffset).toBe(15);
    expect(log.segmentCount).toBe(1);
    expect(log.count).toBe(5);
  });

  it('an empty log starts where it is told, and reads nothing', () => {
    const log = new StreamLog({ segmentBytes: 100 }, 42);
    expect([log.firstOffset, log.nextOffset, log.count]).toEqual([42, 42, 0]);
    expect(log.offsetAtTime(0)).toBe(42);
    const c = new StreamCursor(42);
    expect(log.read(c, 10, 10, () => undefined)).toBe(0);
    expect(log.append(new Uint8Array([1]), 5)).toBe(42);
    expect(log.read(c, 10, 10, () => undefined)).toBe(1);
    expect(c.next).toBe(43);
  });

  it('a batch stops at its byte budget but always carries at least one entry', () => {
    const log = new StreamLog({ segmentBytes: 1 << 20 });
    for (let i = 0; i < 10; i++) log.append(bodyOf(i, 1000), i);
    const c = new StreamCursor(0);
    expect(log.read(c, 100, 2500, () => undefined)).toBe(2);
    expect(log.read(c, 100, 10, () => undefined)).toBe(1);
    expect(c.next).toBe(3);
  });
});
