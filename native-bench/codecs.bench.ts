/**
 * Question: what do the per-message codecs on the data path cost, single-threaded, 128-byte payloads?
 *   - ring-record-codec: InboundWriter.publish (main thread encodes a publish into a ring) and
 *     RecordReader.publish (the shard decodes it in place);
 *   - ws-binary: BinaryDecoder on a frame of 1000 PUBLISH ops and on one PUBLISH_BATCH of 1000
 *     (what the main thread does per client frame), and BinaryFrameWriter.deliver × 1000 + finish
 *     (what it does per outbound chunk).
 * Inputs are pre-encoded outside the timed region; each operation runs in bursts of 1000 messages
 * for a bounded time; operations are interleaved across rounds.
 *
 * Run: npx tsx native-bench/codecs.bench.ts [--quick] [--runs N]
 */
import { RingConsumer, RingProducer, createRingStorage } from '../src/ring/spsc-ring.js';
import { InboundWriter, RecordReader, newPublishRecord } from '../src/protocol/ring-record-codec.js';
import { BinaryDecoder, Direction } from '../src/protocol/ws-binary-decode.js';
import { BinaryFrameWriter } from '../src/protocol/ws-binary-encode.js';
import type { BinaryDispatcher } from '../src/protocol/ws-binary.js';
import { benchOptions, finish, header, interleaved, si, spread, summarize } from './fixtures/bench-util.js';

const options = benchOptions();
const runMs = options.quick ? 50 : 200;
const BURST = 1000;
const PAYLOAD = new Uint8Array(128).map((_, i) => (i * 31) & 0xff);
const DESTINATION = '/topic/bench.codec';
const machine = header('codecs', 'ring-record-codec and ws-binary encode/decode, 128-byte payloads', options);

let sink = 0;

// --- ring-record-codec -------------------------------------------------------------------------
const storage = createRingStorage(4 << 20);
const producer = new RingProducer(storage);
const consumer = new RingConsumer(storage);
const inbound = new InboundWriter(producer);
const reader = new RecordReader(consumer.bytes, consumer.view);
const rec = newPublishRecord();
const payloadBuf = Buffer.from(PAYLOAD);
const decodeRecord = (_kind: number, offset: number): void => {
  reader.publish(offset, rec);
  sink += rec.payloadLength + rec.routingKey.length;
};
const skipRecord = (): void => undefined;

/** Encodes bursts of publishes into the ring; the ring is drained untimed between bursts. */
function ringEncode(ms: number): number {
  let n = 0;
  let spent = 0;
  while (spent < ms && n < 100_000_000) {
    const t0 = performance.now();
    for (let i = 0; i < BURST; i++) inbound.publish(7, 0, 'amq.topic', 'bench.codec', null, payloadBuf);
    producer.commit();
    spent += performance.now() - t0;
    n += BURST;
    consumer.drain(skipRecord);
  }
  return n / (spent / 1000);
}

/** Decodes bursts of publish records in place; the ring is refilled untimed between bursts. */
function ringDecode(ms: number): number {
  let n = 0;
  let spent = 0;
  while (spent < ms && n < 100_000_000) {
    for (let i = 0; i < BURST; i++) inbound.publish(7, 0, 'amq.topic', 'bench.codec', null, payloadBuf);
    producer.commit();
    const t0 = performance.now();
    n += consumer.drain(decodeRecord);
    spent += performance.now() - t0;
  }
  return n / (spent / 1000);
}

