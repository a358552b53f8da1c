import { describe, expect, it } from 'vitest';
import { ConsumePath, type ConsumeOptions } from '../../src/control/consume-path.js';
import { PublishPath } from '../../src/control/publish-path.js';
import { Topology } from '../../src/control/topology.js';
import { createLogger } from '../../src/log/logger.js';
import { FakeShards, principal } from './fakes.js';

const log = createLogger('silent');

function setup(options: ConsumeOptions = { topicBuffer: 100, slowConsumer: 'drop', slowConsumerMs: 1000 }) {
  const shards = new FakeShards(3);
  const topology = new Topology(3);
  const forgotten: string[] = [];
  const management = { forgetQueue: async (name: string) => void forgotten.push(name) };
  const consume = new ConsumePath(
    topology,
    new PublishPath(topology, shards.handles, false, log),
    management,
    shards.handles,
    options,
    log,
  );
  return { shards, topology, consume, forgotten };
}

describe('consume path', () => {
  it('a topic pattern gets a private, exclusive queue bound on its shard, bounded by the topic buffer', () => {
    const { shards, topology, consume } = setup({ topicBuffer: 100, slowConsumer: 'disconnect', slowConsumerMs: 250 });
    const t = consume.target('/topic/a.*', principal('p'), 9);
    expect(t.privateQueue).toBe(true);
    expect(t.queue).toMatch(/^amq\.gen-/);
    expect(topology.getQueue(t.queue)).toMatchObject({ exclusive: true, owner: 9, shard: t.shard });
    expect(topology.route('amq.topic', 'a.b').shards).toEqual([t.shard]);
    expect(shards.manageOps()).toEqual([
      [
        t.shard,
        expect.objectContaining({
          op: 'declareQueue',
          name: t.queue,
          arguments: { 'x-shardmq-topic-buffer': 100, 'x-shardmq-slow-consumer': 'disconnect', 'x-shardmq-slow-consumer-ms': 250 },
        }),
      ],
      [t.shard, { op: 'bindQueue', exchange: 'amq.topic', queue: t.queue, routingKey: 'a.*', arguments: {} }],
    ]);
  });

  it('a /queue/ destination consumes that queue, declared on first use', () => {
    const { topology, consume } = setup();
    const t = consume.target('/queue/jobs', principal('p'), 1);
    expect(t).toMatchObject({ queue: 'jobs', privateQueue: false, shard: topology.getQueue('jobs')!.shard });
  });

  it("refuses what the principal may not read, a missing /amq/queue/, and another connection's exclusive queue", () => {
    const { topology, consume } = setup();
    expect(() => consume.target('/topic/#', principal('p', { subscribe: () => false }), 1)).toThrow(
      expect.objectContaining({ code: 'access_refused' }),
    );
    expect(() => consume.target('/amq/queue/missing', principal('p'), 1)).toThrow(expect.objectContaining({ code: 'not_found' }));
    topology.declareQueue('mine', { durable: false, exclusive: true, autoDelete: false, arguments: {} }, false, 5);
    expect(() => consume.target('/amq/queue/mine', principal('p'), 6)).toThrow(expect.objectContaining({ code: 'resource_locked' }));
    expect(consume.target('/amq/queue/mine', principal('p'), 5).queue).toBe('mine');
  });

  it('dropping a queue forgets it at once and deletes it on its shard; a closed connection loses its exclusive queues', () => {
    const { shards, topology, consume, forgotten } = setup();
    const t = consume.target('/topic/x', principal('p'), 4);
    consume.dropExclusiveQueuesOf(4);
    expect(forgotten).toEqual([t.queue]);
    expect(shards.manageOps().at(-1)).toEqual([t.shard, { op: 'deleteQueue', name: t.queue, ifUnused: false, ifEmpty: false }]);
    expect(topology.getQueue(t.queue)).toBeDefined(); // the fake management did not remove it: forgetQueue is its job
  });
});
