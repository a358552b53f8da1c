/**
 * The consumer side of one AMQP throughput run (amqp-load.ts), in a process of its own: opens
 * `consumers` amqplib connections (one channel each), declares what the shape needs, starts
 * consuming, and says `ready` over the IPC channel once every basic.consume-ok is back. Then it
 * counts deliveries:
 *
 * - queue: the run's queue (exclusive, not durable), noAck;
 * - fanout: the run's fanout exchange, a server-named exclusive queue bound to it, noAck;
 * - acks: the run's queue, basic.qos prefetch, manual `channel.ack` of every message.
 *
 * Every CONSUMER_PROGRESS_MS it reports its total when it moved; on `stop` it sends the final count
 * (per consumer, and the monotonic time of the last delivery), closes its connections (their
 * exclusive queues go with them) and exits. The time of the last delivery is stamped once per
 * event-loop turn (a setImmediate after the burst), not per message.
 */
import amqp from 'amqplib';
import { finishChild, runChild, sendToParent } from './child-channel.js';
import { monotonicMs } from '../metrics/clock.js';
import { CONSUMER_PROGRESS_MS, type AmqpConsumerReport, type AmqpConsumerSpec } from './amqp-load.js';

const spec = JSON.parse(process.argv[2] ?? '{}') as AmqpConsumerSpec;
const counts: number[] = new Array<number>(spec.consumers).fill(0);
const closers: Array<() => Promise<unknown>> = [];
let total = 0;
let lastAt = 0;
let stampQueued = false;
let errors = 0;
let lastError = '';
let closed = 0;
let stopping = false;

function stamp(): void {
  stampQueued = false;
  lastAt = monotonicMs();
}

function got(i: number): void {
  counts[i]++;
  total++;
  if (!stampQueued) {
    stampQueued = true;
    setImmediate(stamp);
  }
}

function noteError(err: unknown): void {
  errors++;
  lastError = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}

async function open(i: number): Promise<void> {
  const conn = await amqp.connect(spec.url);
  conn.on('error', noteError);
  conn.on('close', () => {
    if (!stopping) closed++;
  });
  closers.push(() => conn.close());
  const ch = await conn.createChannel();
  ch.on('error', noteError);
  if (spec.shape === 'fanout') {
    await ch.assertExchange(spec.exchange, 'fanout', { durable: false });
    const { queue } = await ch.assertQueue('', { exclusive: true, durable: false });
    await ch.bindQueue(queue, spec.exchange, '');
    await ch.consume(queue, (msg) => msg !== null && got(i), { noAck: true });
  } else if (spec.shape === 'queue') {
    await ch.assertQueue(spec.queue, { exclusive: true, durable: false });
    await ch.consume(spec.queue, (msg) => msg !== null && got(i), { noAck: true });
  } else {
    await ch.assertQueue(spec.queue, { exclusive: true, durable: false });
    await ch.prefetch(spec.prefetch);
    await ch.consume(
      spec.queue,
      (msg) => {
        if (msg === null) return;
        got(i);
        ch.ack(msg);
      },
      { noAck: false },
    );
  }
}

async function main(): Promise<void> {
  if (spec.shape !== 'queue' && spec.shape !== 'fanout' && spec.shape !== 'acks') throw new Error(`unknown shape ${String(spec.shape)}`);
  for (let i = 0; i < spec.consumers; i++) await open(i);
  let reported = 0;
  const timer = setInterval(() => {
    if (total === reported) return;
    reported = total;
    void sendToParent({ type: 'progress', delivered: total, lastAt } satisfies AmqpConsumerReport);
  }, CONSUMER_PROGRESS_MS);
  process.on('message', (m: { type: string }) => {
    if (m.type !== 'stop' || stopping) return;
    stopping = true;
    clearInterval(timer);
    if (stampQueued) stamp();
    void finishChild(
      { type: 'final', delivered: total, perConsumer: counts, lastAt, errors, lastError, closed } satisfies AmqpConsumerReport,
      closers,
    );
  });
  await sendToParent({ type: 'ready' } satisfies AmqpConsumerReport);
}

runChild(main);
