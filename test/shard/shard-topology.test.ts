import { afterEach, describe, expect, it, vi } from 'vitest';
import { CounterSlot, createCounterStorage } from '../../src/metrics/shard-counters.js';
import type { ManageOp } from '../../src/protocol/ring-record-codec.js';
import { ExpiryScheduler } from '../../src/queue/expiry-scheduler.js';
import { EncodedProperties } from '../../src/shard/encoded-properties.js';
import { ShardDurability } from '../../src/shard/shard-durability.js';
import { ShardFlow } from '../../src/shard/shard-flow.js';
import { ShardOutbound } from '../../src/shard/shard-outbound.js';
import { ShardSubscriptions } from '../../src/shard/shard-subscriptions.js';
import type { LocalQueue } from '../../src/shard/local-queue.js';
import { ShardTopology } from '../../src/shard/shard-topology.js';
import { OutboundRing } from './ring-fixture.js';

const declare = (name: string, args: Record<string, unknown> = {}, autoDelete = false): ManageOp => ({
  op: 'declareQueue',
  name,
  durable: false,
  exclusive: false,
  autoDelete,
  arguments: args,
});

function setup(now: () => number = Date.now) {
  const ring = new OutboundRing();
  const counters = new Float64Array(createCounterStorage());
  const encoded = new EncodedProperties();
  const outbound = new ShardOutbound(ring.writer, encoded);
  let tag = 0;
  const topology = new ShardTopology({
    index: 3,
    now,
    counters,
    deliver: () => true,
    allocateTag: () => ++tag,
    expiry: new ExpiryScheduler(),
    outbound,
    flow: new ShardFlow(outbound, counters),
    subscriptions: new ShardSubscriptions(outbound, counters),
    durability: new ShardDurability(null, undefined, outbound, encoded, counters),
  });
  const read = (): ReturnType<OutboundRing['read']> => {
    ring.producer.commit();
    return ring.read();
  };
  return { topology, counters, read };
}

/** The named queue, which the test has declared. */
function queueOf(topology: ShardTopology, name: string): LocalQueue {
  const local = topology.queue(name);
  if (local === undefined) throw new Error(`no queue ${name}`);
  return local;
}

afterEach(() => {
  vi.useRealTimers();
});

describe('shard topology', () => {
  it('apply - applies what it can and returns each refused op with its error', () => {
    const { topology, counters } = setup();
    const bindToMissing: ManageOp = { op: 'bindQueue', exchange: 'amq.direct', queue: 'nope', routingKey: 'k', arguments: {} };
    const badArgs = declare('bad', { 'x-max-length': -1 });
    const refused = topology.apply([declare('q'), bindToMissing, badArgs]);
    expect(refused.map((r) => r.op)).toEqual([bindToMissing, badArgs]);
    expect(refused[0].error).toBe("no queue 'nope' in vhost '/'");
    expect(refused[1].error).toMatch(/x-max-length/);
    expect(topology.queueStats().map((q) => q.name)).toEqual(['q']);
    expect(counters[CounterSlot.queues]).toBe(1);
  });

  it('processManage - a refusal is answered with status 1 and its AMQP code', () => {
    const { topology, read } = setup();
    topology.processManage(1, 2, { op: 'purgeQueue', name: 'missing' });
    expect(read()).toEqual([
      {
        kind: 'manageReply',
        connectionId: 1,
        token: 2,
        status: 1,
        body: { code: 'not_found', message: "no queue 'missing' in vhost '/'" },
      },
    ]);
  });

  it('autoDeleteIfUnused - only a queue that had a consumer goes, with a queueDeleted event', () => {
    const { topology, counters, read } = setup();
    topology.manage(declare('auto', {}, true));
    topology.manage(declare('plain'));
    read();
    const auto = queueOf(topology, 'auto');
    expect(topology.autoDeleteIfUnused(auto)).toBe(false);
    auto.hadConsumer = true;
    expect(topology.autoDeleteIfUnused(queueOf(topology, 'plain'))).toBe(false);
    expect(topology.autoDeleteIfUnused(auto)).toBe(true);
    expect(topology.queue('auto')).toBeUndefined();
    expect(topology.queues.size).toBe(1);
    expect(counters[CounterSlot.queues]).toBe(1);
    expect(read()).toEqual([{ kind: 'manageReply', connectionId: 0, token: 0, status: 0, body: { event: 'queueDeleted', queue: 'auto' } }]);
  });

  it('idle sweep - starts with the first x-expires queue and stops with stopIdleSweep', () => {
    vi.useFakeTimers();
    let clock = 1_700_000_000_000;
    const { topology } = setup(() => clock);
    topology.manage(declare('short', { 'x-expires': 500 }));
    topology.manage(declare('long', { 'x-expires': 60_000 }));
    clock += 1000;
    vi.advanceTimersByTime(1000);
    expect([...topology.queues.keys()]).toEqual(['long']);
    topology.stopIdleSweep();
    clock += 120_000;
    vi.advanceTimersByTime(120_000);
    expect([...topology.queues.keys()]).toEqual(['long']);
  });

  it('refreshMessageGauges / heldMessages - ready and unacked over every queue', () => {
    const { topology, counters } = setup();
    topology.manage(declare('a'));
    topology.manage(declare('b'));
    const msg = (seq: number) => ({
      seq,
      exchange: '',
      routingKey: '',
      payload: new Uint8Array(0),
      properties: null,
      expiresAt: Infinity,
      redelivered: false,
      deliveryCount: 0,
    });
    queueOf(topology, 'a').queue.enqueue(msg(1));
    queueOf(topology, 'b').queue.enqueue(msg(2));
    queueOf(topology, 'b').queue.enqueue(msg(3));
    topology.refreshMessageGauges();
    expect(counters[CounterSlot.ready]).toBe(3);
    expect(counters[CounterSlot.unacked]).toBe(0);
    expect(topology.heldMessages()).toBe(3);
  });
});
