/**
 * The AMQP methods beyond the tutorials, each against what RabbitMQ does: transactions, channel.flow,
 * basic.recover, purge and delete with their conditions, exchange-to-exchange bindings, the server's
 * basic.cancel when a consumed queue is deleted, passive declares, and the "last declared queue" rule.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import amqp from 'amqplib';
import type { Broker } from '../../src/front/broker.js';
import { startBroker } from '../helpers/broker.js';
import { channelError } from '../helpers/amqp-client.js';
import { RawAmqp } from '../helpers/amqp-raw.js';

let broker: Broker;
let url: string;
beforeAll(async () => {
  broker = await startBroker({ shards: '2' });
  url = broker.amqpUrl ?? '';
});
afterAll(async () => {
  await broker?.stop();
});

const settle = (ms = 100): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function drain(ch: amqp.Channel, queue: string): Promise<string[]> {
  const out: string[] = [];
  for (;;) {
    const m = await ch.get(queue, { noAck: true });
    if (m === false) return out;
    out.push(m.content.toString());
  }
}

describe('e2e - AMQP transactions', () => {
  it('publishes and acks take effect at commit, not before, and rollback drops them', async () => {
    // amqplib has no tx helpers: the raw client speaks tx.select / commit / rollback.
    const raw = await RawAmqp.handshake(broker.amqpPort ?? 0);
    raw.send(1, 'channel.open', {});
    await raw.method('channel.open-ok');
    raw.send(1, 'queue.declare', {
      queue: 'tx.q',
      passive: false,
      durable: false,
      exclusive: false,
      autoDelete: false,
      noWait: false,
      arguments: {},
    });
    await raw.method('queue.declare-ok');
    raw.send(1, 'tx.select', {});
    await raw.method('tx.select-ok');
    const publish = (body: string): void => {
      raw.send(1, 'basic.publish', { exchange: '', routingKey: 'tx.q', mandatory: false, immediate: false });
      const header = Buffer.from([0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, body.length, 0, 0]);
      const frame = (type: number, payload: Buffer): Buffer => {
        const b = Buffer.alloc(8 + payload.length);
        b[0] = type;
        b.writeUInt16BE(1, 1);
        b.writeUInt32BE(payload.length, 3);
        payload.copy(b, 7);
        b[7 + payload.length] = 0xce;
        return b;
      };
      raw.write(frame(2, header));
      raw.write(frame(3, Buffer.from(body)));
    };
    const other = await amqp.connect(url);
    const och = await other.createChannel();
    publish('rolled back');
    raw.send(1, 'tx.rollback', {});
    await raw.method('tx.rollback-ok');
    publish('committed 1');
    publish('committed 2');
    await settle();
    expect((await och.checkQueue('tx.q')).messageCount).toBe(0);
    raw.send(1, 'tx.commit', {});
    await raw.method('tx.commit-ok');
    await settle();
    expect(await drain(och, 'tx.q')).toEqual(['committed 1', 'committed 2']);

    // Acks too wait for the commit: two deliveries, acked in the transaction, stay unacked until it commits.
    publish('to ack 1');
    publish('to ack 2');
    raw.send(1, 'tx.commit', {});
    await raw.method('tx.commit-ok');
    raw.send(1, 'basic.consume', {
      queue: 'tx.q',
      consumerTag: 'c',
      noLocal: false,
      noAck: false,
      exclusive: false,
      noWait: false,
      arguments: {},
    });
    await raw.method('basic.consume-ok');
    await raw.method('basic.deliver');
    const second = await raw.method('basic.deliver');
    const tag = (second.args as { deliveryTag: number }).deliveryTag;
    const unacked = async (): Promise<number> => {
      await settle();
      const q = (await (await fetch(`${broker.url}/v1/queues/tx.q`)).json()) as { messages_unacknowledged: number };
      return q.messages_unacknowledged;
    };
    expect(await unacked()).toBe(2);
    raw.send(1, 'basic.ack', { deliveryTag: tag, multiple: true });
    expect(await unacked()).toBe(2);
    raw.send(1, 'tx.rollback', {});
    await raw.method('tx.rollback-ok');
    expect(await unacked()).toBe(2);
    raw.send(1, 'basic.ack', { deliveryTag: tag, multiple: true });
    raw.send(1, 'tx.commit', {});
    await raw.method('tx.commit-ok');
    expect(await unacked()).toBe(0);
    raw.close();
    await other.close();
  });
});

describe('e2e - AMQP flow, recover, purge, delete', () => {
  it('channel.flow: active=true is answered flow-ok, active=false is 540 NOT_IMPLEMENTED as in RabbitMQ', async () => {
    const raw = await RawAmqp.handshake(broker.amqpPort ?? 0);
    raw.send(1, 'channel.open', {});
    await raw.method('channel.open-ok');
    raw.send(1, 'channel.flow', { active: true });
    const ok = await raw.method('channel.flow-ok');
    expect((ok.args as { active: boolean }).active).toBe(true);
    raw.send(1, 'channel.flow', { active: false });
    const close = await raw.connectionClose();
    expect([close.code, close.text]).toEqual([540, 'NOT_IMPLEMENTED - active=false']);
    raw.close();
  });

  it('basic.recover requeues every unacked delivery of the channel, redelivered', async () => {
    const connection = await amqp.connect(url);
    const ch = await connection.createChannel();
    const q = await ch.assertQueue('', { exclusive: true });
    const got: Array<[string, boolean]> = [];
    await ch.consume(q.queue, (m) => m && got.push([m.content.toString(), m.fields.redelivered]));
    for (const b of ['a', 'b']) ch.sendToQueue(q.queue, Buffer.from(b));
    for (let i = 0; i < 100 && got.length < 2; i++) await settle(10);
    await ch.recover();
    for (let i = 0; i < 100 && got.length < 4; i++) await settle(10);
    expect(got).toEqual([
      ['a', false],
      ['b', false],
      ['a', true],
      ['b', true],
    ]);
    ch.ackAll();
    await connection.close();
  });

  it('purge answers the count it removed; delete if-empty and if-unused refuse with 406 and change nothing', async () => {
    const connection = await amqp.connect(url);
    const ch = await connection.createChannel();
    await ch.assertQueue('methods.purge', { durable: false });
    for (let i = 0; i < 3; i++) ch.sendToQueue('methods.purge', Buffer.from(String(i)));
    await ch.checkQueue('methods.purge');
    expect((await ch.purgeQueue('methods.purge')).messageCount).toBe(3);
    ch.sendToQueue('methods.purge', Buffer.from('left'));
    await ch.checkQueue('methods.purge');
    const notEmpty = await channelError(connection, (c) => c.deleteQueue('methods.purge', { ifEmpty: true }));
    expect([notEmpty.code, notEmpty.message]).toEqual([406, expect.stringMatching(/PRECONDITION_FAILED/)]);
    const user = await connection.createChannel();
    await user.consume('methods.purge', () => {});
    const inUse = await channelError(connection, (c) => c.deleteQueue('methods.purge', { ifUnused: true }));
    expect(inUse.code).toBe(406);
    const check = await connection.createChannel();
    expect((await check.checkQueue('methods.purge')).consumerCount).toBe(1);
    await connection.close();
  });

  it('deleting a consumed queue sends the consumer basic.cancel (consumer_cancel_notify), and the channel lives on', async () => {
    const connection = await amqp.connect(url);
    const ch = await connection.createChannel();
    await ch.assertQueue('methods.doomed', { durable: false });
    const cancelled = new Promise<null>((resolve) => void ch.consume('methods.doomed', (m) => m === null && resolve(m)));
    const admin = await connection.createChannel();
    expect((await admin.deleteQueue('methods.doomed')).messageCount).toBe(0);
    expect(await cancelled).toBeNull();
    const q = await ch.assertQueue('', { exclusive: true });
    expect(q.queue).toMatch(/^amq\.gen-/);
    await connection.close();
  });
});

describe('e2e - AMQP declarations', () => {
  it('passive declares check existence (404 when absent); exchange-to-exchange bindings route; an empty queue name means the last declared', async () => {
    const connection = await amqp.connect(url);
    const ch = await connection.createChannel();
    const missingQueue = await channelError(connection, (c) => c.checkQueue('methods.none'));
    expect(missingQueue.code).toBe(404);
    const missingExchange = await channelError(connection, (c) => c.checkExchange('methods.nox'));
    expect(missingExchange.code).toBe(404);
    await ch.assertExchange('methods.upstream', 'topic', { durable: false });
    await ch.assertExchange('methods.downstream', 'fanout', { durable: false });
    await ch.bindExchange('methods.downstream', 'methods.upstream', 'orders.*');
    const q = await ch.assertQueue('', { exclusive: true });
    // queue.bind with an empty queue name: the channel's last declared queue.
    await ch.bindQueue('', 'methods.downstream', '');
    ch.publish('methods.upstream', 'orders.new', Buffer.from('through two exchanges'));
    ch.publish('methods.upstream', 'invoices.new', Buffer.from('not bound'));
    await settle();
    expect(await drain(ch, q.queue)).toEqual(['through two exchanges']);
    await ch.unbindExchange('methods.downstream', 'methods.upstream', 'orders.*');
    ch.publish('methods.upstream', 'orders.new', Buffer.from('after unbind'));
    await settle();
    expect(await drain(ch, q.queue)).toEqual([]);
    await ch.deleteExchange('methods.upstream');
    expect((await channelError(connection, (c) => c.checkExchange('methods.upstream'))).code).toBe(404);
    await connection.close();
  });
});
