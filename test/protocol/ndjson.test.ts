/**
 * NDJSON batch framing: forEachLine hands out exact [start, end) ranges of the non-empty lines, drops
 * one trailing CR, and never copies.
 */
import { describe, expect, it } from 'vitest';
import { forEachLine } from '../../src/protocol/ndjson.js';
import { Prng, testSeed } from '../helpers/prng.js';

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Runs forEachLine over `text`, returning the ranges, the lines they cut out and the returned count. */
function lines(body: Uint8Array | string): { ranges: Array<[number, number]>; texts: string[]; count: number } {
  const bytes = typeof body === 'string' ? enc.encode(body) : body;
  const ranges: Array<[number, number]> = [];
  const count = forEachLine(bytes, (start, end) => {
    ranges.push([start, end]);
  });
  return { ranges, texts: ranges.map(([s, e]) => dec.decode(bytes.subarray(s, e))), count };
}

describe('forEachLine', () => {
  it('ndjson - one line per message, ranges are exact byte offsets', () => {
    const r = lines('{"a":1}\n{"b":22}\n');
    expect(r.ranges).toEqual([
      [0, 7],
      [8, 16],
    ]);
    expect(r.texts).toEqual(['{"a":1}', '{"b":22}']);
    expect(r.count).toBe(2);
  });

  it('ndjson - the last line needs no trailing newline', () => {
    const r = lines('one\ntwo');
    expect(r.ranges).toEqual([
      [0, 3],
      [4, 7],
    ]);
    expect(r.count).toBe(2);
  });

  it('ndjson - a single line without any newline is one message', () => {
    expect(lines('solo')).toEqual({ ranges: [[0, 4]], texts: ['solo'], count: 1 });
  });

  it('ndjson - empty lines are skipped (leading, inner, trailing)', () => {
    const r = lines('\n\na\n\n\nb\n\n');
    expect(r.texts).toEqual(['a', 'b']);
    expect(r.ranges).toEqual([
      [2, 3],
      [6, 7],
    ]);
    expect(r.count).toBe(2);
  });

  it('ndjson - CRLF line ends: the CR is not part of the range', () => {
    const r = lines('a\r\nbc\r\n\r\nd');
    expect(r.ranges).toEqual([
      [0, 1],
      [3, 5],
      [9, 10],
    ]);
    expect(r.texts).toEqual(['a', 'bc', 'd']);
  });

  it('ndjson - a CR at the end of a body without a final newline is dropped too', () => {
    expect(lines('a\nb\r').ranges).toEqual([
      [0, 1],
      [2, 3],
    ]);
  });

  it('ndjson - only one CR is dropped; a CR inside a line stays', () => {
    const r = lines('a\rb\n\r\r\n');
    expect(r.texts).toEqual(['a\rb', '\r']);
    expect(r.ranges).toEqual([
      [0, 3],
      [4, 5],
    ]);
  });

  it.each(['', '\n', '\n\n\n', '\r\n', '\r\n\r\n', '\r', '\n\r\n\n'])('ndjson - %j holds no message', (body) => {
    const r = lines(body);
    expect(r.count).toBe(0);
    expect(r.ranges).toEqual([]);
  });

  it('ndjson - whitespace-only lines are messages (lines are not parsed as JSON)', () => {
    expect(lines(' \n\t\n').texts).toEqual([' ', '\t']);
  });

  it('ndjson - multi-byte UTF-8 and binary bytes are cut on newline bytes only', () => {
    const body = new Uint8Array([0xe6, 0x97, 0xa5, 0x0a, 0x00, 0xff, 0x0d, 0x0d, 0x0a, 0x80]);
    const r = lines(body);
    expect(r.ranges).toEqual([
      [0, 3],
      [4, 7],
      [9, 10],
    ]);
  });

  it('ndjson - ranges index the given view, not its backing buffer', () => {
    const backing = enc.encode('XXXX\nab\ncd');
    const view = backing.subarray(5); // "ab\ncd"
    const r = lines(view);
    expect(r.ranges).toEqual([
      [0, 2],
      [3, 5],
    ]);
    expect(r.texts).toEqual(['ab', 'cd']);
  });

  it('ndjson - the count equals the number of callbacks and ranges are increasing and disjoint', () => {
    const seed = testSeed();
    const prng = new Prng(seed);
    const pieces = ['a', 'bc', '{"k":1}', '', '\r', ' ', 'é'];
    for (let round = 0; round < 200; round++) {
      const parts: string[] = [];
      const n = prng.int(0, 12);
      for (let i = 0; i < n; i++) parts.push(prng.pick(pieces) + prng.pick(pieces) + (prng.chance(0.3) ? '\r' : ''));
      const text = parts.join('\n') + (prng.chance(0.5) ? '\n' : '');
      const r = lines(text);
      // Reference: split on LF, drop one trailing CR, keep the non-empty lines.
      const want = text
        .split('\n')
        .map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l))
        .filter((l) => l.length > 0);
      expect(r.texts, `seed ${seed}, body ${JSON.stringify(text)}`).toEqual(want);
      expect(r.count).toBe(r.ranges.length);
      for (let i = 1; i < r.ranges.length; i++) expect(r.ranges[i][0]).toBeGreaterThan(r.ranges[i - 1][1]);
    }
  });
});
