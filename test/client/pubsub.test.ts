import { describe, expect, it } from 'vitest';
import { clientPool } from '../helpers/client-pool.js';
import type { Message, Subscription } from '../../src/index.js';
import { DeliveryTagError } from '../../src/index.js';

/** Takes `n` messages from a subscription's iterator, failing after `timeoutMs`. */
async function take(sub: Subscription, n: number, timeoutMs = 5000): Promise<Message[]> {
  const out: Message[] = [];
  const it = sub[Symbol.asyncIterator]();
  const deadline = Date.now() + timeoutMs;
  while (out.length < n) {
    let timer: NodeJS.Timeout | undefined;
    const r = await Promise.race([
      it.next(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out with ${out.length}/${n} messages`)), Math.max(1, deadline - Date.now()));
      }),
    ]);
    clearTimeout(timer);
    if (r.done === true) throw new Error(`subscription ended after ${out.length}/${n} messages`);
    out.push(r.value);
  }
  return out;
}

/** Resolves true if the subscription yields nothing for `ms`. */
async function quiet(sub: Subscription, ms: number): Promise<boolean> {
  await new Promise((r) => setTimeout(r, ms));
  return sub.buffered === 0;
}

describe.each([2])('client - publish and subscribe with %i shards', (shards) => {
  const pool = clientPool({ shards: String(shards) });
  const open = pool.open.bind(pool);

  it('topic - fans out to every subscriber, each in publish order, with destination and routing key', async () => {
    const [pub, a, b] = await Promise.all([open(), open(), open()]);
    const subs = await Promise.all([a.subscribe('/topic/fan.*'), b.subscribe('/topic/fan.*')]);
    const sent = Array.from({ length: 50 }, (_, i) => `m${i}`);
    await Promise.all(sent.map((m) => pub.publish('/topic/fan.out', m)));
    for (const s of subs) {
      const got = await take(s, sent.length);
      expect(got.map((m) => m.text())).toEqual(sent);
      expect(
        got.every((m) => m.destination === '/topic/fan.out' && m.exchange === 'amq.topic' && m.routingKey === 'fan.out' && !m.redelivered),
      ).toBe(true);
    }
  });

  it('queue - two subscriptions of one client share the queue round robin; nothing lost or duplicated', async () => {
    const c = await open();
    const q = `/queue/rr-${shards}`;
    const s1 = await c.subscribe(q, { ack: 'client', prefetch: 1 });
    const s2 = await c.subscribe(q, { ack: 'client', prefetch: 1 });
    const seen: Array<[number, string]> = [];
    const drain = async (s: Subscription, id: number): Promise<void> => {
      for await (const m of s) {
        seen.push([id, m.text()]);
        await m.ack();
        if (seen.length === 20) break;
      }
    };
    const pub = await open();
    const sent = Array.from({ length: 20 }, (_, i) => `job${i}`);
    for (const m of sent) pub.publishNoWait(q, m);
    await pub.flush();
    await Promise.race([drain(s1, 1), drain(s2, 2)]);
    expect(seen.map(([, m]) => m).sort()).toEqual([...sent].sort());
    const by1 = seen.filter(([id]) => id === 1).length;
    expect(by1).toBeGreaterThan(0);
    expect(by1).toBeLessThan(20);
    await s1.unsubscribe();
    await s2.unsubscribe();
  });

  it('client ack - nack with requeue redelivers (redelivered: true); ack settles; a second ack is refused locally', async () => {
    const c = await open();
    const q = `/queue/nack-${shards}`;
    const sub = await c.subscribe(q, { ack: 'client', prefetch: 10 });
    await c.publish(q, 'once');
    const [first] = await take(sub, 1);
    expect(first.redelivered).toBe(false);
    expect(first.settled).toBe(false);
    await first.nack({ requeue: true });
    const [again] = await take(sub, 1);
    expect(again.text()).toBe('once');
    expect(again.redelivered).toBe(true);
    expect(again.tag).toBeGreaterThan(first.tag);
    await again.ack();
    expect(again.settled).toBe(true);
    await expect(again.ack()).rejects.toMatchObject({ code: 'unknown_tag' });
    expect(() => c.ack(again.tag)).toThrow(DeliveryTagError);
    expect(await quiet(sub, 100)).toBe(true);
    // nack without requeue drops it
    await c.publish(q, 'drop-me');
    const [drop] = await take(sub, 1);
    await drop.nack({ requeue: false });
    expect(await quiet(sub, 100)).toBe(true);
    await sub.unsubscribe();
  });

  it('client ack - client.ack(tag, { multiple }) settles every delivery up to the tag', async () => {
    const c = await open();
    const q = `/queue/multi-${shards}`;
    const sub = await c.subscribe(q, { ack: 'client', prefetch: 5 });
    for (let i = 0; i < 5; i++) c.publishNoWait(q, `x${i}`);
    await c.flush();
    const got = await take(sub, 5);
    c.ack(got[4].tag, { multiple: true });
    expect(got.every((m) => m.settled)).toBe(true);
    expect(c.stats.unsettled).toBe(0);
    // prefetch 5 was full: more flow only because the multiple ack freed it
    for (let i = 0; i < 5; i++) c.publishNoWait(q, `y${i}`);
    const more = await take(sub, 5);
    expect(more.map((m) => m.text())).toEqual(['y0', 'y1', 'y2', 'y3', 'y4']);
    c.ack(0, { multiple: true });
    await sub.unsubscribe();
  });

  it('properties - nested headers, priority, content type and the rest survive the trip', async () => {
    const c = await open();
    const sub = await c.subscribe('/topic/props.#');
    const bytes = new Uint8Array([0, 1, 2, 255]);
    const properties = {
      contentType: 'application/json',
      contentEncoding: 'identity',
      headers: { n: 1.5, ok: true, nothing: null, s: 'é✓', list: [1, 'two', [3]], nested: { deeper: { x: 'y' } }, raw: bytes },
      deliveryMode: 2 as const,
      priority: 7,
      correlationId: 'c-1',
      replyTo: '/queue/replies',
      messageId: 'm-1',
      timestamp: 1_700_000_000,
      type: 'reading',
      appId: 'test',
    };
    await c.publish('/topic/props.a', JSON.stringify({ v: 1 }), { properties });
    await c.publish('/topic/props.b', new Uint8Array([9, 8, 7]));
    const [withProps, without] = await take(sub, 2);
    expect(withProps.properties).toEqual(properties);
    expect(withProps.json()).toEqual({ v: 1 });
    expect(without.properties).toEqual({});
    expect(Array.from(without.payload)).toEqual([9, 8, 7]);
    await sub.unsubscribe();
  });

  it('batching - 10k publishes issued without awaiting arrive in order, all confirmed, in a handful of frames', async () => {
    const c = await open();
    const consumer = await open();
    const n = 10_000;
    const received: string[] = [];
    let done!: () => void;
    const all = new Promise<void>((r) => (done = r));
    await consumer.subscribe('/topic/bulk.x', {}, (m) => {
      received.push(m.text());
      if (received.length === n) done();
    });
    const framesBefore = c.stats.framesOut;
    const confirms = Array.from({ length: n }, (_, i) => c.publish('/topic/bulk.x', `b${i}`));
    expect(c.stats.framesOut - framesBefore).toBeLessThanOrEqual(3); // batched under the hood
    await Promise.all(confirms);
    expect(c.stats.unconfirmed).toBe(0);
    await all;
    expect(received).toEqual(Array.from({ length: n }, (_, i) => `b${i}`));
    // Past the initial publish credit (1024 messages), each CREDIT from the broker releases one
    // frame of the publishes waiting for it, so the count depends on how often the broker grants.
    expect(c.stats.framesOut - framesBefore).toBeLessThan(n / 50);
  });

  it('flush - resolves once every fire-and-forget publish is confirmed; reports a refused one', async () => {
    const c = await open();
    const q = `/queue/flush-${shards}`;
    for (let i = 0; i < 500; i++) c.publishNoWait(q, `f${i}`);
    expect(c.stats.unconfirmed).toBe(500);
    await c.flush();
    expect(c.stats.unconfirmed).toBe(0);
    const { messageCount } = await c.declareQueue(q.slice(7), { passive: true });
    expect(messageCount).toBe(500);
    const errors: unknown[] = [];
    c.on('error', (e) => errors.push(e));
    c.publishNoWait('/exchange/no-such-exchange/k', 'lost');
    await expect(c.flush()).rejects.toMatchObject({ name: 'NotFoundError', code: 'not_found' });
    expect(errors).toHaveLength(1);
    await expect(c.publish('/exchange/no-such-exchange/k', 'lost')).rejects.toMatchObject({ name: 'NotFoundError' });
    await c.flush(); // the previous failure was reported once
    // One frame: ok, refused, ok. The broker nacks the middle one with an ERROR next to it and
    // confirms the others with a MULTIPLE that spans it; each promise gets its own outcome.
    const outcomes = await Promise.allSettled([
      c.publish('/topic/mixed.a', '1'),
      c.publish('/exchange/no-such-exchange/k', '2'),
      c.publish('/topic/mixed.b', '3'),
    ]);
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((outcomes[1] as PromiseRejectedResult).reason).toMatchObject({
      name: 'NotFoundError',
      op: 'PUBLISH',
      message: expect.stringMatching(/no-such-exchange/),
    });
    expect(errors).toHaveLength(1); // awaited failures are not also emitted
  });

  it('subscription - leaving a for-await loop unsubscribes; bad destinations are refused locally', async () => {
    const c = await open();
    const q = `/queue/leave-${shards}`;
    const sub = await c.subscribe(q);
    await c.publish(q, 'one');
    for await (const m of sub) {
      expect(m.text()).toBe('one');
      break;
    }
    expect(await sub.closed).toEqual({ reason: 'unsubscribed' });
    expect(sub.active).toBe(false);
    await expect(c.publish('/nowhere', 'x')).rejects.toMatchObject({ name: 'BadDestinationError', code: 'bad_destination' });
    await expect(c.subscribe('topic/missing-slash')).rejects.toMatchObject({ code: 'bad_destination' });
    expect(() => c.publishNoWait('/queue/', 'x')).toThrow(/queue name is empty/);
  });
});

describe('client - consecutive publishes joined into one batch', () => {
  const pool = clientPool({ shards: '1', 'max-message-bytes': '1024' });

  it('batching - one message over --max-message-bytes amid a run to one destination is refused alone; the rest arrive in order', async () => {
    const [pub, consumer] = await Promise.all([pool.open(), pool.open()]);
    const received: string[] = [];
    let done!: () => void;
    const all = new Promise<void>((r) => (done = r));
    await consumer.subscribe('/topic/joined.x', {}, (m) => {
      received.push(m.text());
      if (received.length === 4) done();
    });
    const framesBefore = pub.stats.framesOut;
    // Issued in one turn: the client writes them as one PUBLISH_BATCH (one frame).
    const outcomes = Promise.allSettled(['a', 'b', 'x'.repeat(2000), 'c', 'd'].map((m) => pub.publish('/topic/joined.x', m)));
    expect(pub.stats.framesOut - framesBefore).toBeLessThanOrEqual(1);
    const settled = await outcomes;
    expect(settled.map((o) => o.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
    expect((settled[2] as PromiseRejectedResult).reason).toMatchObject({ name: 'TooLargeError', code: 'too_large' });
    await all;
    expect(received).toEqual(['a', 'b', 'c', 'd']);
  });
});
