/**
 * Ring record codec: every record kind written by InboundWriter/OutboundWriter into a real SPSC ring
 * and decoded in place with RecordReader inside consumer.drain, plus full-ring refusals and seeded
 * random runs that straddle the wrap point.
 *
 * Replay a failing random case with SHARDMQ_SEED=<seed printed in the message>.
 */
import { describe, expect, it } from 'vitest';
import { decodeProperties, encodeProperties, type MessageProperties } from '../../src/protocol/properties.js';
import {
  AckModeCode,
  ConfirmStatus,
  InboundWriter,
  OutboundWriter,
  PUBLISH_FLAG_DEAD_LETTERED,
  RecordKind,
  RecordReader,
  newDeliverHead,
  newDeliverRecord,
  newPublishRecord,
  newSubscribeRecord,
  SUBSCRIBE_FLAG_EXCLUSIVE,
  SUBSCRIBE_FLAG_STREAM_OFFSET,
  type ManageOp,
  type ManageResult,
} from '../../src/protocol/ring-record-codec.js';
import { recordFootprint } from '../../src/ring/layout.js';
import { RingConsumer, RingProducer, createRingStorage, maxRecordPayload } from '../../src/ring/spsc-ring.js';
import { Prng, testSeed } from '../helpers/prng.js';
import { vhostPrefix } from '../../src/protocol/vhost-name.js';
import { createVhostNumberTable, VhostNumbering, VhostPrefixes } from '../../src/protocol/vhost-numbers.js';

const utf8 = (s: string): number => Buffer.byteLength(s);
const pad8 = (n: number): number => (n + 7) & ~7;

/** Fixed-field sizes of the layouts (src/protocol/ring-record-codec.ts), restated so a silent change shows. */
const PUBLISH_FIXED = 24;
const SUBSCRIBE_FIXED = 28;
const DELIVER_FIXED = 32;
const JSON_FIXED = 16;

/** Vhosts numbered in one table, as the main thread numbers them; readers take their prefixes from it. */
const VHOST_TABLE = createVhostNumberTable();
const NUMBERING = new VhostNumbering(VHOST_TABLE);
/** Number → prefix of the vhosts the tests use (a non-ASCII name and a 255-byte one among them). */
const VHOSTS = new Map<number, string>(
  ['tenant-b', 'wörk', 'v'.repeat(255)].map((name) => [NUMBERING.assign(vhostPrefix(name)), vhostPrefix(name)]),
);

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
    reader: new RecordReader(consumer.bytes, consumer.view, new VhostPrefixes(VHOST_TABLE)),
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

/** A publish/republish decoded and copied out of the ring (valid after the drain callback). */
function copyPublish(reader: RecordReader, bytes: Uint8Array, at: number) {
  const r = reader.publish(at, newPublishRecord());
  return {
    ...r,
    properties: bytes.slice(r.propsOffset, r.propsOffset + r.propsLength),
    payload: bytes.slice(r.payloadOffset, r.payloadOffset + r.payloadLength),
  };
}

/** A deliver decoded and copied out of the ring. */
function copyDeliver(reader: RecordReader, bytes: Uint8Array, at: number) {
  const r = reader.deliver(at, newDeliverRecord());
  return {
    ...r,
    properties: bytes.slice(r.propsOffset, r.propsOffset + r.propsLength),
    payload: bytes.slice(r.payloadOffset, r.payloadOffset + r.payloadLength),
  };
}

// Strings whose UTF-8 length differs from their UTF-16 length: 2-, 3- and 4-byte sequences.
const EXCHANGE_NON_ASCII = 'börse-交易所';
const KEY_NON_ASCII = 'capteurs.température.🌡.日本';
const QUEUE_NON_ASCII = 'file-d’attente-キュー-𝄞';

/** A real properties block (src/protocol/properties.ts) with non-ASCII strings, nested headers and a timestamp. */
const PROPERTIES: MessageProperties = {
  contentType: 'application/json',
  headers: { 'x-région': 'Île-de-France', n: 42, nested: { ok: true, list: ['a', 'ü'] } },
  deliveryMode: 2,
  priority: 7,
  correlationId: 'corr-🌡',
  expiration: '60000',
  timestamp: 1_700_000_000,
};
const PROPERTIES_BLOCK = encodeProperties(PROPERTIES);
const EMPTY_BYTES = new Uint8Array(0);

describe('RecordKind', () => {
  it('RecordKind - main → shard kinds are below 64, shard → main kinds 64 and above, all distinct', () => {
    const inbound = [
      RecordKind.publish,
      RecordKind.subscribe,
      RecordKind.unsubscribe,
      RecordKind.ack,
      RecordKind.nack,
      RecordKind.connectionClosed,
      RecordKind.ping,
      RecordKind.credit,
      RecordKind.manage,
      RecordKind.slow,
      RecordKind.trace,
    ];
    const outbound = [
      RecordKind.deliver,
      RecordKind.confirm,
      RecordKind.error,
      RecordKind.pong,
      RecordKind.manageReply,
      RecordKind.republish,
      RecordKind.flow,
      RecordKind.dropped,
      RecordKind.traced,
    ];
    for (const k of inbound) expect(k).toBeLessThan(64);
    for (const k of outbound) expect(k).toBeGreaterThanOrEqual(64);
    expect(new Set([...inbound, ...outbound]).size).toBe(inbound.length + outbound.length);
    // Every kind the codec defines is in one of the two lists.
    expect(new Set(Object.values(RecordKind))).toEqual(new Set([...inbound, ...outbound]));
  });
});

