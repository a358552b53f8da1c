/**
 * Ring record codec: every record kind written by InboundWriter/OutboundWriter into a real SPSC ring
 * and decoded in place with RecordReader inside consumer.drain, plus full-ring refusals and seeded
 * random runs that straddle the wrap point.
 *
 * Replay a failing random case with SHARDMQ_SEED=<seed printed in the message>.
 */
import { describe, expect, it } from 'vitest';
import { DestinationType } from '../../src/protocol/destination.js';
import {
  ConfirmStatus,
  InboundWriter,
  OutboundWriter,
  RecordKind,
  RecordReader,
  newDeliverRecord,
  newPublishRecord,
  newSubscribeRecord,
} from '../../src/protocol/ring-record-codec.js';
import { recordFootprint } from '../../src/ring/layout.js';
import { RingConsumer, RingProducer, createRingStorage, maxRecordPayload } from '../../src/ring/spsc-ring.js';
import { Prng, testSeed } from '../helpers/prng.js';

const utf8 = (s: string): number => Buffer.byteLength(s);

/** A fresh ring with both writers on its producer side and a reader on its consumer side. */
function ring(capacity = 4096) {
  const storage = createRingStorage(capacity);
  const producer = new RingProducer(storage);
  const consumer = new RingConsumer(storage);
  return {
    producer,
    consumer,
    inbound: new InboundWriter(producer),
    outbound: new OutboundWriter(producer),
    reader: new RecordReader(consumer.bytes, consumer.view),
  };
}

interface Drained {
  kind: number;
  at: number;
  length: number;
  /** Whatever the test decoded inside the callback (copied out: the ring bytes are reused later). */
  decoded: unknown;
}

/** Drains everything committed, decoding each record inside the callback with `decode`. */
function drain(consumer: RingConsumer, decode: (kind: number, at: number, length: number) => unknown, maxRecords?: number): Drained[] {
  const out: Drained[] = [];
  consumer.drain((kind, at, length) => {
    out.push({ kind, at, length, decoded: decode(kind, at, length) });
  }, maxRecords);
  return out;
}

/** Drains exactly one record and returns it; fails if there were more or fewer. */
function drainOne(consumer: RingConsumer, decode: (kind: number, at: number, length: number) => unknown): Drained {
  const all = drain(consumer, decode);
  expect(all).toHaveLength(1);
  return all[0];
}

/** Bytes 0..n-1 with every value different from its neighbours (so shifts and truncation show). */
function pattern(n: number, salt = 0): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + salt * 7 + 1) & 0xff;
  return b;
}

// Strings whose UTF-8 length differs from their UTF-16 length: 2-, 3- and 4-byte sequences.
const EXCHANGE_NON_ASCII = 'börse-交易所';
const KEY_NON_ASCII = 'capteurs.température.🌡.日本';

describe('RecordKind', () => {
  it('RecordKind - main → shard kinds are below 64, shard → main kinds 64 and above, all distinct', () => {
    const inbound = [RecordKind.publish, RecordKind.subscribe, RecordKind.unsubscribe, RecordKind.ack, RecordKind.nack, RecordKind.connectionClosed, RecordKind.ping, RecordKind.credit];
    const outbound = [RecordKind.deliver, RecordKind.confirm, RecordKind.error, RecordKind.pong];
    for (const k of inbound) expect(k).toBeLessThan(64);
    for (const k of outbound) expect(k).toBeGreaterThanOrEqual(64);
    expect(new Set([...inbound, ...outbound]).size).toBe(inbound.length + outbound.length);
  });
});

