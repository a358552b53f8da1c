import { describe, expect, it } from 'vitest';
import { ConsumerRing } from '../../src/queue/consumer-ring.js';
import type { Consumer } from '../../src/queue/types.js';
import { Prng } from '../helpers/prng.js';

const consumer = (connectionId: number, subscriptionId: number): Consumer => ({
  connectionId,
  subscriptionId,
  ackMode: 'auto',
  prefetch: 0,
  unacked: 0,
  credit: 1,
  creditBytes: 1,
});

describe('ConsumerRing', () => {
  // Lookups scan the slots for a few consumers and use maps past eight: the two must agree,
  // including across the switch in both directions.
  it.each([1, 7, 99])(
    'lookups, removals and turns match an array model while the ring grows past its index mark and shrinks back (seed %i)',
    (seed) => {
      const prng = new Prng(seed);
      const ring = new ConsumerRing();
      let model: Consumer[] = [];
      for (let step = 0; step < 3000; step++) {
        const roll = prng.int(0, 9);
        if (roll < 5 && model.length < 20) {
          const c = consumer(prng.int(1, 4), prng.int(1, 12));
          if (model.some((m) => m.connectionId === c.connectionId && m.subscriptionId === c.subscriptionId)) {
            expect(() => ring.add(c)).toThrow(/already registered/);
          } else {
            const slot = ring.add(c);
            expect(slot.consumer).toBe(c);
            expect(slot.deliveries).toBeNull();
            model.push(c);
          }
        } else if (roll < 8 && model.length > 0) {
          const victim = prng.pick(model);
          const slot = ring.slotOf(victim);
          expect(slot?.consumer).toBe(victim);
          ring.remove(slot as NonNullable<typeof slot>);
          model = model.filter((m) => m !== victim);
        } else {
          const connectionId = prng.int(1, 4);
          const removed = ring.removeConnection(connectionId).map((s) => s.consumer);
          expect(new Set(removed)).toEqual(new Set(model.filter((m) => m.connectionId === connectionId)));
          model = model.filter((m) => m.connectionId !== connectionId);
        }
        expect(ring.size).toBe(model.length);
        for (let i = 0; i < model.length; i++) expect(ring.at(i).consumer).toBe(model[i]);
        const probe = consumer(prng.int(1, 4), prng.int(1, 12));
        const expected = model.find((m) => m.connectionId === probe.connectionId && m.subscriptionId === probe.subscriptionId);
        expect(ring.find(probe.connectionId, probe.subscriptionId)?.consumer).toBe(expected);
        expect(ring.slotOf(probe)).toBeUndefined();
      }
    },
  );

  it('takes turns in order, skipping a consumer without credit, with and without the index', () => {
    for (const count of [3, 12]) {
      const ring = new ConsumerRing();
      const all = Array.from({ length: count }, (_, i) => consumer(1, i + 1));
      for (const c of all) ring.add(c);
      all[1].credit = 0;
      const order: number[] = [];
      for (let i = 0; i < count * 2; i++) {
        const at = ring.findEligible();
        order.push(ring.at(at).consumer.subscriptionId);
        ring.passTurn(at);
      }
      const once = all.filter((c) => c.credit > 0).map((c) => c.subscriptionId);
      expect(order.slice(0, once.length)).toEqual(once);
      expect(order.slice(once.length, 2 * once.length)).toEqual(once);
    }
  });
});
