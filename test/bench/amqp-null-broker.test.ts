import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import amqp from 'amqplib';
import { startNullBroker, type NullBroker } from '../../src/bench/amqp-null-peer.js';

/**
 * The null broker is the yardstick of the AMQP workload's "client ceiling": it must really carry
 * every message (a ceiling measured on a broker that drops is no ceiling), in order, confirmed.
 */
let broker: NullBroker;

beforeAll(async () => {
  broker = await startNullBroker();
});

afterAll(async () => {
  await broker.stop();
});

const waitFor = async (cond: () => boolean, ms = 5000): Promise<void> => {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
};

describe('the null broker', () => {
  it('forwards every publish through the default exchange to the queue consumer, in order, and confirms each', async () => {
    const conn = await amqp.connect(broker.url);
    try {
      const sub = await conn.createChannel();
      await sub.assertQueue('null-q', { exclusive: true, durable: false });
      const got: number[] = [];
      await sub.consume('null-q', (m) => m !== null && got.push(m.content.readUInt32BE(0)), { noAck: true });
      const pub = await conn.createConfirmChannel();
      const N = 5000;
      for (let i = 0; i < N; i++) {
        const body = Buffer.alloc(200);
        body.writeUInt32BE(i, 0);
        pub.sendToQueue('null-q', body);
      }
      await pub.waitForConfirms();
      await waitFor(() => got.length === N);
      expect(got).toEqual(Array.from({ length: N }, (_, i) => i));
    } finally {
      await conn.close();
    }
  });

  it('copies each publish to a fanout exchange to every bound server-named queue, a body larger than a frame included', async () => {
    const conn = await amqp.connect(broker.url);
    try {
      const ch = await conn.createChannel();
      await ch.assertExchange('null-fan', 'fanout', { durable: false });
      const counts = [0, 0, 0];
      const sizes = new Set<number>();
      for (let k = 0; k < 3; k++) {
        const { queue } = await ch.assertQueue('', { exclusive: true, durable: false });
        await ch.bindQueue(queue, 'null-fan', '');
        await ch.consume(
          queue,
          (m) => {
            if (m === null) return;
            counts[k]++;
            sizes.add(m.content.length);
          },
          { noAck: true },
        );
      }
      ch.publish('null-fan', '', Buffer.alloc(300_000, 7)); // three body frames at frame_max 131,072
      for (let i = 0; i < 99; i++) ch.publish('null-fan', '', Buffer.from(`m${i}`));
      await waitFor(() => counts.every((c) => c === 100));
      expect(counts).toEqual([100, 100, 100]);
      expect(sizes.has(300_000)).toBe(true);
    } finally {
      await conn.close();
    }
  });
});
