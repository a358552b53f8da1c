/**
 * Issue 12, item 3: a legal NDJSON batch larger than a shard's ring and overflow, on a broker that
 * keeps up, is accepted whole: the front waits (bounded by --publish-wait-ms) for the shard to
 * drain instead of answering 503 part-way. Only a broker that stays full refuses, with the
 * accepted prefix.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Broker } from '../../src/front/broker.js';
import { startBroker } from '../helpers/broker.js';
import { publishNdjson, settledDepth } from '../helpers/http.js';

let broker: Broker | undefined;
afterEach(async () => {
  await broker?.stop();
  broker = undefined;
});

const batch = (n: number, tag: string): string[] =>
  Array.from({ length: n }, (_, i) => `${tag}-${String(i).padStart(6, '0')}-${'x'.repeat(89)}`);

describe('e2e - HTTP publish waits for ring space, then answers', () => {
  it('90,000 lines of 100 bytes (9 MB) on an idle broker with default limits: 200, all 90,000 in the queue', async () => {
    broker = await startBroker();
    const lines = batch(90_000, 'big');
    expect(lines[0].length).toBe(100);
    const a = await publishNdjson(broker.url, '/queue/big-batch', lines, 30_000);
    expect(a.status, a.text.slice(0, 200)).toBe(200);
    expect(a.json).toEqual({ accepted: 90_000 });
    expect(await settledDepth(broker.url, 'big-batch', 90_000)).toBe(90_000);
  });

  it('a batch far beyond a tiny ring and overflow still goes in whole while the shard drains', async () => {
    broker = await startBroker({ 'ring-bytes': '65536', 'overflow-bytes': '65536', 'max-message-bytes': '4096' });
    const a = await publishNdjson(broker.url, '/queue/small-ring', batch(20_000, 'small'), 30_000);
    expect(a.status, a.text.slice(0, 200)).toBe(200);
    expect(await settledDepth(broker.url, 'small-ring', 20_000)).toBe(20_000);
  });

  it('with --publish-wait-ms 0 the same batch is refused part-way with the accepted prefix, and exactly that prefix is queued', async () => {
    broker = await startBroker({ 'ring-bytes': '65536', 'overflow-bytes': '65536', 'max-message-bytes': '4096', 'publish-wait-ms': '0' });
    const a = await publishNdjson(broker.url, '/queue/no-wait', batch(20_000, 'nowait'), 30_000);
    expect(a.status).toBe(503);
    expect(a.headers.get('retry-after')).toMatch(/^\d+$/);
    const accepted = a.json?.accepted as number;
    expect(accepted).toBeGreaterThan(0);
    expect(accepted).toBeLessThan(20_000);
    expect(await settledDepth(broker.url, 'no-wait', accepted)).toBe(accepted);
  });
});
