/**
 * LogStore behaviour beyond the shared contract: segment rolling and deletion, damaged files
 * (torn tails at every offset, bit flips, implausible lengths), injected disk faults, and group
 * commit counted in fsyncs through the seam (no timing assertions).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LogStore, type LogStoreOptions } from '../../src/store/log-store.js';
import { FORMAT_VERSION, RECORD_HEADER_BYTES, RecordType, recordCrc } from '../../src/store/record-codec.js';
import { scanSegment, segmentFileName } from '../../src/store/segment.js';
import type { TopologyOp } from '../../src/store/store.js';
import { FaultyFs, type FaultableOp } from '../helpers/faulty-fs.js';
import { tempDirs } from '../helpers/temp-dir.js';
import { DurabilityProbe, msg, plain } from './store-harness.js';

const dirs = tempDirs('shardmq-log-store-');
afterEach(() => dirs.cleanup());

function open(dir: string, options: Partial<LogStoreOptions> = {}) {
  const seam = options.fs instanceof FaultyFs ? options.fs : new FaultyFs();
  const store = new LogStore({ dir, batchIntervalMs: 0, retryDelayMs: 0, ...options, fs: seam });
  const probe = new DurabilityProbe(store);
  const recovered = store.recover();
  return { store, probe, recovered, seam };
}

function segmentFiles(dir: string): string[] {
  return fs
    .readdirSync(dir)
    .filter((n) => n.endsWith('.seg'))
    .sort();
}

/** Record starts and ends in a segment file, header included. */
function recordsOf(file: string): Array<{ start: number; end: number; type: number }> {
  const out: Array<{ start: number; end: number; type: number }> = [];
  scanSegment(fs.readFileSync(file), {
    record: (type, _bodyStart, bodyEnd, recordStart) => out.push({ start: recordStart, end: bodyEnd, type }),
    corrupt: () => {
      throw new Error('unexpected corrupt record');
    },
  });
  return out;
}

const declareQueue = (name: string): TopologyOp => ({
  op: 'declareQueue',
  name,
  durable: true,
  exclusive: false,
  autoDelete: false,
  arguments: {},
});

/** Writes `count` messages (ids 0..count-1) in one flush into a fresh store; returns the segment file. */
async function writeMessages(dir: string, count: number): Promise<string> {
  const { store, probe } = open(dir);
  let last = 0;
  for (let id = 0; id < count; id++) last = store.appendMessage(msg('q', id));
  await probe.flush(last);
  await store.close();
  const files = segmentFiles(dir);
  expect(files).toHaveLength(1);
  return path.join(dir, files[0]);
}

describe('log store - options', () => {
  it.each([
    [{ dir: '' }, /options\.dir/],
    [{ fsync: 'sometimes' }, /options\.fsync/],
    [{ batchIntervalMs: -1 }, /options\.batchIntervalMs/],
    [{ segmentBytes: 0 }, /options\.segmentBytes/],
    [{ segmentBytes: 1.5 }, /options\.segmentBytes/],
    [{ retryDelayMs: Number.NaN }, /options\.retryDelayMs/],
  ])('log store - rejects %o', (bad, message) => {
    expect(() => new LogStore({ dir: '/tmp/x', ...(bad as object) } as LogStoreOptions)).toThrow(message);
  });
});

