import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Broker } from '../../src/front/broker.js';
import { connect, type Message, type ShardmqClient } from '../../src/index.js';
import { startBroker } from '../helpers/broker.js';

let broker: Broker;
let client: ShardmqClient;
beforeAll(async () => {
  broker = await startBroker();
  client = await connect(broker.url, { reconnect: false });
});
afterAll(async () => {
  await client?.close();
  await broker?.stop();
});

const offsetOf = (m: Message): number => Number(m.properties.headers?.['x-stream-offset']);

/** Takes `n` messages from a fresh subscription; resolves with them once all came (bounded). */
async function take(c: ShardmqClient, n: number, options: Parameters<ShardmqClient['subscribe']>[1]): Promise<Message[]> {
  const got: Message[] = [];
  let done: () => void = () => undefined;
  const all = new Promise<void>((r) => {
    done = r;
  });
  const sub = await c.subscribe('/queue/readings', options, (m) => {
    got.push(m);
    if (got.length === n) done();
  });
  await Promise.race([all, new Promise((r) => setTimeout(r, 10_000))]);
  await sub.unsubscribe();
  return got;
}

describe('e2e - stream queues through the exported client (binary protocol)', () => {
  it('declares a stream, reads it from first, from an offset and from a Date, commits and resumes from "stored" on another client', async () => {
    await client.declareQueue('readings', { durable: true, arguments: { 'x-queue-type': 'stream' } });
    for (let i = 0; i < 1000; i++) await client.publish('/queue/readings', `r${i}`);
    const all = await take(client, 1000, { offset: 'first' });
    expect(all.map(offsetOf)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    expect(all.map((m) => m.text())).toEqual(Array.from({ length: 1000 }, (_, i) => `r${i}`));
    expect(all.map((m) => m.offset)).toEqual(all.map(offsetOf));
    const tail = await take(client, 100, { offset: 900 });
    expect(tail.map(offsetOf)).toEqual(Array.from({ length: 100 }, (_, i) => 900 + i));
    const sinceEpoch = await take(client, 1000, { offset: new Date(0) });
    expect(sinceEpoch.length).toBe(1000);

    // A named consumer commits 599, and another client resumes after it.
    const got: Message[] = [];
    const sub = await client.subscribe('/queue/readings', { offset: 'first', consumerName: 'ingest' }, (m) => {
      got.push(m);
    });
    for (let t = 0; t < 100 && got.length < 1000; t++) await new Promise((r) => setTimeout(r, 20));
    await sub.commit(599);
    await sub.unsubscribe();
    const other = await connect(broker.url, { reconnect: false });
    try {
      const resumed = await take(other, 400, { offset: 'stored', consumerName: 'ingest' });
      expect(resumed.map(offsetOf)).toEqual(Array.from({ length: 400 }, (_, i) => 600 + i));
    } finally {
      await other.close();
    }
  });

  it('refuses a bad offset, a commit on a classic queue and a negative commit, with precise errors', async () => {
    await expect(client.subscribe('/queue/readings', { offset: 'begin' })).rejects.toMatchObject({ code: 'precondition_failed' });
    await client.declareQueue('classic.jobs');
    const sub = await client.subscribe('/queue/classic.jobs', {});
    await expect(sub.commit(1)).rejects.toMatchObject({ code: 'precondition_failed' });
    await expect(sub.commit(-1)).rejects.toThrow(RangeError);
    await sub.unsubscribe();
  });
});