describe('InboundWriter.publish', () => {
  it('publish - round-trips every field with non-ASCII exchange and key', () => {
    const { producer, consumer, inbound, reader } = ring();
    expect(utf8(EXCHANGE_NON_ASCII)).not.toBe(EXCHANGE_NON_ASCII.length);
    expect(utf8(KEY_NON_ASCII)).not.toBe(KEY_NON_ASCII.length);
    const payload = pattern(37);
    expect(inbound.publish(0xfffffffe, 0x89abcdef, DestinationType.exchange, EXCHANGE_NON_ASCII, KEY_NON_ASCII, payload)).toBe(true);
    producer.commit();

    const rec = drainOne(consumer, (_k, at) => {
      const r = reader.publish(at, newPublishRecord());
      return { ...r, payload: consumer.bytes.slice(r.payloadOffset, r.payloadOffset + r.payloadLength) };
    });
    expect(rec.kind).toBe(RecordKind.publish);
    expect(rec.length).toBe(InboundWriter.publishSize(utf8(EXCHANGE_NON_ASCII), utf8(KEY_NON_ASCII), payload.byteLength));
    expect(rec.decoded).toMatchObject({
      connectionId: 0xfffffffe,
      token: 0x89abcdef,
      type: DestinationType.exchange,
      exchange: EXCHANGE_NON_ASCII,
      key: KEY_NON_ASCII,
      payloadLength: 37,
      payload,
    });
  });

  it('publish - payload starts 8-aligned and ends the record, for every string length mod 8', () => {
    const { producer, consumer, inbound, reader } = ring();
    for (let keyLen = 0; keyLen < 16; keyLen++) inbound.publish(1, 0, DestinationType.topic, 'amq.topic', 'k'.repeat(keyLen), pattern(3, keyLen));
    producer.commit();
    const all = drain(consumer, (_k, at, length) => {
      const r = reader.publish(at, newPublishRecord());
      return { offset: r.payloadOffset, end: r.payloadOffset + r.payloadLength, recordEnd: at + length, key: r.key };
    });
    expect(all).toHaveLength(16);
    all.forEach(({ decoded }, keyLen) => {
      const d = decoded as { offset: number; end: number; recordEnd: number; key: string };
      expect(d.key).toBe('k'.repeat(keyLen));
      expect(d.offset % 8).toBe(0);
      expect(d.end).toBe(d.recordEnd);
    });
  });

  it('publish - empty exchange, empty key and zero-length payload', () => {
    const { producer, consumer, inbound, reader } = ring();
    expect(inbound.publish(3, 0, DestinationType.queue, '', '', new Uint8Array(0))).toBe(true);
    producer.commit();
    const rec = drainOne(consumer, (_k, at) => ({ ...reader.publish(at, newPublishRecord()) }));
    expect(rec.length).toBe(InboundWriter.publishSize(0, 0, 0));
    expect(rec.decoded).toMatchObject({ connectionId: 3, token: 0, type: DestinationType.queue, exchange: '', key: '', payloadLength: 0 });
    const d = rec.decoded as { payloadOffset: number };
    expect(d.payloadOffset).toBe(rec.at + rec.length);
  });

  it('publish - binary payload bytes (all 256 values, NULs, invalid UTF-8) are preserved exactly', () => {
    const { producer, consumer, inbound, reader } = ring();
    const payload = new Uint8Array(512 + 3);
    for (let i = 0; i < payload.length; i++) payload[i] = (255 - i) & 0xff;
    payload.set([0xc3, 0x28, 0x00], 512); // a broken 2-byte sequence and a NUL
    inbound.publish(1, 2, DestinationType.topic, 'amq.topic', 'bin', payload);
    producer.commit();
    const rec = drainOne(consumer, (_k, at) => {
      const r = reader.publish(at, newPublishRecord());
      return consumer.bytes.slice(r.payloadOffset, r.payloadOffset + r.payloadLength);
    });
    expect(rec.decoded).toEqual(payload);
  });

  it('publish - reads from a Uint8Array view with a non-zero byteOffset', () => {
    const { producer, consumer, inbound, reader } = ring();
    const backing = pattern(100, 9);
    const view = backing.subarray(13, 13 + 50);
    inbound.publish(1, 0, DestinationType.topic, 'amq.topic', 'v', view);
    producer.commit();
    const rec = drainOne(consumer, (_k, at) => {
      const r = reader.publish(at, newPublishRecord());
      return consumer.bytes.slice(r.payloadOffset, r.payloadOffset + r.payloadLength);
    });
    expect(rec.decoded).toEqual(backing.slice(13, 63));
  });

  it('publish - the reused out-object is fully overwritten by the next decode', () => {
    const { producer, consumer, inbound, reader } = ring();
    inbound.publish(1, 11, DestinationType.exchange, 'long-exchange-name', 'long.routing.key', pattern(40));
    inbound.publish(2, 0, DestinationType.queue, '', 'q', new Uint8Array(0));
    producer.commit();
    const out = newPublishRecord();
    const seen = drain(consumer, (_k, at) => ({ ...reader.publish(at, out) }));
    expect(seen.map((s) => s.decoded)).toMatchObject([
      { connectionId: 1, token: 11, type: DestinationType.exchange, exchange: 'long-exchange-name', key: 'long.routing.key', payloadLength: 40 },
      { connectionId: 2, token: 0, type: DestinationType.queue, exchange: '', key: 'q', payloadLength: 0 },
    ]);
  });

  it('publish - a payload over the ring record limit throws RangeError and writes nothing', () => {
    const { producer, consumer, inbound } = ring();
    const tooBig = new Uint8Array(maxRecordPayload(4096) - InboundWriter.publishSize(0, 1, 0) + 1);
    expect(() => inbound.publish(1, 0, DestinationType.queue, '', 'q', tooBig)).toThrow(RangeError);
    expect(producer.pendingRecords).toBe(0);
    producer.commit();
    expect(drain(consumer, () => null)).toHaveLength(0);
  });
});