describe('log store - segments', () => {
  it('log store - segments roll at the size limit; dead ones are deleted and the topology survives them', async () => {
    const dir = dirs.make();
    const a = open(dir, { segmentBytes: 256 });
    const topology: TopologyOp[] = [
      declareQueue('q'),
      { op: 'declareExchange', name: 'x', type: 'topic', durable: true, autoDelete: false, internal: false, arguments: {} },
      { op: 'bindQueue', exchange: 'x', queue: 'q', routingKey: 'a.#', arguments: {} },
    ];
    for (const op of topology) a.store.appendTopology(op);
    let last = 0;
    for (let id = 0; id < 30; id++) last = a.store.appendMessage(msg('q', id));
    await a.probe.flush(last);
    // Segment 1 holds only the topology ops, no message: it may already be deleted (segment 2's
    // snapshot carries them), in the background.
    const rolled = segmentFiles(dir).filter((name) => name !== segmentFileName(1));
    expect(rolled.length).toBeGreaterThan(5);
    for (const name of rolled.slice(0, -1)) {
      // A segment takes records while below the limit (so it passes it by its last record only),
      // and always at least one after its header (whose topology snapshot may alone be that big).
      const records = recordsOf(path.join(dir, name));
      expect(records[records.length - 1].start < 256 || records.length === 2, name).toBe(true);
      expect(records[records.length - 1].end, name).toBeGreaterThanOrEqual(256);
    }

    for (let id = 0; id < 30; id++) last = a.store.appendRemove('q', id);
    await a.probe.flush(last);
    await a.store.close(); // waits for the background deletion
    const left = segmentFiles(dir);
    expect(left).toHaveLength(1); // only the active segment: every older one is dead
    expect(left[0] > rolled[rolled.length - 1]).toBe(true); // the removes rolled further

    const b = open(dir, { segmentBytes: 256 });
    expect(b.recovered.topology).toEqual([topology[1], topology[0], topology[2]]); // replay order: exchanges first
    expect(b.recovered.messages).toEqual([]);
    expect(b.recovered.nextId).toBe(30);
    expect(b.recovered.lastLsn).toBe(last);
    await b.store.close();
  });

  it('log store - a segment whose removes took messages from a kept segment is kept (no resurrection)', async () => {
    // With a 100-byte limit: segment 1 holds m1 and m2, segment 2 the remove of m2 and m3,
    // segment 3 m4 and the remove of m3. Segment 2 is dead, but its remove of m2 must outlive
    // segment 1, which m1 keeps alive.
    const dir = dirs.make();
    const a = open(dir, { segmentBytes: 100 });
    const m = (id: number) => msg('q', id, 'p'.repeat(10));
    a.store.appendMessage(m(1));
    a.store.appendMessage(m(2));
    a.store.appendRemove('q', 2);
    a.store.appendMessage(m(3));
    a.store.appendMessage(m(4));
    await a.probe.flush(a.store.appendRemove('q', 3));
    await a.store.close();
    expect(segmentFiles(dir)).toEqual([1, 2, 3].map(segmentFileName));
    expect(recordsOf(path.join(dir, segmentFileName(1))).map((r) => r.type)).toEqual([
      RecordType.segmentHeader,
      RecordType.message,
      RecordType.message,
    ]);
    expect(recordsOf(path.join(dir, segmentFileName(2))).map((r) => r.type)).toEqual([
      RecordType.segmentHeader,
      RecordType.remove,
      RecordType.message,
    ]);

    const b = open(dir, { segmentBytes: 100 });
    expect(b.recovered.messages.map((x) => x.id)).toEqual([1, 4]);
    b.store.appendRemove('q', 1);
    await b.probe.flush(b.store.appendRemove('q', 4));
    await b.store.close();
    // Now segment 1 is dead, then segment 2 (its dependency is gone), then 3.
    expect(segmentFiles(dir)).toEqual([segmentFileName(4)]);
    const c = open(dir);
    expect(c.recovered.messages).toEqual([]);
    expect(c.recovered.nextId).toBe(5);
    await c.store.close();
  });

  it('log store - an append refused for its size leaves the store usable', async () => {
    const dir = dirs.make();
    const { store, probe } = open(dir, { segmentBytes: 64 });
    store.appendMessage(msg('q', 1));
    expect(() => store.appendMessage(msg('q'.repeat(70_000), 2))).toThrow(/queue is 70000 bytes/);
    expect(() => store.appendRemove('r'.repeat(70_000), 2)).toThrow(RangeError);
    const last = store.appendMessage(msg('q', 3));
    expect(last).toBe(2); // the refused appends took no LSN
    await probe.flush(last);
    await store.close();
    const b = open(dir);
    expect(b.recovered.messages.map((m) => m.id)).toEqual([1, 3]);
    expect(b.recovered.stats.corruptSkipped).toBe(0);
    await b.store.close();
  });

  it('log store - recovery starts a new segment and never writes to the old tail', async () => {
    const dir = dirs.make();
    const file = await writeMessages(dir, 3);
    const before = fs.readFileSync(file);
    const b = open(dir);
    await b.probe.flush(b.store.appendMessage(msg('q', 3)));
    await b.store.close();
    expect(fs.readFileSync(file).equals(before)).toBe(true);
    expect(segmentFiles(dir)).toEqual([segmentFileName(1), segmentFileName(2)]);
  });
});

