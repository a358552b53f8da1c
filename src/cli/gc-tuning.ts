/**
 * V8 settings for the broker process. The main thread's heap reads them only from the command line:
 * `npm start`, bin/shardmq.js and the bench harness run node with BROKER_V8_FLAGS. `shardmq serve`
 * also sets them before the broker starts, which reaches the shard threads however node was started
 * (each thread's heap is made after it).
 *
 * The memory reducer is V8's idle-time heap shrinker, made for a browser tab going quiet: when the
 * allocation rate is low it runs full collections, with compaction, to hand pages back to the OS.
 * A broker at a steady 10,000 msg/s looks "quiet" to it: measured on this machine, it ran ~30 main-
 * thread GCs per 5 s (against 2 without it) and one 14.7 ms pause as it shrank RSS 191 → 150 MB,
 * which put publish→deliver p99.9 at 16 ms; without it p99 was 0.28 ms and p99.9 1.4–2.6 ms
 * (five 5 s runs at 10k msg/s on one broker, /tmp driver over the latency workload's code). The
 * price: the heap is not shrunk while idle (it stays at its working size; garbage is still
 * collected as allocation needs, and memory is bounded by the broker's own limits).
 */
import { setFlagsFromString } from 'node:v8';

export const BROKER_V8_FLAGS = ['--no-memory-reducer'] as const;

export function tuneGcForLatency(): void {
  for (const flag of BROKER_V8_FLAGS) setFlagsFromString(flag);
}
