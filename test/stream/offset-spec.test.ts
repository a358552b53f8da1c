import { describe, expect, it } from 'vitest';
import { parseStreamOffset, resolveStart, StreamOffsetError } from '../../src/stream/offset-spec.js';
import { StreamLog } from '../../src/stream/stream-log.js';

const NOW = Date.parse('2026-12-06T12:00:00Z');

describe('parseStreamOffset', () => {
  it('takes the named positions, offsets in every integer form, times and intervals', () => {
    for (const k of ['first', 'last', 'next', 'stored'] as const) expect(parseStreamOffset(k, NOW)).toEqual({ kind: k });
    expect(parseStreamOffset(undefined, NOW)).toEqual({ kind: 'next' });
    expect(parseStreamOffset(0, NOW)).toEqual({ kind: 'offset', offset: 0 });
    expect(parseStreamOffset(50_000, NOW)).toEqual({ kind: 'offset', offset: 50_000 });
    expect(parseStreamOffset(123n, NOW)).toEqual({ kind: 'offset', offset: 123 });
    expect(parseStreamOffset('77', NOW)).toEqual({ kind: 'offset', offset: 77 });
    expect(parseStreamOffset('2026-12-06T11:00:00Z', NOW)).toEqual({ kind: 'timestamp', ms: NOW - 3600_000 });
    expect(parseStreamOffset({ timestamp: 1_700_000_000_000 }, NOW)).toEqual({ kind: 'timestamp', ms: 1_700_000_000_000 });
    expect(parseStreamOffset({ timestamp: '2026-12-06T11:59:00.000Z' }, NOW)).toEqual({ kind: 'timestamp', ms: NOW - 60_000 });
    expect(parseStreamOffset('10m', NOW)).toEqual({ kind: 'timestamp', ms: NOW - 600_000 });
    expect(parseStreamOffset('7D', NOW)).toEqual({ kind: 'timestamp', ms: NOW - 7 * 86_400_000 });
  });

  it('refuses what is not an offset spec, saying what is accepted', () => {
    for (const bad of [
      -1,
      '-5',
      1.5,
      'begin',
      '',
      'soon',
      {},
      { timestamp: 'yesterday' },
      { timestamp: -1 },
      [1],
      true,
      2n ** 60n,
      -3n,
      Number.MAX_SAFE_INTEGER + 2,
    ]) {
      expect(() => parseStreamOffset(bad, NOW), JSON.stringify(String(bad))).toThrow(StreamOffsetError);
    }
    expect(() => parseStreamOffset(-1, NOW)).toThrow(/negative.*expected "first"/);
  });
});

describe('resolveStart', () => {
  const log = new StreamLog({ segmentBytes: 1000 });
  for (let i = 0; i < 100; i++) log.append(new Uint8Array(10), 1000 + i * 10);

  it('maps each spec onto the log', () => {
    expect(resolveStart({ kind: 'first' }, log, undefined)).toBe(0);
    expect(resolveStart({ kind: 'last' }, log, undefined)).toBe(99);
    expect(resolveStart({ kind: 'next' }, log, undefined)).toBe(100);
    expect(resolveStart({ kind: 'offset', offset: 40 }, log, undefined)).toBe(40);
    expect(resolveStart({ kind: 'offset', offset: 100 }, log, undefined)).toBe(100);
    expect(resolveStart({ kind: 'timestamp', ms: 1255 }, log, undefined)).toBe(26);
    expect(resolveStart({ kind: 'timestamp', ms: 0 }, log, undefined)).toBe(0);
    expect(resolveStart({ kind: 'timestamp', ms: 99_999 }, log, undefined)).toBe(100);
    expect(resolveStart({ kind: 'stored' }, log, 41)).toBe(42);
    expect(resolveStart({ kind: 'last' }, new StreamLog({ segmentBytes: 10 }), undefined)).toBe(0);
  });

  it('refuses an offset past the end and "stored" with nothing stored', () => {
    expect(() => resolveStart({ kind: 'offset', offset: 101 }, log, undefined)).toThrow(/past the end of the stream \(next offset 100\)/);
    expect(() => resolveStart({ kind: 'stored' }, log, undefined)).toThrow(/no stored offset/);
  });
});
