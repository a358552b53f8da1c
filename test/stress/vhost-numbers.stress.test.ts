/**
 * Vhost numbers across two real threads: the main thread numbers vhosts while it publishes, and a
 * record may carry a number assigned just before it was written; the worker decodes every record
 * with the shared table, as a shard does, and must find every prefix there and every name right.
 * A million records over a small ring (thousands of wake-ups and wraps), nearly a thousand vhosts.
 *
 * Replay a failure with SHARDMQ_SEED=<seed printed in the message>.
 */
import { describe, expect, it } from 'vitest';
import { InboundWriter } from '../../src/protocol/ring-record-codec.js';
import { vhostPrefix } from '../../src/protocol/vhost-name.js';
import { createVhostNumberTable, VHOST_NUMBERS, VhostNumbering } from '../../src/protocol/vhost-numbers.js';
import { RingProducer, createRingStorage } from '../../src/ring/spsc-ring.js';
import { spawnWorker } from '../../src/shard/spawn-worker.js';
import { Prng, testSeed } from '../helpers/prng.js';
import {
  checksumName,
  LOCAL_NAMES,
  vhostNameFor,
  vhostRecordExpectation,
  type VhostReaderJob,
  type VhostReaderReport,
} from '../fixtures/vhost-records.js';

const RECORDS = 1_000_000;
/** A new vhost every this many records: all but one of the table's numbers get used. */
const EVERY = Math.floor(RECORDS / (VHOST_NUMBERS - 1)) + 1;

describe('vhost numbers - main thread numbers and publishes, a worker decodes', () => {
  it('1M publish records, a vhost numbered every ~1000 and used at once: every exchange decodes to its qualified name', async () => {
    const seed = testSeed();
    const prng = new Prng(seed);
    const where = `seed=${seed}`;
    const storage = createRingStorage(64 * 1024);
    const table = createVhostNumberTable();
    const numbering = new VhostNumbering(table);
    const producer = new RingProducer(storage);
    const writer = new InboundWriter(producer);
    const job: VhostReaderJob = { ...storage, table, records: RECORDS, stallMs: 10_000, parkTimeoutMs: 2_000 };
    const worker = spawnWorker(new URL('../fixtures/vhost-record-reader.js', import.meta.url), { workerData: job });
    const report = new Promise<VhostReaderReport>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`reader exited with code ${code} before reporting`)));
    });
    report.catch(() => {});

    const payload = new Uint8Array(40);
    let numbered = 0;
    let checksum = 0;
    for (let seq = 0; seq < RECORDS; seq++) {
      let vhost: number;
      if (seq % EVERY === 0) {
        // The number is used by the very next record, in the same commit: the table entry must
        // already be visible to the reader when it sees that record.
        vhost = numbering.assign(vhostPrefix(vhostNameFor(numbered + 1)));
        expect(vhost, where).toBe(numbered + 1);
        numbered = vhost;
      } else vhost = prng.chance(0.3) ? 0 : prng.int(1, numbered);
      const local = prng.int(0, LOCAL_NAMES.length - 1);
      while (!writer.publish(seq, (vhost << 8) | local, LOCAL_NAMES[local], 'k', null, payload, 0, vhost)) {
        expect(await producer.waitForSpace(2_000), `${where}: the reader stopped taking records`).toBe(true);
      }
      checksum = checksumName(checksum, vhostRecordExpectation(vhost, local));
      if (producer.pendingRecords >= 64) producer.commit();
    }
    producer.commit();
    const got = await report;
    await worker.terminate();
    expect(got.firstError, where).toBeNull();
    expect(got.records, where).toBe(RECORDS);
    expect(got.checksum, where).toBe(checksum);
    expect(numbered, where).toBe(VHOST_NUMBERS - 1);
    // The table is full: the next vhost goes unnumbered (its records carry qualified names).
    expect(numbering.assign(vhostPrefix('one-too-many'))).toBe(0);
  }, 120_000);
});
