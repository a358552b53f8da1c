/**
 * The shard thread's entry: wires rings, counters and logger to a ShardCore and
 * runs its loop. Everything it calls is single-threaded code.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { RingConsumer, RingProducer } from '../ring/spsc-ring.js';
import { OutboundWriter, RecordReader } from '../protocol/ring-record-codec.js';
import { ShardCore } from './shard-core.js';
import { ShardLoop } from './shard-loop.js';
import { createLogger } from '../log/logger.js';
import type { ShardReply, ShardRequest, ShardWorkerData } from './shard-worker-data.js';

const data = workerData as ShardWorkerData;
const port = parentPort;
if (port === null) throw new Error('shard-main must run in a worker thread');

const log = createLogger(data.logLevel).child({ shard: data.index });
const inbound = new RingConsumer(data.inbound);
const outbound = new RingProducer(data.outbound);
const counters = new Float64Array(data.counters);
const core = new ShardCore(
  { index: data.index, shardCount: data.shardCount },
  new RecordReader(inbound.bytes, inbound.view),
  new OutboundWriter(outbound),
  counters,
);
const refused = core.applyTopology(data.topology);
for (const r of refused) log.error({ op: r.op, error: r.error }, 'topology snapshot op refused');
const loop = new ShardLoop(core, inbound, outbound);

port.on('message', (req: ShardRequest) => {
  if (req.type === 'stats') {
    const reply: ShardReply = { type: 'stats', id: req.id, queues: core.queueStats() };
    port.postMessage(reply);
  } else if (req.type === 'stop') {
    loop.stop();
  }
});

log.debug('shard started');
port.postMessage({ type: 'ready' } satisfies ShardReply);
await loop.run();
core.close();
log.debug('shard stopped');
port.postMessage({ type: 'stopped' } satisfies ShardReply);
port.close();
