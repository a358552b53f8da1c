/**
 * Rings for the tests of the shard's parts: the shard side writes through a real OutboundWriter
 * (and reads a real inbound ring), the test reads back what was committed, decoded and copied.
 */
import { decodeProperties, type MessageProperties } from '../../src/protocol/properties.js';
import {
  InboundWriter,
  OutboundWriter,
  RecordKind,
  RecordReader,
  newDeliverRecord,
  newPublishRecord,
} from '../../src/protocol/ring-record-codec.js';
import { RingConsumer, RingProducer, createRingStorage } from '../../src/ring/spsc-ring.js';

export type OutRecord =
  | {
      kind: 'deliver';
      connectionId: number;
      subscriptionId: number;
      tag: number;
      redelivered: boolean;
      exchange: string;
      routingKey: string;
      properties: MessageProperties | null;
      payload: string;
    }
  | { kind: 'confirm'; connectionId: number; token: number; status: number; count: number }
  | { kind: 'error'; connectionId: number; subscriptionId: number; code: string; message: string }
  | { kind: 'pong'; token: number }
  | { kind: 'flow'; on: boolean }
  | { kind: 'dropped'; connectionId: number; subscriptionId: number; count: number }
  | { kind: 'traced'; frontInMs: number; shardInMs: number; shardOutMs: number }
  | { kind: 'manageReply'; connectionId: number; token: number; status: number; body: Record<string, unknown> }
  | {
      kind: 'republish';
      connectionId: number;
      token: number;
      flags: number;
      exchange: string;
      routingKey: string;
      properties: MessageProperties | null;
      payload: string;
    };

/** Decodes one committed outbound record, copying what it needs out of the ring. */
export function decodeOutRecord(r: RecordReader, bytes: Uint8Array, kind: number, at: number): OutRecord {
  const text = (offset: number, length: number): string => Buffer.from(bytes.subarray(offset, offset + length)).toString('utf8');
  switch (kind) {
    case RecordKind.deliver: {
      const d = r.deliver(at, newDeliverRecord());
      return {
        kind: 'deliver',
        connectionId: d.connectionId,
        subscriptionId: d.subscriptionId,
        tag: d.tag,
        redelivered: d.redelivered,
        exchange: d.exchange,
        routingKey: d.routingKey,
        properties: d.propsLength === 0 ? null : decodeProperties(bytes, d.propsOffset, d.propsLength),
        payload: text(d.payloadOffset, d.payloadLength),
      };
    }
    case RecordKind.republish: {
      const p = r.publish(at, newPublishRecord());
      return {
        kind: 'republish',
        connectionId: p.connectionId,
        token: p.token,
        flags: p.flags,
        exchange: p.exchange,
        routingKey: p.routingKey,
        properties: p.propsLength === 0 ? null : decodeProperties(bytes, p.propsOffset, p.propsLength),
        payload: text(p.payloadOffset, p.payloadLength),
      };
    }
    case RecordKind.confirm:
      return { kind: 'confirm', connectionId: r.u32(at), token: r.u32(at + 4), status: r.u32(at + 8), count: r.u32(at + 12) };
    case RecordKind.error:
      return { kind: 'error', ...r.error(at) };
    case RecordKind.pong:
      return { kind: 'pong', token: r.u32(at) };
    case RecordKind.flow:
      return { kind: 'flow', on: r.u32(at) === 1 };
    case RecordKind.dropped:
      return { kind: 'dropped', connectionId: r.u32(at), subscriptionId: r.u32(at + 4), count: r.f64(at + 8) };
    case RecordKind.traced:
      return { kind: 'traced', frontInMs: r.f64(at), shardInMs: r.f64(at + 8), shardOutMs: r.f64(at + 16) };
    case RecordKind.manageReply: {
      const j = r.json(at);
      return {
        kind: 'manageReply',
        connectionId: j.connectionId,
        token: j.token,
        status: j.status,
        body: j.body as Record<string, unknown>,
      };
    }
    default:
      throw new Error(`the shard wrote a record of unexpected kind ${kind}`);
  }
}

/** The outbound ring: `writer` for the shard side, `read()` for the main thread's. */
export class OutboundRing {
  readonly producer: RingProducer;
  readonly writer: OutboundWriter;
  readonly #consumer: RingConsumer;
  readonly #reader: RecordReader;

  constructor(capacity = 1 << 16) {
    const storage = createRingStorage(capacity);
    this.producer = new RingProducer(storage);
    this.#consumer = new RingConsumer(storage);
    this.writer = new OutboundWriter(this.producer);
    this.#reader = new RecordReader(this.#consumer.bytes, this.#consumer.view);
  }

  /** What has been committed so far (commit first to see what was only written). */
  read(): OutRecord[] {
    const out: OutRecord[] = [];
    this.#consumer.drain((kind, at) => out.push(decodeOutRecord(this.#reader, this.#consumer.bytes, kind, at)));
    return out;
  }
}

/** The inbound ring: `writer` for the main thread's side, `drain()` into the shard's record callback. */
export class InboundRing {
  readonly writer: InboundWriter;
  readonly reader: RecordReader;
  readonly #producer: RingProducer;
  readonly #consumer: RingConsumer;

  constructor(capacity = 1 << 16) {
    const storage = createRingStorage(capacity);
    this.#producer = new RingProducer(storage);
    this.#consumer = new RingConsumer(storage);
    this.writer = new InboundWriter(this.#producer);
    this.reader = new RecordReader(this.#consumer.bytes, this.#consumer.view);
  }

  drain(onRecord: (kind: number, offset: number, length: number) => void): void {
    this.#producer.commit();
    this.#consumer.drain(onRecord);
  }
}
