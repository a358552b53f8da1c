/**
 * Binary WebSocket protocol (docs/protocol.md): BinaryFrameWriter → BinaryDecoder round trips of
 * every op in both directions, the documented example frames byte for byte, a byte-at-a-time run
 * asserting the decoder's exact states (nats.js byByteTest), a split at every offset, the
 * "buffers don't clobber" rules (which views alias the input), every limit and malformed input as
 * a ProtocolError with its stable code, and the writer's own guarantees (rollback, growth, reuse).
 *
 * Replay a failing random case with SHARDMQ_SEED=<seed printed in the message>.
 */
import { describe, expect, it } from 'vitest';
import { encodeProperties, decodeProperties } from '../../src/protocol/properties.js';
import type { MessageProperties } from '../../src/protocol/properties.js';
import { BinaryDecoder, DECODER_STATE_NAMES, DecoderState, Direction, decodeFrame } from '../../src/protocol/ws-binary-decode.js';
import type { DecoderOptions } from '../../src/protocol/ws-binary-decode.js';
import { BinaryFrameWriter } from '../../src/protocol/ws-binary-encode.js';
import {
  MAX_DESTINATION_BYTES,
  MAX_ERROR_MESSAGE_BYTES,
  MAX_EXCERPT_BYTES,
  OP_MIN_BODY,
  Opcode,
  ProtocolError,
} from '../../src/protocol/ws-binary.js';
import type { BinaryClientDispatcher, BinaryDispatcher } from '../../src/protocol/ws-binary.js';
import { Prng, testSeed } from '../helpers/prng.js';

const te = new TextEncoder();
const utf8 = (s: string): Uint8Array => te.encode(s);
const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const concat = (...parts: Uint8Array[]): Uint8Array => Uint8Array.from(Buffer.concat(parts));
/** Byte equality for big arrays (toEqual walks them element by element, which takes seconds at 1 MiB). */
const sameBytes = (a: unknown, b: Uint8Array): boolean =>
  a instanceof Uint8Array && Buffer.from(a.buffer, a.byteOffset, a.length).equals(b);

const SERVER_METHODS = [
  'processPublish',
  'processPublishBatch',
  'processConfirmSelect',
  'processSubscribe',
  'processUnsubscribe',
  'processCommitOffset',
  'processAck',
  'processNack',
  'processFlush',
  'processDeclareExchange',
  'processDeleteExchange',
  'processDeclareQueue',
  'processDeleteQueue',
  'processPurgeQueue',
  'processBindQueue',
  'processUnbindQueue',
  'processBindExchange',
  'processUnbindExchange',
] as const;
const CLIENT_METHODS = [
  'processDeliver',
  'processConfirm',
  'processOk',
  'processError',
  'processCancel',
  'processCredit',
  'processDropped',
  'processStream',
] as const;

interface Recorded {
  op: string;
  ev: Record<string, unknown>;
}

/** A dispatcher for both directions that records every event as given (views included). */
function recorder(): { events: Recorded[]; server: BinaryDispatcher; client: BinaryClientDispatcher } {
  const events: Recorded[] = [];
  const d: Record<string, (ev: Record<string, unknown>) => void> = {};
  for (const m of [...SERVER_METHODS, ...CLIENT_METHODS]) d[m] = (ev) => events.push({ op: m, ev });
  return { events, server: d as unknown as BinaryDispatcher, client: d as unknown as BinaryClientDispatcher };
}

function serverDecoder(options?: DecoderOptions) {
  const rec = recorder();
  return { ...rec, decoder: new BinaryDecoder(Direction.toServer, rec.server, options) };
}

function clientDecoder(options?: DecoderOptions) {
  const rec = recorder();
  return { ...rec, decoder: new BinaryDecoder(Direction.toClient, rec.client, options) };
}

/** Runs `fn`, expecting a ProtocolError; returns it. */
function protocolError(fn: () => void): ProtocolError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(ProtocolError);
  return caught as ProtocolError;
}

/** `[opcode][u32 length][body]` by hand, for inputs the writer refuses to make. */
function rawOp(opcode: number, body: Uint8Array | string, length?: number): Uint8Array {
  const b = typeof body === 'string' ? hex(body) : body;
  const out = new Uint8Array(5 + b.length);
  out[0] = opcode;
  new DataView(out.buffer).setUint32(1, length ?? b.length, true);
  out.set(b, 5);
  return out;
}

const PROPS: MessageProperties = {
  contentType: 'application/json',
  headers: { 'x-retry': 3, tags: ['a', 'ß'], nested: { ok: true, none: null } },
  deliveryMode: 2,
  priority: 7,
  timestamp: 1_700_000_000,
  messageId: 'm-1',
};
const PROPS_BYTES = encodeProperties(PROPS);
const BIG = new Uint8Array(1024 * 1024 + 13).map((_v, i) => (i * 31 + 7) & 0xff);

