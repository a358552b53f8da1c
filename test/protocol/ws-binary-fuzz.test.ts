/**
 * Time-capped fuzzing of the binary protocol decoder (undici test/fuzzing, nats-server FuzzParser):
 * random bytes, mutated valid frames cut into random chunks, and random valid op sequences. The
 * decoder must dispatch events or throw a ProtocolError (`bad_frame`/`too_large`), never anything
 * else; it must give the same outcome however the input is chunked; and a synchronous hang would
 * show as this file's test timeout. Each of the four properties stops after FUZZ_MS (default
 * 1.5 s, about 6 s for the file; set SHARDMQ_FUZZ_MS=60000 for a long run). fast-check prints the
 * seed and path of a failure to replay it.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeProperties, validateProperties } from '../../src/protocol/properties.js';
import type { HeaderValue } from '../../src/protocol/field-table.js';
import type { MessageProperties } from '../../src/protocol/properties.js';
import { BinaryDecoder, DecoderState, Direction } from '../../src/protocol/ws-binary-decode.js';
import { BinaryFrameWriter } from '../../src/protocol/ws-binary-encode.js';
import { MAX_EXCERPT_BYTES, Opcode, ProtocolError } from '../../src/protocol/ws-binary.js';
import type { BinaryClientDispatcher, BinaryDispatcher } from '../../src/protocol/ws-binary.js';

const FUZZ_MS = Number(process.env.SHARDMQ_FUZZ_MS ?? 1500);
const NUM_RUNS = 10_000_000; // effectively unbounded: the time limit ends each property

const te = new TextEncoder();

interface Recorded {
  op: string;
  ev: unknown;
}

function recorder(): { events: Recorded[]; dispatcher: BinaryDispatcher & BinaryClientDispatcher } {
  const events: Recorded[] = [];
  const d = new Proxy({} as BinaryDispatcher & BinaryClientDispatcher, {
    get: (_t, op) => (ev: unknown) => events.push({ op: String(op), ev }),
  });
  return { events, dispatcher: d };
}

type Outcome = { events: Recorded[]; error: { code: string; state: string } | null; finalState: number };

/**
 * Feeds `chunks` (or one whole frame) to a fresh decoder. Returns what happened; rethrows anything
 * that is not a well-formed ProtocolError so the property fails on it.
 */
function run(direction: Direction, chunks: Uint8Array[], whole: boolean): Outcome {
  const { events, dispatcher } = recorder();
  const decoder =
    direction === Direction.toServer
      ? new BinaryDecoder(Direction.toServer, dispatcher)
      : new BinaryDecoder(Direction.toClient, dispatcher);
  try {
    if (whole) decoder.decodeFrame(chunks[0]);
    else for (const c of chunks) decoder.push(c);
  } catch (err) {
    if (!(err instanceof ProtocolError)) throw err;
    expect(['bad_frame', 'too_large']).toContain(err.code);
    expect(err.state.length).toBeGreaterThan(0);
    expect(err.excerpt.split(' ').filter((s) => s !== '…').length).toBeLessThanOrEqual(MAX_EXCERPT_BYTES);
    expect(decoder.state).toBe(DecoderState.FAILED);
    return { events, error: { code: err.code, state: err.state }, finalState: decoder.state };
  }
  return { events, error: null, finalState: decoder.state };
}

