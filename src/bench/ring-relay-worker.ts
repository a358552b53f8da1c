/**
 * The worker of ring-relay-server.ts: copies every record of the inbound ring into the outbound ring,
 * one commit per drained batch, and parks as the broker's ShardLoop parks at light load
 * (Atomics.waitAsync, no spin: at 10,000 msg/s in 1 ms batches the shard's spin policy parks at once).
 */
import { workerData } from 'node:worker_threads';
import { RingConsumer, RingProducer, type RingStorage } from '../ring/spsc-ring.js';

const DRAIN_BATCH = 1024;
const PARK_TIMEOUT_MS = 250;

const data = workerData as { inbound: RingStorage; outbound: RingStorage };
const input = new RingConsumer(data.inbound);
const output = new RingProducer(data.outbound);

const copy = (kind: number, offset: number, length: number): void => {
  let at = output.reserve(length, kind);
  while (at < 0) {
    output.waitForSpaceSync(50);
    at = output.reserve(length, kind);
  }
  output.bytes.set(input.bytes.subarray(offset, offset + length), at);
};

for (;;) {
  const n = input.drain(copy, DRAIN_BATCH);
  output.commit();
  if (n === 0) await input.waitForDataAsync(PARK_TIMEOUT_MS, 0);
}
