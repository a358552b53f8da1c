import { describe, expect, it } from 'vitest';
import { BatchOutbox, ANSWER_TIMEOUT_MS, type OutboxParts } from '../../src/cluster/batch-outbox.js';
import { decodeForwardBatch } from '../../src/cluster/forward-batch.js';
import { ConfirmStatus } from '../../src/protocol/ring-record-codec.js';
import { createLogger } from '../../src/log/logger.js';

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

function setup(over: Partial<OutboxParts> = {}) {
  const published: Array<{ subject: string; count: number; reply?: string; seq: number }> = [];
  const settled: Array<[number, ConfirmStatus]> = [];
  let flushes: Array<() => void> = [];
  let afterSettles = 0;
  let roomAgain = 0;
  const outbox = new BatchOutbox({
    boot: 'boot',
    self: 'a',
    bufferBytes: 1 << 20,
    maxPayload: () => 1 << 20,
    publish: (subject, data, reply) => {
      const h = decodeForwardBatch(
        data,
        () => false,
        () => undefined,
      );
      published.push({ subject, count: h.count, reply, seq: h.seq });
    },
    flush: () => new Promise<void>((r) => flushes.push(r)),
    confirms: { settle: (t, s) => settled.push([t, s]) },
    afterSettles: () => afterSettles++,
    roomAgain: () => roomAgain++,
    log: createLogger('silent'),
    ...over,
  });
  const ackAll = (): void => {
    const f = flushes;
    flushes = [];
    for (const r of f) r();
  };
  return { outbox, published, settled, ackAll, afterSettles: () => afterSettles, roomAgain: () => roomAgain };
}

const body = (n: number): Uint8Array => new Uint8Array(n);

describe('batch-outbox', () => {
  it('batch-outbox - one NATS message per subject per turn, whatever the number of publishes', async () => {
    const { outbox, published } = setup();
    for (let i = 0; i < 100; i++) outbox.forward('amq.topic', 'a.b', null, body(10));
    outbox.forward('amq.topic', 'a.c', null, body(10));
    expect(published).toEqual([]);
    await turn();
    expect(published.map((p) => [p.subject, p.count])).toEqual([
      ['shardmq.x.~YW1xLnRvcGlj.a.b', 100],
      ['shardmq.x.~YW1xLnRvcGlj.a.c', 1],
    ]);
    expect(outbox.figures).toMatchObject({ messages: 101, batches: 2 });
  });

  it('batch-outbox - past half the buffer it has no room (publishers wait); past all of it forwards are dropped and counted; its answer makes room again', async () => {
    const { outbox, ackAll, roomAgain } = setup({ bufferBytes: 1000 });
    for (let i = 0; i < 5; i++) outbox.forward('x', 'k', null, body(92));
    expect(outbox.hasRoom).toBe(true);
    outbox.forward('x', 'k', null, body(92));
    expect(outbox.hasRoom).toBe(false);
    for (let i = 0; i < 14; i++) outbox.forward('x', 'k', null, body(92));
    expect(outbox.figures.droppedOverBuffer).toBe(10);
    await turn();
    expect(outbox.unacknowledgedBytes).toBe(1000);
    expect(roomAgain()).toBe(0);
    ackAll();
    await turn();
    expect(outbox.unacknowledgedBytes).toBe(0);
    expect(outbox.hasRoom).toBe(true);
    expect(roomAgain()).toBe(1);
    outbox.forward('x', 'k', null, body(92));
    expect(outbox.figures.droppedOverBuffer).toBe(10);
  });

  it('batch-outbox - NATS away: nothing is handed to it, each is counted; what it had not acknowledged is counted in flight', async () => {
    const { outbox, published, settled } = setup();
    outbox.forward('x', 'k', null, body(1));
    outbox.forward('x', 'k', null, body(1));
    await turn();
    expect(outbox.disconnected()).toBe(2);
    outbox.forward('x', 'k', null, body(1));
    outbox.forwardToQueue('b', 'jobs', null, body(1), 77);
    await turn();
    expect(published.length).toBe(1);
    expect(outbox.figures).toMatchObject({ droppedDisconnected: 2, inFlightAtDisconnect: 2 });
    expect(settled).toEqual([[77, ConfirmStatus.nodeUnavailable]]);
  });

  it('batch-outbox - a queue batch with waiting publishers goes with a reply subject; the answer settles them, or their refusal comes when the node goes or the answer is late', async () => {
    const { outbox, published, settled, afterSettles } = setup();
    outbox.forwardToQueue('b', 'jobs', null, body(1), 5);
    outbox.forwardToQueue('b', 'jobs', null, body(1), 6);
    outbox.forwardToQueue('b', 'other', null, body(1), 0);
    await turn();
    expect(published.map((p) => [p.subject, p.count, p.reply])).toEqual([
      ['shardmq.n.b.q', 2, 'shardmq.n.a.a'],
      ['shardmq.n.b.q', 1, undefined],
    ]);
    outbox.onAnswer({ seq: published[0].seq, ok: true });
    expect(settled).toEqual([
      [5, ConfirmStatus.ok],
      [6, ConfirmStatus.ok],
    ]);
    expect(afterSettles()).toBe(1);
    outbox.forwardToQueue('b', 'jobs', null, body(1), 7);
    outbox.forwardToQueue('c', 'jobs2', null, body(1), 8);
    await turn();
    outbox.failAwaiting('b');
    expect(settled.slice(2)).toEqual([[7, ConfirmStatus.nodeUnavailable]]);
    outbox.sweep(Date.now());
    expect(settled.length).toBe(3);
    outbox.sweep(Date.now() + ANSWER_TIMEOUT_MS + 1);
    expect(settled.slice(3)).toEqual([[8, ConfirmStatus.nodeUnavailable]]);
    // An answer for a batch nobody waits on any more changes nothing.
    outbox.onAnswer({ seq: published[0].seq, ok: true });
    expect(settled.length).toBe(4);
  });

  it('batch-outbox - a message larger than NATS takes stays here, counted; its publisher is refused', async () => {
    const { outbox, published, settled } = setup({ maxPayload: () => 100 });
    outbox.forward('x', 'k', null, body(200));
    outbox.forwardToQueue('b', 'q', null, body(200), 9);
    outbox.forward('x', 'k', null, body(10));
    await turn();
    expect(outbox.figures.droppedTooLarge).toBe(2);
    expect(settled).toEqual([[9, ConfirmStatus.nodeUnavailable]]);
    expect(published.map((p) => p.count)).toEqual([1]);
  });
});
