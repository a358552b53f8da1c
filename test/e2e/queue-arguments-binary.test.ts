/**
 * Queue arguments and queue lifecycles end to end through the binary protocol (the package's
 * client), on 4 shards so dead-letter exchanges and bindings cross shards.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Broker } from '../../src/front/broker.js';
import { startBroker } from '../helpers/broker.js';
import { connect, NotFoundError, ResourceLockedError, SaturatedError } from '../../src/index.js';
import type { Message, ShardmqClient, Subscription } from '../../src/index.js';
import { shardFor } from '../../src/router/shard-map.js';

async function take(sub: Subscription, n: number, timeoutMs = 5000): Promise<Message[]> {
  const out: Message[] = [];
  const it = sub[Symbol.asyncIterator]();
  for (let i = 0; i < n; i++) {
    let timer: NodeJS.Timeout | undefined;
    const r = await Promise.race([
      it.next(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${out.length} of ${n} messages`)), timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    if (r.done === true) throw new Error('subscription ended');
    out.push(r.value);
  }
  return out;
}

/** A queue name on each of the 4 shards, with a prefix. */
function spread(prefix: string): string[] {
  const out: string[] = [];
  for (let s = 0; s < 4; s++)
    for (let i = 0; ; i++)
      if (shardFor(`${prefix}${i}`, 4) === s) {
        out.push(`${prefix}${i}`);
        break;
      }
  return out;
}