describe('log store - damaged files', () => {
  it('log store - a torn write at every byte offset of the last record is cut; earlier records recover; appends work after', async () => {
    const source = dirs.make();
    const file = await writeMessages(source, 4);
    const original = fs.readFileSync(file);
    const records = recordsOf(file);
    const lastRecord = records[records.length - 1];
    expect(lastRecord.end).toBe(original.length);
    for (let cut = lastRecord.start; cut < lastRecord.end; cut++) {
      const dir = dirs.make();
      const torn = path.join(dir, path.basename(file));
      fs.writeFileSync(torn, original.subarray(0, cut));
      const b = open(dir);
      const label = `cut at ${cut}`;
      expect(
        b.recovered.messages.map((m) => m.id),
        label,
      ).toEqual([0, 1, 2]);
      expect(b.recovered.stats.tornBytesTruncated, label).toBe(cut - lastRecord.start);
      expect(b.recovered.stats.corruptSkipped, label).toBe(0);
      expect(b.recovered.lastLsn, label).toBe(3);
      expect(fs.statSync(torn).size, label).toBe(lastRecord.start);
      const next = b.store.appendMessage(msg('q', b.recovered.nextId));
      expect(next, label).toBe(4);
      await b.probe.flush(next);
      await b.store.close();
      const c = open(dir);
      expect(
        c.recovered.messages.map((m) => m.id),
        label,
      ).toEqual([0, 1, 2, 3]);
      expect(c.recovered.stats.tornBytesTruncated, label).toBe(0);
      await c.store.close();
      dirs.cleanup();
    }
  });

  it('log store - a segment with only part of its header is removed', async () => {
    const dir = dirs.make();
    const file = await writeMessages(dir, 1);
    const second = path.join(dir, segmentFileName(2));
    fs.writeFileSync(second, fs.readFileSync(file).subarray(0, 5));
    fs.writeFileSync(path.join(dir, segmentFileName(3)), Buffer.alloc(0));
    const b = open(dir);
    expect(b.recovered.messages.map((m) => m.id)).toEqual([0]);
    expect(b.recovered.stats.tornBytesTruncated).toBe(5);
    expect(segmentFiles(dir)).toEqual([segmentFileName(1)]);
    // New segments are numbered past every file seen, even removed ones.
    await b.probe.flush(b.store.appendMessage(msg('q', 1)));
    await b.store.close();
    expect(segmentFiles(dir)).toEqual([segmentFileName(1), segmentFileName(4)]);
  });

  it('log store - a bit flip in a middle record is skipped and counted; the others recover', async () => {
    const dir = dirs.make();
    const file = await writeMessages(dir, 5);
    const records = recordsOf(file);
    const victim = records[3]; // header, m0, m1, m2 (victim), m3, m4
    const bytes = fs.readFileSync(file);
    bytes[victim.start + RECORD_HEADER_BYTES + 5] ^= 0x10;
    fs.writeFileSync(file, bytes);
    const b = open(dir);
    expect(b.recovered.messages.map((m) => m.id)).toEqual([0, 1, 3, 4]);
    expect(b.recovered.stats.corruptSkipped).toBe(1);
    expect(b.recovered.stats.tornBytesTruncated).toBe(0);
    expect(b.recovered.lastLsn).toBe(5); // the skipped record still held its LSN
    await b.store.close();
  });

  it.each([
    ['above the maximum', 0xfffffff0],
    ['zero (a zero-filled tail)', 0],
    ['plausible, landing inside the next record', 40],
    ['plausible, running past the end of the file', 100_000],
  ])('log store - a damaged length (%s) loses that record only: recovery resynchronises on the next whole one', async (_label, length) => {
    const dir = dirs.make();
    const a = open(dir, { segmentBytes: 200 });
    let last = 0;
    for (let id = 0; id < 12; id++) last = a.store.appendMessage(msg('q', id));
    await a.probe.flush(last);
    await a.store.close();
    const files = segmentFiles(dir);
    expect(files.length).toBeGreaterThanOrEqual(3);
    const first = path.join(dir, files[0]);
    const records = recordsOf(first);
    expect(records.length).toBeGreaterThanOrEqual(4);
    const bytes = fs.readFileSync(first);
    bytes.writeUInt32LE(length, records[2].start); // the second message (id 1)
    fs.writeFileSync(first, bytes);

    const b = open(dir);
    expect(b.recovered.messages.map((m) => m.id)).toEqual(Array.from({ length: 12 }, (_, k) => k).filter((id) => id !== 1));
    expect(b.recovered.stats.corruptSkipped).toBe(1);
    expect(b.recovered.stats.tornBytesTruncated).toBe(0);
    expect(b.recovered.stats.damage).toEqual([
      { segment: files[0], offset: records[2].start, bytes: records[3].start - records[2].start, kind: 'corrupt', copiedTo: null },
    ]);
    expect(b.recovered.lastLsn).toBe(last); // the skipped record still held its LSN
    expect(fs.readFileSync(first).equals(bytes)).toBe(true); // an older segment is never cut
    await b.store.close();
  });

  it('log store - a record that passes its CRC but does not decode is counted as corrupt', async () => {
    const dir = dirs.make();
    const file = await writeMessages(dir, 3);
    const records = recordsOf(file);
    const bytes = fs.readFileSync(file);
    const victim = records[2];
    bytes[victim.start + 8] = 77; // an unknown type, with a matching CRC
    bytes.writeUInt32LE(recordCrc(bytes, victim.start, victim.end), victim.start + 4);
    fs.writeFileSync(file, bytes);
    const b = open(dir);
    expect(b.recovered.messages.map((m) => m.id)).toEqual([0, 2]);
    expect(b.recovered.stats.corruptSkipped).toBe(1);
    await b.store.close();
  });

  it('log store - a segment of a newer format is refused, not skipped', async () => {
    const dir = dirs.make();
    const file = await writeMessages(dir, 1);
    const bytes = fs.readFileSync(file);
    const header = recordsOf(file)[0];
    bytes.writeUInt16LE(FORMAT_VERSION + 1, RECORD_HEADER_BYTES + 4);
    bytes.writeUInt32LE(recordCrc(bytes, header.start, header.end), header.start + 4);
    fs.writeFileSync(file, bytes);
    expect(() => new LogStore({ dir }).recover()).toThrow(/newer than this build reads/);
  });
});

