/**
 * Milliseconds on the machine-wide monotonic clock (CLOCK_MONOTONIC): the same in every thread and
 * every process, so a time stamped on the main thread can be subtracted from one read in a shard,
 * or in a client process. `performance.now()` is cheap but counts from each thread's own start, and
 * `process.hrtime.bigint()` is shared but allocates a BigInt; this is `performance.now()` plus this
 * thread's offset to the shared clock, measured once.
 *
 * The offset is the hrtime read between two performance.now() reads, from the tightest of a few
 * tries: a single pair was off by tens of microseconds when the first performance.now() of a
 * fresh worker was slow (its lazy set-up), which showed as a shard hop of 0 µs and its neighbour
 * tens of microseconds too long.
 */
function measureOffset(): number {
  let best = Infinity;
  let offset = 0;
  performance.now();
  process.hrtime();
  for (let i = 0; i < 16; i++) {
    const before = performance.now();
    const [seconds, nanos] = process.hrtime();
    const after = performance.now();
    if (after - before < best) {
      best = after - before;
      offset = seconds * 1e3 + nanos / 1e6 - (before + after) / 2;
    }
  }
  return offset;
}

const OFFSET_MS = measureOffset();

export function monotonicMs(): number {
  return performance.now() + OFFSET_MS;
}
