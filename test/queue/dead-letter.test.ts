import { describe, expect, it } from 'vitest';
import { deadLetterMessage, deadLetterTarget, isDeadLetterCycle, xDeathOf } from '../../src/queue/dead-letter.js';
import { parseQueueArguments } from '../../src/queue/queue-arguments.js';
import type { StoredMessage } from '../../src/queue/types.js';
import { message } from './harness.js';

const T0 = 1_700_000_000_000; // ms

function published(): StoredMessage {
  const m = message(7, 3, { contentType: 'text/plain', expiration: '60000', headers: { app: 'x' } }, 'orders.ex');
  return { ...m, routingKey: 'order.created' };
}

describe('dead letter', () => {
  it('dead letter - first death writes x-death, x-first-death-* and x-last-death-*, and removes expiration', () => {
    const original = published();
    const originalProperties = original.properties;
    const copy = deadLetterMessage(original, 'expired', 'orders', T0 + 999, { exchange: 'dlx', routingKey: 'dead.orders' });

    expect(xDeathOf(copy)).toEqual([
      {
        count: 1,
        reason: 'expired',
        queue: 'orders',
        time: Math.floor((T0 + 999) / 1000),
        exchange: 'orders.ex',
        'routing-keys': ['order.created'],
        'original-expiration': '60000',
      },
    ]);
    const headers = copy.properties?.headers ?? {};
    expect(headers['x-first-death-reason']).toBe('expired');
    expect(headers['x-first-death-queue']).toBe('orders');
    expect(headers['x-first-death-exchange']).toBe('orders.ex');
    expect(headers['x-last-death-reason']).toBe('expired');
    expect(headers['x-last-death-queue']).toBe('orders');
    expect(headers['x-last-death-exchange']).toBe('orders.ex');
    expect(headers.app).toBe('x'); // other headers kept
    expect(copy.properties?.expiration).toBeUndefined();
    expect(copy.properties?.contentType).toBe('text/plain');
    // Addressed to the DLX, fresh delivery state, same bytes.
    expect(copy).toMatchObject({ exchange: 'dlx', routingKey: 'dead.orders', expiresAt: Infinity, redelivered: false, deliveryCount: 0 });
    expect(copy.payload).toBe(original.payload);
    // The original is untouched (its properties may be shared with other queues).
    expect(original.properties).toBe(originalProperties);
    expect(original.properties?.expiration).toBe('60000');
    expect(original.properties?.headers).toEqual({ app: 'x' });
  });

  it('dead letter - a message without properties gets some; no original-expiration without an expiration', () => {
    const copy = deadLetterMessage(message(1), 'rejected', 'q', T0);
    expect(xDeathOf(copy)).toEqual([{ count: 1, reason: 'rejected', queue: 'q', time: T0 / 1000, exchange: '', 'routing-keys': ['k1'] }]);
    expect(copy.routingKey).toBe('k1'); // no target: keeps its own address
    expect(copy.exchange).toBe('');
  });

  it('dead letter - CC keys count as routing keys in the x-death entry', () => {
    const m = message(1, 1, { headers: { CC: ['cc.a', 'cc.b'] } });
    expect(xDeathOf(deadLetterMessage(m, 'maxlen', 'q', T0))[0]['routing-keys']).toEqual(['k1', 'cc.a', 'cc.b']);
  });

  it('dead letter - a second death for the same queue and reason increments count and moves that entry to the front', () => {
    const first = deadLetterMessage(published(), 'rejected', 'work', T0, { exchange: 'dlx', routingKey: 'retry' });
    // It then dies in the retry queue (expired), goes back to work, and is rejected there again.
    const second = deadLetterMessage(first, 'expired', 'retry', T0 + 5_000, { exchange: '', routingKey: 'work' });
    const third = deadLetterMessage(second, 'rejected', 'work', T0 + 9_000, { exchange: 'dlx', routingKey: 'retry' });

    expect(xDeathOf(second).map((d) => `${d.queue}/${d.reason}/${d.count}`)).toEqual(['retry/expired/1', 'work/rejected/1']);
    const deaths = xDeathOf(third);
    expect(deaths.map((d) => `${d.queue}/${d.reason}/${d.count}`)).toEqual(['work/rejected/2', 'retry/expired/1']);
    // The moved entry keeps its first time, exchange and routing keys (RabbitMQ reports the first death's).
    expect(deaths[0]).toMatchObject({
      time: T0 / 1000,
      exchange: 'orders.ex',
      'routing-keys': ['order.created'],
      'original-expiration': '60000',
    });
    // The retry death recorded where the message was then: published to the DLX with the DLX key, no expiration left.
    expect(deaths[1]).toEqual({
      count: 1,
      reason: 'expired',
      queue: 'retry',
      time: (T0 + 5_000) / 1000,
      exchange: 'dlx',
      'routing-keys': ['retry'],
    });

    const headers = third.properties?.headers ?? {};
    expect([headers['x-first-death-queue'], headers['x-first-death-reason'], headers['x-first-death-exchange']]).toEqual([
      'work',
      'rejected',
      'orders.ex',
    ]);
    // Last death: in work, where it had come back through retry's DLX (the default exchange).
    expect([headers['x-last-death-queue'], headers['x-last-death-reason'], headers['x-last-death-exchange']]).toEqual([
      'work',
      'rejected',
      '',
    ]);
    // Earlier copies are unchanged by later deaths.
    expect(xDeathOf(first)).toHaveLength(1);
    expect(xDeathOf(second)[1].count).toBe(1);
  });

  it('dead letter - a different reason in the same queue adds a new entry in front; x-first-death-* stays', () => {
    const once = deadLetterMessage(message(1), 'maxlen', 'q', T0);
    const twice = deadLetterMessage(once, 'expired', 'q', T0 + 1_000);
    expect(xDeathOf(twice).map((d) => `${d.reason}/${d.count}`)).toEqual(['expired/1', 'maxlen/1']);
    expect(twice.properties?.headers?.['x-first-death-reason']).toBe('maxlen');
    expect(twice.properties?.headers?.['x-last-death-reason']).toBe('expired');
  });

  it("dead letter - deadLetterTarget: null without a DLX, the DL routing key when set, else the message's own", () => {
    const m = message(3);
    expect(deadLetterTarget(parseQueueArguments({}), m)).toBeNull();
    expect(deadLetterTarget(parseQueueArguments({ 'x-dead-letter-exchange': '' }), m)).toEqual({ exchange: '', routingKey: 'k3' });
    expect(deadLetterTarget(parseQueueArguments({ 'x-dead-letter-exchange': 'dlx', 'x-dead-letter-routing-key': 'dead' }), m)).toEqual({
      exchange: 'dlx',
      routingKey: 'dead',
    });
  });

  it('dead letter - isDeadLetterCycle: back to a queue it died in, with no rejection since, is a cycle', () => {
    const fresh = message(1);
    expect(isDeadLetterCycle(fresh, 'a')).toBe(false);
    const expiredInA = deadLetterMessage(fresh, 'expired', 'a', T0);
    expect(isDeadLetterCycle(expiredInA, 'a')).toBe(true);
    expect(isDeadLetterCycle(expiredInA, 'b')).toBe(false);
    const expiredInB = deadLetterMessage(expiredInA, 'maxlen', 'b', T0);
    expect(isDeadLetterCycle(expiredInB, 'a')).toBe(true);
    // A client rejection anywhere in the loop breaks it: RabbitMQ lets such messages go round.
    const rejectedInB = deadLetterMessage(expiredInA, 'rejected', 'b', T0);
    expect(isDeadLetterCycle(rejectedInB, 'a')).toBe(false);
    expect(isDeadLetterCycle(deadLetterMessage(fresh, 'rejected', 'a', T0), 'a')).toBe(false);
  });
});