describe('InboundWriter.publish', () => {
  it('publish - round-trips every field with non-ASCII exchange and key, a properties block and the dead-lettered flag', () => {
    const { producer, consumer, inbound, reader } = ring();
    expect(utf8(EXCHANGE_NON_ASCII)).not.toBe(EXCHANGE_NON_ASCII.length);
    expect(utf8(KEY_NON_ASCII)).not.toBe(KEY_NON_ASCII.length);
    const payload = pattern(37);
    expect(
      inbound.publish(0xfffffffe, 0x89abcdef, EXCHANGE_NON_ASCII, KEY_NON_ASCII, PROPERTIES_BLOCK, payload, PUBLISH_FLAG_DEAD_LETTERED),
    ).toBe(true);
    producer.commit();

    const rec = drainOne(consumer, (_k, at) => {
      const r = copyPublish(reader, consumer.bytes, at);
      // The properties region decodes in place, as the shard decodes it.
      return { ...r, decodedProperties: decodeProperties(consumer.bytes, r.propsOffset, r.propsLength) };
    });
    expect(rec.kind).toBe(RecordKind.publish);
    expect(rec.length).toBe(
      InboundWriter.publishSize(utf8(EXCHANGE_NON_ASCII), utf8(KEY_NON_ASCII), payload.byteLength, PROPERTIES_BLOCK.byteLength),
    );
    expect(rec.decoded).toMatchObject({
      connectionId: 0xfffffffe,
      token: 0x89abcdef,
      flags: PUBLISH_FLAG_DEAD_LETTERED,
      exchange: EXCHANGE_NON_ASCII,
      routingKey: KEY_NON_ASCII,
      propsLength: PROPERTIES_BLOCK.byteLength,
      properties: PROPERTIES_BLOCK,
      decodedProperties: PROPERTIES,
      payloadLength: 37,
      payload,
    });
    const d = rec.decoded as { propsOffset: number; payloadOffset: number; payloadLength: number };
    // Strings right after the fixed fields, the properties right after the strings.
    expect(d.propsOffset).toBe(rec.at + PUBLISH_FIXED + utf8(EXCHANGE_NON_ASCII) + utf8(KEY_NON_ASCII));
    expect(d.payloadOffset % 8).toBe(0);
    expect(d.payloadOffset + d.payloadLength).toBe(rec.at + rec.length);
  });

  it('publish - payload starts 8-aligned and ends the record, for every header length mod 8', () => {
    const { producer, consumer, inbound, reader } = ring(16384);
    const cases: Array<{ ex: string; key: string; props: Uint8Array }> = [];
    for (let keyLen = 0; keyLen < 8; keyLen++) {
      for (let propsLen = 0; propsLen < 8; propsLen++) {
        cases.push({ ex: 'x'.repeat(keyLen % 3), key: 'k'.repeat(keyLen), props: pattern(propsLen, 40 + propsLen) });
      }
    }
    for (const [i, c] of cases.entries()) expect(inbound.publish(1, i, c.ex, c.key, c.props, pattern(3, i))).toBe(true);
    producer.commit();
    const all = drain(consumer, (_k, at, length) => ({ ...copyPublish(reader, consumer.bytes, at), recordEnd: at + length }));
    expect(all).toHaveLength(cases.length);
    all.forEach(({ decoded, length }, i) => {
      const d = decoded as ReturnType<typeof copyPublish> & { recordEnd: number };
      const c = cases[i];
      expect(d.token).toBe(i);
      expect(d.exchange).toBe(c.ex);
      expect(d.routingKey).toBe(c.key);
      expect(d.properties).toEqual(c.props);
      expect(d.payload).toEqual(pattern(3, i));
      expect(d.payloadOffset % 8).toBe(0);
      expect(d.payloadOffset + d.payloadLength).toBe(d.recordEnd);
      expect(length).toBe(InboundWriter.publishSize(c.ex.length, c.key.length, 3, c.props.length));
    });
  });

  it('publish - empty exchange, empty key, no properties and zero-length payload', () => {
    const { producer, consumer, inbound, reader } = ring();
    producer.bytes.fill(0xff); // stale ring contents: a field the writer forgets to store would show
    expect(inbound.publish(3, 0, '', '', null, new Uint8Array(0))).toBe(true);
    producer.commit();
    const rec = drainOne(consumer, (_k, at) => copyPublish(reader, consumer.bytes, at));
    expect(rec.length).toBe(InboundWriter.publishSize(0, 0, 0));
    expect(rec.length).toBe(PUBLISH_FIXED);
    expect(rec.decoded).toMatchObject({
      connectionId: 3,
      token: 0,
      flags: 0,
      exchange: '',
      routingKey: '',
      propsLength: 0,
      payloadLength: 0,
    });
    const d = rec.decoded as { payloadOffset: number; propsOffset: number };
    expect(d.payloadOffset).toBe(rec.at + rec.length);
    expect(d.propsOffset).toBe(rec.at + PUBLISH_FIXED);
  });

  it('publish - an empty properties array is the same as null', () => {
    const { producer, consumer, inbound, reader } = ring();
    inbound.publish(1, 1, 'amq.topic', 'a', new Uint8Array(0), pattern(9));
    inbound.publish(1, 2, 'amq.topic', 'a', null, pattern(9));
    producer.commit();
    const all = drain(consumer, (_k, at, length) => ({ length, ...copyPublish(reader, consumer.bytes, at) }));
    const [a, b] = all.map((x) => x.decoded as ReturnType<typeof copyPublish> & { length: number });
    expect(a.propsLength).toBe(0);
    expect(b.propsLength).toBe(0);
    expect(a.length).toBe(b.length);
    expect(a.payload).toEqual(b.payload);
  });

  it('publish - zero-length payload after a properties block ends exactly at the record end', () => {
    const { producer, consumer, inbound, reader } = ring();
    inbound.publish(1, 0, 'ex', 'k', PROPERTIES_BLOCK, new Uint8Array(0));
    producer.commit();
    const rec = drainOne(consumer, (_k, at) => copyPublish(reader, consumer.bytes, at));
    const d = rec.decoded as ReturnType<typeof copyPublish>;
    expect(d.properties).toEqual(PROPERTIES_BLOCK);
    expect(d.payloadLength).toBe(0);
    expect(d.payloadOffset).toBe(rec.at + rec.length);
    expect(rec.length).toBe(pad8(PUBLISH_FIXED + 2 + 1 + PROPERTIES_BLOCK.byteLength));
  });

  it('publish - binary payload and properties bytes (all 256 values, NULs, invalid UTF-8) are preserved exactly', () => {
    const { producer, consumer, inbound, reader } = ring();
    const payload = new Uint8Array(512 + 3);
    for (let i = 0; i < payload.length; i++) payload[i] = (255 - i) & 0xff;
    payload.set([0xc3, 0x28, 0x00], 512); // a broken 2-byte sequence and a NUL
    // The codec treats the properties block as opaque bytes: it must not parse or touch them.
    const props = new Uint8Array(256);
    for (let i = 0; i < 256; i++) props[i] = i;
    inbound.publish(1, 2, 'amq.topic', 'bin', props, payload);
    producer.commit();
    const rec = drainOne(consumer, (_k, at) => copyPublish(reader, consumer.bytes, at));
    expect((rec.decoded as ReturnType<typeof copyPublish>).payload).toEqual(payload);
    expect((rec.decoded as ReturnType<typeof copyPublish>).properties).toEqual(props);
  });

  it('publish - reads payload and properties from Uint8Array views with a non-zero byteOffset', () => {
    const { producer, consumer, inbound, reader } = ring();
    const backing = pattern(100, 9);
    const view = backing.subarray(13, 13 + 50);
    const propsBacking = pattern(40, 4);
    const propsView = propsBacking.subarray(7, 7 + 11);
    inbound.publish(1, 0, 'amq.topic', 'v', propsView, view);
    producer.commit();
    const rec = drainOne(consumer, (_k, at) => copyPublish(reader, consumer.bytes, at));
    expect((rec.decoded as ReturnType<typeof copyPublish>).payload).toEqual(backing.slice(13, 63));
    expect((rec.decoded as ReturnType<typeof copyPublish>).properties).toEqual(propsBacking.slice(7, 18));
  });

  it.each([0, 1, 2, 0x80, 0xff])('publish - flags %i round-trips and leaves the other fields alone', (flags) => {
    const { producer, consumer, inbound, reader } = ring();
    producer.bytes.fill(0xff);
    inbound.publish(9, 8, 'e', 'k', null, pattern(5), flags);
    producer.commit();
    const rec = drainOne(consumer, (_k, at) => copyPublish(reader, consumer.bytes, at));
    expect(rec.decoded).toMatchObject({
      connectionId: 9,
      token: 8,
      flags,
      exchange: 'e',
      routingKey: 'k',
      propsLength: 0,
      payloadLength: 5,
    });
  });

  it('publish - flags default to 0 on a ring full of stale bytes', () => {
    const { producer, consumer, inbound, reader } = ring();
    producer.bytes.fill(0xff);
    inbound.publish(1, 0, '', 'q', null, pattern(1));
    producer.commit();
    expect((drainOne(consumer, (_k, at) => copyPublish(reader, consumer.bytes, at)).decoded as { flags: number }).flags).toBe(0);
  });

  it('publish - names repeated, alternated and of equal length decode right (the reader caches the last one)', () => {
    const { producer, consumer, inbound, reader } = ring(1 << 16);
    const keys = ['k.aa', 'k.aa', 'k.ab', 'k.aa', 'ü.xy', 'ü.xz', '', 'k.aa', 'x'.repeat(255), 'x'.repeat(254) + 'y', 'k.aa'];
    const exchanges = [
      'amq.topic',
      'amq.topic',
      'amq.topiC',
      '',
      'logs',
      'amq.topic',
      'amq.topic',
      'e'.repeat(255),
      'logs',
      'logs',
      'amq.topic',
    ];
    for (let i = 0; i < keys.length; i++) inbound.publish(i, 0, exchanges[i], keys[i], null, pattern(3));
    producer.commit();
    const out = newPublishRecord();
    const seen = drain(consumer, (_k, at) => {
      const r = reader.publish(at, out);
      return [r.exchange, r.routingKey];
    });
    expect(seen.map((s) => s.decoded)).toEqual(keys.map((k, i) => [exchanges[i], k]));
  });

  it('publish - the reused out-object is fully overwritten by the next decode', () => {
    const { producer, consumer, inbound, reader } = ring();
    inbound.publish(1, 11, 'long-exchange-name', 'long.routing.key', PROPERTIES_BLOCK, pattern(40), PUBLISH_FLAG_DEAD_LETTERED);
    inbound.publish(2, 0, '', '', null, new Uint8Array(0));
    producer.commit();
    const out = newPublishRecord();
    const seen = drain(consumer, (_k, at) => ({ ...reader.publish(at, out) }));
    expect(seen.map((s) => s.decoded)).toMatchObject([
      {
        connectionId: 1,
        token: 11,
        flags: PUBLISH_FLAG_DEAD_LETTERED,
        exchange: 'long-exchange-name',
        routingKey: 'long.routing.key',
        propsLength: PROPERTIES_BLOCK.byteLength,
        payloadLength: 40,
      },
      { connectionId: 2, token: 0, flags: 0, exchange: '', routingKey: '', propsLength: 0, payloadLength: 0 },
    ]);
  });

  it('publish - a payload over the ring record limit throws RangeError and writes nothing', () => {
    const { producer, consumer, inbound } = ring();
    const tooBig = new Uint8Array(maxRecordPayload(4096) - InboundWriter.publishSize(0, 1, 0) + 1);
    expect(() => inbound.publish(1, 0, '', 'q', null, tooBig)).toThrow(RangeError);
    expect(producer.pendingRecords).toBe(0);
    producer.commit();
    expect(drain(consumer, () => null)).toHaveLength(0);
  });

  it('publishSize - counts fixed fields, strings and properties padded to 8, plus the payload', () => {
    for (const ex of [0, 1, 7, 8, 255]) {
      for (const key of [0, 3, 255]) {
        for (const props of [0, 1, 13, 64]) {
          for (const payload of [0, 1, 1000]) {
            expect(InboundWriter.publishSize(ex, key, payload, props)).toBe(pad8(PUBLISH_FIXED + ex + key + props) + payload);
          }
        }
      }
    }
    expect(InboundWriter.publishSize(3, 4, 5)).toBe(InboundWriter.publishSize(3, 4, 5, 0));
  });
});

