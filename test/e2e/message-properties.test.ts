/**
 * Issue 18, items 4 and 5: one set of value rules for message properties on every publish path
 * (refused with precondition_failed, nothing enqueued), and one meaning of ack tag 0 + multiple.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Broker } from '../../src/front/broker.js';
import { connect, type ShardmqClient } from '../../src/index.js';
import { startBroker } from '../helpers/broker.js';
import { request, settledDepth } from '../helpers/http.js';
import { JsonWsClient } from '../helpers/ws-client.js';

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

/** Ready messages in a queue once the shard has queued what was accepted; 0 when it was never declared. */
const depth = (queue: string, expected = 0): Promise<number> => settledDepth(broker.url, queue, expected);
const deepHeaders = (levels: number): Record<string, unknown> => {
  let h: Record<string, unknown> = { leaf: 1 };
  for (let i = 0; i < levels; i++) h = { nested: h };
  return h;
};

describe('e2e - invalid message properties are refused on every path', () => {
  it('HTTP: expiration, priority and delivery mode headers', async () => {
    const post = (headers: Record<string, string>) =>
      request(`${broker.url}/v1/publish/queue/props-http`, { method: 'POST', body: 'x', headers });
    const refused: Array<Record<string, string>> = [
      { 'x-expiration': 'abc' },
      { 'x-expiration': '-5' },
      { 'x-expiration': '99999999999999999999' },
      { 'x-expiration': '4294967296' },
      { 'x-expiration': '1.5' },
      { 'x-priority': '' },
      { 'x-priority': '0x10' },
      { 'x-priority': '1e2' },
      { 'x-priority': '256' },
      { 'x-priority': '-1' },
      { 'x-delivery-mode': '3' },
    ];
    for (const headers of refused) {
      const a = await post(headers);
      expect(a.status, JSON.stringify(headers)).toBe(406);
      expect(a.json, JSON.stringify(headers)).toMatchObject({ error: 'precondition_failed' });
    }
    expect(await depth('props-http')).toBe(0);
    const accepted: Array<Record<string, string>> = [
      { 'x-expiration': '4294967295' },
      { 'x-expiration': '60000' },
      { 'x-priority': '255' },
      { 'x-delivery-mode': '1' },
    ];
    for (const headers of accepted) {
      expect((await post(headers)).status, JSON.stringify(headers)).toBe(200);
    }
    expect(await depth('props-http', 4)).toBe(4);
  });

  it('JSON: the same rules, and header tables nested too deep', async () => {
    const ws = await JsonWsClient.connect(broker.url);
    const refused: Array<Record<string, unknown>> = [
      { expiration: 'abc' },
      { expiration: '-5' },
      { expiration: -5 },
      { expiration: 1.5 },
      { expiration: '9'.repeat(26) },
      { priority: 256 },
      { priority: 1.5 },
      { delivery_mode: 3 },
      { headers: deepHeaders(20) },
    ];
    for (const properties of refused) {
      const answer = await ws.request({ op: 'publish', destination: '/queue/props-json', payload: 'x', properties });
      expect(answer, JSON.stringify(properties).slice(0, 60)).toMatchObject({ op: 'error', code: 'precondition_failed' });
    }
    expect(await depth('props-json')).toBe(0);
    expect(
      await ws.request({
        op: 'publish',
        destination: '/queue/props-json',
        payload: 'x',
        properties: { expiration: '60000', priority: 3, headers: deepHeaders(3) },
      }),
    ).toMatchObject({
      op: 'receipt',
    });
    expect(await depth('props-json', 1)).toBe(1);
    await ws.close();
  });

  it('binary: an invalid expiration is refused for that publish; the connection goes on', async () => {
    for (const expiration of ['abc', '-5', '9'.repeat(26), '4294967296', '']) {
      await expect(client.publish('/queue/props-bin', 'x', { properties: { expiration } }), expiration).rejects.toMatchObject({
        code: 'precondition_failed',
      });
    }
    expect(await depth('props-bin')).toBe(0);
    await client.publish('/queue/props-bin', 'x', { properties: { expiration: '4294967295', deliveryMode: 2 } });
    expect(await depth('props-bin', 1)).toBe(1);
  });
});

describe('e2e - ack tag 0 with multiple', () => {
  it('JSON: settles every outstanding delivery, as the binary protocol does', async () => {
    const ws = await JsonWsClient.connect(broker.url);
    for (let i = 0; i < 5; i++)
      expect((await request(`${broker.url}/v1/publish/queue/ack-all`, { method: 'POST', body: `m${i}` })).status).toBe(200);
    await ws.subscribe('s', '/queue/ack-all', { ack: 'client', prefetch: 10 });
    expect(await ws.messages(5, 's')).toHaveLength(5);
    ws.send({ op: 'ack', tag: 0, multiple: true });
    // Closing would requeue anything still unacked: after it, the queue must be empty.
    await new Promise((r) => setTimeout(r, 200));
    await ws.close();
    await new Promise((r) => setTimeout(r, 200));
    expect(await depth('ack-all')).toBe(0);
    expect(ws.frames.filter((f) => f.op === 'error')).toEqual([]);
  });
});
