/**
 * Publish credit, FLUSH and DROPPED from the client's side, against a scripted server
 * (fake-server.ts) that grants exactly the credit each test says and records the ops it receives in
 * order: the client must never publish beyond its credit (the broker closes such a connection), and
 * what waits must go out in order, numbered in the order it reaches the wire.
 *
 * Negative checks ("nothing more was sent") use round trips instead of sleeps: the client writes
 * its ops in order on one socket, so once a request issued after some publishes is answered, the
 * server has read those publishes; see sync().
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { connect, SaturatedError, ConnectionClosedError } from '../../src/index.js';
import type { ClientLogger, ClientOptions, DroppedNotice, ShardmqClient, ShardmqError } from '../../src/index.js';
import { encodeProperties } from '../../src/protocol/properties.js';
import { INITIAL_PUBLISH_CREDIT, Opcode } from '../../src/protocol/ws-binary.js';
import { FakeServer, type FakeConnection, type PublishOp } from './fake-server.js';

const MiB = 1024 * 1024;

let server: FakeServer;
const clients: ShardmqClient[] = [];

beforeEach(async () => {
  server = await FakeServer.start();
});

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close().catch(() => undefined)));
  await server.stop();
});

async function open(options: ClientOptions = {}): Promise<{ client: ShardmqClient; conn: FakeConnection }> {
  const index = server.connections.length;
  const client = await connect(server.url, { reconnect: false, pingIntervalMs: 0, closeTimeoutMs: 50, ...options });
  clients.push(client);
  return { client, conn: await server.connection(index) };
}

/** One request/answer: everything the client wrote before it has reached the server. */
function roundTrip(client: ShardmqClient): Promise<void> {
  return client.declareExchange('amq.topic', 'topic', { passive: true });
}

/**
 * Two round trips. The first one's answer comes after anything the server sent before it (a
 * CREDIT), so by then the client has written what that CREDIT released; the second one, written
 * after those publishes, proves they have all reached the server.
 */
async function sync(client: ShardmqClient): Promise<void> {
  await roundTrip(client);
  await roundTrip(client);
}

const texts = (ops: PublishOp[]): string[] => ops.map((p) => p.payload.toString());
const range = (from: number, to: number, prefix: string): string[] => Array.from({ length: to - from }, (_, i) => `${prefix}${from + i}`);
const bytesOf = (strings: string[]): number => strings.reduce((n, s) => n + Buffer.byteLength(s), 0);

