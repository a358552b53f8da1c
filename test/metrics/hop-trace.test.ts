import { describe, expect, it } from 'vitest';
import { HOP_NAMES, HopTrace } from '../../src/metrics/hop-trace.js';
import { monotonicMs } from '../../src/metrics/clock.js';

describe('HopTrace', () => {
  it('due - one publish in sampleEvery is traced; 0 traces none', () => {
    const every4 = new HopTrace(4);
    const picks = Array.from({ length: 12 }, () => every4.due());
    expect(picks.map((p, i) => (p ? i : -1)).filter((i) => i >= 0)).toEqual([3, 7, 11]);
    const off = new HopTrace(0);
    expect(Array.from({ length: 100 }, () => off.due()).some(Boolean)).toBe(false);
    const all = new HopTrace(1);
    expect(Array.from({ length: 5 }, () => all.due()).every(Boolean)).toBe(true);
    expect(() => new HopTrace(-1)).toThrow(RangeError);
  });

  it('hops - each traced publish is recorded once, at the end of the chunk that read it, hop by hop', () => {
    const trace = new HopTrace(1);
    const now = monotonicMs();
    // front-in, shard-in 0.1 ms later, shard-out 0.02 ms after that; read now.
    trace.read(now - 0.5, now - 0.4, now - 0.38);
    trace.read(now - 0.3, now - 0.25, now - 0.2);
    expect(trace.export().traced).toBe(0); // not before the chunk's sockets were written
    trace.chunkEnd();
    trace.chunkEnd(); // an empty chunk records nothing
    const e = trace.export();
    expect(e.traced).toBe(2);
    for (const name of HOP_NAMES) expect(e.hops[name].count).toBe(2);
    expect(e.hops.inbound.min).toBeCloseTo(50, 0);
    expect(e.hops.inbound.max).toBeCloseTo(100, 0);
    expect(e.hops.shard.min).toBeCloseTo(20, 0);
    expect(e.hops.shard.max).toBeCloseTo(50, 0);
    // read and written are real clock readings: outbound ≥ 200 µs and ≥ 380 µs, total ≥ 300 and 500.
    expect(e.hops.outbound.min).toBeGreaterThanOrEqual(199);
    expect(e.hops.total.max).toBeGreaterThanOrEqual(499);
    expect(e.hops.total.p50).not.toBeNull();
  });
});

describe('LatencyHistogram export and since', () => {
  it('since - subtracting an earlier export leaves exactly what was recorded in between', async () => {
    const { LatencyHistogram } = await import('../../src/metrics/latency-histogram.js');
    const h = new LatencyHistogram();
    for (let i = 0; i < 1000; i++) h.record(10 + (i % 50));
    const earlier = h.export();
    const window = new LatencyHistogram();
    for (let i = 0; i < 500; i++) {
      const v = 2000 + i * 3;
      h.record(v);
      window.record(v);
    }
    // Through JSON, as GET /v1/stats/latency carries it.
    const later = LatencyHistogram.fromExport(JSON.parse(JSON.stringify(h.export())));
    const diff = later.since(JSON.parse(JSON.stringify(earlier)));
    expect(diff.count).toBe(500);
    for (const p of [1, 50, 90, 99, 99.9]) expect(diff.percentile(p)).toBeCloseTo(window.percentile(p), -1);
    expect(diff.min).toBeGreaterThanOrEqual(1900);
    expect(diff.max).toBeLessThanOrEqual(h.max);
    expect(later.since(later.export()).count).toBe(0);
  });
});