/** The header of a publish with 255-byte exchange and key and no properties. */
const FULL_PUBLISH_HEADER = InboundWriter.publishSize(255, 255, 0);

describe('InboundWriter.MAX_RECORD_OVERHEAD', () => {
  it('MAX_RECORD_OVERHEAD - bounds the header of every publish, with any properties length', () => {
    expect(InboundWriter.MAX_RECORD_OVERHEAD % 8).toBe(0);
    expect(FULL_PUBLISH_HEADER).toBe(536);
    for (let ex = 0; ex <= 255; ex += 17) {
      for (let key = 0; key <= 255; key += 15) {
        for (let props = 0; props <= 16; props++) {
          expect(InboundWriter.publishSize(ex, key, 0, props) - props).toBeLessThanOrEqual(InboundWriter.MAX_RECORD_OVERHEAD);
        }
      }
    }
  });

  it.each([
    ['ASCII', 'e'.repeat(255), 'k'.repeat(255)],
    // 85 × 3-byte characters = 255 bytes; 63 × 4-byte + 3 × 1-byte = 255 bytes.
    ['multi-byte', '交'.repeat(85), '🌡'.repeat(63) + 'abc'],
  ])(
    'publishSize - a real %s 255/255-byte publish puts its payload exactly publishSize(255, 255, 0) into the record',
    (_name, exchange, key) => {
      expect(utf8(exchange)).toBe(255);
      expect(utf8(key)).toBe(255);
      const { producer, consumer, inbound, reader } = ring();
      inbound.publish(1, 2, exchange, key, null, pattern(16));
      producer.commit();
      const rec = drainOne(consumer, (_k, at) => copyPublish(reader, consumer.bytes, at));
      const d = rec.decoded as ReturnType<typeof copyPublish>;
      expect(d.payloadOffset - rec.at).toBe(FULL_PUBLISH_HEADER);
      expect(d).toMatchObject({ exchange, routingKey: key, payload: pattern(16) });
    },
  );

  it('publishSize - a payload of maxRecordPayload - publishSize(255, 255, 0) fits with 255/255-byte names; one byte more throws', () => {
    const capacity = 4096;
    const { producer, consumer, inbound, reader } = ring(capacity);
    const room = maxRecordPayload(capacity) - FULL_PUBLISH_HEADER;
    const ex = 'e'.repeat(255);
    const key = 'k'.repeat(255);
    expect(() => inbound.publish(1, 0, ex, key, null, new Uint8Array(room + 1))).toThrow(RangeError);
    expect(inbound.publish(1, 0, ex, key, null, pattern(room))).toBe(true);
    producer.commit();
    const rec = drainOne(consumer, (_k, at) => copyPublish(reader, consumer.bytes, at));
    expect(rec.length).toBe(maxRecordPayload(capacity));
    expect((rec.decoded as ReturnType<typeof copyPublish>).payload).toEqual(pattern(room));
  });
});

describe('InboundWriter.MAX_RECORD_OVERHEAD as the bound config.ts uses', () => {
  // config.ts allows max-message-bytes up to maxRecordPayload(ringBytes) - MAX_RECORD_OVERHEAD, and the
  // fronts count the properties block inside max-message-bytes (payload + properties <= limit). Both
  // rings of a shard have ringBytes. These two tests hold the codec to that use of the constant.
  const capacity = 4096;
  const limit = maxRecordPayload(capacity) - InboundWriter.MAX_RECORD_OVERHEAD;
  const exchange = 'e'.repeat(255);
  const key = 'k'.repeat(255);

  it('MAX_RECORD_OVERHEAD - a publish with 255/255-byte names and payload + properties = the limit fits, for every properties length', () => {
    const over: Array<{ props: number; size: number }> = [];
    for (let props = 0; props <= 16; props++) {
      const size = InboundWriter.publishSize(255, 255, limit - props, props);
      if (size > maxRecordPayload(capacity)) over.push({ props, size });
    }
    expect(over, `record sizes over maxRecordPayload ${maxRecordPayload(capacity)}`).toEqual([]);
    // A real one: { deliveryMode: 2 } is a 3-byte block (flags + 1 byte).
    const block = encodeProperties({ deliveryMode: 2 });
    expect(block.byteLength).toBe(3);
    const { inbound } = ring(capacity);
    expect(() => inbound.publish(1, 0, exchange, key, block, new Uint8Array(limit - block.byteLength))).not.toThrow();
  });

  it('MAX_RECORD_OVERHEAD - the deliver record of such a message fits a ring of the same size', () => {
    const { outbound } = ring(capacity);
    expect(() => outbound.deliver(1, 1, 1, false, exchange, key, EMPTY_BYTES, 0, 0, new Uint8Array(limit), 0, limit)).not.toThrow();
  });
});