/** Every client → server op (with variants), and the events they must decode to. */
function clientOps(w: BinaryFrameWriter): Recorded[] {
  w.publish('/topic/a.b', utf8('hello'));
  w.publish('/queue/jobs', utf8('{"n":1}'), PROPS);
  w.publish('/exchange/logs/error', new Uint8Array(0), PROPS_BYTES);
  w.publish('/topic/ünï.cødé.😀', utf8('ok'), {});
  w.publishBatch('/topic/telemetry.t1', [utf8('1'), new Uint8Array(0), utf8('333')], { contentType: 'text/plain' });
  w.publishBatch('/queue/none', []);
  w.confirmSelect(1);
  w.subscribe(2, 10, '/queue/jobs', 'client', 100);
  w.subscribe(0, 11, '/topic/#', 'auto', 0);
  w.subscribe(4, 12, '/topic/a.*', 'auto', 0, true);
  w.subscribe(5, 13, '/queue/metrics', 'client', 50, false, { 'x-stream-offset': 'first', 'x-stream-consumer-name': 'dash' });
  w.unsubscribe(3, 10);
  w.commitOffset(6, 13, 2 ** 40 + 7);
  w.ack(1);
  w.ack(Number.MAX_SAFE_INTEGER, true);
  w.ack(0, true);
  w.nack(5);
  w.nack(6, true, false);
  w.nack(7, false, false);
  w.flush(0xfffffffe);
  w.declareExchange(4, 'orders', 'topic', {
    durable: true,
    autoDelete: true,
    internal: true,
    passive: true,
    arguments: { 'alternate-exchange': 'ae' },
  });
  w.declareExchange(5, 'plain', 'fanout');
  w.deleteExchange(6, 'orders', true);
  w.declareQueue(7, '', { exclusive: true, autoDelete: true, arguments: { 'x-max-length': 1000, 'x-dead-letter-exchange': 'dlx' } });
  w.declareQueue(8, 'jobs', { durable: true, passive: true });
  w.deleteQueue(9, 'jobs', { ifUnused: true, ifEmpty: true });
  w.deleteQueue(10, 'jobs2');
  w.purgeQueue(11, 'jobs');
  w.bindQueue(12, 'jobs', 'orders', 'order.*', { 'x-match': 'any' });
  w.unbindQueue(13, 'jobs', 'orders', 'order.*');
  w.bindExchange(14, 'dest', 'src', '#', {});
  w.unbindExchange(15, 'dest', 'src', '#');
  const headersArgs = { 'x-match': 'any' };
  return [
    { op: 'processPublish', ev: { destination: '/topic/a.b', properties: null, payload: utf8('hello') } },
    { op: 'processPublish', ev: { destination: '/queue/jobs', properties: PROPS_BYTES, payload: utf8('{"n":1}') } },
    { op: 'processPublish', ev: { destination: '/exchange/logs/error', properties: PROPS_BYTES, payload: new Uint8Array(0) } },
    { op: 'processPublish', ev: { destination: '/topic/ünï.cødé.😀', properties: encodeProperties({}), payload: utf8('ok') } },
    {
      op: 'processPublishBatch',
      ev: {
        destination: '/topic/telemetry.t1',
        properties: encodeProperties({ contentType: 'text/plain' }),
        payloads: [utf8('1'), new Uint8Array(0), utf8('333')],
      },
    },
    { op: 'processPublishBatch', ev: { destination: '/queue/none', properties: null, payloads: [] } },
    { op: 'processConfirmSelect', ev: { requestId: 1 } },
    {
      op: 'processSubscribe',
      ev: { requestId: 2, subscriptionId: 10, destination: '/queue/jobs', ackMode: 'client', prefetch: 100, shared: false, arguments: {} },
    },
    {
      op: 'processSubscribe',
      ev: { requestId: 0, subscriptionId: 11, destination: '/topic/#', ackMode: 'auto', prefetch: 0, shared: false, arguments: {} },
    },
    {
      op: 'processSubscribe',
      ev: { requestId: 4, subscriptionId: 12, destination: '/topic/a.*', ackMode: 'auto', prefetch: 0, shared: true, arguments: {} },
    },
    {
      op: 'processSubscribe',
      ev: {
        requestId: 5,
        subscriptionId: 13,
        destination: '/queue/metrics',
        ackMode: 'client',
        prefetch: 50,
        shared: false,
        arguments: { 'x-stream-offset': 'first', 'x-stream-consumer-name': 'dash' },
      },
    },
    { op: 'processUnsubscribe', ev: { requestId: 3, subscriptionId: 10 } },
    { op: 'processCommitOffset', ev: { requestId: 6, subscriptionId: 13, offset: 2 ** 40 + 7 } },
    { op: 'processAck', ev: { tag: 1, multiple: false } },
    { op: 'processAck', ev: { tag: Number.MAX_SAFE_INTEGER, multiple: true } },
    { op: 'processAck', ev: { tag: 0, multiple: true } },
    { op: 'processNack', ev: { tag: 5, multiple: false, requeue: true } },
    { op: 'processNack', ev: { tag: 6, multiple: true, requeue: false } },
    { op: 'processNack', ev: { tag: 7, multiple: false, requeue: false } },
    { op: 'processFlush', ev: { requestId: 0xfffffffe } },
    {
      op: 'processDeclareExchange',
      ev: {
        requestId: 4,
        name: 'orders',
        type: 'topic',
        passive: true,
        durable: true,
        autoDelete: true,
        internal: true,
        arguments: { 'alternate-exchange': 'ae' },
      },
    },
    {
      op: 'processDeclareExchange',
      ev: {
        requestId: 5,
        name: 'plain',
        type: 'fanout',
        passive: false,
        durable: false,
        autoDelete: false,
        internal: false,
        arguments: {},
      },
    },
    { op: 'processDeleteExchange', ev: { requestId: 6, name: 'orders', ifUnused: true } },
    {
      op: 'processDeclareQueue',
      ev: {
        requestId: 7,
        name: '',
        passive: false,
        durable: false,
        exclusive: true,
        autoDelete: true,
        arguments: { 'x-max-length': 1000, 'x-dead-letter-exchange': 'dlx' },
      },
    },
    {
      op: 'processDeclareQueue',
      ev: { requestId: 8, name: 'jobs', passive: true, durable: true, exclusive: false, autoDelete: false, arguments: {} },
    },
    { op: 'processDeleteQueue', ev: { requestId: 9, name: 'jobs', ifUnused: true, ifEmpty: true } },
    { op: 'processDeleteQueue', ev: { requestId: 10, name: 'jobs2', ifUnused: false, ifEmpty: false } },
    { op: 'processPurgeQueue', ev: { requestId: 11, name: 'jobs' } },
    { op: 'processBindQueue', ev: { requestId: 12, queue: 'jobs', exchange: 'orders', routingKey: 'order.*', arguments: headersArgs } },
    { op: 'processUnbindQueue', ev: { requestId: 13, queue: 'jobs', exchange: 'orders', routingKey: 'order.*', arguments: {} } },
    { op: 'processBindExchange', ev: { requestId: 14, destination: 'dest', source: 'src', routingKey: '#', arguments: {} } },
    { op: 'processUnbindExchange', ev: { requestId: 15, destination: 'dest', source: 'src', routingKey: '#', arguments: {} } },
  ];
}

/** Every server → client op, and the events they must decode to. */
function serverOps(w: BinaryFrameWriter): Recorded[] {
  w.deliver(10, 1, false, '', 'jobs', null, utf8('job 1'));
  w.deliver(10, 2, true, '', 'jobs', PROPS, utf8('job 2'));
  w.deliver(11, Number.MAX_SAFE_INTEGER, false, 'amq.topic', 'ünï.cødé', PROPS_BYTES, new Uint8Array(0));
  const ring = utf8('....payload-in-a-ring....');
  w.deliver(12, 3, false, 'logs', 'error', null, ring, 4, 17);
  w.confirm(1);
  w.confirm(9, true);
  w.confirm(10, false, true);
  w.confirm(Number.MAX_SAFE_INTEGER, true, true);
  w.ok(7, Opcode.DECLARE_QUEUE, { name: 'amq.gen-Jx1', messageCount: 12, consumerCount: 3 });
  w.ok(11, Opcode.PURGE_QUEUE, { messageCount: 4_000_000_000 });
  w.ok(1, Opcode.CONFIRM_SELECT);
  w.error(8, 'not_found', "no queue 'jobs' in vhost '/'");
  w.error(0, 'precondition_failed', 'unknown delivery tag 42 — ünïcødé');
  w.error(0, 'internal', '');
  w.cancel(10, 'not_found', 'queue jobs was deleted');
  w.credit(16_384, 0xffffffff);
  w.dropped(11, Number.MAX_SAFE_INTEGER, '/topic/ünï.#');
  w.stream(12, 0xfffffffe);
  // A shared stream's delivery: stream id in the subscription field, tag 0, names copied from a ring.
  const names = utf8('amq.topica.b');
  w.deliverFromBytes(0xfffffffe, 0, false, names, 0, 9, 9, 3, PROPS_BYTES, 0, 4, true);
  return [
    {
      op: 'processDeliver',
      ev: {
        subscriptionId: 10,
        stream: false,
        tag: 1,
        redelivered: false,
        exchange: '',
        routingKey: 'jobs',
        properties: null,
        payload: utf8('job 1'),
      },
    },
    {
      op: 'processDeliver',
      ev: {
        subscriptionId: 10,
        stream: false,
        tag: 2,
        redelivered: true,
        exchange: '',
        routingKey: 'jobs',
        properties: PROPS_BYTES,
        payload: utf8('job 2'),
      },
    },
    {
      op: 'processDeliver',
      ev: {
        subscriptionId: 11,
        stream: false,
        tag: Number.MAX_SAFE_INTEGER,
        redelivered: false,
        exchange: 'amq.topic',
        routingKey: 'ünï.cødé',
        properties: PROPS_BYTES,
        payload: new Uint8Array(0),
      },
    },
    {
      op: 'processDeliver',
      ev: {
        subscriptionId: 12,
        stream: false,
        tag: 3,
        redelivered: false,
        exchange: 'logs',
        routingKey: 'error',
        properties: null,
        payload: utf8('payload-in-a-ring'),
      },
    },
    { op: 'processConfirm', ev: { seq: 1, multiple: false, nack: false } },
    { op: 'processConfirm', ev: { seq: 9, multiple: true, nack: false } },
    { op: 'processConfirm', ev: { seq: 10, multiple: false, nack: true } },
    { op: 'processConfirm', ev: { seq: Number.MAX_SAFE_INTEGER, multiple: true, nack: true } },
    { op: 'processOk', ev: { requestId: 7, op: Opcode.DECLARE_QUEUE, name: 'amq.gen-Jx1', messageCount: 12, consumerCount: 3 } },
    { op: 'processOk', ev: { requestId: 11, op: Opcode.PURGE_QUEUE, name: '', messageCount: 4_000_000_000, consumerCount: 0 } },
    { op: 'processOk', ev: { requestId: 1, op: Opcode.CONFIRM_SELECT, name: '', messageCount: 0, consumerCount: 0 } },
    { op: 'processError', ev: { requestId: 8, code: 'not_found', message: "no queue 'jobs' in vhost '/'" } },
    { op: 'processError', ev: { requestId: 0, code: 'precondition_failed', message: 'unknown delivery tag 42 — ünïcødé' } },
    { op: 'processError', ev: { requestId: 0, code: 'internal', message: '' } },
    { op: 'processCancel', ev: { subscriptionId: 10, code: 'not_found', message: 'queue jobs was deleted' } },
    { op: 'processCredit', ev: { messages: 16_384, bytes: 0xffffffff } },
    { op: 'processDropped', ev: { subscriptionId: 11, count: Number.MAX_SAFE_INTEGER, destination: '/topic/ünï.#' } },
    { op: 'processStream', ev: { subscriptionId: 12, streamId: 0xfffffffe } },
    {
      op: 'processDeliver',
      ev: {
        subscriptionId: 0xfffffffe,
        stream: true,
        tag: 0,
        redelivered: false,
        exchange: 'amq.topic',
        routingKey: 'a.b',
        properties: PROPS_BYTES,
        payload: utf8('amq.'),
      },
    },
  ];
}

