/**
 * The latency floor of shardmq's shape, with nothing of the broker in it: uWebSockets.js on the main
 * thread, one worker thread, and the broker's own SPSC rings (src/ring) both ways, parked and woken
 * as the broker parks and wakes them. A binary message on `/pub` is copied into the inbound ring
 * (committed at the end of the event-loop turn, as ShardHandle.scheduleCommit); the worker copies
 * each record into the outbound ring (one commit per drained batch, as ShardLoop); the main thread's
 * pump drains it and `app.publish`es each record to topic `bench` (as uws-pubsub-server.ts does in
 * one thread). Same endpoints and `ready` / `flush` text frames as uws-pubsub-server.ts, so the same
 * `ws` clients drive both, and the difference between them is the two hops between threads alone.
 *
 * Run as its own process; prints {"url": "ws://127.0.0.1:port"} on stdout once listening.
 */
import { loadUws, type UWS } from '../front/uws.js';
import { createRingStorage, RingConsumer, RingProducer } from '../ring/spsc-ring.js';
import { spawnWorker } from '../shard/spawn-worker.js';

const TOPIC = 'bench';
const MAX_BACKPRESSURE_BYTES = 64 * 1024 * 1024;
const RING_BYTES = 4 * 1024 * 1024;
/** Records per pump drain before the pump yields to the event loop, as the broker's pump. */
const OUTBOUND_CHUNK = 1024;
const PARK_TIMEOUT_MS = 250;

const inboundStorage = createRingStorage(RING_BYTES);
const outboundStorage = createRingStorage(RING_BYTES);
const inbound = new RingProducer(inboundStorage);
const outbound = new RingConsumer(outboundStorage);
const worker = spawnWorker(new URL('./ring-relay-worker.js', import.meta.url), {
  workerData: { inbound: inboundStorage, outbound: outboundStorage },
});
worker.on('error', (err) => {
  process.stderr.write(`ring relay worker failed: ${String(err)}\n`);
  process.exit(1);
});

/** Messages that found the inbound ring full, in order; written before anything newer. */
const waiting: Uint8Array[] = [];
let commitScheduled = false;
let flushing = false;

const commit = (): void => {
  commitScheduled = false;
  inbound.commit();
};

function write(message: Uint8Array): boolean {
  const at = inbound.reserve(message.byteLength, 1);
  if (at < 0) return false;
  inbound.bytes.set(message, at);
  if (!commitScheduled) {
    commitScheduled = true;
    setImmediate(commit);
  }
  return true;
}

async function flushWaiting(): Promise<void> {
  if (flushing) return;
  flushing = true;
  while (waiting.length > 0) {
    if (write(waiting[0] as Uint8Array)) waiting.shift();
    else await inbound.waitForSpace(50);
  }
  flushing = false;
}

const { uws } = loadUws();
const app = uws.App();
app.ws('/sub', {
  compression: uws.DISABLED,
  maxBackpressure: MAX_BACKPRESSURE_BYTES,
  idleTimeout: 120,
  open: (ws) => {
    ws.subscribe(TOPIC);
    ws.send('ready', false);
  },
});
app.ws('/pub', {
  compression: uws.DISABLED,
  maxBackpressure: MAX_BACKPRESSURE_BYTES,
  maxPayloadLength: 1024 * 1024,
  idleTimeout: 120,
  message: (ws, message, isBinary) => {
    if (!isBinary) {
      ws.send('flush', false);
      return;
    }
    const bytes = new Uint8Array(message);
    if (waiting.length > 0 || !write(bytes)) {
      waiting.push(bytes.slice());
      void flushWaiting();
    }
  },
});

async function pump(): Promise<void> {
  // uWS takes a view of non-shared memory: each record is copied out of the ring once, as the
  // broker copies a delivery into its socket's frame buffer.
  let scratch = new Uint8Array(64 * 1024);
  const onRecord = (_kind: number, offset: number, length: number): void => {
    if (length > scratch.byteLength) scratch = new Uint8Array(length);
    scratch.set(outbound.bytes.subarray(offset, offset + length));
    app.publish(TOPIC, scratch.subarray(0, length), true);
  };
  for (;;) {
    if (outbound.drain(onRecord, OUTBOUND_CHUNK) > 0) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      continue;
    }
    await outbound.waitForDataAsync(PARK_TIMEOUT_MS, 0);
  }
}

app.listen('127.0.0.1', 0, (socket) => {
  if (!socket) process.exit(1);
  const port = uws.us_socket_local_port(socket as unknown as UWS.us_socket);
  process.stdout.write(JSON.stringify({ url: `ws://127.0.0.1:${port}` }) + '\n');
});
void pump();
process.on('SIGTERM', () => process.exit(0));
