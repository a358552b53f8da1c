/**
 * Crash property of the log store, with a seeded PRNG (replay a failure with SHARDMQ_SEED=<seed>).
 *
 * Random sequences of appends, removes (of live, unknown and duplicate ids) and topology ops run
 * against a real LogStore, with flush requests and event-loop turns sprinkled in. Whenever the store
 * reports (onDurable, onFlushError), the test copies the segment files: that is what SIGKILL at that
 * instant would leave. Then, for a sample of those images and of torn images built between two of
 * them (the first image plus a random prefix of what the next flush wrote: SIGKILL mid-write):
 *
 *   recovered state == the model's state at the recovered LSN, and that LSN is at least the durable
 *   one when the image was taken (exactly it for images taken at a report).
 *
 * "State" is the live messages (bytes and order), the compacted topology and nextId. So nothing
 * durable is lost, and nothing whose removal was durable comes back. Between consecutive images,
 * every file in both must only have grown: durable bytes are never rewritten.
 *
 * The topology model here is the store's own TopologyModel (its compaction rules are pinned by the
 * contract suite); what this test checks is that logging, snapshots and segment deletion keep it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LogStore, type LogStoreOptions } from '../../src/store/log-store.js';
import { parseSegmentFileName } from '../../src/store/segment.js';
import type { PersistedMessage, RecoveryResult, TopologyOp } from '../../src/store/store.js';
import { TopologyModel } from '../../src/store/topology-model.js';
import { FaultyFs, type FaultableOp } from '../helpers/faulty-fs.js';
import { Prng, testSeed } from '../helpers/prng.js';
import { tempDirs } from '../helpers/temp-dir.js';
import { DurabilityProbe } from './store-harness.js';

const ROOT_SEED = testSeed();
/** More with SHARDMQ_STORE_CASES=<n> (a longer soak); the default keeps `npx vitest run test/store` to seconds. */
const CASES_PER_VARIANT = Number(process.env.SHARDMQ_STORE_CASES ?? 3);
const OPS_PER_CASE = 300;
const IMAGES_CHECKED_PER_CASE = 6;
const TORN_IMAGES_PER_CASE = 6;

type Logged =
  | { kind: 'message'; lsn: number; m: PersistedMessage }
  | { kind: 'remove'; lsn: number; queue: string; id: number }
  | { kind: 'topology'; lsn: number; op: TopologyOp };

/** Segment file name → bytes, taken at one instant, with the durable LSN then. */
interface Image {
  readonly lsn: number;
  readonly files: Map<string, Buffer>;
  /** Taken at a report: recovery must land exactly on `lsn`. */
  readonly exact: boolean;
}

interface ExpectedState {
  readonly messages: string[];
  readonly topology: TopologyOp[];
  readonly nextId: number;
}

/** The reference: every append with its LSN, replayed to any LSN. */
class Model {
  readonly log: Logged[] = [];
  /** Live (queue, id) now, for choosing removes. */
  readonly live = new Map<string, { queue: string; id: number }>();
  readonly topology = new TopologyModel();

  stateAt(lsn: number): ExpectedState {
    const messages = new Map<string, { m: PersistedMessage; lsn: number }>();
    const topology = new TopologyModel();
    let nextId = 0;
    for (const entry of this.log) {
      if (entry.lsn > lsn) break;
      switch (entry.kind) {
        case 'message':
          messages.set(key(entry.m.queue, entry.m.id), { m: entry.m, lsn: entry.lsn });
          nextId = Math.max(nextId, entry.m.id + 1);
          break;
        case 'remove':
          messages.delete(key(entry.queue, entry.id));
          nextId = Math.max(nextId, entry.id + 1);
          break;
        case 'topology':
          topology.apply(entry.op);
          if (entry.op.op === 'deleteQueue') {
            for (const [k, v] of messages) if (v.m.queue === entry.op.name) messages.delete(k);
          }
          break;
      }
    }
    const ordered = [...messages.values()].sort((a, b) => a.m.id - b.m.id || a.lsn - b.lsn);
    return { messages: ordered.map((v) => describeMessage(v.m)), topology: topology.ops(), nextId };
  }
}

function key(queue: string, id: number): string {
  return `${queue}\u0000${id}`;
}

function describeMessage(m: PersistedMessage): string {
  const props = m.properties === null ? '-' : Buffer.from(m.properties).toString('hex');
  return `${m.queue}/${m.id}/${m.exchange}/${m.routingKey}/${props}/${Buffer.from(m.payload).toString('hex')}`;
}

function stateOf(r: RecoveryResult): ExpectedState {
  return { messages: r.messages.map(describeMessage), topology: r.topology, nextId: r.nextId };
}

const QUEUES = ['q0', 'q1', 'q2', 'q3'];
const EXCHANGES = ['x0', 'x1', 'x2'];

