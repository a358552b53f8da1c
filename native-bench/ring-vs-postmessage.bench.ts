/**
 * Question: how many records per second cross between the main thread and a worker through
 *   (a) the SPSC ring (src/ring/spsc-ring.ts), one commit per event-loop burst,
 *   (b) one port.postMessage per record, with credit flow control,
 *   (c) one port.postMessage per burst, the records packed into a transferred ArrayBuffer,
 * for 128 B, 1 KiB and 4 KiB records, main → worker and worker → main?
 *
 * design.md §4 asks (a) ≥ 20× (b) for 128-byte records main → worker. Each run is bounded in time
 * and count, the receiver checks every record's sequence number, and the clock stops when the
 * receiver has the last record (native-bench/fixtures/transport.ts). Runs are interleaved: every
 * round runs every configuration once, in a rotated order; figures are medians of per-round ratios.
 *
 * Run: npx tsx native-bench/ring-vs-postmessage.bench.ts [--quick] [--runs N]
 * Output: tables, then one JSON line for native-bench/run.ts and `shardmq bench`.
 */
import { benchOptions, finish, header, interleaved, si, spread, summarize, type BenchTable } from './fixtures/bench-util.js';
import { TransportBench, burstRecords, type Direction, type TransportResult, type Variant } from './fixtures/transport.js';

const SIZES = [128, 1024, 4096] as const;
const DIRECTIONS: readonly Direction[] = ['in', 'out'];
const VARIANTS: readonly Variant[] = ['ring', 'postmessage', 'batched'];
/** Hard cap on records per run (the time cap normally ends a run first). */
const MAX_RECORDS = 50_000_000;

const options = benchOptions();
/** Sending time per run: long enough to dwarf start-up and wake-ups, short enough for 90 runs. */
const runMs = options.quick ? 100 : 300;
const machine = header(
  'ring-vs-postmessage',
  'ring vs postMessage per record vs batched transferred ArrayBuffer, both directions',
  options,
);

const label: Record<Variant, string> = {
  ring: '(a) SAB ring, one commit per burst',
  postmessage: '(b) postMessage per record',
  batched: '(c) postMessage of a transferred burst ArrayBuffer',
};
const dirLabel: Record<Direction, string> = { in: 'main → worker', out: 'worker → main' };
const sizeLabel = (b: number): string => (b >= 1024 ? `${b / 1024}KiB` : `${b}B`);

const bench = await TransportBench.start();
const results = new Map<string, TransportResult[]>();
const key = (v: Variant, d: Direction, s: number): string => `${v}/${d}/${s}`;
const configs = SIZES.flatMap((size) => DIRECTIONS.flatMap((direction) => VARIANTS.map((variant) => ({ size, direction, variant }))));
let allOk = true;
try {
  // Warm-up round (not recorded): JIT, page faults of fresh rings, worker code paths.
  console.log(`warm-up: ${configs.length} configurations × 50 ms`);
  for (const c of configs) await bench.run(c.variant, c.direction, c.size, 50, MAX_RECORDS);
  let done = 0;
  const total = configs.length * options.runs;
  await interleaved(configs, options.runs, async (c, run) => {
    const r = await bench.run(c.variant, c.direction, c.size, runMs, MAX_RECORDS);
    const k = key(c.variant, c.direction, c.size);
    results.set(k, [...(results.get(k) ?? []), r]);
    allOk &&= r.ok;
    done++;
    console.log(
      `  [${done}/${total}] run ${run + 1}: ${sizeLabel(c.size)} ${dirLabel[c.direction]} ${c.variant}: ${si(r.recordsPerSecond)} records/s, ` +
        `${(r.bytesPerSecond / 1e6).toFixed(0)} MB/s, ${r.records.toLocaleString('en-US')} records, ok=${r.ok}`,
    );
  });
} finally {
  await bench.stop();
}

/** Median over rounds of (variant rate ÷ baseline rate) in the same round. */
function pairedRatio(a: readonly TransportResult[], b: readonly TransportResult[]): number {
  const n = Math.min(a.length, b.length);
  const ratios: number[] = [];
  for (let i = 0; i < n; i++) ratios.push(a[i].recordsPerSecond / b[i].recordsPerSecond);
  return summarize(ratios).median;
}

const figures: Record<string, number> = {};
const tables: BenchTable[] = [];
for (const direction of DIRECTIONS) {
  const rows: (string | number)[][] = [];
  for (const size of SIZES) {
    const base = results.get(key('postmessage', direction, size)) ?? [];
    for (const variant of VARIANTS) {
      const rs = results.get(key(variant, direction, size)) ?? [];
      const rate = summarize(rs.map((r) => r.recordsPerSecond));
      const mbps = summarize(rs.map((r) => r.bytesPerSecond / 1e6));
      const ratio = pairedRatio(rs, base);
      rows.push([
        `records=${sizeLabel(size)}`,
        label[variant],
        spread(rate),
        mbps.median.toFixed(0),
        variant === 'postmessage' ? '1.0×' : `${ratio.toFixed(1)}×`,
        rs.reduce((s, r) => s + r.waits, 0),
        String(rs.every((r) => r.ok)),
      ]);
      const dirKey = direction === 'in' ? 'main_to_worker' : 'worker_to_main';
      figures[`${variant}_${sizeLabel(size)}_${dirKey}_records_per_s`] = rate.median;
      if (variant === 'ring') {
        const suffix = direction === 'in' ? '' : '_worker_to_main';
        figures[`ring_vs_postmessage_ratio_${sizeLabel(size)}${suffix}`] = ratio;
        figures[`ring_vs_batched_ratio_${sizeLabel(size)}${suffix}`] = pairedRatio(rs, results.get(key('batched', direction, size)) ?? []);
      }
    }
  }
  tables.push({
    title: `Ring vs postMessage, ${dirLabel[direction]}, producers=1 consumers=1, ${runMs} ms of sending per run × ${options.runs} interleaved run(s)`,
    columns: ['records', 'variant', 'records/s median (min–max) ±SE', 'MB/s', 'vs (b)', 'producer waits', 'ok'],
    rows,
    notes: [
      `burst = min(1000, 256 KiB ÷ record) records per ring commit and per batched message (${SIZES.map((s) => `${sizeLabel(s)}: ${burstRecords(s)}`).join(', ')}); ring 4 MiB; postMessage credit window 65,536 records, ack every 16,384`,
      '"vs (b)" is the median over rounds of the ratio to (b) in the same round; waits = ring full (a) or out of credit (b, c)',
      ...(direction === 'in'
        ? [
            `goal (design.md §4): (a) ≥ 20× (b) for 128 B main → worker; measured ${figures.ring_vs_postmessage_ratio_128B?.toFixed(1)}× — ${(figures.ring_vs_postmessage_ratio_128B ?? 0) >= 20 ? 'met' : 'not met'}`,
          ]
        : []),
    ],
  });
}

finish({ bench: 'ring-vs-postmessage', machine, figures, tables }, allOk);
