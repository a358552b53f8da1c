import { describe, expect, it } from 'vitest';
import { ReplyCode } from '../../../src/protocol/amqp/constants.js';
import { AmqpError } from '../../../src/protocol/amqp/errors.js';
import { MAX_TABLE_DEPTH, MAX_TABLE_ENTRIES, WireReader, WireWriter } from '../../../src/protocol/amqp/wire.js';
import type { HeaderTable, HeaderValue } from '../../../src/protocol/field-table.js';
import { bytes, concat, RICH_TABLE } from './samples.js';

// Hand-built field table bytes, independent of the writer under test.
const u8 = (...b: number[]): Uint8Array => Uint8Array.from(b);
function u32(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n);
  return b;
}
const shortstr = (s: string): Uint8Array => concat(u8(bytes(s).length), bytes(s));
const tag = (c: string): Uint8Array => u8(c.charCodeAt(0));
/** `[u32 size][entries]`. */
const table = (...entries: Uint8Array[]): Uint8Array => {
  const body = concat(...entries);
  return concat(u32(body.length), body);
};
const entry = (key: string, type: string, value: Uint8Array): Uint8Array => concat(shortstr(key), tag(type), value);

function readTable(b: Uint8Array): HeaderTable {
  const r = new WireReader(b);
  const t = r.table();
  r.done('table');
  return t;
}

function expect502(fn: () => unknown): AmqpError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(AmqpError);
  expect((caught as AmqpError).code).toBe(ReplyCode.syntaxError);
  return caught as AmqpError;
}

describe('wire - reader primitives', () => {
  it('reads big-endian integers, strings and packed bits', () => {
    const r = new WireReader(
      concat(
        u8(0xfe),
        u8(0x12, 0x34),
        u8(0xde, 0xad, 0xbe, 0xef),
        u8(0, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff),
        shortstr('héllo'),
        u32(3),
        u8(1, 2, 3),
        u32(2),
        bytes('ok'),
        u8(0b1000_0101, 0b1),
      ),
    );
    expect(r.octet()).toBe(0xfe);
    expect(r.short()).toBe(0x1234);
    expect(r.long()).toBe(0xdeadbeef);
    expect(r.longlong()).toBe(Number.MAX_SAFE_INTEGER);
    expect(r.shortstr()).toBe('héllo');
    expect(r.longstr()).toEqual(u8(1, 2, 3));
    expect(r.longstrText()).toBe('ok');
    expect(r.bits(9)).toEqual([true, false, true, false, false, false, false, true, true]);
    expect(r.remaining).toBe(0);
    r.done('all');
  });

  it('a longlong above 2^53 loses precision but not magnitude', () => {
    expect(new WireReader(u8(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)).longlong()).toBe(2 ** 64);
  });

  it('longstr() is a view of the input; longstrText and shortstr are strings', () => {
    const b = concat(u32(2), u8(7, 8));
    const v = new WireReader(b).longstr();
    b[5] = 9;
    expect(v).toEqual(u8(7, 9));
  });

  it('every read past the end is 502, naming what was read', () => {
    const reads: [string, (r: WireReader) => unknown, Uint8Array][] = [
      ['octet', (r) => r.octet(), u8()],
      ['short', (r) => r.short(), u8(1)],
      ['long', (r) => r.long(), u8(1, 2, 3)],
      ['longlong', (r) => r.longlong(), u8(1, 2, 3, 4, 5, 6, 7)],
      ['shortstr', (r) => r.shortstr('exchange'), u8(3, 0x61, 0x62)],
      ['longstr', (r) => r.longstr(), concat(u32(5), u8(1))],
      ['longstrText', (r) => r.longstrText(), concat(u32(5), u8(1))],
      ['bits', (r) => r.bits(9), u8(0xff)],
      ['table', (r) => r.table(), concat(u32(10), u8(1))],
      ['array', (r) => r.array(), u32(1)],
    ];
    for (const [name, read, input] of reads) {
      const e = expect502(() => read(new WireReader(input)));
      expect(e.message.length, name).toBeGreaterThan(0);
    }
    expect(expect502(() => new WireReader(u8(3, 0x61)).shortstr('exchange')).message).toContain('exchange');
  });

  it('reading inside a window stops at its end, not the array end', () => {
    const r = new WireReader(u8(1, 2, 3, 4), 1, 3);
    expect(r.short()).toBe(0x0203);
    expect502(() => r.octet());
  });

  it('done() refuses leftover bytes', () => {
    const r = new WireReader(u8(1, 2));
    r.octet();
    expect(expect502(() => r.done('the arguments')).message).toContain('1 unexpected');
  });
});

