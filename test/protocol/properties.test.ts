/**
 * Properties block and typed headers table (src/protocol/properties.ts, docs/protocol.md "Properties
 * block"): round trips of every field and value type, the exact bytes of a small block, every
 * decode failure as a ProtocolError with its stable code, every encode failure as a RangeError or
 * TypeError naming the field, and validateProperties agreeing with decodeProperties.
 *
 * Replay a failing random case with SHARDMQ_SEED=<seed printed in the message>.
 */
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_TABLE_LIMITS,
  HeaderType,
  MAX_HEADER_DEPTH,
  MAX_HEADER_ENTRIES,
  PropertyFlag,
  decodeProperties,
  encodeProperties,
  encodedPropertiesLength,
  encodedTableLength,
  validateProperties,
  writeProperties,
} from '../../src/protocol/properties.js';
import type { HeaderValue } from '../../src/protocol/field-table.js';
import type { MessageProperties } from '../../src/protocol/properties.js';
import { ProtocolError } from '../../src/protocol/ws-binary.js';
import { Prng, testSeed } from '../helpers/prng.js';

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const roundTrip = (p: MessageProperties): MessageProperties => {
  const bytes = encodeProperties(p);
  expect(bytes.length).toBe(encodedPropertiesLength(p));
  validateProperties(bytes, 0, bytes.length);
  return decodeProperties(bytes, 0, bytes.length);
};

/** Decodes `bytes`, expecting a ProtocolError; returns it after checking validateProperties agrees. */
function decodeError(bytes: Uint8Array, limits = DEFAULT_TABLE_LIMITS): ProtocolError {
  let decodeErr: unknown;
  let validateErr: unknown;
  try {
    decodeProperties(bytes, 0, bytes.length, limits);
  } catch (err) {
    decodeErr = err;
  }
  try {
    validateProperties(bytes, 0, bytes.length, limits);
  } catch (err) {
    validateErr = err;
  }
  expect(decodeErr).toBeInstanceOf(ProtocolError);
  expect(validateErr).toBeInstanceOf(ProtocolError);
  expect((validateErr as ProtocolError).code).toBe((decodeErr as ProtocolError).code);
  return decodeErr as ProtocolError;
}

const ALL: MessageProperties = {
  contentType: 'application/json',
  contentEncoding: 'gzip',
  headers: {
    str: 'value',
    unicode: 'héllo wörld ✓ 😀',
    num: 42,
    float: -1.5e-300,
    big: Number.MAX_SAFE_INTEGER,
    nan: Number.NaN,
    inf: Number.NEGATIVE_INFINITY,
    yes: true,
    no: false,
    nothing: null,
    bytes: Uint8Array.of(0, 1, 2, 255),
    emptyBytes: new Uint8Array(0),
    list: [1, 'two', false, null, [3, [4]], { five: 5 }],
    emptyList: [],
    nested: { a: { b: { c: 'deep' } }, 'x-death': [{ count: 1, 'routing-keys': ['k1', 'k2'] }] },
    emptyTable: {},
    '': 'empty key',
    ключ: 'unicode key',
  },
  deliveryMode: 2,
  priority: 255,
  correlationId: 'corr-1',
  replyTo: 'amq.rabbitmq.reply-to',
  expiration: '60000',
  messageId: 'msg-1',
  timestamp: 1_700_000_000,
  type: 'order.created',
  userId: 'guest',
  appId: 'shardmq-test',
};