function clientStream(): { bytes: Uint8Array; expected: Recorded[] } {
  const w = new BinaryFrameWriter();
  const expected = clientOps(w);
  return { bytes: w.finishCopy(), expected };
}

function serverStream(): { bytes: Uint8Array; expected: Recorded[] } {
  const w = new BinaryFrameWriter();
  const expected = serverOps(w);
  return { bytes: w.finishCopy(), expected };
}

describe('ws-binary - round trip', () => {
  it('round trip - every client → server op through decodeFrame', () => {
    const { bytes, expected } = clientStream();
    const { events, decoder } = serverDecoder();
    decoder.decodeFrame(bytes);
    expect(events).toEqual(expected);
    expect(decoder.state).toBe(DecoderState.OP_START);
  });

  it('round trip - every server → client op through decodeFrame', () => {
    const { bytes, expected } = serverStream();
    const { events, decoder } = clientDecoder();
    decoder.decodeFrame(bytes);
    expect(events).toEqual(expected);
  });

  it('round trip - the properties views decode back to the published properties', () => {
    const { bytes } = clientStream();
    const { events, decoder } = serverDecoder();
    decoder.decodeFrame(bytes);
    const props = events[1].ev.properties as Uint8Array;
    expect(decodeProperties(props, 0, props.length)).toEqual(PROPS);
  });

  it('round trip - the free decodeFrame function, both directions', () => {
    const c = recorder();
    const client = clientStream();
    decodeFrame(client.bytes, c.server);
    expect(c.events).toEqual(client.expected);
    const s = recorder();
    const server = serverStream();
    decodeFrame(server.bytes, s.client, Direction.toClient);
    expect(s.events).toEqual(server.expected);
  });

  it('round trip - a 1 MiB payload, whole and pushed in seeded random chunks', () => {
    const w = new BinaryFrameWriter(64);
    w.publish('/queue/big', BIG, PROPS);
    w.deliver(1, 1, false, '', 'big', null, BIG);
    const frame = w.finishCopy();
    const pub = frame.subarray(0, frame.length - (5 + 15 + 3 + BIG.length));
    const del = frame.subarray(pub.length);
    const s = serverDecoder();
    s.decoder.decodeFrame(pub);
    expect(sameBytes(s.events[0].ev.payload, BIG)).toBe(true);
    const c = clientDecoder();
    c.decoder.decodeFrame(del);
    expect(sameBytes(c.events[0].ev.payload, BIG)).toBe(true);

    const seed = testSeed();
    const rng = new Prng(seed);
    for (let run = 0; run < 5; run++) {
      const streamed = serverDecoder();
      for (let at = 0; at < pub.length; ) {
        const n = rng.skewedSize(1, 100, 200_000);
        streamed.decoder.push(pub.subarray(at, at + n));
        at += n;
      }
      expect(streamed.events, `seed ${seed}`).toHaveLength(1);
      const { payload, ...rest } = streamed.events[0].ev;
      const { payload: _p, ...whole } = s.events[0].ev;
      expect(rest, `seed ${seed}`).toEqual(whole);
      expect(sameBytes(payload, BIG), `seed ${seed}`).toBe(true);
    }
  });

  it('round trip - a zero-op frame is valid and dispatches nothing', () => {
    const { events, decoder } = serverDecoder();
    decoder.decodeFrame(new Uint8Array(0));
    decoder.push(new Uint8Array(0));
    expect(events).toEqual([]);
  });

  it('round trip - consecutive publishes to one destination share one decoded string', () => {
    const w = new BinaryFrameWriter();
    w.publish('/topic/same', utf8('1'))
      .publish('/topic/same', utf8('2'))
      .publish('/topic/other', utf8('3'))
      .publish('/topic/same', utf8('4'));
    const { events, decoder } = serverDecoder();
    decoder.decodeFrame(w.finish());
    expect(events.map((e) => e.ev.destination)).toEqual(['/topic/same', '/topic/same', '/topic/other', '/topic/same']);
  });
});

/** The messages a client → server frame carries, one entry per message, batches unrolled (FLUSH ops skipped). */
function messagesOf(frame: Uint8Array): { destination: string; properties: Uint8Array | null; payload: Uint8Array; batched: boolean }[] {
  const { events, decoder } = serverDecoder();
  decoder.decodeFrame(frame);
  const out: { destination: string; properties: Uint8Array | null; payload: Uint8Array; batched: boolean }[] = [];
  for (const { op, ev } of events) {
    const e = ev as { destination: string; properties: Uint8Array | null; payload?: Uint8Array; payloads?: Uint8Array[] };
    if (op === 'processPublish')
      out.push({ destination: e.destination, properties: e.properties, payload: e.payload as Uint8Array, batched: false });
    else if (op === 'processPublishBatch')
      for (const payload of e.payloads as Uint8Array[])
        out.push({ destination: e.destination, properties: e.properties, payload, batched: true });
    else if (op !== 'processFlush') throw new Error(`unexpected ${op}`);
  }
  return out;
}

