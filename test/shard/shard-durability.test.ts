/**
 * ShardDurability through ShardCore with a store the test controls: it records every append and
 * reports durability (or a failed flush) only when the test says so, so each confirm can be seen
 * waiting for its LSN.
 */
import { describe, expect, it } from 'vitest';
import { CounterSlot, createCounterStorage } from '../../src/metrics/shard-counters.js';
import { encodeProperties, type MessageProperties } from '../../src/protocol/properties.js';
import { AckModeCode, ConfirmStatus, NO_TOKEN, RecordKind, type ManageOp } from '../../src/protocol/ring-record-codec.js';
import { ShardCore } from '../../src/shard/shard-core.js';
import type { MessageStore, PersistedMessage, RecoveryResult, TopologyOp } from '../../src/store/store.js';
import { InboundRing, OutboundRing, type OutRecord } from './ring-fixture.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StreamStore } from '../../src/store/stream-store.js';

const ADMIN = 100;

class FakeStore implements MessageStore {
  onDurable: (lsn: number) => void = () => {};
  onFlushError: (err: Error, failedUpToLsn: number) => void = () => {};
  readonly messages: Array<PersistedMessage & { lsn: number }> = [];
  readonly removes: Array<{ queue: string; id: number }> = [];
  readonly topology: TopologyOp[] = [];
  flushRequests = 0;
  closed = false;
  #lsn = 0;
  readonly #recovered: RecoveryResult;