describe('e2e - queue arguments through the binary protocol (4 shards)', () => {
  let broker: Broker;
  let client: ShardmqClient;
  beforeAll(async () => {
    broker = await startBroker({ shards: '4' });
    client = await connect(broker.url);
  });
  afterAll(async () => {
    await client.close();
    await broker.stop();
  });

  it('ttl - an expired message goes to the dead-letter queue on another shard, with x-death', async () => {
    const [dlq, , src] = spread('bin-ttl-');
    await client.declareExchange('bin-dlx', 'fanout');
    await client.declareQueue(dlq);
    await client.bindQueue(dlq, 'bin-dlx', '');
    await client.declareQueue(src, { arguments: { 'x-message-ttl': 30, 'x-dead-letter-exchange': 'bin-dlx' } });
    await client.publish(`/amq/queue/${src}`, 'expires', { properties: { messageId: 'e-1' } });
    const sub = await client.subscribe(`/amq/queue/${dlq}`, { ack: 'client' });
    const [m] = await take(sub, 1);
    expect(m.text()).toBe('expires');
    expect(m.properties?.messageId).toBe('e-1');
    const death = (m.properties!.headers!['x-death'] as Array<Record<string, unknown>>)[0];
    expect(death).toMatchObject({ count: 1, reason: 'expired', queue: src, 'routing-keys': [src] });
    await m.ack();
    await sub.unsubscribe();
  });

  it('max-length - drop-head keeps the newest; reject-publish nacks the publisher (SaturatedError)', async () => {
    await client.declareQueue('bin-drop', { arguments: { 'x-max-length': 3 } });
    for (let i = 0; i < 5; i++) await client.publish('/amq/queue/bin-drop', `d${i}`);
    const drop = await client.subscribe('/amq/queue/bin-drop', { ack: 'client' });
    const kept = await take(drop, 3);
    expect(kept.map((m) => m.text())).toEqual(['d2', 'd3', 'd4']);
    for (const m of kept) await m.ack();
    await drop.unsubscribe();

    await client.declareQueue('bin-reject', { arguments: { 'x-max-length': 2, 'x-overflow': 'reject-publish' } });
    await client.publish('/amq/queue/bin-reject', 'r0');
    await client.publish('/amq/queue/bin-reject', 'r1');
    await expect(client.publish('/amq/queue/bin-reject', 'r2')).rejects.toBeInstanceOf(SaturatedError);
    const info = await client.declareQueue('bin-reject', { passive: true });
    expect(info.messageCount).toBe(2);
  });

  it('priority - higher priority first, FIFO within a priority', async () => {
    await client.declareQueue('bin-prio', { arguments: { 'x-max-priority': 10 } });
    const order: Array<[string, number]> = [
      ['low-1', 1],
      ['high-1', 9],
      ['mid', 5],
      ['high-2', 9],
      ['low-2', 1],
    ];
    for (const [text, priority] of order) await client.publish('/amq/queue/bin-prio', text, { properties: { priority } });
    const sub = await client.subscribe('/amq/queue/bin-prio', { ack: 'client', prefetch: 10 });
    const got = await take(sub, 5);
    expect(got.map((m) => m.text())).toEqual(['high-1', 'high-2', 'mid', 'low-1', 'low-2']);
    for (const m of got) await m.ack();
    await sub.unsubscribe();
  });

  it('delivery limit - a message returned more than x-delivery-limit times is dead-lettered (delivery_limit)', async () => {
    await client.declareQueue('bin-limit-dlq');
    await client.declareQueue('bin-limit', {
      arguments: { 'x-delivery-limit': 1, 'x-dead-letter-exchange': '', 'x-dead-letter-routing-key': 'bin-limit-dlq' },
    });
    await client.publish('/amq/queue/bin-limit', 'poison');
    const sub = await client.subscribe('/amq/queue/bin-limit', { ack: 'client', prefetch: 1 });
    const [first] = await take(sub, 1);
    await first.nack({ requeue: true });
    const [second] = await take(sub, 1);
    expect(second.redelivered).toBe(true);
    await second.nack({ requeue: true });
    const dlq = await client.subscribe('/amq/queue/bin-limit-dlq', { ack: 'client' });
    const [dead] = await take(dlq, 1);
    expect(dead.text()).toBe('poison');
    expect((dead.properties!.headers!['x-death'] as Array<Record<string, unknown>>)[0]).toMatchObject({
      reason: 'delivery_limit',
      queue: 'bin-limit',
    });
    await dead.ack();
    await sub.unsubscribe();
    await dlq.unsubscribe();
  });

  it('exclusive - locked for other connections, deleted when its connection closes', async () => {
    const owner = await connect(broker.url, { reconnect: false });
    const other = await connect(broker.url, { reconnect: false });
    try {
      await owner.declareQueue('bin-excl', { exclusive: true });
      await expect(other.declareQueue('bin-excl', { exclusive: true })).rejects.toBeInstanceOf(ResourceLockedError);
      await owner.close();
      // Gone with its connection: a passive declare no longer finds it.
      let found = true;
      for (let i = 0; i < 50 && found; i++) {
        found = await other.declareQueue('bin-excl', { passive: true }).then(
          () => true,
          (err: unknown) => !(err instanceof NotFoundError),
        );
        if (found) await new Promise((r) => setTimeout(r, 20));
      }
      expect(found).toBe(false);
    } finally {
      await other.close();
    }
  });

  it('auto-delete - deleted when its last consumer goes, not before it had one', async () => {
    await client.declareQueue('bin-auto', { autoDelete: true });
    expect((await client.declareQueue('bin-auto', { passive: true, autoDelete: true })).queue).toBe('bin-auto');
    const a = await client.subscribe('/amq/queue/bin-auto');
    const b = await client.subscribe('/amq/queue/bin-auto');
    await a.unsubscribe();
    expect((await client.declareQueue('bin-auto', { passive: true })).consumerCount).toBe(1);
    await b.unsubscribe();
    let gone = false;
    for (let i = 0; i < 50 && !gone; i++) {
      gone = await client.declareQueue('bin-auto', { passive: true }).then(
        () => false,
        (err: unknown) => err instanceof NotFoundError,
      );
      if (!gone) await new Promise((r) => setTimeout(r, 20));
    }
    expect(gone).toBe(true);
  });

  it('cross-shard routing - a topic exchange delivers to bound queues on all 4 shards, with confirms', async () => {
    const queues = spread('bin-x-');
    await client.declareExchange('bin-topic', 'topic');
    for (const q of queues) {
      await client.declareQueue(q);
      await client.bindQueue(q, 'bin-topic', 'metrics.#');
    }
    await client.publish('/exchange/bin-topic/metrics.cpu.load', 'm1');
    await client.publish('/exchange/bin-topic/other', 'not routed');
    for (const q of queues) {
      const sub = await client.subscribe(`/amq/queue/${q}`, { ack: 'client' });
      const [m] = await take(sub, 1);
      expect(m).toMatchObject({ exchange: 'bin-topic', routingKey: 'metrics.cpu.load' });
      expect(m.text()).toBe('m1');
      await m.ack();
      await sub.unsubscribe();
    }
  });
});