describe('ws-binary - publishCoalescing', () => {
  it('coalescing - a run to one destination becomes one PUBLISH_BATCH; another destination, properties or op ends the run', () => {
    const w = new BinaryFrameWriter();
    w.publishCoalescing('/topic/a', utf8('1'))
      .publishCoalescing('/topic/a', utf8('22'))
      .publishCoalescing('/topic/a', utf8(''))
      .publishCoalescing('/topic/b', utf8('4'))
      .publishCoalescing('/topic/b', utf8('5'), { contentType: 'text/plain' })
      .publishCoalescing('/topic/b', utf8('6'))
      .ack(7)
      .publishCoalescing('/topic/b', utf8('8'));
    // ops: BATCH(a ×3), PUBLISH(b), PUBLISH(b + props), PUBLISH(b), ACK, PUBLISH(b)
    expect(w.opCount).toBe(6);
    expect(w.entryCount).toBe(8);
    const { events, decoder } = serverDecoder();
    decoder.decodeFrame(w.finishCopy());
    expect(events.map((e) => e.op)).toEqual([
      'processPublishBatch',
      'processPublish',
      'processPublish',
      'processPublish',
      'processAck',
      'processPublish',
    ]);
    const batch = events[0].ev as { destination: string; payloads: Uint8Array[]; properties: Uint8Array | null };
    expect(batch.destination).toBe('/topic/a');
    expect(batch.properties).toBeNull();
    expect(batch.payloads.map((p) => Buffer.from(p).toString())).toEqual(['1', '22', '']);
    expect((events[2].ev as { properties: Uint8Array | null }).properties).not.toBeNull();
    expect(w.entryCount).toBe(0);
  });

  it('coalescing - the bytes equal publishBatch of the same payloads, and a single one equals publish', () => {
    const payloads = [utf8('alpha'), utf8('b'), new Uint8Array(300).fill(7)];
    const a = new BinaryFrameWriter();
    for (const p of payloads) a.publishCoalescing('/queue/jobs', p);
    expect(toHex(a.finishCopy())).toBe(toHex(new BinaryFrameWriter().publishBatch('/queue/jobs', payloads).finishCopy()));
    const one = new BinaryFrameWriter().publishCoalescing('/queue/jobs', payloads[0]).finishCopy();
    expect(toHex(one)).toBe(toHex(new BinaryFrameWriter().publish('/queue/jobs', payloads[0]).finishCopy()));
  });

  it('coalescing - a new frame starts a new run (finish, finishCopy and reset end it)', () => {
    const w = new BinaryFrameWriter();
    w.publishCoalescing('/topic/a', utf8('1'));
    w.finish();
    w.publishCoalescing('/topic/a', utf8('2'));
    expect(messagesOf(w.finishCopy()).map((m) => m.batched)).toEqual([false]);
    w.publishCoalescing('/topic/a', utf8('3'));
    w.reset();
    w.publishCoalescing('/topic/a', utf8('4')).publishCoalescing('/topic/a', utf8('5'));
    expect(messagesOf(w.finishCopy()).map((m) => Buffer.from(m.payload).toString())).toEqual(['4', '5']);
  });

  it('coalescing - seeded random runs across buffer growth: every message decodes in order, nothing lost or changed', () => {
    const prng = new Prng(testSeed());
    const destinations = ['/topic/t', '/topic/t2', '/queue/q', '/exchange/x/k.ü'];
    for (let round = 0; round < 40; round++) {
      // A small writer, so conversions and appends keep crossing a growth.
      const w = new BinaryFrameWriter(16, 1 << 22);
      const sent: { destination: string; payload: Uint8Array; props: boolean }[] = [];
      const n = prng.int(1, 200);
      for (let i = 0; i < n; i++) {
        const destination = destinations[prng.chance(0.8) ? 0 : prng.int(0, destinations.length - 1)];
        const payload = new Uint8Array(prng.chance(0.1) ? prng.int(0, 5000) : prng.int(0, 64));
        prng.fill(payload);
        const props = prng.chance(0.05);
        w.publishCoalescing(destination, payload, props ? { priority: 3 } : undefined);
        sent.push({ destination, payload, props });
        if (prng.chance(0.02)) w.flush(i);
      }
      const got = messagesOf(w.finishCopy());
      expect(got.length).toBe(sent.length);
      for (let i = 0; i < sent.length; i++) {
        expect(got[i].destination).toBe(sent[i].destination);
        expect(got[i].properties !== null).toBe(sent[i].props);
        expect(sameBytes(got[i].payload, sent[i].payload)).toBe(true);
      }
    }
  });
});

describe('ws-binary - wire bytes (docs/protocol.md examples)', () => {
  it('wire - the example client frame: CONFIRM_SELECT, PUBLISH with properties, PUBLISH_BATCH', () => {
    const w = new BinaryFrameWriter();
    w.confirmSelect(1);
    w.publish('/queue/jobs', utf8('hello'), { deliveryMode: 2 });
    w.publishBatch('/topic/s.t', [utf8('1'), utf8('22')]);
    expect(w.opCount).toBe(3);
    const expected = hex(`
      03 04 00 00 00  01 00 00 00
      01 1a 00 00 00  01  0b 00 2f 71 75 65 75 65 2f 6a 6f 62 73  03 00 00 00  00 10 02  68 65 6c 6c 6f
      02 1c 00 00 00  00  0a 00 2f 74 6f 70 69 63 2f 73 2e 74  02 00 00 00  01 00 00 00 31  02 00 00 00 32 32`);
    expect(toHex(w.finish())).toBe(toHex(expected));
  });

  it('wire - the example server frame: OK, DELIVER, CONFIRM', () => {
    const w = new BinaryFrameWriter();
    w.ok(1, Opcode.CONFIRM_SELECT);
    w.deliver(7, 1, false, 'amq.topic', 's.t', null, utf8('1'));
    w.confirm(3, true);
    const expected = hex(`
      42 0e 00 00 00  01 00 00 00  03  00 00 00 00  00 00 00 00  00
      40 1c 00 00 00  07 00 00 00  01 00 00 00 00 00 00 00  00  09 61 6d 71 2e 74 6f 70 69 63  03 73 2e 74  31
      41 09 00 00 00  01  03 00 00 00 00 00 00 00`);
    expect(toHex(w.finish())).toBe(toHex(expected));
  });

  it('wire - each minimal op body is the OP_MIN_BODY size', () => {
    const w = new BinaryFrameWriter();
    const sizes: Array<[number, () => void]> = [
      [Opcode.PUBLISH, () => w.publish('', new Uint8Array(0))],
      [Opcode.PUBLISH_BATCH, () => w.publishBatch('', [])],
      [Opcode.CONFIRM_SELECT, () => w.confirmSelect(0)],
      [Opcode.SUBSCRIBE, () => w.subscribe(0, 0, '')],
      [Opcode.UNSUBSCRIBE, () => w.unsubscribe(0, 0)],
      [Opcode.COMMIT_OFFSET, () => w.commitOffset(0, 0, 0)],
      [Opcode.ACK, () => w.ack(0)],
      [Opcode.NACK, () => w.nack(0)],
      [Opcode.FLUSH, () => w.flush(0)],
      [Opcode.DECLARE_EXCHANGE, () => w.declareExchange(0, '', '')],
      [Opcode.DELETE_EXCHANGE, () => w.deleteExchange(0, '')],
      [Opcode.DECLARE_QUEUE, () => w.declareQueue(0, '')],
      [Opcode.DELETE_QUEUE, () => w.deleteQueue(0, '')],
      [Opcode.PURGE_QUEUE, () => w.purgeQueue(0, '')],
      [Opcode.BIND_QUEUE, () => w.bindQueue(0, '', '', '')],
      [Opcode.UNBIND_QUEUE, () => w.unbindQueue(0, '', '', '')],
      [Opcode.BIND_EXCHANGE, () => w.bindExchange(0, '', '', '')],
      [Opcode.UNBIND_EXCHANGE, () => w.unbindExchange(0, '', '', '')],
      [Opcode.DELIVER, () => w.deliver(0, 0, false, '', '', null, new Uint8Array(0))],
      [Opcode.CONFIRM, () => w.confirm(0)],
      [Opcode.OK, () => w.ok(0, Opcode.ACK)],
      [Opcode.ERROR, () => w.error(0, '', '')],
      [Opcode.CANCEL, () => w.cancel(0, '', '')],
      [Opcode.CREDIT, () => w.credit(0, 0)],
      [Opcode.DROPPED, () => w.dropped(0, 0, '')],
      [Opcode.STREAM, () => w.stream(0, 0)],
    ];
    expect(sizes.map(([op]) => op).sort((a, b) => a - b)).toEqual(Object.values(Opcode).sort((a, b) => a - b));
    for (const [op, write] of sizes) {
      write();
      const frame = w.finish();
      expect(frame[0], `opcode of ${op}`).toBe(op);
      expect(frame.length - 5, `body of opcode 0x${op.toString(16)}`).toBe(OP_MIN_BODY[op as Opcode]);
      expect(new DataView(frame.buffer, frame.byteOffset).getUint32(1, true)).toBe(frame.length - 5);
    }
  });
});

