/**
 * Question: how long does one cross-thread wake-up take on this machine, at the tail, when the load
 * is light (one wake per millisecond, the rest idle)? The broker's path from publish to delivery
 * has two of them (main → shard on the inbound ring, shard → main on the outbound ring), where
 * uWebSockets.js pub/sub has none, so their p99.9 bounds what the latency workload can reach.
 *
 * A worker parks in Atomics.wait; the main thread stamps the time, notifies, and waits for the
 * worker to store how long after the stamp it woke. Two ways for the waker to behave after its
 * notify, as a busy and an idle broker thread would:
 *   - "sleeps": it goes back to its event loop (polls with setTimeout 0), leaving its core free;
 *   - "stays busy": it keeps its core (polls with setImmediate) until the worker has answered.
 * Rounds alternate the two; each wake is bounded (a wake not answered in 100 ms fails the run).
 *
 * Run: npx tsx native-bench/wake-tail.bench.ts [--quick] [--runs N]
 */
import { Worker } from 'node:worker_threads';
import { LatencyHistogram } from '../src/metrics/latency-histogram.js';
import { benchOptions, finish, header, interleaved, type BenchTable } from './fixtures/bench-util.js';

type Mode = 'sleeps' | 'busy';
const MODES: readonly Mode[] = ['sleeps', 'busy'];
const label: Record<Mode, string> = {
  sleeps: 'waker sleeps after its notify',
  busy: 'waker stays busy until the woken thread answers',
};

const options = benchOptions();
const wakesPerRound = options.quick ? 300 : 1000;
const machine = header('wake-tail', 'cross-thread wake-up latency (Atomics.notify → Atomics.wait) at one wake per ms', options);

// Slots: 0 = the wake sequence the worker waits on, 1 = the last sequence it answered, 2 = its latency in ns.
const control = new Int32Array(new SharedArrayBuffer(12));
const stamp = new Float64Array(new SharedArrayBuffer(8));
const worker = new Worker(
  `const { workerData } = require('node:worker_threads');
   const c = new Int32Array(workerData.control), t = new Float64Array(workerData.stamp);
   let seen = 0;
   for (;;) {
     Atomics.wait(c, 0, seen);
     const now = performance.timeOrigin + performance.now();
     seen = Atomics.load(c, 0);
     if (seen < 0) break;
     Atomics.store(c, 2, Math.round((now - t[0]) * 1e6));
     Atomics.store(c, 1, seen);
   }`,
  { eval: true, workerData: { control: control.buffer, stamp: stamp.buffer } },
);

const histograms = new Map<Mode, LatencyHistogram>(MODES.map((m) => [m, new LatencyHistogram()]));
let sequence = 0;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const immediate = (): Promise<void> => new Promise((r) => setImmediate(r));

async function round(mode: Mode): Promise<void> {
  const h = histograms.get(mode) as LatencyHistogram;
  for (let i = 0; i < wakesPerRound; i++) {
    await sleep(1);
    const seq = ++sequence;
    stamp[0] = performance.timeOrigin + performance.now();
    Atomics.store(control, 0, seq);
    Atomics.notify(control, 0);
    const deadline = performance.now() + 100;
    while (Atomics.load(control, 1) !== seq) {
      if (performance.now() > deadline) throw new Error(`wake ${seq} not answered within 100 ms`);
      await (mode === 'busy' ? immediate() : sleep(0));
    }
    h.record(Atomics.load(control, 2) / 1000);
  }
}

await sleep(200); // the worker reaches its first wait
let ok = true;
try {
  await interleaved(MODES, options.runs, (mode) => round(mode));
} catch (err) {
  ok = false;
  console.error(err);
}
Atomics.store(control, 0, -1);
Atomics.notify(control, 0);
await worker.terminate();

const us = (x: number): string => (x >= 1000 ? `${(x / 1000).toFixed(2)} ms` : `${x.toFixed(0)} µs`);
const figures: Record<string, number> = {};
const rows = MODES.map((mode) => {
  const h = histograms.get(mode) as LatencyHistogram;
  figures[`wake_p99_us_${mode}`] = h.percentile(99);
  figures[`wake_p999_us_${mode}`] = h.percentile(99.9);
  return [label[mode], h.count, us(h.percentile(50)), us(h.percentile(90)), us(h.percentile(99)), us(h.percentile(99.9)), us(h.max)];
});
const table: BenchTable = {
  title: `Cross-thread wake-up, one per ms: ${wakesPerRound} wakes per mode per round × ${options.runs} interleaved round(s)`,
  columns: ['waker after notify', 'wakes', 'p50', 'p90', 'p99', 'p99.9', 'max'],
  rows,
  notes: [
    'latency = notify → the parked worker running again (Atomics.wait returned), on the machine-wide clock',
    'the broker has two such wake-ups per message at light load (main → shard, shard → main); a woken thread placed on its busy waker’s core waits for the waker’s time slice',
  ],
};
finish({ bench: 'wake-tail', machine, figures, tables: [table] }, ok);
