import { describe, expect, it } from 'vitest';
import { Management } from '../../src/control/management.js';
import { Topology } from '../../src/control/topology.js';
import { FakeCalls, principal, rootVhost } from './fakes.js';

function setup() {
  const calls = new FakeCalls();
  const topology = new Topology(2);
  return { calls, topology, management: new Management(topology, calls) };
}

describe('management', () => {
  it('a binding needs the subscribe right on its source; refused ones change nothing', async () => {
    const { calls, topology, management } = setup();
    await management.declareQueue(
      rootVhost(),
      { name: 'q', passive: false, durable: false, exclusive: false, autoDelete: false, arguments: {} },
      0,
    );
    const reader = principal('r', { subscribe: (d) => d === '/exchange/amq.topic/a.*' });
    await expect(management.bindQueue('amq.topic', 'q', 'a.#', {}, reader)).rejects.toMatchObject({ code: 'access_refused' });
    await expect(management.bindExchange('amq.fanout', 'amq.topic', '#', {}, reader)).rejects.toMatchObject({ code: 'access_refused' });
    expect(topology.listBindings().filter((b) => b.source === 'amq.topic')).toEqual([]);
    await management.bindQueue('amq.topic', 'q', 'a.*', {}, reader);
    expect(topology.route('amq.topic', 'a.b').shards).toEqual([topology.getQueue('q')!.shard]);
    expect(calls.calls.at(-1)).toEqual({
      shard: topology.getQueue('q')!.shard,
      op: { op: 'bindQueue', exchange: 'amq.topic', queue: 'q', routingKey: 'a.*', arguments: {} },
    });
  });

  it('an inequivalent redeclare and a bad argument are precondition_failed (406); nothing is sent', async () => {
    const { calls, management } = setup();
    await management.declareQueue(
      rootVhost(),
      { name: 'q', passive: false, durable: false, exclusive: false, autoDelete: false, arguments: {} },
      0,
    );
    const sent = calls.calls.length;
    await expect(
      management.declareQueue(
        rootVhost(),
        { name: 'q', passive: false, durable: true, exclusive: false, autoDelete: false, arguments: {} },
        0,
      ),
    ).rejects.toMatchObject({
      code: 'precondition_failed',
      status: 406,
    });
    await expect(
      management.declareQueue(
        rootVhost(),
        { name: 'r', passive: false, durable: false, exclusive: false, autoDelete: false, arguments: { 'x-max-length': -1 } },
        0,
      ),
    ).rejects.toMatchObject({
      code: 'precondition_failed',
    });
    expect(calls.calls.length).toBe(sent);
  });

  it('a shard that refuses a declaration leaves no queue behind on the main thread', async () => {
    const { calls, topology, management } = setup();
    calls.answer = { ok: false, result: { code: 'internal', message: 'boom' } };
    await expect(
      management.declareQueue(
        rootVhost(),
        { name: 'q', passive: false, durable: false, exclusive: false, autoDelete: false, arguments: {} },
        0,
      ),
    ).rejects.toThrow();
    expect(topology.getQueue('q')).toBeUndefined();
  });
});