describe('ws-binary - byte at a time', () => {
  /** Pushes `bytes` one at a time; returns the state name and event count after each byte. */
  function byByte(decoder: BinaryDecoder, events: Recorded[], bytes: Uint8Array): Array<[string, number]> {
    const out: Array<[string, number]> = [];
    for (let i = 0; i < bytes.length; i++) {
      decoder.push(bytes.subarray(i, i + 1));
      out.push([decoder.stateName, events.length]);
    }
    return out;
  }

  it('byte at a time - ACK then CONFIRM_SELECT walk the exact state sequence', () => {
    const w = new BinaryFrameWriter();
    w.ack(5, true).confirmSelect(9);
    const bytes = w.finishCopy();
    expect(bytes.length).toBe(14 + 9);
    const { events, decoder } = serverDecoder();
    const body = (n: number, ev: number): Array<[string, number]> => Array.from({ length: n }, () => ['OP_BODY', ev] as [string, number]);
    expect(byByte(decoder, events, bytes)).toEqual([
      ['OP_LENGTH_0', 0],
      ['OP_LENGTH_1', 0],
      ['OP_LENGTH_2', 0],
      ['OP_LENGTH_3', 0],
      ...body(9, 0), // the last length byte, then 8 of the 9 body bytes
      ['OP_START', 1], // 9th body byte: ACK dispatched
      ['OP_LENGTH_0', 1],
      ['OP_LENGTH_1', 1],
      ['OP_LENGTH_2', 1],
      ['OP_LENGTH_3', 1],
      ...body(4, 1),
      ['OP_START', 2],
    ]);
    expect(events).toEqual([
      { op: 'processAck', ev: { tag: 5, multiple: true } },
      { op: 'processConfirmSelect', ev: { requestId: 9 } },
    ]);
  });

  it('byte at a time - every op in both directions gives the same events as one push', () => {
    for (const [stream, make] of [
      [clientStream(), serverDecoder],
      [serverStream(), clientDecoder],
    ] as const) {
      const { events, decoder } = make();
      const states = byByte(decoder, events, stream.bytes);
      expect(events).toEqual(stream.expected);
      expect(states.at(-1)).toEqual(['OP_START', stream.expected.length]);
      // Only framing states ever show between pushes.
      expect(new Set(states.map(([s]) => s))).toEqual(
        new Set(['OP_START', 'OP_LENGTH_0', 'OP_LENGTH_1', 'OP_LENGTH_2', 'OP_LENGTH_3', 'OP_BODY']),
      );
    }
  });

  it('byte at a time - state names follow DecoderState', () => {
    expect(DECODER_STATE_NAMES).toEqual(['OP_START', 'OP_LENGTH_0', 'OP_LENGTH_1', 'OP_LENGTH_2', 'OP_LENGTH_3', 'OP_BODY', 'FAILED']);
    for (const [name, value] of Object.entries(DecoderState)) expect(DECODER_STATE_NAMES[value]).toBe(name);
  });
});

describe('ws-binary - split streams', () => {
  it('split - at every offset of the client stream, the events equal one push', () => {
    const { bytes, expected } = clientStream();
    for (let k = 0; k <= bytes.length; k++) {
      const { events, decoder } = serverDecoder();
      decoder.push(bytes.subarray(0, k));
      decoder.push(bytes.subarray(k));
      expect(events, `split at ${k}`).toEqual(expected);
      expect(decoder.state).toBe(DecoderState.OP_START);
    }
  });

  it('split - at every offset of the server stream, the events equal one push', () => {
    const { bytes, expected } = serverStream();
    for (let k = 0; k <= bytes.length; k++) {
      const { events, decoder } = clientDecoder();
      decoder.push(bytes.subarray(0, k));
      decoder.push(bytes.subarray(k));
      expect(events, `split at ${k}`).toEqual(expected);
    }
  });

  it('split - seeded random cuts into many chunks, copied into fresh buffers', () => {
    const seed = testSeed();
    const rng = new Prng(seed);
    const { bytes, expected } = clientStream();
    for (let run = 0; run < 300; run++) {
      const { events, decoder } = serverDecoder();
      for (let at = 0; at < bytes.length; ) {
        const n = rng.skewedSize(0, 8, 300);
        decoder.push(bytes.slice(at, at + n));
        at += n;
      }
      expect(events, `seed ${seed} run ${run}`).toEqual(expected);
    }
  });
});

describe("ws-binary - buffers don't clobber", () => {
  it("clobber - a split op's views point into the decoder's own copy: rewriting the chunks changes nothing", () => {
    const w = new BinaryFrameWriter();
    w.publish('/queue/jobs', utf8('payload-bytes'), PROPS);
    const op = w.finishCopy();
    const { events, decoder } = serverDecoder();
    // One reusable receive buffer, as a socket reader would have.
    const scratch = new Uint8Array(op.length);
    const cut = 20;
    scratch.set(op.subarray(0, cut));
    decoder.push(scratch.subarray(0, cut));
    scratch.fill(0xee);
    scratch.set(op.subarray(cut), 0);
    decoder.push(scratch.subarray(0, op.length - cut));
    scratch.fill(0xdd);
    expect(events).toHaveLength(1);
    const ev = events[0].ev as { destination: string; properties: Uint8Array; payload: Uint8Array };
    expect(ev.destination).toBe('/queue/jobs');
    expect(ev.payload).toEqual(utf8('payload-bytes'));
    expect(decodeProperties(ev.properties, 0, ev.properties.length)).toEqual(PROPS);
    expect(ev.payload.buffer).not.toBe(scratch.buffer);
    // The payload and properties views share the one copy of the body.
    expect(ev.payload.buffer).toBe(ev.properties.buffer);
  });

  it('clobber - a whole op aliases its chunk (zero copy): rewriting it changes payload and properties, never strings', () => {
    const w = new BinaryFrameWriter();
    w.publish('/queue/jobs', utf8('payload-bytes'), PROPS);
    w.publishBatch('/topic/t', [utf8('one'), utf8('two')]);
    const scratch = w.finishCopy();
    const { events, decoder } = serverDecoder();
    decoder.push(scratch);
    const pub = events[0].ev as { destination: string; properties: Uint8Array; payload: Uint8Array };
    const batch = events[1].ev as { destination: string; payloads: Uint8Array[] };
    expect(pub.payload.buffer).toBe(scratch.buffer);
    expect(pub.properties.buffer).toBe(scratch.buffer);
    expect(batch.payloads[1].buffer).toBe(scratch.buffer);
    scratch.fill(0x00);
    expect(pub.payload).toEqual(new Uint8Array(13)); // documented: valid only until the chunk is reused
    expect(batch.payloads[0]).toEqual(new Uint8Array(3));
    expect(pub.destination).toBe('/queue/jobs');
    expect(batch.destination).toBe('/topic/t');
  });

  it('clobber - a split header with a whole body still aliases the chunk that holds the body', () => {
    const w = new BinaryFrameWriter();
    w.deliver(1, 1, false, 'x', 'k', null, utf8('body'));
    const op = w.finishCopy();
    const { events, decoder } = clientDecoder();
    decoder.push(op.slice(0, 3));
    const rest = op.slice(3);
    decoder.push(rest);
    const ev = events[0].ev as { payload: Uint8Array; exchange: string };
    expect(ev.payload.buffer).toBe(rest.buffer);
    rest.fill(0);
    expect(ev.exchange).toBe('x');
  });

  it('clobber - decoded header tables in management ops never alias the input', () => {
    const w = new BinaryFrameWriter();
    w.declareQueue(1, 'q', { arguments: { blob: Uint8Array.of(1, 2, 3), s: 'text' } });
    const frame = w.finishCopy();
    const { events, decoder } = serverDecoder();
    decoder.decodeFrame(frame);
    frame.fill(0xff);
    expect(events[0].ev.arguments).toEqual({ blob: Uint8Array.of(1, 2, 3), s: 'text' });
  });
});