describe('InboundWriter control records', () => {
  it('subscribe - round-trips every field with non-ASCII exchange and pattern', () => {
    const { producer, consumer, inbound, reader } = ring();
    expect(inbound.subscribe(0xffffffff, 0x12345678, DestinationType.exchange, 1, 0xfffffff0, 1024, EXCHANGE_NON_ASCII, 'a.*.#.ü')).toBe(true);
    producer.commit();
    const rec = drainOne(consumer, (_k, at) => ({ ...reader.subscribe(at, newSubscribeRecord()) }));
    expect(rec.kind).toBe(RecordKind.subscribe);
    expect(rec.length).toBe(24 + utf8(EXCHANGE_NON_ASCII) + utf8('a.*.#.ü'));
    expect(rec.decoded).toEqual({
      connectionId: 0xffffffff,
      subscriptionId: 0x12345678,
      type: DestinationType.exchange,
      ackMode: 1,
      prefetch: 0xfffffff0,
      credit: 1024,
      exchange: EXCHANGE_NON_ASCII,
      pattern: 'a.*.#.ü',
    });
  });

  it('subscribe - empty exchange and empty pattern', () => {
    const { producer, consumer, inbound, reader } = ring();
    inbound.subscribe(1, 2, DestinationType.queue, 0, 0, 0, '', '');
    producer.commit();
    const rec = drainOne(consumer, (_k, at) => ({ ...reader.subscribe(at, newSubscribeRecord()) }));
    expect(rec.decoded).toEqual({ connectionId: 1, subscriptionId: 2, type: DestinationType.queue, ackMode: 0, prefetch: 0, credit: 0, exchange: '', pattern: '' });
  });

  it('unsubscribe - connection and subscription ids', () => {
    const { producer, consumer, inbound, reader } = ring();
    inbound.unsubscribe(0xdeadbeef, 77);
    producer.commit();
    const rec = drainOne(consumer, (_k, at) => [reader.u32(at), reader.u32(at + 4)]);
    expect(rec).toMatchObject({ kind: RecordKind.unsubscribe, length: 8, decoded: [0xdeadbeef, 77] });
  });

  it.each([
    ['ack', RecordKind.ack, false],
    ['nack requeue', RecordKind.nack, true],
    ['nack drop', RecordKind.nack, false],
  ] as const)('settle - %s carries the kind, the requeue flag and tags up to 2^53 - 1', (_name, kind, requeue) => {
    const { producer, consumer, inbound, reader } = ring();
    const tags = [1, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 1, 2 ** 52, 2 ** 52 + 1, Number.MAX_SAFE_INTEGER];
    for (const tag of tags) expect(inbound.settle(kind, 42, tag, requeue)).toBe(true);
    producer.commit();
    const all = drain(consumer, (k, at) => ({ k, conn: reader.u32(at), requeue: reader.u32(at + 4), tag: reader.f64(at + 8) }));
    expect(all.map((r) => r.length)).toEqual(tags.map(() => 16));
    expect(all.map((r) => r.decoded)).toEqual(tags.map((tag) => ({ k: kind, conn: 42, requeue: requeue ? 1 : 0, tag })));
  });

  it('connectionClosed - connection id, second word zero', () => {
    const { producer, consumer, inbound, reader } = ring();
    producer.bytes.fill(0xff); // so a missing store of the second word would show
    inbound.connectionClosed(123456);
    producer.commit();
    const rec = drainOne(consumer, (_k, at) => [reader.u32(at), reader.u32(at + 4)]);
    expect(rec).toMatchObject({ kind: RecordKind.connectionClosed, length: 8, decoded: [123456, 0] });
  });

  it('ping - token, second word zero', () => {
    const { producer, consumer, inbound, reader } = ring();
    producer.bytes.fill(0xff);
    inbound.ping(0xfffffffe);
    producer.commit();
    const rec = drainOne(consumer, (_k, at) => [reader.u32(at), reader.u32(at + 4)]);
    expect(rec).toMatchObject({ kind: RecordKind.ping, length: 8, decoded: [0xfffffffe, 0] });
  });

  it('credit - connection, subscription and count', () => {
    const { producer, consumer, inbound, reader } = ring();
    inbound.credit(5, 6, 0xffffffff);
    producer.commit();
    const rec = drainOne(consumer, (_k, at) => [reader.u32(at), reader.u32(at + 4), reader.u32(at + 8)]);
    expect(rec).toMatchObject({ kind: RecordKind.credit, length: 12, decoded: [5, 6, 0xffffffff] });
  });
});