function randomTopologyOp(rng: Prng): TopologyOp {
  const q = rng.pick(QUEUES);
  const x = rng.pick(EXCHANGES);
  const rk = rng.pick(['a', 'b', '#']);
  switch (rng.int(0, 7)) {
    case 0:
      return { op: 'declareQueue', name: q, durable: true, exclusive: false, autoDelete: false, arguments: {} };
    case 1:
      return { op: 'deleteQueue', name: q, ifUnused: false, ifEmpty: false };
    case 2:
      return { op: 'declareExchange', name: x, type: 'topic', durable: true, autoDelete: x === 'x2', internal: false, arguments: {} };
    case 3:
      return { op: 'deleteExchange', name: x };
    case 4:
      return { op: 'bindQueue', exchange: rng.chance(0.2) ? 'amq.topic' : x, queue: q, routingKey: rk, arguments: {} };
    case 5:
      return { op: 'unbindQueue', exchange: x, queue: q, routingKey: rk, arguments: {} };
    case 6:
      return { op: 'bindExchange', destination: x, source: rng.pick(EXCHANGES), routingKey: rk, arguments: {} };
    default:
      return { op: 'unbindExchange', destination: x, source: rng.pick(EXCHANGES), routingKey: rk, arguments: {} };
  }
}

/** Reads the segment files now. Newest first: a dead segment is only unlinked after every older one it depended on. */
function takeImage(dir: string, lsn: number, exact: boolean): Image {
  const names = fs
    .readdirSync(dir)
    .filter((n) => parseSegmentFileName(n) !== null)
    .sort()
    .reverse();
  const files = new Map<string, Buffer>();
  for (const name of names) {
    try {
      files.set(name, fs.readFileSync(path.join(dir, name)));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err; // unlinked meanwhile: a dead segment
    }
  }
  return { lsn, files, exact };
}

/** SIGKILL during the flush that led from `a` to `b`: `a`'s files plus the first `cut` bytes that flush wrote. */
function tornImage(a: Image, b: Image, rng: Prng): { files: Map<string, Buffer>; minLsn: number; maxLsn: number } | null {
  const names = [...a.files.keys()].sort();
  const lastOfA = names[names.length - 1] ?? '';
  const growing = [...b.files.keys()].filter((n) => n >= lastOfA).sort();
  if (lastOfA !== '' && !b.files.has(lastOfA)) return null; // it grew, was sealed and deleted within one flush
  const extras = growing.map((name) => ({ name, base: a.files.get(name) ?? Buffer.alloc(0), full: b.files.get(name)! }));
  const total = extras.reduce((sum, e) => sum + e.full.length - e.base.length, 0);
  let remaining = rng.int(0, total);
  const files = new Map(a.files);
  for (const e of extras) {
    const take = Math.min(remaining, e.full.length - e.base.length);
    remaining -= take;
    if (e.base.length + take > 0) files.set(e.name, e.full.subarray(0, e.base.length + take));
  }
  return { files, minLsn: a.lsn, maxLsn: b.lsn };
}

interface Variant {
  readonly name: string;
  readonly options: Partial<LogStoreOptions>;
  /** Chance that a flush request comes with one injected fault. */
  readonly faultChance: number;
}

const variants: Variant[] = [
  { name: 'fsync=always', options: { fsync: 'always' }, faultChance: 0 },
  { name: 'fsync=batch', options: { fsync: 'batch', batchIntervalMs: 1 }, faultChance: 0 },
  { name: 'segmentBytes=1500 (rolling and deletion)', options: { fsync: 'always', segmentBytes: 1500 }, faultChance: 0 },
  { name: 'segmentBytes=2000 with injected faults', options: { fsync: 'batch', batchIntervalMs: 0, segmentBytes: 2000 }, faultChance: 0.2 },
];

const FAULTS: ReadonlyArray<{ op: FaultableOp; code: string }> = [
  { op: 'write', code: 'ENOSPC' },
  { op: 'write', code: 'EIO' },
  { op: 'fsync', code: 'EIO' },
  { op: 'openForWrite', code: 'EMFILE' },
  { op: 'syncDir', code: 'EIO' },
];

describe.each(variants)('log store property - $name', (variant) => {
  const dirs = tempDirs('shardmq-store-prop-');
  afterEach(() => dirs.cleanup());

  it('log store property - every crash image recovers the model state at its LSN', async () => {
    const root = new Prng(ROOT_SEED ^ hash(variant.name));
    let deleted = 0;
    for (let c = 0; c < CASES_PER_VARIANT; c++) {
      const rng = root.fork();
      deleted += await runCase(rng, variant, dirs.make(), `seed ${ROOT_SEED} variant '${variant.name}' case ${c} (case seed ${rng.seed})`);
    }
    // The small-segment rows exist to exercise rolling and deletion: make sure they did.
    if (variant.options.segmentBytes !== undefined) expect(deleted, `seed ${ROOT_SEED}`).toBeGreaterThan(0);
  });
});

