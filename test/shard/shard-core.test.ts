/**
 * ShardCore without threads: the test plays the main thread. It writes records into a real inbound
 * ring with InboundWriter, drains them into core.onRecord, calls core.endBatch() as the shard loop
 * does, and reads back what the shard wrote into a real outbound ring (deliver, confirm, error,
 * pong, manageReply, republish), decoded with RecordReader.
 *
 * Time is a fake clock passed as `now`, plus vitest fake timers where the core arms its expiry timer.
 */
import { decodeOutRecord, type OutRecord } from './ring-fixture.js';
import { monotonicMs } from '../../src/metrics/clock.js';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { CounterSlot, createCounterStorage, readCounters } from '../../src/metrics/shard-counters.js';
import type { HeaderValue } from '../../src/protocol/field-table.js';
import { encodeProperties, type MessageProperties } from '../../src/protocol/properties.js';
import {
  AckModeCode,
  ConfirmStatus,
  InboundWriter,
  NO_TOKEN,
  OutboundWriter,
  CARRIER_ARG,
  PUBLISH_FLAG_DEAD_LETTERED,
  PUBLISH_FLAG_LIGHT,
  RecordKind,
  RecordReader,
  type ManageOp,
} from '../../src/protocol/ring-record-codec.js';
import { RingConsumer, RingProducer, createRingStorage, maxRecordPayload } from '../../src/ring/spsc-ring.js';
import { ShardCore, type QueueStats } from '../../src/shard/shard-core.js';
import { Prng, testSeed } from '../helpers/prng.js';

// ---------------------------------------------------------------------------------------------
// Harness

/** What the shard wrote, decoded and copied out of the outbound ring. Payloads are UTF-8 text here. */
type Out = OutRecord;

type Deliver = Extract<Out, { kind: 'deliver' }>;
type Republish = Extract<Out, { kind: 'republish' }>;
type ManageReply = Extract<Out, { kind: 'manageReply' }>;

/** The connection id the test's "management" records come from. */
const ADMIN = 100;
/** Fake clock start: a realistic epoch time, so TTL deadlines are far from the wheel's origin. */
const CLOCK_START = 1_700_000_000_000;

interface ShardOptions {
  readonly inCapacity?: number;
  readonly outCapacity?: number;
  readonly index?: number;
  readonly shardCount?: number;
}

interface SubscribeOptions {
  readonly ack?: 'auto' | 'client';
  readonly prefetch?: number;
  /** 0 = unlimited, as on the wire. */
  readonly credit?: number;
  readonly creditBytes?: number;
}

interface PublishOptions {
  readonly conn?: number;
  readonly token?: number;
  readonly props?: MessageProperties;
  readonly flags?: number;
}

/** A shard core between two real rings, driven by the test as the main thread and the shard loop would. */
class ShardHarness {
  readonly core: ShardCore;
  readonly counters = new Float64Array(createCounterStorage());
  /** The core's clock (ms); tests move it by hand (with the fake timers where timers matter). */
  readonly clock = { now: CLOCK_START };
  /** Main-thread side of the inbound ring. */
  readonly writer: InboundWriter;
  readonly #inProducer: RingProducer;
  readonly #inConsumer: RingConsumer;
  readonly #outProducer: RingProducer;
  readonly #outConsumer: RingConsumer;
  readonly #outReader: RecordReader;
  #nextToken = 1;

