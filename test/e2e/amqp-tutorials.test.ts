/**
 * The RabbitMQ tutorials (https://www.rabbitmq.com/tutorials), each written the way the tutorial
 * writes it with amqplib, against the broker's AMQP port: hello world, work queues, publish /
 * subscribe, routing, topics, RPC, publisher confirms.
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
  await broker.stop();
});

/** Resolves with the first `n` messages a consumer callback gathers, or rejects after `ms`. */
function collect<T>(n: number, ms = 5000): { push: (v: T) => void; done: Promise<T[]> } {
  const got: T[] = [];
  let resolve!: (v: T[]) => void;
  let reject!: (e: Error) => void;
  const done = new Promise<T[]>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  const timer = setTimeout(
    () => reject(new Error(`only ${got.length} of ${n} messages in ${ms} ms: ${JSON.stringify(got).slice(0, 300)}`)),
    ms,
  );
  return {
    push: (v) => {
      got.push(v);
      if (got.length === n) {
        clearTimeout(timer);
        resolve(got);
      }
    },
    done,
  };
}

describe('RabbitMQ tutorial 1: hello world', () => {
  it('a producer sends to a named queue, a consumer receives it', async () => {
    const connection = await amqp.connect(url);
    const channel = await connection.createChannel();
    const queue = 'hello';
    await channel.assertQueue(queue, { durable: false });
    channel.sendToQueue(queue, Buffer.from('Hello World!'));

    const consumer = await amqp.connect(url);
    const ch2 = await consumer.createChannel();
    await ch2.assertQueue(queue, { durable: false });
    const got = collect<string>(1);
    await ch2.consume(queue, (msg) => msg && got.push(msg.content.toString()), { noAck: true });
    expect(await got.done).toEqual(['Hello World!']);
    await connection.close();
    await consumer.close();
  });
});

describe('RabbitMQ tutorial 2: work queues', () => {
  it('prefetch(1) + manual ack: tasks go round robin, and a worker that dies unacked hands its task to the other', async () => {
    const producer = await amqp.connect(url);
    const pch = await producer.createChannel();
    const queue = 'task_queue';
    await pch.assertQueue(queue, { durable: true });

    const workerA = await amqp.connect(url);
    const a = await workerA.createChannel();
    await a.assertQueue(queue, { durable: true });
    await a.prefetch(1);
    const gotA = collect<string>(1);
    // Worker A takes its first task and never acks it (it "crashes" below).
    await a.consume(queue, (msg) => msg && gotA.push(msg.content.toString()), { noAck: false });

    const workerB = await amqp.connect(url);
    const b = await workerB.createChannel();
    await b.prefetch(1);
    const gotB = collect<{ body: string; redelivered: boolean }>(4);
    await b.consume(
      queue,
      (msg) => {
        if (msg === null) return;
        gotB.push({ body: msg.content.toString(), redelivered: msg.fields.redelivered });
        b.ack(msg);
      },
      { noAck: false },
    );
    for (let i = 1; i <= 4; i++) pch.sendToQueue(queue, Buffer.from(`task ${i}`), { persistent: true });
    const [taskOfA] = await gotA.done;
    // A holds one task unacked; B (prefetch 1, acking) gets the other three.
    await new Promise((r) => setTimeout(r, 200));
    await workerA.close();
    const atB = await gotB.done;
    expect(atB.map((m) => m.body).sort()).toEqual(['task 1', 'task 2', 'task 3', 'task 4']);
    expect(atB.find((m) => m.body === taskOfA)?.redelivered).toBe(true);
    expect(atB.filter((m) => m.redelivered)).toHaveLength(1);
    await producer.close();
    await workerB.close();
  });
});

describe('RabbitMQ tutorial 3: publish/subscribe', () => {
  it('a fanout exchange copies every log line to two exclusive server-named queues', async () => {
    const subscribers = await Promise.all(
      [1, 2].map(async () => {
        const connection = await amqp.connect(url);
        const channel = await connection.createChannel();
        await channel.assertExchange('logs', 'fanout', { durable: false });
        const q = await channel.assertQueue('', { exclusive: true });
        expect(q.queue).toMatch(/^amq\.gen-/);
        await channel.bindQueue(q.queue, 'logs', '');
        const got = collect<string>(3);
        await channel.consume(q.queue, (msg) => msg && got.push(msg.content.toString()), { noAck: true });
        return { connection, got };
      }),
    );
    const emitter = await amqp.connect(url);
    const ch = await emitter.createChannel();
    await ch.assertExchange('logs', 'fanout', { durable: false });
    for (const line of ['info: one', 'warning: two', 'error: three']) ch.publish('logs', '', Buffer.from(line));
    for (const s of subscribers) expect(await s.got.done).toEqual(['info: one', 'warning: two', 'error: three']);
    for (const s of subscribers) await s.connection.close();
    await emitter.close();
  });
});

