/**
 * Question: how many 128-byte records per second reach a worker thread through
 *   (a) the SPSC ring (src/ring/spsc-ring.ts), one commit per event-loop burst of 1000 records,
 *   (b) one port.postMessage per record, with credit flow control,
 *   (c) one port.postMessage per 1000 records packed into a transferred ArrayBuffer?
 *
 * Delivered, not sent: the clock starts when the main thread begins sending (after the worker said
 * it is ready) and stops when the worker's final report arrives. The worker checks every record's
 * sequence number. Each variant runs once, in a fresh worker; counts and time are bounded, and
 * progress is printed every second.
 *
 * Run: npx tsx native-bench/ring-vs-postmessage.bench.ts [--ring N] [--postmessage N] [--batched N]
 *      [--max-send-seconds S]
 * Output: a table, then one JSON line (machine info included) for tooling.
 */
import { execSync } from 'node:child_process';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { MessageChannel, type MessagePort, type Worker } from 'node:worker_threads';
import { RingProducer, createRingStorage } from '../src/ring/spsc-ring.js';
import { spawnWorker } from '../src/shard/spawn-worker.js';
import type {
  BenchMode,
  BenchPortMessage,
  BenchWorkerData,
  BenchWorkerMessage,
} from './fixtures/ring-vs-postmessage.worker.js';

/** Record payload size under test (engine-notes §2 measured the same size). */
const RECORD_BYTES = 128;
/** Records per ring commit and per batched message: one uWS callback burst (engine-notes §5). */
const BURST_RECORDS = 1000;
/** Ring data size: 4 MiB, as in engine-notes §2 (64 KiB was measurably too small). */
const RING_BYTES = 4 << 20;
/** postMessage credit window: at most this many records in flight, acks every ACK_EVERY (engine-notes §2). */
const WINDOW_RECORDS = 65_536;
const ACK_EVERY = 16_384;
/** A variant that has not finished this long after it stopped sending is reported as failed. */
const FINISH_TIMEOUT_MS = 60_000;

const { values: args } = parseArgs({
  options: {
    ring: { type: 'string', default: '5000000' },
    postmessage: { type: 'string', default: '2000000' },
    batched: { type: 'string', default: '5000000' },
    'max-send-seconds': { type: 'string', default: '10' },
  },
});

function positiveInt(name: string, text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`--${name} must be an integer ≥ 1 (got ${text})`);
  return n;
}

const counts = {
  ring: positiveInt('ring', args.ring),
  postmessage: positiveInt('postmessage', args.postmessage),
  batched: positiveInt('batched', args.batched),
};
const maxSendMs = positiveInt('max-send-seconds', args['max-send-seconds']) * 1000;

interface Result {
  variant: string;
  mode: BenchMode;
  records: number;
  seconds: number;
  recordsPerSecond: number;
  payloadMBPerSecond: number;
  ok: boolean;
  /** ring: times the producer waited for space; others: times it waited for credit. */
  producerWaits: number;
  /** ring: times the worker found the ring empty and waited. */
  consumerWaits: number;
  /** True if the send phase hit --max-send-seconds and sent fewer records than asked. */
  capped: boolean;
}

/** One record's bytes, 8-aligned in its own buffer so ring copies take the word-copy path (engine-notes §2). */
const template = new Uint8Array(RECORD_BYTES);
for (let i = 0; i < RECORD_BYTES; i++) template[i] = (i * 37) & 0xff;

function nextMacrotask(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

function startWorker(data: BenchWorkerData, transfer: MessagePort[] = []) {
  const worker: Worker = spawnWorker(new URL('./fixtures/ring-vs-postmessage.worker.js', import.meta.url), {
    workerData: data,
    transferList: transfer,
  });
  let resolveReady!: () => void;
  const ready = new Promise<void>((resolve) => (resolveReady = resolve));
  const done = new Promise<Extract<BenchWorkerMessage, { type: 'done' }>>((resolve, reject) => {
    worker.on('message', (message: BenchWorkerMessage) => {
      if (message.type === 'ready') resolveReady();
      else resolve(message);
    });
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`bench worker exited with code ${code} before reporting`)));
  });
  done.catch(() => {});
  return { worker, ready, done };
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no final report within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function progress(label: string, sent: () => number, total: number): NodeJS.Timeout {
  const started = performance.now();
  return setInterval(() => {
    const s = (performance.now() - started) / 1000;
    console.log(`  [${label}] ${s.toFixed(1)} s: sent ${sent().toLocaleString('en-US')} / ${total.toLocaleString('en-US')}`);
  }, 1000);
}