describe('InboundWriter control records', () => {
  it('subscribe - round-trips every field with a non-ASCII queue name', () => {
    const { producer, consumer, inbound, reader } = ring();
    producer.bytes.fill(0xff);
    expect(
      inbound.subscribe(
        0xffffffff,
        0x12345678,
        QUEUE_NON_ASCII,
        AckModeCode.client,
        0xfffffff0,
        0xffffffff,
        0xfffffffe,
        SUBSCRIBE_FLAG_EXCLUSIVE,
      ),
    ).toBe(true);
    producer.commit();
    const rec = drainOne(consumer, (_k, at) => ({ ...reader.subscribe(at, newSubscribeRecord()) }));
    expect(rec.kind).toBe(RecordKind.subscribe);
    expect(rec.length).toBe(SUBSCRIBE_FIXED + utf8(QUEUE_NON_ASCII));
    expect(rec.decoded).toEqual({
      connectionId: 0xffffffff,
      subscriptionId: 0x12345678,
      flags: SUBSCRIBE_FLAG_EXCLUSIVE,
      ackMode: AckModeCode.client,
      prefetch: 0xfffffff0,
      credit: 0xffffffff,
      creditBytes: 0xfffffffe,
      queue: QUEUE_NON_ASCII,
      streamOffset: undefined,
    });
  });

  it('subscribe - carries an x-stream-offset value of any JSON shape after the queue name, and says so in its flags', () => {
    for (const offset of ['first', 12_345, '2026-12-06T21:00:00Z', { timestamp: 1_700_000_000_000 }]) {
      const { producer, consumer, inbound, reader } = ring();
      producer.bytes.fill(0xff);
      const json = JSON.stringify(offset);
      expect(inbound.subscribe(7, 8, QUEUE_NON_ASCII, AckModeCode.auto, 0, 10, 20, SUBSCRIBE_FLAG_EXCLUSIVE, json)).toBe(true);
      producer.commit();
      const rec = drainOne(consumer, (_k, at) => ({ ...reader.subscribe(at, newSubscribeRecord()) }));
      expect(rec.length).toBe(SUBSCRIBE_FIXED + utf8(QUEUE_NON_ASCII) + 4 + utf8(json));
      expect(rec.decoded).toMatchObject({
        connectionId: 7,
        flags: SUBSCRIBE_FLAG_EXCLUSIVE | SUBSCRIBE_FLAG_STREAM_OFFSET,
        queue: QUEUE_NON_ASCII,
        credit: 10,
        streamOffset: offset,
      });
    }
  });

  it('subscribe - empty queue name, auto ack, zero prefetch and credit', () => {
    const { producer, consumer, inbound, reader } = ring();
    producer.bytes.fill(0xff);
    inbound.subscribe(1, 2, '', AckModeCode.auto, 0, 0, 0);
    producer.commit();
    const rec = drainOne(consumer, (_k, at) => ({ ...reader.subscribe(at, newSubscribeRecord()) }));
    expect(rec.length).toBe(SUBSCRIBE_FIXED);
    expect(rec.decoded).toMatchObject({
      connectionId: 1,
      subscriptionId: 2,
      flags: 0,
      ackMode: AckModeCode.auto,
      prefetch: 0,
      credit: 0,
      creditBytes: 0,
      queue: '',
    });
  });

  it('subscribe - the reused out-object is fully overwritten by the next decode', () => {
    const { producer, consumer, inbound, reader } = ring();
    inbound.subscribe(1, 2, 'a-long-queue-name', AckModeCode.client, 10, 20, 30, SUBSCRIBE_FLAG_EXCLUSIVE);
    inbound.subscribe(3, 4, 'q', AckModeCode.auto, 0, 0, 0);
    producer.commit();
    const out = newSubscribeRecord();
    const seen = drain(consumer, (_k, at) => ({ ...reader.subscribe(at, out) }));
    expect(seen.map((s) => s.decoded)).toEqual([
      {
        connectionId: 1,
        subscriptionId: 2,
        flags: SUBSCRIBE_FLAG_EXCLUSIVE,
        ackMode: AckModeCode.client,
        prefetch: 10,
        credit: 20,
        creditBytes: 30,
        queue: 'a-long-queue-name',
      },
      { connectionId: 3, subscriptionId: 4, flags: 0, ackMode: AckModeCode.auto, prefetch: 0, credit: 0, creditBytes: 0, queue: 'q' },
    ]);
  });

  const MANAGE_OPS: ManageOp[] = [
    {
      op: 'declareQueue',
      name: QUEUE_NON_ASCII,
      durable: true,
      exclusive: false,
      autoDelete: true,
      arguments: { 'x-message-ttl': 1000, 'x-dead-letter-exchange': EXCHANGE_NON_ASCII },
    },
    { op: 'deleteQueue', name: 'q', ifUnused: true, ifEmpty: false },
    { op: 'purgeQueue', name: '' },
    { op: 'declareExchange', name: EXCHANGE_NON_ASCII, type: 'headers', durable: false, autoDelete: false, internal: true, arguments: {} },
    { op: 'deleteExchange', name: 'x' },
    { op: 'bindQueue', exchange: 'amq.topic', queue: QUEUE_NON_ASCII, routingKey: KEY_NON_ASCII, arguments: {} },
    { op: 'unbindQueue', exchange: 'h', queue: 'q', routingKey: '', arguments: { 'x-match': 'any', a: 1 } },
    { op: 'bindExchange', destination: 'd', source: 's', routingKey: '#', arguments: {} },
    { op: 'unbindExchange', destination: 'd', source: 's', routingKey: '*.x', arguments: { nested: { list: [1, 'ü', null] } } },
  ];

  it.each(MANAGE_OPS.map((op) => [op.op, op] as const))(
    'manage - %s round-trips through reader.json with connection, token and status 0',
    (_name, op) => {
      const { producer, consumer, inbound, reader } = ring();
      producer.bytes.fill(0xff);
      expect(inbound.manage(0xfffffffd, 0x80000000, op)).toBe(true);
      producer.commit();
      const rec = drainOne(consumer, (_k, at) => reader.json(at));
      expect(rec.kind).toBe(RecordKind.manage);
      expect(rec.length).toBe(JSON_FIXED + utf8(JSON.stringify(op)));
      expect(rec.decoded).toEqual({ connectionId: 0xfffffffd, token: 0x80000000, status: 0, body: op });
    },
  );

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

  it('credit - connection, subscription, count and bytes (bytes capped at u32)', () => {
    const { producer, consumer, inbound, reader } = ring();
    inbound.credit(5, 6, 0xffffffff, 2 ** 40);
    producer.commit();
    const rec = drainOne(consumer, (_k, at) => [reader.u32(at), reader.u32(at + 4), reader.u32(at + 8), reader.u32(at + 12)]);
    expect(rec).toMatchObject({ kind: RecordKind.credit, length: 16, decoded: [5, 6, 0xffffffff, 0xffffffff] });
  });

  it('slow - connection and verdict', () => {
    const { producer, consumer, inbound, reader } = ring();
    inbound.slow(7, true);
    inbound.slow(8, false);
    producer.commit();
    const seen = drain(consumer, (_k, at) => [reader.u32(at), reader.u32(at + 4)]);
    expect(seen.map((r) => [r.kind, r.decoded])).toEqual([
      [RecordKind.slow, [7, 1]],
      [RecordKind.slow, [8, 0]],
    ]);
  });
});