describe('wire - decoding field tables from hand-written bytes', () => {
  it('decodes every field type RabbitMQ, amqplib and pika send', () => {
    const f32 = new Uint8Array(4);
    new DataView(f32.buffer).setFloat32(0, 1.5);
    const f64 = new Uint8Array(8);
    new DataView(f64.buffer).setFloat64(0, -2.25);
    const t = readTable(
      table(
        entry('t1', 't', u8(1)),
        entry('t0', 't', u8(0)),
        entry('b', 'b', u8(0x80)),
        entry('B', 'B', u8(0x80)),
        entry('s', 's', u8(0xff, 0xfe)),
        entry('u', 'u', u8(0xff, 0xfe)),
        entry('I', 'I', u8(0xff, 0xff, 0xff, 0xfe)),
        entry('i', 'i', u8(0xff, 0xff, 0xff, 0xfe)),
        entry('l', 'l', u8(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe)),
        entry('lbig', 'l', u8(0, 0, 1, 0, 0, 0, 0, 1)),
        entry('L', 'L', u8(0, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)),
        entry('f', 'f', f32),
        entry('d', 'd', f64),
        entry('D', 'D', concat(u8(2), u8(0, 0, 0x30, 0x39))), // 12345 × 10^-2
        entry('Dneg', 'D', concat(u8(1), u8(0xff, 0xff, 0xff, 0xf6))), // -10 × 10^-1
        entry('S', 'S', concat(u32(4), bytes('naïv').subarray(0, 4))),
        entry('Sutf8', 'S', concat(u32(bytes('名前').length), bytes('名前'))),
        entry('Sbin', 'S', concat(u32(3), u8(0xff, 0x00, 0xc3))),
        entry('Sempty', 'S', u32(0)),
        entry('T', 'T', u8(0, 0, 0, 0, 0x65, 0x53, 0xf1, 0x00)),
        entry('F', 'F', table(entry('inner', 'F', table(entry('k', 'S', concat(u32(1), bytes('v'))))))),
        entry('A', 'A', table(tag('I'), u8(0, 0, 0, 7), tag('S'), u32(1), bytes('x'), tag('V'), tag('A'), u32(0), tag('F'), u32(0))),
        entry('Aempty', 'A', u32(0)),
        entry('V', 'V', u8()),
        entry('x', 'x', concat(u32(3), u8(0, 0xff, 7))),
        entry('', 'S', concat(u32(9), bytes('empty key'))),
      ),
    );
    expect(t).toEqual({
      t1: true,
      t0: false,
      b: -128,
      B: 128,
      s: -2,
      u: 0xfffe,
      I: -2,
      i: 0xffff_fffe,
      l: -2,
      lbig: 2 ** 40 + 1,
      L: Number.MAX_SAFE_INTEGER,
      f: 1.5,
      d: -2.25,
      D: 123.45,
      Dneg: -1,
      S: 'naï',
      Sutf8: '名前',
      Sbin: u8(0xff, 0x00, 0xc3),
      Sempty: '',
      T: 0x6553f100,
      F: { inner: { k: 'v' } },
      A: [7, 'x', null, [], {}],
      Aempty: [],
      V: null,
      x: u8(0, 0xff, 7),
      '': 'empty key',
    });
    expect(t.Sbin).toBeInstanceOf(Uint8Array);
  });

  it('an S value cut in the middle of a character is bytes, not a damaged string', () => {
    // 'naïv' cut after 4 bytes ends inside ï (c3 af): still valid here, so check a real cut.
    const t = readTable(table(entry('S', 'S', concat(u32(3), u8(0x6e, 0x61, 0xc3)))));
    expect(t.S).toEqual(u8(0x6e, 0x61, 0xc3));
  });

  it('bytes and binary strings are copies: reusing the frame does not change them', () => {
    const b = table(
      entry('x', 'x', concat(u32(2), u8(1, 2))),
      entry('S', 'S', concat(u32(1), u8(0xff))),
      entry('k', 'S', concat(u32(1), bytes('v'))),
    );
    const t = readTable(b);
    b.fill(0);
    expect(t).toEqual({ x: u8(1, 2), S: u8(0xff), k: 'v' });
  });

  it('a repeated key keeps the last value', () => {
    expect(readTable(table(entry('k', 'I', u8(0, 0, 0, 1)), entry('k', 'I', u8(0, 0, 0, 2))))).toEqual({ k: 2 });
  });

  it('a __proto__ key is an ordinary key, not a prototype', () => {
    const t = readTable(table(entry('__proto__', 'F', table(entry('polluted', 't', u8(1))))));
    expect(Object.keys(t)).toEqual(['__proto__']);
    expect(Object.getPrototypeOf(t)).toBe(Object.prototype);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('an unknown type, a value overrunning its table, or a size beyond the input is 502', () => {
    expect502(() => readTable(table(entry('k', 'Z', u8()))));
    // The entry's long claims 4 bytes but the table's size leaves 2: bounded by the table, not the input.
    const overrun = concat(u32(8), shortstr('k'), tag('I'), u8(0, 0, 0, 0), u8(9, 9));
    expect502(() => new WireReader(overrun).table());
    expect502(() => readTable(concat(u32(100), entry('k', 'V', u8()))));
    expect502(() => readTable(table(entry('k', 'S', u32(5)))));
    expect502(() => readTable(table(concat(u8(5), bytes('ab')))));
    // Keys are shortstrs and must be UTF-8.
    expect502(() => readTable(table(concat(u8(1, 0xff), tag('V')))));
  });

  it(`nesting deeper than ${MAX_TABLE_DEPTH} is 502, ${MAX_TABLE_DEPTH} is fine`, () => {
    const nested = (depth: number, kind: 'F' | 'A'): Uint8Array => {
      let inner = table();
      for (let d = 1; d < depth; d++) inner = kind === 'F' ? table(entry('n', 'F', inner)) : table(tag('A'), inner);
      return kind === 'F' ? inner : concat(inner);
    };
    expect(() => readTable(nested(MAX_TABLE_DEPTH, 'F'))).not.toThrow();
    expect502(() => readTable(nested(MAX_TABLE_DEPTH + 1, 'F')));
    expect(() => new WireReader(nested(MAX_TABLE_DEPTH, 'A')).array()).not.toThrow();
    expect502(() => new WireReader(nested(MAX_TABLE_DEPTH + 1, 'A')).array());
    // Mixed, as x-death is: table → array → table → …
    let mixed = table();
    for (let d = 1; d <= MAX_TABLE_DEPTH; d++)
      mixed = d % 2 ? table(entry('a', 'A', concat(u32(mixed.length + 1), tag('F'), mixed))) : mixed;
    expect502(() => readTable(mixed));
  });

  it('a hostile depth fails fast without blowing the stack', () => {
    // 100k nested arrays in 500 kB: refused at level 17.
    const depth = 100_000;
    const b = new Uint8Array(depth * 5 + 4);
    for (let d = 0; d < depth; d++) {
      const at = d * 5;
      new DataView(b.buffer).setUint32(at, b.length - at - 4);
      b[at + 4] = 0x41;
    }
    expect502(() => new WireReader(b).array());
  });

  it(`more than ${MAX_TABLE_ENTRIES} entries (nested and array elements included) is 502`, () => {
    const entries = (n: number): Uint8Array[] => Array.from({ length: n }, (_, i) => entry(`k${i}`, 'V', u8()));
    expect(Object.keys(readTable(table(...entries(MAX_TABLE_ENTRIES))))).toHaveLength(MAX_TABLE_ENTRIES);
    expect502(() => readTable(table(...entries(5000))));
    expect502(() => readTable(table(...entries(MAX_TABLE_ENTRIES + 1))));
    // 1 entry + 4096 void elements in an array = 4097.
    const voids = new Uint8Array(MAX_TABLE_ENTRIES).fill(0x56);
    expect502(() => readTable(table(entry('a', 'A', concat(u32(voids.length), voids)))));
    // The budget is per table read: two maximal tables in a row are both fine.
    const r = new WireReader(concat(table(...entries(MAX_TABLE_ENTRIES)), table(...entries(MAX_TABLE_ENTRIES))));
    r.table();
    r.table();
  });
});

describe('wire - encoding field tables', () => {
  function encode(t: HeaderTable): Uint8Array {
    const w = new WireWriter(8);
    w.table(t);
    return w.take();
  }

  it('round-trips a HeaderTable of every value kind', () => {
    expect(readTable(encode(RICH_TABLE))).toEqual(RICH_TABLE);
  });

  it('chooses the type by value: S, t, V, x, A, F, I / l / d for numbers', () => {
    const typeOf = (v: HeaderValue): string => String.fromCharCode(encode({ k: v })[6]);
    expect(typeOf('s')).toBe('S');
    expect(typeOf(true)).toBe('t');
    expect(typeOf(null)).toBe('V');
    expect(typeOf(u8(1))).toBe('x');
    expect(typeOf([1])).toBe('A');
    expect(typeOf({ a: 1 })).toBe('F');
    expect(typeOf(0)).toBe('I');
    expect(typeOf(-(2 ** 31))).toBe('I');
    expect(typeOf(2 ** 31 - 1)).toBe('I');
    expect(typeOf(2 ** 31)).toBe('l');
    expect(typeOf(-(2 ** 31) - 1)).toBe('l');
    expect(typeOf(Number.MAX_SAFE_INTEGER)).toBe('l');
    expect(typeOf(Number.MIN_SAFE_INTEGER)).toBe('l');
    expect(typeOf(2 ** 53)).toBe('d');
    expect(typeOf(0.5)).toBe('d');
    expect(typeOf(Number.NaN)).toBe('d');
    expect(typeOf(Number.POSITIVE_INFINITY)).toBe('d');
  });

  it('numbers round-trip exactly, including int64 extremes and non-finite doubles', () => {
    const t = {
      a: Number.MAX_SAFE_INTEGER,
      b: Number.MIN_SAFE_INTEGER,
      c: -1,
      d: 2 ** 32,
      e: -(2 ** 40) - 7,
      f: 1e300,
      g: Number.NEGATIVE_INFINITY,
      h: -0.5,
    };
    expect(readTable(encode(t))).toEqual(t);
    expect(Number.isNaN(readTable(encode({ n: Number.NaN })).n)).toBe(true);
  });

  it('writes the exact bytes of a small table', () => {
    expect([...encode({ a: 1, b: 'x' })]).toEqual([0, 0, 0, 15, 1, 0x61, 0x49, 0, 0, 0, 1, 1, 0x62, 0x53, 0, 0, 0, 1, 0x78]);
  });

  it('leaves out keys whose value is undefined', () => {
    expect(readTable(encode({ a: 1, b: undefined } as unknown as HeaderTable))).toEqual({ a: 1 });
  });

  it('refuses a cycle or nesting past the limit with RangeError, and values it cannot type with TypeError', () => {
    const cyclic: Record<string, HeaderValue> = {};
    cyclic.self = cyclic;
    expect(() => encode(cyclic)).toThrow(RangeError);
    let deep: HeaderTable = {};
    for (let d = 1; d < MAX_TABLE_DEPTH; d++) deep = { n: deep };
    expect(() => encode(deep)).not.toThrow();
    expect(() => encode({ n: deep })).toThrow(RangeError);
    for (const bad of [() => 1, 10n, new Date(0), undefined, Symbol('s')]) {
      expect(() => encode({ list: [bad as unknown as HeaderValue] })).toThrow(TypeError);
    }
    expect(() => encode({ ['k'.repeat(256)]: 1 })).toThrow(RangeError);
  });
});

describe('wire - writer', () => {
  it('grows by doubling, keeps what was written, and take() is a copy while view() is not', () => {
    const w = new WireWriter(16);
    for (let i = 0; i < 1000; i++) w.long(i);
    expect(w.length).toBe(4000);
    const copy = w.take();
    const view = w.view();
    expect([...copy]).toEqual([...view]);
    const r = new WireReader(copy);
    for (let i = 0; i < 1000; i++) expect(r.long()).toBe(i);
    w.reset();
    expect(w.length).toBe(0);
    w.octet(0xaa);
    expect(view[0]).toBe(0xaa);
    expect(copy[0]).toBe(0);
  });

  it('writes every primitive so the reader reads it back', () => {
    const w = new WireWriter();
    w.octet(255);
    w.short(65535);
    w.long(0xffff_ffff);
    w.longlong(Number.MAX_SAFE_INTEGER);
    w.timestamp(1_700_000_000);
    w.shortstr('ü'.repeat(127));
    w.longstr('long ü');
    w.longstr(u8(1, 2));
    w.bits([true, false, true, true, false, false, false, false, true]);
    w.array([1, 'a', null]);
    w.fieldValue('v');
    const r = new WireReader(w.take());
    expect(r.octet()).toBe(255);
    expect(r.short()).toBe(65535);
    expect(r.long()).toBe(0xffff_ffff);
    expect(r.longlong()).toBe(Number.MAX_SAFE_INTEGER);
    expect(r.timestamp()).toBe(1_700_000_000);
    expect(r.shortstr()).toBe('ü'.repeat(127));
    expect(r.longstrText()).toBe('long ü');
    expect([...r.longstr()]).toEqual([1, 2]);
    expect(r.bits(9)).toEqual([true, false, true, true, false, false, false, false, true]);
    expect(r.array()).toEqual([1, 'a', null]);
    expect(r.octet()).toBe(0x53);
    expect(r.longstrText()).toBe('v');
    r.done('all');
  });

  it('refuses values that do not fit their type', () => {
    const w = new WireWriter();
    expect(() => w.octet(256)).toThrow(RangeError);
    expect(() => w.short(-1)).toThrow(RangeError);
    expect(() => w.long(2 ** 32)).toThrow(RangeError);
    expect(() => w.long(Number.NaN)).toThrow(RangeError);
    expect(() => w.longlong(1.5)).toThrow(RangeError);
    expect(() => w.longlong(2 ** 64)).toThrow(RangeError);
    expect(() => w.shortstr('é'.repeat(128))).toThrow(RangeError);
    expect(w.length).toBe(0);
  });
});