describe('client - publish credit', () => {
  it('credit - exactly the initial 1024 publishes go, then nothing until CREDIT, then exactly as many as it grants, in order', async () => {
    const { client, conn } = await open({ confirms: false });
    expect(INITIAL_PUBLISH_CREDIT).toEqual({ messages: 1024, bytes: MiB });
    expect(client.stats.publishCredit).toEqual({ messages: 1024, bytes: MiB });
    const n = 1500;
    for (let i = 0; i < n; i++) client.publishNoWait('/topic/c', `m${i}`);
    expect(client.stats.creditWaiting).toBe(n - 1024);
    expect(client.stats.publishCredit).toEqual({ messages: 0, bytes: MiB - bytesOf(range(0, 1024, 'm')) });
    await sync(client);
    expect(conn.publishes()).toHaveLength(1024);
    await sync(client); // still nothing without credit
    expect(conn.publishes()).toHaveLength(1024);

    conn.credit(100, 0); // plenty of byte credit is left: only the message count limits
    await expect.poll(() => conn.publishes().length).toBe(1124);
    await sync(client);
    expect(conn.publishes()).toHaveLength(1124);
    expect(client.stats.creditWaiting).toBe(n - 1124);
    expect(client.stats.publishCredit.messages).toBe(0);

    conn.credit(1000, 0);
    await expect.poll(() => conn.publishes().length).toBe(n);
    await sync(client);
    expect(conn.publishes()).toHaveLength(n);
    expect(texts(conn.publishes())).toEqual(range(0, n, 'm'));
    expect(client.stats).toMatchObject({ creditWaiting: 0, published: n, publishCredit: { messages: 1124 + 1000 - n } });
    // With credit left and nothing waiting, a publish goes straight out again.
    client.publishNoWait('/topic/c', 'after');
    expect(client.stats.creditWaiting).toBe(0);
    await sync(client);
    expect(texts(conn.publishes()).at(-1)).toBe('after');
  });

  it('credit - bytes: a message over the byte credit left waits (nothing overtakes it); a large one goes alone on any credit', async () => {
    const { client, conn } = await open({ confirms: false, maxFrameBytes: 4 * MiB });
    const sizes = (): number[] => conn.publishes().map((p) => p.payload.length);
    const body = (n: number, fill: number): Uint8Array => new Uint8Array(n).fill(fill);
    client.publishNoWait('/topic/b', body(600_000, 1)); // fits: 448,576 bytes left
    client.publishNoWait('/topic/b', body(500_000, 2)); // over what is left, within the window: waits
    client.publishNoWait('/topic/b', body(10, 3)); // would fit, but must not overtake it
    await sync(client);
    expect(sizes()).toEqual([600_000]);
    expect(client.stats).toMatchObject({ creditWaiting: 2, publishCredit: { messages: 1023, bytes: MiB - 600_000 } });

    conn.credit(0, 500_000 - (MiB - 600_000)); // exactly enough for the 500,000-byte one
    await expect.poll(sizes).toEqual([600_000, 500_000]);
    await sync(client);
    expect(sizes()).toHaveLength(2); // no byte credit left for the 10-byte one
    expect(client.stats.publishCredit).toEqual({ messages: 1022, bytes: 0 });
    conn.credit(0, 10);
    await expect.poll(sizes).toEqual([600_000, 500_000, 10]);

    // Over the 1 MiB window: with no byte credit at all it waits too…
    client.publishNoWait('/topic/b', body(2 * MiB, 4));
    client.publishNoWait('/topic/b', body(10, 5));
    await sync(client);
    expect(sizes()).toHaveLength(3);
    // …and one byte of credit lets it go, overdrawing, alone.
    conn.credit(0, 1);
    await expect.poll(() => sizes().length).toBe(4);
    await sync(client);
    expect(sizes()).toEqual([600_000, 500_000, 10, 2 * MiB]);
    expect(client.stats.publishCredit).toEqual({ messages: 1020, bytes: 1 - 2 * MiB });
    // CREDIT adds to the overdraft: 9 bytes after this one, still one short of the 10-byte message.
    conn.credit(0, 2 * MiB + 8);
    await sync(client);
    expect(sizes()).toHaveLength(4);
    expect(client.stats.publishCredit.bytes).toBe(9);
    conn.credit(0, 1);
    await expect.poll(() => sizes().length).toBe(5);
    expect(conn.publishes().map((p) => p.payload[0])).toEqual([1, 2, 3, 4, 5]);
    expect(client.stats.publishCredit).toEqual({ messages: 1019, bytes: 0 });

    // Within the window but over three quarters of it: it also goes on any credit, because the
    // broker may hold back up to a quarter of the credit it is owed, so waiting for it to be
    // covered could last forever.
    conn.credit(0, 1);
    await sync(client);
    client.publishNoWait('/topic/b', body(800_000, 6));
    await sync(client);
    expect(sizes()).toHaveLength(6);
    expect(client.stats.publishCredit).toEqual({ messages: 1018, bytes: 1 - 800_000 });

    // The properties block counts as well as the payload.
    conn.credit(0, 800_000 - 1 + 1000);
    await sync(client);
    const properties = { contentType: 'text/plain', headers: { k: 'v' } };
    client.publishNoWait('/topic/b', 'abc', { properties });
    expect(client.stats.publishCredit.bytes).toBe(1000 - 3 - encodeProperties(properties).length);
  });

  it('confirms - numbers follow the order publishes reach the wire, across waiting; each publish gets its own outcome', async () => {
    const { client, conn } = await open({ confirms: true, maxFrameBytes: 4 * MiB });
    const issued: string[] = [];
    const outcomes: Array<Promise<string>> = [];
    const pub = (label: string, payload: string | Uint8Array = label): void => {
      issued.push(label);
      outcomes.push(
        client.publish('/topic/s', payload).then(
          () => 'ack',
          (e: ShardmqError) => e.code,
        ),
      );
    };
    for (let i = 0; i < 1100; i++) pub(`s${i}`); // 1024 go, 76 wait
    await sync(client);
    expect(conn.publishes()).toHaveLength(1024);
    conn.credit(100, 0); // the 76 go, 24 messages of credit left
    await expect.poll(() => conn.publishes().length).toBe(1100);
    pub('A', new Uint8Array(600_000).fill(0x41)); // fits in what is left of the first MiB
    pub('B', new Uint8Array(600_000).fill(0x42)); // does not: waits for bytes…
    for (let i = 1100; i < 1110; i++) pub(`s${i}`); // …and these wait behind it despite the message credit
    await sync(client);
    expect(conn.publishes()).toHaveLength(1101);
    expect(client.stats.creditWaiting).toBe(11);
    expect(client.stats.unconfirmed).toBe(1101);
    conn.credit(0, MiB);
    await expect.poll(() => conn.publishes().length).toBe(1112);

    // As the broker does: the n-th PUBLISH on the connection is seq n. Nack every small one whose
    // index is a multiple of 7, ack the rest, settling from the last number down.
    const label = (p: PublishOp): string => (p.payload.length === 600_000 ? String.fromCharCode(p.payload[0]) : p.payload.toString());
    const received = conn.publishes().map(label);
    expect(received).toEqual(issued); // the wire order is the issue order
    const nacked = (l: string): boolean => l.startsWith('s') && Number(l.slice(1)) % 7 === 0;
    conn.send((w) => {
      for (let seq = received.length; seq >= 1; seq--) w.confirm(seq, false, nacked(received[seq - 1]));
    });
    expect(await Promise.all(outcomes)).toEqual(issued.map((l) => (nacked(l) ? 'saturated' : 'ack')));
    expect(client.stats.unconfirmed).toBe(0);
  });

  it('reconnect - publishes waiting for credit keep their place and go out on the new socket under its fresh credit, numbered from 1', async () => {
    const { client, conn } = await open({ confirms: true, reconnect: { initialDelayMs: 10, maxDelayMs: 20 } });
    const outcomes: Array<Promise<string>> = [];
    const pub = (text: string): number =>
      outcomes.push(
        client.publish('/topic/r', text).then(
          () => 'ack',
          (e: ShardmqError) => e.code,
        ),
      );
    for (let i = 0; i < 1100; i++) pub(`r${i}`);
    await sync(client);
    expect(conn.publishes()).toHaveLength(1024);
    const disconnected = new Promise((resolve) => client.once('disconnected', resolve));
    const reconnected = new Promise((resolve) => client.once('reconnected', resolve));
    conn.terminate();
    await disconnected;
    expect(client.stats).toMatchObject({ creditWaiting: 76, publishCredit: { messages: 0, bytes: 0 } });
    pub('late'); // issued while disconnected: after the ones waiting for credit
    const conn2 = await server.connection(1);
    await reconnected;
    await expect.poll(() => conn2.publishes().length).toBe(77);
    const firstPublish = conn2.ops.findIndex((o) => o.op === 'PUBLISH');
    expect(conn2.ops.findIndex((o) => o.op === 'CONFIRM_SELECT')).toBeLessThan(firstPublish);
    expect(texts(conn2.publishes())).toEqual([...range(1024, 1100, 'r'), 'late']);
    expect(client.stats).toMatchObject({ creditWaiting: 0, publishCredit: { messages: 1024 - 77 } });
    // Numbered from 1 on the new socket: nack seq 1 (r1024), ack 2–77 with one MULTIPLE.
    conn2.send((w) => w.confirm(1, false, true).confirm(77, true, false));
    const results = await Promise.all(outcomes);
    expect(results.slice(0, 1024).every((r) => r === 'connection_lost')).toBe(true);
    expect(results.slice(1024)).toEqual(['saturated', ...Array.from({ length: 76 }, () => 'ack')]);
  });

  it('bound - past maxPendingBytes waiting for credit, publishNoWait throws and publish rejects with SaturatedError; a waiting payload is a copy', async () => {
    const { client, conn } = await open({ confirms: false, maxPendingBytes: 10_000 });
    for (let i = 0; i < 1024; i++) client.publishNoWait('/topic/c', 'x');
    const destination = '/topic/c';
    const opSize = (payloadBytes: number): number => 8 + destination.length + payloadBytes; // a PUBLISH op without properties
    const buf = new Uint8Array(1000).fill(7);
    let accepted = 0;
    while (accepted * opSize(1000) + opSize(1000) <= 10_000) {
      client.publishNoWait(destination, buf);
      accepted++;
    }
    expect(accepted).toBe(9);
    buf.fill(9); // the caller reuses its buffer: what waits must not change
    expect(() => client.publishNoWait(destination, buf)).toThrow(SaturatedError);
    expect(() => client.publishNoWait(destination, buf)).toThrow(/flow control.*maxPendingBytes 10000/);
    await expect(client.publish(destination, buf)).rejects.toBeInstanceOf(SaturatedError);
    // What still fits under the bound is taken.
    client.publishNoWait(destination, new Uint8Array(10_000 - 9 * opSize(1000) - opSize(0)).fill(8));
    expect(client.stats.creditWaiting).toBe(10);
    expect(() => client.publishNoWait(destination, 'y')).toThrow(SaturatedError);

    conn.credit(100, 0);
    await expect.poll(() => conn.publishes().length).toBe(1034);
    expect(
      conn
        .publishes()
        .slice(1024, 1033)
        .every((p) => p.payload.length === 1000 && p.payload.every((b) => b === 7)),
    ).toBe(true);
    expect(conn.publishes()[1033].payload.every((b) => b === 8)).toBe(true);
    expect(client.stats.creditWaiting).toBe(0);
    client.publishNoWait(destination, buf); // room again
    await sync(client);
    expect(conn.publishes()).toHaveLength(1035);
  });

  it('close - publishes waiting for credit get closeTimeoutMs to be sent, then fail with ConnectionClosedError', async () => {
    const { client, conn } = await open({ confirms: false, closeTimeoutMs: 300 });
    const outcomes: Array<Promise<string>> = [];
    for (let i = 0; i < 1030; i++)
      outcomes.push(
        client.publish('/topic/x', `c${i}`).then(
          () => 'sent',
          (e: ShardmqError) => `${e.name}: ${e.message}`,
        ),
      );
    await sync(client);
    const closing = client.close();
    await expect(client.publish('/topic/x', 'late')).rejects.toBeInstanceOf(ConnectionClosedError);
    conn.credit(3, 0);
    await expect.poll(() => conn.publishes().length).toBe(1027);
    await closing;
    const results = await Promise.all(outcomes);
    expect(results.filter((r) => r === 'sent')).toHaveLength(1027);
    expect(results.slice(1027)).toEqual(
      Array.from({ length: 3 }, () => 'ConnectionClosedError: the client was closed before this operation could be sent'),
    );
    expect(texts(conn.publishes())).toEqual(range(0, 1027, 'c'));
  });
});