describe('OutboundWriter', () => {
  it('deliver - round-trips every field with a non-ASCII key and a 2^52 tag', () => {
    const { producer, consumer, outbound, reader } = ring();
    const payload = pattern(29, 3);
    expect(outbound.deliver(0xfffffff1, 0xfffffff2, 2 ** 52, true, DestinationType.topic, KEY_NON_ASCII, payload, 0, payload.byteLength)).toBe(true);
    producer.commit();
    const rec = drainOne(consumer, (_k, at) => {
      const r = reader.deliver(at, newDeliverRecord());
      return { ...r, payload: consumer.bytes.slice(r.payloadOffset, r.payloadOffset + r.payloadLength) };
    });
    expect(rec.kind).toBe(RecordKind.deliver);
    expect(rec.decoded).toMatchObject({
      connectionId: 0xfffffff1,
      subscriptionId: 0xfffffff2,
      tag: 2 ** 52,
      redelivered: true,
      type: DestinationType.topic,
      key: KEY_NON_ASCII,
      payloadLength: 29,
      payload,
    });
    const d = rec.decoded as { payloadOffset: number; payloadLength: number };
    expect(d.payloadOffset % 8).toBe(0);
    expect(d.payloadOffset + d.payloadLength).toBe(rec.at + rec.length);
  });

  it('deliver - copies only the [start, start + length) sub-range of the source buffer', () => {
    const { producer, consumer, outbound, reader } = ring();
    // Canary bytes around the range: if any of them reached the ring, the payload would differ.
    const source = new Uint8Array(64).fill(0xee);
    const inner = pattern(21, 5);
    source.set(inner, 17);
    outbound.deliver(1, 2, 3, false, DestinationType.queue, 'jobs', source, 17, 21);
    producer.commit();
    const rec = drainOne(consumer, (_k, at) => {
      const r = reader.deliver(at, newDeliverRecord());
      return { redelivered: r.redelivered, key: r.key, payload: consumer.bytes.slice(r.payloadOffset, r.payloadOffset + r.payloadLength) };
    });
    expect(rec.decoded).toEqual({ redelivered: false, key: 'jobs', payload: inner });
    expect(rec.length).toBe(32 + 21); // pad8(24 + 4) + length: nothing beyond the range
  });

  it('deliver - sub-range of a subarray source (non-zero byteOffset) and an empty key', () => {
    const { producer, consumer, outbound, reader } = ring();
    const backing = pattern(80, 2);
    const source = backing.subarray(8);
    outbound.deliver(1, 2, 3, false, DestinationType.exchange, '', source, 5, 10);
    producer.commit();
    const rec = drainOne(consumer, (_k, at) => {
      const r = reader.deliver(at, newDeliverRecord());
      return { key: r.key, payload: consumer.bytes.slice(r.payloadOffset, r.payloadOffset + r.payloadLength) };
    });
    expect(rec.decoded).toEqual({ key: '', payload: backing.slice(13, 23) });
  });

  it('deliver - zero-length payload', () => {
    const { producer, consumer, outbound, reader } = ring();
    outbound.deliver(1, 2, 9, false, DestinationType.topic, 'k', new Uint8Array(4), 4, 0);
    producer.commit();
    const rec = drainOne(consumer, (_k, at) => ({ ...reader.deliver(at, newDeliverRecord()) }));
    expect(rec.decoded).toMatchObject({ tag: 9, key: 'k', payloadLength: 0 });
    expect(rec.length).toBe(32);
  });

  it('confirm - connection, token, every status and count', () => {
    const { producer, consumer, outbound, reader } = ring();
    const statuses = [ConfirmStatus.ok, ConfirmStatus.notFound, ConfirmStatus.rejected];
    for (const status of statuses) outbound.confirm(0, 0xfffffffe, status, 0xffffffff - status);
    producer.commit();
    const all = drain(consumer, (k, at) => [k, reader.u32(at), reader.u32(at + 4), reader.u32(at + 8), reader.u32(at + 12)]);
    expect(all.map((r) => r.decoded)).toEqual(statuses.map((s) => [RecordKind.confirm, 0, 0xfffffffe, s, 0xffffffff - s]));
  });

  it('error - code and non-ASCII message round-trip', () => {
    const { producer, consumer, outbound, reader } = ring();
    outbound.error(7, 8, 'unknown_tag', 'étiquette 42 inconnue ✗');
    producer.commit();
    const rec = drainOne(consumer, (_k, at) => reader.error(at));
    expect(rec.kind).toBe(RecordKind.error);
    expect(rec.decoded).toEqual({ connectionId: 7, subscriptionId: 8, code: 'unknown_tag', message: 'étiquette 42 inconnue ✗' });
  });

  it('error - empty message', () => {
    const { producer, consumer, outbound, reader } = ring();
    outbound.error(1, 0, 'internal', '');
    producer.commit();
    expect(drainOne(consumer, (_k, at) => reader.error(at)).decoded).toEqual({ connectionId: 1, subscriptionId: 0, code: 'internal', message: '' });
  });

  it('error - an ASCII message is cut to its first 1024 bytes', () => {
    const { producer, consumer, outbound, reader } = ring(16384);
    const message = 'x'.repeat(1000) + 'y'.repeat(1000);
    outbound.error(1, 0, 'internal', message);
    producer.commit();
    const rec = drainOne(consumer, (_k, at) => reader.error(at));
    expect((rec.decoded as { message: string }).message).toBe(message.slice(0, 1024));
  });

  it('error - a message cut inside a multi-byte character decodes to a prefix of the original', () => {
    // Byte 1024 falls inside a 2-byte 'é': the record must not carry a stale ring byte there.
    const { producer, consumer, outbound, reader } = ring(16384);
    producer.bytes.fill(0x41); // stale ring contents: 'A'
    const message = 'a' + 'é'.repeat(600);
    outbound.error(1, 0, 'internal', message);
    producer.commit();
    const rec = drainOne(consumer, (_k, at) => reader.error(at));
    const decoded = (rec.decoded as { message: string }).message;
    expect(message.startsWith(decoded), `decoded message ends ${JSON.stringify(decoded.slice(-3))}`).toBe(true);
    expect(utf8(decoded)).toBeLessThanOrEqual(1024);
  });

  it('pong - token, second word zero', () => {
    const { producer, consumer, outbound, reader } = ring();
    producer.bytes.fill(0xff);
    outbound.pong(0x80000001);
    producer.commit();
    const rec = drainOne(consumer, (_k, at) => [reader.u32(at), reader.u32(at + 4)]);
    expect(rec).toMatchObject({ kind: RecordKind.pong, length: 8, decoded: [0x80000001, 0] });
  });
});

