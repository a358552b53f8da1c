/**
 * Seeded randomized test of MessageQueue against a small reference model.
 *
 * The model is written differently from the queue on purpose: ready messages are a plain Set of
 * seqs (order = sort), the round-robin turn is held as "the consumer whose turn it is" rather
 * than an index, and capacity is recomputed from the model's own counts. Every delivery is
 * checked as it happens (right message, right consumer, not a duplicate, flags and counts), the
 * counters are compared after every step, and at the end every published message must have
 * reached exactly one terminal outcome (acked, auto-acked, dropped or purged): multiset
 * accounting under consumer churn, nack/requeue and a writer that is sometimes full.
 *
 * A second variant declares the queue with x-max-length and a dead-letter exchange: the model
 * then drops its lowest ready seqs after every publish and requeue, and each of those must come
 * out of onDeadLetter (reason maxlen) exactly once.
 */
import { describe, expect, it } from 'vitest';
import { xDeathOf } from '../../src/queue/dead-letter.js';
import { MessageQueue } from '../../src/queue/message-queue.js';
import { parseQueueArguments } from '../../src/queue/queue-arguments.js';
import type { Consumer, StoredMessage } from '../../src/queue/types.js';
import { consumer as makeConsumer, message as makeMessage } from './harness.js';
import { Prng } from '../helpers/prng.js';

const STEPS = 4000;
const SEEDS = [1, 2, 3, 5, 8, 13, 21, 34, 55, 89];

type Outcome = 'acked' | 'auto' | 'dropped' | 'purged' | 'maxlen';

interface ModelMessage {
  readonly message: StoredMessage;
  state: 'new' | 'ready' | 'unacked' | 'done';
  redelivered: boolean;
  deliveries: number;
  holder?: Consumer;
  tag?: number;
}

interface ModelConsumer {
  readonly consumer: Consumer;
  readonly held: Set<number>; // tags
  credit: number;
}

