import { describe, expect, it } from 'vitest';
import { FRAME_MIN_SIZE, FrameType, PROTOCOL_HEADER, ReplyCode } from '../../../src/protocol/amqp/constants.js';
import {
  amqpToMessageProperties,
  decodeContentHeader,
  messagePropertiesToAmqp,
  writeBodyFrames,
  writeContentMethod,
  writeDeliver,
  writeDeliverRaw,
} from '../../../src/protocol/amqp/content.js';
import { AmqpError } from '../../../src/protocol/amqp/errors.js';
import { AmqpFrameDecoder } from '../../../src/protocol/amqp/frame-decoder.js';
import { decodeMethod } from '../../../src/protocol/amqp/methods.js';
import { WireWriter } from '../../../src/protocol/amqp/wire.js';
import type { MessageProperties } from '../../../src/protocol/properties.js';
import { bytes, concat, RICH_TABLE, SAMPLES, splitFrames } from './samples.js';

const ALL_PROPERTIES: Required<MessageProperties> = {
  contentType: 'application/json',
  contentEncoding: 'gzip',
  headers: RICH_TABLE,
  deliveryMode: 2,
  priority: 9,
  correlationId: 'corr-1',
  replyTo: 'amq.rabbitmq.reply-to',
  expiration: '60000',
  messageId: 'msg-ü',
  timestamp: 1_700_000_000,
  type: 'order.created',
  userId: 'guest',
  appId: 'shardmq-test',
};

/** Flag bit of each property, high to low, as the 0-9-1 spec orders them. */
const FLAG_ORDER: (keyof MessageProperties)[] = [
  'contentType',
  'contentEncoding',
  'headers',
  'deliveryMode',
  'priority',
  'correlationId',
  'replyTo',
  'expiration',
  'messageId',
  'timestamp',
  'type',
  'userId',
  'appId',
];

function expectAmqpError(fn: () => unknown, code: number): AmqpError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(AmqpError);
  expect((caught as AmqpError).code).toBe(code);
  return caught as AmqpError;
}

describe('content - properties', () => {
  it('round-trips every property at once', () => {
    const b = messagePropertiesToAmqp(ALL_PROPERTIES);
    expect((b[0] << 8) | b[1]).toBe(0xfff8);
    expect(amqpToMessageProperties(b)).toEqual(ALL_PROPERTIES);
  });

  it.each(FLAG_ORDER.map((k, i) => [k, i]))('%s alone sets its own flag bit and round-trips', (key, index) => {
    const p = { [key]: ALL_PROPERTIES[key as keyof MessageProperties] } as MessageProperties;
    const b = messagePropertiesToAmqp(p);
    expect((b[0] << 8) | b[1]).toBe(0x8000 >> (index as number));
    expect(amqpToMessageProperties(b)).toEqual(p);
  });

  it('empty properties are the two bytes 00 00, and decode to {}', () => {
    expect([...messagePropertiesToAmqp({})]).toEqual([0, 0]);
    expect(amqpToMessageProperties(Uint8Array.of(0, 0))).toEqual({});
  });

  it('writes the exact bytes of a small set', () => {
    const b = messagePropertiesToAmqp({ contentType: 'a', deliveryMode: 1, timestamp: 258 });
    expect([...b]).toEqual([0x90, 0x40, 1, 0x61, 1, 0, 0, 0, 0, 0, 0, 1, 2]);
  });

  it('returns a fresh array each time (callers keep them)', () => {
    const a = messagePropertiesToAmqp({ appId: 'a' });
    const b = messagePropertiesToAmqp({ appId: 'b' });
    expect(a).not.toBe(b);
    expect(amqpToMessageProperties(a)).toEqual({ appId: 'a' });
  });

  it('decodes nothing that aliases its input', () => {
    const b = messagePropertiesToAmqp(ALL_PROPERTIES);
    const p = amqpToMessageProperties(b);
    b.fill(0);
    expect(p).toEqual(ALL_PROPERTIES);
  });

  it('drops a deliveryMode other than 1 or 2, and reads then drops cluster-id', () => {
    expect(amqpToMessageProperties(Uint8Array.of(0x10, 0x00, 3))).toEqual({});
    expect(amqpToMessageProperties(Uint8Array.of(0x10, 0x00, 0))).toEqual({});
    expect(amqpToMessageProperties(Uint8Array.of(0x10, 0x00, 1))).toEqual({ deliveryMode: 1 });
    expect(amqpToMessageProperties(Uint8Array.of(0x00, 0x0c, 2, 0x61, 0x62, 1, 0x63))).toEqual({ appId: 'ab' });
  });

  it('is 502 on malformed input', () => {
    const malformed: [string, Uint8Array][] = [
      ['empty', new Uint8Array(0)],
      ['one flags byte', Uint8Array.of(0x80)],
      ['continuation bit', Uint8Array.of(0x00, 0x01, 0, 0)],
      ['bit 1', Uint8Array.of(0x00, 0x02)],
      ['truncated shortstr', Uint8Array.of(0x80, 0x00, 5, 0x61)],
      ['missing property', Uint8Array.of(0x08, 0x00)],
      ['truncated timestamp', Uint8Array.of(0x00, 0x40, 0, 0, 0, 0)],
      ['trailing byte', Uint8Array.of(0x08, 0x00, 5, 0)],
      ['trailing after none', Uint8Array.of(0x00, 0x00, 0)],
      ['not UTF-8', Uint8Array.of(0x80, 0x00, 1, 0xff)],
      ['bad headers table', Uint8Array.of(0x20, 0x00, 0, 0, 0, 3, 1, 0x6b, 0x5a)],
    ];
    for (const [name, b] of malformed) {
      expect(() => amqpToMessageProperties(b), name).toThrow(AmqpError);
      expectAmqpError(() => amqpToMessageProperties(b), ReplyCode.syntaxError);
    }
  });

  it('refuses to encode what AMQP cannot carry', () => {
    expect(() => messagePropertiesToAmqp({ correlationId: 'x'.repeat(256) })).toThrow(RangeError);
    expect(() => messagePropertiesToAmqp({ priority: 256 })).toThrow(RangeError);
    expect(() => messagePropertiesToAmqp({ timestamp: -1 })).toThrow(RangeError);
    expect(() => messagePropertiesToAmqp({ deliveryMode: 3 as 1 })).toThrow(RangeError);
  });
});