describe('properties - round trip', () => {
  it('round trip - every field, every header value type, nested tables and arrays', () => {
    expect(roundTrip(ALL)).toEqual(ALL);
  });

  it('round trip - NaN and -0 survive as f64', () => {
    const out = roundTrip({ headers: { nan: Number.NaN, negZero: -0 } });
    expect(Number.isNaN(out.headers!.nan)).toBe(true);
    expect(Object.is(out.headers!.negZero, -0)).toBe(true);
  });

  it('round trip - empty properties are the 2-byte flags word 0', () => {
    expect(toHex(encodeProperties({}))).toBe('0000');
    expect(roundTrip({})).toEqual({});
  });

  it.each(Object.keys(PropertyFlag))('round trip - %s alone sets only its flag bit', (name) => {
    const one = { [name]: (ALL as Record<string, unknown>)[name] } as MessageProperties;
    const bytes = encodeProperties(one);
    expect(bytes[0] | (bytes[1] << 8)).toBe(PropertyFlag[name as keyof typeof PropertyFlag]);
    expect(roundTrip(one)).toEqual(one);
  });

  it('round trip - strings at the 255-byte shortstr limit, counted in UTF-8 bytes', () => {
    const p: MessageProperties = { contentType: 'a'.repeat(255), messageId: 'é'.repeat(127) + 'a', appId: '😀'.repeat(63) + 'abc' };
    expect(roundTrip(p)).toEqual(p);
  });

  it('round trip - undefined and null fields count as absent', () => {
    const p = { contentType: undefined, messageId: null } as unknown as MessageProperties;
    expect(toHex(encodeProperties(p))).toBe('0000');
  });

  it('round trip - a byte-order mark at the start of a string is kept', () => {
    const p = { contentType: '\ufeffx', headers: { s: '\ufeff' } };
    expect(roundTrip(p)).toEqual(p);
  });

  it('round trip - "__proto__" as a header key is a key, not a prototype', () => {
    const headers = JSON.parse('{"__proto__": {"polluted": true}, "a": 1}') as Record<string, HeaderValue>;
    const out = roundTrip({ headers });
    expect(Object.getPrototypeOf(out.headers)).toBe(Object.prototype);
    expect(Object.keys(out.headers!)).toEqual(['__proto__', 'a']);
    expect(Object.getOwnPropertyDescriptor(out.headers, '__proto__')?.value).toEqual({ polluted: true });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('round trip - decoded bytes values are copies, not views of the input', () => {
    const bytes = encodeProperties({ headers: { b: Uint8Array.of(1, 2, 3) } });
    const out = decodeProperties(bytes, 0, bytes.length);
    bytes.fill(0xee);
    expect(out.headers!.b).toEqual(Uint8Array.of(1, 2, 3));
  });

  it('round trip - decoding at an offset inside a larger array', () => {
    const block = encodeProperties(ALL);
    const big = new Uint8Array(block.length + 20).fill(0xaa);
    big.set(block, 7);
    expect(decodeProperties(big, 7, block.length)).toEqual(ALL);
  });

  it('round trip - seeded random property sets', () => {
    const seed = testSeed();
    const rng = new Prng(seed);
    for (let n = 0; n < 300; n++) {
      const p = randomProperties(rng);
      expect(roundTrip(p), `seed ${seed} case ${n}`).toEqual(p);
    }
  });
});

describe('properties - wire bytes', () => {
  it('wire - the docs/protocol.md example block, byte for byte', () => {
    const p: MessageProperties = { contentType: 'text/plain', headers: { n: 1, ok: true }, deliveryMode: 2, timestamp: 1_700_000_000 };
    const expected = hex(`
      40 b0
      0a 74 65 78 74 2f 70 6c 61 69 6e
      02 00 00 00
        01 6e 64 00 00 00 00 00 00 f0 3f
        02 6f 6b 74 01
      02
      00 f1 53 65 00 00 00 00`);
    expect(toHex(encodeProperties(p))).toBe(toHex(expected));
    expect(decodeProperties(expected, 0, expected.length)).toEqual(p);
  });

  it('wire - header value types use the AMQP field-type letters', () => {
    expect(HeaderType).toEqual({ string: 0x53, number: 0x64, boolean: 0x74, null: 0x56, bytes: 0x78, array: 0x41, table: 0x46 });
    const bytes = encodeProperties({ headers: { s: 'é', x: Uint8Array.of(9), a: [null], f: {} } });
    expect(toHex(bytes)).toBe(
      '0020' +
        '04000000' +
        '0173' +
        '53' +
        '02000000c3a9' +
        '0178' +
        '78' +
        '0100000009' +
        '0161' +
        '41' +
        '01000000' +
        '56' +
        '0166' +
        '46' +
        '00000000',
    );
  });

  it('wire - writeProperties writes at an offset and returns the offset after the block', () => {
    const target = new Uint8Array(64).fill(0xcc);
    const end = writeProperties({ priority: 9 }, target, 10);
    expect(end).toBe(13);
    expect(toHex(target.subarray(9, 14))).toBe('cc000809cc');
  });

  it('wire - writeProperties without room throws RangeError and writes nothing', () => {
    const target = new Uint8Array(8).fill(0xcc);
    expect(() => writeProperties({ contentType: 'text/plain' }, target, 0)).toThrow(RangeError);
    expect(target.every((b) => b === 0xcc)).toBe(true);
    expect(() => writeProperties({}, target, 7)).toThrow(/need 2 bytes at offset 7/);
  });
});

describe('properties - decode errors', () => {
  it.each([
    ['reserved flag bit 0', '0100', 'bad_frame', 'PROPERTIES.flags'],
    ['reserved flag bit 2 (AMQP cluster-id)', '0400', 'bad_frame', 'PROPERTIES.flags'],
    ['empty input', '', 'bad_frame', 'PROPERTIES.flags'],
    ['one byte', '00', 'bad_frame', 'PROPERTIES.flags'],
    ['a flag with no field', '0080', 'bad_frame', 'PROPERTIES.contentType'],
    ['shortstr longer than the block', '0080' + '05' + '6162', 'bad_frame', 'PROPERTIES.contentType'],
    ['invalid UTF-8 in a shortstr', '0080' + '02' + 'c328', 'bad_frame', 'PROPERTIES.contentType'],
    ['UTF-8 surrogate in a shortstr', '0080' + '03' + 'eda080', 'bad_frame', 'PROPERTIES.contentType'],
    ['overlong UTF-8', '0080' + '02' + 'c0af', 'bad_frame', 'PROPERTIES.contentType'],
    ['deliveryMode 0', '0010' + '00', 'bad_frame', 'PROPERTIES.deliveryMode'],
    ['deliveryMode 3', '0010' + '03', 'bad_frame', 'PROPERTIES.deliveryMode'],
    ['timestamp above 2^53 - 1', '4000' + '0000000000002000', 'bad_frame', 'PROPERTIES.timestamp'],
    ['timestamp cut short', '4000' + '000000', 'bad_frame', 'PROPERTIES.timestamp'],
    ['trailing byte after the fields', '0008' + '0161' + '00', 'bad_frame', 'PROPERTIES.end'],
    ['headers table cut short', '0020' + '0100', 'bad_frame', 'PROPERTIES.headers'],
    ['unknown value type', '0020' + '01000000' + '016b' + '49' + '01000000', 'bad_frame', 'PROPERTIES.headers'],
    ['boolean byte 2', '0020' + '01000000' + '016b' + '74' + '02', 'bad_frame', 'PROPERTIES.headers'],
    ['long string past the end', '0020' + '01000000' + '016b' + '53' + 'ffffff7f' + '61', 'bad_frame', 'PROPERTIES.headers'],
    ['invalid UTF-8 in a long string', '0020' + '01000000' + '016b' + '53' + '01000000' + 'ff', 'bad_frame', 'PROPERTIES.headers'],
    ['invalid UTF-8 in a key', '0020' + '01000000' + '01ff' + '56', 'bad_frame', 'PROPERTIES.headers'],
    ['duplicate key', '0020' + '02000000' + '016b56' + '016b56', 'bad_frame', 'PROPERTIES.headers'],
    ['entry count above the limit', '0020' + 'ffffffff', 'too_large', 'PROPERTIES.headers'],
    ['array count above the limit', '0020' + '01000000' + '016b' + '41' + 'ffffffff', 'too_large', 'PROPERTIES.headers'],
  ])('decode - %s', (_case, bytesHex, code, state) => {
    const err = decodeError(hex(bytesHex));
    expect(err.code).toBe(code);
    expect(err.state).toBe(state);
    expect(err.name).toBe('ProtocolError');
  });

  it('decode - the error quotes a capped hex excerpt from the offending byte', () => {
    const bytes = hex('0010' + '07' + 'aa'.repeat(100));
    const err = decodeError(bytes);
    expect(err.offset).toBe(2);
    expect(err.excerpt).toBe(['07', ...Array<string>(31).fill('aa')].join(' ') + ' …');
    expect(err.message).toContain('deliveryMode 7 is not 1 or 2');
    expect(err.message).toContain('state PROPERTIES.deliveryMode');
  });

  it('decode - nesting one level past maxHeaderDepth is too_large; at the limit it decodes', () => {
    const nest = (levels: number): HeaderValue => (levels === 0 ? 'leaf' : { n: nest(levels - 1) });
    // headers (depth 1) + (MAX - 1) nested tables = MAX levels.
    const atLimit = { headers: { n: nest(MAX_HEADER_DEPTH - 1) } as Record<string, HeaderValue> };
    expect(roundTrip(atLimit)).toEqual(atLimit);
    expect(() => encodeProperties({ headers: { n: nest(MAX_HEADER_DEPTH) } as Record<string, HeaderValue> })).toThrow(RangeError);
    const limits = { maxHeaderDepth: 3, maxHeaderEntries: 100 };
    const bytes = encodeProperties({ headers: { a: { b: { c: { d: 1 } } } } });
    const err = decodeError(bytes, limits);
    expect(err.code).toBe('too_large');
    expect(err.message).toMatch(/nests deeper than 3/);
    const arrays = encodeProperties({ headers: { a: [[[1]]] } });
    expect(decodeError(arrays, limits).code).toBe('too_large');
    const twoDeep = encodeProperties({ headers: { a: [[1]] } });
    expect(decodeProperties(twoDeep, 0, twoDeep.length, limits)).toEqual({ headers: { a: [[1]] } });
  });

  it('decode - entries and array elements together count against maxHeaderEntries', () => {
    const limits = { maxHeaderDepth: 8, maxHeaderEntries: 5 };
    const ok = encodeProperties({ headers: { a: [1, 2], b: { c: 3 } } }); // a, 1, 2, b, c = 5
    expect(decodeProperties(ok, 0, ok.length, limits)).toEqual({ headers: { a: [1, 2], b: { c: 3 } } });
    const over = encodeProperties({ headers: { a: [1, 2, 3], b: { c: 3 } } });
    expect(decodeError(over, limits).code).toBe('too_large');
  });

  it('decode - a range outside the input is a RangeError (a caller bug, not bad input)', () => {
    expect(() => decodeProperties(new Uint8Array(4), 2, 4)).toThrow(RangeError);
    expect(() => validateProperties(new Uint8Array(4), -1, 2)).toThrow(RangeError);
  });

  it('decode - every truncation of a valid block fails with bad_frame, never anything else', () => {
    const bytes = encodeProperties(ALL);
    for (let len = 0; len < bytes.length; len++) {
      const err = decodeError(bytes.subarray(0, len));
      expect(err.code, `length ${len}`).toBe('bad_frame');
    }
  });

  it('decode - seeded random single-byte mutations either decode or fail with a ProtocolError, and validate agrees', () => {
    const seed = testSeed();
    const rng = new Prng(seed);
    const base = encodeProperties(ALL);
    for (let n = 0; n < 3000; n++) {
      const bytes = base.slice();
      const count = rng.int(1, 3);
      for (let k = 0; k < count; k++) bytes[rng.int(0, bytes.length - 1)] = rng.u32() & 0xff;
      let decoded: unknown;
      let validated: unknown;
      try {
        decodeProperties(bytes, 0, bytes.length);
        decoded = 'ok';
      } catch (err) {
        decoded = err;
      }
      try {
        validateProperties(bytes, 0, bytes.length);
        validated = 'ok';
      } catch (err) {
        validated = err;
      }
      if (decoded !== 'ok') expect(decoded, `seed ${seed} case ${n}`).toBeInstanceOf(ProtocolError);
      expect(validated === 'ok', `seed ${seed} case ${n}: validate and decode disagree`).toBe(decoded === 'ok');
    }
  });
});

describe('properties - encode errors', () => {
  it.each([
    ['contentType over 255 bytes', { contentType: 'a'.repeat(256) }, RangeError, /contentType must be at most 255 UTF-8 bytes \(got 256\)/],
    ['appId over 255 UTF-8 bytes in 128 characters', { appId: 'é'.repeat(128) }, RangeError, /appId .* \(got 256\)/],
    ['a header key over 255 bytes', { headers: { ['k'.repeat(300)]: 1 } }, RangeError, /headers key must be at most 255/],
    ['deliveryMode 3', { deliveryMode: 3 }, RangeError, /deliveryMode must be 1 \(transient\) or 2 \(persistent\)/],
    ['priority 256', { priority: 256 }, RangeError, /priority must be an integer from 0 to 255/],
    ['priority 1.5', { priority: 1.5 }, RangeError, /priority/],
    ['timestamp -1', { timestamp: -1 }, RangeError, /timestamp must be whole seconds/],
    ['timestamp 1.5', { timestamp: 1.5 }, RangeError, /timestamp/],
    ['timestamp above 2^53', { timestamp: 2 ** 53 }, RangeError, /timestamp/],
    ['a number as contentType', { contentType: 5 }, TypeError, /contentType must be a string/],
    ['headers not an object', { headers: 'x' }, TypeError, /headers must be a plain object/],
    ['an undefined header value', { headers: { a: undefined } }, TypeError, /key "a" must be a string, number/],
    ['a bigint header value', { headers: { a: 1n } }, TypeError, /got bigint 1/],
    ['a Date header value', { headers: { when: new Date(0) } }, TypeError, /got Date/],
    ['a function header value', { headers: { f: () => 1 } }, TypeError, /got function/],
    ['a Map header value', { headers: { m: new Map() } }, TypeError, /got Map/],
  ])('encode - %s', (_case, p, type, message) => {
    expect(() => encodedPropertiesLength(p as unknown as MessageProperties)).toThrow(type);
    expect(() => encodeProperties(p as unknown as MessageProperties)).toThrow(message);
  });

  it('encode - a cycle is caught by the depth limit', () => {
    const headers: Record<string, HeaderValue> = {};
    headers.self = headers;
    expect(() => encodeProperties({ headers })).toThrow(/nests deeper than 16 .*or contains a cycle/);
    const list: HeaderValue[] = [];
    list.push(list);
    expect(() => encodeProperties({ headers: { list } })).toThrow(RangeError);
  });

  it('encode - more entries than MAX_HEADER_ENTRIES is refused (the decoder would refuse it)', () => {
    const headers: Record<string, HeaderValue> = { many: Array.from({ length: MAX_HEADER_ENTRIES }, (_v, i) => i) };
    expect(() => encodeProperties({ headers })).toThrow(/more than 4096 entries/);
    headers.many = Array.from({ length: MAX_HEADER_ENTRIES - 1 }, (_v, i) => i);
    expect(roundTrip({ headers })).toEqual({ headers });
  });

  it('encode - tables with a null prototype are plain objects', () => {
    const t = Object.create(null) as Record<string, HeaderValue>;
    t.a = 1;
    expect(encodedTableLength(t)).toBe(4 + 2 + 9);
    expect(roundTrip({ headers: t })).toEqual({ headers: { a: 1 } });
  });
});

// ---------------------------------------------------------------------------------------------

function randomString(rng: Prng, maxUnits: number): string {
  const alphabet = ['a', 'Z', '0', '.', '-', ' ', 'é', 'ж', '✓', '😀', '\u0000', '\ufeff'];
  const n = rng.int(0, maxUnits);
  let s = '';
  while (s.length < n) s += rng.pick(alphabet);
  return s;
}

function randomValue(rng: Prng, depth: number): HeaderValue {
  const kind = rng.int(0, depth >= 4 ? 5 : 7);
  switch (kind) {
    case 0:
      return randomString(rng, 20);
    case 1:
      return rng.chance(0.5) ? rng.int(-1e6, 1e6) : (rng.float() - 0.5) * 1e10;
    case 2:
      return rng.chance(0.5);
    case 3:
      return null;
    case 4: {
      const b = new Uint8Array(rng.int(0, 10));
      rng.fill(b);
      return b;
    }
    case 5:
      return randomString(rng, 5);
    case 6:
      return Array.from({ length: rng.int(0, 4) }, () => randomValue(rng, depth + 1));
    default: {
      const t: Record<string, HeaderValue> = {};
      const n = rng.int(0, 4);
      for (let i = 0; i < n; i++) t[randomString(rng, 8) + i] = randomValue(rng, depth + 1);
      return t;
    }
  }
}

function randomProperties(rng: Prng): MessageProperties {
  const p: MessageProperties = {};
  if (rng.chance(0.5)) p.contentType = randomString(rng, 30);
  if (rng.chance(0.3)) p.contentEncoding = randomString(rng, 10);
  if (rng.chance(0.5)) {
    const headers: Record<string, HeaderValue> = {};
    const n = rng.int(0, 6);
    for (let i = 0; i < n; i++) headers[randomString(rng, 10) + '#' + i] = randomValue(rng, 1);
    p.headers = headers;
  }
  if (rng.chance(0.5)) p.deliveryMode = rng.chance(0.5) ? 1 : 2;
  if (rng.chance(0.3)) p.priority = rng.int(0, 255);
  if (rng.chance(0.3)) p.correlationId = randomString(rng, 40);
  if (rng.chance(0.3)) p.replyTo = randomString(rng, 40);
  if (rng.chance(0.3)) p.expiration = String(rng.int(0, 1e9));
  if (rng.chance(0.3)) p.messageId = randomString(rng, 40);
  if (rng.chance(0.3)) p.timestamp = rng.chance(0.2) ? Number.MAX_SAFE_INTEGER : rng.int(0, 2 ** 31);
  if (rng.chance(0.3)) p.type = randomString(rng, 20);
  if (rng.chance(0.3)) p.userId = randomString(rng, 20);
  if (rng.chance(0.3)) p.appId = randomString(rng, 20);
  return p;
}