describe('log store - disk faults', () => {
  it('log store - ENOSPC mid-write: onFlushError, partial bytes cut, nothing durable touched, the retry succeeds', async () => {
    const dir = dirs.make();
    const seam = new FaultyFs();
    const { store, probe } = open(dir, { fs: seam });
    const first = store.appendMessage(msg('q', 1));
    await probe.flush(first);
    const file = path.join(dir, segmentFileName(1));
    const durable = fs.readFileSync(file);

    seam.fail('write', { code: 'ENOSPC', partialBytes: 7 });
    store.appendMessage(msg('q', 2));
    const third = store.appendMessage(msg('q', 3));
    let failed = probe.nextError();
    store.requestFlush();
    await failed;
    expect(probe.errors).toHaveLength(1);
    expect((probe.errors[0].err as NodeJS.ErrnoException).code).toBe('ENOSPC');
    expect(probe.errors[0].failedUpToLsn).toBe(third);
    expect(store.durableLsn).toBe(first);
    expect(fs.readFileSync(file).equals(durable)).toBe(true); // the 7 partial bytes are gone

    // Still failing: appends keep queueing behind the failed ones; the file still holds only durable bytes.
    const fourth = store.appendMessage(msg('q', 4));
    failed = probe.nextError();
    store.requestFlush();
    await failed;
    expect(probe.errors[1].failedUpToLsn).toBe(fourth);
    expect(fs.readFileSync(file).equals(durable)).toBe(true);
    expect(seam.failures.write).toBe(2);

    seam.heal();
    await probe.flush(fourth);
    expect(probe.durable).toEqual([first, fourth]);
    const after = fs.readFileSync(file);
    expect(after.subarray(0, durable.length).equals(durable)).toBe(true);
    await store.close();
    const b = open(dir);
    expect(b.recovered.messages.map(plain)).toEqual([1, 2, 3, 4].map((id) => plain(msg('q', id))));
    expect(b.recovered.stats.corruptSkipped).toBe(0);
    await b.store.close();
  });

  it.each<[FaultableOp, string]>([
    ['openForWrite', 'EMFILE'],
    ['write', 'EIO'],
    ['fsync', 'EIO'],
    ['syncDir', 'EIO'],
  ])('log store - a failed %s (%s) reports, rewrites from the durable offset and recovers exactly', async (op, code) => {
    const dir = dirs.make();
    const seam = new FaultyFs();
    const { store, probe } = open(dir, { fs: seam, segmentBytes: 150 });
    let last = 0;
    for (let id = 0; id < 3; id++) last = store.appendMessage(msg('q', id));
    await probe.flush(last);
    const writesBefore = seam.calls.write;
    // The next flush rolls into a new segment, so it opens a file and syncs the directory too.
    seam.fail(op, { code, times: 1, partialBytes: 5 });
    for (let id = 3; id < 8; id++) last = store.appendMessage(msg('q', id));
    const failed = probe.nextError();
    store.requestFlush();
    await failed;
    expect((probe.errors[0].err as NodeJS.ErrnoException).code).toBe(code);
    expect(store.durableLsn).toBeLessThan(last);
    await probe.flush(last);
    expect(seam.calls.write).toBeGreaterThan(writesBefore + 1); // written again, not just re-synced
    await store.close();
    const b = open(dir);
    expect(b.recovered.messages.map((m) => m.id)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(b.recovered.stats.corruptSkipped).toBe(0);
    expect(b.recovered.stats.tornBytesTruncated).toBe(0);
    await b.store.close();
  });

  it('log store - a cut that fails after a failed write is retried before the next write', async () => {
    const dir = dirs.make();
    const seam = new FaultyFs();
    const { store, probe } = open(dir, { fs: seam });
    await probe.flush(store.appendMessage(msg('q', 0, 'x'.repeat(100))));
    seam.fail('write', { times: 1, partialBytes: 60 });
    seam.fail('ftruncate', { times: 1 });
    const last = store.appendMessage(msg('q', 1));
    const failed = probe.nextError();
    store.requestFlush();
    await failed;
    expect(seam.failures.ftruncate).toBe(1);
    await probe.flush(last);
    expect(seam.calls.ftruncate).toBe(2);
    await store.close();
    const b = open(dir);
    expect(b.recovered.messages.map((m) => m.id)).toEqual([0, 1]);
    expect(b.recovered.stats.tornBytesTruncated + b.recovered.stats.corruptSkipped).toBe(0);
    await b.store.close();
  });

  it('log store - after a failure the store retries on its own after retryDelayMs', async () => {
    const dir = dirs.make();
    const seam = new FaultyFs();
    const { store, probe } = open(dir, { fs: seam, retryDelayMs: 1 });
    seam.fail('fsync', { code: 'EIO', times: 1 });
    const last = store.appendMessage(msg('q', 1));
    store.requestFlush();
    await probe.durableAt(last); // no second requestFlush
    expect(probe.errors).toHaveLength(1);
    await store.close();
  });

  it('log store - close() rejects with the error when the final flush fails', async () => {
    const dir = dirs.make();
    const seam = new FaultyFs();
    const { store } = open(dir, { fs: seam });
    store.appendMessage(msg('q', 1));
    seam.fail('write', { code: 'ENOSPC' });
    await expect(store.close()).rejects.toThrow(/ENOSPC/);
  });
});

describe('log store - group commit', () => {
  it('log store - batch: many requestFlush calls within the interval share one write and one fsync', async () => {
    const seam = new FaultyFs();
    const { store, probe } = open(dirs.make(), { fs: seam, fsync: 'batch', batchIntervalMs: 1000 });
    let last = 0;
    for (let id = 0; id < 100; id++) {
      last = store.appendMessage(msg('q', id));
      store.requestFlush();
    }
    await probe.durableAt(last);
    expect(seam.calls.fsync).toBe(1);
    expect(seam.calls.write).toBe(1);
    expect(probe.durable).toEqual([last]);
    await store.close();
  });

  it('log store - batch: requests during a flush wait for the next window, then share it', async () => {
    const seam = new FaultyFs();
    const { store, probe } = open(dirs.make(), { fs: seam, fsync: 'batch', batchIntervalMs: 2 });
    const first = store.appendMessage(msg('q', 0));
    store.requestFlush();
    await new Promise<void>((resolve) => {
      // Append while the first flush is in flight (its write has been issued).
      const poll = (): void => {
        if (seam.calls.write === 0) return void setImmediate(poll);
        resolve();
      };
      poll();
    });
    let last = first;
    for (let id = 1; id < 50; id++) {
      last = store.appendMessage(msg('q', id));
      store.requestFlush();
    }
    await probe.durableAt(last);
    expect(seam.calls.fsync).toBe(2);
    expect(probe.durable).toEqual([first, last]);
    await store.close();
  });

  it('log store - always: one fsync per flush, appends during a flush go in the next one', async () => {
    const seam = new FaultyFs();
    const { store, probe } = open(dirs.make(), { fs: seam, fsync: 'always' });
    for (let id = 0; id < 5; id++) await probe.flush(store.appendMessage(msg('q', id)));
    expect(seam.calls.fsync).toBe(5);
    let last = 0;
    for (let id = 5; id < 25; id++) {
      last = store.appendMessage(msg('q', id));
      store.requestFlush(); // the first starts a flush; the rest wait for it and go together
    }
    await probe.durableAt(last);
    expect(seam.calls.fsync).toBe(7);
    await store.close();
  });

  it('log store - the directory is synced once per new segment, not per flush', async () => {
    const seam = new FaultyFs();
    const { store, probe } = open(dirs.make(), { fs: seam, fsync: 'always' });
    for (let id = 0; id < 5; id++) await probe.flush(store.appendMessage(msg('q', id)));
    expect(seam.calls.syncDir).toBe(1);
    await store.close();
  });
});
