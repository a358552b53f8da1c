/**
 * The MessageStore contract, one suite over every implementation and option permutation (nats-server
 * `testAllStoreAllPermutations`). Each row states what its parameter changes and the first test of
 * the row proves that the parameter is in effect, so no row silently tests another's configuration.
 *
 * Assertions about what survives a restart run only for persistent rows (a plain `if` per row); the
 * transient row instead proves that a fresh MemoryStore recovers nothing.
 */
import * as fs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { LogStore } from '../../src/store/log-store.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { StoreStateError, type MessageStore, type TopologyOp } from '../../src/store/store.js';
import { FaultyFs } from '../helpers/faulty-fs.js';
import { tempDirs } from '../helpers/temp-dir.js';
import { DurabilityProbe, msg, plain } from './store-harness.js';

interface Row {
  readonly name: string;
  readonly persistent: boolean;
  /** Opens the store kept in `dir` (a new instance each time: a restart). */
  open(dir: string, seam: FaultyFs): MessageStore;
  /** Proves the row's parameter is in effect. */
  checkParameter(dir: string, seam: FaultyFs): Promise<void>;
}

/** Appends 3 messages and asks for a flush after each, all in one turn; returns the fsyncs done by then. */
async function fsyncsForThreeRequestsInOneTurn(store: MessageStore, seam: FaultyFs): Promise<number> {
  const probe = new DurabilityProbe(store);
  store.recover();
  let last = 0;
  for (let id = 0; id < 3; id++) {
    last = store.appendMessage(msg('q', id));
    store.requestFlush();
  }
  await probe.durableAt(last);
  await store.close();
  return seam.calls.fsync;
}

const rows: Row[] = [
  {
    name: 'MemoryStore',
    persistent: false,
    open: () => new MemoryStore(),
    async checkParameter(dir) {
      const store = new MemoryStore();
      const probe = new DurabilityProbe(store);
      store.recover();
      await probe.flush(store.appendMessage(msg('q', 1)));
      await store.close();
      expect(fs.readdirSync(dir)).toEqual([]); // nothing on disk
    },
  },
  {
    name: 'LogStore fsync=always',
    persistent: true,
    open: (dir, seam) => new LogStore({ dir, fsync: 'always', fs: seam, retryDelayMs: 0 }),
    async checkParameter(dir, seam) {
      // One flush starts at the first request; the other two coalesce into the next one.
      const store = new LogStore({ dir, fsync: 'always', fs: seam });
      expect(await fsyncsForThreeRequestsInOneTurn(store, seam)).toBe(2);
    },
  },
  {
    name: 'LogStore fsync=batch',
    persistent: true,
    open: (dir, seam) => new LogStore({ dir, fsync: 'batch', batchIntervalMs: 1, fs: seam, retryDelayMs: 0 }),
    async checkParameter(dir, seam) {
      // Group commit: the three requests share one timer, one write and one fsync.
      const store = new LogStore({ dir, fsync: 'batch', batchIntervalMs: 1, fs: seam });
      expect(await fsyncsForThreeRequestsInOneTurn(store, seam)).toBe(1);
    },
  },
  {
    name: 'LogStore segmentBytes=200',
    persistent: true,
    open: (dir, seam) => new LogStore({ dir, segmentBytes: 200, batchIntervalMs: 0, fs: seam, retryDelayMs: 0 }),
    async checkParameter(dir, seam) {
      const store = new LogStore({ dir, segmentBytes: 200, batchIntervalMs: 0, fs: seam });
      const probe = new DurabilityProbe(store);
      store.recover();
      let last = 0;
      for (let id = 0; id < 20; id++) last = store.appendMessage(msg('q', id));
      await probe.flush(last);
      await store.close();
      expect(fs.readdirSync(dir).filter((n) => n.endsWith('.seg')).length).toBeGreaterThan(3);
    },
  },
];