describe('client - flush', () => {
  it('flush - confirms off: FLUSH goes after every publish waiting for credit, and flush() resolves on its OK', async () => {
    const { client, conn } = await open({ confirms: false });
    conn.holdFlush = true;
    for (let i = 0; i < 1100; i++) client.publishNoWait('/topic/f', `f${i}`);
    let flushed = false;
    const flushing = client.flush().then(() => {
      flushed = true;
    });
    await sync(client);
    expect(conn.publishes()).toHaveLength(1024);
    expect(conn.ops.some((o) => o.op === 'FLUSH')).toBe(false);
    conn.credit(76, 0);
    await expect.poll(() => conn.ops.some((o) => o.op === 'FLUSH')).toBe(true);
    const flushAt = conn.ops.findIndex((o) => o.op === 'FLUSH');
    expect(conn.ops.slice(0, flushAt).filter((o) => o.op === 'PUBLISH')).toHaveLength(1100);
    expect(conn.ops.slice(flushAt).some((o) => o.op === 'PUBLISH')).toBe(false);
    await sync(client);
    expect(flushed).toBe(false); // held by the server
    const flush = conn.ops[flushAt] as { op: 'FLUSH'; requestId: number };
    conn.ok(flush.requestId, Opcode.FLUSH);
    await flushing;
    expect(flushed).toBe(true);
    expect(conn.ops.filter((o) => o.op === 'FLUSH')).toHaveLength(1);
  });

  it('flush - confirms on: resolves only after the publishes waiting for credit were written and confirmed; no FLUSH op', async () => {
    const { client, conn } = await open({ confirms: true });
    for (let i = 0; i < 1100; i++) client.publishNoWait('/topic/f', `f${i}`);
    let flushed = false;
    const flushing = client.flush().then(() => {
      flushed = true;
    });
    await sync(client);
    conn.send((w) => w.confirm(1024, true));
    await sync(client);
    expect(client.stats.unconfirmed).toBe(0);
    expect(flushed).toBe(false); // 76 publishes issued before flush() still wait for credit
    conn.credit(76, 0);
    await expect.poll(() => conn.publishes().length).toBe(1100);
    await sync(client);
    expect(flushed).toBe(false);
    conn.send((w) => w.confirm(1100, true));
    await flushing;
    expect(flushed).toBe(true);
    expect(conn.ops.some((o) => o.op === 'FLUSH')).toBe(false);
  });
});

