/**
 * Question: what fraction of the machine's copy bandwidth into a SharedArrayBuffer does the ring
 * reach with 4 KiB records, main → worker?
 *
 * The ring copies each payload once (producer: `Uint8Array.set` into the SAB) and the consumer reads
 * it in place, so one `set` per record is the physical ceiling. It is measured here, in the same
 * process and interleaved with the ring runs: single-threaded `set` of a 4 KiB, 8-aligned source into
 * a 4 MiB SAB at the offsets a ring of the same size would use (8-byte header, 8-aligned payloads,
 * wrapping at the end), and, for reference, 1 MiB blocks into a 64 MiB SAB (17–18 GB/s in
 * benchmarks.md on this VM; docs/engine-notes.md §2). design.md §4 asks for ≥ 50%.
 *
 * Run: npx tsx native-bench/ring-copy-ceiling.bench.ts [--quick] [--runs N]
 */
import { benchOptions, finish, header, interleaved, spread, summarize } from './fixtures/bench-util.js';
import { RING_BYTES, TransportBench } from './fixtures/transport.js';

const RECORD_BYTES = 4096;
const MAX_RECORDS = 50_000_000;
const options = benchOptions();
const runMs = options.quick ? 150 : 400;
const machine = header('ring-copy-ceiling', 'ring bytes/s for 4 KiB records vs Uint8Array.set into a SAB', options);

/** Bytes/s of `set(src)` into `dst` at ring-like rotating offsets, for `ms` (bounded by count too). */
function copyBandwidth(blockBytes: number, dstBytes: number, stride: number, ms: number): number {
  const src = new Uint8Array(blockBytes);
  for (let i = 0; i < blockBytes; i++) src[i] = (i * 37) & 0xff;
  const dst = new Uint8Array(new SharedArrayBuffer(dstBytes));
  dst.fill(1); // fault the pages in before timing
  const maxCopies = 100_000_000;
  let offset = 0;
  let copies = 0;
  const started = performance.now();
  let now = started;
  while (now - started < ms && copies < maxCopies) {
    for (let i = 0; i < 256; i++) {
      if (offset + blockBytes > dstBytes) offset = 0;
      dst.set(src, offset);
      offset += stride;
    }
    copies += 256;
    now = performance.now();
  }
  if (dst[offset === 0 ? 1 : 0] === 255 && src[0] === 7) console.log('unreachable'); // keep the copies observable
  return (copies * blockBytes) / ((now - started) / 1000);
}

type Kind = 'memcpy-4KiB' | 'memcpy-1MiB' | 'ring-4KiB';
const samples: Record<Kind, number[]> = { 'memcpy-4KiB': [], 'memcpy-1MiB': [], 'ring-4KiB': [] };
const bench = await TransportBench.start();
let ok = true;
try {
  // Warm-up (not recorded).
  copyBandwidth(RECORD_BYTES, RING_BYTES, RECORD_BYTES + 8, 50);
  await bench.run('ring', 'in', RECORD_BYTES, 50, MAX_RECORDS);
  let n = 0;
  const kinds: readonly Kind[] = ['memcpy-4KiB', 'ring-4KiB', 'memcpy-1MiB'];
  await interleaved(kinds, options.runs, async (kind, run) => {
    let bps: number;
    if (kind === 'ring-4KiB') {
      const r = await bench.run('ring', 'in', RECORD_BYTES, runMs, MAX_RECORDS);
      ok &&= r.ok;
      bps = r.bytesPerSecond;
    } else if (kind === 'memcpy-4KiB') {
      bps = copyBandwidth(RECORD_BYTES, RING_BYTES, RECORD_BYTES + 8, runMs);
    } else {
      bps = copyBandwidth(1 << 20, 64 << 20, 1 << 20, runMs);
    }
    samples[kind].push(bps);
    console.log(`  [${++n}/${kinds.length * options.runs}] run ${run + 1}: ${kind}: ${(bps / 1e9).toFixed(2)} GB/s`);
  });
} finally {
  await bench.stop();
}

const fractions = samples['ring-4KiB'].map((r, i) => r / samples['memcpy-4KiB'][i]);
const fraction = summarize(fractions).median;
const gb = (x: number): string => `${(x / 1e9).toFixed(2)}`;
const row = (name: string, kind: Kind, vs: string): (string | number)[] => [name, spread(summarize(samples[kind]), gb), vs];
finish(
  {
    bench: 'ring-copy-ceiling',
    machine,
    figures: {
      ring_copy_fraction_of_memcpy_4KiB: fraction,
      ring_4KiB_main_to_worker_bytes_per_s: summarize(samples['ring-4KiB']).median,
      memcpy_sab_4KiB_bytes_per_s: summarize(samples['memcpy-4KiB']).median,
      memcpy_sab_1MiB_bytes_per_s: summarize(samples['memcpy-1MiB']).median,
    },
    tables: [
      {
        title: `Ring bytes/s vs the copy ceiling, records=4KiB main → worker, ${runMs} ms per run × ${options.runs} interleaved run(s)`,
        columns: ['what', 'GB/s median (min–max) ±SE', 'ring ÷ this'],
        rows: [
          row('SAB ring, 4 KiB records, one commit per 64 (payload bytes, delivered)', 'ring-4KiB', '—'),
          row('`Uint8Array.set` 4 KiB → 4 MiB SAB at ring offsets (the ceiling)', 'memcpy-4KiB', `${(fraction * 100).toFixed(0)}%`),
          row(
            '`Uint8Array.set` 1 MiB → 64 MiB SAB (reference)',
            'memcpy-1MiB',
            `${(summarize(samples['ring-4KiB'].map((r, i) => r / samples['memcpy-1MiB'][i])).median * 100).toFixed(0)}%`,
          ),
        ],
        notes: [
          'the ring copies each payload once into the SAB and the worker reads it in place, so one `set` per record is the ceiling; the copies are single-threaded, like the producer',
          `goal (design.md §4): ring ≥ 50% of the copy bandwidth for 4 KiB records; measured ${(fraction * 100).toFixed(0)}% — ${fraction >= 0.5 ? 'met' : 'not met'}`,
        ],
      },
    ],
  },
  ok,
);