describe('content - header frame', () => {
  it('decodes class, body size and a view of the properties', () => {
    const props = messagePropertiesToAmqp({ contentType: 'text/plain' });
    const payload = concat(Uint8Array.of(0, 60, 0, 0, 0, 0, 0, 1, 0, 0, 0, 5), props);
    const h = decodeContentHeader(payload);
    expect(h.classId).toBe(60);
    expect(h.bodySize).toBe(2 ** 32 + 5);
    expect(h.properties).toEqual(props);
    expect(h.properties.buffer).toBe(payload.buffer);
    expect(amqpToMessageProperties(h.properties)).toEqual({ contentType: 'text/plain' });
  });

  it('a class other than basic is 503; a payload under 14 bytes is 502', () => {
    const e = expectAmqpError(
      () => decodeContentHeader(Uint8Array.of(0, 50, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)),
      ReplyCode.commandInvalid,
    );
    expect(e.classId).toBe(50);
    for (let n = 0; n < 14; n++) expectAmqpError(() => decodeContentHeader(new Uint8Array(n)), ReplyCode.syntaxError);
  });
});

describe('content - writeDeliver', () => {
  /** Runs `out` through the real decoder and groups what it yields. */
  function decodeOutput(out: Uint8Array, frameMax: number) {
    const d = new AmqpFrameDecoder(frameMax);
    const frames: { type: number; channel: number; payload: Uint8Array }[] = [];
    d.push(concat(PROTOCOL_HEADER, out), { frame: (type, channel, payload) => frames.push({ type, channel, payload: payload.slice() }) });
    return frames;
  }

  it.each([0, 1, 4088, 4089, 100_000])('splits a %i-byte body into frames of at most frameMax - 8 bytes', (size) => {
    const frameMax = FRAME_MIN_SIZE;
    // The body sits inside a larger buffer, at an offset, as a ring record would.
    const backing = new Uint8Array(size + 20).map((_, i) => (i * 31) & 0xff);
    const props = messagePropertiesToAmqp({ deliveryMode: 2, headers: { a: 1 } });
    const w = new WireWriter(64);
    writeDeliver(w, 3, frameMax, 'ctag', 42, true, 'ex', 'rk', props, backing, 10, size);
    const frames = decodeOutput(w.take(), frameMax);
    expect(frames.every((f) => f.channel === 3)).toBe(true);
    expect(frames[0].type).toBe(FrameType.method);
    expect(decodeMethod(frames[0].payload)).toEqual({
      name: 'basic.deliver',
      classId: 60,
      methodId: 60,
      args: { consumerTag: 'ctag', deliveryTag: 42, redelivered: true, exchange: 'ex', routingKey: 'rk' },
    });
    expect(frames[1].type).toBe(FrameType.header);
    const h = decodeContentHeader(frames[1].payload);
    expect(h.bodySize).toBe(size);
    expect(amqpToMessageProperties(h.properties)).toEqual({ deliveryMode: 2, headers: { a: 1 } });
    const bodies = frames.slice(2);
    expect(bodies).toHaveLength(Math.ceil(size / (frameMax - 8)));
    expect(bodies.every((f) => f.type === FrameType.body && f.payload.length <= frameMax - 8 && f.payload.length > 0)).toBe(true);
    expect(concat(...bodies.map((f) => f.payload))).toEqual(backing.subarray(10, 10 + size));
  });

  it('frameMax 0 means no limit: one body frame', () => {
    const w = new WireWriter();
    writeDeliver(w, 1, 0, 't', 1, false, '', 'q', Uint8Array.of(0, 0), new Uint8Array(100_000), 0, 100_000);
    const frames = splitFrames(w.take());
    expect(frames.map((f) => f.type)).toEqual([FrameType.method, FrameType.header, FrameType.body]);
  });

  it('appends after what the writer holds, and several deliveries line up', () => {
    const w = new WireWriter(16);
    for (let tag = 1; tag <= 3; tag++) writeDeliver(w, 1, FRAME_MIN_SIZE, 'c', tag, false, '', 'q', Uint8Array.of(0, 0), bytes('hi'), 0, 2);
    const frames = splitFrames(w.take());
    expect(frames).toHaveLength(9);
    expect(frames.filter((f) => f.type === FrameType.method).map((f) => decodeMethod(f.payload).args)).toEqual(
      [1, 2, 3].map((deliveryTag) => ({ consumerTag: 'c', deliveryTag, redelivered: false, exchange: '', routingKey: 'q' })),
    );
  });

  it('properties too large for one header frame are 311, and nothing is written', () => {
    const w = new WireWriter();
    w.octet(7);
    const props = messagePropertiesToAmqp({ headers: { big: 'x'.repeat(5000) } });
    expectAmqpError(() => writeDeliver(w, 1, FRAME_MIN_SIZE, 'c', 1, false, '', 'q', props, bytes('hi'), 0, 2), ReplyCode.contentTooLarge);
    expect([...w.take()]).toEqual([7]);
  });

  it('bad arguments throw before anything is written', () => {
    const w = new WireWriter();
    const props = Uint8Array.of(0, 0);
    expect(() => writeDeliver(w, 1, FRAME_MIN_SIZE, 'c', 1, false, '', 'q', props, bytes('hi'), 1, 2)).toThrow(RangeError);
    expect(() => writeDeliver(w, 1, 8, 'c', 1, false, '', 'q', props, bytes('hi'), 0, 2)).toThrow(RangeError);
    expect(() => writeDeliver(w, 1, FRAME_MIN_SIZE, 'c', -5, false, '', 'q', props, bytes('hi'), 0, 2)).toThrow(RangeError);
    expect(() => writeDeliver(w, 1, FRAME_MIN_SIZE, 'c'.repeat(300), 1, false, '', 'q', props, bytes('hi'), 0, 2)).toThrow(RangeError);
    expect(() => writeDeliver(w, 1, FRAME_MIN_SIZE, 'c', 1, false, '', 'q', new Uint8Array(1), bytes('hi'), 0, 2)).toThrow(RangeError);
    expect(w.length).toBe(0);
  });

  it('writeBodyFrames alone splits as writeDeliver does', () => {
    const w = new WireWriter();
    writeBodyFrames(w, 2, 100, new Uint8Array(250).fill(9), 0, 250);
    expect(splitFrames(w.take()).map((f) => f.payload.length)).toEqual([92, 92, 66]);
  });
});