describe('OutboundWriter', () => {
  it('deliver - round-trips every field with non-ASCII exchange and key, a properties block and a 2^52 tag', () => {
    const { producer, consumer, outbound, reader } = ring();
    producer.bytes.fill(0xff);
    const payload = pattern(29, 3);
    expect(
      outbound.deliver(
        0xfffffff1,
        0xfffffff2,
        2 ** 52,
        true,
        EXCHANGE_NON_ASCII,
        KEY_NON_ASCII,
        PROPERTIES_BLOCK,
        0,
        PROPERTIES_BLOCK.byteLength,
        payload,
        0,
        payload.byteLength,
      ),
    ).toBe(true);
    producer.commit();
    const rec = drainOne(consumer, (_k, at) => {
      const r = copyDeliver(reader, consumer.bytes, at);
      return { ...r, decodedProperties: decodeProperties(consumer.bytes, r.propsOffset, r.propsLength) };
    });
    expect(rec.kind).toBe(RecordKind.deliver);
    expect(rec.length).toBe(pad8(DELIVER_FIXED + utf8(EXCHANGE_NON_ASCII) + utf8(KEY_NON_ASCII) + PROPERTIES_BLOCK.byteLength) + 29);
    expect(rec.decoded).toMatchObject({
      connectionId: 0xfffffff1,
      subscriptionId: 0xfffffff2,
      tag: 2 ** 52,
      redelivered: true,
      exchange: EXCHANGE_NON_ASCII,
      routingKey: KEY_NON_ASCII,
      propsLength: PROPERTIES_BLOCK.byteLength,
      properties: PROPERTIES_BLOCK,
      decodedProperties: PROPERTIES,
      payloadLength: 29,
      payload,
    });
    const d = rec.decoded as { payloadOffset: number; payloadLength: number; propsOffset: number };
    expect(d.propsOffset).toBe(rec.at + DELIVER_FIXED + utf8(EXCHANGE_NON_ASCII) + utf8(KEY_NON_ASCII));
    // deliverHead: the same fields, and where the strings' bytes are instead of the strings.
    const head = reader.deliverHead(rec.at, newDeliverHead());
    expect(head).toMatchObject({
      connectionId: 0xfffffff1,
      subscriptionId: 0xfffffff2,
      tag: 2 ** 52,
      redelivered: true,
      exchangeLength: utf8(EXCHANGE_NON_ASCII),
      keyLength: utf8(KEY_NON_ASCII),
      propsOffset: d.propsOffset,
      propsLength: PROPERTIES_BLOCK.byteLength,
      payloadOffset: d.payloadOffset,
      payloadLength: 29,
    });
    const bytes = Buffer.from(consumer.bytes.buffer, consumer.bytes.byteOffset, consumer.bytes.byteLength);
    expect(bytes.toString('utf8', head.exchangeOffset, head.exchangeOffset + head.exchangeLength)).toBe(EXCHANGE_NON_ASCII);
    expect(bytes.toString('utf8', head.keyOffset, head.keyOffset + head.keyLength)).toBe(KEY_NON_ASCII);
    expect(d.payloadOffset % 8).toBe(0);
    expect(d.payloadOffset + d.payloadLength).toBe(rec.at + rec.length);
  });

  it.each([1, 2 ** 32 - 1, 2 ** 32, 2 ** 52 - 1, 2 ** 52, 2 ** 52 + 1, Number.MAX_SAFE_INTEGER])(
    'deliver - tag %d round-trips exactly',
    (tag) => {
      const { producer, consumer, outbound, reader } = ring();
      outbound.deliver(1, 2, tag, false, '', 'q', pattern(0), 0, 0, pattern(3), 0, 3);
      producer.commit();
      expect((drainOne(consumer, (_k, at) => copyDeliver(reader, consumer.bytes, at)).decoded as { tag: number }).tag).toBe(tag);
    },
  );

  it('deliver - copies only the [start, start + length) sub-ranges of the properties and payload sources', () => {
    const { producer, consumer, outbound, reader } = ring();
    // Canary bytes around each range: if any of them reached the ring, the decoded bytes would differ.
    const source = new Uint8Array(64).fill(0xee);
    const inner = pattern(21, 5);
    source.set(inner, 17);
    const propsSource = new Uint8Array(48).fill(0xdd);
    const innerProps = pattern(13, 6);
    propsSource.set(innerProps, 30);
    outbound.deliver(1, 2, 3, false, 'amq.direct', 'jobs', propsSource, 30, 13, source, 17, 21);
    producer.commit();
    const rec = drainOne(consumer, (_k, at) => copyDeliver(reader, consumer.bytes, at));
    expect(rec.decoded).toMatchObject({
      redelivered: false,
      exchange: 'amq.direct',
      routingKey: 'jobs',
      properties: innerProps,
      payload: inner,
    });
    expect(rec.length).toBe(pad8(DELIVER_FIXED + 10 + 4 + 13) + 21); // nothing beyond the ranges
  });

  it('deliver - properties and payload from two ranges of one buffer (the fast path: both in the inbound ring)', () => {
    const { producer, consumer, outbound, reader } = ring();
    const shared = pattern(200, 11);
    outbound.deliver(4, 5, 6, false, 'x', 'y', shared, 40, 24, shared, 72, 100);
    producer.commit();
    const rec = drainOne(consumer, (_k, at) => copyDeliver(reader, consumer.bytes, at));
    expect(rec.decoded).toMatchObject({ properties: shared.slice(40, 64), payload: shared.slice(72, 172) });
  });

  it('deliver - sub-ranges of subarray sources (non-zero byteOffset), empty exchange and empty key', () => {
    const { producer, consumer, outbound, reader } = ring();
    const backing = pattern(80, 2);
    const source = backing.subarray(8);
    const propsBacking = pattern(30, 3);
    const propsSource = propsBacking.subarray(4);
    outbound.deliver(1, 2, 3, false, '', '', propsSource, 2, 5, source, 5, 10);
    producer.commit();
    const rec = drainOne(consumer, (_k, at) => copyDeliver(reader, consumer.bytes, at));
    expect(rec.decoded).toMatchObject({
      exchange: '',
      routingKey: '',
      properties: propsBacking.slice(6, 11),
      payload: backing.slice(13, 23),
    });
  });

  it('deliver - zero-length payload and zero-length properties', () => {
    const { producer, consumer, outbound, reader } = ring();
    producer.bytes.fill(0xff);
    outbound.deliver(1, 2, 9, false, '', 'k', new Uint8Array(4), 4, 0, new Uint8Array(4), 4, 0);
    producer.commit();
    const rec = drainOne(consumer, (_k, at) => copyDeliver(reader, consumer.bytes, at));
    expect(rec.decoded).toMatchObject({ tag: 9, redelivered: false, exchange: '', routingKey: 'k', propsLength: 0, payloadLength: 0 });
    expect(rec.length).toBe(pad8(DELIVER_FIXED + 1));
    expect((rec.decoded as { payloadOffset: number }).payloadOffset).toBe(rec.at + rec.length);
  });

  it('deliver - payload starts 8-aligned and ends the record, for every header length mod 8', () => {
    const { producer, consumer, outbound, reader } = ring(16384);
    const cases: Array<{ ex: string; key: string; props: Uint8Array }> = [];
    for (let exLen = 0; exLen < 8; exLen++)
      for (let propsLen = 0; propsLen < 8; propsLen++)
        cases.push({ ex: 'e'.repeat(exLen), key: 'k'.repeat((exLen * 3) % 8), props: pattern(propsLen, propsLen) });
    for (const [i, c] of cases.entries())
      outbound.deliver(1, i, i + 1, i % 2 === 1, c.ex, c.key, c.props, 0, c.props.length, pattern(5, i), 0, 5);
    producer.commit();
    const all = drain(consumer, (_k, at, length) => ({ ...copyDeliver(reader, consumer.bytes, at), recordEnd: at + length }));
    expect(all).toHaveLength(cases.length);
    all.forEach(({ decoded }, i) => {
      const d = decoded as ReturnType<typeof copyDeliver> & { recordEnd: number };
      expect(d).toMatchObject({
        subscriptionId: i,
        tag: i + 1,
        redelivered: i % 2 === 1,
        exchange: cases[i].ex,
        routingKey: cases[i].key,
        properties: cases[i].props,
        payload: pattern(5, i),
      });
      expect(d.payloadOffset % 8).toBe(0);
      expect(d.payloadOffset + d.payloadLength).toBe(d.recordEnd);
    });
  });

  it('deliver - the reused out-object is fully overwritten by the next decode', () => {
    const { producer, consumer, outbound, reader } = ring();
    outbound.deliver(1, 2, 2 ** 40, true, 'exchange', 'a.b.c', PROPERTIES_BLOCK, 0, PROPERTIES_BLOCK.length, pattern(30), 0, 30);
    outbound.deliver(3, 4, 5, false, '', '', EMPTY_BYTES, 0, 0, EMPTY_BYTES, 0, 0);
    producer.commit();
    const out = newDeliverRecord();
    const seen = drain(consumer, (_k, at) => ({ ...reader.deliver(at, out) }));
    expect(seen.map((s) => s.decoded)).toMatchObject([
      {
        connectionId: 1,
        subscriptionId: 2,
        tag: 2 ** 40,
        redelivered: true,
        exchange: 'exchange',
        routingKey: 'a.b.c',
        propsLength: PROPERTIES_BLOCK.length,
        payloadLength: 30,
      },
      { connectionId: 3, subscriptionId: 4, tag: 5, redelivered: false, exchange: '', routingKey: '', propsLength: 0, payloadLength: 0 },
    ]);
  });

  it('deliver - names the exchange by its local name: a vhost`s clients and cluster peers never see the qualified one', () => {
    const { producer, consumer, outbound, reader } = ring();
    const sep = '\u001f';
    // Alternating and repeated exchanges (the writer remembers the last one), a vhost's default
    // exchange (its prefix alone), non-ASCII vhost and names, and `/`'s bare names.
    const exchanges = [
      `tenant-b${sep}amq.topic`,
      `tenant-b${sep}amq.topic`,
      'amq.topic',
      `tenant-b${sep}`,
      `wörk${sep}ëx`,
      '',
      `tenant-b${sep}amq.topic`,
    ];
    for (const [i, ex] of exchanges.entries()) outbound.deliver(1, i, i, false, ex, 'k', EMPTY_BYTES, 0, 0, pattern(3), 0, 3);
    producer.commit();
    const out = newDeliverRecord();
    const seen = drain(consumer, (_k, at) => reader.deliver(at, out).exchange);
    expect(seen.map((s) => s.decoded)).toEqual(['amq.topic', 'amq.topic', 'amq.topic', '', 'ëx', '', 'amq.topic']);
  });

  it('republish - round-trips exchange, key, properties and payload; connection, token and flags are 0', () => {
    const { producer, consumer, outbound, reader } = ring();
    producer.bytes.fill(0xff);
    const payload = pattern(45, 8);
    expect(outbound.republish(EXCHANGE_NON_ASCII, KEY_NON_ASCII, PROPERTIES_BLOCK, payload)).toBe(true);
    producer.commit();
    const rec = drainOne(consumer, (_k, at) => copyPublish(reader, consumer.bytes, at));
    expect(rec.kind).toBe(RecordKind.republish);
    expect(rec.length).toBe(InboundWriter.publishSize(utf8(EXCHANGE_NON_ASCII), utf8(KEY_NON_ASCII), 45, PROPERTIES_BLOCK.byteLength));
    expect(rec.decoded).toMatchObject({
      connectionId: 0,
      token: 0,
      flags: 0,
      exchange: EXCHANGE_NON_ASCII,
      routingKey: KEY_NON_ASCII,
      properties: PROPERTIES_BLOCK,
      payload,
    });
    expect((rec.decoded as { payloadOffset: number }).payloadOffset % 8).toBe(0);
  });

  it('republish - no properties, empty exchange and key, zero-length payload', () => {
    const { producer, consumer, outbound, reader } = ring();
    outbound.republish('', '', null, new Uint8Array(0));
    producer.commit();
    const rec = drainOne(consumer, (_k, at) => copyPublish(reader, consumer.bytes, at));
    expect(rec).toMatchObject({ kind: RecordKind.republish, length: PUBLISH_FIXED });
    expect(rec.decoded).toMatchObject({ exchange: '', routingKey: '', propsLength: 0, payloadLength: 0 });
  });

  it('republish - a payload view with a non-zero byteOffset is copied from its own range', () => {
    const { producer, consumer, outbound, reader } = ring();
    const backing = pattern(64, 1);
    outbound.republish('dlx', 'rk', null, backing.subarray(9, 30));
    producer.commit();
    expect((drainOne(consumer, (_k, at) => copyPublish(reader, consumer.bytes, at)).decoded as { payload: Uint8Array }).payload).toEqual(
      backing.slice(9, 30),
    );
  });

  const REPLIES: Array<[name: string, token: number, status: number, body: ManageResult]> = [
    ['declare ok', 7, 0, { messageCount: 3, consumerCount: 1 }],
    ['empty ok body', 8, 0, {}],
    ['error', 9, 1, { code: 'precondition_failed', message: `queue '${QUEUE_NON_ASCII}' in vhost '/' in use` }],
    ['unsolicited event', 0, 0, { event: 'queueDeleted', queue: QUEUE_NON_ASCII }],
  ];

  it.each(REPLIES)('manageReply - %s round-trips through reader.json', (_name, token, status, body) => {
    const { producer, consumer, outbound, reader } = ring();
    producer.bytes.fill(0xff);
    expect(outbound.manageReply(0xabcdef01, token, status, body)).toBe(true);
    producer.commit();
    const rec = drainOne(consumer, (_k, at) => reader.json(at));
    expect(rec.kind).toBe(RecordKind.manageReply);
    expect(rec.length).toBe(JSON_FIXED + utf8(JSON.stringify(body)));
    expect(rec.decoded).toEqual({ connectionId: 0xabcdef01, token, status, body });
  });

  it('manageReply - status up to 2^32 - 1', () => {
    const { producer, consumer, outbound, reader } = ring();
    outbound.manageReply(1, 2, 0xffffffff, {});
    producer.commit();
    expect((drainOne(consumer, (_k, at) => reader.json(at)).decoded as { status: number }).status).toBe(0xffffffff);
  });

  it('confirm - connection, token, every status and count', () => {
    const { producer, consumer, outbound, reader } = ring();
    const statuses = [ConfirmStatus.ok, ConfirmStatus.notFound, ConfirmStatus.rejected];
    for (const status of statuses) outbound.confirm(0, 0xfffffffe, status, 0xffffffff - status);
    producer.commit();
    const all = drain(consumer, (k, at) => [k, reader.u32(at), reader.u32(at + 4), reader.u32(at + 8), reader.u32(at + 12)]);
    expect(all.map((r) => r.length)).toEqual([16, 16, 16]);
    expect(all.map((r) => r.decoded)).toEqual(statuses.map((s) => [RecordKind.confirm, 0, 0xfffffffe, s, 0xffffffff - s]));
  });

  it('error - code and non-ASCII message round-trip', () => {
    const { producer, consumer, outbound, reader } = ring();
    outbound.error(7, 8, 'unknown_tag', 'étiquette 42 inconnue ✗');
    producer.commit();
    const rec = drainOne(consumer, (_k, at) => reader.error(at));
    expect(rec.kind).toBe(RecordKind.error);
    expect(rec.length).toBe(12 + 11 + utf8('étiquette 42 inconnue ✗'));
    expect(rec.decoded).toEqual({ connectionId: 7, subscriptionId: 8, code: 'unknown_tag', message: 'étiquette 42 inconnue ✗' });
  });

  it('error - empty message', () => {
    const { producer, consumer, outbound, reader } = ring();
    outbound.error(1, 0, 'internal', '');
    producer.commit();
    expect(drainOne(consumer, (_k, at) => reader.error(at)).decoded).toEqual({
      connectionId: 1,
      subscriptionId: 0,
      code: 'internal',
      message: '',
    });
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

/** Every writer call once, with the record length it needs in the ring. */
type WriterCase = readonly [
  name: string,
  write: (w: { inbound: InboundWriter; outbound: OutboundWriter }) => boolean,
  payloadBytes: number,
];
const DECLARE: ManageOp = { op: 'declareQueue', name: 'q', durable: false, exclusive: false, autoDelete: false, arguments: {} };
const WRITER_CASES: readonly WriterCase[] = [
  [
    'publish',
    ({ inbound }) => inbound.publish(1, 2, 'amq.topic', 'a.b', pattern(13, 1), pattern(100), 1),
    InboundWriter.publishSize(9, 3, 100, 13),
  ],
  ['subscribe', ({ inbound }) => inbound.subscribe(1, 2, 'jobs', 0, 10, 10, 10), SUBSCRIBE_FIXED + 4],
  ['manage', ({ inbound }) => inbound.manage(1, 2, DECLARE), JSON_FIXED + utf8(JSON.stringify(DECLARE))],
  ['unsubscribe', ({ inbound }) => inbound.unsubscribe(1, 2), 8],
  ['settle ack', ({ inbound }) => inbound.settle(RecordKind.ack, 1, 2, false), 16],
  ['settle nack', ({ inbound }) => inbound.settle(RecordKind.nack, 1, 2, true), 16],
  ['connectionClosed', ({ inbound }) => inbound.connectionClosed(1), 8],
  ['ping', ({ inbound }) => inbound.ping(1), 8],
  ['credit', ({ inbound }) => inbound.credit(1, 2, 3, 4), 16],
  ['slow', ({ inbound }) => inbound.slow(1, true), 8],
  [
    'deliver',
    ({ outbound }) => outbound.deliver(1, 2, 3, false, 'amq.topic', 'a.b', pattern(13, 2), 0, 13, pattern(100), 0, 100),
    pad8(DELIVER_FIXED + 9 + 3 + 13) + 100,
  ],
  ['republish', ({ outbound }) => outbound.republish('dlx', 'a.b', pattern(13, 3), pattern(100)), InboundWriter.publishSize(3, 3, 100, 13)],
  [
    'manageReply',
    ({ outbound }) => outbound.manageReply(1, 2, 0, { messageCount: 1, consumerCount: 2 }),
    JSON_FIXED + utf8(JSON.stringify({ messageCount: 1, consumerCount: 2 })),
  ],
  ['confirm', ({ outbound }) => outbound.confirm(1, 2, ConfirmStatus.ok, 1), 16],
  ['error', ({ outbound }) => outbound.error(1, 2, 'bad_frame', 'nope'), 12 + 9 + 4],
  ['pong', ({ outbound }) => outbound.pong(1), 8],
  ['flow', ({ outbound }) => outbound.flow(true), 8],
  ['dropped', ({ outbound }) => outbound.dropped(1, 2, 3), 16],
  ['trace', ({ inbound }) => inbound.trace(1234.5), 8],
  ['traced', ({ outbound }) => outbound.traced(1, 2, 3), 24],
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
  it('full ring - WRITER_CASES covers every writer method', () => {
    const methods = (proto: object): string[] =>
      Object.getOwnPropertyNames(proto).filter(
        (n) => n !== 'constructor' && typeof Object.getOwnPropertyDescriptor(proto, n)?.value === 'function',
      );
    const covered = new Set(WRITER_CASES.map(([name]) => name.split(' ')[0]));
    for (const m of [...methods(InboundWriter.prototype), ...methods(OutboundWriter.prototype)]) expect(covered, m).toContain(m);
  });

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
    const before = short.producer.bytes.slice();
    expect(write(short)).toBe(false);
    expect(short.producer.bytes).toEqual(before);

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
    while (r.inbound.publish(written, 0, '', 'q', pattern(7, written), pattern(200, written))) written++;
    expect(written).toBeGreaterThan(0);
    r.producer.commit();
    const first = drain(r.consumer, (_k, at) => r.reader.publish(at, newPublishRecord()).connectionId);
    expect(first.map((x) => x.decoded)).toEqual([...Array(written).keys()]);
    expect(r.inbound.publish(written, 0, '', 'q', pattern(7, written), pattern(200, written))).toBe(true);
    r.producer.commit();
    const after = drainOne(r.consumer, (_k, at) => copyPublish(r.reader, r.consumer.bytes, at));
    expect(after.decoded).toMatchObject({ connectionId: written, properties: pattern(7, written), payload: pattern(200, written) });
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

function randomBytes(prng: Prng, length: number): Uint8Array {
  const b = new Uint8Array(length);
  prng.fill(b);
  return b;
}

/** What a message record's writer was given for its exchange, when that is not what the reader decodes. */
const writtenExchange = new WeakMap<object, { vhost: number; exchange: string }>();

/** A random exchange in `/` (vhost 0) or in one of VHOSTS: [number, prefix]. */
function randomVhost(prng: Prng): [number, string] {
  return prng.chance(0.5) ? [0, ''] : prng.pick([...VHOSTS.entries()]);
}

type Expected =
  | {
      kind: typeof RecordKind.publish | typeof RecordKind.republish;
      connectionId: number;
      token: number;
      flags: number;
      /** Publish: the vhost number the record carries (republish: always 0). */
      vhost: number;
      /** As decoded: qualified for a numbered vhost. */
      exchange: string;
      routingKey: string;
      properties: Uint8Array;
      payload: Uint8Array;
    }
  | {
      kind: typeof RecordKind.deliver;
      connectionId: number;
      subscriptionId: number;
      tag: number;
      redelivered: boolean;
      exchange: string;
      routingKey: string;
      properties: Uint8Array;
      payload: Uint8Array;
    }
  | {
      kind: typeof RecordKind.subscribe;
      connectionId: number;
      subscriptionId: number;
      flags: number;
      ackMode: number;
      prefetch: number;
      credit: number;
      creditBytes: number;
      queue: string;
    }
  | {
      kind: typeof RecordKind.manage | typeof RecordKind.manageReply;
      connectionId: number;
      token: number;
      status: number;
      body: ManageOp | ManageResult;
    }
  | { kind: typeof RecordKind.ack | typeof RecordKind.nack; connectionId: number; tag: number; requeue: boolean }
  | { kind: typeof RecordKind.confirm; connectionId: number; token: number; status: ConfirmStatus; count: number };

/** Everything but the payload of a message record stays below this many bytes (24 + 4·12 + 4·20 + 64 < 256). */
const MAX_MESSAGE_HEADER = 256;

function randomRecord(prng: Prng, maxPayload: number): Expected {
  const choice = prng.int(0, 11);
  const payloadSize = (): number => prng.skewedSize(0, 64, maxPayload);
  const propsSize = (): number => (prng.chance(0.3) ? 0 : prng.int(1, 64));
  if (choice < 4) {
    // Numbered vhosts' records carry the local name; the reader answers the qualified one.
    const [vhost, prefix] = randomVhost(prng);
    const local = randomName(prng, 12);
    const e: Expected = {
      kind: RecordKind.publish,
      connectionId: prng.u32(),
      token: prng.u32(),
      flags: prng.pick([0, PUBLISH_FLAG_DEAD_LETTERED, prng.int(0, 255)]),
      vhost,
      exchange: prefix + local,
      routingKey: randomName(prng, 20),
      properties: randomBytes(prng, propsSize()),
      payload: randomBytes(prng, payloadSize()),
    };
    writtenExchange.set(e, { vhost, exchange: local });
    return e;
  }
  if (choice < 5) {
    return {
      kind: RecordKind.republish,
      connectionId: 0,
      token: 0,
      flags: 0,
      vhost: 0,
      exchange: randomName(prng, 12),
      routingKey: randomName(prng, 20),
      properties: randomBytes(prng, propsSize()),
      payload: randomBytes(prng, payloadSize()),
    };
  }
  if (choice < 8) {
    // The shard gives the qualified name; the record carries (and the reader answers) the local one.
    const [, prefix] = randomVhost(prng);
    const local = randomName(prng, 12);
    const e: Expected = {
      kind: RecordKind.deliver,
      connectionId: prng.u32(),
      subscriptionId: prng.u32(),
      tag: prng.int(1, 2 ** 20) * 2 ** 32 + prng.u32(),
      redelivered: prng.chance(0.5),
      exchange: local,
      routingKey: randomName(prng, 20),
      properties: randomBytes(prng, propsSize()),
      payload: randomBytes(prng, payloadSize()),
    };
    writtenExchange.set(e, { vhost: 0, exchange: prefix + local });
    return e;
  }
  if (choice < 9) {
    return {
      kind: RecordKind.subscribe,
      connectionId: prng.u32(),
      subscriptionId: prng.u32(),
      flags: prng.int(0, 1),
      ackMode: prng.int(0, 1),
      prefetch: prng.u32(),
      credit: prng.u32(),
      creditBytes: prng.u32(),
      queue: randomName(prng, 20),
    };
  }
  if (choice < 10) {
    const manage = prng.chance(0.5);
    const body: ManageOp | ManageResult = manage
      ? {
          op: 'bindQueue',
          exchange: randomName(prng, 8),
          queue: randomName(prng, 8),
          routingKey: randomName(prng, 8),
          arguments: { n: prng.u32() },
        }
      : { messageCount: prng.u32(), consumerCount: prng.int(0, 100), queue: randomName(prng, 8) };
    return manage
      ? { kind: RecordKind.manage, connectionId: prng.u32(), token: prng.u32(), status: 0, body }
      : { kind: RecordKind.manageReply, connectionId: prng.u32(), token: prng.u32(), status: prng.int(0, 1), body };
  }
  if (choice < 11) {
    return {
      kind: prng.chance(0.5) ? RecordKind.ack : RecordKind.nack,
      connectionId: prng.u32(),
      tag: prng.int(1, 2 ** 21) * 2 ** 32,
      requeue: prng.chance(0.5),
    };
  }
  return {
    kind: RecordKind.confirm,
    connectionId: prng.u32(),
    token: prng.u32(),
    status: prng.pick([ConfirmStatus.ok, ConfirmStatus.notFound, ConfirmStatus.rejected]),
    count: prng.u32(),
  };
}

/** Scratch buffers a deliver copies from, standing in for the inbound ring the shard delivers out of. */
interface Sources {
  readonly payload: Uint8Array;
  readonly props: Uint8Array;
}

function writeRecord(w: { inbound: InboundWriter; outbound: OutboundWriter }, e: Expected, src: Sources, prng: Prng): boolean {
  switch (e.kind) {
    case RecordKind.publish: {
      const written = writtenExchange.get(e) as { vhost: number; exchange: string };
      return w.inbound.publish(
        e.connectionId,
        e.token,
        written.exchange,
        e.routingKey,
        e.properties.length === 0 && prngNull(prng) ? null : e.properties,
        e.payload,
        e.flags,
        written.vhost,
      );
    }
    case RecordKind.republish:
      return w.outbound.republish(e.exchange, e.routingKey, e.properties.length === 0 && prngNull(prng) ? null : e.properties, e.payload);
    case RecordKind.deliver: {
      // Deliver from regions of larger buffers, as the shard does from its inbound ring.
      const start = prng.int(0, src.payload.length - e.payload.byteLength);
      const propsStart = prng.int(0, src.props.length - e.properties.byteLength);
      src.payload.set(e.payload, start);
      src.props.set(e.properties, propsStart);
      return w.outbound.deliver(
        e.connectionId,
        e.subscriptionId,
        e.tag,
        e.redelivered,
        (writtenExchange.get(e) as { exchange: string }).exchange,
        e.routingKey,
        src.props,
        propsStart,
        e.properties.byteLength,
        src.payload,
        start,
        e.payload.byteLength,
      );
    }
    case RecordKind.subscribe:
      return w.inbound.subscribe(e.connectionId, e.subscriptionId, e.queue, e.ackMode, e.prefetch, e.credit, e.creditBytes, e.flags);
    case RecordKind.manage:
      return w.inbound.manage(e.connectionId, e.token, e.body as ManageOp);
    case RecordKind.manageReply:
      return w.outbound.manageReply(e.connectionId, e.token, e.status, e.body as ManageResult);
    case RecordKind.ack:
    case RecordKind.nack:
      return w.inbound.settle(e.kind, e.connectionId, e.tag, e.requeue);
    case RecordKind.confirm:
      return w.outbound.confirm(e.connectionId, e.token, e.status, e.count);
  }
}

function prngNull(prng: Prng): boolean {
  return prng.chance(0.5);
}

function decodeRecord(reader: RecordReader, bytes: Uint8Array, kind: number, at: number): unknown {
  switch (kind) {
    case RecordKind.publish:
    case RecordKind.republish: {
      const p = reader.publish(at, newPublishRecord());
      return {
        kind,
        connectionId: p.connectionId,
        token: p.token,
        flags: p.flags,
        // The record's vhost number (u16 at +14, the high half of the u32 at +12).
        vhost: reader.u32(at + 12) >>> 16,
        exchange: p.exchange,
        routingKey: p.routingKey,
        properties: bytes.slice(p.propsOffset, p.propsOffset + p.propsLength),
        payload: bytes.slice(p.payloadOffset, p.payloadOffset + p.payloadLength),
        aligned: p.payloadOffset % 8 === 0,
      };
    }
    case RecordKind.deliver: {
      const d = reader.deliver(at, newDeliverRecord());
      return {
        kind,
        connectionId: d.connectionId,
        subscriptionId: d.subscriptionId,
        tag: d.tag,
        redelivered: d.redelivered,
        exchange: d.exchange,
        routingKey: d.routingKey,
        properties: bytes.slice(d.propsOffset, d.propsOffset + d.propsLength),
        payload: bytes.slice(d.payloadOffset, d.payloadOffset + d.payloadLength),
        aligned: d.payloadOffset % 8 === 0,
      };
    }
    case RecordKind.subscribe:
      return { kind, ...reader.subscribe(at, newSubscribeRecord()) };
    case RecordKind.manage:
    case RecordKind.manageReply:
      return { kind, ...reader.json(at) };
    case RecordKind.ack:
    case RecordKind.nack:
      return { kind, connectionId: reader.u32(at), requeue: reader.u32(at + 4) === 1, tag: reader.f64(at + 8) };
    case RecordKind.confirm:
      return { kind, connectionId: reader.u32(at), token: reader.u32(at + 4), status: reader.u32(at + 8), count: reader.u32(at + 12) };
    default:
      return { kind, unexpected: true };
  }
}

const hasPayload = (e: Expected): boolean =>
  e.kind === RecordKind.publish || e.kind === RecordKind.republish || e.kind === RecordKind.deliver;

describe.each([4096, 16384])('records across the wrap point (capacity %i)', (capacity) => {
  it('wrap - seeded random records of every kind decode exactly over ~100 laps', () => {
    const seed = testSeed();
    const prng = new Prng(seed);
    const r = ring(capacity);
    const maxPayload = Math.min(maxRecordPayload(capacity) - MAX_MESSAGE_HEADER, 1500);
    const src: Sources = { payload: new Uint8Array(maxPayload + 64), props: new Uint8Array(64 + 32) };
    const laps = 100;
    const pending: Expected[] = []; // written and committed, not yet drained, in order
    const kindsSeen = new Set<number>();
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
        if (!writeRecord(r, e, src, prng)) {
          carry = e;
          refusals++;
          break;
        }
        pending.push(e);
      }
      r.producer.commit();
      // Drain some or all of it, so the ring is rarely empty when the next writes start.
      const max = prng.chance(0.3) ? Infinity : prng.int(1, 30);
      const got = drain(
        r.consumer,
        (kind, at, length) => {
          if (at < lastAt) wraps++;
          lastAt = at;
          consumedBytes += recordFootprint(length);
          return decodeRecord(r.reader, r.consumer.bytes, kind, at);
        },
        max,
      );
      expect(got.length, `seed ${seed}, after record ${checked}`).toBe(Math.min(max, pending.length));
      for (const g of got) {
        const e = pending.shift() as Expected;
        const want = hasPayload(e) ? { ...e, aligned: true } : e;
        expect(g.decoded, `seed ${seed}, record ${checked}`).toEqual(want);
        kindsSeen.add(e.kind);
        checked++;
      }
    }
    // The run must actually have exercised what it claims to.
    expect(wraps, `seed ${seed}`).toBeGreaterThanOrEqual(laps - 1);
    expect(refusals, `seed ${seed}`).toBeGreaterThan(0);
    expect(kindsSeen.size, `seed ${seed}`).toBe(9);
  });
});
