import { describe, expect, it } from 'vitest';
import { ConfirmStatus } from '../../src/protocol/ring-record-codec.js';
import type { MessageQueue } from '../../src/queue/message-queue.js';
import type { StoredMessage } from '../../src/queue/types.js';
import { EncodedProperties } from '../../src/shard/encoded-properties.js';
import { ShardOutbound } from '../../src/shard/shard-outbound.js';
import { OutboundRing } from './ring-fixture.js';

/** A queue that counts its dispatch() calls and writes nothing. */
function fakeQueue(name: string): MessageQueue & { dispatches: number } {
  const q = {
    name,
    dispatches: 0,
    dispatch: (): number => {
      q.dispatches++;
      return 0;
    },
  };
  return q as unknown as MessageQueue & { dispatches: number };
}

function deadLetter(payload: string, properties: StoredMessage['properties'] = null): StoredMessage {
  return {
    seq: 1,
    exchange: 'dlx',
    routingKey: 'dead',
    payload: Buffer.from(payload),
    properties,
    expiresAt: Infinity,
    redelivered: false,
    deliveryCount: 0,
  };
}

/** Fills the ring with pongs until one does not fit. */
function fill(ring: OutboundRing): number {
  let n = 0;
  while (ring.writer.pong(0)) n++;
  return n;
}

describe('shard outbound', () => {
  it('control - records are written at once while the ring has room', () => {
    const ring = new OutboundRing();
    const out = new ShardOutbound(ring.writer, new EncodedProperties());
    out.pong(1);
    out.confirm(2, 3, ConfirmStatus.rejected);
    out.error(4, 5, 'not_found', 'gone');
    out.manageReply(6, 7, 0, { messageCount: 1 });
    ring.producer.commit();
    expect(ring.read()).toEqual([
      { kind: 'pong', token: 1 },
      { kind: 'confirm', connectionId: 2, token: 3, status: ConfirmStatus.rejected, count: 1 },
      { kind: 'error', connectionId: 4, subscriptionId: 5, code: 'not_found', message: 'gone' },
      { kind: 'manageReply', connectionId: 6, token: 7, status: 0, body: { messageCount: 1 } },
    ]);
    expect(out.blocked).toBe(false);
  });

  it('control - a record that meets a full ring waits, and later ones wait behind it even when they would fit', () => {
    const ring = new OutboundRing(4096);
    const out = new ShardOutbound(ring.writer, new EncodedProperties());
    const filled = fill(ring);
    out.pong(1);
    expect(out.blocked).toBe(true);
    expect(out.full).toBe(true);
    ring.producer.commit();
    expect(ring.read()).toHaveLength(filled);
    // Room again, but the waiting record goes first: nothing is written around it.
    out.pong(2);
    expect(out.flush()).toBe(true);
    expect(out.blocked).toBe(false);
    ring.producer.commit();
    expect(ring.read()).toEqual([
      { kind: 'pong', token: 1 },
      { kind: 'pong', token: 2 },
    ]);
  });

  it('dispatch - a queue dispatched while the ring is full is kept, and dispatched by the flush', () => {
    const ring = new OutboundRing();
    const out = new ShardOutbound(ring.writer, new EncodedProperties());
    const q = fakeQueue('q');
    out.dispatch(q);
    expect(q.dispatches).toBe(1);
    out.markFull();
    expect(out.blocked).toBe(true);
    out.dispatch(q);
    out.dispatch(q);
    expect(q.dispatches).toBe(1);
    expect(out.flush()).toBe(true);
    // Stalled once, dispatched once.
    expect(q.dispatches).toBe(2);
    expect(out.blocked).toBe(false);
  });

  it('dispatch - a forgotten (deleted) queue is not dispatched by the flush', () => {
    const ring = new OutboundRing();
    const out = new ShardOutbound(ring.writer, new EncodedProperties());
    const q = fakeQueue('q');
    out.markFull();
    out.stall(q);
    out.forget(q);
    expect(out.flush()).toBe(true);
    expect(q.dispatches).toBe(0);
  });

  it('dead letters - collected, then republished with their encoded properties; nothing when none', () => {
    const ring = new OutboundRing();
    const out = new ShardOutbound(ring.writer, new EncodedProperties());
    out.republishDeadLetters();
    ring.producer.commit();
    expect(ring.read()).toEqual([]);
    out.onDeadLetter(deadLetter('a', { messageId: 'm-a' }));
    out.onDeadLetter(deadLetter('b'));
    out.republishDeadLetters();
    out.republishDeadLetters();
    ring.producer.commit();
    expect(ring.read()).toMatchObject([
      { kind: 'republish', exchange: 'dlx', routingKey: 'dead', properties: { messageId: 'm-a' }, payload: 'a' },
      { kind: 'republish', exchange: 'dlx', routingKey: 'dead', properties: null, payload: 'b' },
    ]);
  });

  it('flush - dead letters are republished after the full mark is cleared, behind the records already waiting', () => {
    const ring = new OutboundRing(4096);
    const out = new ShardOutbound(ring.writer, new EncodedProperties());
    fill(ring);
    out.pong(1);
    out.onDeadLetter(deadLetter('late'));
    ring.producer.commit();
    ring.read();
    expect(out.flush()).toBe(true);
    ring.producer.commit();
    expect(ring.read()).toMatchObject([
      { kind: 'pong', token: 1 },
      { kind: 'republish', exchange: 'dlx', routingKey: 'dead', properties: null, payload: 'late' },
    ]);
  });
});
