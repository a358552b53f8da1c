import { describe, expect, it } from 'vitest';
import { BatchIntake } from '../../src/cluster/batch-intake.js';
import { ForwardBatchBuilder } from '../../src/cluster/forward-batch.js';
import { PublishPath } from '../../src/control/publish-path.js';
import { Topology } from '../../src/control/topology.js';
import { ConfirmTracker } from '../../src/control/confirm-tracker.js';
import { ConfirmStatus } from '../../src/protocol/ring-record-codec.js';
import { createLogger } from '../../src/log/logger.js';
import { FakeShards } from '../control/fakes.js';

const log = createLogger('silent');

function setup(bufferBytes = 1 << 20) {
  const shards = new FakeShards(2);
  const topology = new Topology(2);
  const publisher = new PublishPath(topology, shards.handles, false, log);
  const confirms = new ConfirmTracker();
  const answers: Array<{ subject: string; seq: number; ok: boolean }> = [];
  const pressure: boolean[] = [];
  const intake = new BatchIntake({
    publisher,
    bufferBytes,
    confirms,
    publish: (subject, data) => answers.push({ subject, ...(JSON.parse(Buffer.from(data).toString()) as { seq: number; ok: boolean }) }),
    pressureChanged: (p) => pressure.push(p),
    log,
  });
  const publishes = (): number => shards.written.filter((w) => w.method === 'publish').length;
  return { shards, topology, publisher, confirms, answers, intake, publishes, pressure };
}

function batch(seq: number, exchange: string, key: string, n: number, boot = 'b1'): Uint8Array {
  const b = new ForwardBatchBuilder(boot, exchange, key);
  for (let i = 0; i < n; i++) b.add(null, new Uint8Array([i]));
  return b.finish(seq);
}

describe('batch-intake', () => {
  it('batch-intake - routed by this node’s topology; the second copy of a batch and an unknown exchange are counted, not delivered', () => {
    const { topology, intake, publishes } = setup();
    topology.declareQueue('q', { durable: false, exclusive: false, autoDelete: false, arguments: {} }, false, 0);
    topology.registry.bindQueue('amq.topic', 'q', 'a.*', {});
    intake.onBatch(batch(1, 'amq.topic', 'a.b', 3), false, null);
    intake.onBatch(batch(1, 'amq.topic', 'a.b', 3), false, null);
    intake.onBatch(batch(2, 'no-such', 'a.b', 4), false, null);
    intake.onBatch(batch(3, 'amq.topic', 'zzz', 2), false, null);
    expect(publishes()).toBe(3);
    expect(intake.figures).toMatchObject({ batches: 3, duplicateBatches: 1, unknownExchange: 4, messages: 5 });
    // Another incarnation of the sender starts its sequence again.
    intake.forgetBoot('b1');
    intake.onBatch(batch(1, 'amq.topic', 'a.b', 1), false, null);
    expect(publishes()).toBe(4);
  });

  it('batch-intake - a queue batch declares its queue on first use and is answered once every record is in a ring', () => {
    const { topology, intake, answers, publishes } = setup();
    intake.onBatch(batch(4, '', 'jobs', 3), true, 'shardmq.n.a.a');
    expect(topology.getQueue('jobs')).toBeDefined();
    expect(publishes()).toBe(3);
    expect(answers).toEqual([{ subject: 'shardmq.n.a.a', seq: 4, ok: true }]);
  });

  it('batch-intake - a full ring: records wait in order, bounded, the answer comes after the last is in; past the bound they are dropped and the answer says no', async () => {
    const { shards, topology, publisher, intake, answers, publishes, pressure } = setup(40);
    publisher.ensureQueue('jobs');
    const shard = topology.getQueue('jobs')!.shard;
    shards.full.add(shard);
    intake.onBatch(batch(5, '', 'jobs', 3), true, 'r');
    expect(answers).toEqual([]);
    expect(intake.waitingBytes).toBe(27);
    // Past a quarter of the buffer waiting: the other nodes are asked to hold their publishers.
    expect(pressure).toEqual([true]);
    expect(intake.pressed).toBe(true);
    intake.onBatch(batch(6, '', 'jobs', 3), true, 'r');
    expect(intake.figures.dropped).toBe(2);
    expect(answers).toEqual([{ subject: 'r', seq: 6, ok: false }]);
    shards.full.delete(shard);
    for (let i = 0; i < 50 && answers.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
    expect(answers[1]).toEqual({ subject: 'r', seq: 5, ok: true });
    expect(publishes()).toBe(4);
    expect(intake.waitingBytes).toBe(0);
    expect(pressure).toEqual([true, false]);
  });

  it('batch-intake - a durable queue answers with its shard’s confirm of the last record, not before', () => {
    const { shards, topology, confirms, intake, answers } = setup();
    topology.declareQueue('d', { durable: true, exclusive: false, autoDelete: false, arguments: {} }, false, 0);
    intake.onBatch(batch(7, '', 'd', 2), true, 'r');
    expect(answers).toEqual([]);
    const written = shards.written.filter((w) => w.method === 'publish');
    const token = written[1].args[1] as number;
    expect(written[0].args[1]).toBe(0);
    expect(token).not.toBe(0);
    confirms.settle(token, ConfirmStatus.ok);
    expect(answers).toEqual([{ subject: 'r', seq: 7, ok: true }]);
  });
});