const declareQueue = (name: string): TopologyOp => ({
  op: 'declareQueue',
  name,
  durable: true,
  exclusive: false,
  autoDelete: false,
  arguments: {},
});
const deleteQueue = (name: string): TopologyOp => ({ op: 'deleteQueue', name, ifUnused: false, ifEmpty: false });
const declareExchange = (name: string, type = 'direct', autoDelete = false): TopologyOp => ({
  op: 'declareExchange',
  name,
  type,
  durable: true,
  autoDelete,
  internal: false,
  arguments: {},
});
const deleteExchange = (name: string): TopologyOp => ({ op: 'deleteExchange', name });
const bindQueue = (exchange: string, queue: string, routingKey: string, args: Record<string, unknown> = {}): TopologyOp => ({
  op: 'bindQueue',
  exchange,
  queue,
  routingKey,
  arguments: args,
});
const unbindQueue = (exchange: string, queue: string, routingKey: string, args: Record<string, unknown> = {}): TopologyOp => ({
  op: 'unbindQueue',
  exchange,
  queue,
  routingKey,
  arguments: args,
});
const bindExchange = (destination: string, source: string, routingKey: string): TopologyOp => ({
  op: 'bindExchange',
  destination,
  source,
  routingKey,
  arguments: {},
});

describe.each(rows)('store contract - $name', (row) => {
  const dirs = tempDirs('shardmq-store-contract-');
  afterEach(() => dirs.cleanup());

  /** Opens a store in `dir`, recovers it and attaches a probe. */
  function open(dir: string, seam = new FaultyFs()) {
    const store = row.open(dir, seam);
    const probe = new DurabilityProbe(store);
    const recovered = store.recover();
    return { store, probe, recovered, seam };
  }

  it('store contract - the row parameter is in effect', async () => {
    await row.checkParameter(dirs.make(), new FaultyFs());
  });

  it('store contract - LSNs increase by one and onDurable covers every append, asynchronously', async () => {
    const { store, probe } = open(dirs.make());
    const lsns = [
      store.appendTopology(declareQueue('q')),
      store.appendMessage(msg('q', 1)),
      store.appendMessage(msg('q', 2)),
      store.appendRemove('q', 1),
    ];
    expect(lsns).toEqual([lsns[0], lsns[0] + 1, lsns[0] + 2, lsns[0] + 3]);
    store.requestFlush();
    expect(probe.durable).toEqual([]); // never from inside requestFlush
    await probe.durableAt(lsns[3]);
    const more = store.appendMessage(msg('q', 3));
    expect(more).toBe(lsns[3] + 1);
    await probe.flush(more);
    await store.close();
    expect(probe.insideRequestFlush).toBe(false);
    expect(probe.durable.length).toBeGreaterThanOrEqual(2);
    for (let i = 1; i < probe.durable.length; i++) expect(probe.durable[i]).toBeGreaterThan(probe.durable[i - 1]);
    expect(probe.durable[probe.durable.length - 1]).toBe(more);
    expect(store.durableLsn).toBe(more);
    expect(probe.errors).toEqual([]);
  });

  it('store contract - requestFlush with nothing new reports nothing', async () => {
    const { store, probe } = open(dirs.make());
    await probe.flush(store.appendMessage(msg('q', 1)));
    const reported = probe.durable.length;
    store.requestFlush();
    store.requestFlush();
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect(probe.durable.length).toBe(reported);
    await store.close();
  });

  it('store contract - appends before recover() or after close() throw', async () => {
    const store = row.open(dirs.make(), new FaultyFs());
    expect(() => store.appendMessage(msg('q', 1))).toThrow(StoreStateError);
    store.recover();
    expect(() => store.recover()).toThrow(StoreStateError);
    await store.close();
    await store.close(); // idempotent
    expect(() => store.appendRemove('q', 1)).toThrow(StoreStateError);
    expect(() => store.appendTopology(declareQueue('q'))).toThrow(StoreStateError);
  });

  it('store contract - bad ids and unknown topology ops are refused without taking an LSN', async () => {
    const { store, probe } = open(dirs.make());
    expect(() => store.appendMessage(msg('q', -1))).toThrow(RangeError);
    expect(() => store.appendMessage(msg('q', 1.5))).toThrow(RangeError);
    expect(() => store.appendRemove('q', Number.MAX_SAFE_INTEGER + 1)).toThrow(RangeError);
    expect(() => store.appendTopology({ op: 'purgeQueue', name: 'q' })).toThrow(/log a purge as removes/);
    expect(() => store.appendTopology({ op: 'bindQueue', exchange: 'x' })).toThrow(TypeError);
    const first = store.appendMessage(msg('q', 1));
    await probe.flush(first);
    await store.close();
    expect(first).toBe(1);
  });

  it('store contract - removing an unknown or already removed id is harmless', async () => {
    const dir = dirs.make();
    const { store, probe } = open(dir);
    store.appendMessage(msg('q', 1));
    store.appendRemove('q', 99);
    store.appendRemove('nope', 1);
    store.appendRemove('q', 1);
    await probe.flush(store.appendRemove('q', 1));
    await store.close();
    expect(probe.errors).toEqual([]);
    if (row.persistent) expect(open(dir).recovered.messages).toEqual([]);
  });

  // Defined only for the rows they concern (a plain `if`, so no row reports skipped tests).
  if (!row.persistent)
    describe('transient only', () => {
      it('store contract - a fresh instance recovers nothing', async () => {
        const first = open(dirs.make());
        first.store.appendTopology(declareQueue('q'));
        await first.probe.flush(first.store.appendMessage(msg('q', 1)));
        await first.store.close();
        const { recovered } = open(dirs.make());
        expect(recovered).toMatchObject({ topology: [], messages: [], nextId: 0, lastLsn: 0 });
      });
    });

  if (row.persistent)
    describe('persistent only', () => {
      it('store contract - messages, removes and topology survive a restart, in id order', async () => {
        const dir = dirs.make();
        const a = open(dir);
        expect(a.recovered).toMatchObject({ topology: [], messages: [], nextId: 0, lastLsn: 0 });
        const props = Uint8Array.from([1, 2, 3, 0, 255]);
        const written = [
          msg('q', 1, 'one', props),
          msg('q', 2, ''),
          msg('r', 3, 'x'.repeat(300)),
          msg('q', 4, 'four'),
          msg('r', 5, 'five', new Uint8Array(0)),
        ];
        a.store.appendTopology(declareQueue('q'));
        a.store.appendTopology(declareQueue('r'));
        for (const m of written) a.store.appendMessage(m);
        a.store.appendRemove('q', 2);
        await a.probe.flush(a.store.appendRemove('r', 3));
        await a.store.close();

        const b = open(dir);
        expect(b.recovered.messages.map(plain)).toEqual([written[0], written[3], written[4]].map(plain));
        expect(b.recovered.topology).toEqual([declareQueue('q'), declareQueue('r')]);
        expect(b.recovered.lastLsn).toBe(9);
        expect(b.recovered.stats.corruptSkipped).toBe(0);
        expect(b.recovered.stats.tornBytesTruncated).toBe(0);
        expect(b.recovered.stats.records).toBeGreaterThan(0); // fewer than appended where dead segments were deleted
        expect(b.recovered.stats.durationMs).toBeGreaterThanOrEqual(0);
        await b.store.close();
      });

      it('store contract - ids and LSNs continue after restart, even when every message was removed', async () => {
        const dir = dirs.make();
        const a = open(dir);
        for (let id = 10; id < 20; id++) a.store.appendMessage(msg('q', id));
        let last = 0;
        for (let id = 10; id < 20; id++) last = a.store.appendRemove('q', id);
        await a.probe.flush(last);
        await a.store.close();

        const b = open(dir);
        expect(b.recovered.messages).toEqual([]);
        expect(b.recovered.nextId).toBe(20);
        expect(b.recovered.lastLsn).toBe(last);
        expect(b.store.durableLsn).toBe(last);
        const next = b.store.appendMessage(msg('q', b.recovered.nextId));
        expect(next).toBe(last + 1);
        await b.probe.flush(next);
        await b.store.close();

        const c = open(dir);
        expect(c.recovered.nextId).toBe(21);
        expect(c.recovered.lastLsn).toBe(next);
        expect(c.recovered.messages.map((m) => m.id)).toEqual([20]);
        await c.store.close();
      });

      it('store contract - deleteQueue drops the messages appended before it, not those after a redeclare', async () => {
        const dir = dirs.make();
        const a = open(dir);
        a.store.appendTopology(declareQueue('q'));
        a.store.appendTopology(declareQueue('keep'));
        a.store.appendMessage(msg('q', 1));
        a.store.appendMessage(msg('keep', 2));
        a.store.appendMessage(msg('q', 3));
        a.store.appendTopology(deleteQueue('q'));
        a.store.appendTopology(declareQueue('q'));
        await a.probe.flush(a.store.appendMessage(msg('q', 4)));
        await a.store.close();

        const b = open(dir);
        expect(b.recovered.messages.map((m) => `${m.queue}/${m.id}`)).toEqual(['keep/2', 'q/4']);
        await b.store.close();
      });

      it('store contract - the recovered topology is compacted and replayable', async () => {
        const dir = dirs.make();
        const a = open(dir);
        const ops: TopologyOp[] = [
          declareExchange('gone'),
          declareQueue('tmp'),
          declareExchange('x', 'topic'),
          declareExchange('auto', 'fanout', true),
          declareExchange('x', 'direct'), // redeclare: the first declaration stays
          declareQueue('q'),
          declareQueue('tmp2'),
          bindQueue('x', 'q', 'a.*'),
          bindQueue('x', 'q', 'a.*'), // twice: one binding
          bindQueue('x', 'tmp', 'b.#'), // removed with its queue
          bindQueue('x', 'q', 'h', { b: 2, a: 1 }),
          unbindQueue('x', 'q', 'h', { a: 1, b: 2 }), // same arguments, other key order: unbound
          bindQueue('amq.topic', 'q', 'c.#'), // predeclared exchanges need no declare
          bindQueue('x', 'never-declared', 'k'), // could not be replayed: not kept
          bindQueue('gone', 'q', 'k'), // removed with its exchange
          bindExchange('x', 'gone', 'k'),
          bindQueue('auto', 'tmp2', ''), // auto-delete exchange: goes when its last binding goes
          deleteQueue('tmp'),
          deleteExchange('gone'),
          deleteQueue('tmp2'),
        ];
        let last = 0;
        for (const op of ops) last = a.store.appendTopology(op);
        await a.probe.flush(last);
        await a.store.close();

        const b = open(dir);
        expect(b.recovered.topology).toEqual([
          declareExchange('x', 'topic'),
          declareQueue('q'),
          bindQueue('x', 'q', 'a.*'),
          bindQueue('amq.topic', 'q', 'c.#'),
        ]);
        // Topology that was only declared-and-deleted leaves nothing behind across another restart either.
        b.store.appendTopology(deleteExchange('x'));
        await b.probe.flush(b.store.appendTopology(declareQueue('later')));
        await b.store.close();
        const c = open(dir);
        expect(c.recovered.topology).toEqual([declareQueue('q'), declareQueue('later'), bindQueue('amq.topic', 'q', 'c.#')]);
        await c.store.close();
      });

      it('store contract - the same (queue, id) appended twice keeps the newer copy', async () => {
        const dir = dirs.make();
        const a = open(dir);
        a.store.appendMessage(msg('q', 1, 'old'));
        a.store.appendMessage(msg('other', 1, 'other queue, same id'));
        await a.probe.flush(a.store.appendMessage(msg('q', 1, 'new')));
        await a.store.close();
        const b = open(dir);
        expect(b.recovered.messages.map(plain)).toEqual([msg('other', 1, 'other queue, same id'), msg('q', 1, 'new')].map(plain));
        await b.store.close();
      });

      it('store contract - close() makes pending appends durable', async () => {
        const dir = dirs.make();
        const a = open(dir);
        a.store.appendMessage(msg('q', 1));
        const last = a.store.appendMessage(msg('q', 2));
        await a.store.close(); // no requestFlush
        expect(a.probe.durable[a.probe.durable.length - 1]).toBe(last);
        const b = open(dir);
        expect(b.recovered.messages.map((m) => m.id)).toEqual([1, 2]);
        await b.store.close();
      });
    });
});