describe('RabbitMQ tutorial 4: routing', () => {
  it('a direct exchange routes by severity to the queues bound with it', async () => {
    const connection = await amqp.connect(url);
    const channel = await connection.createChannel();
    await channel.assertExchange('direct_logs', 'direct', { durable: false });
    const errorsOnly = await channel.assertQueue('', { exclusive: true });
    await channel.bindQueue(errorsOnly.queue, 'direct_logs', 'error');
    const all = await channel.assertQueue('', { exclusive: true });
    for (const severity of ['info', 'warning', 'error']) await channel.bindQueue(all.queue, 'direct_logs', severity);
    const gotErrors = collect<string>(2);
    const gotAll = collect<string>(5);
    await channel.consume(errorsOnly.queue, (m) => m && gotErrors.push(`${m.fields.routingKey}:${m.content}`), { noAck: true });
    await channel.consume(all.queue, (m) => m && gotAll.push(`${m.fields.routingKey}:${m.content}`), { noAck: true });
    const emitter = await connection.createChannel();
    const lines: Array<[string, string]> = [
      ['info', 'a'],
      ['error', 'b'],
      ['warning', 'c'],
      ['debug', 'dropped'],
      ['error', 'd'],
      ['info', 'e'],
    ];
    for (const [severity, text] of lines) emitter.publish('direct_logs', severity, Buffer.from(text));
    expect(await gotErrors.done).toEqual(['error:b', 'error:d']);
    expect(await gotAll.done).toEqual(['info:a', 'error:b', 'warning:c', 'error:d', 'info:e']);
    await connection.close();
  });
});

describe('RabbitMQ tutorial 5: topics', () => {
  it("routes by pattern: '*' is one word, '#' zero or more, as the tutorial's table says", async () => {
    const connection = await amqp.connect(url);
    const channel = await connection.createChannel();
    await channel.assertExchange('topic_logs', 'topic', { durable: false });
    const q1 = await channel.assertQueue('', { exclusive: true });
    await channel.bindQueue(q1.queue, 'topic_logs', '*.orange.*');
    const q2 = await channel.assertQueue('', { exclusive: true });
    await channel.bindQueue(q2.queue, 'topic_logs', '*.*.rabbit');
    await channel.bindQueue(q2.queue, 'topic_logs', 'lazy.#');
    const got1 = collect<string>(3);
    const got2 = collect<string>(6);
    await channel.consume(q1.queue, (m) => m && got1.push(m.fields.routingKey), { noAck: true });
    await channel.consume(q2.queue, (m) => m && got2.push(m.fields.routingKey), { noAck: true });
    const keys = [
      'quick.orange.rabbit', // both
      'lazy.orange.elephant', // both
      'quick.orange.fox', // Q1
      'lazy.brown.fox', // Q2
      'lazy.pink.rabbit', // Q2 once, though two bindings match
      'quick.brown.fox', // none
      'orange', // none
      'quick.orange.male.rabbit', // none
      'lazy.orange.male.rabbit', // Q2
      'lazy', // Q2: '#' matches zero words
    ];
    for (const k of keys) channel.publish('topic_logs', k, Buffer.from(k));
    expect(await got1.done).toEqual(['quick.orange.rabbit', 'lazy.orange.elephant', 'quick.orange.fox']);
    const q2keys = await got2.done;
    expect(q2keys).toEqual([
      'quick.orange.rabbit',
      'lazy.orange.elephant',
      'lazy.brown.fox',
      'lazy.pink.rabbit',
      'lazy.orange.male.rabbit',
      'lazy',
    ]);
    // Nothing else arrives later (the none rows stay none, lazy.pink.rabbit stays once).
    await new Promise((r) => setTimeout(r, 100));
    expect(q2keys).toHaveLength(6);
    await connection.close();
  });
});