describe('content - writeContentMethod', () => {
  it.each(['basic.return', 'basic.get-ok', 'basic.deliver', 'basic.publish'] as const)('%s: method, header, body', (name) => {
    const w = new WireWriter();
    const props = messagePropertiesToAmqp({ messageId: 'm' });
    const body = new Uint8Array(5000).fill(3);
    writeContentMethod(w, 4, FRAME_MIN_SIZE, name, SAMPLES[name], props, body, 0, body.length);
    const frames = splitFrames(w.take());
    expect(frames.map((f) => f.type)).toEqual([FrameType.method, FrameType.header, FrameType.body, FrameType.body]);
    const m = decodeMethod(frames[0].payload);
    expect(m.name).toBe(name);
    expect(m.args).toEqual(SAMPLES[name]);
    expect(decodeContentHeader(frames[1].payload).bodySize).toBe(5000);
  });
});

describe('writeDeliverRaw', () => {
  it('writes the same bytes as writeDeliver from pre-encoded tag, exchange and key, across frame sizes and body lengths', () => {
    let seed = 7;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed % n;
    };
    const text = (n: number): string => Array.from({ length: n }, () => 'aé.#*z'[rand(6)]).join('');
    for (let round = 0; round < 300; round++) {
      const tag = text(rand(40));
      const exchange = text(rand(30));
      const key = text(rand(60));
      const props = messagePropertiesToAmqp(
        round % 3 === 0 ? {} : { contentType: 'text/plain', headers: { n: round }, priority: round % 10 },
      );
      const body = new Uint8Array(rand(3) === 0 ? rand(20_000) : rand(600));
      for (let i = 0; i < body.length; i++) body[i] = rand(256);
      const frameMax = [FRAME_MIN_SIZE, 8192, 131072, 0][rand(4)];
      const deliveryTag = rand(1_000_000);
      const redelivered = rand(2) === 1;
      const off = rand(5);
      // exchange and key inside a larger record, as in a ring
      const src = new Uint8Array(off + 300);
      const ex = Buffer.from(exchange);
      const rk = Buffer.from(key);
      src.set(ex, off);
      src.set(rk, off + ex.length + 3);
      const a = new WireWriter(16);
      writeDeliver(a, 3, frameMax, tag, deliveryTag, redelivered, exchange, key, props, body, 0, body.length);
      const b = new WireWriter(16);
      b.octet(9); // something already written before
      writeDeliverRaw(
        b,
        3,
        frameMax,
        Buffer.from(tag),
        deliveryTag,
        redelivered,
        src,
        off,
        ex.length,
        off + ex.length + 3,
        rk.length,
        props,
        body,
        0,
        body.length,
      );
      expect(Buffer.from(b.view()).subarray(1).equals(Buffer.from(a.view())), `round ${round}`).toBe(true);
    }
  });

  it('refuses what writeDeliver refuses, and writes nothing then', () => {
    const w = new WireWriter(16);
    const big = messagePropertiesToAmqp({ headers: { pad: 'x'.repeat(5000) } });
    expect(() =>
      writeDeliverRaw(w, 1, FRAME_MIN_SIZE, Buffer.from('t'), 1, false, new Uint8Array(4), 0, 0, 0, 0, big, new Uint8Array(1), 0, 1),
    ).toThrow(AmqpError);
    expect(() =>
      writeDeliverRaw(
        w,
        1,
        0,
        Buffer.alloc(256),
        1,
        false,
        new Uint8Array(4),
        0,
        0,
        0,
        0,
        messagePropertiesToAmqp({}),
        new Uint8Array(1),
        0,
        1,
      ),
    ).toThrow(RangeError);
    expect(() =>
      writeDeliverRaw(
        w,
        1,
        0,
        Buffer.from('t'),
        1,
        false,
        new Uint8Array(4),
        2,
        5,
        0,
        0,
        messagePropertiesToAmqp({}),
        new Uint8Array(1),
        0,
        1,
      ),
    ).toThrow(RangeError);
    expect(w.length).toBe(0);
  });
});
