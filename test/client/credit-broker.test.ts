/**
 * Publish credit, FLUSH and DROPPED end to end, against a real broker. credit.test.ts pins the
 * client's side against a scripted server; these check that client and broker agree: a producer
 * far ahead of the broker is slowed down, never disconnected (`credit_exceeded`), FLUSH means
 * routed, and a topic subscriber that falls behind hears how much it lost.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Broker } from '../../src/front/broker.js';
import { startBroker } from '../helpers/broker.js';
import { connect } from '../../src/index.js';
import type { ClientOptions, DroppedNotice, ShardmqClient } from '../../src/index.js';

describe('client - publish credit, FLUSH and DROPPED with a real broker', () => {
  let broker: Broker;
  const clients: ShardmqClient[] = [];
  const open = async (options: ClientOptions = {}): Promise<ShardmqClient> => {
    const c = await connect(broker.url, { closeTimeoutMs: 500, ...options });
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    // A topic subscriber counts as slow (and loses its oldest messages past --topic-buffer) once its
    // socket has been above --socket-high-water for --slow-consumer-ms: make that quick and small.
    broker = await startBroker({ shards: '2', 'topic-buffer': '50', 'slow-consumer-ms': '0', 'socket-high-water': '65536' });
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await broker.stop();
  });

  it('credit - 5000 confirmed publishes issued at once: the excess waits for CREDIT, the connection is never closed', async () => {
    const c = await open();
    const consumer = await open();
    const received: string[] = [];
    await consumer.subscribe('/topic/credit.bulk', { bufferSize: 10_000 }, (m) => {
      received.push(m.text());
    });
    let drops = 0;
    c.on('disconnected', () => drops++);
    const n = 5000;
    const confirms = Array.from({ length: n }, (_, i) => c.publish('/topic/credit.bulk', `p${i}`));
    expect(c.stats.creditWaiting).toBe(n - 1024); // the initial credit went out, the rest waits
    await Promise.all(confirms);
    expect(drops).toBe(0);
    expect(c.stats).toMatchObject({ creditWaiting: 0, unconfirmed: 0, published: n });
    expect(c.stats.publishCredit.messages).toBeGreaterThanOrEqual(0);
    await expect.poll(() => received.length, { timeout: 5000 }).toBe(n);
    expect(received).toEqual(Array.from({ length: n }, (_, i) => `p${i}`));
  }, 15_000);

  it('flush - confirms off: resolves once every earlier publish, the ones that waited for credit included, is routed', async () => {
    const c = await open({ confirms: false });
    const q = 'credit-flush-q';
    await c.declareQueue(q);
    const n = 3000;
    for (let i = 0; i < n; i++) c.publishNoWait(`/queue/${q}`, `f${i}`);
    expect(c.stats.creditWaiting).toBe(n - 1024);
    await c.flush();
    expect(c.stats.creditWaiting).toBe(0);
    // Routed means queued: the depth is read right after flush(), without waiting for it to settle.
    const { messageCount } = await c.declareQueue(q, { passive: true });
    expect(messageCount).toBe(n);
  }, 15_000);

  it('dropped - a topic subscriber that stops reading is told how many messages the broker discarded; nothing else is missing', async () => {
    const consumer = await open();
    const producer = await open();
    let openGate!: () => void;
    const gate = new Promise<void>((resolve) => (openGate = resolve));
    const received: number[] = [];
    const sub = await consumer.subscribe('/topic/credit.slow', { bufferSize: 10 }, async (m) => {
      await gate;
      received.push(Number(m.text().split(':')[0]));
    });
    const notices: DroppedNotice[] = [];
    sub.on('dropped', (n) => notices.push(n));
    const body = 'x'.repeat(10_000);
    const n = 3000;
    for (let round = 0; round < 30; round++) {
      await Promise.all(Array.from({ length: 100 }, (_, i) => producer.publish('/topic/credit.slow', `${round * 100 + i}:${body}`)));
    }
    openGate();
    await expect.poll(() => received.length + sub.brokerDropped, { timeout: 10_000 }).toBe(n);
    expect(sub.brokerDropped).toBeGreaterThan(0);
    expect(notices.length).toBeGreaterThan(0);
    expect(notices.at(-1)).toMatchObject({ total: sub.brokerDropped, destination: '/topic/credit.slow' });
    expect(notices.reduce((s, x) => s + x.count, 0)).toBe(sub.brokerDropped);
    expect(consumer.stats.brokerDropped).toBe(sub.brokerDropped);
    // The broker drops the oldest: what arrives is still in publish order.
    expect(received).toEqual([...received].sort((a, b) => a - b));
  }, 20_000);
});