describe('ws-binary - limits', () => {
  it('limit - an op body over maxOpBodyBytes is too_large at its header, before the body arrives', () => {
    const { events, decoder } = serverDecoder({ maxOpBodyBytes: 1000 });
    const w = new BinaryFrameWriter();
    w.ack(1);
    w.publish('/topic/x', new Uint8Array(1001 - 3 - 8));
    const frame = w.finishCopy();
    const err = protocolError(() => decoder.push(frame.subarray(0, 14 + 5)));
    expect(err.code).toBe('too_large');
    expect(err.state).toBe('OP_LENGTH_3');
    expect(err.message).toMatch(/PUBLISH body of 1001 bytes is over the limit of 1000/);
    expect(err.excerpt).toBe('01 e9 03 00 00');
    expect(events).toHaveLength(1); // the ACK before it was dispatched
  });

  it('limit - the default op body limit refuses a 4 GiB length prefix without allocating', () => {
    const { decoder } = serverDecoder();
    const err = protocolError(() => decoder.push(rawOp(Opcode.PUBLISH, '', 0xffff_ffff).subarray(0, 5)));
    expect(err.code).toBe('too_large');
  });

  it('limit - a split header is checked when its last byte arrives, and quoted rebuilt', () => {
    const { decoder } = serverDecoder({ maxOpBodyBytes: 100 });
    const header = rawOp(Opcode.PUBLISH, '', 101).subarray(0, 5);
    for (let i = 0; i < 4; i++) decoder.push(header.subarray(i, i + 1));
    const err = protocolError(() => decoder.push(header.subarray(4)));
    expect(err.code).toBe('too_large');
    expect(err.state).toBe('OP_LENGTH_3');
    expect(err.excerpt).toBe('01 65 00 00 00');
  });

  it('limit - a destination over maxDestinationBytes is too_large (default: /exchange/ + 255 + / + 255)', () => {
    expect(MAX_DESTINATION_BYTES).toBe(521);
    const longest = '/exchange/' + 'e'.repeat(255) + '/' + 'k'.repeat(255);
    const w = new BinaryFrameWriter();
    w.publish(longest, utf8('x'));
    const { events, decoder } = serverDecoder();
    decoder.decodeFrame(w.finish());
    expect(events[0].ev.destination).toBe(longest);

    const body = concat(Uint8Array.of(0, 0x0a, 0x02), new Uint8Array(522).fill(0x61));
    const err = protocolError(() => serverDecoder().decoder.decodeFrame(rawOp(Opcode.PUBLISH, body)));
    expect(err.code).toBe('too_large');
    expect(err.state).toBe('PUBLISH.destination');
    expect(err.message).toMatch(/destination of 522 bytes is over the limit of 521/);

    const small = serverDecoder({ maxDestinationBytes: 8 });
    w.subscribe(1, 1, '/topic/ab');
    expect(protocolError(() => small.decoder.decodeFrame(w.finish())).state).toBe('SUBSCRIBE.destination');
  });

  it('limit - headers nested past maxHeaderDepth are too_large inside PUBLISH', () => {
    const w = new BinaryFrameWriter();
    w.publish('/topic/x', utf8('x'), { headers: { a: { b: { c: [1] } } } });
    const frame = w.finishCopy();
    serverDecoder({ maxHeaderDepth: 4 }).decoder.decodeFrame(frame);
    const err = protocolError(() => serverDecoder({ maxHeaderDepth: 3 }).decoder.decodeFrame(frame));
    expect(err.code).toBe('too_large');
    expect(err.state).toBe('PUBLISH.properties.headers');
  });

  it('limit - arguments with more items than maxHeaderEntries are too_large', () => {
    const w = new BinaryFrameWriter();
    w.declareQueue(1, 'q', { arguments: { a: [1, 2, 3], b: 1 } });
    const frame = w.finishCopy();
    serverDecoder({ maxHeaderEntries: 5 }).decoder.decodeFrame(frame);
    const err = protocolError(() => serverDecoder({ maxHeaderEntries: 4 }).decoder.decodeFrame(frame));
    expect(err.code).toBe('too_large');
    expect(err.state).toBe('DECLARE_QUEUE.arguments');
  });

  it('limit - more ops than maxFrameOps in one call is too_large; batch entries count one each', () => {
    const w = new BinaryFrameWriter();
    w.ack(1).ack(2).ack(3);
    const three = w.finishCopy();
    const a = serverDecoder({ maxFrameOps: 2 });
    const err = protocolError(() => a.decoder.decodeFrame(three));
    expect(err.code).toBe('too_large');
    expect(a.events).toHaveLength(2);

    const b = serverDecoder({ maxFrameOps: 3 });
    b.decoder.decodeFrame(three);
    b.decoder.decodeFrame(three); // the count is per call
    expect(b.events).toHaveLength(6);

    w.publishBatch('/topic/t', [utf8('1'), utf8('2'), utf8('3'), utf8('4')]);
    const batch = w.finishCopy();
    serverDecoder({ maxFrameOps: 4 }).decoder.decodeFrame(batch);
    expect(protocolError(() => serverDecoder({ maxFrameOps: 3 }).decoder.decodeFrame(batch)).code).toBe('too_large');
  });

  it('limit - options are validated up front, naming the option', () => {
    const { server } = recorder();
    expect(() => new BinaryDecoder(Direction.toServer, server, { maxOpBodyBytes: 0 })).toThrow(
      /options.maxOpBodyBytes must be an integer from 1/,
    );
    expect(() => new BinaryDecoder(Direction.toServer, server, { maxFrameOps: 1.5 })).toThrow(/options.maxFrameOps/);
    expect(() => new BinaryDecoder(Direction.toServer, server, { maxDestinationBytes: 70_000 })).toThrow(
      /options.maxDestinationBytes must be an integer from 1 to 65535/,
    );
    expect(() => new BinaryDecoder(Direction.toServer, server, { maxHeaderDepth: 0 })).toThrow(RangeError);
    expect(() => new BinaryDecoder(Direction.toServer, server, { validateProperties: 'yes' as unknown as boolean })).toThrow(TypeError);
    expect(() => new BinaryDecoder(7 as typeof Direction.toServer, server)).toThrow(/direction must be/);
  });
});

