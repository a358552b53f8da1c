/**
 * A message that waits in a queue must keep its bytes while later traffic wraps the ring it
 * came through. The shard stores queued messages with `buf.slice(...)` where `buf` is a Node
 * Buffer over the ring's SharedArrayBuffer (shard-core.ts #processPublish): Buffer#slice is a
 * view, not a copy, so once the ring wraps the stored payload and properties are overwritten.
 * Corrupt properties then make the main thread's outbound pump throw ("outbound pump failed"),
 * after which that shard delivers and confirms nothing at all.
 *
 * Smallest reproduction: 64 KiB ring, one message parked in a queue, 160 KB through the ring,
 * then subscribe. Each case has its own broker, since the second one leaves its broker broken.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Broker } from '../../src/front/broker.js';
import { startBroker } from '../helpers/broker.js';
import { request } from '../helpers/http.js';
import { JsonWsClient } from '../helpers/ws-client.js';

const FILLER = 'z'.repeat(8000);

async function parkThenWrap(broker: Broker, headers: Record<string, string>): Promise<void> {
  const parked = await request(`${broker.url}/v1/publish/queue/parked`, { method: 'POST', body: 'keep-me', headers }, 3000);
  expect(parked.status).toBe(200);
  // 20 × 8000 B through a 64 KiB ring: it wraps twice. They wait in another queue.
  for (let i = 0; i < 20; i++) {
    const r = await request(
      `${broker.url}/v1/publish/queue/filler`,
      { method: 'POST', body: FILLER, headers: { 'content-type': 'application/x-ndjson' } },
      3000,
    );
    expect(r.status).toBe(200);
  }
}

describe('e2e - queued messages keep their bytes after the ring wraps', () => {
  let broker: Broker | null = null;
  afterEach(async () => {
    await broker?.stop();
    broker = null;
  });

  const start = (): Promise<Broker> => startBroker({ 'ring-bytes': '65536', 'max-message-bytes': '8192', 'shutdown-timeout-ms': '200' });

  it('payload - a parked message is delivered as published', async () => {
    broker = await start();
    // NDJSON content type: no AMQP properties travel with the message.
    await parkThenWrap(broker, { 'content-type': 'application/x-ndjson' });
    const c = await JsonWsClient.connect(broker.url);
    try {
      await c.subscribe('s', '/queue/parked');
      const [m] = await c.messages(1, 's', 3000);
      expect(m.payload).toBe('keep-me');
      // The filler, too: every one of the 20 is what was published.
      await c.subscribe('f', '/queue/filler');
      const fill = await c.messages(20, 'f', 3000);
      expect(fill.filter((f) => f.payload !== FILLER).length, 'filler messages with foreign bytes').toBe(0);
    } finally {
      c.ws.terminate();
    }
  });

  it('properties - a parked message keeps its properties, and the broker keeps delivering', async () => {
    broker = await start();
    await parkThenWrap(broker, { 'content-type': 'text/plain', 'x-message-id': 'm-1' });
    const c = await JsonWsClient.connect(broker.url);
    try {
      await c.subscribe('s', '/queue/parked', {});
      const [m] = await c.messages(1, 's', 3000);
      expect(m.payload).toBe('keep-me');
      expect(m.properties).toMatchObject({ content_type: 'text/plain', message_id: 'm-1' });
    } finally {
      c.ws.terminate();
      // Whatever happened to that message, the shard must still answer and deliver.
      const health = await request(`${broker.url}/healthz`, {}, 3000);
      expect(health.status, `healthz after delivering a parked message: ${health.text}`).toBe(200);
    }
  });
});