  constructor(options: ShardOptions = {}) {
    const inStorage = createRingStorage(options.inCapacity ?? 1 << 16);
    const outStorage = createRingStorage(options.outCapacity ?? 1 << 16);
    this.#inProducer = new RingProducer(inStorage);
    this.#inConsumer = new RingConsumer(inStorage);
    this.#outProducer = new RingProducer(outStorage);
    this.#outConsumer = new RingConsumer(outStorage);
    this.writer = new InboundWriter(this.#inProducer);
    this.#outReader = new RecordReader(this.#outConsumer.bytes, this.#outConsumer.view);
    this.core = new ShardCore(
      { index: options.index ?? 0, shardCount: options.shardCount ?? 1, now: () => this.clock.now },
      new RecordReader(this.#inConsumer.bytes, this.#inConsumer.view),
      new OutboundWriter(this.#outProducer),
      this.counters,
    );
  }

  /** Drains the outbound ring: everything the shard has committed so far. */
  output(): Out[] {
    const out: Out[] = [];
    this.#outConsumer.drain((kind, at) => out.push(decodeOutRecord(this.#outReader, this.#outConsumer.bytes, kind, at)));
    return out;
  }

  /** One shard-loop batch: the written records go to the core, then endBatch and the outbound commit. */
  run(): Out[] {
    this.#inProducer.commit();
    this.#inConsumer.drain(this.core.onRecord);
    this.core.endBatch();
    this.#outProducer.commit();
    return this.output();
  }

  /**
   * What the loop does while the core is blocked: the main thread takes the output, the core
   * flushPending()s and commits, until nothing waits. Returns everything read, in ring order.
   */
  pump(): Out[] {
    const all: Out[] = [];
    for (let round = 0; round < 10_000; round++) {
      all.push(...this.output());
      if (!this.core.blocked) return all;
      this.core.flushPending();
      this.#outProducer.commit();
    }
    throw new Error('the core stayed blocked');
  }

  token(): number {
    return this.#nextToken++;
  }

  manage(op: ManageOp, token: number = this.token()): number {
    expect(this.writer.manage(ADMIN, token, op)).toBe(true);
    return token;
  }

  declareQueue(
    name: string,
    args: Record<string, unknown> = {},
    flags: { autoDelete?: boolean; durable?: boolean; exclusive?: boolean } = {},
  ): number {
    return this.manage({
      op: 'declareQueue',
      name,
      durable: flags.durable ?? false,
      exclusive: flags.exclusive ?? false,
      autoDelete: flags.autoDelete ?? false,
      arguments: args,
    });
  }

  declareExchange(name: string, type: string, args: Record<string, unknown> = {}): number {
    return this.manage({ op: 'declareExchange', name, type, durable: false, autoDelete: false, internal: false, arguments: args });
  }

  bind(exchange: string, queue: string, routingKey: string, args: Record<string, unknown> = {}): number {
    return this.manage({ op: 'bindQueue', exchange, queue, routingKey, arguments: args });
  }

  /** Runs the topology records written so far and checks every one was answered with status 0. */
  setup(): void {
    for (const o of this.run()) expect(o, JSON.stringify(o)).toMatchObject({ kind: 'manageReply', status: 0 });
  }

  publish(exchange: string, routingKey: string, payload: string, opts: PublishOptions = {}): void {
    const props = opts.props === undefined ? null : encodeProperties(opts.props);
    expect(
      this.writer.publish(opts.conn ?? 1, opts.token ?? NO_TOKEN, exchange, routingKey, props, Buffer.from(payload), opts.flags ?? 0),
    ).toBe(true);
  }

  subscribe(conn: number, sub: number, queue: string, opts: SubscribeOptions = {}): void {
    const ack = opts.ack === 'client' ? AckModeCode.client : AckModeCode.auto;
    expect(this.writer.subscribe(conn, sub, queue, ack, opts.prefetch ?? 0, opts.credit ?? 0, opts.creditBytes ?? 0)).toBe(true);
  }

  ack(conn: number, tag: number): void {
    expect(this.writer.settle(RecordKind.ack, conn, tag, false)).toBe(true);
  }

  nack(conn: number, tag: number, requeue: boolean): void {
    expect(this.writer.settle(RecordKind.nack, conn, tag, requeue)).toBe(true);
  }

  /** Ready depth per queue name. */
  depths(): Record<string, number> {
    return Object.fromEntries(this.core.queueStats().map((q) => [q.name, q.depth]));
  }

  stats(name: string): QueueStats {
    const q = this.core.queueStats().find((s) => s.name === name);
    if (q === undefined) throw new Error(`no queue ${name}`);
    return q;
  }
}

/** Moves the shard's clock and the fake timers together (tests that use vi.useFakeTimers()). */
function advance(h: ShardHarness, ms: number): void {
  h.clock.now += ms;
  vi.advanceTimersByTime(ms);
}

function shard(options: ShardOptions = {}): ShardHarness {
  return new ShardHarness(options);
}

const deliveries = (out: Out[]): Deliver[] => out.filter((o): o is Deliver => o.kind === 'deliver');
const republishes = (out: Out[]): Republish[] => out.filter((o): o is Republish => o.kind === 'republish');
const replies = (out: Out[]): ManageReply[] => out.filter((o): o is ManageReply => o.kind === 'manageReply');
/** `conn/sub:payload` per delivery, for compact order assertions. */
const who = (out: Out[]): string[] => deliveries(out).map((d) => `${d.connectionId}/${d.subscriptionId}:${d.payload}`);
const payloads = (out: Out[]): string[] => deliveries(out).map((d) => d.payload);
const tagsOf = (out: Out[]): number[] => deliveries(out).map((d) => d.tag);

// ---------------------------------------------------------------------------------------------

describe('shard core - manage', () => {
  it('manage - declareQueue answers message and consumer counts; a redeclare answers the current ones', () => {
    const h = shard();
    const t1 = h.declareQueue('q');
    expect(h.run()).toEqual([
      { kind: 'manageReply', connectionId: ADMIN, token: t1, status: 0, body: { messageCount: 0, consumerCount: 0 } },
    ]);
    expect(h.counters[CounterSlot.queues]).toBe(1);

    h.publish('', 'q', 'm1');
    h.publish('', 'q', 'm2');
    h.subscribe(1, 1, 'q', { ack: 'client', prefetch: 1 });
    const t2 = h.declareQueue('q', { 'x-message-ttl': 5 }); // arguments of a redeclare are not re-checked
    const out = h.run();
    expect(payloads(out)).toEqual(['m1']);
    expect(replies(out)).toEqual([
      { kind: 'manageReply', connectionId: ADMIN, token: t2, status: 0, body: { messageCount: 1, consumerCount: 1 } },
    ]);
    expect(h.counters[CounterSlot.queues]).toBe(1);
  });

  it('manage - an op with token 0 (NO_TOKEN) is carried out without a reply', () => {
    const h = shard();
    h.manage({ op: 'declareQueue', name: 'q', durable: false, exclusive: false, autoDelete: false, arguments: {} }, NO_TOKEN);
    expect(h.run()).toEqual([]);
    expect(h.depths()).toEqual({ q: 0 });
  });

  it('manage - invalid queue arguments are refused with status 1 and precondition_failed; no queue is created', () => {
    const h = shard();
    const token = h.declareQueue('q', { 'x-max-length': -1 });
    expect(h.run()).toEqual([
      {
        kind: 'manageReply',
        connectionId: ADMIN,
        token,
        status: 1,
        body: { code: 'precondition_failed', message: "invalid arg 'x-max-length' for queue 'q': {value_negative,-1}" },
      },
    ]);
    expect(h.core.queueStats()).toEqual([]);
    expect(h.counters[CounterSlot.queues]).toBe(0);
  });

  it('manage - router refusals travel as status 1 with the AMQP reply name', () => {
    const h = shard();
    h.declareQueue('q');
    h.setup();
    const unknownExchange = h.bind('nope', 'q', 'k');
    const unknownQueue = h.bind('amq.direct', 'missing', 'k');
    const badType = h.declareExchange('x', 'nonsense');
    const reserved = h.declareExchange('amq.mine', 'direct');
    const out = replies(h.run());
    expect(out.map((r) => [r.token, r.status, r.body.code])).toEqual([
      [unknownExchange, 1, 'not_found'],
      [unknownQueue, 1, 'not_found'],
      [badType, 1, 'command_invalid'],
      [reserved, 1, 'access_refused'],
    ]);
    for (const r of out) expect(typeof r.body.message).toBe('string');
  });
});

describe('shard core - routing to local queues', () => {
  it('routing - direct: each queue bound with the routing key gets one copy; unroutable counted', () => {
    const h = shard();
    h.declareExchange('dx', 'direct');
    for (const q of ['a', 'b', 'c']) h.declareQueue(q);
    h.bind('dx', 'a', 'k1');
    h.bind('dx', 'a', 'k1', { note: 'same key, other arguments: a second binding' });
    h.bind('dx', 'b', 'k1');
    h.bind('dx', 'c', 'k2');
    h.bind('dx', 'a', 'k3');
    h.setup();
    h.publish('dx', 'k1', 'one', { token: 11 });
    h.publish('dx', 'k2', 'two', { token: 12 });
    h.publish('dx', 'k3', 'three', { token: 13 });
    h.publish('dx', 'none', 'four', { token: 14 });
    const out = h.run();
    // Unroutable publishes are still confirmed ok (AMQP: a mandatory-less publish that routed nowhere).
    expect(out).toEqual([11, 12, 13, 14].map((token) => ({ kind: 'confirm', connectionId: 1, token, status: ConfirmStatus.ok, count: 1 })));
    expect(h.depths()).toEqual({ a: 2, b: 1, c: 1 });
    expect(readCounters(h.counters)).toMatchObject({ published: 4, unroutable: 1, ready: 4 });

    h.subscribe(1, 1, 'a');
    const got = deliveries(h.run());
    expect(got.map((d) => [d.exchange, d.routingKey, d.payload])).toEqual([
      ['dx', 'k1', 'one'],
      ['dx', 'k3', 'three'],
    ]);
  });

  it('routing - fanout: every bound queue gets one copy whatever the key, even when bound with several keys', () => {
    const h = shard();
    h.declareExchange('fx', 'fanout');
    for (const q of ['a', 'b', 'c']) h.declareQueue(q);
    h.bind('fx', 'a', 'x');
    h.bind('fx', 'a', 'y');
    h.bind('fx', 'b', '');
    h.setup();
    h.publish('fx', 'anything', 'm1');
    h.publish('fx', '', 'm2');
    h.run();
    expect(h.depths()).toEqual({ a: 2, b: 2, c: 0 });
    expect(readCounters(h.counters)).toMatchObject({ published: 2, unroutable: 0 });
  });

  it('routing - topic: * and # patterns, and a queue matched by two patterns gets one copy', () => {
    const h = shard();
    h.declareExchange('tx', 'topic');
    for (const q of ['a', 'b', 'c', 'd', 'e']) h.declareQueue(q);
    h.bind('tx', 'a', 'stock.*.nyse');
    h.bind('tx', 'a', 'stock.#');
    h.bind('tx', 'b', '*.eur.*');
    h.bind('tx', 'c', '#');
    h.bind('tx', 'd', 'stock.usd');
    h.bind('tx', 'e', 'bond.*');
    h.setup();
    h.publish('tx', 'stock.usd.nyse', 'm1'); // a (twice over), c
    h.publish('tx', 'stock.eur.lse', 'm2'); // a, b, c
    h.publish('tx', 'stock.usd', 'm3'); // a, c, d
    h.publish('tx', 'x', 'm4'); // c
    h.publish('tx', 'bond', 'm5'); // c only: bond.* needs exactly one more word
    h.run();
    expect(h.depths()).toEqual({ a: 3, b: 1, c: 5, d: 1, e: 0 });
    h.subscribe(1, 1, 'a');
    expect(payloads(h.run())).toEqual(['m1', 'm2', 'm3']);
  });

  it('routing - headers: x-match all / any against the publish properties, one copy per queue', () => {
    const h = shard();
    h.declareExchange('hx', 'headers');
    for (const q of ['a', 'b', 'c']) h.declareQueue(q);
    h.bind('hx', 'a', '', { 'x-match': 'all', format: 'pdf', type: 'report' });
    h.bind('hx', 'a', '', { 'x-match': 'any', format: 'pdf' });
    h.bind('hx', 'b', '', { 'x-match': 'any', format: 'pdf', type: 'log' });
    h.bind('hx', 'c', 'ignored-key', { 'x-match': 'all', size: 3 });
    h.setup();
    h.publish('hx', 'k', 'pdf-report', { props: { headers: { format: 'pdf', type: 'report' } } }); // a (both bindings), b
    h.publish('hx', 'k', 'zip-log', { props: { headers: { format: 'zip', type: 'log', size: 3 } } }); // b, c
    h.publish('hx', 'k', 'pdf', { props: { headers: { format: 'pdf' } } }); // a (any), b
    h.publish('hx', 'k', 'no-headers', { props: { contentType: 'text/plain' } }); // nobody
    h.publish('hx', 'k', 'no-properties'); // nobody
    h.run();
    expect(h.depths()).toEqual({ a: 2, b: 3, c: 1 });
    expect(readCounters(h.counters)).toMatchObject({ published: 5, unroutable: 2 });
    h.subscribe(1, 1, 'b');
    const got = deliveries(h.run());
    expect(got.map((d) => d.payload)).toEqual(['pdf-report', 'zip-log', 'pdf']);
    expect(got[1].properties).toEqual({ headers: { format: 'zip', type: 'log', size: 3 } });
  });

  it('routing - exchange-to-exchange bindings: a queue reached by two paths gets one copy', () => {
    const h = shard();
    h.declareExchange('src', 'fanout');
    h.declareExchange('mid', 'direct');
    h.declareQueue('q');
    h.manage({ op: 'bindExchange', destination: 'mid', source: 'src', routingKey: '', arguments: {} });
    h.bind('mid', 'q', 'k');
    h.bind('src', 'q', '');
    h.setup();
    h.publish('src', 'k', 'm');
    h.run();
    expect(h.depths()).toEqual({ q: 1 });
  });

  it('routing - the default exchange routes by queue name; an unknown name is unroutable', () => {
    const h = shard();
    h.declareQueue('orders');
    h.declareQueue('é-queue-🌡');
    h.setup();
    h.publish('', 'orders', 'm1');
    h.publish('', 'é-queue-🌡', 'm2');
    h.publish('', 'nope', 'm3');
    h.run();
    expect(h.depths()).toEqual({ orders: 1, 'é-queue-🌡': 1 });
    expect(readCounters(h.counters)).toMatchObject({ published: 3, unroutable: 1 });
  });

  it('routing - an unknown exchange is confirmed notFound and neither published nor unroutable', () => {
    const h = shard();
    h.declareQueue('q');
    h.setup();
    h.publish('gone', 'q', 'm', { conn: 7, token: 99 });
    h.publish('gone', 'q', 'no confirm wanted');
    expect(h.run()).toEqual([{ kind: 'confirm', connectionId: 7, token: 99, status: ConfirmStatus.notFound, count: 1 }]);
    expect(readCounters(h.counters)).toMatchObject({ published: 0, unroutable: 0 });
    expect(h.depths()).toEqual({ q: 0 });
  });

  it('routing - unbindQueue and deleteExchange stop the routing', () => {
    const h = shard();
    h.declareExchange('dx', 'direct');
    h.declareQueue('q');
    h.bind('dx', 'q', 'k');
    h.bind('amq.topic', 'q', '#');
    h.setup();
    h.manage({ op: 'unbindQueue', exchange: 'amq.topic', queue: 'q', routingKey: '#', arguments: {} });
    h.manage({ op: 'deleteExchange', name: 'dx' });
    h.setup();
    h.publish('amq.topic', 'a.b', 'm1');
    h.publish('dx', 'k', 'm2', { token: 3 });
    expect(h.run()).toEqual([{ kind: 'confirm', connectionId: 1, token: 3, status: ConfirmStatus.notFound, count: 1 }]);
    expect(h.depths()).toEqual({ q: 0 });
  });
});

describe("shard core - light subscriptions' carrier", () => {
  it('a publish flagged light also goes to the carrier of its exchange, once, after its routed queues; unflagged ones do not', () => {
    const h = shard();
    h.declareExchange('t', 'topic');
    h.declareQueue('bound');
    h.bind('t', 'bound', 'a.*');
    h.declareQueue('carrier', { [CARRIER_ARG]: 't' }, { exclusive: true, autoDelete: true });
    h.setup();
    h.subscribe(1, 1, 'bound');
    h.subscribe(9, 2, 'carrier');
    h.publish('t', 'a.x', 'both', { flags: PUBLISH_FLAG_LIGHT });
    h.publish('t', 'b.x', 'light only', { flags: PUBLISH_FLAG_LIGHT });
    h.publish('t', 'a.y', 'routed only');
    h.publish('t', 'c.z', 'nowhere');
    // Another exchange's flagged publish finds no carrier of its own.
    h.declareExchange('u', 'topic');
    h.publish('u', 'a.x', 'no carrier', { flags: PUBLISH_FLAG_LIGHT });
    const out = h.run();
    expect(who(out)).toEqual(['1/1:both', '9/2:both', '9/2:light only', '1/1:routed only']);
    expect(h.counters[CounterSlot.unroutable]).toBe(2);
  });

  it('a deleted carrier takes no more flagged publishes; a new one does', () => {
    const h = shard();
    h.declareExchange('t', 'topic');
    h.declareQueue('c1', { [CARRIER_ARG]: 't' }, { exclusive: true, autoDelete: true });
    h.setup();
    h.manage({ op: 'deleteQueue', name: 'c1', ifUnused: false, ifEmpty: false });
    h.publish('t', 'k', 'lost', { flags: PUBLISH_FLAG_LIGHT });
    h.declareQueue('c2', { [CARRIER_ARG]: 't' }, { exclusive: true, autoDelete: true });
    h.publish('t', 'k', 'kept', { flags: PUBLISH_FLAG_LIGHT });
    h.run();
    expect(h.depths()).toEqual({ c2: 1 });
    expect(h.counters[CounterSlot.unroutable]).toBe(1);
  });
});

describe('shard core - subscriptions and deliveries', () => {
  it('deliver - auto-ack fast path: an idle consumer gets the publish ring to ring, properties and all', () => {
    const h = shard();
    h.declareQueue('q');
    h.bind('amq.topic', 'q', 'sensors.#');
    h.setup();
    h.subscribe(3, 4, 'q');
    expect(h.run()).toEqual([]);
    const props: MessageProperties = {
      contentType: 'application/json',
      headers: { région: 'Île', n: 1 },
      deliveryMode: 2,
      messageId: 'id-1',
    };
    h.publish('amq.topic', 'sensors.température', '{"t":21.5}', { props, token: 8 });
    const out = h.run();
    expect(out).toEqual([
      {
        kind: 'deliver',
        connectionId: 3,
        subscriptionId: 4,
        tag: 1,
        redelivered: false,
        exchange: 'amq.topic',
        routingKey: 'sensors.température',
        properties: props,
        payload: '{"t":21.5}',
      },
      { kind: 'confirm', connectionId: 1, token: 8, status: ConfirmStatus.ok, count: 1 },
    ]);
    expect(h.stats('q')).toMatchObject({ depth: 0, unacked: 0, consumers: 1 });
    expect(h.stats('q').stats).toMatchObject({ delivered: 1 });
    expect(readCounters(h.counters)).toMatchObject({ published: 1, delivered: 1, ready: 0, unacked: 0, consumers: 1 });
  });

  it('deliver - zero-length payload and no properties', () => {
    const h = shard();
    h.declareQueue('q');
    h.setup();
    h.subscribe(1, 1, 'q');
    h.publish('', 'q', '');
    h.publish('', 'q', 'x');
    h.run(); // first batch: fast path
    h.writer.unsubscribe(1, 1);
    h.publish('', 'q', '');
    h.subscribe(1, 2, 'q');
    const queued = h.run(); // queued path
    expect(deliveries(queued)).toEqual([
      {
        kind: 'deliver',
        connectionId: 1,
        subscriptionId: 2,
        tag: 3,
        redelivered: false,
        exchange: '',
        routingKey: 'q',
        properties: null,
        payload: '',
      },
    ]);
  });

  it('deliver - queued path: messages published before the consumer arrive in order with their properties', () => {
    const h = shard();
    h.declareQueue('q');
    h.setup();
    for (let i = 1; i <= 5; i++) h.publish('', 'q', `m${i}`, { props: { correlationId: `c${i}`, headers: { i } } });
    h.run();
    expect(readCounters(h.counters)).toMatchObject({ ready: 5, delivered: 0 });
    h.subscribe(1, 1, 'q');
    const got = deliveries(h.run());
    expect(got.map((d) => d.payload)).toEqual(['m1', 'm2', 'm3', 'm4', 'm5']);
    expect(got.map((d) => d.properties)).toEqual([1, 2, 3, 4, 5].map((i) => ({ correlationId: `c${i}`, headers: { i } })));
    expect(got.every((d) => !d.redelivered && d.exchange === '' && d.routingKey === 'q')).toBe(true);
    expect(readCounters(h.counters)).toMatchObject({ ready: 0, delivered: 5 });
  });

  it('deliver - client ack: deliveries are tracked as unacked until acked', () => {
    const h = shard();
    h.declareQueue('q');
    h.setup();
    h.subscribe(1, 1, 'q', { ack: 'client' });
    h.publish('', 'q', 'a');
    h.publish('', 'q', 'b');
    const out = h.run();
    expect(payloads(out)).toEqual(['a', 'b']);
    expect(readCounters(h.counters)).toMatchObject({ unacked: 2, ready: 0 });
    for (const tag of tagsOf(out)) h.ack(1, tag);
    expect(h.run()).toEqual([]);
    expect(readCounters(h.counters)).toMatchObject({ unacked: 0, acked: 2 });
    expect(h.core.heldMessages()).toBe(0);
  });

  it('deliver - tags are unique, increasing and encode the shard (tag % shardCount === index)', () => {
    const h = shard({ index: 2, shardCount: 4 });
    h.declareQueue('q');
    h.setup();
    h.subscribe(1, 1, 'q', { ack: 'client' });
    h.subscribe(1, 2, 'q'); // auto: the fast path allocates tags too
    for (let i = 0; i < 20; i++) h.publish('', 'q', `m${i}`);
    const tags = tagsOf(h.run());
    expect(tags).toHaveLength(20);
    expect(new Set(tags).size).toBe(20);
    expect(tags.every((t) => t % 4 === 2)).toBe(true);
    expect([...tags].sort((x, y) => x - y)).toEqual(tags);
    expect(h.counters[CounterSlot.nextTagSeq]).toBe(20);
  });

  it('deliver - round robin over three consumers, on both the fast and the queued path', () => {
    const h = shard();
    h.declareQueue('q');
    h.setup();
    h.subscribe(1, 1, 'q');
    h.subscribe(2, 1, 'q');
    h.subscribe(3, 1, 'q', { ack: 'client' });
    for (let i = 1; i <= 6; i++) h.publish('', 'q', `m${i}`);
    expect(who(h.run())).toEqual(['1/1:m1', '2/1:m2', '3/1:m3', '1/1:m4', '2/1:m5', '3/1:m6']);

    const h2 = shard();
    h2.declareQueue('q');
    h2.setup();
    for (let i = 1; i <= 6; i++) h2.publish('', 'q', `m${i}`);
    h2.run();
    h2.subscribe(1, 1, 'q');
    h2.subscribe(2, 1, 'q');
    h2.subscribe(3, 1, 'q');
    // The first subscribe dispatches everything at once (one consumer then); later ones find the queue empty.
    const out = h2.run();
    expect(payloads(out)).toEqual(['m1', 'm2', 'm3', 'm4', 'm5', 'm6']);
    for (let i = 7; i <= 12; i++) h2.publish('', 'q', `m${i}`);
    expect(who(h2.run())).toEqual(['1/1:m7', '2/1:m8', '3/1:m9', '1/1:m10', '2/1:m11', '3/1:m12']);
  });

  it('deliver - prefetch limits unacked client deliveries; each ack lets one more through', () => {
    const h = shard();
    h.declareQueue('q');
    h.setup();
    h.subscribe(1, 1, 'q', { ack: 'client', prefetch: 2 });
    for (let i = 1; i <= 5; i++) h.publish('', 'q', `m${i}`);
    const first = h.run();
    expect(payloads(first)).toEqual(['m1', 'm2']);
    expect(h.stats('q')).toMatchObject({ depth: 3, unacked: 2 });
    h.ack(1, tagsOf(first)[0]);
    const second = h.run();
    expect(payloads(second)).toEqual(['m3']);
    h.ack(1, tagsOf(first)[1]);
    h.ack(1, tagsOf(second)[0]);
    expect(payloads(h.run())).toEqual(['m4', 'm5']);
  });

  it('deliver - prefetch skips a full consumer and serves the next in turn', () => {
    const h = shard();
    h.declareQueue('q');
    h.setup();
    h.subscribe(1, 1, 'q', { ack: 'client', prefetch: 1 });
    h.subscribe(2, 1, 'q', { ack: 'client', prefetch: 3 });
    for (let i = 1; i <= 6; i++) h.publish('', 'q', `m${i}`);
    expect(who(h.run())).toEqual(['1/1:m1', '2/1:m2', '2/1:m3', '2/1:m4']);
    expect(h.depths()).toEqual({ q: 2 });
  });

  it('deliver - credit bounds deliveries in both ack modes; a credit record lets more through', () => {
    const h = shard();
    h.declareQueue('q');
    h.setup();
    h.subscribe(1, 1, 'q', { credit: 2 });
    for (let i = 1; i <= 5; i++) h.publish('', 'q', `m${i}`);
    expect(payloads(h.run())).toEqual(['m1', 'm2']);
    h.writer.credit(1, 1, 1, 0);
    expect(payloads(h.run())).toEqual(['m3']);
    h.writer.credit(1, 1, 10, 0);
    expect(payloads(h.run())).toEqual(['m4', 'm5']);
    // 10 - 2 = 8 left: the fast path spends credit too.
    for (let i = 6; i <= 15; i++) h.publish('', 'q', `m${i}`);
    expect(payloads(h.run())).toHaveLength(8);
    expect(h.depths()).toEqual({ q: 2 });
  });

  it('deliver - credit for an unknown subscription is ignored', () => {
    const h = shard();
    h.declareQueue('q');
    h.setup();
    h.writer.credit(9, 9, 5, 0);
    expect(h.run()).toEqual([]);
  });

  it('ack - a second ack of the same tag is an unknown_tag error', () => {
    const h = shard();
    h.declareQueue('q');
    h.setup();
    h.subscribe(4, 1, 'q', { ack: 'client' });
    h.publish('', 'q', 'm');
    const [tag] = tagsOf(h.run());
    h.ack(4, tag);
    h.ack(4, tag);
    const out = h.run();
    expect(out).toHaveLength(1);
    expect(out[0]).toMatchObject({ kind: 'error', connectionId: 4, subscriptionId: 0, code: 'unknown_tag' });
    expect((out[0] as { message: string }).message).toContain(`delivery tag ${tag}`);
    expect(h.counters[CounterSlot.acked]).toBe(1);
  });

  it.each([
    ['ack', RecordKind.ack],
    ['nack', RecordKind.nack],
  ] as const)('%s - a tag no delivery has is an unknown_tag error record', (_name, kind) => {
    const h = shard();
    h.declareQueue('q');
    h.setup();
    h.subscribe(5, 1, 'q', { ack: 'client' });
    h.run();
    h.writer.settle(kind, 5, 2 ** 40, true);
    h.writer.settle(kind, 6, 1, false); // a connection with no subscriptions at all
    expect(h.run()).toMatchObject([
      { kind: 'error', connectionId: 5, subscriptionId: 0, code: 'unknown_tag' },
      { kind: 'error', connectionId: 6, subscriptionId: 0, code: 'unknown_tag' },
    ]);
  });

  it('ack - another connection cannot settle a tag it does not own; the owner still can', () => {
    const h = shard();
    h.declareQueue('q');
    h.setup();
    h.subscribe(1, 1, 'q', { ack: 'client' });
    h.subscribe(2, 1, 'q', { ack: 'client' });
    h.publish('', 'q', 'm');
    const [tag] = tagsOf(h.run());
    h.ack(2, tag);
    h.nack(2, tag, false);
    expect(h.run()).toMatchObject([
      { kind: 'error', connectionId: 2, code: 'unknown_tag' },
      { kind: 'error', connectionId: 2, code: 'unknown_tag' },
    ]);
    expect(h.stats('q').unacked).toBe(1);
    h.ack(1, tag);
    expect(h.run()).toEqual([]);
    expect(h.stats('q').unacked).toBe(0);
  });

  it('nack - requeue puts the message back at its place, redelivered, before later messages', () => {
    const h = shard();
    h.declareQueue('q');
    h.setup();
    h.subscribe(1, 1, 'q', { ack: 'client', prefetch: 1 });
    h.publish('', 'q', 'm1');
    h.publish('', 'q', 'm2');
    const first = deliveries(h.run());
    expect(first.map((d) => [d.payload, d.redelivered])).toEqual([['m1', false]]);
    h.nack(1, first[0].tag, true);
    const again = deliveries(h.run());
    expect(again.map((d) => [d.payload, d.redelivered])).toEqual([['m1', true]]);
    expect(again[0].tag).not.toBe(first[0].tag);
    h.ack(1, again[0].tag);
    expect(deliveries(h.run()).map((d) => [d.payload, d.redelivered])).toEqual([['m2', false]]);
    expect(readCounters(h.counters)).toMatchObject({ redelivered: 1, delivered: 3, acked: 1, dropped: 0 });
  });

  it('nack - without requeue the message is dropped and counted', () => {
    const h = shard();
    h.declareQueue('q');
    h.setup();
    h.subscribe(1, 1, 'q', { ack: 'client' });
    h.publish('', 'q', 'm1');
    const [tag] = tagsOf(h.run());
    h.nack(1, tag, false);
    expect(h.run()).toEqual([]);
    expect(h.stats('q')).toMatchObject({ depth: 0, unacked: 0 });
    expect(readCounters(h.counters)).toMatchObject({ dropped: 1, unacked: 0, ready: 0 });
    expect(h.core.heldMessages()).toBe(0);
  });

  it('nack - without requeue on a queue with a DLX the message is republished with reason rejected', () => {
    const h = shard();
    h.declareQueue('q', { 'x-dead-letter-exchange': 'dlx' });
    h.setup();
    h.subscribe(1, 1, 'q', { ack: 'client' });
    h.publish('', 'q', 'bad', { props: { headers: { a: 1 } } });
    const [tag] = tagsOf(h.run());
    h.nack(1, tag, false);
    const out = h.run();
    expect(out).toHaveLength(1);
    const r = out[0] as Republish;
    expect(r).toMatchObject({ kind: 'republish', connectionId: 0, token: 0, flags: 0, exchange: 'dlx', routingKey: 'q', payload: 'bad' });
    expect(r.properties?.headers?.['x-death']).toEqual([
      { count: 1, reason: 'rejected', queue: 'q', time: Math.floor(CLOCK_START / 1000), exchange: '', 'routing-keys': ['q'] },
    ]);
    expect(r.properties?.headers).toMatchObject({ a: 1, 'x-first-death-reason': 'rejected', 'x-first-death-queue': 'q' });
  });

  it('unsubscribe - unacked deliveries go back (redelivered) to the remaining consumer', () => {
    const h = shard();
    h.declareQueue('q');
    h.setup();
    h.subscribe(1, 1, 'q', { ack: 'client' });
    h.subscribe(2, 1, 'q', { ack: 'client', credit: 1 });
    for (let i = 1; i <= 3; i++) h.publish('', 'q', `m${i}`);
    expect(who(h.run())).toEqual(['1/1:m1', '2/1:m2', '1/1:m3']);
    h.writer.credit(2, 1, 10, 0);
    h.writer.unsubscribe(1, 1);
    const out = deliveries(h.run());
    expect(out.map((d) => [`${d.connectionId}/${d.subscriptionId}`, d.payload, d.redelivered])).toEqual([
      ['2/1', 'm1', true],
      ['2/1', 'm3', true],
    ]);
    expect(readCounters(h.counters)).toMatchObject({ consumers: 1, unacked: 3, redelivered: 2 });
  });

  it('unsubscribe - of an unknown subscription does nothing', () => {
    const h = shard();
    h.declareQueue('q');
    h.setup();
    h.writer.unsubscribe(1, 1);
    expect(h.run()).toEqual([]);
    expect(h.counters[CounterSlot.consumers]).toBe(0);
  });

  it('connectionClosed - every subscription of the connection goes; unacked messages are requeued on each queue', () => {
    const h = shard();
    h.declareQueue('a');
    h.declareQueue('b');
    h.setup();
    h.subscribe(1, 1, 'a', { ack: 'client' });
    h.subscribe(1, 2, 'b', { ack: 'client' });
    h.publish('', 'a', 'a1');
    h.publish('', 'b', 'b1');
    h.publish('', 'b', 'b2');
    expect(who(h.run())).toEqual(['1/1:a1', '1/2:b1', '1/2:b2']);
    h.writer.connectionClosed(1);
    expect(h.run()).toEqual([]);
    expect(h.depths()).toEqual({ a: 1, b: 2 });
    expect(readCounters(h.counters)).toMatchObject({ consumers: 0, unacked: 0, ready: 3 });
    h.subscribe(2, 1, 'b');
    expect(deliveries(h.run()).map((d) => [d.payload, d.redelivered])).toEqual([
      ['b1', true],
      ['b2', true],
    ]);
    h.writer.connectionClosed(1); // a second close is harmless
    expect(h.run()).toEqual([]);
  });

  it('connectionClosed - a message requeued from one subscription is not handed to another subscription of the same closing connection', () => {
    // Connection 1 has a client-ack and an auto-ack subscription on q; the client-ack one holds m1.
    // Closing the connection must leave m1 in the queue: a delivery to the closed connection's
    // auto-ack subscription would be forgotten on send, and the main thread has no socket for it.
    const h = shard();
    h.declareQueue('q');
    h.setup();
    h.subscribe(1, 1, 'q', { ack: 'client' });
    h.subscribe(1, 2, 'q');
    h.publish('', 'q', 'm1');
    expect(who(h.run())).toEqual(['1/1:m1']);
    h.writer.connectionClosed(1);
    const out = h.run();
    expect(who(out)).toEqual([]);
    expect(h.depths()).toEqual({ q: 1 });
    h.subscribe(2, 1, 'q');
    expect(deliveries(h.run()).map((d) => [d.payload, d.redelivered])).toEqual([['m1', true]]);
  });

  it('subscribe - to a queue this shard does not have is a not_found error record', () => {
    const h = shard();
    h.subscribe(3, 7, 'missing');
    expect(h.run()).toEqual([
      { kind: 'error', connectionId: 3, subscriptionId: 7, code: 'not_found', message: "no queue 'missing' in vhost '/'" },
    ]);
    expect(h.counters[CounterSlot.consumers]).toBe(0);
  });

  it('subscribe - re-subscribing with the same subscription id replaces the old consumer and stays ackable', () => {
    // A subscription id reused on one connection: the core unsubscribes the old consumer first.
    const h = shard();
    h.declareQueue('a');
    h.declareQueue('b');
    h.setup();
    h.subscribe(1, 5, 'a', { ack: 'client' });
    h.run();
    h.subscribe(1, 5, 'b', { ack: 'client' });
    h.publish('', 'b', 'm1');
    const [tag] = tagsOf(h.run());
    expect(h.counters[CounterSlot.consumers]).toBe(1);
    expect(h.stats('a').consumers).toBe(0);
    h.ack(1, tag);
    expect(h.run()).toEqual([]); // no unknown_tag error
    expect(h.stats('b').unacked).toBe(0);
    // And the connection closing removes the consumer from b.
    h.writer.connectionClosed(1);
    h.run();
    expect(h.stats('b').consumers).toBe(0);
  });

  it('subscribe - re-subscribing with the same subscription id to an auto-delete queue leaves a consumer that receives', () => {
    // The replacement unsubscribes the old consumer first; on an auto-delete queue that must not
    // leave the new consumer attached to a deleted queue (no error, no deliveries, ever).
    const h = shard();
    h.declareQueue('tmp', {}, { autoDelete: true });
    h.setup();
    h.subscribe(1, 5, 'tmp');
    h.run();
    h.subscribe(1, 5, 'tmp');
    h.publish('', 'tmp', 'm1');
    const out = h.run();
    expect(who(out)).toEqual(['1/5:m1']);
    expect(h.depths()).toEqual({ tmp: 0 });
  });
});

describe('shard core - queue lifecycle', () => {
  it('auto-delete - the queue goes when its last consumer leaves, with a queueDeleted event (token 0)', () => {
    const h = shard();
    h.declareQueue('tmp', {}, { autoDelete: true });
    h.setup();
    expect(h.depths()).toEqual({ tmp: 0 }); // no consumer yet: kept
    h.subscribe(1, 1, 'tmp');
    h.subscribe(2, 1, 'tmp');
    h.run();
    h.writer.unsubscribe(1, 1);
    expect(h.run()).toEqual([]);
    expect(h.depths()).toEqual({ tmp: 0 });
    h.writer.unsubscribe(2, 1);
    expect(h.run()).toEqual([{ kind: 'manageReply', connectionId: 0, token: 0, status: 0, body: { event: 'queueDeleted', queue: 'tmp' } }]);
    expect(h.core.queueStats()).toEqual([]);
    expect(readCounters(h.counters)).toMatchObject({ queues: 0, consumers: 0 });
    // Its name no longer routes.
    h.publish('', 'tmp', 'late');
    h.run();
    expect(h.counters[CounterSlot.unroutable]).toBe(1);
  });

  it('auto-delete - a closed connection holding the last consumer deletes it too; unacked messages are dropped', () => {
    const h = shard();
    h.declareQueue('tmp', {}, { autoDelete: true });
    h.setup();
    h.subscribe(1, 1, 'tmp', { ack: 'client' });
    h.publish('', 'tmp', 'm1');
    h.publish('', 'tmp', 'm2');
    expect(deliveries(h.run())).toHaveLength(2);
    h.writer.connectionClosed(1);
    expect(h.run()).toEqual([{ kind: 'manageReply', connectionId: 0, token: 0, status: 0, body: { event: 'queueDeleted', queue: 'tmp' } }]);
    expect(readCounters(h.counters)).toMatchObject({ queues: 0, consumers: 0, dropped: 2, ready: 0, unacked: 0 });
    expect(h.core.heldMessages()).toBe(0);
  });

  it('deleteQueue - consumers of the deleted queue get consumer_cancelled; the reply counts the ready messages', () => {
    const h = shard();
    h.declareQueue('q');
    h.declareQueue('other');
    h.setup();
    h.subscribe(1, 1, 'q', { ack: 'client', prefetch: 1 });
    h.subscribe(2, 9, 'q', { ack: 'client', prefetch: 1 });
    h.subscribe(2, 10, 'other');
    for (let i = 1; i <= 5; i++) h.publish('', 'q', `m${i}`);
    const delivered = deliveries(h.run());
    expect(delivered).toHaveLength(2);
    const token = h.manage({ op: 'deleteQueue', name: 'q', ifUnused: false, ifEmpty: false });
    const out = h.run();
    const errors = out.filter((o) => o.kind === 'error');
    expect(errors).toHaveLength(2);
    expect(errors).toEqual(
      expect.arrayContaining([
        {
          kind: 'error',
          connectionId: 1,
          subscriptionId: 1,
          code: 'consumer_cancelled',
          message: "consumer cancelled: queue deleted ('q')",
        },
        {
          kind: 'error',
          connectionId: 2,
          subscriptionId: 9,
          code: 'consumer_cancelled',
          message: "consumer cancelled: queue deleted ('q')",
        },
      ]),
    );
    expect(replies(out)).toEqual([{ kind: 'manageReply', connectionId: ADMIN, token, status: 0, body: { messageCount: 3 } }]);
    expect(h.depths()).toEqual({ other: 0 });
    expect(readCounters(h.counters)).toMatchObject({ queues: 1, consumers: 1, dropped: 5 });
    // Acks for deliveries of the deleted queue no longer find it.
    h.ack(1, delivered[0].tag);
    expect(h.run()).toMatchObject([{ kind: 'error', connectionId: 1, code: 'unknown_tag' }]);
    // The other subscription of connection 2 is untouched.
    h.publish('', 'other', 'x');
    expect(who(h.run())).toEqual(['2/10:x']);
  });

  it('deleteQueue - ifUnused with a consumer and ifEmpty with ready messages are refused (status 1, precondition_failed)', () => {
    const h = shard();
    h.declareQueue('used');
    h.declareQueue('full');
    h.setup();
    h.subscribe(1, 1, 'used');
    h.publish('', 'full', 'm');
    h.run();
    const t1 = h.manage({ op: 'deleteQueue', name: 'used', ifUnused: true, ifEmpty: false });
    const t2 = h.manage({ op: 'deleteQueue', name: 'full', ifUnused: false, ifEmpty: true });
    expect(h.run()).toEqual([
      {
        kind: 'manageReply',
        connectionId: ADMIN,
        token: t1,
        status: 1,
        body: { code: 'precondition_failed', message: "queue 'used' in vhost '/' in use" },
      },
      {
        kind: 'manageReply',
        connectionId: ADMIN,
        token: t2,
        status: 1,
        body: { code: 'precondition_failed', message: "queue 'full' in vhost '/' is not empty" },
      },
    ]);
    expect(h.depths()).toEqual({ used: 0, full: 1 });
    // The same conditions met: deleted.
    const t3 = h.manage({ op: 'deleteQueue', name: 'full', ifUnused: true, ifEmpty: false });
    const t4 = h.manage({ op: 'deleteQueue', name: 'missing', ifUnused: false, ifEmpty: false });
    expect(replies(h.run())).toEqual([
      { kind: 'manageReply', connectionId: ADMIN, token: t3, status: 0, body: { messageCount: 1 } },
      { kind: 'manageReply', connectionId: ADMIN, token: t4, status: 0, body: { messageCount: 0 } },
    ]);
    expect(h.depths()).toEqual({ used: 0 });
  });

  it('purgeQueue - drops the ready messages, answers how many, leaves unacked ones alone', () => {
    const h = shard();
    h.declareQueue('q');
    h.setup();
    h.subscribe(1, 1, 'q', { ack: 'client', prefetch: 1 });
    for (let i = 1; i <= 4; i++) h.publish('', 'q', `m${i}`);
    const [tag] = tagsOf(h.run());
    const token = h.manage({ op: 'purgeQueue', name: 'q' });
    const missing = h.manage({ op: 'purgeQueue', name: 'nope' });
    expect(h.run()).toEqual([
      { kind: 'manageReply', connectionId: ADMIN, token, status: 0, body: { messageCount: 3 } },
      {
        kind: 'manageReply',
        connectionId: ADMIN,
        token: missing,
        status: 1,
        body: { code: 'not_found', message: "no queue 'nope' in vhost '/'" },
      },
    ]);
    expect(h.stats('q')).toMatchObject({ depth: 0, unacked: 1 });
    h.nack(1, tag, true);
    expect(deliveries(h.run()).map((d) => [d.payload, d.redelivered])).toEqual([['m1', true]]);
  });
});

describe('shard core - queue arguments', () => {
  it('x-max-length drop-head - the oldest ready messages are dropped; with a DLX they are republished (maxlen)', () => {
    const h = shard();
    h.declareQueue('plain', { 'x-max-length': 2 });
    h.declareQueue('dl', { 'x-max-length': 2, 'x-dead-letter-exchange': 'dlx', 'x-dead-letter-routing-key': 'overflow' });
    h.bind('amq.fanout', 'plain', '');
    h.bind('amq.fanout', 'dl', '');
    h.setup();
    for (let i = 1; i <= 4; i++) h.publish('amq.fanout', `k${i}`, `m${i}`, { token: i });
    const out = h.run();
    expect(out.filter((o) => o.kind === 'confirm').map((o) => (o as { status: number }).status)).toEqual([0, 0, 0, 0]);
    const dead = republishes(out);
    expect(dead.map((r) => [r.exchange, r.routingKey, r.payload])).toEqual([
      ['dlx', 'overflow', 'm1'],
      ['dlx', 'overflow', 'm2'],
    ]);
    expect(dead[0].properties?.headers?.['x-death']).toEqual([
      { count: 1, reason: 'maxlen', queue: 'dl', time: Math.floor(CLOCK_START / 1000), exchange: 'amq.fanout', 'routing-keys': ['k1'] },
    ]);
    expect(h.depths()).toEqual({ plain: 2, dl: 2 });
    h.subscribe(1, 1, 'plain');
    expect(payloads(h.run())).toEqual(['m3', 'm4']);
  });

  /** A subscription's private topic queue, as the front declares it, bound to amq.topic `ticks.#`. */
  const privateQueue = (h: ShardHarness, name: string, bound: number, policy?: string): void => {
    const args: Record<string, unknown> = { 'x-shardmq-topic-buffer': bound };
    if (policy !== undefined) args['x-shardmq-slow-consumer'] = policy;
    h.declareQueue(name, args, { exclusive: true, autoDelete: true });
    h.bind('amq.topic', name, 'ticks.#');
  };
  const flows = (out: Out[]): boolean[] => out.filter((o) => o.kind === 'flow').map((o) => (o as { on: boolean }).on);

  it('flow control - a private queue past its bound whose subscriber keeps up drops nothing and holds the publishers', () => {
    const h = shard();
    privateQueue(h, 'sub-1', 4);
    h.setup();
    h.subscribe(1, 1, 'sub-1', { credit: 2 });
    for (let i = 1; i <= 10; i++) h.publish('amq.topic', 'ticks.a', `m${i}`);
    let out = h.run();
    expect(payloads(out)).toEqual(['m1', 'm2']);
    // 8 queued past a bound of 4: nothing dropped, the main thread is told to hold publishes.
    expect(flows(out)).toEqual([true]);
    expect(h.depths()).toEqual({ 'sub-1': 8 });
    expect(h.counters[CounterSlot.dropped]).toBe(0);
    // Credit comes back (the subscriber keeps up): the queue drains; at half its bound it releases.
    h.writer.credit(1, 1, 5, 0);
    out = h.run();
    expect(payloads(out)).toEqual(['m3', 'm4', 'm5', 'm6', 'm7']);
    expect(flows(out)).toEqual([]);
    h.writer.credit(1, 1, 1, 0);
    out = h.run();
    expect(payloads(out)).toEqual(['m8']);
    expect(flows(out)).toEqual([false]);
    expect(out.filter((o) => o.kind === 'dropped' || o.kind === 'error')).toEqual([]);
  });

  it.each([
    ['drop (default)', undefined],
    ['drop', 'drop'],
  ] as const)(
    'slow consumer - policy %s: once the front says the socket is slow, the oldest go, counted and reported once per batch',
    (_n, policy) => {
      const h = shard();
      privateQueue(h, 'sub-1', 3, policy);
      h.setup();
      h.subscribe(1, 1, 'sub-1', { credit: 1 });
      for (let i = 1; i <= 6; i++) h.publish('amq.topic', 'ticks.a', `m${i}`);
      expect(flows(h.run())).toEqual([true]);
      h.writer.slow(1, true);
      let out = h.run();
      // m2 and m3 dropped (5 queued, bound 3); nothing presses any more.
      expect(out.filter((o) => o.kind === 'dropped')).toEqual([{ kind: 'dropped', connectionId: 1, subscriptionId: 1, count: 2 }]);
      expect(flows(out)).toEqual([false]);
      expect(h.depths()).toEqual({ 'sub-1': 3 });
      // While slow, every publish past the bound drops the oldest: one report per batch.
      for (let i = 7; i <= 10; i++) h.publish('amq.topic', 'ticks.a', `m${i}`);
      out = h.run();
      expect(out.filter((o) => o.kind === 'dropped')).toEqual([{ kind: 'dropped', connectionId: 1, subscriptionId: 1, count: 4 }]);
      expect(flows(out)).toEqual([]);
      expect(h.counters[CounterSlot.dropped]).toBe(6);
      // The newest survive, in order.
      h.writer.credit(1, 1, 10, 0);
      expect(payloads(h.run())).toEqual(['m8', 'm9', 'm10']);
    },
  );

  it('slow consumer - policy disconnect: the slow subscriber is told once to go, and its queue stays bounded until it does', () => {
    const h = shard();
    privateQueue(h, 'sub-1', 2, 'disconnect');
    h.setup();
    h.subscribe(1, 1, 'sub-1', { credit: 1 });
    h.writer.slow(1, true);
    for (let i = 1; i <= 6; i++) h.publish('amq.topic', 'ticks.a', `m${i}`);
    const out = h.run();
    const message = 'subscription buffer of 2 messages overflowed while its socket stayed above high water; disconnecting';
    expect(out.filter((o) => o.kind === 'error')).toEqual([
      { kind: 'error', connectionId: 1, subscriptionId: 1, code: 'slow_consumer', message },
    ]);
    expect(flows(out)).toEqual([]);
    expect(h.depths()).toEqual({ 'sub-1': 2 });
  });

  it('slow consumer - policy block: a slow subscriber holds the publishers instead of losing messages', () => {
    const h = shard();
    privateQueue(h, 'sub-1', 2, 'block');
    h.setup();
    h.subscribe(1, 1, 'sub-1', { credit: 1 });
    h.writer.slow(1, true);
    for (let i = 1; i <= 6; i++) h.publish('amq.topic', 'ticks.a', `m${i}`);
    const out = h.run();
    expect(flows(out)).toEqual([true]);
    expect(out.filter((o) => o.kind === 'dropped' || o.kind === 'error')).toEqual([]);
    expect(h.depths()).toEqual({ 'sub-1': 5 });
  });

  it('slow consumer - a healthy subscriber beside a slow one on the same topic loses nothing', () => {
    const h = shard();
    privateQueue(h, 'fast', 3);
    privateQueue(h, 'slow', 3);
    h.setup();
    h.subscribe(1, 1, 'fast', { credit: 0 });
    h.subscribe(2, 1, 'slow', { credit: 1 });
    h.writer.slow(2, true);
    for (let i = 1; i <= 20; i++) h.publish('amq.topic', 'ticks.a', `m${i}`);
    const out = h.run();
    expect(out.filter((o) => o.kind === 'deliver' && o.connectionId === 1)).toHaveLength(20);
    expect(out.filter((o) => o.kind === 'dropped')).toEqual([{ kind: 'dropped', connectionId: 2, subscriptionId: 1, count: 16 }]);
    expect(flows(out)).toEqual([]);
  });

  it('slow consumer - the verdict lifted, a full buffer holds the publishers again; closing the connection forgets it', () => {
    const h = shard();
    privateQueue(h, 'sub-1', 2);
    h.setup();
    h.subscribe(1, 1, 'sub-1', { credit: 1 });
    h.writer.slow(1, true);
    for (let i = 1; i <= 4; i++) h.publish('amq.topic', 'ticks.a', `m${i}`);
    expect(h.run().filter((o) => o.kind === 'dropped')).toHaveLength(1);
    h.writer.slow(1, false);
    for (let i = 5; i <= 6; i++) h.publish('amq.topic', 'ticks.a', `m${i}`);
    expect(flows(h.run())).toEqual([true]);
    h.writer.connectionClosed(1);
    // Its private queue goes with its consumer (auto-delete): nothing presses any more.
    expect(flows(h.run())).toEqual([false]);
  });

  it('slow consumer - a shared queue with x-max-length drops silently (no policy unless exclusive and auto-delete)', () => {
    const h = shard();
    h.declareQueue('shared', { 'x-max-length': 1 });
    h.declareQueue('excl', { 'x-max-length': 1 }, { exclusive: true });
    h.setup();
    h.subscribe(1, 1, 'shared', { credit: 1 });
    h.subscribe(1, 2, 'excl', { credit: 1 });
    for (let i = 1; i <= 4; i++) {
      h.publish('', 'shared', `s${i}`);
      h.publish('', 'excl', `e${i}`);
    }
    const out = h.run();
    expect(out.filter((o) => o.kind === 'error')).toEqual([]);
    expect(h.depths()).toEqual({ shared: 1, excl: 1 });
  });

  it('x-overflow reject-publish - a publish over the limit is confirmed rejected; other target queues still get it', () => {
    const h = shard();
    h.declareQueue('limited', { 'x-max-length': 1, 'x-overflow': 'reject-publish' });
    h.declareQueue('free');
    h.bind('amq.fanout', 'limited', '');
    h.bind('amq.fanout', 'free', '');
    h.setup();
    h.publish('', 'limited', 'm1', { token: 1 });
    h.publish('', 'limited', 'm2', { token: 2 });
    h.publish('amq.fanout', '', 'm3', { token: 3 });
    expect(h.run()).toEqual([
      { kind: 'confirm', connectionId: 1, token: 1, status: ConfirmStatus.ok, count: 1 },
      { kind: 'confirm', connectionId: 1, token: 2, status: ConfirmStatus.rejected, count: 1 },
      { kind: 'confirm', connectionId: 1, token: 3, status: ConfirmStatus.rejected, count: 1 },
    ]);
    expect(h.depths()).toEqual({ limited: 1, free: 1 });
    expect(h.stats('limited').stats).toMatchObject({ rejectedPublishes: 2 });
  });

  it('x-overflow reject-publish - x-max-length 0 refuses even with an idle consumer (no fast path)', () => {
    const h = shard();
    h.declareQueue('q', { 'x-max-length': 0, 'x-overflow': 'reject-publish' });
    h.setup();
    h.subscribe(1, 1, 'q');
    h.publish('', 'q', 'm', { token: 4 });
    expect(h.run()).toEqual([{ kind: 'confirm', connectionId: 1, token: 4, status: ConfirmStatus.rejected, count: 1 }]);
  });

  it('x-overflow reject-publish-dlx - the refused publish is also dead-lettered', () => {
    const h = shard();
    h.declareQueue('q', { 'x-max-length': 1, 'x-overflow': 'reject-publish-dlx', 'x-dead-letter-exchange': 'dlx' });
    h.setup();
    h.publish('', 'q', 'm1', { token: 1 });
    h.publish('', 'q', 'm2', { token: 2 });
    const out = h.run();
    expect(out.filter((o) => o.kind === 'confirm').map((o) => (o as { status: number }).status)).toEqual([
      ConfirmStatus.ok,
      ConfirmStatus.rejected,
    ]);
    expect(
      republishes(out).map((r) => [
        r.exchange,
        r.routingKey,
        r.payload,
        (r.properties!.headers!['x-death'] as Array<{ reason: string }>)[0].reason,
      ]),
    ).toEqual([['dlx', 'q', 'm2', 'maxlen']]);
  });

  describe('TTL (fake timers)', () => {
    beforeEach(() => {
      vi.useFakeTimers();
    });
    afterEach(() => {
      vi.useRealTimers();
    });

    it('x-message-ttl with a DLX - the expired message is republished to the DLX with x-death, no expiration and its payload', () => {
      const h = shard();
      h.declareQueue('work', { 'x-message-ttl': 1000, 'x-dead-letter-exchange': 'dead', 'x-dead-letter-routing-key': 'work.expired' });
      h.bind('amq.topic', 'work', 'jobs.*');
      h.setup();
      const props: MessageProperties = {
        contentType: 'text/plain',
        headers: { job: 'j-1', CC: ['cc.key'] },
        expiration: '5000',
        messageId: 'm-1',
      };
      h.publish('amq.topic', 'jobs.resize', 'payload-é', { props });
      expect(h.run()).toEqual([]);
      expect(vi.getTimerCount()).toBe(1); // endBatch armed the shard's one expiry timer

      advance(h, 999);
      expect(h.output()).toEqual([]);
      expect(h.depths()).toEqual({ work: 1 });

      advance(h, 20); // past the deadline by at most the wheel's tick
      const out = h.output(); // the timer callback commits the outbound ring itself
      expect(out).toHaveLength(1);
      const r = out[0] as Republish;
      expect(r).toMatchObject({
        kind: 'republish',
        connectionId: 0,
        token: 0,
        flags: 0,
        exchange: 'dead',
        routingKey: 'work.expired',
        payload: 'payload-é',
      });
      const headers = r.properties?.headers as Record<string, HeaderValue>;
      expect(headers['x-death']).toEqual([
        {
          count: 1,
          reason: 'expired',
          queue: 'work',
          time: Math.floor((CLOCK_START + 1000) / 1000),
          exchange: 'amq.topic',
          'routing-keys': ['jobs.resize', 'cc.key'],
          'original-expiration': '5000',
        },
      ]);
      expect(headers).toMatchObject({
        job: 'j-1',
        'x-first-death-reason': 'expired',
        'x-first-death-queue': 'work',
        'x-first-death-exchange': 'amq.topic',
        'x-last-death-reason': 'expired',
        'x-last-death-queue': 'work',
        'x-last-death-exchange': 'amq.topic',
      });
      expect(r.properties).toMatchObject({ contentType: 'text/plain', messageId: 'm-1' });
      expect(r.properties).not.toHaveProperty('expiration');
      expect(h.depths()).toEqual({ work: 0 });
      expect(h.stats('work').stats).toMatchObject({ expired: 1, deadLettered: 1 });
    });

    it('x-message-ttl - a per-message expiration shorter than the queue TTL wins', () => {
      const h = shard();
      h.declareQueue('q', { 'x-message-ttl': 10_000, 'x-dead-letter-exchange': 'dlx' });
      h.setup();
      h.publish('', 'q', 'short', { props: { expiration: '300' } });
      h.publish('', 'q', 'long');
      h.run();
      advance(h, 320);
      expect(republishes(h.output()).map((r) => r.payload)).toEqual(['short']);
      expect(h.depths()).toEqual({ q: 1 });
      advance(h, 10_000);
      expect(republishes(h.output()).map((r) => r.payload)).toEqual(['long']);
    });

    it('x-message-ttl - without a DLX the message is just dropped; a consumer arriving later gets nothing', () => {
      const h = shard();
      h.declareQueue('q', { 'x-message-ttl': 50 });
      h.setup();
      h.publish('', 'q', 'm');
      h.run();
      advance(h, 100);
      expect(h.output()).toEqual([]);
      h.subscribe(1, 1, 'q');
      expect(h.run()).toEqual([]);
      expect(h.stats('q').stats).toMatchObject({ expired: 1, deadLettered: 0 });
    });

    it('x-message-ttl 0 - a message no consumer takes at once is dead-lettered in the same batch', () => {
      const h = shard();
      h.declareQueue('q', { 'x-message-ttl': 0, 'x-dead-letter-exchange': 'dlx' });
      h.setup();
      h.publish('', 'q', 'now-or-never', { token: 1 });
      const out = h.run();
      expect(out.map((o) => o.kind).sort()).toEqual(['confirm', 'republish']);
      expect(republishes(out)).toMatchObject([{ exchange: 'dlx', routingKey: 'q', payload: 'now-or-never' }]);
      h.subscribe(1, 1, 'q');
      h.publish('', 'q', 'taken');
      expect(payloads(h.run())).toEqual(['taken']);
    });

    it('x-expires - an unused queue is deleted by the idle sweep with a queueDeleted event', () => {
      const h = shard();
      h.declareQueue('idle', { 'x-expires': 2000 });
      h.setup();
      advance(h, 1000);
      expect(h.output()).toEqual([]);
      advance(h, 1500);
      expect(h.output()).toEqual([
        { kind: 'manageReply', connectionId: 0, token: 0, status: 0, body: { event: 'queueDeleted', queue: 'idle' } },
      ]);
      expect(h.core.queueStats()).toEqual([]);
      h.core.close();
    });

    it('x-expires - a redeclare renews the lease, as in RabbitMQ (the main thread forwards every queue.declare)', () => {
      const h = shard();
      h.declareQueue('idle', { 'x-expires': 2000 });
      h.setup();
      advance(h, 1500);
      h.declareQueue('idle', { 'x-expires': 2000 });
      h.setup();
      advance(h, 1000); // 2500 ms after the first declare, 1000 ms after the redeclare
      expect(h.output()).toEqual([]);
      expect(h.depths()).toEqual({ idle: 0 });
      advance(h, 1500); // 2500 ms after the redeclare
      expect(h.output()).toEqual([
        { kind: 'manageReply', connectionId: 0, token: 0, status: 0, body: { event: 'queueDeleted', queue: 'idle' } },
      ]);
      h.core.close();
    });

    it('expiration - a per-message TTL still applies to a message requeued after going out at once to an idle client-ack consumer', () => {
      // Queue without x-message-ttl: the message's own expiration is the only TTL. It is delivered
      // at once (deliverNow), held past its expiry, then nacked with requeue: it must not be
      // delivered again, but expire (and be dead-lettered with reason expired).
      const h = shard();
      h.declareQueue('q', { 'x-dead-letter-exchange': 'dlx' });
      h.setup();
      h.subscribe(1, 1, 'q', { ack: 'client', prefetch: 1 });
      h.publish('', 'q', 'short-lived', { props: { expiration: '100' } });
      const [first] = deliveries(h.run());
      expect(first).toMatchObject({ payload: 'short-lived', redelivered: false });
      advance(h, 200);
      h.nack(1, first.tag, true);
      const out = h.run();
      advance(h, 20);
      out.push(...h.output());
      expect(who(out)).toEqual([]);
      expect(republishes(out).map((r) => [r.payload, (r.properties!.headers!['x-death'] as Array<{ reason: string }>)[0].reason])).toEqual([
        ['short-lived', 'expired'],
      ]);
    });
  });

  it('dead-letter cycle - a dead-lettered publish to a queue it already died in (automatically) is dropped', () => {
    const h = shard();
    h.declareQueue('q', { 'x-message-ttl': 0, 'x-dead-letter-exchange': 'amq.fanout' });
    h.declareQueue('audit');
    h.bind('amq.fanout', 'q', '');
    h.bind('amq.fanout', 'audit', '');
    h.setup();
    // A TTL-0 queue dead-letters to a fanout that routes back to it: the classic automatic cycle.
    h.publish('', 'q', 'loop');
    const [dead] = republishes(h.run());
    expect(dead).toMatchObject({ exchange: 'amq.fanout', payload: 'loop' });
    // The main thread routes the republish back as a publish carrying the dead-lettered flag.
    h.publish(dead.exchange, dead.routingKey, dead.payload, {
      props: dead.properties as MessageProperties,
      flags: PUBLISH_FLAG_DEAD_LETTERED,
      token: 5,
    });
    const out = h.run();
    // q is skipped (no second death, no republish); audit, not in the cycle, gets its copy.
    expect(out).toEqual([{ kind: 'confirm', connectionId: 1, token: 5, status: ConfirmStatus.ok, count: 1 }]);
    expect(h.depths()).toEqual({ q: 0, audit: 1 });
    expect(h.stats('q').stats).toMatchObject({ expired: 1 });
  });

  it('dead-letter cycle - the same x-death without the flag, or with a client rejection in the cycle, is delivered', () => {
    const h = shard();
    h.declareQueue('q');
    h.setup();
    const died = (reason: string): MessageProperties => ({
      headers: { 'x-death': [{ count: 1, reason, queue: 'q', time: 1, exchange: '', 'routing-keys': ['q'] }] },
    });
    h.publish('', 'q', 'not-flagged', { props: died('expired') });
    h.publish('', 'q', 'rejected-before', { props: died('rejected'), flags: PUBLISH_FLAG_DEAD_LETTERED });
    h.publish('', 'q', 'cycle', { props: died('expired'), flags: PUBLISH_FLAG_DEAD_LETTERED });
    h.run();
    h.subscribe(1, 1, 'q');
    expect(payloads(h.run())).toEqual(['not-flagged', 'rejected-before']);
  });
});

describe('shard core - a full outbound ring', () => {
  it('backpressure - the fast path meets a full ring: blocked, then everything arrives in order after flushPending', () => {
    const h = shard({ outCapacity: 4096 });
    h.declareQueue('q');
    h.setup();
    h.subscribe(1, 1, 'q');
    h.run();
    const N = 60;
    const body = (i: number): string => `m${String(i).padStart(3, '0')}-${'x'.repeat(150)}`;
    for (let i = 0; i < N; i++) h.publish('', 'q', body(i), { token: i + 1, props: { messageId: `id-${i}` } });
    const first = h.run();
    expect(h.core.blocked).toBe(true);
    expect(deliveries(first).length).toBeLessThan(N);
    const all = [...first, ...h.pump()];
    expect(h.core.blocked).toBe(false);
    const got = deliveries(all);
    expect(got.map((d) => d.payload)).toEqual(Array.from({ length: N }, (_, i) => body(i)));
    expect(got.map((d) => d.properties?.messageId)).toEqual(Array.from({ length: N }, (_, i) => `id-${i}`));
    expect(new Set(got.map((d) => d.tag)).size).toBe(N);
    const confirms = all.filter((o) => o.kind === 'confirm');
    expect(confirms.map((c) => (c as { token: number }).token)).toEqual(Array.from({ length: N }, (_, i) => i + 1));
    expect(confirms.every((c) => (c as { status: number }).status === ConfirmStatus.ok)).toBe(true);
    expect(h.stats('q')).toMatchObject({ depth: 0, unacked: 0 });
    expect(h.counters[CounterSlot.delivered]).toBe(N);
  });

  it('backpressure - client-ack deliveries and round robin survive a full ring; acks after the flush settle all', () => {
    const h = shard({ outCapacity: 4096 });
    h.declareQueue('q');
    h.setup();
    h.subscribe(1, 1, 'q', { ack: 'client' });
    h.subscribe(2, 1, 'q', { ack: 'client' });
    h.run();
    const N = 50;
    for (let i = 0; i < N; i++) h.publish('', 'q', `m${i}-${'y'.repeat(200)}`);
    const first = h.run();
    expect(h.core.blocked).toBe(true);
    const got = deliveries([...first, ...h.pump()]);
    expect(got.map((d) => d.payload.split('-')[0])).toEqual(Array.from({ length: N }, (_, i) => `m${i}`));
    expect(h.stats('q')).toMatchObject({ depth: 0, unacked: N });
    // Each connection got some; all tags are distinct.
    expect(new Set(got.map((d) => d.connectionId))).toEqual(new Set([1, 2]));
    expect(new Set(got.map((d) => d.tag)).size).toBe(N);
    for (const d of got) h.ack(d.connectionId, d.tag);
    expect(h.run()).toEqual([]);
    expect(h.stats('q').unacked).toBe(0);
  });

  it('backpressure - control records (pong, confirm, manageReply) wait in order behind a full ring', () => {
    const h = shard({ outCapacity: 4096 });
    h.declareQueue('q');
    h.setup();
    // Fill the outbound ring with queued deliveries first, then ask for control records.
    for (let i = 0; i < 30; i++) h.publish('', 'q', `m${i}-${'z'.repeat(300)}`);
    h.run();
    h.subscribe(1, 1, 'q');
    for (let t = 1; t <= 20; t++) h.writer.ping(t);
    h.publish('', 'nowhere', 'x', { token: 77 });
    const replyToken = h.declareQueue('q');
    const first = h.run();
    expect(h.core.blocked).toBe(true);
    const all = [...first, ...h.pump()];
    expect(payloads(all).map((p) => p.split('-')[0])).toEqual(Array.from({ length: 30 }, (_, i) => `m${i}`));
    const control = all.filter((o) => o.kind !== 'deliver');
    expect(control).toEqual([
      ...Array.from({ length: 20 }, (_, i) => ({ kind: 'pong', token: i + 1 })),
      { kind: 'confirm', connectionId: 1, token: 77, status: ConfirmStatus.ok, count: 1 },
      {
        kind: 'manageReply',
        connectionId: ADMIN,
        token: replyToken,
        status: 0,
        body: { messageCount: expect.any(Number), consumerCount: 1 },
      },
    ]);
  });

  it('backpressure - publishes arriving after the flush are not overtaken by, nor overtake, the stalled ones', () => {
    const h = shard({ outCapacity: 4096 });
    h.declareQueue('q');
    h.setup();
    h.subscribe(1, 1, 'q');
    h.run();
    const seen: string[] = [];
    let next = 0;
    for (let batch = 0; batch < 10; batch++) {
      for (let i = 0; i < 15; i++) h.publish('', 'q', `m${next++}-${'w'.repeat(120)}`);
      seen.push(...payloads(h.run()));
      seen.push(...payloads(h.pump())); // as the loop: no new input while blocked
    }
    expect(seen.map((p) => p.split('-')[0])).toEqual(Array.from({ length: next }, (_, i) => `m${i}`));
  });
});

describe('shard core - size limits', () => {
  it('limits - a message of the largest size config.ts allows, with a 255-byte exchange and routing key, is delivered', () => {
    // config.ts caps max-message-bytes at maxRecordPayload(ringBytes) - MAX_PUBLISH_HEADER, and both
    // rings of a shard have ringBytes. The publish record fits by construction; its deliver record
    // (32 fixed bytes against the publish's 24) must fit the outbound ring too.
    const capacity = 4096;
    const h = shard({ inCapacity: capacity, outCapacity: capacity });
    const exchange = 'e'.repeat(255);
    const key = 'k'.repeat(255);
    h.declareExchange(exchange, 'direct');
    h.declareQueue('q');
    h.bind(exchange, 'q', key);
    h.setup();
    h.subscribe(1, 1, 'q');
    h.run();
    const limit = maxRecordPayload(capacity) - InboundWriter.MAX_RECORD_OVERHEAD;
    h.publish(exchange, key, 'p'.repeat(limit));
    let out: Out[] = [];
    expect(() => {
      out = h.run();
    }).not.toThrow();
    expect(payloads(out)).toEqual(['p'.repeat(limit)]);
  });
});

describe('shard core - misc', () => {
  it('ping - each ping is answered by a pong with its token, in order', () => {
    const h = shard();
    h.writer.ping(1);
    h.writer.ping(0xffffffff);
    h.writer.ping(0);
    expect(h.run()).toEqual([
      { kind: 'pong', token: 1 },
      { kind: 'pong', token: 0xffffffff },
      { kind: 'pong', token: 0 },
    ]);
  });

  it('counters - inboundRecords counts every record drained', () => {
    const h = shard();
    h.declareQueue('q');
    h.writer.ping(1);
    h.publish('', 'q', 'm');
    h.run();
    expect(h.counters[CounterSlot.inboundRecords]).toBe(3);
  });

  it('trace - a trace record after a publish comes back right behind its deliveries, with the shard-in and shard-out times', () => {
    const h = shard();
    h.declareQueue('q');
    h.subscribe(7, 1, 'q');
    h.run();
    const before = monotonicMs();
    h.publish('', 'q', 'traced');
    h.writer.trace(before - 5);
    const out = h.run();
    const after = monotonicMs();
    expect(out.map((o) => o.kind)).toEqual(['deliver', 'traced']);
    const t = out[1] as Extract<Out, { kind: 'traced' }>;
    expect(t.frontInMs).toBe(before - 5);
    expect(t.shardInMs).toBeGreaterThanOrEqual(before);
    expect(t.shardOutMs).toBeGreaterThanOrEqual(t.shardInMs);
    expect(t.shardOutMs).toBeLessThanOrEqual(after);
    // The next batch stamps its own shard-in, not the previous batch's.
    h.publish('', 'q', 'later');
    h.writer.trace(monotonicMs());
    const next = h.run()[1] as Extract<Out, { kind: 'traced' }>;
    expect(next.shardInMs).toBeGreaterThanOrEqual(after);
  });

  it('onRecord - an unknown record kind throws (main and shard disagree on the codec)', () => {
    const h = shard();
    expect(() => h.core.onRecord(RecordKind.deliver, 0, 0)).toThrow(/unknown inbound record kind 64/);
  });
});

describe('shard core - slow client-ack topic subscribers (fake timers)', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  const privateQueue = (h: ShardHarness, name: string, policy: string): void => {
    h.declareQueue(
      name,
      { 'x-shardmq-topic-buffer': 3, 'x-shardmq-slow-consumer': policy, 'x-shardmq-slow-consumer-ms': 500 },
      { exclusive: true, autoDelete: true },
    );
    h.bind('amq.topic', name, 'ticks.#');
  };

  it('a subscriber that sits on its whole prefetch while its queue presses is slow after --slow-consumer-ms: the oldest go, the publishers go on', () => {
    const h = shard();
    privateQueue(h, 'sub-1', 'drop');
    h.setup();
    h.subscribe(1, 1, 'sub-1', { ack: 'client', prefetch: 2 });
    for (let i = 1; i <= 8; i++) h.publish('amq.topic', 'ticks.a', `m${i}`);
    const out = h.run();
    expect(payloads(out)).toEqual(['m1', 'm2']);
    expect(out.filter((o) => o.kind === 'flow')).toEqual([{ kind: 'flow', on: true }]);
    // Not yet: a subscriber that keeps up may sit at its prefetch for a while.
    advance(h, 400);
    expect(h.output()).toEqual([]);
    advance(h, 200);
    const later = h.output();
    expect(later.filter((o) => o.kind === 'dropped')).toEqual([{ kind: 'dropped', connectionId: 1, subscriptionId: 1, count: 3 }]);
    expect(later.filter((o) => o.kind === 'flow')).toEqual([{ kind: 'flow', on: false }]);
    expect(h.depths()).toEqual({ 'sub-1': 3 });
    // Still slow: more publishes past the bound drop at once instead of holding the publishers.
    for (let i = 9; i <= 10; i++) h.publish('amq.topic', 'ticks.a', `m${i}`);
    const more = h.run();
    expect(more.filter((o) => o.kind === 'dropped')).toEqual([{ kind: 'dropped', connectionId: 1, subscriptionId: 1, count: 2 }]);
    expect(more.filter((o) => o.kind === 'flow')).toEqual([]);
  });

  it('with --slow-consumer block it keeps holding the publishers; a subscriber that acks is never slow', () => {
    const h = shard();
    privateQueue(h, 'blocked', 'block');
    privateQueue(h, 'acking', 'drop');
    h.setup();
    h.subscribe(1, 1, 'blocked', { ack: 'client', prefetch: 1 });
    h.subscribe(2, 1, 'acking', { ack: 'client', prefetch: 100 });
    for (let i = 1; i <= 6; i++) h.publish('amq.topic', 'ticks.a', `m${i}`);
    expect(h.run().filter((o) => o.kind === 'flow')).toEqual([{ kind: 'flow', on: true }]);
    advance(h, 2000);
    expect(h.output().filter((o) => o.kind === 'dropped' || o.kind === 'flow')).toEqual([]);
    expect(h.depths()).toEqual({ blocked: 5, acking: 0 });
  });
});

describe('shard core - message gauges kept as messages move', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('gauges - ready and unacked totals equal a recount of every queue through random publishes, acks, requeues, TTLs, purges, deletions and closes', () => {
    const h = shard();
    const prng = new Prng(testSeed());
    const QUEUES = 12;
    const argsOf = (i: number): Record<string, unknown> =>
      i % 4 === 1
        ? { 'x-message-ttl': 50 }
        : i % 4 === 2
          ? { 'x-max-length': 5, 'x-overflow': 'drop-head' }
          : i % 4 === 3
            ? { 'x-max-priority': 3 }
            : {};
    const live = new Set<number>();
    for (let i = 0; i < QUEUES; i++) {
      h.declareQueue(`g${i}`, argsOf(i));
      live.add(i);
    }
    h.setup();
    /** Client-ack deliveries not yet settled, as [connection, tag]. */
    const open: Array<[number, number]> = [];
    const subs: Array<[number, number]> = [];
    let nextSub = 1;
    const check = (step: number): void => {
      const stats = h.core.queueStats();
      const counters = readCounters(h.counters);
      const ready = stats.reduce((n, q) => n + q.depth, 0);
      const unacked = stats.reduce((n, q) => n + q.unacked, 0);
      expect({ step, ready: counters.ready, unacked: counters.unacked }).toEqual({ step, ready, unacked });
      expect(h.core.heldMessages()).toBe(ready + unacked);
    };
    for (let step = 0; step < 1500; step++) {
      const q = prng.int(0, QUEUES - 1);
      const roll = prng.float();
      if (roll < 0.45) {
        const n = prng.int(1, 4);
        for (let k = 0; k < n; k++) h.publish('', `g${q}`, `m${step}.${k}`, { props: { priority: prng.int(0, 3) } });
      } else if (roll < 0.55 && live.has(q)) {
        const conn = prng.int(1, 4);
        const sub = nextSub++;
        const client = prng.chance(0.7);
        h.subscribe(conn, sub, `g${q}`, { ack: client ? 'client' : 'auto', prefetch: client ? prng.int(0, 3) : 0, credit: prng.int(0, 8) });
        subs.push([conn, sub]);
      } else if (roll < 0.7 && open.length > 0) {
        const [conn, tag] = open.splice(prng.int(0, open.length - 1), 1)[0];
        const r = prng.float();
        if (r < 0.6) h.ack(conn, tag);
        else h.nack(conn, tag, r < 0.85);
      } else if (roll < 0.75 && subs.length > 0) {
        const [conn, sub] = subs.splice(prng.int(0, subs.length - 1), 1)[0];
        h.writer.unsubscribe(conn, sub);
      } else if (roll < 0.78) {
        const conn = prng.int(1, 4);
        h.writer.connectionClosed(conn);
        for (let i = open.length - 1; i >= 0; i--) if (open[i][0] === conn) open.splice(i, 1);
        for (let i = subs.length - 1; i >= 0; i--) if (subs[i][0] === conn) subs.splice(i, 1);
      } else if (roll < 0.8 && live.has(q)) {
        h.manage({ op: 'purgeQueue', name: `g${q}` });
      } else if (roll < 0.83) {
        if (live.has(q)) {
          h.manage({ op: 'deleteQueue', name: `g${q}`, ifUnused: false, ifEmpty: false });
          live.delete(q);
        } else {
          h.declareQueue(`g${q}`, argsOf(q));
          live.add(q);
        }
      } else if (roll < 0.9) {
        advance(h, prng.int(1, 80)); // TTLs fire through the shard's timer
      } else {
        // Grant more credit to a random subscription (as the front does when a socket drains).
        if (subs.length > 0) {
          const [conn, sub] = subs[prng.int(0, subs.length - 1)];
          h.writer.credit(conn, sub, prng.int(1, 8), 1 << 20);
        }
      }
      for (const d of deliveries(h.run())) {
        if (d.tag > 0) open.push([d.connectionId, d.tag]);
      }
      check(step);
    }
    // Something happened on both sides of the books, so the comparison meant something.
    expect(readCounters(h.counters).delivered).toBeGreaterThan(100);
    expect(readCounters(h.counters).acked).toBeGreaterThan(20);
  });
});