  constructor(recovered: Partial<RecoveryResult> = {}) {
    this.#recovered = {
      topology: [],
      messages: [],
      nextId: 0,
      lastLsn: 0,
      stats: { segments: 0, records: 0, corruptSkipped: 0, tornBytesTruncated: 0, damage: [], durationMs: 0 },
      ...recovered,
    };
  }

  get durableLsn(): number {
    return 0;
  }

  get lastLsn(): number {
    return this.#lsn;
  }

  recover(): RecoveryResult {
    return this.#recovered;
  }

  appendMessage(m: PersistedMessage): number {
    this.messages.push({ ...m, lsn: ++this.#lsn });
    return this.#lsn;
  }

  appendRemove(queue: string, id: number): number {
    this.removes.push({ queue, id });
    return ++this.#lsn;
  }

  appendTopology(op: TopologyOp): number {
    this.topology.push(op);
    return ++this.#lsn;
  }

  requestFlush(): void {
    this.flushRequests++;
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

class Shard {
  readonly counters = new Float64Array(createCounterStorage());
  readonly inbound = new InboundRing();
  readonly outbound = new OutboundRing();
  readonly storeErrors: Error[] = [];
  readonly core: ShardCore;
  #token = 1;

  constructor(
    readonly store: FakeStore = new FakeStore(),
    streamStore: StreamStore | null = null,
  ) {
    this.core = new ShardCore(
      { index: 0, shardCount: 1, now: () => 1_700_000_000_000, store, streamStore, onStoreError: (err) => this.storeErrors.push(err) },
      this.inbound.reader,
      this.outbound.writer,
      this.counters,
    );
  }

  /** One shard-loop batch. */
  run(): OutRecord[] {
    this.inbound.drain(this.core.onRecord);
    this.core.endBatch();
    this.outbound.producer.commit();
    return this.outbound.read();
  }

  declareQueue(name: string, durable: boolean, args: Record<string, unknown> = {}): void {
    const op: ManageOp = { op: 'declareQueue', name, durable, exclusive: false, autoDelete: false, arguments: args };
    expect(this.inbound.writer.manage(ADMIN, NO_TOKEN, op)).toBe(true);
  }

  manage(op: ManageOp): void {
    expect(this.inbound.writer.manage(ADMIN, NO_TOKEN, op)).toBe(true);
  }

  /** Publishes to exchange `exchange` with a confirm token; returns the token. */
  publishTo(exchange: string, key: string, payload: string): number {
    const token = this.#token++;
    expect(this.inbound.writer.publish(1, token, exchange, key, null, Buffer.from(payload), 0)).toBe(true);
    return token;
  }

  /** Publishes to the default exchange with a confirm token; returns the token. */
  publish(queue: string, payload: string, props?: MessageProperties): number {
    const token = this.#token++;
    const p = props === undefined ? null : encodeProperties(props);
    expect(this.inbound.writer.publish(1, token, '', queue, p, Buffer.from(payload), 0)).toBe(true);
    return token;
  }
}

const confirms = (out: OutRecord[]): Array<{ token: number; status: number }> =>
  out.flatMap((o) => (o.kind === 'confirm' ? [{ token: o.token, status: o.status }] : []));

describe('shard durability', () => {
  it('persist - a persistent message to a durable queue is logged and confirmed only once its LSN is durable', () => {
    const s = new Shard();
    s.declareQueue('d', true);
    s.declareQueue('n', false);
    s.run();
    expect(s.store.topology.map((op) => op.name)).toEqual(['d']);
    const flushesBefore = s.store.flushRequests;

    const persisted = s.publish('d', 'p1', { messageId: 'm1' });
    const transient = s.publish('d', 'p2', { deliveryMode: 1 });
    const toMemoryQueue = s.publish('n', 'p3');
    expect(confirms(s.run())).toEqual([
      { token: transient, status: ConfirmStatus.ok },
      { token: toMemoryQueue, status: ConfirmStatus.ok },
    ]);
    expect(s.store.messages.map((m) => [m.queue, Buffer.from(m.payload).toString()])).toEqual([['d', 'p1']]);
    expect(s.store.messages[0].properties).toEqual(encodeProperties({ messageId: 'm1' }));
    // One flush request for the whole batch (group commit).
    expect(s.store.flushRequests).toBe(flushesBefore + 1);
    expect(s.counters[CounterSlot.durable]).toBe(1);

    const lsn = s.store.messages[0].lsn;
    s.store.onDurable(lsn - 1);
    expect(s.outbound.read()).toEqual([]);
    s.store.onDurable(lsn);
    // The store callback commits the ring itself: it runs outside the shard loop's batches.
    expect(confirms(s.outbound.read())).toEqual([{ token: persisted, status: ConfirmStatus.ok }]);
  });

  it('persist - confirms go out in LSN order, each once, as durability advances', () => {
    const s = new Shard();
    s.declareQueue('d', true);
    s.run();
    const tokens = [s.publish('d', 'a'), s.publish('d', 'b'), s.publish('d', 'c')];
    expect(confirms(s.run())).toEqual([]);
    const [a, b, c] = s.store.messages.map((m) => m.lsn);
    s.store.onDurable(b);
    expect(confirms(s.outbound.read()).map((x) => x.token)).toEqual([tokens[0], tokens[1]]);
    s.store.onDurable(c);
    s.store.onDurable(c);
    expect(confirms(s.outbound.read()).map((x) => x.token)).toEqual([tokens[2]]);
    expect(a).toBeLessThan(b);
  });

  it('removals - an acked persistent message is logged as removed; the durable gauge follows', () => {
    const s = new Shard();
    s.declareQueue('d', true);
    s.run();
    s.publish('d', 'x');
    s.run();
    expect(s.counters[CounterSlot.durable]).toBe(1);
    expect(s.inbound.writer.subscribe(7, 1, 'd', AckModeCode.client, 0, 0, 0)).toBe(true);
    const delivered = s.run().find((o) => o.kind === 'deliver');
    expect(delivered).toBeDefined();
    expect(s.store.removes).toEqual([]);
    const flushes = s.store.flushRequests;
    expect(s.inbound.writer.settle(RecordKind.ack, 7, (delivered as { tag: number }).tag, false)).toBe(true);
    s.run();
    expect(s.store.removes).toEqual([{ queue: 'd', id: s.store.messages[0].id }]);
    expect(s.store.flushRequests).toBe(flushes + 1);
    expect(s.counters[CounterSlot.durable]).toBe(0);
  });

  it("deleteQueue - is logged once; the queue's persistent messages stop counting without a remove each", () => {
    const s = new Shard();
    s.declareQueue('d', true);
    s.run();
    s.publish('d', 'x');
    s.publish('d', 'y');
    s.run();
    expect(s.counters[CounterSlot.durable]).toBe(2);
    expect(s.inbound.writer.manage(ADMIN, NO_TOKEN, { op: 'deleteQueue', name: 'd', ifUnused: false, ifEmpty: false })).toBe(true);
    s.run();
    expect(s.store.topology.map((op) => op.op)).toEqual(['declareQueue', 'deleteQueue']);
    expect(s.store.removes).toEqual([]);
    expect(s.counters[CounterSlot.durable]).toBe(0);
  });

  it('flush error - waiting publishers are told storageFailed and the error is reported; later confirms still wait', () => {
    const s = new Shard();
    s.declareQueue('d', true);
    s.run();
    const first = s.publish('d', 'a');
    s.run();
    const second = s.publish('d', 'b');
    s.run();
    const [a, b] = s.store.messages.map((m) => m.lsn);
    const err = new Error('ENOSPC');
    s.store.onFlushError(err, a);
    expect(confirms(s.outbound.read())).toEqual([{ token: first, status: ConfirmStatus.storageFailed }]);
    expect(s.storeErrors).toEqual([err]);
    s.store.onDurable(b);
    expect(confirms(s.outbound.read())).toEqual([{ token: second, status: ConfirmStatus.ok }]);
  });

  it('recover - replays the topology without logging it again, requeues messages as redelivered, declares a lost queue again', () => {
    const store = new FakeStore({
      topology: [
        { op: 'declareQueue', name: 'd', durable: true, exclusive: false, autoDelete: false, arguments: {} },
        { op: 'bindQueue', exchange: 'gone', queue: 'd', routingKey: 'k', arguments: {} },
      ],
      messages: [
        {
          queue: 'd',
          id: 5,
          exchange: '',
          routingKey: 'd',
          properties: encodeProperties({ messageId: 'five' }),
          payload: Buffer.from('m5'),
        },
        { queue: 'lost', id: 6, exchange: '', routingKey: 'lost', properties: null, payload: Buffer.from('m6') },
      ],
      nextId: 9,
    });
    const s = new Shard(store);
    const summary = s.core.recover(store.recover());
    expect(summary.messages).toBe(2);
    expect(summary.recreatedQueues).toEqual(['lost']);
    // The binding to a missing exchange is skipped; the recreated queue is reported as applied.
    expect(summary.topology.map((op) => [op.op, 'name' in op ? op.name : null])).toEqual([
      ['declareQueue', 'd'],
      ['declareQueue', 'lost'],
    ]);
    expect(store.topology).toEqual([]);
    expect(s.counters[CounterSlot.durable]).toBe(2);
    expect(s.core.queueStats().map((q) => [q.name, q.depth, q.durable])).toEqual([
      ['d', 1, true],
      ['lost', 1, true],
    ]);

    expect(s.inbound.writer.subscribe(7, 1, 'd', AckModeCode.auto, 0, 0, 0)).toBe(true);
    expect(s.run()).toMatchObject([{ kind: 'deliver', redelivered: true, payload: 'm5' }]);
    // Delivered to an auto-ack consumer: gone for good, so its removal is logged.
    expect(store.removes).toEqual([{ queue: 'd', id: 5 }]);

    // Ids continue above every id the log has seen.
    s.publish('lost', 'new');
    s.run();
    expect(store.messages.map((m) => m.id)).toEqual([9]);
    // After recovery, topology is logged again.
    s.declareQueue('later', true);
    s.run();
    expect(store.topology.map((op) => op.name)).toEqual(['later']);
  });

  it('close - closes the store', async () => {
    const s = new Shard();
    await s.core.close();
    expect(s.store.closed).toBe(true);
  });

  it('streams on disk - a publish to a durable queue and a stream is confirmed once both the log and the stream flush say durable', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'smq-durability-'));
    try {
      const streams = new StreamStore({ dir, fsync: 'always', batchIntervalMs: 0 });
      const s = new Shard(new FakeStore(), streams);
      s.declareQueue('d', true);
      s.declareQueue('st', true, { 'x-queue-type': 'stream' });
      s.manage({ op: 'declareExchange', name: 'x', type: 'fanout', durable: true, autoDelete: false, internal: false, arguments: {} });
      s.manage({ op: 'bindQueue', exchange: 'x', queue: 'd', routingKey: '', arguments: {} });
      s.manage({ op: 'bindQueue', exchange: 'x', queue: 'st', routingKey: '', arguments: {} });
      s.run();
      const both = s.publishTo('x', '', 'to-both');
      const streamOnly = s.publish('st', 'to-stream');
      expect(confirms(s.run())).toEqual([]);
      // The stream's flush (fsync 'always': started by the batch's end) lands first: only the stream-only publish goes.
      for (let i = 0; i < 500 && streams.durableSeq < 2; i++) await new Promise((r) => setTimeout(r, 2));
      expect(streams.durableSeq).toBe(2);
      expect(confirms(s.outbound.read())).toEqual([]);
      // The first publish waits for its LSN too; the second, behind it in order, waits with it.
      s.store.onDurable(s.store.messages[0].lsn);
      expect(confirms(s.outbound.read())).toEqual([
        { token: both, status: ConfirmStatus.ok },
        { token: streamOnly, status: ConfirmStatus.ok },
      ]);
      await s.core.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