/** Cuts `bytes` at the given (sorted, clamped) offsets. */
function cut(bytes: Uint8Array, offsets: number[]): Uint8Array[] {
  const points = [...new Set(offsets.map((o) => o % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let at = 0;
  for (const p of points) {
    out.push(bytes.slice(at, p));
    at = p;
  }
  out.push(bytes.slice(at));
  return out;
}

function sampleFrames(): { client: Uint8Array[]; server: Uint8Array[] } {
  const w = new BinaryFrameWriter();
  const props: MessageProperties = {
    contentType: 'application/json',
    headers: { n: 1, s: 'ü', b: true, z: null, x: Uint8Array.of(1, 2), a: [1, [2, { d: 'e' }]], t: { k: 'v' } },
    deliveryMode: 2,
    priority: 3,
    timestamp: 12345,
    appId: 'fuzz',
  };
  const client: Uint8Array[] = [];
  w.publish('/topic/a.b', te.encode('hello'), props).ack(1).nack(2, true, false);
  client.push(w.finishCopy());
  w.publishBatch('/queue/q', [te.encode('1'), te.encode('22'), new Uint8Array(0)], { type: 't' }).confirmSelect(1);
  client.push(w.finishCopy());
  w.subscribe(1, 2, '/exchange/x/k', 'client', 10).unsubscribe(3, 2);
  client.push(w.finishCopy());
  w.declareExchange(4, 'x', 'topic', { durable: true, arguments: { 'alternate-exchange': 'ae', n: [1, 2] } });
  w.deleteExchange(5, 'x', true).declareQueue(6, '', { exclusive: true, arguments: { 'x-max-length': 10 } });
  w.deleteQueue(7, 'q', { ifEmpty: true }).purgeQueue(8, 'q');
  client.push(w.finishCopy());
  w.bindQueue(9, 'q', 'x', 'k', { 'x-match': 'all' })
    .unbindQueue(10, 'q', 'x', 'k')
    .bindExchange(11, 'd', 's', '#')
    .unbindExchange(12, 'd', 's', '#');
  client.push(w.finishCopy());
  const server: Uint8Array[] = [];
  w.deliver(1, 1, true, 'amq.topic', 'a.b', props, te.encode('payload')).deliver(1, 2, false, '', 'q', null, new Uint8Array(0));
  server.push(w.finishCopy());
  w.confirm(1).confirm(5, true, true).ok(6, Opcode.DECLARE_QUEUE, { name: 'amq.gen-1', messageCount: 1, consumerCount: 2 });
  w.error(0, 'not_found', 'nope').cancel(1, 'not_found', 'deleted');
  server.push(w.finishCopy());
  return { client, server };
}

const FRAMES = sampleFrames();

const mutation = fc.oneof(
  fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('u32' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 0xffff_ffff }) }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), value: fc.constant(0) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat(), value: fc.constant(0) }),
);
type Mutation = { kind: 'set' | 'u32' | 'insert' | 'delete' | 'truncate'; at: number; value: number };

function mutate(base: Uint8Array, mutations: Mutation[]): Uint8Array {
  let bytes = Array.from(base);
  for (const m of mutations) {
    const at = bytes.length === 0 ? 0 : m.at % bytes.length;
    switch (m.kind) {
      case 'set':
        if (bytes.length > 0) bytes[at] = m.value;
        break;
      case 'u32':
        for (let k = 0; k < 4 && at + k < bytes.length; k++) bytes[at + k] = (m.value >>> (8 * k)) & 0xff;
        break;
      case 'insert':
        bytes.splice(at, 0, m.value);
        break;
      case 'delete':
        bytes.splice(at, 1);
        break;
      case 'truncate':
        bytes = bytes.slice(0, at);
        break;
    }
  }
  return Uint8Array.from(bytes);
}

/** Same events and the same error (code and state) however the bytes are chunked. */
function expectSameOutcome(a: Outcome, b: Outcome): void {
  expect(b.error).toEqual(a.error);
  expect(b.events).toEqual(a.events);
}