/** The RPC tutorial's server: fib(n) on rpc_queue, replies to replyTo with the correlationId. */
async function startRpcServer(): Promise<amqp.ChannelModel> {
  const connection = await amqp.connect(url);
  const channel = await connection.createChannel();
  const queue = 'rpc_queue';
  await channel.assertQueue(queue, { durable: false });
  await channel.prefetch(1);
  const fib = (n: number): number => (n < 2 ? n : fib(n - 1) + fib(n - 2));
  await channel.consume(queue, (msg) => {
    if (msg === null) return;
    const n = Number.parseInt(msg.content.toString(), 10);
    channel.sendToQueue(msg.properties.replyTo, Buffer.from(String(fib(n))), { correlationId: msg.properties.correlationId });
    channel.ack(msg);
  });
  return connection;
}

describe('RabbitMQ tutorial 6: RPC', () => {
  it('replyTo an exclusive callback queue, matched by correlationId', async () => {
    const server = await startRpcServer();
    const connection = await amqp.connect(url);
    const channel = await connection.createChannel();
    const callback = await channel.assertQueue('', { exclusive: true });
    const answers = new Map<string, (v: string) => void>();
    await channel.consume(
      callback.queue,
      (msg) => {
        if (msg !== null) answers.get(msg.properties.correlationId)?.(msg.content.toString());
      },
      { noAck: true },
    );
    const call = (n: number): Promise<string> =>
      new Promise((resolve) => {
        const correlationId = `c-${n}-${Math.random()}`;
        answers.set(correlationId, resolve);
        channel.sendToQueue('rpc_queue', Buffer.from(String(n)), { correlationId, replyTo: callback.queue });
      });
    expect(await Promise.all([call(10), call(20), call(1)])).toEqual(['55', '6765', '1']);
    await connection.close();
    await server.close();
  });
});

describe('RabbitMQ tutorial 6: RPC with direct reply-to', () => {
  it("replyTo 'amq.rabbitmq.reply-to' with a no-ack consumer on it: answers come back without a declared queue", async () => {
    const server = await startRpcServer();
    const connection = await amqp.connect(url);
    const channel = await connection.createChannel();
    const answers = new Map<string, (v: string) => void>();
    await channel.consume(
      'amq.rabbitmq.reply-to',
      (msg) => {
        if (msg !== null) answers.get(msg.properties.correlationId)?.(msg.content.toString());
      },
      { noAck: true },
    );
    const call = (n: number): Promise<string> =>
      new Promise((resolve) => {
        const correlationId = `d-${n}`;
        answers.set(correlationId, resolve);
        channel.sendToQueue('rpc_queue', Buffer.from(String(n)), { correlationId, replyTo: 'amq.rabbitmq.reply-to' });
      });
    expect(await Promise.all([call(7), call(15)])).toEqual(['13', '610']);
    await connection.close();
    await server.close();
  });

  it('publishing with that reply_to on a channel without the reply consumer is 406 PRECONDITION_FAILED', async () => {
    const connection = await amqp.connect(url);
    const channel = await connection.createChannel();
    const closed = new Promise<Error>((resolve) => channel.on('error', resolve));
    channel.sendToQueue('nowhere', Buffer.from('x'), { replyTo: 'amq.rabbitmq.reply-to' });
    const err = (await closed) as Error & { code?: number };
    expect(err.code).toBe(406);
    expect(err.message).toMatch(/fast reply consumer does not exist/);
    await connection.close();
  });
});

describe('alternate exchange', () => {
  it('what the exchange routes nowhere goes to its alternate-exchange, and a mandatory publish is then not returned', async () => {
    const connection = await amqp.connect(url);
    const channel = await connection.createChannel();
    await channel.assertExchange('ae.unrouted', 'fanout', { durable: false });
    await channel.assertExchange('ae.main', 'direct', { durable: false, alternateExchange: 'ae.unrouted' });
    const routed = await channel.assertQueue('', { exclusive: true });
    await channel.bindQueue(routed.queue, 'ae.main', 'known');
    const caught = await channel.assertQueue('', { exclusive: true });
    await channel.bindQueue(caught.queue, 'ae.unrouted', '');
    const returned: string[] = [];
    channel.on('return', (m: amqp.Message) => returned.push(m.content.toString()));
    channel.publish('ae.main', 'known', Buffer.from('to main'), { mandatory: true });
    channel.publish('ae.main', 'unknown', Buffer.from('to alternate'), { mandatory: true });
    const a = await channel.get(routed.queue, { noAck: true });
    const b = await channel.get(caught.queue, { noAck: true });
    expect(a && a.content.toString()).toBe('to main');
    expect(b && [b.content.toString(), b.fields.routingKey]).toEqual(['to alternate', 'unknown']);
    expect(await channel.get(caught.queue, { noAck: true })).toBe(false);
    expect(returned).toEqual([]);
    await connection.close();
  });
});

