import { describe, expect, it } from 'vitest';
import { xDeathOf } from '../../src/queue/dead-letter.js';
import { ExpiryScheduler } from '../../src/queue/expiry-scheduler.js';
import type { MessageQueue } from '../../src/queue/message-queue.js';
import type { MessageProperties } from '../../src/queue/types.js';
import { consumer, deadSeqs, harness, message, who, type Harness } from './harness.js';

const DLX = { 'x-dead-letter-exchange': 'dlx' };

const seqsOf = (h: Harness): number[] => h.queue.readyMessages().map((m) => m.seq);
const delivered = (h: Harness): number[] => h.deliveries.map((d) => d.seq);
const withPriority = (seq: number, priority?: number): ReturnType<typeof message> =>
  message(seq, 4, priority === undefined ? null : { priority });
const expiring = (seq: number, expiration: string, extra: MessageProperties = {}): ReturnType<typeof message> =>
  message(seq, 4, { ...extra, expiration });

describe('queue arguments in the message queue', () => {
  describe('x-max-length, drop-head', () => {
    it('max-length drop-head - keeps the newest N and dead-letters the dropped oldest with reason maxlen', () => {
      const h = harness('jobs', { args: { 'x-max-length': 3, ...DLX } });
      for (let seq = 1; seq <= 5; seq++) expect(h.queue.enqueue(message(seq))).toBe('accepted');
      expect(seqsOf(h)).toEqual([3, 4, 5]);
      expect(deadSeqs(h)).toEqual(['1:maxlen', '2:maxlen']);
      const death = xDeathOf(h.deadLetters[0].message)[0];
      expect(death).toMatchObject({ count: 1, reason: 'maxlen', queue: 'jobs', exchange: '', 'routing-keys': ['k1'] });
      expect(h.deadLetters[0].message).toMatchObject({ exchange: 'dlx', routingKey: 'k1' });
      expect(h.queue.stats).toMatchObject({ maxlenDropped: 2, deadLettered: 2, rejectedPublishes: 0 });
    });

    it('max-length drop-head - without a dead-letter exchange the oldest are dropped (counted, not dead-lettered)', () => {
      const h = harness('q', { args: { 'x-max-length': 2 } });
      for (let seq = 1; seq <= 4; seq++) h.queue.enqueue(message(seq));
      expect(seqsOf(h)).toEqual([3, 4]);
      expect(h.deadLetters).toEqual([]);
      expect(h.queue.stats).toMatchObject({ maxlenDropped: 2, deadLettered: 0 });
    });

    it('max-length drop-head - counts ready messages only: unacked ones do not count, but a requeue over the limit drops the head', () => {
      const h = harness('q', { args: { 'x-max-length': 2, ...DLX } });
      h.queue.addConsumer(consumer(1, 1, { prefetch: 2 }));
      h.queue.enqueue(message(1));
      h.queue.enqueue(message(2));
      h.queue.dispatch(); // 1, 2 unacked
      h.queue.enqueue(message(3));
      h.queue.enqueue(message(4)); // 2 ready: at the limit, not over
      expect(seqsOf(h)).toEqual([3, 4]);
      expect(h.queue.unackedCount).toBe(2);
      expect(h.deadLetters).toEqual([]);
      // RabbitMQ applies the limit after a requeue too: 1 comes back at the head and is dropped.
      expect(h.queue.reject(h.deliveries[0].tag, true)).toBeNull();
      expect(seqsOf(h)).toEqual([3, 4]);
      expect(deadSeqs(h)).toEqual(['1:maxlen']);
    });

    it('max-length 0 drop-head - nothing is kept, but an idle consumer still gets a fresh publish directly', () => {
      const h = harness('q', { args: { 'x-max-length': 0, ...DLX } });
      h.queue.enqueue(message(1));
      expect(h.queue.depth).toBe(0);
      expect(deadSeqs(h)).toEqual(['1:maxlen']);
      const c = consumer(1, 1);
      h.queue.addConsumer(c);
      expect(h.queue.nextIdleConsumer()).toBe(c);
    });
  });

  describe('x-overflow reject-publish', () => {
    it('reject-publish - refuses the publish that would go over the limit and drops nothing', () => {
      const h = harness('q', { args: { 'x-max-length': 2, 'x-overflow': 'reject-publish', ...DLX } });
      expect(h.queue.enqueue(message(1))).toBe('accepted');
      expect(h.queue.enqueue(message(2))).toBe('accepted');
      expect(h.queue.enqueue(message(3))).toBe('rejected');
      expect(seqsOf(h)).toEqual([1, 2]);
      expect(h.deadLetters).toEqual([]); // refused, not dead-lettered, even with a DLX
      expect(h.queue.stats).toMatchObject({ rejectedPublishes: 1, maxlenDropped: 0, deadLettered: 0 });
      // Room again once a message leaves.
      h.queue.addConsumer(consumer(1, 1, { prefetch: 1 }));
      h.queue.dispatch();
      expect(h.queue.enqueue(message(4))).toBe('accepted');
      expect(seqsOf(h)).toEqual([2, 4]);
    });

    it('reject-publish - a requeue may take the queue over the limit; nothing is dropped for it', () => {
      const h = harness('q', { args: { 'x-max-length': 1, 'x-overflow': 'reject-publish' } });
      h.queue.addConsumer(consumer(1, 1, { prefetch: 1 }));
      h.queue.enqueue(message(1));
      h.queue.dispatch();
      h.queue.enqueue(message(2));
      h.queue.reject(h.deliveries[0].tag, true);
      expect(seqsOf(h)).toEqual([1, 2]);
      expect(h.queue.enqueue(message(3))).toBe('rejected');
    });

    it('reject-publish with x-max-length 0 - the fast path offers no consumer, so the publish is refused', () => {
      const h = harness('q', { args: { 'x-max-length': 0, 'x-overflow': 'reject-publish' } });
      h.queue.addConsumer(consumer(1, 1));
      expect(h.queue.nextIdleConsumer()).toBeNull();
      expect(h.queue.enqueue(message(1))).toBe('rejected');
    });

    it('reject-publish-dlx - refuses the publish and dead-letters it with reason maxlen', () => {
      const h = harness('capped', { args: { 'x-max-length': 1, 'x-overflow': 'reject-publish-dlx', ...DLX } });
      expect(h.queue.enqueue(message(1))).toBe('accepted');
      expect(h.queue.enqueue(message(2))).toBe('rejected');
      expect(seqsOf(h)).toEqual([1]);
      expect(deadSeqs(h)).toEqual(['2:maxlen']);
      expect(xDeathOf(h.deadLetters[0].message)[0]).toMatchObject({ reason: 'maxlen', queue: 'capped' });
      expect(h.queue.stats).toMatchObject({ rejectedPublishes: 1, deadLettered: 1, maxlenDropped: 0 });
    });
  });

  describe('x-max-length-bytes', () => {
    it('max-length-bytes - drop-head keeps the ready payload bytes within the limit', () => {
      const h = harness('q', { args: { 'x-max-length-bytes': 10, ...DLX } });
      h.queue.enqueue(message(1, 4));
      h.queue.enqueue(message(2, 4));
      expect(h.queue.readyBytes).toBe(8);
      h.queue.enqueue(message(3, 4)); // 12 > 10: the oldest goes
      expect(seqsOf(h)).toEqual([2, 3]);
      expect(h.queue.readyBytes).toBe(8);
      h.queue.enqueue(message(4, 10)); // needs everything else gone
      expect(seqsOf(h)).toEqual([4]);
      h.queue.enqueue(message(5, 11)); // larger than the limit on its own: nothing survives
      expect(seqsOf(h)).toEqual([]);
      expect(deadSeqs(h)).toEqual(['1:maxlen', '2:maxlen', '3:maxlen', '4:maxlen', '5:maxlen']);
    });

    it('max-length-bytes - reject-publish refuses a message that does not fit, accepts a smaller one', () => {
      const h = harness('q', { args: { 'x-max-length-bytes': 10, 'x-overflow': 'reject-publish' } });
      expect(h.queue.enqueue(message(1, 8))).toBe('accepted');
      expect(h.queue.enqueue(message(2, 4))).toBe('rejected');
      expect(h.queue.enqueue(message(3, 2))).toBe('accepted');
      expect(seqsOf(h)).toEqual([1, 3]);
      h.queue.addConsumer(consumer(1, 1));
      expect(h.queue.nextIdleConsumer(11)).toBeNull(); // would not fit even an empty queue
    });

    it('max-length and max-length-bytes together - whichever limit is hit first applies', () => {
      const h = harness('q', { args: { 'x-max-length': 3, 'x-max-length-bytes': 100 } });
      for (let seq = 1; seq <= 4; seq++) h.queue.enqueue(message(seq, 10));
      expect(seqsOf(h)).toEqual([2, 3, 4]);
      h.queue.enqueue(message(5, 90));
      expect(seqsOf(h)).toEqual([4, 5]);
    });
  });

  describe('x-max-priority', () => {
    it('priority - higher priority first, FIFO within a priority, absent = 0, above the max = the max', () => {
      const h = harness('q', { args: { 'x-max-priority': 10 } });
      const priorities: [number, number | undefined][] = [
        [1, 0],
        [2, 5],
        [3, 5],
        [4, 9],
        [5, undefined],
        [6, 200],
        [7, 10],
        [8, 2.7],
      ];
      for (const [seq, priority] of priorities) h.queue.enqueue(withPriority(seq, priority));
      expect(seqsOf(h)).toEqual([6, 7, 4, 2, 3, 8, 1, 5]);
      h.queue.addConsumer(consumer(1, 1, { ackMode: 'auto' }));
      h.queue.dispatch();
      expect(delivered(h)).toEqual([6, 7, 4, 2, 3, 8, 1, 5]);
    });

    it('priority - a late high-priority publish overtakes waiting messages', () => {
      const h = harness('q', { args: { 'x-max-priority': 5 } });
      const c = consumer(1, 1, { prefetch: 1 });
      h.queue.addConsumer(c);
      for (let seq = 1; seq <= 3; seq++) h.queue.enqueue(withPriority(seq, 1));
      h.queue.dispatch(); // 1 out
      h.queue.enqueue(withPriority(4, 5));
      h.queue.ack(h.deliveries[0].tag);
      h.queue.dispatch();
      expect(delivered(h)).toEqual([1, 4]);
    });

    it('priority - requeued messages go back to their original position within their priority', () => {
      const h = harness('q', { args: { 'x-max-priority': 10 } });
      h.queue.addConsumer(consumer(1, 1, { prefetch: 3 }));
      for (const [seq, p] of [
        [1, 0],
        [2, 5],
        [3, 5],
        [4, 9],
        [5, 0],
        [6, 10],
        [7, 10],
      ] as const)
        h.queue.enqueue(withPriority(seq, p));
      h.queue.dispatch(); // 6, 7, 4 out
      expect(delivered(h)).toEqual([6, 7, 4]);
      expect(h.queue.reject(h.deliveries[1].tag, true)).toBeNull(); // 7 back, first of priority 10
      expect(seqsOf(h)).toEqual([7, 2, 3, 1, 5]);
      expect(h.queue.removeConsumer(1, 1)).toBe(2); // 6 and 4 back into place
      expect(seqsOf(h)).toEqual([6, 7, 4, 2, 3, 1, 5]);
      expect(h.queue.readyMessages().map((m) => m.redelivered)).toEqual([true, true, true, false, false, false, false]);
      expect(h.queue.readyBytes).toBe(28);
      h.queue.addConsumer(consumer(2, 1, { ackMode: 'auto' }));
      h.queue.dispatch();
      expect(delivered(h).slice(3)).toEqual([6, 7, 4, 2, 3, 1, 5]);
    });

    it('priority - without x-max-priority the priority property is ignored (plain FIFO)', () => {
      const h = harness('q');
      for (const [seq, p] of [
        [1, 0],
        [2, 9],
        [3, 5],
      ] as const)
        h.queue.enqueue(withPriority(seq, p));
      expect(seqsOf(h)).toEqual([1, 2, 3]);
    });

    it('priority - drop-head overflow drops the head, i.e. the oldest message of the highest priority (as RabbitMQ)', () => {
      const h = harness('q', { args: { 'x-max-priority': 5, 'x-max-length': 2, ...DLX } });
      h.queue.enqueue(withPriority(1, 5));
      h.queue.enqueue(withPriority(2, 0));
      h.queue.enqueue(withPriority(3, 0));
      expect(seqsOf(h)).toEqual([2, 3]);
      expect(deadSeqs(h)).toEqual(['1:maxlen']);
    });
  });

  describe('TTL', () => {
    it('per-queue TTL - a message expires x-message-ttl after it was published and is dead-lettered with reason expired', () => {
      const h = harness('short', { args: { 'x-message-ttl': 1_000, ...DLX }, time: 0 });
      h.queue.enqueue(message(1));
      h.clock.now = 500;
      h.queue.enqueue(message(2));
      expect(h.queue.readyMessages().map((m) => m.expiresAt)).toEqual([1_000, 1_500]);
      expect(h.queue.nextExpiry()).toBe(1_000);
      expect(h.queue.expire(999)).toBe(0);
      expect(h.queue.expire(1_000)).toBe(1);
      expect(seqsOf(h)).toEqual([2]);
      expect(h.queue.nextExpiry()).toBe(1_500);
      expect(h.queue.expire(2_000)).toBe(1);
      expect(h.queue.nextExpiry()).toBe(Infinity);
      expect(deadSeqs(h)).toEqual(['1:expired', '2:expired']);
      const death = xDeathOf(h.deadLetters[0].message)[0];
      expect(death).toMatchObject({ reason: 'expired', queue: 'short' });
      expect(death['original-expiration']).toBeUndefined(); // queue TTL, no per-message expiration
      expect(h.queue.stats).toMatchObject({ expired: 2, deadLettered: 2 });
    });

    it('per-message expiration - the lower of expiration and x-message-ttl wins; the dead-lettered copy has original-expiration and no expiration', () => {
      const h = harness('q', { args: { 'x-message-ttl': 1_000, ...DLX }, time: 0 });
      h.queue.enqueue(expiring(1, '200')); // message TTL lower
      h.queue.enqueue(expiring(2, '5000')); // queue TTL lower
      h.queue.enqueue(expiring(3, 'soon')); // invalid: ignored, queue TTL applies
      expect(h.queue.readyMessages().map((m) => m.expiresAt)).toEqual([200, 1_000, 1_000]);
      h.clock.now = 1_000;
      expect(h.queue.expire(1_000)).toBe(3);
      expect(deadSeqs(h)).toEqual(['1:expired', '2:expired', '3:expired']);
      expect(xDeathOf(h.deadLetters[0].message)[0]['original-expiration']).toBe('200');
      expect(xDeathOf(h.deadLetters[1].message)[0]['original-expiration']).toBe('5000');
      expect(h.deadLetters.every((d) => d.message.properties?.expiration === undefined)).toBe(true);
    });

    it('per-message expiration - works without a queue TTL; messages without one never expire', () => {
      const h = harness('q', { args: DLX, time: 0 });
      h.queue.enqueue(message(1));
      h.queue.enqueue(expiring(2, '100'));
      expect(h.queue.nextExpiry()).toBe(Infinity); // the head (1) never expires
      h.queue.addConsumer(consumer(1, 1, { prefetch: 1 }));
      h.clock.now = 150;
      h.queue.dispatch(); // 1 goes out; 2 is now the head, and expired
      expect(delivered(h)).toEqual([1]);
      h.queue.ack(h.deliveries[0].tag);
      h.queue.dispatch();
      expect(delivered(h)).toEqual([1]);
      expect(deadSeqs(h)).toEqual(['2:expired']);
    });

    it('TTL - expired messages are never delivered, even when dispatch runs before any timer', () => {
      const h = harness('q', { args: { 'x-message-ttl': 100, ...DLX }, time: 0 });
      for (let seq = 1; seq <= 3; seq++) h.queue.enqueue(message(seq));
      h.clock.now = 50;
      h.queue.enqueue(message(4));
      h.clock.now = 120;
      h.queue.addConsumer(consumer(1, 1, { ackMode: 'auto' }));
      expect(h.queue.dispatch()).toBe(1);
      expect(delivered(h)).toEqual([4]);
      expect(deadSeqs(h)).toEqual(['1:expired', '2:expired', '3:expired']);
    });

    it('TTL - a message behind an unexpired head waits for the head (RabbitMQ) but is never delivered', () => {
      const h = harness('q', { args: DLX, time: 0 });
      h.queue.enqueue(expiring(1, '10000'));
      h.queue.enqueue(expiring(2, '100'));
      h.clock.now = 200;
      expect(h.queue.expire(200)).toBe(0);
      expect(h.queue.nextExpiry()).toBe(10_000);
      h.queue.addConsumer(consumer(1, 1, { ackMode: 'auto' }));
      h.queue.dispatch();
      expect(delivered(h)).toEqual([1]);
      expect(deadSeqs(h)).toEqual(['2:expired']);
    });

    it('TTL - expiration "0" means deliver now or expire', () => {
      const h = harness('q', { args: DLX, time: 0 });
      // No consumer: it expires on arrival.
      expect(h.queue.enqueue(expiring(1, '0'))).toBe('accepted');
      expect(h.queue.depth).toBe(0);
      expect(deadSeqs(h)).toEqual(['1:expired']);
      // A consumer ready: the fast path delivers it.
      const c = consumer(1, 1);
      h.queue.addConsumer(c);
      expect(h.queue.nextIdleConsumer()).toBe(c);
      expect(h.queue.deliverNow(c, expiring(2, '0'))).toBe(true);
      expect(delivered(h)).toEqual([2]);
      // ...and if that consumer gives it back, it is already expired: gone, not redelivered.
      expect(h.queue.reject(h.deliveries[0].tag, true)).toBeNull();
      expect(h.queue.depth).toBe(0);
      expect(deadSeqs(h)).toEqual(['1:expired', '2:expired']);
      // The writer being full counts as "not now".
      h.room = 0;
      expect(h.queue.deliverNow(c, expiring(3, '0'))).toBe(false);
      expect(deadSeqs(h)).toEqual(['1:expired', '2:expired', '3:expired']);
    });

    it('TTL - unacked messages do not expire; a requeued message keeps its original expiry', () => {
      const h = harness('q', { args: { 'x-message-ttl': 1_000, ...DLX }, time: 0 });
      h.queue.addConsumer(consumer(1, 1, { prefetch: 2 }));
      h.queue.enqueue(message(1));
      h.clock.now = 800;
      h.queue.enqueue(message(2));
      h.queue.dispatch(); // both unacked
      h.clock.now = 1_500;
      expect(h.queue.expire(1_500)).toBe(0);
      expect(h.queue.unackedCount).toBe(2);
      // 1 (expired at 1000) comes back: expired on the spot; 2 (expires 1800) waits.
      h.queue.reject(h.deliveries[0].tag, true);
      h.queue.reject(h.deliveries[1].tag, true);
      expect(seqsOf(h)).toEqual([2]);
      expect(deadSeqs(h)).toEqual(['1:expired']);
      expect(h.queue.nextExpiry()).toBe(1_800);
    });

    it('TTL with priorities - the head of every priority level is checked', () => {
      const h = harness('q', { args: { 'x-max-priority': 3, ...DLX }, time: 0 });
      h.queue.enqueue(message(1, 4, { priority: 3, expiration: '5000' }));
      h.queue.enqueue(message(2, 4, { priority: 1, expiration: '100' }));
      h.queue.enqueue(message(3, 4, { priority: 0 }));
      expect(h.queue.nextExpiry()).toBe(100);
      expect(h.queue.expire(100)).toBe(1);
      expect(seqsOf(h)).toEqual([1, 3]);
      expect(h.queue.nextExpiry()).toBe(5_000);
    });

    it('TTL - scheduleExpiry is told when the earliest expiry moves earlier, and again after each expire()', () => {
      const reports: number[] = [];
      const h = harness('q', { args: { 'x-message-ttl': 1_000 }, time: 0, scheduleExpiry: (_q, at) => reports.push(at) });
      h.queue.enqueue(message(1)); // head, expires 1000
      h.clock.now = 100;
      h.queue.enqueue(message(2)); // expires 1100: later than reported, no report
      h.queue.enqueue(expiring(3, '50')); // expires 150 but behind the head, which decides
      expect(reports).toEqual([1_000]);
      h.clock.now = 1_000;
      expect(h.queue.expire(1_000)).toBe(1);
      expect(reports).toEqual([1_000, 1_100]);
      h.clock.now = 1_100;
      expect(h.queue.expire(1_100)).toBe(2); // 2, then 3 (long expired) behind it
      expect(reports).toEqual([1_000, 1_100]); // nothing left to expire
      expect(h.queue.nextExpiry()).toBe(Infinity);
    });

    it('TTL - no arguments and no expiring messages means no clock reads on the hot paths', () => {
      const h = harness('q');
      let reads = 0;
      (h as { clock: unknown }).clock = {
        get now() {
          reads++;
          return 0;
        },
      };
      h.queue.addConsumer(consumer(1, 1, { ackMode: 'auto' }));
      const before = reads;
      for (let seq = 1; seq <= 100; seq++) h.queue.enqueue(message(seq));
      h.queue.dispatch();
      h.queue.deliverNow(h.queue.nextIdleConsumer() as ReturnType<typeof consumer>, message(101));
      expect(delivered(h)).toHaveLength(101);
      expect(reads - before).toBe(0);
    });
  });

  describe('one wheel for many queues', () => {
    it('expiry scheduler - one wheel expires the messages of many queues on time, with at most one timer per queue', () => {
      const clock = { now: 0 };
      const scheduler = new ExpiryScheduler({ tickMs: 10 });
      const queues: Harness[] = [];
      for (const [name, ttl] of [
        ['fast', 100],
        ['medium', 1_000],
        ['slow', 60_000],
      ] as const) {
        const h = harness(name, { args: { 'x-message-ttl': ttl, ...DLX }, time: 0, scheduleExpiry: scheduler.schedule });
        (h as { clock: unknown }).clock = clock; // all queues read the shard's one clock
        queues.push(h);
      }
      for (let i = 0; i < 5; i++) {
        clock.now = i * 30;
        for (const h of queues) h.queue.enqueue(message(i + 1));
      }
      expect(scheduler.size).toBe(3);
      // The shard's timer loop: sleep until nextDeadline(), run, repeat.
      const fired: string[] = [];
      let wakeUps = 0;
      while (Number.isFinite(scheduler.nextDeadline()) && wakeUps < 100) {
        clock.now = scheduler.nextDeadline();
        wakeUps++;
        const before = queues.map((h) => h.deadLetters.length);
        scheduler.run(clock.now);
        queues.forEach((h, i) => {
          for (const d of h.deadLetters.slice(before[i])) fired.push(`${h.queue.name}:${d.message.seq}@${clock.now}`);
        });
        expect(scheduler.size).toBeLessThanOrEqual(3);
      }
      expect(fired).toEqual([
        'fast:1@100',
        'fast:2@130',
        'fast:3@160',
        'fast:4@190',
        'fast:5@220',
        'medium:1@1000',
        'medium:2@1030',
        'medium:3@1060',
        'medium:4@1090',
        'medium:5@1120',
        'slow:1@60000',
        'slow:2@60030',
        'slow:3@60060',
        'slow:4@60090',
        'slow:5@60120',
      ]);
      // Exactly on time (the deadlines fall on ticks), one wake-up per expiry, nothing early.
      expect(wakeUps).toBe(15);
      for (const h of queues) expect(h.queue.depth).toBe(0);
    });

    it("expiry scheduler - forget() drops a deleted queue's pending check", () => {
      const scheduler = new ExpiryScheduler();
      const h = harness('q', { args: { 'x-message-ttl': 100 }, time: 0, scheduleExpiry: scheduler.schedule });
      h.queue.enqueue(message(1));
      expect(scheduler.size).toBe(1);
      scheduler.forget(h.queue as MessageQueue);
      expect(scheduler.size).toBe(0);
      expect(scheduler.nextDeadline()).toBe(Infinity);
      expect(scheduler.run(1_000)).toBe(0);
      expect(h.queue.depth).toBe(1);
    });
  });

  describe('x-delivery-limit', () => {
    it('delivery-limit - a message returned more times than the limit is dead-lettered with reason delivery_limit', () => {
      const h = harness('work', { args: { 'x-delivery-limit': 2, ...DLX } });
      const shared: MessageProperties = { headers: { app: 'a' } };
      h.queue.enqueue(message(1, 4, shared));
      h.queue.addConsumer(consumer(1, 1, { prefetch: 1 }));
      const counts: unknown[] = [];
      for (let attempt = 1; attempt <= 3; attempt++) {
        h.queue.dispatch();
        const d = h.deliveries[attempt - 1];
        expect(d.deliveryCount).toBe(attempt);
        counts.push(d.message.properties?.headers?.['x-delivery-count']);
        const result = h.queue.reject(d.tag, true);
        expect(result === null, `attempt ${attempt}`).toBe(attempt < 3);
      }
      expect(h.queue.dispatch()).toBe(0);
      expect(h.deliveries).toHaveLength(3); // limit 2: delivered 3 times, the third return ends it
      expect(deadSeqs(h)).toEqual(['1:delivery_limit']);
      expect(xDeathOf(h.deadLetters[0].message)[0]).toMatchObject({ reason: 'delivery_limit', queue: 'work' });
      expect(h.queue.stats).toMatchObject({ deliveryLimited: 1, requeued: 2, deadLettered: 1 });
      // x-delivery-count: returns so far, as quorum queues report it; the shared properties are untouched.
      expect(counts).toEqual([undefined, 1, 2]);
      expect(shared).toEqual({ headers: { app: 'a' } });
    });

    it('delivery-limit 0 - the first return dead-letters it', () => {
      const h = harness('q', { args: { 'x-delivery-limit': 0, ...DLX } });
      h.queue.enqueue(message(1));
      h.queue.addConsumer(consumer(1, 1));
      h.queue.dispatch();
      expect(h.queue.reject(h.deliveries[0].tag, true)).toMatchObject({ seq: 1 });
      expect(deadSeqs(h)).toEqual(['1:delivery_limit']);
    });

    it('delivery-limit - a consumer going away counts as a return; acked and rejected messages are unaffected', () => {
      const h = harness('q', { args: { 'x-delivery-limit': 0 } });
      for (let seq = 1; seq <= 3; seq++) h.queue.enqueue(message(seq));
      h.queue.addConsumer(consumer(1, 1));
      h.queue.dispatch();
      h.queue.ack(h.deliveries[0].tag);
      expect(h.queue.removeConsumer(1, 1)).toBe(0); // 2 and 3 over the limit: dropped (no DLX), not requeued
      expect(h.queue.depth).toBe(0);
      expect(h.deadLetters).toEqual([]);
      expect(h.queue.stats).toMatchObject({ deliveryLimited: 2, acked: 1, requeued: 0 });
    });

    it('delivery-limit - messages within the limit are requeued in place by removeConnection', () => {
      const h = harness('q', { args: { 'x-delivery-limit': 1, ...DLX } });
      for (let seq = 1; seq <= 2; seq++) h.queue.enqueue(message(seq));
      h.queue.addConsumer(consumer(1, 1));
      h.queue.dispatch();
      expect(h.queue.removeConnection(1)).toBe(2);
      h.queue.addConsumer(consumer(2, 1));
      h.queue.dispatch();
      expect(h.queue.removeConnection(2)).toBe(0); // second return of each: over the limit
      expect(deadSeqs(h)).toEqual(['1:delivery_limit', '2:delivery_limit']);
    });
  });

  describe('rejection and x-expires', () => {
    it('reject without requeue - dead-letters with reason rejected and still hands the message back', () => {
      const h = harness('q', { args: { 'x-dead-letter-exchange': 'dlx', 'x-dead-letter-routing-key': 'dead' } });
      h.queue.enqueue(message(1));
      h.queue.addConsumer(consumer(1, 1));
      h.queue.dispatch();
      expect(h.queue.reject(h.deliveries[0].tag, false)).toMatchObject({ seq: 1 });
      expect(deadSeqs(h)).toEqual(['1:rejected']);
      expect(h.deadLetters[0].message).toMatchObject({ exchange: 'dlx', routingKey: 'dead' });
      expect(xDeathOf(h.deadLetters[0].message)[0]['routing-keys']).toEqual(['k1']);
      expect(h.queue.stats).toMatchObject({ dropped: 1, deadLettered: 1 });
    });

    it('x-expires - the idle deadline runs only while the queue has no consumers and restarts on use', () => {
      const h = harness('q', { args: { 'x-expires': 5_000 }, time: 1_000 });
      expect(h.queue.lastUsed).toBe(1_000);
      expect(h.queue.idleDeadline()).toBe(6_000);
      h.clock.now = 2_000;
      h.queue.addConsumer(consumer(1, 1));
      expect(h.queue.idleDeadline()).toBe(Infinity);
      h.clock.now = 9_000;
      h.queue.removeConsumer(1, 1); // unused from now
      expect(h.queue.idleDeadline()).toBe(14_000);
      h.queue.markUsed(10_000); // a basic.get or redeclare
      expect(h.queue.idleDeadline()).toBe(15_000);
      expect(harness('plain').queue.idleDeadline()).toBe(Infinity);
    });
  });

  it('round robin and prefetch still hold with every argument set', () => {
    const h = harness('q', {
      args: { 'x-max-priority': 3, 'x-message-ttl': 60_000, 'x-max-length': 100, 'x-delivery-limit': 5, ...DLX },
      time: 0,
    });
    h.queue.addConsumer(consumer(1, 1, { prefetch: 2 }));
    h.queue.addConsumer(consumer(2, 1, { prefetch: 2 }));
    for (let seq = 1; seq <= 6; seq++) h.queue.enqueue(withPriority(seq, seq % 2));
    expect(h.queue.dispatch()).toBe(4);
    expect(who(h.deliveries)).toEqual(['1/1', '2/1', '1/1', '2/1']);
    expect(delivered(h)).toEqual([1, 3, 5, 2]);
  });
});