// --- ws-binary ---------------------------------------------------------------------------------
const noop = (): void => undefined;
const dispatcher: BinaryDispatcher = {
  processPublish: (ev) => (sink += ev.payload.length),
  processPublishBatch: (ev) => (sink += ev.payloads.length),
  processConfirmSelect: noop,
  processSubscribe: noop,
  processUnsubscribe: noop,
  processCommitOffset: noop,
  processAck: noop,
  processNack: noop,
  processFlush: noop,
  processDeclareExchange: noop,
  processDeleteExchange: noop,
  processDeclareQueue: noop,
  processDeleteQueue: noop,
  processPurgeQueue: noop,
  processBindQueue: noop,
  processUnbindQueue: noop,
  processBindExchange: noop,
  processUnbindExchange: noop,
};
const decoder = new BinaryDecoder(Direction.toServer, dispatcher);
const frameWriter = new BinaryFrameWriter();
for (let i = 0; i < BURST; i++) frameWriter.publish(DESTINATION, PAYLOAD);
const publishFrame = frameWriter.finishCopy();
const batchFrame = frameWriter
  .publishBatch(
    DESTINATION,
    Array.from({ length: BURST }, () => PAYLOAD),
  )
  .finishCopy();

function wsDecode(frame: Uint8Array, ms: number): number {
  let n = 0;
  const started = performance.now();
  let now = started;
  while (now - started < ms && n < 100_000_000) {
    decoder.decodeFrame(frame);
    n += BURST;
    now = performance.now();
  }
  return n / ((now - started) / 1000);
}

const deliverWriter = new BinaryFrameWriter();
const ringLike = new Uint8Array(4096);
ringLike.set(PAYLOAD, 1000);
function wsDeliverEncode(ms: number): number {
  let n = 0;
  let tag = 1;
  const started = performance.now();
  let now = started;
  while (now - started < ms && n < 100_000_000) {
    for (let i = 0; i < BURST; i++) deliverWriter.deliver(3, tag++, false, 'amq.topic', 'bench.codec', null, ringLike, 1000, 128);
    sink += deliverWriter.finish().length;
    n += BURST;
    now = performance.now();
  }
  return n / ((now - started) / 1000);
}

const ops = {
  'ring publish encode (InboundWriter.publish)': ringEncode,
  'ring publish decode (RecordReader.publish, in place)': ringDecode,
  'ws PUBLISH decode (1000 ops per frame)': (ms: number) => wsDecode(publishFrame, ms),
  'ws PUBLISH_BATCH decode (1000 per op)': (ms: number) => wsDecode(batchFrame, ms),
  'ws DELIVER encode (1000 per frame + finish)': wsDeliverEncode,
} as const;
type Op = keyof typeof ops;
const names = Object.keys(ops) as Op[];
const figureName: Record<Op, string> = {
  'ring publish encode (InboundWriter.publish)': 'codec_ring_publish_encode_per_s',
  'ring publish decode (RecordReader.publish, in place)': 'codec_ring_publish_decode_per_s',
  'ws PUBLISH decode (1000 ops per frame)': 'codec_ws_publish_decode_per_s',
  'ws PUBLISH_BATCH decode (1000 per op)': 'codec_ws_publish_batch_decode_per_s',
  'ws DELIVER encode (1000 per frame + finish)': 'codec_ws_deliver_encode_per_s',
};

for (const name of names) ops[name](20); // warm-up
const samples = new Map<Op, number[]>();
let done = 0;
await interleaved(names, options.runs, (name, run) => {
  const rate = ops[name](runMs);
  samples.set(name, [...(samples.get(name) ?? []), rate]);
  console.log(`  [${++done}/${names.length * options.runs}] run ${run + 1}: ${name}: ${si(rate)} msgs/s`);
});

const figures: Record<string, number> = {};
const rows = names.map((name) => {
  const s = summarize(samples.get(name) ?? []);
  figures[figureName[name]] = s.median;
  return [name, spread(s), `${(1e9 / s.median).toFixed(0)} ns`];
});
finish(
  {
    bench: 'codecs',
    machine,
    figures,
    tables: [
      {
        title: `Codecs, 128-byte payloads, destination ${DESTINATION}, ${runMs} ms per run × ${options.runs} interleaved run(s)`,
        columns: ['operation', 'messages/s median (min–max) ±SE', 'per message'],
        rows,
        notes: [`checksum ${sink % 997}`],
      },
    ],
  },
  true,
);