/** Every writer call once, with the record footprint it needs in the ring. */
type WriterCase = readonly [name: string, write: (w: { inbound: InboundWriter; outbound: OutboundWriter }) => boolean, payloadBytes: number];
const WRITER_CASES: readonly WriterCase[] = [
  ['publish', ({ inbound }) => inbound.publish(1, 2, DestinationType.topic, 'amq.topic', 'a.b', pattern(100)), InboundWriter.publishSize(9, 3, 100)],
  ['subscribe', ({ inbound }) => inbound.subscribe(1, 2, DestinationType.topic, 0, 10, 10, 'amq.topic', 'a.#'), 24 + 9 + 3],
  ['unsubscribe', ({ inbound }) => inbound.unsubscribe(1, 2), 8],
  ['settle ack', ({ inbound }) => inbound.settle(RecordKind.ack, 1, 2, false), 16],
  ['settle nack', ({ inbound }) => inbound.settle(RecordKind.nack, 1, 2, true), 16],
  ['connectionClosed', ({ inbound }) => inbound.connectionClosed(1), 8],
  ['ping', ({ inbound }) => inbound.ping(1), 8],
  ['credit', ({ inbound }) => inbound.credit(1, 2, 3), 12],
  ['deliver', ({ outbound }) => outbound.deliver(1, 2, 3, false, DestinationType.topic, 'a.b', pattern(100), 0, 100), 32 + 100],
  ['confirm', ({ outbound }) => outbound.confirm(1, 2, ConfirmStatus.ok, 1), 16],
  ['error', ({ outbound }) => outbound.error(1, 2, 'bad_frame', 'nope'), 12 + 9 + 4],
  ['pong', ({ outbound }) => outbound.pong(1), 8],
];