function runModel(seed: number, maxLength?: number): void {
  const prng = new Prng(seed);
  const deadLettered: { copy: StoredMessage; reason: string }[] = [];
  const where = (step: number | string): string => `seed ${seed} step ${step}`;

  const messages = new Map<number, ModelMessage>(); // seq → model
  const ready = new Set<number>();
  const tags = new Map<number, number>(); // open client-ack tag → seq
  const outcomes = new Map<number, Outcome[]>();
  const order: ModelConsumer[] = [];
  let turn: ModelConsumer | null = null;
  const seenTags = new Set<number>();

  // Writer context, set by the step that is about to call into the queue.
  let writerRoomChance = 1;
  let expectFromDispatch = false;
  let writes = 0;
  let step = 0;

  const modelOf = (c: Consumer): ModelConsumer => {
    const found = order.find((m) => m.consumer === c);
    expect(found, where(step)).toBeDefined();
    return found as ModelConsumer;
  };
  const hasCapacity = (m: ModelConsumer): boolean =>
    m.credit > 0 && (m.consumer.ackMode === 'auto' || m.consumer.prefetch === 0 || m.held.size < m.consumer.prefetch);
  const expectedPick = (): ModelConsumer | null => {
    if (order.length === 0) return null;
    const start = turn === null ? 0 : order.indexOf(turn);
    for (let i = 0; i < order.length; i++) {
      const candidate = order[(start + i) % order.length];
      if (hasCapacity(candidate)) return candidate;
    }
    return null;
  };
  const passTurn = (served: ModelConsumer): void => {
    turn = order[(order.indexOf(served) + 1) % order.length];
  };
  const finish = (seq: number, outcome: Outcome): void => {
    const m = messages.get(seq) as ModelMessage;
    m.state = 'done';
    m.holder = undefined;
    m.tag = undefined;
    const list = outcomes.get(seq) ?? [];
    list.push(outcome);
    outcomes.set(seq, list);
  };
  const lowestReady = (): number => Math.min(...ready);
  /** x-max-length drop-head: the oldest ready messages go until the limit holds. */
  const enforceMaxLength = (): void => {
    if (maxLength === undefined) return;
    while (ready.size > maxLength) {
      const seq = lowestReady();
      ready.delete(seq);
      finish(seq, 'maxlen');
    }
  };

  const queue = new MessageQueue(
    `model-${seed}`,
    (c, message, tag) => {
      const m = messages.get(message.seq) as ModelMessage;
      const mc = modelOf(c);
      // Exactly one consumer at a time: only ready (or fresh, fast-path) messages go out.
      expect(m.state === 'ready' || m.state === 'new', where(`${step}: seq ${message.seq} is ${m.state}`)).toBe(true);
      expect(hasCapacity(mc), where(`${step}: consumer without capacity`)).toBe(true);
      expect(c.unacked, where(step)).toBe(mc.held.size);
      if (expectFromDispatch) {
        expect(message.seq, where(`${step}: oldest ready first`)).toBe(lowestReady());
        expect(mc, where(`${step}: round robin`)).toBe(expectedPick());
      }
      expect(message.redelivered, where(step)).toBe(m.redelivered);
      expect(message.deliveryCount, where(step)).toBe(m.deliveries + 1);
      expect(seenTags.has(tag), where(`${step}: tag reused`)).toBe(false);
      seenTags.add(tag);
      if (!prng.chance(writerRoomChance)) return false;

      writes++;
      m.deliveries++;
      mc.credit--;
      ready.delete(message.seq);
      if (expectFromDispatch) passTurn(mc);
      if (c.ackMode === 'auto') {
        finish(message.seq, 'auto');
      } else {
        m.state = 'unacked';
        m.holder = c;
        m.tag = tag;
        mc.held.add(tag);
        tags.set(tag, message.seq);
      }
      return true;
    },
    (() => {
      let next = 1;
      return () => next++;
    })(),
    maxLength === undefined
      ? {}
      : {
          arguments: parseQueueArguments({ 'x-max-length': maxLength, 'x-dead-letter-exchange': 'dlx' }),
          onDeadLetter: (copy, reason) => {
            deadLettered.push({ copy, reason });
          },
        },
  );

  let nextSeq = 1;
  let nextConnection = 1;
  let nextSubscription = 1;

  const requeue = (tag: number): void => {
    const seq = tags.get(tag) as number;
    const m = messages.get(seq) as ModelMessage;
    tags.delete(tag);
    modelOf(m.holder as Consumer).held.delete(tag);
    m.state = 'ready';
    m.redelivered = true;
    m.holder = undefined;
    m.tag = undefined;
    ready.add(seq);
  };
  const removeModelConsumers = (gone: ModelConsumer[]): number => {
    let requeued = 0;
    for (const mc of gone) {
      for (const tag of [...mc.held]) {
        requeue(tag);
        requeued++;
      }
    }
    if (turn !== null && gone.includes(turn)) {
      // The turn moves to the first surviving consumer after it, cyclically.
      const start = order.indexOf(turn);
      let next: ModelConsumer | null = null;
      for (let i = 1; i < order.length; i++) {
        const candidate = order[(start + i) % order.length];
        if (!gone.includes(candidate)) {
          next = candidate;
          break;
        }
      }
      turn = next;
    }
    for (const mc of gone) order.splice(order.indexOf(mc), 1);
    return requeued;
  };

  const doDispatch = (roomChance = prng.chance(0.2) ? 0.7 : 1): void => {
    writerRoomChance = roomChance;
    expectFromDispatch = true;
    writes = 0;
    const made = queue.dispatch();
    expectFromDispatch = false;
    expect(made, where(step)).toBe(writes);
    // Dispatch stops only for a reason: nothing ready, nobody eligible, or a refused write.
    if (writerRoomChance === 1) expect(ready.size === 0 || expectedPick() === null, where(step)).toBe(true);
  };

  const publish = (): void => {
    const seq = nextSeq++;
    const message = makeMessage(seq, prng.int(1, 16));
    messages.set(seq, { message, state: 'new', redelivered: false, deliveries: 0 });
    const idle = prng.chance(0.6) ? queue.nextIdleConsumer() : null;
    if (idle === null) {
      expect(queue.enqueue(message), where(step)).toBe('accepted');
      messages.get(seq)!.state = 'ready';
      ready.add(seq);
      enforceMaxLength();
      return;
    }
    // The fast path only fires when nothing is ready, and hands out the consumer whose turn it is.
    expect(ready.size, where(step)).toBe(0);
    const mc = modelOf(idle);
    expect(mc, where(`${step}: fast-path round robin`)).toBe(expectedPick());
    passTurn(mc);
    if (idle.ackMode === 'auto' && prng.chance(0.5)) {
      // The caller writes it itself.
      const m = messages.get(seq) as ModelMessage;
      m.deliveries++;
      mc.credit--;
      queue.noteDirectDelivery(idle, message.payload.byteLength);
      finish(seq, 'auto');
      return;
    }
    writerRoomChance = prng.chance(0.2) ? 0.5 : 1;
    writes = 0;
    const delivered = queue.deliverNow(idle, message);
    expect(delivered, where(step)).toBe(writes === 1);
    if (!delivered) {
      messages.get(seq)!.state = 'ready';
      ready.add(seq);
      enforceMaxLength();
    }
  };

  const addConsumer = (): void => {
    const connectionId = prng.chance(0.5) && order.length > 0 ? prng.pick(order).consumer.connectionId : nextConnection++;
    const c = makeConsumer(connectionId, nextSubscription++, {
      ackMode: prng.chance(0.8) ? 'client' : 'auto',
      prefetch: prng.int(0, 4),
      credit: prng.chance(0.6) ? Infinity : prng.int(0, 5),
    });
    queue.addConsumer(c);
    order.push({ consumer: c, held: new Set(), credit: c.credit });
  };

  const checkState = (): void => {
    const at = where(step);
    expect(queue.depth, at).toBe(ready.size);
    expect(
      queue.readyMessages().map((m) => m.seq),
      at,
    ).toEqual([...ready].sort((a, b) => a - b));
    let bytes = 0;
    for (const seq of ready) bytes += messages.get(seq)!.message.payload.byteLength;
    expect(queue.readyBytes, at).toBe(bytes);
    expect(queue.unackedCount, at).toBe(tags.size);
    expect(queue.consumerCount, at).toBe(order.length);
    for (const mc of order) {
      expect(mc.consumer.unacked, at).toBe(mc.held.size);
      expect(mc.consumer.credit, at).toBe(mc.credit);
    }
  };

  for (step = 0; step < STEPS; step++) {
    const roll = prng.int(0, 99);
    if (roll < 30) {
      publish();
    } else if (roll < 36) {
      if (order.length < 6) addConsumer();
    } else if (roll < 40) {
      if (order.length > 0) {
        const mc = prng.pick(order);
        const expected = mc.held.size;
        removeModelConsumers([mc]);
        enforceMaxLength();
        expect(queue.removeConsumer(mc.consumer.connectionId, mc.consumer.subscriptionId), where(step)).toBe(expected);
      }
    } else if (roll < 42) {
      if (order.length > 0) {
        const connectionId = prng.pick(order).consumer.connectionId;
        const expected = removeModelConsumers(order.filter((mc) => mc.consumer.connectionId === connectionId));
        enforceMaxLength();
        expect(queue.removeConnection(connectionId), where(step)).toBe(expected);
      }
    } else if (roll < 62) {
      if (tags.size > 0) {
        const tag = prng.pick([...tags.keys()]);
        const seq = tags.get(tag) as number;
        const holder = messages.get(seq)!.holder as Consumer;
        expect(queue.tagOwner(tag), where(step)).toBe(holder);
        tags.delete(tag);
        modelOf(holder).held.delete(tag);
        finish(seq, 'acked');
        expect(queue.ack(tag), where(step)).toBe(true);
      }
    } else if (roll < 72) {
      if (tags.size > 0) {
        const tag = prng.pick([...tags.keys()]);
        const seq = tags.get(tag) as number;
        if (prng.chance(0.75)) {
          requeue(tag);
          enforceMaxLength();
          expect(queue.reject(tag, true), where(step)).toBeNull();
        } else {
          const holder = messages.get(seq)!.holder as Consumer;
          tags.delete(tag);
          modelOf(holder).held.delete(tag);
          finish(seq, 'dropped');
          const dropped = queue.reject(tag, false);
          expect(dropped, where(step)).toBe(messages.get(seq)!.message);
        }
      }
    } else if (roll < 74) {
      // A settled or never-issued tag is refused and changes nothing.
      const tag = prng.chance(0.5) && seenTags.size > 0 ? prng.pick([...seenTags]) : 1_000_000 + step;
      if (!tags.has(tag)) {
        expect(queue.ack(tag), where(step)).toBe(false);
        expect(queue.reject(tag, prng.chance(0.5)), where(step)).toBe(false);
      }
    } else if (roll < 80) {
      if (order.length > 0) {
        const mc = prng.pick(order);
        const grant = prng.chance(0.2) ? Infinity : prng.int(1, 4);
        mc.credit = mc.credit + grant;
        mc.consumer.credit += grant;
      }
    } else if (roll < 81) {
      if (prng.chance(0.3)) {
        for (const seq of ready) finish(seq, 'purged');
        const expected = ready.size;
        ready.clear();
        expect(queue.purge(), where(step)).toBe(expected);
      }
    } else {
      doDispatch();
    }
    checkState();
  }

  // Drain: everyone leaves (requeuing what they hold), one unlimited consumer takes and acks all.
  step = STEPS;
  const held = removeModelConsumers([...order]);
  enforceMaxLength(); // the queue drops per connection; the dropped set is the same
  let released = 0;
  for (let connectionId = 1; connectionId < nextConnection; connectionId++) released += queue.removeConnection(connectionId);
  expect(released, where('drain')).toBe(held);
  checkState();
  const drain = makeConsumer(nextConnection, nextSubscription, { ackMode: 'client' });
  queue.addConsumer(drain);
  order.push({ consumer: drain, held: new Set(), credit: Infinity });
  doDispatch(1);
  for (const [tag, seq] of [...tags]) {
    tags.delete(tag);
    const holder = messages.get(seq)!.holder as Consumer;
    modelOf(holder).held.delete(tag);
    finish(seq, 'acked');
    expect(queue.ack(tag), where('drain')).toBe(true);
  }
  checkState();

  // Multiset accounting: each published message reached exactly one terminal outcome.
  expect(queue.depth, where('end')).toBe(0);
  expect(queue.unackedCount, where('end')).toBe(0);
  for (let seq = 1; seq < nextSeq; seq++) {
    expect(outcomes.get(seq), where(`end: seq ${seq}`)).toHaveLength(1);
  }
  const tally = { acked: 0, auto: 0, dropped: 0, purged: 0, maxlen: 0 };
  for (const list of outcomes.values()) tally[list[0]]++;
  expect(tally.acked + tally.auto + tally.dropped + tally.purged + tally.maxlen, where('end')).toBe(nextSeq - 1);
  expect(queue.stats.maxlenDropped, where('end')).toBe(tally.maxlen);
  if (maxLength !== undefined) {
    // Every message the model dropped for the length limit, or saw rejected without requeue, was
    // dead-lettered once with that reason, and nothing else was.
    const seqsWith = (outcome: Outcome): number[] =>
      [...outcomes]
        .filter(([, list]) => list[0] === outcome)
        .map(([seq]) => seq)
        .sort((a, b) => a - b);
    const deadWith = (reason: string): number[] =>
      deadLettered
        .filter((d) => d.reason === reason)
        .map((d) => d.copy.seq)
        .sort((a, b) => a - b);
    expect(deadWith('maxlen'), where('end')).toEqual(seqsWith('maxlen'));
    expect(deadWith('rejected'), where('end')).toEqual(seqsWith('dropped'));
    expect(deadLettered.length, where('end')).toBe(tally.maxlen + tally.dropped);
    for (const { copy, reason } of deadLettered) expect(xDeathOf(copy)[0], where('end')).toMatchObject({ reason, count: 1 });
    expect(tally.maxlen, where('end')).toBeGreaterThan(0);
  }
  expect(queue.stats.acked, where('end')).toBe(tally.acked);
  expect(queue.stats.dropped, where('end')).toBe(tally.dropped);
  expect(queue.stats.purged, where('end')).toBe(tally.purged);
  // The run should have exercised the interesting paths, or it proves little.
  expect(tally.acked, where('end')).toBeGreaterThan(0);
  expect(queue.stats.requeued, where('end')).toBeGreaterThan(0);
}

describe('message queue model', () => {
  it.each(SEEDS)('message queue model - random churn, nack/requeue and a full writer lose and duplicate nothing (seed %i)', (seed) => {
    runModel(seed);
  });

  it.each(SEEDS.slice(0, 5))(
    'message queue model - with x-max-length 5 (drop-head, DLX) the oldest ready go, each dead-lettered exactly once (seed %i)',
    (seed) => {
      runModel(seed, 5);
    },
  );
});
