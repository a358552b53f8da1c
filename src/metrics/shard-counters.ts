/**
 * Per-shard counters in shared memory: the shard writes, the main thread reads
 * for /v1/stats and /metrics with no message round trip.
 *
 * One writer per slot at a time (the shard, or the supervisor for `restarts`/`lost` while the
 * shard is down; the shard adds to `lost` only during its recovery, before it serves), so plain Float64Array stores suffice; an aligned 8-byte store is
 * not torn on the platforms Node runs on, and a reader that is a few records late
 * is fine for monitoring.
 */
export const CounterSlot = {
  /** Messages accepted from publishers. */
  published: 0,
  /** Deliveries written towards subscribers (including redeliveries). */
  delivered: 1,
  /** Client acks that settled a delivery. */
  acked: 2,
  /** Deliveries that were requeued and sent again. */
  redelivered: 3,
  /** Messages dropped by a limit (a slow topic subscriber's buffer) or a nack without requeue. */
  dropped: 4,
  /** Messages that routed to no queue or subscriber (AMQP: unroutable, dropped). */
  unroutable: 5,
  /** Messages waiting in queues, not yet delivered. */
  ready: 6,
  /** Delivered, not yet acked. */
  unacked: 7,
  queues: 8,
  consumers: 9,
  /** Next delivery-tag sequence: kept here so a restarted shard never reuses a tag. */
  nextTagSeq: 10,
  /** Times the supervisor restarted this shard. */
  restarts: 11,
  /**
   * Messages lost: transient ones when the shard died (ready + unacked at its last report), and
   * records its log recovery had to skip as damaged (see `corruptRecords`).
   */
  lost: 12,
  /** Records drained from the inbound ring. */
  inboundRecords: 13,
  /** Times the shard found its outbound ring full and had to wait. */
  outboundFull: 14,
  /** Persistent messages held (ready + unacked) that are on disk: a crash does not lose these. */
  durable: 15,
  /** Damaged log records recovery skipped (the most one recovery of this shard's log found). */
  corruptRecords: 16,
  /** Garbage-collection pauses of the shard thread: how many, their total and the longest (ms). */
  gcPauses: 17,
  gcPauseMs: 18,
  gcMaxPauseMs: 19,
  /** Times the shard loop went to sleep on its empty inbound ring (each costs the main thread a notify to wake it). */
  parks: 20,
  /** Share of the last second the shard thread's event loop was busy (0 to 1), written once a second. */
  eventLoopUtilization: 21,
  /** Bytes of the shard's log on disk (0 without --data-dir), written once a second. */
  logBytes: 22,
  /** fsyncs of the shard's log and their total seconds; their durations by FSYNC_BUCKETS below. */
  fsyncs: 23,
  fsyncSeconds: 24,
  fsyncLe1ms: 25,
  fsyncLe5ms: 26,
  fsyncLe10ms: 27,
  fsyncLe50ms: 28,
  fsyncLe100ms: 29,
  fsyncLe500ms: 30,
  fsyncLe1s: 31,
} as const;
export type CounterSlot = (typeof CounterSlot)[keyof typeof CounterSlot];

export const COUNTER_SLOTS = 32;

/**
 * The fsync latency histogram's upper bounds (seconds) and their slots: each fsync adds one to the
 * first bucket that holds it (not cumulative here; /metrics sums them as Prometheus wants). Above
 * the last bound only `fsyncs` counts it (the +Inf bucket).
 */
export const FSYNC_BUCKETS: ReadonlyArray<readonly [seconds: number, counter: CounterName]> = [
  [0.001, 'fsyncLe1ms'],
  [0.005, 'fsyncLe5ms'],
  [0.01, 'fsyncLe10ms'],
  [0.05, 'fsyncLe50ms'],
  [0.1, 'fsyncLe100ms'],
  [0.5, 'fsyncLe500ms'],
  [1, 'fsyncLe1s'],
];

/** Counts one fsync of `seconds` into the shard's counters. */
export function countFsync(counters: Float64Array, seconds: number): void {
  counters[CounterSlot.fsyncs]++;
  counters[CounterSlot.fsyncSeconds] += seconds;
  for (const [bound, name] of FSYNC_BUCKETS) {
    if (seconds <= bound) {
      counters[CounterSlot[name]]++;
      return;
    }
  }
}

export function createCounterStorage(): SharedArrayBuffer {
  return new SharedArrayBuffer(COUNTER_SLOTS * Float64Array.BYTES_PER_ELEMENT);
}

export type CounterName = keyof typeof CounterSlot;
export const COUNTER_NAMES = Object.keys(CounterSlot) as CounterName[];

export function readCounters(counters: Float64Array): Record<CounterName, number> {
  const out = {} as Record<CounterName, number>;
  for (const name of COUNTER_NAMES) out[name] = counters[CounterSlot[name]];
  return out;
}
