import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Broker } from '../../src/front/broker.js';
import { connect, type ShardmqClient } from '../../src/index.js';
import { startBroker } from '../helpers/broker.js';
import { JsonWsClient } from '../helpers/ws-client.js';

// Issue 18, item 1: a subscriber allowed `/topic/public.*` must not widen it with its own `#` or
// `*`, over any protocol or through a binding.
const dir = mkdtempSync(join(tmpdir(), 'shardmq-perm-'));
const READER = 'public-reader-token';
const ADMIN = 'admin-token-123';
const PLAIN = 'plain-token-123';
const WATCHER = 'watcher-token-1';
const WIDER = ['/topic/public.#', '/topic/#', '/topic/*', '/topic/*.*', '/exchange/amq.topic/public.#', '/exchange/amq.topic/#'];
const ALLOWED = ['/topic/public.*', '/topic/public.a', '/exchange/amq.topic/public.b'];

let broker: Broker;
let reader: ShardmqClient;
beforeAll(async () => {
  const users = join(dir, 'users.json');
  writeFileSync(
    users,
    JSON.stringify({
      users: [
        // `manage` so that bindings are reachable at all: the subscribe right must still bound them.
        { name: 'reader', token: READER, publish: [], subscribe: ['/topic/public.*', '/queue/mine.*'], manage: true },
        { name: 'admin', token: ADMIN, publish: ['#'], subscribe: ['#'], manage: true },
        { name: 'plain', token: PLAIN, publish: ['/queue/plain.*'], subscribe: ['/queue/plain.*'] },
        { name: 'watcher', token: WATCHER, publish: [], subscribe: [], monitor: true },
      ],
    }),
  );
  broker = await startBroker({ 'users-file': users });
  reader = await connect(`${broker.url}/?token=${READER}`, { reconnect: false });
});
afterAll(async () => {
  await reader?.close();
  await broker?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('e2e - permissions are a subset, not a match', () => {
  it('JSON: wider patterns are refused with access_refused; the allowed ones and their instances work', async () => {
    const ws = await JsonWsClient.connect(broker.url, READER);
    for (const [i, destination] of WIDER.entries()) {
      const answer = await ws.request({ op: 'subscribe', id: `w${i}`, destination });
      expect(answer, destination).toMatchObject({ op: 'error', code: 'access_refused' });
    }
    for (const [i, destination] of ALLOWED.entries()) {
      expect(await ws.request({ op: 'subscribe', id: `a${i}`, destination }), destination).toMatchObject({ op: 'receipt' });
    }
    // Nothing beyond public.<one word> reaches the reader, through any of its subscriptions.
    const admin = await connect(`${broker.url}/?token=${ADMIN}`, { reconnect: false });
    try {
      for (const key of ['public.secret.deep', 'public', 'other.a', 'public.a']) await admin.publish(`/topic/${key}`, key);
    } finally {
      await admin.close();
    }
    const got = await ws.take((f) => f.op === 'message');
    expect(got.destination).toBe('/topic/public.a');
    await new Promise((r) => setTimeout(r, 200));
    expect(ws.frames.filter((f) => f.op === 'message').map((f) => f.payload)).toEqual(['public.a']);
    ws.ws.close();
  });

  it('binary: wider patterns are refused; allowed ones are accepted', async () => {
    for (const destination of WIDER) {
      await expect(reader.subscribe(destination), destination).rejects.toMatchObject({ code: 'access_refused' });
    }
    for (const destination of ALLOWED) {
      const sub = await reader.subscribe(destination);
      await sub.unsubscribe();
    }
  });

  it('bindings: binary and HTTP bindings take the subscribe right on their source', async () => {
    await reader.declareQueue('mine.q');
    await reader.declareExchange('mine.x', 'topic');
    for (const key of ['public.#', '#', '*']) {
      await expect(reader.bindQueue('mine.q', 'amq.topic', key), key).rejects.toMatchObject({ code: 'access_refused' });
      await expect(reader.bindExchange('mine.x', 'amq.topic', key), key).rejects.toMatchObject({ code: 'access_refused' });
    }
    await reader.bindQueue('mine.q', 'amq.topic', 'public.a');
    await reader.bindExchange('mine.x', 'amq.topic', 'public.*');

    const bind = (key: string, type = 'queue', destination = 'mine.q'): Promise<Response> =>
      fetch(`${broker.url}/v1/bindings`, {
        method: 'POST',
        headers: { authorization: `Bearer ${READER}`, 'content-type': 'application/json' },
        body: JSON.stringify({ source: 'amq.topic', destination, destination_type: type, routing_key: key }),
      });
    for (const key of ['public.#', '#']) {
      const res = await bind(key);
      expect(res.status, key).toBe(403);
      expect(((await res.json()) as { error: string }).error).toBe('access_refused');
      expect((await bind(key, 'exchange', 'mine.x')).status, key).toBe(403);
    }
    expect((await bind('public.b')).status).toBe(201);
    // Only the allowed bindings exist.
    const bindings = (await (await fetch(`${broker.url}/v1/bindings`, { headers: { authorization: `Bearer ${ADMIN}` } })).json()) as Array<{
      source: string;
      routing_key: string;
    }>;
    expect(
      bindings
        .filter((b) => b.source === 'amq.topic')
        .map((b) => b.routing_key)
        .sort(),
    ).toEqual(['public.*', 'public.a', 'public.b']);
  });
});

describe('e2e - who sees what', () => {
  const get = (path: string, token: string): Promise<Response> =>
    fetch(`${broker.url}${path}`, { headers: { authorization: `Bearer ${token}` } });

  it('/v1/stats, /v1/stats/latency and /metrics need monitor (manage implies it); without it 403', async () => {
    for (const path of ['/v1/stats', '/v1/stats/latency', '/metrics']) {
      const refused = await get(path, PLAIN);
      expect(refused.status, path).toBe(403);
      expect(((await refused.json()) as { error: string }).error).toBe('access_refused');
      expect((await get(path, WATCHER)).status, path).toBe(200);
      expect((await get(path, ADMIN)).status, path).toBe(200);
      expect((await get(path, READER)).status, path).toBe(200); // a manager
    }
  });

  it("/v1/me shows a user its own connections and subscriptions, nobody else's", async () => {
    const mine = await JsonWsClient.connect(broker.url, PLAIN);
    await mine.subscribe('p', '/queue/plain.jobs');
    const other = await JsonWsClient.connect(broker.url, WATCHER);
    const me = (await (await get('/v1/me', PLAIN)).json()) as {
      user: string;
      monitor: boolean;
      connections: Array<{ subscriptions: Array<{ destination: string }> }>;
    };
    expect(me.user).toBe('plain');
    expect(me.monitor).toBe(false);
    expect(me.connections).toHaveLength(1);
    expect(me.connections[0].subscriptions.map((s) => s.destination)).toEqual(['/queue/plain.jobs']);
    const theirs = (await (await get('/v1/me', WATCHER)).json()) as { connections: Array<{ subscriptions: unknown[] }> };
    expect(theirs.connections).toHaveLength(1);
    expect(theirs.connections[0].subscriptions).toEqual([]);
    await mine.close();
    await other.close();
  });
});