function result(
  variant: string,
  mode: BenchMode,
  records: number,
  ms: number,
  ok: boolean,
  producerWaits: number,
  consumerWaits: number,
  capped: boolean,
): Result {
  const seconds = ms / 1000;
  return {
    variant,
    mode,
    records,
    seconds: Number(seconds.toFixed(3)),
    recordsPerSecond: Math.round(records / seconds),
    payloadMBPerSecond: Number(((records * RECORD_BYTES) / seconds / 1e6).toFixed(1)),
    ok,
    producerWaits,
    consumerWaits,
    capped,
  };
}

/** (a) Ring: reserve + copy per record, one commit per burst, a macrotask hop between bursts. */
async function runRing(records: number): Promise<Result> {
  const storage = createRingStorage(RING_BYTES);
  const producer = new RingProducer(storage);
  const { worker, ready, done } = startWorker({ mode: 'ring', records, recordBytes: RECORD_BYTES, ackEvery: 0, storage });
  await ready;
  const { bytes, view } = producer;
  let seq = 0;
  let waits = 0;
  const ticker = progress('ring', () => seq, records);
  const started = performance.now();
  while (seq < records) {
    const burstEnd = Math.min(seq + BURST_RECORDS, records);
    while (seq < burstEnd) {
      const offset = producer.reserve(RECORD_BYTES, 1);
      if (offset < 0) {
        waits++;
        await producer.waitForSpace(1000); // commits the burst so far, then awaits a release
        continue;
      }
      bytes.set(template, offset);
      view.setUint32(offset, seq, true);
      seq++;
    }
    producer.commit();
    await nextMacrotask(); // the end of one event-loop burst
  }
  const report = await withTimeout(done, FINISH_TIMEOUT_MS, 'ring');
  const ms = performance.now() - started;
  clearInterval(ticker);
  await worker.terminate();
  return result('(a) SAB ring, commit per 1000', 'ring', report.records, ms, report.ok && report.records === records, waits, report.parks, false);
}

/** (b) One postMessage per record, credit window of WINDOW_RECORDS, ack every ACK_EVERY. */
async function runPostMessage(records: number): Promise<Result> {
  const { port1, port2 } = new MessageChannel();
  const { worker, ready, done } = startWorker(
    { mode: 'postmessage', records, recordBytes: RECORD_BYTES, ackEvery: ACK_EVERY, port: port2 },
    [port2],
  );
  let acked = 0;
  let wake: (() => void) | null = null;
  port1.on('message', (message: BenchPortMessage) => {
    if (message.type === 'ack') {
      acked = message.records;
      wake?.();
      wake = null;
    }
  });
  await ready;
  // The structured clone copies the record at post time, so one buffer can be reused.
  const record = new Uint8Array(RECORD_BYTES);
  record.set(template);
  const recordView = new DataView(record.buffer);
  let seq = 0;
  let waits = 0;
  let capped = false;
  const ticker = progress('postMessage', () => seq, records);
  const started = performance.now();
  while (seq < records) {
    if (seq - acked >= WINDOW_RECORDS) {
      waits++;
      await new Promise<void>((resolve) => (wake = resolve));
      if (performance.now() - started > maxSendMs) {
        capped = true;
        break;
      }
      continue;
    }
    recordView.setUint32(0, seq, true);
    port1.postMessage(record);
    seq++;
  }
  port1.postMessage({ type: 'end', records: seq } satisfies BenchPortMessage);
  const report = await withTimeout(done, FINISH_TIMEOUT_MS, 'postMessage');
  const ms = performance.now() - started;
  clearInterval(ticker);
  port1.close();
  await worker.terminate();
  return result('(b) postMessage per record', 'postmessage', report.records, ms, report.ok && report.records === seq, waits, 0, capped);
}

