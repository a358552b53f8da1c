import { describe, expect, it } from 'vitest';
import {
  compileHeadersBinding,
  headerValuesEqual,
  matchHeaders,
  parseXMatch,
  XMatch,
  type MessageHeaders,
} from '../../src/router/headers-match.js';
import { RouterError } from '../../src/router/router-error.js';

type Case = readonly [label: string, args: Record<string, unknown>, headers: MessageHeaders | null, expected: boolean];

// [what it shows, binding arguments, message headers, matches?]
const CASES: readonly Case[] = [
  // Zero matchable arguments: all → everything, any → nothing.
  ['all, no args, no headers', {}, null, true],
  ['all, no args, some headers', {}, { a: 1 }, true],
  ['explicit all, no args', { 'x-match': 'all' }, { a: 1 }, true],
  ['any, no args', { 'x-match': 'any' }, { a: 1 }, false],
  ['any, no args, no headers', { 'x-match': 'any' }, null, false],
  ['any, only x- args (ignored)', { 'x-match': 'any', 'x-foo': 'bar' }, { 'x-foo': 'bar' }, false],
  ['all, only x- args (ignored)', { 'x-foo': 'bar' }, {}, true],
  ['all-with-x, no args at all', { 'x-match': 'all-with-x' }, null, true],
  ['any-with-x, no args at all', { 'x-match': 'any-with-x' }, { a: 1 }, false],
  // all
  ['all, every pair present', { a: 1, b: 'x' }, { a: 1, b: 'x', c: 3 }, true],
  ['all, one missing', { a: 1, b: 'x' }, { a: 1 }, false],
  ['all, one different', { a: 1, b: 'x' }, { a: 2, b: 'x' }, false],
  ['all, no headers', { a: 1 }, null, false],
  ['all ignores x- args', { 'x-match': 'all', a: 1, 'x-foo': 'bar' }, { a: 1 }, true],
  // any
  ['any, one pair matches', { 'x-match': 'any', a: 1, b: 'x' }, { b: 'x' }, true],
  ['any, a key with the wrong value', { 'x-match': 'any', a: 1, b: 'x' }, { a: 3 }, false],
  ['any, no headers', { 'x-match': 'any', a: 1 }, null, false],
  ['any ignores x- args', { 'x-match': 'any', 'x-foo': 'bar', a: 1 }, { 'x-foo': 'bar' }, false],
  // -with-x
  ['all-with-x needs the x- arg', { 'x-match': 'all-with-x', a: 1, 'x-foo': 'bar' }, { a: 1 }, false],
  ['all-with-x, x- arg present', { 'x-match': 'all-with-x', a: 1, 'x-foo': 'bar' }, { a: 1, 'x-foo': 'bar' }, true],
  ['any-with-x matches on an x- arg', { 'x-match': 'any-with-x', 'x-foo': 'bar', a: 1 }, { 'x-foo': 'bar' }, true],
  ['-with-x still skips x-match itself', { 'x-match': 'all-with-x' }, { 'x-match': 'nope' }, true],
  // void (no value): presence only
  ['void arg, header present', { a: null }, { a: 'anything' }, true],
  ['void arg, header null', { a: null }, { a: null }, true],
  ['void arg, header absent', { a: null }, { b: 1 }, false],
  ['undefined arg is void too', { a: undefined }, { a: 7 }, true],
  ['any with void arg', { 'x-match': 'any', a: null, b: 2 }, { a: false }, true],
  // value types
  ['string vs number', { a: '1' }, { a: 1 }, false],
  ['boolean vs string', { a: true }, { a: 'true' }, false],
  ['number vs bigint, same integer', { a: 5 }, { a: 5n }, true],
  ['null header vs value', { a: 1 }, { a: null }, false],
  ['undefined header counts as absent', { a: null }, { a: undefined }, false],
  ['arrays deep-equal', { a: [1, 'x', [true]] }, { a: [1, 'x', [true]] }, true],
  ['arrays differ', { a: [1, 2] }, { a: [2, 1] }, false],
  ['tables deep-equal, key order free', { a: { p: 1, q: [2] } }, { a: { q: [2], p: 1 } }, true],
  ['tables differ in keys', { a: { p: 1 } }, { a: { p: 1, q: 2 } }, false],
  ['byte arrays', { a: new Uint8Array([1, 2]) }, { a: new Uint8Array([1, 2]) }, true],
  ['byte arrays differ', { a: new Uint8Array([1, 2]) }, { a: new Uint8Array([1, 3]) }, false],
  ['timestamps', { a: new Date(1000) }, { a: new Date(1000) }, true],
  // only own properties of the headers count
  ['inherited property is absent', { constructor: null }, {}, false],
  ['null-prototype headers', { a: 1 }, Object.assign(Object.create(null) as Record<string, number>, { a: 1 }), true],
];