/** Runs one case; returns how many segment files the store deleted. */
async function runCase(rng: Prng, variant: Variant, dir: string, label: string): Promise<number> {
  const seam = new FaultyFs();
  const store = new LogStore({ dir, retryDelayMs: 0, ...variant.options, fs: seam });
  const images: Image[] = [];
  const probe = new DurabilityProbe(store, (lsn) => images.push(takeImage(dir, lsn, true)));
  const onError = store.onFlushError;
  store.onFlushError = (err, upTo) => {
    onError(err, upTo);
    images.push(takeImage(dir, store.durableLsn, true));
  };
  store.recover();
  const model = new Model();
  let nextId = 0;

  const lastLsn = (): number => (model.log.length > 0 ? model.log[model.log.length - 1].lsn : 0);
  for (let i = 0; i < OPS_PER_CASE; i++) {
    if (i % 50 === 49) {
      // Now and then wait for a flush to end, so every case has images spread over its run.
      store.requestFlush();
      await Promise.race([probe.durableAt(lastLsn()), probe.nextError()]);
    }
    const roll = rng.float();
    if (roll < 0.36) {
      const queue = rng.pick(QUEUES);
      const id = rng.chance(0.03) && nextId > 0 ? rng.int(0, nextId - 1) : nextId++;
      const payload = new Uint8Array(rng.skewedSize(0, 40, 200));
      rng.fill(payload);
      const properties = rng.chance(0.3) ? Uint8Array.from([rng.int(0, 255), 7]) : null;
      const m: PersistedMessage = { queue, id, exchange: rng.pick(['', 'x0']), routingKey: `k${rng.int(0, 9)}`, properties, payload };
      model.log.push({ kind: 'message', lsn: store.appendMessage(m), m });
      model.live.set(key(queue, id), { queue, id });
    } else if (roll < 0.72) {
      let target = { queue: rng.pick(QUEUES), id: rng.int(0, nextId + 5) }; // often unknown
      if (model.live.size > 0 && rng.chance(0.85)) target = rng.pick([...model.live.values()]);
      model.log.push({ kind: 'remove', lsn: store.appendRemove(target.queue, target.id), ...target });
      model.live.delete(key(target.queue, target.id));
    } else if (roll < 0.8) {
      const op = randomTopologyOp(rng);
      model.log.push({ kind: 'topology', lsn: store.appendTopology(op), op });
      if (op.op === 'deleteQueue') for (const [k, v] of model.live) if (v.queue === op.name) model.live.delete(k);
    } else if (roll < 0.9) {
      if (rng.chance(variant.faultChance)) {
        const f = rng.pick(FAULTS);
        seam.fail(f.op, { code: f.code, times: 1, partialBytes: rng.int(0, 30) });
      }
      store.requestFlush();
    } else {
      await new Promise((resolve) => setImmediate(resolve));
      await new Promise((resolve) => setTimeout(resolve, rng.int(0, 2)));
    }
  }
  seam.heal();
  const finalLsn = lastLsn();
  while (store.durableLsn < finalLsn) {
    store.requestFlush();
    await Promise.race([probe.durableAt(finalLsn), probe.nextError()]);
  }
  await store.close();
  expect(store.durableLsn, label).toBe(finalLsn);
  expect(images.length, label).toBeGreaterThanOrEqual(OPS_PER_CASE / 50);

  // Durable bytes are never rewritten: between two images, a file in both has only grown.
  for (let i = 1; i < images.length; i++) {
    for (const [name, now] of images[i].files) {
      const before = images[i - 1].files.get(name);
      if (before === undefined) continue;
      expect(
        now.length >= before.length && now.subarray(0, before.length).equals(before),
        `${label}: ${name} rewritten between images ${i - 1} and ${i}`,
      ).toBe(true);
    }
  }

  const crashDirs = tempDirs('shardmq-store-crash-');
  const check = async (files: Map<string, Buffer>, minLsn: number, maxLsn: number, what: string): Promise<void> => {
    const crashDir = crashDirs.make();
    for (const [name, bytes] of files) fs.writeFileSync(path.join(crashDir, name), bytes);
    const recovering = new LogStore({ dir: crashDir });
    const recovered = recovering.recover();
    await recovering.close();
    const at = `${label}: ${what}`;
    expect(recovered.lastLsn, at).toBeGreaterThanOrEqual(minLsn);
    expect(recovered.lastLsn, at).toBeLessThanOrEqual(maxLsn);
    expect(recovered.stats.corruptSkipped, at).toBe(0);
    expect(stateOf(recovered), at).toEqual(model.stateAt(recovered.lastLsn));
  };
  try {
    for (let k = 0; k < IMAGES_CHECKED_PER_CASE; k++) {
      const i = rng.int(0, images.length - 1);
      const image = images[i];
      await check(image.files, image.lsn, image.exact ? image.lsn : Infinity, `image ${i} at LSN ${image.lsn}`);
    }
    for (let k = 0; k < TORN_IMAGES_PER_CASE; k++) {
      const i = rng.int(0, images.length - 2);
      const torn = tornImage(images[i], images[i + 1], rng);
      if (torn !== null) await check(torn.files, torn.minLsn, torn.maxLsn, `torn image between ${i} and ${i + 1}`);
    }
    // And the directory itself, after close.
    await check(takeImage(dir, finalLsn, true).files, finalLsn, finalLsn, 'the directory after close');
  } finally {
    crashDirs.cleanup();
  }
  return seam.calls.unlink - seam.failures.unlink;
}

function hash(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}
