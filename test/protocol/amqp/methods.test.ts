import { describe, expect, it } from 'vitest';
import { FrameType, ReplyCode } from '../../../src/protocol/amqp/constants.js';
import { AmqpError } from '../../../src/protocol/amqp/errors.js';
import {
  decodeBasicAck,
  decodeBasicPublish,
  decodeMethod,
  hasContent,
  METHODS,
  methodDef,
  methodDefById,
  methodFrame,
  writeBasicAck,
  writeBasicDeliverMethod,
  writeBasicNack,
  writeMethodFrame,
} from '../../../src/protocol/amqp/methods.js';
import type { AnyMethod, MethodArgs, MethodName } from '../../../src/protocol/amqp/methods.js';
import { WireWriter } from '../../../src/protocol/amqp/wire.js';
import { bytes, SAMPLES, splitFrames } from './samples.js';

/** The payload of the one method frame in `buf`, after checking its framing. */
function payloadOf(buf: Uint8Array, channel = 1): Uint8Array {
  const frames = splitFrames(buf);
  expect(frames).toHaveLength(1);
  expect(frames[0].type).toBe(FrameType.method);
  expect(frames[0].channel).toBe(channel);
  return frames[0].payload;
}

function roundTrip<N extends MethodName>(name: N, args: MethodArgs[N], channel = 1): AnyMethod {
  return decodeMethod(payloadOf(methodFrame(channel, name, args), channel));
}

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

