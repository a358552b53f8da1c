/**
 * The shard thread's entry: wires rings, counters and logger to a ShardCore and
 * runs its loop. Everything it calls is single-threaded code.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { RingConsumer, RingProducer } from '../ring/spsc-ring.js';
import { OutboundWriter, RecordReader } from '../protocol/ring-record-codec.js';
import { VhostPrefixes } from '../protocol/vhost-numbers.js';
import { ShardCore } from './shard-core.js';
import { ShardLoop } from './shard-loop.js';
import { GcMonitor } from '../metrics/gc-monitor.js';
import { createLogger } from '../log/logger.js';
import type { ShardReply, ShardRequest, ShardWorkerData } from './shard-worker-data.js';
import { LogStore } from '../store/log-store.js';
import { StreamStore } from '../store/stream-store.js';
import { nodeFs } from '../store/fs-seam.js';
import { FAULT_FILE_ENV, withFaultSwitch } from '../store/fault-switch.js';
import { withTimedFsync } from '../store/timed-fs.js';
import { CounterSlot, countFsync } from '../metrics/shard-counters.js';

const data = workerData as ShardWorkerData;
const port = parentPort;
if (port === null) throw new Error('shard-main must run in a worker thread');

const log = createLogger(data.logLevel).child({ shard: data.index });
const inbound = new RingConsumer(data.inbound);
const outbound = new RingProducer(data.outbound);
const counters = new Float64Array(data.counters);
const store =
  data.storeDir === null
    ? null
    : new LogStore({
        dir: data.storeDir,
        fsync: data.fsync,
        batchIntervalMs: data.fsyncIntervalMs,
        fs: withTimedFsync(withFaultSwitch(nodeFs, process.env[FAULT_FILE_ENV]), (seconds) => countFsync(counters, seconds)),
      });
// Streams keep their own files beside the log (store/stream-store.ts), with the same fsync policy and seam.
const streamStore =
  store === null || data.storeDir === null
    ? null
    : new StreamStore({
        dir: data.storeDir,
        fsync: data.fsync,
        batchIntervalMs: data.fsyncIntervalMs,
        fs: withTimedFsync(withFaultSwitch(nodeFs, process.env[FAULT_FILE_ENV]), (seconds) => countFsync(counters, seconds)),
      });
let lastStoreError = 0;
const core = new ShardCore(
  {
    index: data.index,
    shardCount: data.shardCount,
    store,
    streamStore,
    onStoreError: (err) => {
      // While the disk stays full every flush fails again: log at most once a second.
      const now = Date.now();
      if (now - lastStoreError < 1000) return;
      lastStoreError = now;
      log.error({ err }, 'log write failed: persistent publishes are refused until a write succeeds');
    },
  },
  new RecordReader(inbound.bytes, inbound.view, new VhostPrefixes(data.vhostTable)),
  new OutboundWriter(outbound),
  counters,
);
// The log first (durable queues and their messages), then the main thread's snapshot (the
// transient rest), all before the ring is read.
let recovered = null;
if (store !== null) {
  const t0 = performance.now();
  const summary = core.recover(store.recover());
  // Time the whole rebuild (reading the log and refilling the queues), not just the read.
  recovered = { ...summary, stats: { ...summary.stats, durationMs: Math.round(performance.now() - t0) } };
  log.info(
    { messages: recovered.messages, topologyOps: recovered.topology.length, ...recovered.stats },
    `recovered ${recovered.messages} messages in ${recovered.stats.durationMs} ms`,
  );
  const { corruptSkipped, tornBytesTruncated, damage } = recovered.stats;
  for (const d of damage) {
    if (d.kind === 'torn')
      log.warn(
        { ...d, dir: data.storeDir },
        `torn tail of ${d.segment} at offset ${d.offset} cut (${d.bytes} bytes kept in ${d.copiedTo})`,
      );
    else
      log.warn(
        { ...d, dir: data.storeDir },
        `damaged log record(s) in ${d.segment} at offset ${d.offset} (${d.bytes} bytes) skipped: their messages are lost`,
      );
  }
  if (corruptSkipped > damage.length) log.warn({ corruptSkipped, reported: damage.length }, 'more damaged log regions than listed');
  if (corruptSkipped > 0 || tornBytesTruncated > 0) log.warn({ corruptSkipped, tornBytesTruncated }, 'log damage skipped during recovery');
  for (const queue of recovered.recreatedQueues) {
    log.warn(
      { queue },
      `queue ${queue} declared again (durable, default arguments) for its recovered messages: its declaration was in a damaged record`,
    );
  }
  const streams = recovered.streams;
  if (streams !== undefined && streams.streams > 0) {
    log.info(streams, `recovered ${streams.streams} stream(s) holding ${streams.entries} entries`);
    if (streams.corruptSkipped > 0 || streams.tornBytesTruncated > 0)
      log.warn(streams, 'stream file damage skipped during recovery: readers are told the entries lost as skipped');
  }
  for (const id of streams?.orphaned ?? [])
    log.warn({ id, dir: data.storeDir }, `stream directory ${id} belongs to no declared stream: moved aside (.orphaned-*), not deleted`);
  // A restarted shard reads the same log again: count each damaged record once per process.
  const newlyCorrupt = corruptSkipped - counters[CounterSlot.corruptRecords];
  if (newlyCorrupt > 0) {
    counters[CounterSlot.lost] += newlyCorrupt;
    counters[CounterSlot.corruptRecords] = corruptSkipped;
  }
}
const refused = core.applyTopology(data.topology);
for (const r of refused) log.error({ op: r.op, error: r.error }, 'topology snapshot op refused');
const loop = new ShardLoop(core, inbound, outbound, counters);
// How busy this thread's event loop was over the last second (the dashboard's hot-shard column).
let elu = performance.eventLoopUtilization();
setInterval(() => {
  const now = performance.eventLoopUtilization();
  counters[CounterSlot.eventLoopUtilization] = performance.eventLoopUtilization(now, elu).utilization;
  elu = now;
  if (store !== null) counters[CounterSlot.logBytes] = store.bytes;
}, 1000).unref();
// This thread's GC pauses, for the latency breakdown (GET /v1/stats/latency).
const gc = new GcMonitor((ms) => {
  counters[CounterSlot.gcPauses]++;
  counters[CounterSlot.gcPauseMs] += ms;
  if (ms > counters[CounterSlot.gcMaxPauseMs]) counters[CounterSlot.gcMaxPauseMs] = ms;
});

port.on('message', (req: ShardRequest) => {
  if (req.type === 'figures') {
    const figures = core.queueFigures(req.names);
    port.postMessage({ type: 'figures', id: req.id, figures } satisfies ShardReply, [figures.buffer]);
  } else if (req.type === 'stop') {
    loop.stop();
  }
});

log.debug('shard started');
port.postMessage({ type: 'ready', recovered } satisfies ShardReply);
await loop.run();
gc.stop();
await core.close();
log.debug('shard stopped');
port.postMessage({ type: 'stopped' } satisfies ShardReply);
port.close();