describe('basic.get', () => {
  it('takes messages one by one, says how many are left, get-empty at the end; a client-ack get is redelivered after nack', async () => {
    const connection = await amqp.connect(url);
    const channel = await connection.createChannel();
    const q = await channel.assertQueue('', { exclusive: true });
    for (const body of ['a', 'b', 'c']) channel.sendToQueue(q.queue, Buffer.from(body));
    await channel.checkQueue(q.queue); // behind the publishes
    const first = await channel.get(q.queue, { noAck: true });
    expect(first && first.content.toString()).toBe('a');
    expect(first && first.fields.messageCount).toBe(2);
    const second = await channel.get(q.queue, { noAck: false });
    expect(second && [second.content.toString(), second.fields.redelivered]).toEqual(['b', false]);
    if (second === false) throw new Error('no message');
    channel.nack(second, false, true);
    const again = await channel.get(q.queue, { noAck: false });
    expect(again && [again.content.toString(), again.fields.redelivered]).toEqual(['b', true]);
    if (again === false) throw new Error('no message');
    channel.ack(again);
    const third = await channel.get(q.queue, { noAck: true });
    expect(third && third.content.toString()).toBe('c');
    expect(await channel.get(q.queue, { noAck: true })).toBe(false);
    // Nothing was left behind unacked: the queue is empty.
    expect((await channel.checkQueue(q.queue)).messageCount).toBe(0);
    await connection.close();
  });

  it('an unacked get goes back to the queue when its channel closes', async () => {
    const connection = await amqp.connect(url);
    const channel = await connection.createChannel();
    await channel.assertQueue('get.requeue', { durable: false });
    channel.sendToQueue('get.requeue', Buffer.from('kept'));
    await channel.checkQueue('get.requeue');
    const got = await channel.get('get.requeue', { noAck: false });
    expect(got && got.content.toString()).toBe('kept');
    await channel.close();
    const other = await connection.createChannel();
    const back = await other.get('get.requeue', { noAck: true });
    expect(back && [back.content.toString(), back.fields.redelivered]).toEqual(['kept', true]);
    await connection.close();
  });
});

describe('RabbitMQ tutorial 7: publisher confirms', () => {
  it('individually: waitForConfirms after each message', async () => {
    const connection = await amqp.connect(url);
    const channel = await connection.createConfirmChannel();
    const q = await channel.assertQueue('', { exclusive: true });
    for (let i = 0; i < 50; i++) {
      channel.sendToQueue(q.queue, Buffer.from(`m${i}`));
      await channel.waitForConfirms();
    }
    const check = await channel.checkQueue(q.queue);
    expect(check.messageCount).toBe(50);
    await connection.close();
  });

  it('in batches: 1,000 published, then one waitForConfirms per 100', async () => {
    const connection = await amqp.connect(url);
    const channel = await connection.createConfirmChannel();
    const q = await channel.assertQueue('', { exclusive: true });
    for (let batch = 0; batch < 10; batch++) {
      for (let i = 0; i < 100; i++) channel.sendToQueue(q.queue, Buffer.from(`m${batch * 100 + i}`));
      await channel.waitForConfirms();
    }
    expect((await channel.checkQueue(q.queue)).messageCount).toBe(1000);
    await connection.close();
  });

  it('asynchronously: every publish callback fires once, with no error, for 10,000 messages', async () => {
    const connection = await amqp.connect(url);
    const channel = await connection.createConfirmChannel();
    const q = await channel.assertQueue('', { exclusive: true });
    const n = 10_000;
    const confirmed = collect<number>(n, 20_000);
    let errors = 0;
    for (let i = 0; i < n; i++) {
      channel.sendToQueue(q.queue, Buffer.from(`m${i}`), {}, (err) => {
        if (err !== null && err !== undefined) errors++;
        confirmed.push(i);
      });
    }
    const order = await confirmed.done;
    expect(errors).toBe(0);
    expect(new Set(order).size).toBe(n);
    expect((await channel.checkQueue(q.queue)).messageCount).toBe(n);
    await connection.close();
  });
});
