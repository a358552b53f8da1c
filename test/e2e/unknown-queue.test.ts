/**
 * Publishing to `/amq/queue/<name>` names a queue that must exist: a missing one is `not_found`
 * on every protocol (it was accepted and silently counted unroutable).
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
  broker = await startBroker({ shards: '2' });
  client = await connect(broker.url, { reconnect: false });
});
afterAll(async () => {
  await client?.close();
  await broker?.stop();
});

describe('e2e - publishing to a queue that does not exist', () => {
  it('HTTP: 404 not_found, and nothing is counted as accepted', async () => {
    const a = await request(`${broker.url}/v1/publish/amq/queue/missing`, { method: 'POST', body: 'x' });
    expect(a.status).toBe(404);
    expect(a.json).toMatchObject({ error: 'not_found' });
    expect((await request(`${broker.url}/v1/queues/missing`)).status).toBe(404);
  });

  it('JSON: an error op for that publish, with its receipt', async () => {
    const ws = await JsonWsClient.connect(broker.url);
    expect(await ws.request({ op: 'publish', destination: '/amq/queue/missing', payload: 'x' })).toMatchObject({
      op: 'error',
      code: 'not_found',
    });
    await ws.close();
  });

  it('binary: the publish is refused with not_found; an existing queue still takes messages', async () => {
    await expect(client.publish('/amq/queue/missing', 'x')).rejects.toMatchObject({ code: 'not_found' });
    await client.declareQueue('present');
    await client.publish('/amq/queue/present', 'x');
    expect(await settledDepth(broker.url, 'present', 1)).toBe(1);
  });
});
