import { describe, expect, it } from 'vitest';
import { RemoteConsumers, type ControlOp } from '../../src/cluster/remote-consumers.js';
import { AckModeCode, RecordKind } from '../../src/protocol/ring-record-codec.js';
import { REMOTE_TAG_BASE } from '../../src/shard/shard-handle.js';

function setup(owner: Record<string, string>) {
  const sent: Array<[string, ControlOp]> = [];
  const remote = new RemoteConsumers({ send: (node, op) => sent.push([node, op]), ownerOf: (q) => owner[q] });
  return { sent, remote };
}

/** A deliver record's head (connection, subscription, tag) in a buffer of its own. */
function deliverHead(conn: number, sub: number, tag: number): DataView {
  const view = new DataView(new ArrayBuffer(32));
  view.setUint32(0, conn, true);
  view.setUint32(4, sub, true);
  view.setFloat64(8, tag, true);
  return view;
}

describe('remote-consumers', () => {
  it('remote-consumers - ops go to the queue node; client-ack tags are remapped and a settle finds its node and tag', () => {
    const { sent, remote } = setup({ jobs: 'b' });
    remote.writeControl((w) => w.subscribe(7, 1, 'jobs', AckModeCode.client, 10, 100, 1 << 20, 0, null));
    remote.writeControl((w) => w.credit(7, 1, 5, 500));
    expect(sent.map(([n, op]) => [n, op.op])).toEqual([
      ['b', 'sub'],
      ['b', 'credit'],
    ]);
    const view = deliverHead(7, 1, 42);
    remote.mapDelivery('b', view, 0);
    const mine = view.getFloat64(8, true);
    expect(mine).toBeGreaterThan(REMOTE_TAG_BASE);
    remote.writeControl((w) => w.settle(RecordKind.ack, 7, mine, false));
    expect(sent.at(-1)).toEqual(['b', { op: 'settle', kind: RecordKind.ack, conn: 7, tag: 42, requeue: false }]);
    // A second settle of the same tag is void (already settled).
    remote.writeControl((w) => w.settle(RecordKind.ack, 7, mine, false));
    expect(remote.voidSettles).toBe(1);
  });

  it('remote-consumers - an auto-ack delivery keeps its tag and nothing is remembered', () => {
    const { remote } = setup({ jobs: 'b' });
    remote.writeControl((w) => w.subscribe(7, 1, 'jobs', AckModeCode.auto, 0, 100, 1 << 20, 0, null));
    const view = deliverHead(7, 1, 42);
    remote.mapDelivery('b', view, 0);
    expect(view.getFloat64(8, true)).toBe(42);
    expect(remote.figures.unsettled).toBe(0);
  });

  it('remote-consumers - a close goes to each node the connection consumes on, once, and forgets its tags', () => {
    const { sent, remote } = setup({ q1: 'b', q2: 'b', q3: 'c' });
    remote.writeControl((w) => w.subscribe(7, 1, 'q1', AckModeCode.client, 1, 1, 1, 0, null));
    remote.writeControl((w) => w.subscribe(7, 2, 'q2', AckModeCode.client, 1, 1, 1, 0, null));
    remote.writeControl((w) => w.subscribe(7, 3, 'q3', AckModeCode.client, 1, 1, 1, 0, null));
    remote.mapDelivery('b', deliverHead(7, 1, 1), 0);
    remote.writeControl((w) => w.slow(7, true));
    remote.writeControl((w) => w.connectionClosed(7));
    const tail = sent.slice(3).map(([n, op]) => `${n}:${op.op}`);
    expect(tail.sort()).toEqual(['b:closed', 'b:slow', 'c:closed', 'c:slow']);
    expect(remote.figures).toMatchObject({ subscriptions: 0, unsettled: 0 });
  });

  it('remote-consumers - its queue node gone: unsettled deliveries are void, each subscription subscribes again where its queue is now', () => {
    const owner: Record<string, string> = { jobs: 'b' };
    const { sent, remote } = setup(owner);
    remote.writeControl((w) => w.subscribe(7, 1, 'jobs', AckModeCode.client, 10, 100, 1000, 0, null));
    const view = deliverHead(7, 1, 9);
    remote.mapDelivery('b', view, 0);
    owner.jobs = 'c';
    expect(remote.nodeGone('b')).toBe(1);
    expect(sent.at(-1)).toEqual(['c', expect.objectContaining({ op: 'sub', conn: 7, sub: 1, queue: 'jobs', prefetch: 10 })]);
    remote.writeControl((w) => w.settle(RecordKind.ack, 7, view.getFloat64(8, true), false));
    expect(remote.voidSettles).toBe(1);
    remote.writeControl((w) => w.unsubscribe(7, 1));
    expect(sent.at(-1)).toEqual(['c', { op: 'unsub', conn: 7, sub: 1 }]);
  });
});