describe('ws-binary - malformed input', () => {
  it.each([
    ['opcode 0x00', '00 04 00 00 00 00 00 00 00', 'OP_START', /unknown opcode 0x00/],
    ['an unassigned client opcode', '0a 04 00 00 00 00 00 00 00', 'OP_START', /unknown opcode 0x0a/],
    ['an opcode above 0x7f', 'ff', 'OP_START', /unknown opcode 0xff/],
    ['a server opcode sent to the server', '40 0f 00 00 00', 'OP_START', /0x40 \(DELIVER\) travels server → client/],
    ['ACK with a 10-byte body', '06 0a 00 00 00' + '00'.repeat(10), 'OP_LENGTH_3', /ACK body must be 9 bytes \(header says 10\)/],
    ['PUBLISH shorter than its fixed fields', '01 02 00 00 00 00 00', 'OP_LENGTH_3', /at least 3 bytes/],
    ['PUBLISH with a reserved flag bit', '01 03 00 00 00 02 00 00', 'PUBLISH.flags', /sets reserved bits/],
    ['PUBLISH whose destination runs past the body', '01 05 00 00 00 00 05 00 61 62', 'PUBLISH.destination', /needs 5 bytes/],
    ['PUBLISH with invalid UTF-8 in the destination', '01 05 00 00 00 00 02 00 c3 28', 'PUBLISH.destination', /not valid UTF-8/],
    ['PUBLISH whose properties length runs past the body', '01 08 00 00 00 01 00 00 09 00 00 00 00', 'PUBLISH.properties', /needs 9 bytes/],
    [
      'PUBLISH with a malformed properties block',
      '01 0a 00 00 00 01 00 00 03 00 00 00 00 10 07',
      'PUBLISH.properties.deliveryMode',
      /deliveryMode 7/,
    ],
    ['ACK with tag above 2^53 - 1', '06 09 00 00 00 00 00 00 00 00 00 00 20 00', 'ACK.tag', /above 2\^53 - 1/],
    ['NACK with a reserved flag bit', '07 09 00 00 00 04 01 00 00 00 00 00 00 00', 'NACK.flags', /reserved/],
    ['SUBSCRIBE with ack mode 3', '04 0f 00 00 00 00000000 01000000 03 00000000 0000', 'SUBSCRIBE.ackMode', /ackMode 3/],
    // Bytes after the destination are the optional arguments table: one byte is not a table.
    ['SUBSCRIBE with a trailing byte', '04 10 00 00 00 00000000 01000000 00 00000000 0000 ff', 'SUBSCRIBE.arguments', /needs 4 bytes/],
    [
      'SUBSCRIBE with bytes after its arguments table',
      '04 14 00 00 00 00000000 01000000 00 00000000 0000 00000000 ff',
      'SUBSCRIBE.end',
      /1 unexpected bytes/,
    ],
    ['COMMIT_OFFSET with a 15-byte body', '09 0f 00 00 00' + '00'.repeat(15), 'OP_LENGTH_3', /COMMIT_OFFSET body must be 16 bytes/],
    ['PUBLISH_BATCH with an impossible count', '02 07 00 00 00 00 00 00 ffffff0f', 'PUBLISH_BATCH.count', /count 268435455 needs/],
    [
      'PUBLISH_BATCH whose entry runs past the body',
      '02 0c 00 00 00 00 00 00 01000000 05000000 61',
      'PUBLISH_BATCH.payload',
      /needs 5 bytes/,
    ],
    ['PUBLISH_BATCH with bytes after its entries', '02 0c 00 00 00 00 00 00 01000000 00000000 61', 'PUBLISH_BATCH.end', /unexpected bytes/],
    ['DECLARE_QUEUE with a reserved flag bit', '12 0a 00 00 00 00000000 10 00 00000000', 'DECLARE_QUEUE.flags', /reserved/],
    ['PURGE_QUEUE with any flag', '14 06 00 00 00 00000000 01 00', 'PURGE_QUEUE.flags', /reserved/],
    ['BIND_QUEUE with a bad arguments table', '15 0d 00 00 00 00000000 00 00 00 00 01000000 00', 'BIND_QUEUE.arguments', /needs 1 bytes/],
  ])('malformed - %s is bad_frame', (_case, bytesHex, state, message) => {
    const { decoder } = serverDecoder();
    const err = protocolError(() => decoder.decodeFrame(hex(bytesHex)));
    expect(err.code).toBe('bad_frame');
    expect(err.state).toBe(state);
    expect(err.message).toMatch(message);
    expect(decoder.state).toBe(DecoderState.FAILED);
  });

  it.each([
    ['a client opcode sent to the client', '01', 'OP_START', /0x01 \(PUBLISH\) travels client → server/],
    ['CONFIRM with an 8-byte body', '41 08 00 00 00' + '00'.repeat(8), 'OP_LENGTH_3', /CONFIRM body must be 9 bytes/],
    ['CONFIRM with a reserved flag bit', '41 09 00 00 00 04 00 00 00 00 00 00 00 00', 'CONFIRM.flags', /reserved/],
    [
      'DELIVER with invalid UTF-8 in the routing key',
      '40 10 00 00 00 00000000 0000000000000000 00 00 01 ff',
      'DELIVER.routingKey',
      /UTF-8/,
    ],
    ['ERROR whose message runs past the body', '43 09 00 00 00 00000000 00 ff00 61 62', 'ERROR.message', /needs 255 bytes/],
    ['OK with a trailing byte', '42 0f 00 00 00 00000000 03 00000000 00000000 00 00', 'OK.end', /unexpected/],
  ])('malformed - %s (client side) is bad_frame', (_case, bytesHex, state, message) => {
    const { decoder } = clientDecoder();
    const err = protocolError(() => decoder.decodeFrame(hex(bytesHex)));
    expect(err.code).toBe('bad_frame');
    expect(err.state).toBe(state);
    expect(err.message).toMatch(message);
  });

  it('malformed - decodeFrame with a trailing partial op is bad_frame, at the header and in the body', () => {
    const { bytes } = clientStream();
    // Offsets of op starts, to cut inside a header and inside a body.
    const w = new BinaryFrameWriter();
    w.publish('/topic/a.b', utf8('hello'));
    const firstOp = w.finish().length;
    const inHeader = serverDecoder();
    const e1 = protocolError(() => inHeader.decoder.decodeFrame(bytes.subarray(0, firstOp + 3)));
    expect(e1.code).toBe('bad_frame');
    expect(e1.state).toBe('OP_LENGTH_0');
    expect(e1.message).toMatch(/truncated frame: the frame ends inside an op header \(3 of 5 bytes\)/);
    expect(inHeader.events).toHaveLength(1);
    const inBody = serverDecoder();
    const e2 = protocolError(() => inBody.decoder.decodeFrame(bytes.subarray(0, firstOp + 10)));
    expect(e2.state).toBe('OP_BODY');
    expect(e2.message).toMatch(/truncated frame: PUBLISH has 5 of its/);
    expect(e2.offset).toBe(firstOp);
  });

  it('malformed - the same truncated bytes pushed as a stream just wait for more', () => {
    const { bytes } = clientStream();
    const { events, decoder } = serverDecoder();
    decoder.push(bytes.subarray(0, 30));
    expect(decoder.state).toBe(DecoderState.OP_BODY);
    decoder.push(bytes.subarray(30));
    expect(events).toHaveLength(clientStream().expected.length);
  });

  it('malformed - garbage bytes are bad_frame with a hex excerpt capped at MAX_EXCERPT_BYTES', () => {
    const garbage = new Uint8Array(200).map((_v, i) => 0x80 + (i % 64));
    const err = protocolError(() => serverDecoder().decoder.push(garbage));
    expect(err.code).toBe('bad_frame');
    expect(err.offset).toBe(0);
    const quoted = err.excerpt.split(' ');
    expect(quoted).toHaveLength(MAX_EXCERPT_BYTES + 1);
    expect(quoted[0]).toBe('80');
    expect(quoted.at(-1)).toBe('…');
    expect(err.message).toContain(err.excerpt);
  });

  it('malformed - after an error the decoder stays FAILED and rethrows it; reset() recovers', () => {
    const { events, decoder } = serverDecoder();
    const w = new BinaryFrameWriter();
    w.ack(1);
    const good = w.finishCopy();
    const err = protocolError(() => decoder.push(concat(good, hex('ff'), good)));
    expect(events).toHaveLength(1); // ops before the error are dispatched; none after it
    expect(decoder.state).toBe(DecoderState.FAILED);
    expect(decoder.stateName).toBe('FAILED');
    expect(decoder.error).toBe(err);
    expect(() => decoder.push(good)).toThrow(err);
    expect(() => decoder.decodeFrame(good)).toThrow(err);
    expect(events).toHaveLength(1);
    decoder.reset();
    expect(decoder.error).toBeNull();
    decoder.push(good);
    expect(events).toHaveLength(2);
  });

  it('malformed - reset() drops a half-collected op', () => {
    const { events, decoder } = serverDecoder();
    const w = new BinaryFrameWriter();
    w.ack(1);
    const good = w.finishCopy();
    decoder.push(good.subarray(0, 7));
    decoder.reset();
    decoder.push(good);
    expect(events).toEqual([{ op: 'processAck', ev: { tag: 1, multiple: false } }]);
  });

  it('malformed - decodeFrame on a decoder mid-op is a usage error, not a ProtocolError', () => {
    const { decoder } = serverDecoder();
    decoder.push(hex('06 09'));
    expect(() => decoder.decodeFrame(new Uint8Array(0))).toThrow(/mixing push and decodeFrame/);
  });

  it('malformed - properties are forwarded unchecked when validateProperties is off', () => {
    const frame = hex('01 0a 00 00 00 01 00 00 03 00 00 00 00 10 07');
    const { events, decoder } = serverDecoder({ validateProperties: false });
    decoder.decodeFrame(frame);
    expect(events[0].ev.properties).toEqual(hex('00 10 07'));
  });

  it('malformed - a throwing dispatcher stops the decoder with its own error', () => {
    const { server } = recorder();
    const boom = new Error('dispatcher failed');
    const decoder = new BinaryDecoder(Direction.toServer, {
      ...server,
      processAck: () => {
        throw boom;
      },
    });
    const w = new BinaryFrameWriter();
    w.ack(1);
    expect(() => decoder.push(w.finish())).toThrow(boom);
    expect(decoder.state).toBe(DecoderState.FAILED);
  });
});