describe('methods - table', () => {
  it('covers every method of 0-9-1 that RabbitMQ implements, each once', () => {
    const names = METHODS.map((d) => d.name);
    expect(new Set(names).size).toBe(names.length);
    expect(names.sort()).toEqual(Object.keys(SAMPLES).sort());
    const ids = METHODS.map((d) => d.classId * 65536 + d.methodId);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('keeps RabbitMQ numbering, exchange.unbind-ok = 40.51 included', () => {
    expect(methodDef('exchange.unbind-ok')).toMatchObject({ classId: 40, methodId: 51 });
    expect(methodDef('basic.nack')).toMatchObject({ classId: 60, methodId: 120 });
    expect(methodDef('confirm.select')).toMatchObject({ classId: 85, methodId: 10 });
    expect(methodDefById(10, 10)?.name).toBe('connection.start');
    expect(methodDefById(40, 41)).toBeUndefined();
  });

  it('hasContent is true for exactly publish, return, deliver and get-ok', () => {
    const withContent = METHODS.filter((d) => hasContent(d.name)).map((d) => d.name);
    expect(withContent.sort()).toEqual(['basic.deliver', 'basic.get-ok', 'basic.publish', 'basic.return']);
  });
});

describe('methods - round trip', () => {
  it.each(METHODS.map((d) => [d.name]))('%s: encode → decode gives every field back', (name) => {
    const args = SAMPLES[name];
    // Every argument of the table has a non-default value in the sample, so a lost field shows.
    for (const a of methodDef(name).args) {
      const v = (args as Record<string, unknown>)[a.name];
      expect(v, `${name}.${a.name}`).toBeDefined();
      expect([0, '', false], `${name}.${a.name}`).not.toContain(v);
      if (v instanceof Uint8Array) expect(v.length).toBeGreaterThan(0);
      if (a.type === 'table') expect(Object.keys(v as object).length).toBeGreaterThan(0);
    }
    const m = roundTrip(name, args, 7);
    const def = methodDef(name);
    expect(m).toEqual({ name, classId: def.classId, methodId: def.methodId, args });
  });

  it.each(METHODS.filter((d) => d.args.some((a) => a.type === 'bit')).map((d) => [d.name]))(
    '%s: every combination of its bits survives packing',
    (name) => {
      const bitNames = methodDef(name)
        .args.filter((a) => a.type === 'bit')
        .map((a) => a.name);
      for (let combo = 0; combo < 1 << bitNames.length; combo++) {
        const args: Record<string, unknown> = { ...SAMPLES[name] };
        bitNames.forEach((b, i) => {
          args[b] = ((combo >> i) & 1) === 1;
        });
        expect(roundTrip(name, args as MethodArgs[typeof name]).args).toEqual(args);
      }
    },
  );

  it('packs consecutive bits into one octet, lowest bit first', () => {
    // queue.declare: ticket, queue, then passive durable exclusive autoDelete noWait in one octet.
    const p = payloadOf(
      methodFrame(1, 'queue.declare', {
        queue: 'q',
        passive: true,
        durable: false,
        exclusive: true,
        autoDelete: false,
        noWait: true,
        arguments: {},
      }),
    );
    expect([...p]).toEqual([0, 50, 0, 10, 0, 0, 1, 0x71, 0b10101, 0, 0, 0, 0]);
  });

  it('writes absent reserved arguments as zero/empty and decodes them', () => {
    const p = payloadOf(methodFrame(1, 'basic.publish', { exchange: '', routingKey: 'k', mandatory: false, immediate: false }));
    expect([...p]).toEqual([0, 60, 0, 40, 0, 0, 0, 1, 0x6b, 0]);
    expect(decodeMethod(p).args).toEqual({ ticket: 0, exchange: '', routingKey: 'k', mandatory: false, immediate: false });
    expect(roundTrip('connection.open', { virtualHost: '/' }).args).toEqual({ virtualHost: '/', capabilities: '', insist: false });
    expect(roundTrip('channel.open-ok', {}).args).toEqual({ channelId: new Uint8Array(0) });
  });

  it('takes longstr arguments as strings too, written as UTF-8', () => {
    const fromString = methodFrame(0, 'connection.start', {
      ...SAMPLES['connection.start'],
      mechanisms: 'PLAIN AMQPLAIN',
      locales: 'en_US',
    });
    expect(fromString).toEqual(methodFrame(0, 'connection.start', SAMPLES['connection.start']));
    const m = decodeMethod(payloadOf(fromString, 0));
    expect(m.name === 'connection.start' && m.args.mechanisms).toEqual(bytes('PLAIN AMQPLAIN'));
  });

  it('appends frames one after another, each on its channel', () => {
    const w = new WireWriter(16);
    writeMethodFrame(w, 0, 'connection.tune-ok', SAMPLES['connection.tune-ok']);
    writeMethodFrame(w, 3, 'basic.qos', SAMPLES['basic.qos']);
    writeMethodFrame(w, 65535, 'basic.ack', SAMPLES['basic.ack']);
    const frames = splitFrames(w.take());
    expect(frames.map((f) => f.channel)).toEqual([0, 3, 65535]);
    expect(frames.map((f) => decodeMethod(f.payload).name)).toEqual(['connection.tune-ok', 'basic.qos', 'basic.ack']);
  });

  it('decoded values do not alias the payload (frames are reused)', () => {
    const payload = payloadOf(methodFrame(1, 'connection.start-ok', SAMPLES['connection.start-ok']));
    const m = decodeMethod(payload);
    payload.fill(0);
    expect(m.args).toEqual(SAMPLES['connection.start-ok']);
  });
});

describe('methods - hot paths', () => {
  it('decodeBasicPublish agrees with the frame written from the table', () => {
    const args = SAMPLES['basic.publish'];
    expect(decodeBasicPublish(payloadOf(methodFrame(1, 'basic.publish', args)))).toEqual(args);
  });

  it("decodeBasicPublish's name cache never returns a stale name", () => {
    const names = ['ab', 'ab', 'ac', 'ü', 'ab', '', 'ab', 'x'.repeat(255), 'x'.repeat(255)];
    for (const exchange of names) {
      for (const routingKey of names) {
        const p = payloadOf(methodFrame(1, 'basic.publish', { exchange, routingKey, mandatory: false, immediate: true }));
        const a = decodeBasicPublish(p);
        p.fill(0x61, 4);
        expect(a).toEqual({ ticket: 0, exchange, routingKey, mandatory: false, immediate: true });
      }
    }
  });

  it('decodeBasicAck reads tags up to 2^53 exactly', () => {
    for (const deliveryTag of [0, 1, 255, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1]) {
      for (const multiple of [false, true]) {
        expect(decodeBasicAck(payloadOf(methodFrame(1, 'basic.ack', { deliveryTag, multiple })))).toEqual({ deliveryTag, multiple });
      }
    }
  });

  it('writeBasicDeliverMethod, writeBasicAck and writeBasicNack write what the table would', () => {
    const d = SAMPLES['basic.deliver'];
    const w = new WireWriter();
    writeBasicDeliverMethod(w, 9, d.consumerTag, d.deliveryTag, d.redelivered, d.exchange, d.routingKey);
    expect(roundTripFrame(w.take(), 9)).toEqual({ name: 'basic.deliver', classId: 60, methodId: 60, args: d });
    w.reset();
    writeBasicAck(w, 9, 5, true);
    expect(roundTripFrame(w.take(), 9).args).toEqual({ deliveryTag: 5, multiple: true });
    w.reset();
    writeBasicNack(w, 9, 6, false, true);
    expect(roundTripFrame(w.take(), 9).args).toEqual({ deliveryTag: 6, multiple: false, requeue: true });
  });

  it('basic.deliver encodes non-ASCII names', () => {
    const args = { consumerTag: 'tag-ü', deliveryTag: 1, redelivered: false, exchange: '交換', routingKey: 'ключ.😀' };
    expect(roundTrip('basic.deliver', args).args).toEqual(args);
  });
});

function roundTripFrame(buf: Uint8Array, channel: number): AnyMethod {
  return decodeMethod(payloadOf(buf, channel));
}

describe('methods - malformed input', () => {
  it('an unknown class or method is 503 COMMAND_INVALID naming the ids', () => {
    const e = expectAmqpError(() => decodeMethod(Uint8Array.of(0, 30, 0, 10)), ReplyCode.commandInvalid);
    expect(e.classId).toBe(30);
    expect(e.methodId).toBe(10);
    expect(e.message).toContain('class 30, method 10');
    expectAmqpError(() => decodeMethod(Uint8Array.of(0, 60, 0, 41)), ReplyCode.commandInvalid);
  });

  it('a payload too short for the ids is 502', () => {
    for (let n = 0; n < 4; n++) expectAmqpError(() => decodeMethod(new Uint8Array(n)), ReplyCode.syntaxError);
  });

  it.each(METHODS.map((d) => [d.name]))('%s: every truncation is 502 naming the method, a trailing byte too', (name) => {
    const payload = payloadOf(methodFrame(1, name, SAMPLES[name]));
    const def = methodDef(name);
    for (let n = 4; n < payload.length; n++) {
      const e = expectAmqpError(() => decodeMethod(payload.subarray(0, n)), ReplyCode.syntaxError);
      expect([e.classId, e.methodId]).toEqual([def.classId, def.methodId]);
    }
    const longer = new Uint8Array(payload.length + 1);
    longer.set(payload);
    const e = expectAmqpError(() => decodeMethod(longer), ReplyCode.syntaxError);
    expect([e.classId, e.methodId]).toEqual([def.classId, def.methodId]);
  });

  it('a shortstr that is not UTF-8 is 502', () => {
    // basic.publish (fast path) and queue.declare (table) with exchange/queue = 0xff 0xfe.
    expectAmqpError(() => decodeMethod(Uint8Array.of(0, 60, 0, 40, 0, 0, 2, 0xff, 0xfe, 0, 0)), ReplyCode.syntaxError);
    expectAmqpError(() => decodeMethod(Uint8Array.of(0, 50, 0, 10, 0, 0, 2, 0xff, 0xfe, 0, 0, 0, 0, 0)), ReplyCode.syntaxError);
  });

  it('the hot-path decoders refuse another method', () => {
    const ack = payloadOf(methodFrame(1, 'basic.ack', SAMPLES['basic.ack']));
    expectAmqpError(() => decodeBasicPublish(ack), ReplyCode.commandInvalid);
    const publish = payloadOf(methodFrame(1, 'basic.publish', SAMPLES['basic.publish']));
    expectAmqpError(() => decodeBasicAck(publish), ReplyCode.commandInvalid);
  });
});

describe('methods - encoding errors leave the writer as it was', () => {
  function unchanged(fn: (w: WireWriter) => void, error: new (...args: never[]) => Error): void {
    const w = new WireWriter(16);
    writeMethodFrame(w, 1, 'basic.qos-ok', {});
    const before = w.take();
    expect(() => fn(w)).toThrow(error);
    expect(w.take()).toEqual(before);
  }

  it('a shortstr over 255 bytes is RangeError', () => {
    unchanged((w) => writeMethodFrame(w, 1, 'queue.delete', { ...SAMPLES['queue.delete'], queue: 'é'.repeat(128) }), RangeError);
    unchanged((w) => writeMethodFrame(w, 1, 'basic.deliver', { ...SAMPLES['basic.deliver'], routingKey: 'k'.repeat(256) }), RangeError);
  });

  it('a missing argument or a wrong type is TypeError', () => {
    const args = { ...SAMPLES['queue.bind'] } as Partial<MethodArgs['queue.bind']>;
    delete args.routingKey;
    unchanged((w) => writeMethodFrame(w, 1, 'queue.bind', args as MethodArgs['queue.bind']), TypeError);
    const wrong = { ...SAMPLES['basic.qos'], global: 1 } as unknown as MethodArgs['basic.qos'];
    unchanged((w) => writeMethodFrame(w, 1, 'basic.qos', wrong), TypeError);
    const table = { ...SAMPLES['queue.declare'], arguments: { f: () => 1 } } as unknown as MethodArgs['queue.declare'];
    unchanged((w) => writeMethodFrame(w, 1, 'queue.declare', table), TypeError);
  });

  it('numbers out of range are RangeError', () => {
    unchanged((w) => writeMethodFrame(w, 1, 'connection.tune', { channelMax: 65536, frameMax: 4096, heartbeat: 0 }), RangeError);
    unchanged((w) => writeMethodFrame(w, 1, 'connection.tune', { channelMax: 1, frameMax: -1, heartbeat: 0 }), RangeError);
    unchanged((w) => writeMethodFrame(w, 1, 'basic.qos', { prefetchSize: 0, prefetchCount: 1.5, global: false }), RangeError);
    unchanged((w) => writeMethodFrame(w, 1, 'basic.ack', { deliveryTag: -1, multiple: false }), RangeError);
    unchanged((w) => writeMethodFrame(w, 1, 'basic.deliver', { ...SAMPLES['basic.deliver'], deliveryTag: 0.5 }), RangeError);
    unchanged((w) => writeMethodFrame(w, 65536, 'basic.qos-ok', {}), RangeError);
    unchanged((w) => writeMethodFrame(w, -1, 'basic.ack', { deliveryTag: 1, multiple: false }), RangeError);
  });
});