const FILLER_KIND = 99;

/** Reserves filler records (filled with 0x5a) from index 0 until exactly `free` bytes stay free at the tail. */
function fillLeaving(producer: RingProducer, free: number): number {
  let left = producer.capacity - free;
  let count = 0;
  const maxFootprint = recordFootprint(maxRecordPayload(producer.capacity));
  while (left > 0) {
    const footprint = Math.min(left, maxFootprint);
    const at = producer.reserve(footprint - 8, FILLER_KIND);
    if (at < 0) throw new Error('filler did not fit');
    producer.bytes.fill(0x5a, at, at + footprint - 8);
    left -= footprint;
    count++;
  }
  return count;
}

describe('writers on a full ring', () => {
  it.each(WRITER_CASES)('full ring - %s returns false and nothing of it becomes visible', (_name, write) => {
    const r = ring();
    const fillers = fillLeaving(r.producer, 0);
    const before = r.producer.bytes.slice();
    expect(write(r)).toBe(false);
    expect(r.producer.pendingRecords).toBe(fillers);
    expect(r.producer.bytes).toEqual(before);
    r.producer.commit();
    const all = drain(r.consumer, () => null);
    expect(all).toHaveLength(fillers);
    expect(all.every((x) => x.kind === FILLER_KIND)).toBe(true);
  });

  it.each(WRITER_CASES)('full ring - %s fits exactly its footprint and refuses 8 bytes less', (_name, write, payloadBytes) => {
    const footprint = recordFootprint(payloadBytes);
    const short = ring();
    fillLeaving(short.producer, footprint - 8);
    expect(write(short)).toBe(false);

    const exact = ring();
    const fillers = fillLeaving(exact.producer, footprint);
    expect(write(exact)).toBe(true);
    exact.producer.commit();
    const all = drain(exact.consumer, (kind, _at, length) => ({ kind, length }));
    expect(all).toHaveLength(fillers + 1);
    expect(all[fillers].length).toBe(payloadBytes);
  });

  it.each(WRITER_CASES)('canary - %s writes only inside its own record', (_name, write, payloadBytes) => {
    const CANARY = 0xa5;
    const r = ring();
    r.producer.bytes.fill(CANARY);
    expect(write(r)).toBe(true);
    r.producer.commit();
    const rec = drainOne(r.consumer, () => null);
    expect(rec.length).toBe(payloadBytes);
    const bytes = r.consumer.bytes;
    const outside: number[] = [];
    for (let i = 0; i < bytes.length; i++) {
      if (i >= rec.at - 8 && i < rec.at + rec.length) continue; // the record header and its payload
      if (bytes[i] !== CANARY) outside.push(i);
    }
    expect(outside).toEqual([]);
  });

  it('full ring - a refused publish succeeds once the consumer releases space', () => {
    const r = ring();
    let written = 0;
    while (r.inbound.publish(written, 0, DestinationType.queue, '', 'q', pattern(200, written))) written++;
    expect(written).toBeGreaterThan(0);
    r.producer.commit();
    const first = drain(r.consumer, (_k, at) => r.reader.publish(at, newPublishRecord()).connectionId);
    expect(first.map((x) => x.decoded)).toEqual([...Array(written).keys()]);
    expect(r.inbound.publish(written, 0, DestinationType.queue, '', 'q', pattern(200, written))).toBe(true);
    r.producer.commit();
    const after = drainOne(r.consumer, (_k, at) => {
      const p = r.reader.publish(at, newPublishRecord());
      return { id: p.connectionId, payload: r.consumer.bytes.slice(p.payloadOffset, p.payloadOffset + p.payloadLength) };
    });
    expect(after.decoded).toEqual({ id: written, payload: pattern(200, written) });
  });
});

