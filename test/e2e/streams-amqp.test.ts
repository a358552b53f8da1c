/**
 * Stream queues driven by amqplib as RabbitMQ's stream tutorial does: declared with x-queue-type
 * stream, published with confirms, consumed with a prefetch, manual acks and x-stream-offset.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import amqp from 'amqplib';
import type { Broker } from '../../src/front/broker.js';
import { startBroker } from '../helpers/broker.js';

let broker: Broker;
let url: string;
beforeAll(async () => {
  broker = await startBroker({ shards: '2' });
  url = broker.amqpUrl ?? '';
});
afterAll(async () => {
  await broker?.stop();
});

/** Consumes `n` messages of `queue` from `offset` with manual acks; resolves with [offset, body] pairs. */
async function consume(ch: amqp.Channel, queue: string, offset: unknown, n: number): Promise<Array<[number, string]>> {
  const got: Array<[number, string]> = [];
  let done: () => void = () => undefined;
  const all = new Promise<void>((resolve) => {
    done = resolve;
  });
  const { consumerTag } = await ch.consume(
    queue,
    (m) => {
      if (m === null) return;
      got.push([Number(m.properties.headers?.['x-stream-offset']), m.content.toString()]);
      ch.ack(m);
      if (got.length === n) done();
    },
    { noAck: false, arguments: { 'x-stream-offset': offset } },
  );
  await Promise.race([all, new Promise((r) => setTimeout(r, 10_000))]);
  await ch.cancel(consumerTag);
  return got;
}

describe('e2e - AMQP stream queues (amqplib)', () => {
  it('publishes with confirms into a stream and reads it back from first and from an offset, acking, as often as asked', async () => {
    const conn = await amqp.connect(url);
    try {
      const ch = await conn.createConfirmChannel();
      await ch.assertQueue('events.stream', { durable: true, arguments: { 'x-queue-type': 'stream' } });
      for (let i = 0; i < 2000; i++) ch.sendToQueue('events.stream', Buffer.from(`event ${i}`));
      await ch.waitForConfirms();
      const reader = await conn.createChannel();
      await reader.prefetch(100);
      const all = await consume(reader, 'events.stream', 'first', 2000);
      expect(all).toEqual(Array.from({ length: 2000 }, (_, i) => [i, `event ${i}`]));
      const again = await consume(reader, 'events.stream', 1500, 500);
      expect(again.map(([o]) => o)).toEqual(Array.from({ length: 500 }, (_, i) => 1500 + i));
    } finally {
      await conn.close();
    }
  });

  it('a consumer that does not ack gets its prefetch and no more; acking lets it read on', async () => {
    const conn = await amqp.connect(url);
    try {
      const ch = await conn.createChannel();
      await ch.assertQueue('held.stream', { durable: true, arguments: { 'x-queue-type': 'stream' } });
      for (let i = 0; i < 100; i++) ch.sendToQueue('held.stream', Buffer.from(String(i)));
      await ch.prefetch(10);
      const held: amqp.ConsumeMessage[] = [];
      await ch.consume('held.stream', (m) => m !== null && held.push(m), { noAck: false, arguments: { 'x-stream-offset': 'first' } });
      await new Promise((r) => setTimeout(r, 300));
      expect(held.length).toBe(10);
      ch.ack(held[9], true); // multiple: the ten before it too
      await new Promise((r) => setTimeout(r, 300));
      expect(held.length).toBe(20);
      expect(held.map((m) => Number(m.properties.headers?.['x-stream-offset']))).toEqual(Array.from({ length: 20 }, (_, i) => i));
    } finally {
      await conn.close();
    }
  });

  it('refuses what RabbitMQ refuses: a bad x-stream-offset (channel error), a changed x-queue-type, and basic.get and purge (540, a connection error as in RabbitMQ)', async () => {
    const setupConn = await amqp.connect(url);
    const setup = await setupConn.createChannel();
    await setup.assertQueue('strict.stream', { durable: true, arguments: { 'x-queue-type': 'stream' } });
    await setupConn.close();
    /** Runs `f` on a channel of a connection of its own; returns the errors the channel or connection reported. */
    const attempt = async (f: (ch: amqp.Channel) => Promise<unknown>): Promise<string> => {
      const conn = await amqp.connect(url);
      const errors: string[] = [];
      conn.on('error', (e: Error) => errors.push(e.message));
      const ch = await conn.createChannel();
      ch.on('error', (e: Error) => errors.push(e.message));
      try {
        await f(ch);
        await new Promise((r) => setTimeout(r, 200));
      } catch (e) {
        errors.push((e as Error).message);
      }
      await conn.close().catch(() => undefined);
      return errors.join(' | ');
    };
    expect(await attempt((ch) => ch.consume('strict.stream', () => undefined, { arguments: { 'x-stream-offset': 'begin' } }))).toMatch(
      /PRECONDITION_FAILED.*invalid x-stream-offset "begin"/,
    );
    expect(await attempt((ch) => ch.assertQueue('strict.stream', { durable: true }))).toMatch(
      /PRECONDITION_FAILED.*inequivalent arg 'x-queue-type'/,
    );
    expect(await attempt((ch) => ch.get('strict.stream'))).toMatch(/540.*basic\.get is not supported by stream queue/);
    expect(await attempt((ch) => ch.purgeQueue('strict.stream'))).toMatch(/540.*purge is not supported by stream queue/);
    // The broker still serves the stream: a publish lands at the next offset.
    const conn = await amqp.connect(url);
    try {
      const ch = await conn.createConfirmChannel();
      ch.sendToQueue('strict.stream', Buffer.from('after'));
      await ch.waitForConfirms();
      const info = (await (await fetch(`${broker.url}/v1/streams/strict.stream`)).json()) as Record<string, number>;
      expect(info.next_offset).toBe(1);
    } finally {
      await conn.close();
    }
  });
});