describe('client - DROPPED', () => {
  it('dropped - counts per subscription and per client, fires the event with count/total/destination, logs a warning per notice', async () => {
    const logs: Array<{ level: string; obj: Record<string, unknown> }> = [];
    const logger: ClientLogger = {
      debug: (obj) => logs.push({ level: 'debug', obj }),
      info: (obj) => logs.push({ level: 'info', obj }),
      warn: (obj) => logs.push({ level: 'warn', obj }),
      error: (obj) => logs.push({ level: 'error', obj }),
    };
    const { client, conn } = await open({ logger });
    const sub = await client.subscribe('/topic/slow.#');
    const other = await client.subscribe('/queue/other');
    const notices: DroppedNotice[] = [];
    const listener = (n: DroppedNotice): void => {
      notices.push(n);
    };
    expect(sub.on('dropped', listener)).toBe(sub);
    conn.send((w) => w.dropped(sub.id, 5, '/topic/slow.#').dropped(999, 3, '/topic/gone').dropped(sub.id, 7, '/topic/slow.#'));
    await expect.poll(() => sub.brokerDropped).toBe(12);
    expect(notices).toEqual([
      { count: 5, total: 5, destination: '/topic/slow.#' },
      { count: 7, total: 12, destination: '/topic/slow.#' },
    ]);
    expect(client.stats.brokerDropped).toBe(12); // the unknown subscription's 3 are not counted
    expect(logs.filter((l) => l.level === 'warn').map((l) => l.obj)).toEqual([
      { subscriptionId: sub.id, destination: '/topic/slow.#', count: 5, total: 5 },
      { subscriptionId: sub.id, destination: '/topic/slow.#', count: 7, total: 12 },
    ]);
    expect(logs.filter((l) => l.level === 'debug').map((l) => l.obj)).toEqual([
      { subscriptionId: 999, count: 3, destination: '/topic/gone' },
    ]);

    // Sum over subscriptions; off() stops the events but not the counting; a throwing listener is logged.
    sub.off('dropped', listener);
    other.on('dropped', () => {
      throw new Error('listener bug');
    });
    conn.send((w) => w.dropped(sub.id, 1, '/topic/slow.#').dropped(other.id, 4, '/queue/other'));
    await expect.poll(() => client.stats.brokerDropped).toBe(17);
    expect(sub.brokerDropped).toBe(13);
    expect(other.brokerDropped).toBe(4);
    expect(notices).toHaveLength(2);
    expect(logs.filter((l) => l.level === 'error')).toEqual([
      { level: 'error', obj: { event: 'dropped', err: new Error('listener bug'), destination: '/queue/other' } },
    ]);
  });
});