/** (c) 1000 records packed into a fresh ArrayBuffer, transferred; same credit window in records. */
async function runBatched(records: number): Promise<Result> {
  const { port1, port2 } = new MessageChannel();
  const { worker, ready, done } = startWorker(
    { mode: 'batched', records, recordBytes: RECORD_BYTES, ackEvery: ACK_EVERY, port: port2 },
    [port2],
  );
  let acked = 0;
  let wake: (() => void) | null = null;
  port1.on('message', (message: BenchPortMessage) => {
    if (message.type === 'ack') {
      acked = message.records;
      wake?.();
      wake = null;
    }
  });
  await ready;
  let seq = 0;
  let waits = 0;
  let capped = false;
  const ticker = progress('batched', () => seq, records);
  const started = performance.now();
  while (seq < records) {
    if (seq - acked >= WINDOW_RECORDS) {
      waits++;
      await new Promise<void>((resolve) => (wake = resolve));
      if (performance.now() - started > maxSendMs) {
        capped = true;
        break;
      }
      continue;
    }
    const n = Math.min(BURST_RECORDS, records - seq);
    const batch = new ArrayBuffer(n * RECORD_BYTES);
    const batchBytes = new Uint8Array(batch);
    const batchView = new DataView(batch);
    for (let i = 0, offset = 0; i < n; i++, offset += RECORD_BYTES) {
      batchBytes.set(template, offset);
      batchView.setUint32(offset, seq, true);
      seq++;
    }
    port1.postMessage(batch, [batch]);
    await nextMacrotask(); // the end of one event-loop burst, as in (a)
  }
  port1.postMessage({ type: 'end', records: seq } satisfies BenchPortMessage);
  const report = await withTimeout(done, FINISH_TIMEOUT_MS, 'batched');
  const ms = performance.now() - started;
  clearInterval(ticker);
  port1.close();
  await worker.terminate();
  return result('(c) postMessage of transferred 1000-record ArrayBuffer', 'batched', report.records, ms, report.ok && report.records === seq, waits, 0, capped);
}

function gitCommit(): string {
  try {
    const sha = execSync('git rev-parse --short HEAD', { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    const dirty = execSync('git status --porcelain', { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim() !== '';
    return dirty ? `${sha}+dirty` : sha;
  } catch {
    return 'unknown';
  }
}

const machine = {
  cpu: os.cpus()[0]?.model ?? 'unknown',
  cores: os.cpus().length,
  node: process.version,
  v8: process.versions.v8,
  os: `${os.platform()} ${os.release()} ${os.arch()}`,
  commit: gitCommit(),
  date: new Date().toISOString(),
  loadAverage1m: Number(os.loadavg()[0]?.toFixed(2)),
};

console.log(`ring-vs-postmessage: ${RECORD_BYTES}-byte records main → worker`);
console.log(`  ${machine.cpu}, ${machine.cores} cores, node ${machine.node}, ${machine.os}, commit ${machine.commit}, load ${machine.loadAverage1m}`);
console.log(`  records: ring ${counts.ring}, postMessage ${counts.postmessage}, batched ${counts.batched}; send phase capped at ${maxSendMs / 1000} s`);

const results: Result[] = [];
const cpuBefore = process.cpuUsage();
for (const [label, run] of [
  ['ring', () => runRing(counts.ring)],
  ['postMessage', () => runPostMessage(counts.postmessage)],
  ['batched', () => runBatched(counts.batched)],
] as const) {
  console.log(`running ${label} ...`);
  const r = await run();
  console.log(`  done: ${r.records.toLocaleString('en-US')} records in ${r.seconds} s, ok=${r.ok}`);
  results.push(r);
}
const cpu = process.cpuUsage(cpuBefore);

const baseline = results.find((r) => r.mode === 'postmessage')?.recordsPerSecond ?? 0;
console.log('');
console.log(`records=${RECORD_BYTES}B producers=1 consumers=1 (single run per variant; see engine-notes §2 on noise)`);
const header = ['variant', 'records', 'seconds', 'records/s', 'MB/s', 'vs (b)', 'ok'];
const rows = results.map((r) => [
  r.variant,
  r.records.toLocaleString('en-US') + (r.capped ? ' (capped)' : ''),
  r.seconds.toFixed(2),
  (r.recordsPerSecond / 1e6).toFixed(2) + ' M',
  r.payloadMBPerSecond.toFixed(0),
  baseline > 0 ? `${(r.recordsPerSecond / baseline).toFixed(1)}×` : '-',
  String(r.ok),
]);
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] as string).length)));
const line = (cells: string[]): string => `| ${cells.map((c, i) => c.padEnd(widths[i] as number)).join(' | ')} |`;
console.log(line(header));
console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
for (const row of rows) console.log(line(row));
console.log(`main-thread CPU over all runs: user ${(cpu.user / 1e6).toFixed(1)} s, system ${(cpu.system / 1e6).toFixed(1)} s`);
console.log(JSON.stringify({ bench: 'ring-vs-postmessage', recordBytes: RECORD_BYTES, burstRecords: BURST_RECORDS, ringBytes: RING_BYTES, machine, results }));

process.exitCode = results.every((r) => r.ok) ? 0 : 1;