// ---------------------------------------------------------------------------------------------
// Seeded random records across the wrap point.

const NAME_ALPHABET = ['a', 'b', 'z', '.', '*', '#', '-', 'é', 'ß', '日', '本', '🌡', '𝄞'];

function randomName(prng: Prng, maxChars: number): string {
  let s = '';
  const n = prng.int(0, maxChars);
  for (let i = 0; i < n; i++) s += prng.pick(NAME_ALPHABET);
  return s;
}

type Expected =
  | { kind: typeof RecordKind.publish; connectionId: number; token: number; type: DestinationType; exchange: string; key: string; payload: Uint8Array }
  | { kind: typeof RecordKind.deliver; connectionId: number; subscriptionId: number; tag: number; redelivered: boolean; type: DestinationType; key: string; payload: Uint8Array }
  | { kind: typeof RecordKind.ack | typeof RecordKind.nack; connectionId: number; tag: number; requeue: boolean }
  | { kind: typeof RecordKind.confirm; connectionId: number; token: number; status: ConfirmStatus; count: number };

const TYPES = [DestinationType.topic, DestinationType.queue, DestinationType.exchange] as const;

function randomRecord(prng: Prng, maxPayload: number): Expected {
  const choice = prng.int(0, 9);
  if (choice < 5) {
    const payload = new Uint8Array(prng.skewedSize(0, 64, maxPayload));
    prng.fill(payload);
    return { kind: RecordKind.publish, connectionId: prng.u32(), token: prng.u32(), type: prng.pick(TYPES), exchange: randomName(prng, 12), key: randomName(prng, 20), payload };
  }
  if (choice < 8) {
    const payload = new Uint8Array(prng.skewedSize(0, 64, maxPayload));
    prng.fill(payload);
    return {
      kind: RecordKind.deliver,
      connectionId: prng.u32(),
      subscriptionId: prng.u32(),
      tag: prng.int(1, 2 ** 20) * 2 ** 32 + prng.u32(),
      redelivered: prng.chance(0.5),
      type: prng.pick(TYPES),
      key: randomName(prng, 20),
      payload,
    };
  }
  if (choice < 9) {
    return { kind: prng.chance(0.5) ? RecordKind.ack : RecordKind.nack, connectionId: prng.u32(), tag: prng.int(1, 2 ** 21) * 2 ** 32, requeue: prng.chance(0.5) };
  }
  return { kind: RecordKind.confirm, connectionId: prng.u32(), token: prng.u32(), status: prng.pick([ConfirmStatus.ok, ConfirmStatus.notFound, ConfirmStatus.rejected]), count: prng.u32() };
}

function writeRecord(w: { inbound: InboundWriter; outbound: OutboundWriter }, e: Expected, source: Uint8Array, sourceStart: number): boolean {
  switch (e.kind) {
    case RecordKind.publish:
      return w.inbound.publish(e.connectionId, e.token, e.type, e.exchange, e.key, e.payload);
    case RecordKind.deliver:
      // Deliver from a region of a larger buffer, as the shard does from its inbound ring.
      source.set(e.payload, sourceStart);
      return w.outbound.deliver(e.connectionId, e.subscriptionId, e.tag, e.redelivered, e.type, e.key, source, sourceStart, e.payload.byteLength);
    case RecordKind.ack:
    case RecordKind.nack:
      return w.inbound.settle(e.kind, e.connectionId, e.tag, e.requeue);
    case RecordKind.confirm:
      return w.outbound.confirm(e.connectionId, e.token, e.status, e.count);
  }
}