describe('ws-binary fuzz', () => {
  it('fuzz - random bytes: events or a ProtocolError, both directions, whole and chunked', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), fc.array(fc.nat(), { maxLength: 8 }), (bytes, offsets) => {
        for (const direction of [Direction.toServer, Direction.toClient]) {
          const one = run(direction, [bytes], false);
          expectSameOutcome(one, run(direction, cut(bytes, offsets), false));
          run(direction, [bytes], true);
        }
      }),
      { numRuns: NUM_RUNS, plugins: [fc.interruptAfterTimeLimit(FUZZ_MS)] },
    );
  });

  it('fuzz - random bytes behind a valid op header reach the body decoders', () => {
    const opcodes = Object.values(Opcode);
    fc.assert(
      fc.property(fc.constantFrom(...opcodes), fc.uint8Array({ maxLength: 300 }), (opcode, body) => {
        const frame = new Uint8Array(5 + body.length);
        frame[0] = opcode;
        new DataView(frame.buffer).setUint32(1, body.length, true);
        frame.set(body, 5);
        const direction = opcode < 0x40 ? Direction.toServer : Direction.toClient;
        run(direction, [frame], true);
      }),
      { numRuns: NUM_RUNS, plugins: [fc.interruptAfterTimeLimit(FUZZ_MS)] },
    );
  });

  it('fuzz - mutated valid frames: same outcome whole or chunked, errors only as ProtocolError', () => {
    const bases = [
      ...FRAMES.client.map((f) => [Direction.toServer, f] as const),
      ...FRAMES.server.map((f) => [Direction.toClient, f] as const),
    ];
    fc.assert(
      fc.property(
        fc.constantFrom(...bases),
        fc.array(mutation, { minLength: 1, maxLength: 6 }),
        fc.array(fc.nat(), { maxLength: 10 }),
        ([direction, base], mutations, offsets) => {
          const bytes = mutate(base, mutations as Mutation[]);
          const one = run(direction, [bytes], false);
          expectSameOutcome(one, run(direction, cut(bytes, offsets), false));
          const whole = run(direction, [bytes], true);
          // A whole frame decodes like the stream, except that it must not end inside an op.
          if (one.error === null && one.finalState === DecoderState.OP_START) expectSameOutcome(one, whole);
          if (one.error === null && one.finalState !== DecoderState.OP_START) expect(whole.error?.code).toBe('bad_frame');
        },
      ),
      { numRuns: NUM_RUNS, plugins: [fc.interruptAfterTimeLimit(FUZZ_MS)] },
    );
  });

  it('fuzz - random valid publishes and deliveries round-trip through random chunking', () => {
    const name = fc.string({ unit: 'grapheme', maxLength: 40 }).filter((s) => te.encode(s).length <= 255);
    const leaf: fc.Arbitrary<HeaderValue> = fc.oneof(
      fc.string({ unit: 'grapheme', maxLength: 20 }),
      fc.double(),
      fc.boolean(),
      fc.constant(null),
      fc.uint8Array({ maxLength: 8 }),
    );
    const value = fc.letrec<{ v: HeaderValue }>((tie) => ({
      v: fc.oneof(
        { depthSize: 'small', withCrossShrink: true },
        leaf,
        fc.array(tie('v'), { maxLength: 3 }),
        fc.dictionary(name, tie('v'), { maxKeys: 3 }),
      ),
    })).v;
    const props: fc.Arbitrary<MessageProperties> = fc.record(
      {
        contentType: name,
        headers: fc.dictionary(name, value, { maxKeys: 4 }),
        deliveryMode: fc.constantFrom(1 as const, 2 as const),
        priority: fc.integer({ min: 0, max: 255 }),
        messageId: name,
        timestamp: fc.maxSafeNat(),
        appId: name,
      },
      { requiredKeys: [] },
    );
    const message = fc.record({
      destination: fc
        .string({ unit: 'grapheme', maxLength: 60 })
        .map((s) => '/topic/' + s)
        .filter((s) => te.encode(s).length <= 521),
      payload: fc.uint8Array({ maxLength: 200 }),
      properties: fc.option(props, { nil: undefined }),
      tag: fc.maxSafeNat(),
    });
    fc.assert(
      fc.property(fc.array(message, { minLength: 1, maxLength: 8 }), fc.array(fc.nat(), { maxLength: 10 }), (messages, offsets) => {
        const w = new BinaryFrameWriter(16);
        for (const m of messages) w.publish(m.destination, m.payload, m.properties);
        const clientFrame = w.finishCopy();
        for (const m of messages)
          w.deliver(1, m.tag, false, 'amq.topic', m.destination.slice(7, 100).slice(0, 60), m.properties, m.payload);
        const serverFrame = w.finishCopy();

        const pub = run(Direction.toServer, cut(clientFrame, offsets), false);
        expect(pub.error).toBeNull();
        expect(pub.events).toHaveLength(messages.length);
        pub.events.forEach(({ ev }, i) => {
          const e = ev as { destination: string; payload: Uint8Array; properties: Uint8Array | null };
          expect(e.destination).toBe(messages[i].destination);
          expect(e.payload).toEqual(messages[i].payload);
          const p = messages[i].properties;
          if (p === undefined) expect(e.properties).toBeNull();
          else {
            validateProperties(e.properties!, 0, e.properties!.length);
            expect(decodeProperties(e.properties!, 0, e.properties!.length)).toEqual(p);
          }
        });
        const del = run(Direction.toClient, cut(serverFrame, offsets), false);
        expect(del.error).toBeNull();
        expect(del.events.map(({ ev }) => (ev as { tag: number }).tag)).toEqual(messages.map((m) => m.tag));
      }),
      { numRuns: NUM_RUNS, plugins: [fc.interruptAfterTimeLimit(FUZZ_MS)] },
    );
  });
});