describe('headers match - case table', () => {
  it.each(CASES)('%s', (_label, args, headers, expected) => {
    expect(matchHeaders(compileHeadersBinding(args), headers)).toBe(expected);
  });
});

describe('headers match - x-match parsing', () => {
  it('defaults to all when absent or undefined', () => {
    expect(parseXMatch(undefined)).toBe(XMatch.all);
    expect(parseXMatch({})).toBe(XMatch.all);
    expect(parseXMatch({ 'x-match': undefined })).toBe(XMatch.all);
  });

  it.each(['all', 'any', 'all-with-x', 'any-with-x'])('accepts %s', (mode) => {
    expect(parseXMatch({ 'x-match': mode })).toBe(mode);
    expect(compileHeadersBinding({ 'x-match': mode }).mode).toBe(mode);
  });

  it('refuses an unknown mode with precondition_failed and RabbitMQ wording', () => {
    expect.assertions(3);
    try {
      parseXMatch({ 'x-match': 'some' });
    } catch (e) {
      expect(e).toBeInstanceOf(RouterError);
      expect((e as RouterError).code).toBe('precondition_failed');
      expect((e as RouterError).message).toBe("Invalid x-match field value 'some'; expected all, any, all-with-x, or any-with-x");
    }
  });

  it('refuses a non-string mode', () => {
    expect(() => parseXMatch({ 'x-match': 1 })).toThrow(/Invalid x-match field type number \(value 1\)/);
    expect(() => parseXMatch({ 'x-match': null })).toThrow(/Invalid x-match field type void/);
  });

  it('compiles only the matchable arguments', () => {
    const b = compileHeadersBinding({ 'x-match': 'any', a: 1, 'x-b': 2, c: null });
    expect(b.matchAll).toBe(false);
    expect(b.names).toEqual(['a', 'c']);
    expect(b.presenceOnly).toEqual([false, true]);
    const w = compileHeadersBinding({ 'x-match': 'all-with-x', a: 1, 'x-b': 2 });
    expect(w.matchAll).toBe(true);
    expect(w.names).toEqual(['a', 'x-b']);
  });
});

describe('headers match - value equality', () => {
  it('compares primitives strictly, bigints by integer value', () => {
    expect(headerValuesEqual('a', 'a')).toBe(true);
    expect(headerValuesEqual(1, 1.0)).toBe(true);
    expect(headerValuesEqual(1, '1')).toBe(false);
    expect(headerValuesEqual(2n, 2)).toBe(true);
    expect(headerValuesEqual(2n, 2.5)).toBe(false);
    expect(headerValuesEqual(2n, '2')).toBe(false);
    expect(headerValuesEqual(null, undefined)).toBe(false);
  });

  it('compares containers structurally and never across kinds', () => {
    expect(headerValuesEqual([], {})).toBe(false);
    expect(headerValuesEqual({}, [])).toBe(false);
    expect(headerValuesEqual(new Uint8Array([1]), [1])).toBe(false);
    expect(headerValuesEqual([1], new Uint8Array([1]))).toBe(false);
    expect(headerValuesEqual(new Date(5), 5)).toBe(false);
    expect(headerValuesEqual({ a: { b: [1n] } }, { a: { b: [1] } })).toBe(true);
    expect(headerValuesEqual({ a: undefined }, { b: undefined })).toBe(false);
  });
});
