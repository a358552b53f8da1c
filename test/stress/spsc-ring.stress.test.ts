/**
 * Two real threads through one SPSC ring: millions of records with random sizes, each carrying its
 * sequence number; the consumer checks order and content and keeps a running checksum that must
 * equal the producer's, proving nothing was lost, duplicated, reordered or corrupted.
 *
 * Replay a failure with SHARDMQ_SEED=<seed printed in the message>.
 */
import type { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { RingConsumer, RingProducer, createRingStorage, maxRecordPayload } from '../../src/ring/spsc-ring.js';
import { spawnWorker } from '../../src/shard/spawn-worker.js';
import { Prng, testSeed } from '../helpers/prng.js';
import type { RingEchoJob } from '../fixtures/ring-echo.js';
import {
  CHECKSUM_SEED,
  StressVerifier,
  kindFor,
  stressPayloadSize,
  writeStressRecord,
  type RingConsumerJob,
  type RingProducerJob,
  type RingStressReport,
} from '../fixtures/ring-stress-records.js';

/** A side that sees no progress for this long reports a stall instead of hanging the test. */
const STALL_MS = 10_000;
/**
 * Timeout of every park on both sides. While both sides run, one of them always has work, so a park
 * that reaches this timeout after start-up means a lost wakeup (or a thread frozen for 2 s).
 */
const PARK_TIMEOUT_MS = 2_000;

interface RunningWorker {
  readonly worker: Worker;
  /** The worker's report; rejects if it errors or exits without one. */
  readonly report: Promise<RingStressReport>;
  /** Set once the worker has errored or exited, so the main side stops waiting on the ring. */
  readonly state: { done: boolean };
}

function startFixture(entry: string, workerData: RingConsumerJob | RingProducerJob | RingEchoJob): RunningWorker {
  const worker = spawnWorker(new URL(entry, import.meta.url), { workerData });
  const state = { done: false };
  const report = new Promise<RingStressReport>((resolve, reject) => {
    worker.once('message', (message: RingStressReport) => resolve(message));
    worker.once('error', (error) => {
      state.done = true;
      reject(error);
    });
    worker.once('exit', (code) => {
      state.done = true;
      reject(new Error(`${entry} exited with code ${code} before reporting`));
    });
  });
  return { worker, report, state };
}

function rate(records: number, ms: number): string {
  return `${(((records / ms) * 1000) / 1e6).toFixed(2)} M records/s`;
}

describe('spsc ring stress - main → worker', () => {
  const cases = [
    { name: '10M records, 256 KiB ring, commit per 1000', capacity: 256 * 1024, records: 10_000_000, batch: 1000, spinLoads: 20_000 },
    // No spin: every empty ring is a real Atomics.wait park, so the doorbell is exercised thousands of times.
    {
      name: '1M records, 4 KiB ring, commit per 16, consumer parks without spinning',
      capacity: 4096,
      records: 1_000_000,
      batch: 16,
      spinLoads: 0,
    },
  ];
  for (const { name, capacity, records, batch, spinLoads } of cases)
    it(name, async () => {
      const seed = testSeed();
      const where = `seed=${seed} capacity=${capacity}`;
      const prng = new Prng(seed);
      const storage = createRingStorage(capacity);
      const producer = new RingProducer(storage);
      const words = new Uint32Array(storage.data);
      const maxPayload = maxRecordPayload(capacity);
      const fixture = startFixture('../fixtures/ring-consumer.js', {
        control: storage.control,
        data: storage.data,
        records,
        stallMs: STALL_MS,
        spinLoads,
        parkTimeoutMs: PARK_TIMEOUT_MS,
      });
      fixture.report.catch(() => {}); // awaited below; this only avoids an unhandled rejection meanwhile

      const started = performance.now();
      let checksum = CHECKSUM_SEED;
      let waits = 0;
      let lateTimeouts = 0;
      let consumerSeen = false;
      let misaligned = 0;
      let seq = 0;
      let length = stressPayloadSize(prng, maxPayload);
      while (seq < records && !fixture.state.done) {
        const offset = producer.reserve(length, kindFor(seq));
        if (offset < 0) {
          waits++;
          // Commits first; never blocks the main thread.
          if (await producer.waitForSpace(PARK_TIMEOUT_MS)) consumerSeen = true;
          else if (consumerSeen) lateTimeouts++;
          continue;
        }
        if ((offset & 7) !== 0) misaligned++;
        checksum = writeStressRecord(words, producer.bytes, offset, length, seq, checksum);
        seq++;
        length = stressPayloadSize(prng, maxPayload);
        if (producer.pendingRecords >= batch) producer.commit();
      }
      producer.commit();
      const sentMs = performance.now() - started;

      const report = await fixture.report;
      const elapsedMs = performance.now() - started;
      await fixture.worker.terminate();
      console.log(
        `[ring stress main→worker] ${where}: ${records} records in ${elapsedMs.toFixed(0)} ms ` +
          `(${rate(records, elapsedMs)}; producer done at ${sentMs.toFixed(0)} ms), producer waits ${waits}, consumer waits ${report.waits}`,
      );
      expect(report.firstError, where).toBeNull();
      expect({ producerLateTimeouts: lateTimeouts, consumerLateTimeouts: report.lateTimeouts }, `lost wakeups? ${where}`).toEqual({
        producerLateTimeouts: 0,
        consumerLateTimeouts: 0,
      });
      expect(seq, where).toBe(records);
      expect(misaligned, where).toBe(0);
      expect(report.records, where).toBe(records);
      expect(report.checksum, where).toBe(checksum);
    });
});

describe('spsc ring stress - worker → main', () => {
  const cases = [
    { name: '1M records, 1 MiB ring, commit per 1000', capacity: 1 << 20, records: 1_000_000, batch: 1000 },
    { name: '300k records, 4 KiB ring, commit per 16', capacity: 4096, records: 300_000, batch: 16 },
  ];
  for (const { name, capacity, records, batch } of cases)
    it(name, async () => {
      const seed = testSeed();
      const where = `seed=${seed} capacity=${capacity}`;
      const storage = createRingStorage(capacity);
      const consumer = new RingConsumer(storage);
      const verifier = new StressVerifier(storage.data);
      const fixture = startFixture('../fixtures/ring-producer.js', {
        control: storage.control,
        data: storage.data,
        records,
        seed,
        batch,
        stallMs: STALL_MS,
        parkTimeoutMs: PARK_TIMEOUT_MS,
      });
      fixture.report.catch(() => {});

      const started = performance.now();
      let waits = 0;
      let lateTimeouts = 0;
      let chunks = 0;
      let idleSince = -1;
      while (verifier.expectedSeq < records && !fixture.state.done) {
        if (consumer.drain(verifier.onRecord, records - verifier.expectedSeq) > 0) {
          idleSince = -1;
          // Yield to the event loop now and then, as the broker's main thread must (docs/engine-notes.md §5).
          if (++chunks % 16 === 0) await new Promise((resolve) => setImmediate(resolve));
          continue;
        }
        waits++;
        if (!(await consumer.waitForDataAsync(PARK_TIMEOUT_MS))) {
          if (verifier.expectedSeq > 0) lateTimeouts++;
          const now = performance.now();
          if (idleSince < 0) idleSince = now;
          else if (now - idleSince > STALL_MS) {
            verifier.firstError ??= `stalled: no data for ${STALL_MS} ms after ${verifier.expectedSeq} records`;
            break;
          }
        }
      }
      const report = await fixture.report;
      const elapsedMs = performance.now() - started;
      await fixture.worker.terminate();
      console.log(
        `[ring stress worker→main] ${where}: ${records} records in ${elapsedMs.toFixed(0)} ms ` +
          `(${rate(records, elapsedMs)}), consumer waits ${waits}, producer waits ${report.waits}`,
      );
      expect(report.firstError, where).toBeNull();
      expect(verifier.firstError, where).toBeNull();
      expect({ producerLateTimeouts: report.lateTimeouts, consumerLateTimeouts: lateTimeouts }, `lost wakeups? ${where}`).toEqual({
        producerLateTimeouts: 0,
        consumerLateTimeouts: 0,
      });
      expect(consumer.hasData(), `records beyond the ${records} sent? ${where}`).toBe(false);
      expect(report.records, where).toBe(records);
      expect(verifier.expectedSeq, where).toBe(records);
      expect(verifier.checksum, where).toBe(report.checksum);
    });
});

describe('spsc ring stress - ping-pong (both doorbells, every park timing)', () => {
  // Each round the main thread commits a few requests and then waits for every reply, so each side
  // keeps finding its ring empty and parking. Both sides spin a random number of loads first, so
  // parks begin at every point relative to the other side's commit. Nothing else would wake a
  // sleeper, so a lost wakeup cannot heal: it shows as a park that runs into its timeout.
  it('20k rounds of 1..8 records, random spin before every park', async () => {
    const rounds = 20_000;
    const maxSpinLoads = 3_000;
    const seed = testSeed();
    const where = `seed=${seed}`;
    const prng = new Prng(seed ^ 0x5bd1e995); // the worker draws its spins from `seed` itself
    const roundSizes = Array.from({ length: rounds }, () => prng.int(1, 8));
    const records = roundSizes.reduce((sum, n) => sum + n, 0);
    const requests = createRingStorage(64 * 1024);
    const replies = createRingStorage(64 * 1024);
    const producer = new RingProducer(requests);
    const consumer = new RingConsumer(replies);
    const fixture = startFixture('../fixtures/ring-echo.js', {
      requests,
      replies,
      records,
      seed,
      maxSpinLoads,
      parkTimeoutMs: PARK_TIMEOUT_MS,
      stallMs: STALL_MS,
    });
    fixture.report.catch(() => {});

    const started = performance.now();
    let sent = 0;
    let received = 0;
    let waits = 0;
    let lateTimeouts = 0;
    let firstError: string | null = null;
    const onReply = (kind: number, offset: number, length: number): void => {
      const seq = consumer.view.getUint32(offset, true);
      if (firstError === null && (seq !== received || kind !== 2 || length !== 4)) firstError = `reply #${received}: got sequence ${seq}`;
      received++;
    };
    for (let round = 0; round < rounds && !fixture.state.done && firstError === null; round++) {
      for (let i = 0; i < (roundSizes[round] as number); i++) {
        const offset = producer.reserve(4, 1);
        if (offset < 0) throw new Error(`request ring full with ${sent - received} outstanding (${where})`);
        producer.view.setUint32(offset, sent++, true);
      }
      producer.commit();
      while (received < sent && !fixture.state.done) {
        if (consumer.drain(onReply) > 0) continue;
        waits++;
        if (!(await consumer.waitForDataAsync(PARK_TIMEOUT_MS, prng.int(0, maxSpinLoads)))) {
          lateTimeouts++;
          if (lateTimeouts > 3) break; // enough to fail; do not sit out every timeout
        }
      }
      if (lateTimeouts > 3) break;
    }
    const elapsedMs = performance.now() - started;
    if (lateTimeouts > 3) await fixture.worker.terminate();
    const report = lateTimeouts > 3 ? null : await fixture.report;
    await fixture.worker.terminate();
    console.log(
      `[ring stress ping-pong] ${where}: ${rounds} rounds, ${received} records echoed in ${elapsedMs.toFixed(0)} ms ` +
        `(${((rounds / elapsedMs) * 1000).toFixed(0)} rounds/s), main waits ${waits}, worker waits ${report?.waits}`,
    );
    expect(firstError, where).toBeNull();
    expect(report?.firstError ?? null, where).toBeNull();
    expect({ mainLateTimeouts: lateTimeouts, workerLateTimeouts: report?.lateTimeouts ?? -1 }, `lost wakeups? ${where}`).toEqual({
      mainLateTimeouts: 0,
      workerLateTimeouts: 0,
    });
    expect(received, where).toBe(records);
  });
});
