import { describe, expect, it } from 'vitest';
import { consumer, harness, message, who } from './harness.js';
import { Prng } from '../helpers/prng.js';

describe('message queue', () => {
  it('message queue - messages are held until a consumer arrives, then delivered oldest first', () => {
    const h = harness();
    for (let seq = 1; seq <= 3; seq++) h.queue.enqueue(message(seq, 10));
    expect(h.queue.dispatch()).toBe(0);
    expect(h.queue.depth).toBe(3);
    expect(h.queue.readyBytes).toBe(30);

    h.queue.addConsumer(consumer(1, 1));
    expect(h.deliveries).toHaveLength(0); // addConsumer does not dispatch by itself
    expect(h.queue.dispatch()).toBe(3);
    expect(h.deliveries.map((d) => d.seq)).toEqual([1, 2, 3]);
    expect(h.deliveries.every((d) => !d.redelivered && d.deliveryCount === 1)).toBe(true);
    expect(h.queue.depth).toBe(0);
    expect(h.queue.readyBytes).toBe(0);
    expect(h.queue.unackedCount).toBe(3);
  });

  it('message queue - enqueue does not dispatch', () => {
    const h = harness();
    h.queue.addConsumer(consumer(1, 1));
    h.queue.enqueue(message(1));
    expect(h.deliveries).toHaveLength(0);
    expect(h.queue.depth).toBe(1);
  });

  it('message queue - round robin alternates exactly across two consumers', () => {
    const h = harness();
    h.queue.addConsumer(consumer(1, 1, { ackMode: 'auto' }));
    h.queue.addConsumer(consumer(2, 1, { ackMode: 'auto' }));
    for (let seq = 1; seq <= 6; seq++) h.queue.enqueue(message(seq));
    expect(h.queue.dispatch()).toBe(6);
    expect(who(h.deliveries)).toEqual(['1/1', '2/1', '1/1', '2/1', '1/1', '2/1']);
  });

  it('message queue - round robin alternates exactly across three consumers and over several dispatches', () => {
    const h = harness();
    for (const id of [1, 2, 3]) h.queue.addConsumer(consumer(id, 7));
    for (let seq = 1; seq <= 4; seq++) h.queue.enqueue(message(seq));
    h.queue.dispatch();
    for (let seq = 5; seq <= 9; seq++) h.queue.enqueue(message(seq));
    h.queue.dispatch();
    expect(who(h.deliveries)).toEqual(['1/7', '2/7', '3/7', '1/7', '2/7', '3/7', '1/7', '2/7', '3/7']);
    expect(h.deliveries.map((d) => d.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it('message queue - round robin skips a consumer without capacity and it keeps its place', () => {
    const h = harness();
    const a = consumer(1, 1, { prefetch: 1 });
    const b = consumer(2, 1);
    const c = consumer(3, 1);
    for (const x of [a, b, c]) h.queue.addConsumer(x);
    for (let seq = 1; seq <= 5; seq++) h.queue.enqueue(message(seq));
    h.queue.dispatch();
    // a takes 1, then is full: b, c, (skip a) b, c
    expect(who(h.deliveries)).toEqual(['1/1', '2/1', '3/1', '2/1', '3/1']);
    h.queue.ack(h.deliveries[0].tag);
    for (let seq = 6; seq <= 8; seq++) h.queue.enqueue(message(seq));
    h.queue.dispatch();
    // the turn is at a again, which has room now
    expect(who(h.deliveries.slice(5))).toEqual(['1/1', '2/1', '3/1']);
  });

  it('message queue - prefetch limits a client-ack consumer and each ack frees one slot', () => {
    const h = harness();
    const c = consumer(1, 1, { prefetch: 2 });
    h.queue.addConsumer(c);
    for (let seq = 1; seq <= 5; seq++) h.queue.enqueue(message(seq));
    expect(h.queue.dispatch()).toBe(2);
    expect(c.unacked).toBe(2);
    expect(h.queue.depth).toBe(3);
    expect(h.queue.dispatch()).toBe(0);

    expect(h.queue.ack(h.deliveries[0].tag)).toBe(true);
    expect(c.unacked).toBe(1);
    expect(h.queue.dispatch()).toBe(1);
    expect(h.deliveries.map((d) => d.seq)).toEqual([1, 2, 3]);
    expect(h.queue.dispatch()).toBe(0);
  });

  it('message queue - prefetch 0 is unlimited, and prefetch is ignored for auto-ack', () => {
    const unlimited = harness();
    const c = consumer(1, 1, { prefetch: 0 });
    unlimited.queue.addConsumer(c);
    for (let seq = 1; seq <= 50; seq++) unlimited.queue.enqueue(message(seq));
    expect(unlimited.queue.dispatch()).toBe(50);
    expect(c.unacked).toBe(50);

    const auto = harness();
    const a = consumer(1, 1, { ackMode: 'auto', prefetch: 1 });
    auto.queue.addConsumer(a);
    for (let seq = 1; seq <= 5; seq++) auto.queue.enqueue(message(seq));
    expect(auto.queue.dispatch()).toBe(5);
    expect(a.unacked).toBe(0);
    expect(auto.queue.unackedCount).toBe(0);
  });

  it('message queue - auto-ack deliveries are not tracked: their tags cannot be acked', () => {
    const h = harness();
    h.queue.addConsumer(consumer(1, 1, { ackMode: 'auto' }));
    h.queue.enqueue(message(1));
    h.queue.dispatch();
    const tag = h.deliveries[0].tag;
    expect(h.queue.hasTag(tag)).toBe(false);
    expect(h.queue.ack(tag)).toBe(false);
    expect(h.queue.removeConsumer(1, 1)).toBe(0);
    expect(h.queue.depth).toBe(0);
  });

  it('message queue - credit limits deliveries in both ack modes; granting more resumes', () => {
    const h = harness();
    const auto = consumer(1, 1, { ackMode: 'auto', credit: 2 });
    const client = consumer(2, 1, { credit: 1 });
    h.queue.addConsumer(auto);
    h.queue.addConsumer(client);
    for (let seq = 1; seq <= 6; seq++) h.queue.enqueue(message(seq));
    expect(h.queue.dispatch()).toBe(3);
    expect(who(h.deliveries)).toEqual(['1/1', '2/1', '1/1']);
    expect(auto.credit).toBe(0);
    expect(client.credit).toBe(0);
    // Acking does not give credit back; only the front end does.
    h.queue.ack(h.deliveries[1].tag);
    expect(h.queue.dispatch()).toBe(0);
    client.credit = 2;
    expect(h.queue.dispatch()).toBe(2);
    expect(who(h.deliveries.slice(3))).toEqual(['2/1', '2/1']);
    expect(h.queue.depth).toBe(1);
  });

  it('message queue - deliver() returning false keeps the message first and dispatch resumes in order', () => {
    const h = harness();
    h.queue.addConsumer(consumer(1, 1));
    h.queue.addConsumer(consumer(2, 1));
    for (let seq = 1; seq <= 4; seq++) h.queue.enqueue(message(seq, 3));
    h.room = 0;
    expect(h.queue.dispatch()).toBe(0);
    expect(h.refused).toBe(1); // it stopped at the first refusal
    expect(h.queue.depth).toBe(4);
    expect(h.queue.readyBytes).toBe(12);
    expect(h.queue.unackedCount).toBe(0);
    expect(h.queue.readyMessages()[0].deliveryCount).toBe(0); // the failed attempt is not counted

    h.room = Infinity;
    expect(h.queue.dispatch()).toBe(4);
    expect(h.deliveries.map((d) => d.seq)).toEqual([1, 2, 3, 4]);
    // The consumer whose write failed keeps its turn.
    expect(who(h.deliveries)).toEqual(['1/1', '2/1', '1/1', '2/1']);
  });

  it('message queue - a writer that fills mid-dispatch stops there and resumes with the next message', () => {
    const h = harness();
    h.queue.addConsumer(consumer(1, 1, { ackMode: 'auto' }));
    for (let seq = 1; seq <= 5; seq++) h.queue.enqueue(message(seq));
    h.room = 2;
    expect(h.queue.dispatch()).toBe(2);
    expect(h.queue.readyMessages().map((m) => m.seq)).toEqual([3, 4, 5]);
    h.room = Infinity;
    expect(h.queue.dispatch()).toBe(3);
    expect(h.deliveries.map((d) => d.seq)).toEqual([1, 2, 3, 4, 5]);
  });

  it('message queue - removeConsumer requeues its unacked at their original position, redelivered, to the remaining consumer', () => {
    const h = harness();
    const a = consumer(1, 1, { prefetch: 2 });
    const b = consumer(2, 1, { prefetch: 2 });
    h.queue.addConsumer(a);
    h.queue.addConsumer(b);
    for (let seq = 1; seq <= 6; seq++) h.queue.enqueue(message(seq, 5));
    expect(h.queue.dispatch()).toBe(4); // a: 1,3  b: 2,4 ; 5,6 ready
    expect(h.queue.readyMessages().map((m) => m.seq)).toEqual([5, 6]);

    expect(h.queue.removeConsumer(1, 1)).toBe(2);
    expect(a.unacked).toBe(0);
    expect(h.queue.consumerCount).toBe(1);
    expect(h.queue.unackedCount).toBe(2);
    expect(h.queue.readyMessages().map((m) => [m.seq, m.redelivered])).toEqual([
      [1, true],
      [3, true],
      [5, false],
      [6, false],
    ]);
    expect(h.queue.readyBytes).toBe(20);

    h.queue.ack(h.deliveries[1].tag); // b acks 2 and 4
    h.queue.ack(h.deliveries[3].tag);
    expect(h.queue.dispatch()).toBe(2);
    const redelivered = h.deliveries.slice(4);
    expect(who(redelivered)).toEqual(['2/1', '2/1']);
    expect(redelivered.map((d) => [d.seq, d.redelivered, d.deliveryCount])).toEqual([
      [1, true, 2],
      [3, true, 2],
    ]);
  });

  it('message queue - removeConsumer of an unknown consumer requeues nothing', () => {
    const h = harness();
    h.queue.addConsumer(consumer(1, 1));
    expect(h.queue.removeConsumer(1, 2)).toBe(0);
    expect(h.queue.removeConsumer(9, 1)).toBe(0);
    expect(h.queue.consumerCount).toBe(1);
  });

  it('message queue - removeConnection removes all its consumers and requeues their messages in seq order', () => {
    const h = harness();
    h.queue.addConsumer(consumer(1, 1));
    h.queue.addConsumer(consumer(2, 1));
    h.queue.addConsumer(consumer(1, 2));
    for (let seq = 1; seq <= 6; seq++) h.queue.enqueue(message(seq));
    h.queue.dispatch(); // 1/1: 1,4  2/1: 2,5  1/2: 3,6
    h.queue.enqueue(message(7));
    expect(h.queue.removeConnection(1)).toBe(4);
    expect(h.queue.consumerCount).toBe(1);
    expect(h.queue.hasConsumer(1, 1)).toBe(false);
    expect(h.queue.hasConsumer(2, 1)).toBe(true);
    expect(h.queue.readyMessages().map((m) => m.seq)).toEqual([1, 3, 4, 6, 7]);
    expect(h.queue.removeConnection(1)).toBe(0);
  });

  it('message queue - removing consumers keeps the turn with the consumer that had it', () => {
    const h = harness();
    for (const id of [1, 2, 3, 4]) h.queue.addConsumer(consumer(id, 1, { ackMode: 'auto' }));
    for (let seq = 1; seq <= 2; seq++) h.queue.enqueue(message(seq));
    h.queue.dispatch(); // 1, 2 served; turn at 3
    h.queue.removeConsumer(1, 1); // before the turn
    h.queue.enqueue(message(3));
    h.queue.dispatch();
    expect(who(h.deliveries.slice(2))).toEqual(['3/1']);
    h.queue.removeConsumer(4, 1); // the one whose turn it is: the turn wraps to the next (2)
    h.queue.enqueue(message(4));
    h.queue.dispatch();
    expect(who(h.deliveries.slice(3))).toEqual(['2/1']);
  });

  it('message queue - adding the same (connection, subscription) twice throws', () => {
    const h = harness();
    h.queue.addConsumer(consumer(1, 1));
    expect(() => h.queue.addConsumer(consumer(1, 1))).toThrow(/already registered/);
  });

  it('message queue - nack with requeue puts the message back at its position, redelivered', () => {
    const h = harness();
    const c = consumer(1, 1, { prefetch: 1 });
    h.queue.addConsumer(c);
    for (let seq = 1; seq <= 3; seq++) h.queue.enqueue(message(seq));
    h.queue.dispatch();
    expect(h.queue.reject(h.deliveries[0].tag, true)).toBeNull();
    expect(c.unacked).toBe(0);
    expect(h.queue.readyMessages().map((m) => [m.seq, m.redelivered])).toEqual([
      [1, true],
      [2, false],
      [3, false],
    ]);
    h.queue.dispatch();
    expect(h.deliveries[1]).toMatchObject({ seq: 1, redelivered: true, deliveryCount: 2 });
    expect(h.deliveries[1].tag).not.toBe(h.deliveries[0].tag);
    expect(h.queue.hasTag(h.deliveries[0].tag)).toBe(false);
    expect(h.queue.stats.requeued).toBe(1);
  });

  it('message queue - nack with requeue goes behind older ready messages and ahead of newer ones', () => {
    const h = harness();
    h.queue.addConsumer(consumer(1, 1, { prefetch: 1 }));
    h.queue.enqueue(message(5));
    h.queue.dispatch();
    h.queue.enqueue(message(2)); // an older message that reached the queue late
    h.queue.enqueue(message(9));
    h.queue.reject(h.deliveries[0].tag, true);
    expect(h.queue.readyMessages().map((m) => m.seq)).toEqual([2, 5, 9]);
  });

  it('message queue - reject without requeue drops the message and hands it back', () => {
    const h = harness();
    h.queue.addConsumer(consumer(1, 1));
    h.queue.enqueue(message(1));
    h.queue.dispatch();
    const dropped = h.queue.reject(h.deliveries[0].tag, false);
    expect(dropped).not.toBe(false);
    expect(dropped).not.toBeNull();
    expect((dropped as { seq: number }).seq).toBe(1);
    expect(h.queue.depth).toBe(0);
    expect(h.queue.unackedCount).toBe(0);
    expect(h.queue.stats.dropped).toBe(1);
  });

  it('message queue - unknown or settled tags: ack and reject say so, and nothing changes', () => {
    const h = harness();
    h.queue.addConsumer(consumer(1, 1));
    h.queue.enqueue(message(1));
    h.queue.dispatch();
    const tag = h.deliveries[0].tag;
    expect(h.queue.ack(12345)).toBe(false);
    expect(h.queue.reject(12345, true)).toBe(false);
    expect(h.queue.tagOwner(12345)).toBeUndefined();
    expect(h.queue.ack(tag)).toBe(true);
    expect(h.queue.ack(tag)).toBe(false);
    expect(h.queue.reject(tag, false)).toBe(false);
    expect(h.queue.stats.acked).toBe(1);
  });

  it("message queue - a consumer may ack another consumer's tag; tagOwner tells the shard whose it is", () => {
    const h = harness();
    const a = consumer(1, 1);
    const b = consumer(1, 2);
    h.queue.addConsumer(a);
    h.queue.addConsumer(b);
    h.queue.enqueue(message(1));
    h.queue.enqueue(message(2));
    h.queue.dispatch();
    const tagOfB = h.deliveries[1].tag;
    expect(h.queue.tagOwner(tagOfB)).toBe(b);
    expect(h.queue.ack(tagOfB)).toBe(true);
    expect(b.unacked).toBe(0);
    expect(a.unacked).toBe(1);
  });

  it('message queue - purge drops ready messages only', () => {
    const h = harness();
    h.queue.addConsumer(consumer(1, 1, { prefetch: 1 }));
    for (let seq = 1; seq <= 4; seq++) h.queue.enqueue(message(seq, 8));
    h.queue.dispatch();
    expect(h.queue.purge()).toBe(3);
    expect(h.queue.depth).toBe(0);
    expect(h.queue.readyBytes).toBe(0);
    expect(h.queue.unackedCount).toBe(1);
    expect(h.queue.stats.purged).toBe(3);
    // The unacked one can still come back.
    h.queue.reject(h.deliveries[0].tag, true);
    expect(h.queue.depth).toBe(1);
  });

  it('message queue - dropHead drops the oldest ready message, never an unacked one', () => {
    const h = harness();
    h.queue.addConsumer(consumer(1, 1, { prefetch: 1 }));
    for (let seq = 1; seq <= 3; seq++) h.queue.enqueue(message(seq, 2));
    h.queue.dispatch(); // 1 is unacked
    expect(h.queue.dropHead()?.seq).toBe(2);
    expect(h.queue.readyMessages().map((m) => m.seq)).toEqual([3]);
    expect(h.queue.readyBytes).toBe(2);
    expect(h.queue.unackedCount).toBe(1);
    expect(h.queue.dropHead()?.seq).toBe(3);
    expect(h.queue.dropHead()).toBeUndefined();
    expect(h.queue.stats.overflowed).toBe(2);
  });

  it('message queue - 100 messages across two client-ack consumers acked in random order: none lost or duplicated', () => {
    const seed = 100;
    const prng = new Prng(seed);
    const h = harness();
    const a = consumer(1, 1, { prefetch: 5 });
    const b = consumer(2, 1, { prefetch: 3 });
    h.queue.addConsumer(a);
    h.queue.addConsumer(b);
    for (let seq = 1; seq <= 100; seq++) h.queue.enqueue(message(seq));
    const acked: number[] = [];
    const open = new Map<number, number>(); // tag -> seq
    for (let round = 0; round < 1000 && acked.length < 100; round++) {
      const before = h.deliveries.length;
      h.queue.dispatch();
      for (const d of h.deliveries.slice(before)) open.set(d.tag, d.seq);
      expect(a.unacked, `seed ${seed}`).toBeLessThanOrEqual(5);
      expect(b.unacked, `seed ${seed}`).toBeLessThanOrEqual(3);
      // Ack a random 1..3 of the open deliveries, in random order.
      for (let n = prng.int(1, 3); n > 0 && open.size > 0; n--) {
        const tag = prng.pick([...open.keys()]);
        expect(h.queue.ack(tag), `seed ${seed}`).toBe(true);
        acked.push(open.get(tag) as number);
        open.delete(tag);
      }
    }
    expect(h.deliveries).toHaveLength(100);
    expect(
      [...acked].sort((x, y) => x - y),
      `seed ${seed}`,
    ).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    expect(new Set(h.deliveries.map((d) => d.tag)).size).toBe(100);
    expect(h.queue.depth).toBe(0);
    expect(h.queue.unackedCount).toBe(0);
    expect(h.deliveries.filter((d) => d.consumer === a).length).toBeGreaterThan(0);
    expect(h.deliveries.filter((d) => d.consumer === b).length).toBeGreaterThan(0);
  });

  describe('fast path', () => {
    it('message queue - nextIdleConsumer follows the round-robin turn shared with dispatch', () => {
      const h = harness();
      const a = consumer(1, 1, { ackMode: 'auto' });
      const b = consumer(2, 1, { ackMode: 'auto' });
      const c = consumer(3, 1, { ackMode: 'auto' });
      for (const x of [a, b, c]) h.queue.addConsumer(x);
      expect(h.queue.nextIdleConsumer()).toBe(a);
      expect(h.queue.nextIdleConsumer()).toBe(b);
      // dispatch continues from the turn the fast path left
      h.queue.enqueue(message(1));
      h.queue.dispatch();
      expect(who(h.deliveries)).toEqual(['3/1']);
      expect(h.queue.nextIdleConsumer()).toBe(a);
    });

    it('message queue - nextIdleConsumer returns null while messages are ready (so nothing overtakes them)', () => {
      const h = harness();
      h.queue.addConsumer(consumer(1, 1, { prefetch: 1 }));
      h.queue.addConsumer(consumer(2, 1, { prefetch: 1 }));
      h.queue.enqueue(message(1));
      expect(h.queue.nextIdleConsumer()).toBeNull();
      h.queue.dispatch();
      // Nothing ready and 2/1 has room: it is the one.
      expect(h.queue.nextIdleConsumer()?.connectionId).toBe(2);
    });

    it('message queue - nextIdleConsumer skips consumers without capacity and returns null when none has any', () => {
      const h = harness();
      const a = consumer(1, 1, { credit: 0, ackMode: 'auto' });
      const b = consumer(2, 1, { prefetch: 1 });
      h.queue.addConsumer(a);
      h.queue.addConsumer(b);
      expect(h.queue.nextIdleConsumer()).toBe(b);
      expect(h.queue.deliverNow(b, message(1))).toBe(true);
      expect(h.queue.nextIdleConsumer()).toBeNull();
      a.credit = 1;
      expect(h.queue.nextIdleConsumer()).toBe(a);
      expect(harness().queue.nextIdleConsumer()).toBeNull(); // no consumers at all
    });

    it('message queue - published counts each message taken once: queued, delivered now or written straight through; never a requeue', () => {
      const h = harness();
      const c = consumer(1, 1, { prefetch: 10 });
      h.queue.enqueue(message(1));
      h.queue.addConsumer(c);
      h.queue.dispatch();
      expect(h.queue.deliverNow(c, message(2))).toBe(true);
      const auto = consumer(2, 1, { ackMode: 'auto' });
      h.queue.addConsumer(auto);
      h.queue.noteDirectDelivery(auto, 10);
      expect(h.queue.stats.published).toBe(3);
      expect(h.queue.reject(h.deliveries[0].tag, true)).toBeNull(); // back to ready: not published again
      expect(h.queue.stats.published).toBe(3);
      expect(h.queue.stats.requeued).toBe(1);
    });

    it('message queue - deliverNow tracks a client-ack delivery like dispatch does', () => {
      const h = harness();
      const c = consumer(1, 1, { prefetch: 2, credit: 5 });
      h.queue.addConsumer(c);
      const m = message(1);
      expect(h.queue.deliverNow(h.queue.nextIdleConsumer()!, m)).toBe(true);
      expect(h.deliveries[0]).toMatchObject({ seq: 1, deliveryCount: 1, redelivered: false });
      expect(c.unacked).toBe(1);
      expect(c.credit).toBe(4);
      expect(h.queue.tagOwner(h.deliveries[0].tag)).toBe(c);
      expect(h.queue.removeConsumer(1, 1)).toBe(1);
      expect(h.queue.readyMessages()).toEqual([m]);
      expect(m.redelivered).toBe(true);
    });

    it('message queue - deliverNow that cannot write enqueues the message for dispatch', () => {
      const h = harness();
      const c = consumer(1, 1);
      h.queue.addConsumer(c);
      h.room = 0;
      const m = message(1, 6);
      expect(h.queue.deliverNow(h.queue.nextIdleConsumer()!, m)).toBe(false);
      expect(h.queue.depth).toBe(1);
      expect(h.queue.readyBytes).toBe(6);
      expect(c.unacked).toBe(0);
      expect(c.credit).toBe(Infinity);
      expect(m.deliveryCount).toBe(0);
      expect(h.queue.nextIdleConsumer()).toBeNull();
      h.room = Infinity;
      expect(h.queue.dispatch()).toBe(1);
      expect(h.deliveries[0]).toMatchObject({ seq: 1, redelivered: false, deliveryCount: 1 });
    });

    it('message queue - deliverNow to an unregistered consumer throws', () => {
      const h = harness();
      expect(() => h.queue.deliverNow(consumer(1, 1), message(1))).toThrow(/unregistered/);
    });

    it('message queue - noteDirectDelivery takes credit for auto-ack and refuses client-ack', () => {
      const h = harness();
      const a = consumer(1, 1, { ackMode: 'auto', credit: 1 });
      const b = consumer(2, 1);
      h.queue.addConsumer(a);
      h.queue.addConsumer(b);
      expect(h.queue.nextIdleConsumer()).toBe(a);
      h.queue.noteDirectDelivery(a, 10);
      expect(a.credit).toBe(0);
      expect(h.queue.stats.delivered).toBe(1);
      expect(h.queue.nextIdleConsumer()).toBe(b);
      expect(h.queue.nextIdleConsumer()).toBe(b); // a is out of credit
      expect(() => h.queue.noteDirectDelivery(b, 10)).toThrow(/auto-ack/);
    });
  });
});