function decodeRecord(reader: RecordReader, bytes: Uint8Array, kind: number, at: number): unknown {
  switch (kind) {
    case RecordKind.publish: {
      const p = reader.publish(at, newPublishRecord());
      return { kind, connectionId: p.connectionId, token: p.token, type: p.type, exchange: p.exchange, key: p.key, payload: bytes.slice(p.payloadOffset, p.payloadOffset + p.payloadLength), aligned: p.payloadOffset % 8 === 0 };
    }
    case RecordKind.deliver: {
      const d = reader.deliver(at, newDeliverRecord());
      return { kind, connectionId: d.connectionId, subscriptionId: d.subscriptionId, tag: d.tag, redelivered: d.redelivered, type: d.type, key: d.key, payload: bytes.slice(d.payloadOffset, d.payloadOffset + d.payloadLength), aligned: d.payloadOffset % 8 === 0 };
    }
    case RecordKind.ack:
    case RecordKind.nack:
      return { kind, connectionId: reader.u32(at), requeue: reader.u32(at + 4) === 1, tag: reader.f64(at + 8) };
    case RecordKind.confirm:
      return { kind, connectionId: reader.u32(at), token: reader.u32(at + 4), status: reader.u32(at + 8), count: reader.u32(at + 12) };
    default:
      return { kind, unexpected: true };
  }
}

describe.each([4096, 16384])('records across the wrap point (capacity %i)', (capacity) => {
  it('wrap - seeded random records decode exactly over ~100 laps', () => {
    const seed = testSeed();
    const prng = new Prng(seed);
    const r = ring(capacity);
    // Leave room in a record for its own fixed fields and strings (at most 24 + 4 * 32 bytes here).
    const maxPayload = Math.min(maxRecordPayload(capacity) - 160, 1500);
    const source = new Uint8Array(maxPayload + 64);
    const laps = 100;
    const pending: Expected[] = []; // written and committed, not yet drained, in order
    let consumedBytes = 0;
    let wraps = 0;
    let checked = 0;
    let refusals = 0;
    let lastAt = -1;
    let carry: Expected | null = null;

    while (consumedBytes < laps * capacity) {
      // Write a random number of records; stop at the first refusal and retry that record later.
      const toWrite = prng.int(0, 60);
      for (let i = 0; i < toWrite; i++) {
        const e: Expected = carry ?? randomRecord(prng, maxPayload);
        carry = null;
        const start = e.kind === RecordKind.deliver ? prng.int(0, source.length - e.payload.byteLength) : 0;
        if (!writeRecord(r, e, source, start)) {
          carry = e;
          refusals++;
          break;
        }
        pending.push(e);
      }
      r.producer.commit();
      // Drain some or all of it, so the ring is rarely empty when the next writes start.
      const max = prng.chance(0.3) ? Infinity : prng.int(1, 30);
      const got = drain(r.consumer, (kind, at, length) => {
        if (at < lastAt) wraps++;
        lastAt = at;
        consumedBytes += recordFootprint(length);
        return decodeRecord(r.reader, r.consumer.bytes, kind, at);
      }, max);
      expect(got.length, `seed ${seed}, after record ${checked}`).toBe(Math.min(max, pending.length));
      for (const g of got) {
        const e = pending.shift() as Expected;
        const want = e.kind === RecordKind.publish || e.kind === RecordKind.deliver ? { ...e, aligned: true } : e;
        expect(g.decoded, `seed ${seed}, record ${checked}`).toEqual(want);
        checked++;
      }
    }
    // The run must actually have exercised what it claims to.
    expect(wraps, `seed ${seed}`).toBeGreaterThanOrEqual(laps - 1);
    expect(refusals, `seed ${seed}`).toBeGreaterThan(0);
  });
});