describe('ws-binary - re-entrancy', () => {
  it('re-entrancy - a dispatcher that pushes into its own decoder gets an Error, and the decoder stops', () => {
    const { server } = recorder();
    const w = new BinaryFrameWriter();
    w.ack(1);
    const frame = w.finishCopy();
    let inner: unknown;
    const decoder: BinaryDecoder = new BinaryDecoder(Direction.toServer, {
      ...server,
      processAck: () => {
        try {
          decoder.push(frame);
        } catch (err) {
          inner = err;
          throw err;
        }
      },
    });
    expect(() => decoder.push(frame)).toThrow(/not re-entrant/);
    expect(inner).toBeInstanceOf(Error);
    expect(inner).not.toBeInstanceOf(ProtocolError);
    expect(decoder.state).toBe(DecoderState.FAILED);
  });
});

describe('ws-binary - frame writer', () => {
  it('writer - a throwing op is rolled back and the frame stays usable', () => {
    const w = new BinaryFrameWriter();
    w.ack(1);
    const before = w.length;
    expect(() => w.publish('/topic/' + 'x'.repeat(600), utf8('x'))).toThrow(/destination must be at most 521 UTF-8 bytes/);
    expect(() => w.publish('/topic/' + 'é'.repeat(300), utf8('x'))).toThrow(RangeError);
    expect(() => w.subscribe(1, 2, '/topic/x', 'manual' as 'auto')).toThrow(/ackMode must be "auto" or "client"/);
    expect(() => w.subscribe(1, 2, '/topic/x', 'client', 10, true)).toThrow(/only auto-ack subscriptions can be shared/);
    expect(() => w.subscribe(-1, 2, '/topic/x')).toThrow(/requestId must be an integer from 0 to 2\^32 - 1/);
    expect(() => w.ack(1.5)).toThrow(/tag must be an integer from 0 to 2\^53 - 1/);
    expect(() => w.confirm(2 ** 53)).toThrow(RangeError);
    expect(() => w.declareQueue(1, 'q'.repeat(256))).toThrow(/name must be at most 255/);
    expect(() => w.declareExchange(1, 'x', 'topic', { arguments: { bad: undefined as unknown as null } })).toThrow(TypeError);
    expect(() => w.publish('/topic/x', utf8('x'), { priority: 300 })).toThrow(/priority/);
    expect(() => w.bindQueue(1, 'q', 'x', 'k'.repeat(256))).toThrow(/routingKey must be at most 255/);
    expect(() => w.deliver(1, 1, false, '', '', null, utf8('abc'), 2, 5)).toThrow(/payload range/);
    expect(w.length).toBe(before);
    expect(w.opCount).toBe(1);
    w.ack(2);
    const { events, decoder } = serverDecoder();
    decoder.decodeFrame(w.finish());
    expect(events.map((e) => e.ev.tag)).toEqual([1, 2]);
  });

  it('writer - grows from a tiny buffer, and gives a big buffer back after the frame that needed it', () => {
    const w = new BinaryFrameWriter(16, 4096);
    for (let i = 0; i < 100; i++) w.publish('/topic/t', utf8(`message ${i}`));
    expect(w.capacity).toBeGreaterThanOrEqual(w.length);
    w.publish('/queue/big', BIG);
    const frame = w.finish();
    const { events, decoder } = serverDecoder();
    decoder.decodeFrame(frame);
    expect(events).toHaveLength(101);
    expect(sameBytes(events[100].ev.payload, BIG)).toBe(true);
    expect(w.capacity).toBeGreaterThan(BIG.length); // still valid: `frame` is a view of it
    w.ack(1);
    expect(w.capacity).toBe(16);
  });

  it('writer - finish() returns a view of the reused buffer; finishCopy() an independent array', () => {
    const w = new BinaryFrameWriter();
    w.ack(1);
    const view = w.finish();
    w.ack(2);
    expect(view[13]).toBe(0); // tag high byte
    expect(view[6]).toBe(2); // overwritten by the next frame: a view is valid until the next op
    const copy = w.finishCopy();
    w.ack(3);
    expect(copy[6]).toBe(2);
    expect(w.finish().length).toBe(14);
    expect(w.length).toBe(0);
    w.ack(4);
    w.reset();
    expect(w.length).toBe(0);
    expect(w.opCount).toBe(0);
  });

  it('writer - ERROR and CANCEL messages are cut to MAX_ERROR_MESSAGE_BYTES on a character boundary', () => {
    const w = new BinaryFrameWriter();
    w.error(1, 'internal', 'é'.repeat(600)); // 1200 UTF-8 bytes
    w.cancel(2, 'x', 'a'.repeat(2000));
    w.error(3, 'x', 'a' + '😀'.repeat(400));
    const { events, decoder } = clientDecoder();
    decoder.decodeFrame(w.finish());
    expect(events[0].ev.message).toBe('é'.repeat(MAX_ERROR_MESSAGE_BYTES / 2));
    expect(events[1].ev.message).toBe('a'.repeat(MAX_ERROR_MESSAGE_BYTES));
    expect(utf8(events[2].ev.message as string).length).toBeLessThanOrEqual(MAX_ERROR_MESSAGE_BYTES);
    expect(events[2].ev.message).toBe('a' + '😀'.repeat(255));
  });

  it('writer - constructor arguments are validated', () => {
    expect(() => new BinaryFrameWriter(8)).toThrow(/initialCapacity must be an integer ≥ 16/);
    expect(() => new BinaryFrameWriter(1024, 512)).toThrow(/retainBytes must be an integer ≥ initialCapacity/);
  });
});

describe('ws-binary - DELIVER from ring bytes', () => {
  it('deliverFromBytes - the same bytes as deliver() with the strings, for non-ASCII names, properties or none, empty payloads', () => {
    const prng = new Prng(testSeed());
    const enc = new TextEncoder();
    const names = ['', 'amq.topic', 'ünï.cødé', '😀'.repeat(63), 'x'.repeat(255)];
    for (let i = 0; i < 200; i++) {
      const exchange = prng.pick(names);
      const key = prng.pick(names);
      const props = prng.chance(0.5) ? encodeProperties({ contentType: 'text/plain', headers: { n: i } }) : null;
      const payload = new Uint8Array(prng.int(0, 300)).map(() => prng.int(0, 255));
      // A region laid out as the ring record has it: some bytes, exchange, key, more bytes, payload.
      const ex = enc.encode(exchange);
      const k = enc.encode(key);
      const lead = prng.int(0, 9);
      const src = new Uint8Array(lead + ex.length + k.length + 5 + payload.length);
      src.set(ex, lead);
      src.set(k, lead + ex.length);
      const payloadAt = lead + ex.length + k.length + 5;
      src.set(payload, payloadAt);
      const tag = prng.int(0, 2 ** 40);
      const redelivered = prng.chance(0.3);
      const expected = new BinaryFrameWriter().deliver(7, tag, redelivered, exchange, key, props, payload).finishCopy();
      const got = new BinaryFrameWriter()
        .deliverFromBytes(7, tag, redelivered, src, lead, ex.length, lead + ex.length, k.length, props, payloadAt, payload.length)
        .finishCopy();
      expect(got).toEqual(expected);
    }
  });

  it('deliverFromBytes - a name over 255 bytes is refused (a shortstr cannot say it)', () => {
    const src = new Uint8Array(600);
    expect(() => new BinaryFrameWriter().deliverFromBytes(1, 1, false, src, 0, 256, 256, 1, null, 300, 1)).toThrow(RangeError);
  });
});
