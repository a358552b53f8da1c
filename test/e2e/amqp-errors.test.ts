/**
 * Bad input on the AMQP port gets RabbitMQ's exceptions: channel errors (403-406) close the
 * channel and leave the connection working; connection errors (501-505, 530, 540) close the
 * connection with connection.close and the code; a wrong protocol header gets ours back. Meanwhile a
 * healthy amqplib connection keeps publishing and consuming, and loses nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import amqp from 'amqplib';
import type { Broker } from '../../src/front/broker.js';
import { startBroker } from '../helpers/broker.js';
import { channelError } from '../helpers/amqp-client.js';
import { RawAmqp, rawFrame } from '../helpers/amqp-raw.js';
import { methodFrame } from '../../src/protocol/amqp/methods.js';
import { FrameType } from '../../src/protocol/amqp/constants.js';

let broker: Broker;
let url: string;
let port: number;

beforeAll(async () => {
  broker = await startBroker({ shards: '2', 'max-message-bytes': '65536' });
  url = broker.amqpUrl ?? '';
  port = broker.amqpPort ?? 0;
});
afterAll(async () => {
  await broker?.stop();
});

describe('e2e - AMQP channel exceptions close the channel, not the connection', () => {
  it('404, 403, 405 and 406 with RabbitMQ texts; the connection opens new channels after each', async () => {
    const connection = await amqp.connect(url);
    const cases: Array<[number, RegExp, (ch: amqp.Channel) => Promise<unknown> | void]> = [
      [404, /NOT_FOUND - no queue 'missing' in vhost '\/'/, (ch) => ch.checkQueue('missing')],
      [404, /NOT_FOUND - no queue 'missing'/, (ch) => ch.consume('missing', () => {})],
      [404, /NOT_FOUND - no exchange 'nope'/, (ch) => ch.publish('nope', 'k', Buffer.from('x'))],
      [403, /ACCESS_REFUSED .*reserved prefix 'amq\.\*'/, (ch) => ch.assertExchange('amq.mine', 'direct')],
      [
        406,
        /PRECONDITION_FAILED - inequivalent arg 'durable'/,
        async (ch) => {
          await ch.assertQueue('errs.q', { durable: false });
          await ch.assertQueue('errs.q', { durable: true });
        },
      ],
      [406, /PRECONDITION_FAILED - unknown delivery tag 42/, (ch) => ch.ack({ fields: { deliveryTag: 42 } } as amqp.Message)],
      [406, /message size 70000 is larger than configured max size 65536/, (ch) => ch.sendToQueue('errs.q', Buffer.alloc(70_000))],
      [406, /invalid expiration/, (ch) => ch.sendToQueue('errs.q', Buffer.from('x'), { expiration: 'soon' })],
    ];
    for (const [code, text, act] of cases) {
      const err = await channelError(connection, act);
      expect(err.code, String(text)).toBe(code);
      expect(err.message).toMatch(text);
    }
    // 405: another connection's exclusive queue.
    const owner = await amqp.connect(url);
    const och = await owner.createChannel();
    const mine = await och.assertQueue('', { exclusive: true });
    const locked = await channelError(connection, (ch) => ch.consume(mine.queue, () => {}));
    expect(locked.code).toBe(405);
    expect(locked.message).toMatch(/RESOURCE_LOCKED - cannot obtain exclusive access to locked queue/);
    // The connection survived every one of them.
    const ch = await connection.createChannel();
    const q = await ch.assertQueue('', { exclusive: true });
    ch.sendToQueue(q.queue, Buffer.from('still here'));
    const got = await new Promise<string>(
      (resolve) => void ch.consume(q.queue, (m) => m && resolve(m.content.toString()), { noAck: true }),
    );
    expect(got).toBe('still here');
    await owner.close();
    await connection.close();
  });
});

describe('e2e - AMQP exclusive consumers', () => {
  it("an exclusive consumer has the queue to itself: others get 403 'in exclusive use' until it cancels", async () => {
    const a = await amqp.connect(url);
    const b = await amqp.connect(url);
    const ach = await a.createChannel();
    await ach.assertQueue('excl.q', { durable: false });
    const mine = await ach.consume('excl.q', () => {}, { exclusive: true });
    const refused = await channelError(b, (ch) => ch.consume('excl.q', () => {}));
    expect([refused.code, refused.message]).toEqual([
      403,
      expect.stringMatching(/ACCESS_REFUSED - queue 'excl.q' in vhost '\/' in exclusive use/),
    ]);
    // basic.get is no consumer: it still reads the queue.
    const bch = await b.createChannel();
    expect(await bch.get('excl.q', { noAck: true })).toBe(false);
    await ach.cancel(mine.consumerTag);
    const got = new Promise<string>((resolve) => void bch.consume('excl.q', (m) => m && resolve(m.content.toString()), { noAck: true }));
    ach.sendToQueue('excl.q', Buffer.from('now yours'));
    expect(await got).toBe('now yours');
    await a.close();
    await b.close();
  });

  it('an exclusive consume on a queue that has a consumer is 403; with no-wait the channel closes the same way', async () => {
    const a = await amqp.connect(url);
    const ach = await a.createChannel();
    await ach.assertQueue('excl.busy', { durable: false });
    await ach.consume('excl.busy', () => {});
    const refused = await channelError(a, (ch) => ch.consume('excl.busy', () => {}, { exclusive: true }));
    expect(refused.code).toBe(403);
    const c = await RawAmqp.handshake(port);
    c.send(1, 'channel.open', {});
    await c.method('channel.open-ok');
    c.send(1, 'basic.consume', {
      queue: 'excl.busy',
      consumerTag: 'x',
      noLocal: false,
      noAck: true,
      exclusive: true,
      noWait: true,
      arguments: {},
    });
    const close = await c.channelClose();
    expect([close.code, close.text]).toEqual([403, expect.stringMatching(/in exclusive use/)]);
    c.close();
    await a.close();
  });

  it('messages already queued arrive after consume-ok, all of them, in order', async () => {
    const connection = await amqp.connect(url);
    const ch = await connection.createChannel();
    await ch.assertQueue('excl.backlog', { durable: false });
    for (let i = 0; i < 500; i++) ch.sendToQueue('excl.backlog', Buffer.from(String(i)));
    await ch.checkQueue('excl.backlog');
    const got: number[] = [];
    await ch.consume('excl.backlog', (m) => m && got.push(Number(m.content.toString())), { noAck: true, exclusive: true });
    const deadline = Date.now() + 5000;
    while (got.length < 500 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(got).toEqual(Array.from({ length: 500 }, (_, i) => i));
    await connection.close();
  });
});

describe('e2e - AMQP connection exceptions', () => {
  it('a wrong protocol header is answered with AMQP 0-9-1 and the socket closes', async () => {
    for (const header of ['AMQP\x00\x00\x09\x00', 'HTTP/1.1 ', 'AMQP\x01\x01\x00\x09']) {
      const c = await RawAmqp.open(port);
      c.write(Buffer.from(header, 'latin1'));
      await c.ended;
      expect(c.received.toString('latin1'), JSON.stringify(header)).toBe('AMQP\x00\x00\x09\x01');
    }
  });

  const connectionErrors: Array<[string, number, (c: RawAmqp) => void]> = [
    [
      'a wrong frame-end byte is 501 FRAME_ERROR',
      501,
      (c) => c.write(rawFrame(FrameType.method, 0, new Uint8Array([0, 10, 0, 40, 1, 0x2f, 0]), 0x00)),
    ],
    ['a frame larger than frame_max is 501', 501, (c) => c.write(rawFrame(FrameType.body, 1, new Uint8Array(200_000)))],
    ['an unknown frame type is 501', 501, (c) => c.write(rawFrame(7, 0, new Uint8Array(4)))],
    ['a heartbeat on channel 1 is 501', 501, (c) => c.write(rawFrame(FrameType.heartbeat, 1, new Uint8Array(0)))],
    [
      'a method on a channel never opened is 504 CHANNEL_ERROR',
      504,
      (c) => c.send(3, 'basic.qos', { prefetchSize: 0, prefetchCount: 1, global: false }),
    ],
    [
      'channel.open twice is 504',
      504,
      (c) => {
        c.send(1, 'channel.open', {});
        c.send(1, 'channel.open', {});
      },
    ],
    [
      'content without basic.publish is 505 UNEXPECTED_FRAME',
      505,
      (c) => {
        c.send(1, 'channel.open', {});
        c.write(rawFrame(FrameType.header, 1, Buffer.from([0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0])));
      },
    ],
    [
      'a method where content was due is 505',
      505,
      (c) => {
        c.send(1, 'channel.open', {});
        c.send(1, 'basic.publish', { exchange: '', routingKey: 'x', mandatory: false, immediate: false });
        c.send(1, 'basic.qos', { prefetchSize: 0, prefetchCount: 1, global: false });
      },
    ],
    ['a truncated method is 502 SYNTAX_ERROR', 502, (c) => c.write(rawFrame(FrameType.method, 0, new Uint8Array([0, 10])))],
    ['an unknown method is 503 COMMAND_INVALID or 540', 503, (c) => c.write(rawFrame(FrameType.method, 0, new Uint8Array([0, 99, 0, 99])))],
    [
      'a server-only method from the client is 503',
      503,
      (c) => {
        c.send(1, 'channel.open', {});
        c.write(methodFrame(1, 'basic.deliver', { consumerTag: 't', deliveryTag: 1, redelivered: false, exchange: '', routingKey: 'k' }));
      },
    ],
  ];
  for (const [name, code, act] of connectionErrors) {
    it(name, async () => {
      const c = await RawAmqp.handshake(port);
      act(c);
      const close = await c.connectionClose();
      expect(close.code).toBe(code);
      c.send(0, 'connection.close-ok', {});
      await c.ended;
    });
  }

  it('a vhost other than / is 530 NOT_ALLOWED', async () => {
    const c = await RawAmqp.open(port);
    c.startFrames();
    c.write(Buffer.from('AMQP\x00\x00\x09\x01', 'latin1'));
    await c.method('connection.start');
    c.send(0, 'connection.start-ok', {
      clientProperties: {},
      mechanism: 'PLAIN',
      response: Buffer.from('\0guest\0guest'),
      locale: 'en_US',
    });
    await c.method('connection.tune');
    c.send(0, 'connection.tune-ok', { channelMax: 0, frameMax: 131072, heartbeat: 0 });
    c.send(0, 'connection.open', { virtualHost: '/tenant' });
    const close = await c.connectionClose();
    expect(close.code).toBe(530);
    expect(close.text).toMatch(/NOT_ALLOWED - vhost '\/tenant' not found/);
    c.close();
  });

  it('a client that stops sending heartbeats is dropped after two intervals', async () => {
    const c = await RawAmqp.handshake(port, { heartbeat: 1 });
    const started = Date.now();
    // The broker sends its own heartbeats meanwhile.
    await c.frame((f) => f.type === FrameType.heartbeat, 3000);
    await c.ended;
    const waited = Date.now() - started;
    expect(waited).toBeGreaterThan(1500);
    expect(waited).toBeLessThan(5000);
  });
});

describe('e2e - AMQP frame fuzzer', () => {
  /** Connection exception codes a client can provoke by what it sends (never 541 INTERNAL_ERROR). */
  const CLIENT_FAULTS = new Set([501, 502, 503, 504, 505, 530, 540]);
  const CHANNEL_FAULTS = new Set([403, 404, 405, 406]);

  it('random, truncated and mutated frames after the handshake: a precise exception each time, never a crash or 541', async () => {
    let seed = 0x5eed;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed % n;
    };
    const valid = [
      methodFrame(1, 'channel.open', {}),
      methodFrame(1, 'queue.declare', {
        queue: 'fuzz.q',
        passive: false,
        durable: false,
        exclusive: false,
        autoDelete: false,
        noWait: false,
        arguments: { 'x-max-length': 10 },
      }),
      methodFrame(1, 'basic.publish', { exchange: '', routingKey: 'fuzz.q', mandatory: true, immediate: false }),
      rawFrame(
        FrameType.header,
        1,
        Buffer.from([
          0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0x90, 0, 10, 0x61, 0x70, 0x70, 0x6c, 0x69, 0x63, 0x61, 0x74, 0x69, 0x6f, 0x6e, 0, 0, 0, 0,
        ]),
      ),
      rawFrame(FrameType.body, 1, Buffer.from('abc')),
    ];
    const stream = Buffer.concat(valid);
    const outcomes = new Map<string, number>();
    for (let round = 0; round < 60; round++) {
      const c = await RawAmqp.handshake(port);
      const bytes = Buffer.from(stream);
      const kind = round % 3;
      let input: Buffer;
      if (kind === 0) {
        input = Buffer.alloc(1 + rand(64));
        for (let i = 0; i < input.length; i++) input[i] = rand(256);
      } else if (kind === 1) {
        input = bytes.subarray(0, 1 + rand(bytes.length - 1));
      } else {
        input = bytes;
        for (let k = 0; k < 1 + rand(4); k++) input[rand(input.length)] = rand(256);
      }
      c.write(input);
      // Whatever it was, the connection either ends with an exception, or stays usable.
      c.send(9, 'channel.open', {});
      let outcome: string;
      try {
        const f = await c.frame(
          (x) => x.method?.name === 'connection.close' || (x.method?.name === 'channel.open-ok' && x.channel === 9),
          3000,
        );
        if (f.method?.name === 'connection.close') {
          const code = (f.method.args as { replyCode: number }).replyCode;
          expect(CLIENT_FAULTS.has(code), `round ${round}: connection.close ${code}`).toBe(true);
          outcome = `close ${code}`;
        } else {
          outcome = 'alive';
        }
      } catch {
        // A truncated frame leaves the broker waiting for the rest (channel 9's open is inside it).
        outcome = 'waiting';
      }
      for (const f of c.frames) {
        if (f.method?.name === 'channel.close') {
          const code = (f.method.args as { replyCode: number }).replyCode;
          expect(CHANNEL_FAULTS.has(code), `round ${round}: channel.close ${code}`).toBe(true);
        }
      }
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
      c.close();
    }
    // The fuzzer reached the exceptions, not only the happy path.
    expect([...outcomes.keys()].some((k) => k.startsWith('close 50'))).toBe(true);
    // And the broker serves a clean client after all of it.
    const connection = await amqp.connect(url);
    const ch = await connection.createChannel();
    const q = await ch.assertQueue('', { exclusive: true });
    ch.sendToQueue(q.queue, Buffer.from('after the fuzz'));
    const got = await new Promise<string>(
      (resolve) => void ch.consume(q.queue, (m) => m && resolve(m.content.toString()), { noAck: true }),
    );
    expect(got).toBe('after the fuzz');
    await connection.close();
  }, 60_000);

  it('huge and deeply nested argument tables are 502 SYNTAX_ERROR, not a stack overflow', async () => {
    // Written by hand: the project's own encoder refuses to build such tables.
    const table = (body: Buffer): Buffer => Buffer.concat([u32(body.length), body]);
    const u32 = (n: number): Buffer => {
      const b = Buffer.alloc(4);
      b.writeUInt32BE(n);
      return b;
    };
    const key = (k: string): Buffer => Buffer.concat([Buffer.from([k.length]), Buffer.from(k)]);
    const wideEntries: Buffer[] = [];
    for (let i = 0; i < 5000; i++) wideEntries.push(Buffer.concat([key(`k${i}`), Buffer.from('I'), u32(i)]));
    const wide = table(Buffer.concat(wideEntries));
    let deep = table(Buffer.concat([key('leaf'), Buffer.from('I'), u32(1)]));
    for (let i = 0; i < 10_000; i++) deep = table(Buffer.concat([key('d'), Buffer.from('F'), deep]));
    for (const args of [wide, deep]) {
      const c = await RawAmqp.handshake(port);
      c.send(1, 'channel.open', {});
      await c.method('channel.open-ok');
      // queue.declare: class 50, method 10, ticket, queue 'fuzz.tables', flags, then the arguments table.
      const payload = Buffer.concat([Buffer.from([0, 50, 0, 10, 0, 0]), key('fuzz.tables'), Buffer.from([0]), args]);
      c.write(rawFrame(FrameType.method, 1, payload));
      expect((await c.connectionClose()).code).toBe(502);
      c.close();
    }
  });
});

describe('e2e - a bad AMQP connection never disturbs another', () => {
  it('2,000 messages through a healthy connection arrive whole while 40 broken connections come and go', async () => {
    const healthy = await amqp.connect(url);
    const ch = await healthy.createConfirmChannel();
    const q = await ch.assertQueue('', { exclusive: true });
    const got: number[] = [];
    await ch.consume(q.queue, (m) => m && got.push(Number(m.content.toString())), { noAck: true });
    const total = 2000;
    let sent = 0;
    const publishing = (async () => {
      while (sent < total) {
        for (let i = 0; i < 100; i++) ch.sendToQueue(q.queue, Buffer.from(String(sent++)));
        await ch.waitForConfirms();
      }
    })();
    const vandals = Array.from({ length: 40 }, async (_, i) => {
      const c = await RawAmqp.handshake(port);
      c.write(i % 2 === 0 ? rawFrame(FrameType.method, 0, new Uint8Array([1, 2, 3]), 0x11) : Buffer.from('garbage garbage garbage'));
      await c.ended;
    });
    await Promise.all([publishing, ...vandals]);
    const deadline = Date.now() + 5000;
    while (got.length < total && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(got).toEqual(Array.from({ length: total }, (_, i) => i));
    await healthy.close();
  });
});
