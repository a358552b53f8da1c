/**
 * Issue 19: virtual hosts. Two tenants declare the same names with different arguments and never
 * see each other's messages, over HTTP, JSON and binary WebSocket and AMQP; rights are per vhost;
 * a vhost's limits refuse only that vhost; deleting a vhost closes its connections and deletes
 * what it holds.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import amqp from 'amqplib';
import WebSocket from 'ws';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Broker } from '../../src/front/broker.js';
import { connect } from '../../src/index.js';
import { startBroker } from '../helpers/broker.js';
import { request, waitFor } from '../helpers/http.js';
import { JsonWsClient } from '../helpers/ws-client.js';
import { RawAmqp } from '../helpers/amqp-raw.js';

const dir = mkdtempSync(join(tmpdir(), 'shardmq-vhosts-'));
const ADMIN = 'admin-token-123';
const TENANT = 'tenant-token-1';
const TENANT_PUBLISHER = 'tenant-pub-tkn';
let broker: Broker;

beforeAll(async () => {
  const users = join(dir, 'users.json');
  writeFileSync(
    users,
    JSON.stringify({
      users: [
        {
          name: 'admin',
          token: ADMIN,
          publish: ['#'],
          subscribe: ['#'],
          manage: true,
          vhosts: {
            staging: { publish: ['#'], subscribe: ['#'], manage: true },
            limited: { publish: ['#'], subscribe: ['#'], manage: true },
            gone: { publish: ['#'], subscribe: ['#'], manage: true },
          },
        },
        // Rights in staging only: refused in `/`.
        { name: 'tenant', token: TENANT, vhosts: { staging: { publish: ['#'], subscribe: ['#'], manage: true } } },
        { name: 'tenant-pub', token: TENANT_PUBLISHER, vhosts: { staging: { publish: ['/queue/orders'] } } },
      ],
    }),
  );
  broker = await startBroker({ 'users-file': users, shards: '2' });
  for (const name of ['staging', 'limited', 'gone']) {
    const put = await api('PUT', `/v1/vhosts/${name}`, {});
    expect(put.status, JSON.stringify(put.json)).toBe(201);
  }
});
afterAll(async () => {
  await broker?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function api(method: string, path: string, body?: unknown, token = ADMIN) {
  return request(`${broker.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

/** A GET answer's JSON array (the request helper parses objects only). */
async function list(path: string, token = ADMIN): Promise<Array<Record<string, unknown>>> {
  const answer = await api('GET', path, undefined, token);
  return JSON.parse(answer.text) as Array<Record<string, unknown>>;
}

/** The connection.close an AMQP connection.open of `vhost` gets (amqplib does not show its text). */
async function openRefusal(vhost: string, user = 'admin', token = ADMIN): Promise<{ code: number; text: string }> {
  const c = await RawAmqp.open(broker.amqpPort ?? 0);
  try {
    c.startFrames();
    c.write(Buffer.from('AMQP\x00\x00\x09\x01', 'latin1'));
    await c.method('connection.start');
    c.send(0, 'connection.start-ok', {
      clientProperties: {},
      mechanism: 'PLAIN',
      response: Buffer.from(`\0${user}\0${token}`),
      locale: 'en_US',
    });
    await c.method('connection.tune');
    c.send(0, 'connection.tune-ok', { channelMax: 0, frameMax: 131072, heartbeat: 0 });
    c.send(0, 'connection.open', { virtualHost: vhost });
    const close = await c.connectionClose();
    return { code: close.code, text: close.text };
  } finally {
    c.close();
  }
}

function amqpUrl(vhost: string, user = 'admin', token = ADMIN): string {
  return `amqp://${user}:${token}@127.0.0.1:${broker.amqpPort}/${encodeURIComponent(vhost)}`;
}

describe('e2e - vhosts: one name in two vhosts is two objects', () => {
  it('`orders` is declared in / and in staging with different arguments; each vhost lists only its own', async () => {
    expect((await api('PUT', '/v1/queues/orders', { durable: false, arguments: { 'x-max-length': 100 } })).status).toBe(201);
    // RabbitMQ's path form, %2F for '/': a different vhost, so a different queue (201, no inequivalence).
    const staged = await api('PUT', '/v1/queues/staging/orders', { durable: false, arguments: { 'x-message-ttl': 60_000 } });
    expect(staged.status, staged.text).toBe(201);
    const root = await api('GET', '/v1/queues/%2F/orders');
    expect(root.json).toMatchObject({ name: 'orders', vhost: '/', arguments: { 'x-max-length': 100 } });
    const other = await api('GET', '/v1/queues/orders?vhost=staging');
    expect(other.json).toMatchObject({ name: 'orders', vhost: 'staging', arguments: { 'x-message-ttl': 60_000 } });
    // Redeclaring staging's with /'s arguments is inequivalent there, and only there.
    const clash = await api('PUT', '/v1/queues/orders?vhost=staging', { durable: false, arguments: { 'x-max-length': 100 } });
    expect(clash.status).toBe(406);
    expect(clash.json?.message).toContain("for queue 'orders' in vhost 'staging'");
    const pageOfStaging = await api('GET', '/v1/queues?vhost=staging&page=1&page_size=100');
    expect(((pageOfStaging.json?.items as Array<{ name: string; vhost: string }> | undefined) ?? []).map((q) => [q.vhost, q.name])).toEqual(
      [['staging', 'orders']],
    );
    const listOfRoot = (await api('GET', '/v1/queues')).text;
    expect(JSON.parse(listOfRoot).map((q: { vhost: string }) => q.vhost)).not.toContain('staging');
    // Every vhost has its own amq.* exchanges; a name holding the separator names nothing.
    const exchanges = (await list('/v1/exchanges?vhost=staging')) as Array<{ name: string; vhost: string }>;
    expect(exchanges.map((x) => x.name)).toEqual(expect.arrayContaining(['', 'amq.direct', 'amq.topic', 'amq.fanout', 'amq.headers']));
    expect(exchanges.every((x) => x.vhost === 'staging')).toBe(true);
    expect((await api('GET', `/v1/queues/${encodeURIComponent('staging\u001forders')}`)).status).toBe(404);
  });

  it('HTTP, JSON, binary and AMQP: messages to `orders` and to /topic/ stay in their vhost', async () => {
    const rootWs = await JsonWsClient.connect(broker.url, ADMIN);
    const stagingWs = await JsonWsClient.connect(broker.url, ADMIN, 'staging');
    await rootWs.subscribe('q', '/queue/orders');
    await stagingWs.subscribe('q', '/queue/orders');
    await rootWs.subscribe('t', '/topic/sensors.#');
    await stagingWs.subscribe('t', '/topic/sensors.#');
    const stagingBinary = await connect(`${broker.url}/?token=${ADMIN}`, { vhost: 'staging', reconnect: false });
    const rootBinary = await connect(`${broker.url}/?token=${ADMIN}`, { reconnect: false });
    const amqpStaging = await amqp.connect(amqpUrl('staging'));
    const amqpRoot = await amqp.connect(amqpUrl('/'));
    try {
      const binaryGot: string[] = [];
      await stagingBinary.subscribe('/topic/sensors.#', {}, (m) => {
        binaryGot.push(`${m.destination} ${m.text()}`);
      });
      const chS = await amqpStaging.createChannel();
      const chR = await amqpRoot.createChannel();
      const { queue: amqpTopicS } = await chS.assertQueue('', { exclusive: true });
      await chS.bindQueue(amqpTopicS, 'amq.topic', 'sensors.#');
      const amqpGot: Array<{ exchange: string; key: string; body: string }> = [];
      await chS.consume(
        amqpTopicS,
        (m) => {
          if (m !== null) amqpGot.push({ exchange: m.fields.exchange, key: m.fields.routingKey, body: m.content.toString() });
        },
        { noAck: true },
      );

      // One message per protocol into each vhost's `orders` and topic.
      const post = (path: string, body: string) =>
        request(`${broker.url}${path}`, { method: 'POST', body, headers: { authorization: `Bearer ${ADMIN}` } });
      expect((await post('/v1/publish/queue/orders?vhost=staging', 'http-staging')).status).toBe(200);
      expect((await post('/v1/publish/queue/orders', 'http-root')).status).toBe(200);
      expect((await post('/v1/publish/topic/sensors.a?vhost=staging', 'topic-http-staging')).status).toBe(200);
      await stagingBinary.publish('/queue/orders', 'binary-staging');
      await rootBinary.publish('/queue/orders', 'binary-root');
      await rootBinary.publish('/topic/sensors.b', 'topic-binary-root');
      chS.sendToQueue('orders', Buffer.from('amqp-staging'));
      chR.sendToQueue('orders', Buffer.from('amqp-root'));
      chS.publish('amq.topic', 'sensors.c', Buffer.from('topic-amqp-staging'));
      expect((await stagingWs.request({ op: 'publish', destination: '/queue/orders', payload: 'json-staging' })).op).toBe('receipt');

      // Named as staging's clients name the queue (its qualified name never reaches a client).
      const stagingOrders = (await stagingWs.messages(4, 'q')).map((f) => `${f.destination} ${f.payload}`).sort();
      expect(stagingOrders).toEqual(['amqp-staging', 'binary-staging', 'http-staging', 'json-staging'].map((p) => `/queue/orders ${p}`));
      const rootOrders = (await rootWs.messages(3, 'q')).map((f) => f.payload).sort();
      expect(rootOrders).toEqual(['amqp-root', 'binary-root', 'http-root']);
      const stagingTopic = (await stagingWs.messages(2, 't')).map((f) => `${f.destination} ${f.payload}`).sort();
      expect(stagingTopic).toEqual(['/topic/sensors.a topic-http-staging', '/topic/sensors.c topic-amqp-staging']);
      const rootTopic = (await rootWs.messages(1, 't')).map((f) => `${f.destination} ${f.payload}`);
      expect(rootTopic).toEqual(['/topic/sensors.b topic-binary-root']);
      await waitFor(() => binaryGot.length >= 2 && amqpGot.length >= 2, 5000, 'the binary and AMQP topic subscribers');
      expect(binaryGot.sort()).toEqual(['/topic/sensors.a topic-http-staging', '/topic/sensors.c topic-amqp-staging']);
      // AMQP names the exchange as the vhost's clients do: amq.topic, not its qualified name.
      expect(amqpGot.map((m) => `${m.exchange} ${m.key} ${m.body}`).sort()).toEqual([
        'amq.topic sensors.a topic-http-staging',
        'amq.topic sensors.c topic-amqp-staging',
      ]);
      // Nothing more arrives anywhere: no message crossed.
      await new Promise((r) => setTimeout(r, 150));
      expect(stagingWs.frames.filter((f) => f.op === 'message')).toEqual([]);
      expect(rootWs.frames.filter((f) => f.op === 'message')).toEqual([]);
      expect(binaryGot.length).toBe(2);
      // AMQP reads staging's `orders` empty now, and the default exchange is '' on delivery.
      await chS.purgeQueue('orders');
      chS.sendToQueue('orders', Buffer.from('again'));
      await waitFor(async () => (await stagingWs.take((f) => f.op === 'message', 2000)).payload === 'again', 5000, 'again');
    } finally {
      await amqpStaging.close();
      await amqpRoot.close();
      await stagingBinary.close();
      await rootBinary.close();
      rootWs.ws.close();
      stagingWs.ws.close();
    }
  });

  it('exchanges and bindings are per vhost: the same exchange name routes to its own vhost`s queues', async () => {
    for (const vhost of ['/', 'staging']) {
      const v = encodeURIComponent(vhost);
      expect((await api('PUT', `/v1/exchanges/${v}/events`, { type: 'fanout', durable: false })).status).toBe(201);
      expect((await api('PUT', `/v1/queues/${v}/events-q`, { durable: false })).status).toBe(201);
      const bound = await api('POST', `/v1/bindings?vhost=${v}`, { source: 'events', destination: 'events-q', routing_key: '' });
      expect(bound.status, bound.text).toBe(201);
    }
    const bindings = await list('/v1/bindings?vhost=staging');
    expect(bindings).toContainEqual(expect.objectContaining({ source: 'events', destination: 'events-q', vhost: 'staging' }));
    const post = await request(`${broker.url}/v1/publish/exchange/events/k?vhost=staging`, {
      method: 'POST',
      body: 'to-staging',
      headers: { authorization: `Bearer ${ADMIN}` },
    });
    expect(post.status).toBe(200);
    const staging = await waitForDepth('staging', 'events-q', 1);
    const root = await waitForDepth('/', 'events-q', 0);
    expect([staging, root]).toEqual([1, 0]);
  });
});

describe('e2e - vhosts: a restarted shard', () => {
  it('reads a vhost`s publishes right after a crash and restart (the vhost numbers come with its spawn)', async () => {
    expect((await api('PUT', '/v1/queues/staging/after-restart', { durable: false })).status).toBe(201);
    const bound = await api('POST', '/v1/bindings?vhost=staging', {
      source: 'amq.topic',
      destination: 'after-restart',
      routing_key: 'ar.#',
    });
    expect(bound.status, bound.text).toBe(201);
    for (const shard of [0, 1]) await broker.supervisor.crash(shard);
    await waitFor(async () => (await fetch(`${broker.url}/healthz`)).status === 200, 10_000, 'both shards back');
    const publish = (path: string) =>
      request(`${broker.url}${path}`, { method: 'POST', body: 'after', headers: { authorization: `Bearer ${ADMIN}` } });
    expect((await publish('/v1/publish/topic/ar.x?vhost=staging')).status).toBe(200);
    expect((await publish('/v1/publish/queue/after-restart?vhost=staging')).status).toBe(200);
    expect(await waitForDepth('staging', 'after-restart', 2)).toBe(2);
    // `/` has no such queue: nothing crossed.
    expect((await api('GET', '/v1/queues/%2F/after-restart')).status).toBe(404);
  });
});

async function waitForDepth(vhost: string, queue: string, expected: number): Promise<number> {
  let depth = -1;
  await waitFor(
    async () => {
      const q = await api('GET', `/v1/queues/${encodeURIComponent(vhost)}/${queue}`);
      depth = Number(q.json?.messages_ready ?? -1);
      return depth === expected;
    },
    5000,
    `${queue} in ${vhost} to hold ${expected}`,
  );
  return depth;
}

describe('e2e - vhosts: the CLI', () => {
  it('shardmq pub --vhost publishes into that vhost`s queue, and sub --vhost reads it there', async () => {
    // Spawned, not spawnSync: the broker runs in this process and must go on answering.
    const cli = (...args: string[]) =>
      new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
        const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args, '--url', `${broker.url}/?token=${ADMIN}`]);
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d: Buffer) => {
          stdout += d.toString();
        });
        child.stderr.on('data', (d: Buffer) => {
          stderr += d.toString();
        });
        const timer = setTimeout(() => child.kill(), 30_000);
        child.on('close', (status) => {
          clearTimeout(timer);
          resolve({ status, stdout, stderr });
        });
      });
    const pub = await cli('pub', '--vhost', 'staging', '/queue/cli-q', 'from the cli');
    expect(pub.status, pub.stderr).toBe(0);
    const sub = await cli('sub', '--vhost', 'staging', '/queue/cli-q', '--count', '1');
    expect(sub.status, sub.stderr).toBe(0);
    expect(sub.stdout).toContain('from the cli');
    // Nothing of it in '/': the queue there does not even exist.
    expect((await api('GET', '/v1/queues/cli-q')).status).toBe(404);
  });
});

describe('e2e - vhosts: rights per vhost', () => {
  it('a user with rules only in staging is refused in / on every protocol, and works in staging', async () => {
    const http = await api('GET', '/v1/queues', undefined, TENANT);
    expect(http.status).toBe(403);
    expect(http.json?.message).toBe("access to vhost '/' refused for user 'tenant'");
    const post = await request(`${broker.url}/v1/publish/queue/orders`, {
      method: 'POST',
      body: 'x',
      headers: { authorization: `Bearer ${TENANT}` },
    });
    expect(post.status).toBe(403);
    expect((await api('GET', '/v1/queues?vhost=staging', undefined, TENANT)).status).toBe(200);
    await expect(JsonWsClient.connect(broker.url, TENANT)).rejects.toThrow(/403/);
    const ws = await JsonWsClient.connect(broker.url, TENANT, 'staging');
    expect((await ws.request({ op: 'publish', destination: '/queue/orders', payload: 'tenant' })).op).toBe('receipt');
    ws.ws.close();
    expect(await openRefusal('/', 'tenant', TENANT)).toEqual({
      code: 530,
      text: "NOT_ALLOWED - access to vhost '/' refused for user 'tenant'",
    });
    const conn = await amqp.connect(amqpUrl('staging', 'tenant', TENANT));
    await conn.close();
    // A vhost that does not exist: 404 over HTTP and WebSocket, 530 over AMQP.
    expect((await api('GET', '/v1/queues?vhost=nowhere')).status).toBe(404);
    expect(await openRefusal('nowhere')).toEqual({ code: 530, text: "NOT_ALLOWED - vhost 'nowhere' not found" });
    // Within staging the tenant's publisher has its own patterns.
    const denied = await request(`${broker.url}/v1/publish/queue/other?vhost=staging`, {
      method: 'POST',
      body: 'x',
      headers: { authorization: `Bearer ${TENANT_PUBLISHER}` },
    });
    expect(denied.status).toBe(403);
    // Creating a vhost takes manage in '/': the tenant may not, even with manage in staging.
    expect((await api('PUT', '/v1/vhosts/mine', {}, TENANT)).status).toBe(403);
    // The tenant lists the vhosts it may monitor: staging only.
    const listed = await list('/v1/vhosts', TENANT);
    expect(listed.map((v) => v.name)).toEqual(['staging']);
  });
});

describe('e2e - vhosts: limits refuse the tenant, not the others', () => {
  it('max-queues: the vhost at its limit refuses the next declare (406); / declares freely', async () => {
    expect((await api('PUT', '/v1/vhosts/limited', { limits: { 'max-queues': 2 } })).json).toMatchObject({ limits: { 'max-queues': 2 } });
    expect((await api('PUT', '/v1/queues/limited/a', { durable: false })).status).toBe(201);
    expect((await api('PUT', '/v1/queues/limited/b', { durable: false })).status).toBe(201);
    const third = await api('PUT', '/v1/queues/limited/c', { durable: false });
    expect(third.status).toBe(406);
    expect(third.json?.message).toBe("cannot declare queue 'c': queue limit in virtual host 'limited' is reached");
    // The same over AMQP: a channel error 406.
    const conn = await amqp.connect(amqpUrl('limited'));
    const ch = await conn.createChannel();
    const closed = new Promise<Error>((resolve) => ch.on('error', resolve));
    await expect(ch.assertQueue('d')).rejects.toThrow(/PRECONDITION_FAILED - cannot declare queue 'd'/);
    await closed;
    await conn.close();
    for (let i = 0; i < 5; i++) expect((await api('PUT', `/v1/queues/free-${i}`, { durable: false })).status).toBe(201);
  });

  it('max-connections: the next connection to the vhost is refused with the limit named', async () => {
    expect((await api('PUT', '/v1/vhosts/limited', { limits: { 'max-connections': 1 } })).json).toMatchObject({
      limits: { 'max-queues': 2, 'max-connections': 1 },
    });
    const first = await JsonWsClient.connect(broker.url, ADMIN, 'limited');
    const refused = await upgradeStatus(`/v1/ws?token=${ADMIN}&vhost=limited`);
    expect(refused).toEqual({ status: 403, body: expect.stringContaining("connection limit (1) is reached for vhost 'limited'") });
    expect(await openRefusal('limited')).toEqual({
      code: 530,
      text: "NOT_ALLOWED - connection limit (1) is reached for vhost 'limited' (max-connections)",
    });
    // Other vhosts are untouched.
    const other = await JsonWsClient.connect(broker.url, ADMIN, 'staging');
    other.ws.close();
    first.ws.close();
    await first.closed;
    await waitFor(async () => (await upgradeStatus(`/v1/ws?token=${ADMIN}&vhost=limited`)).status === 101, 5000, 'the slot to free');
    expect((await api('PUT', '/v1/vhosts/limited', { limits: { 'max-connections': -1 } })).json).toMatchObject({
      limits: { 'max-queues': 2 },
    });
  });

  it('max-queued-bytes: past the budget its publishes are refused (406) until it is consumed; others publish on', async () => {
    expect((await api('PUT', '/v1/vhosts/limited', { limits: { 'max-queued-bytes': 4096 } })).status).toBe(200);
    const post = (path: string, body: string) =>
      request(`${broker.url}${path}`, { method: 'POST', body, headers: { authorization: `Bearer ${ADMIN}` } });
    const big = 'x'.repeat(3000);
    expect((await post('/v1/publish/queue/a?vhost=limited', big)).status).toBe(200);
    expect((await post('/v1/publish/queue/a?vhost=limited', big)).status).toBe(200);
    let refused: Awaited<ReturnType<typeof post>> | null = null;
    await waitFor(
      async () => {
        const r = await post('/v1/publish/queue/b?vhost=limited', 'small');
        if (r.status === 406) refused = r;
        return refused !== null;
      },
      5000,
      'the budget to be noticed',
      100,
    );
    expect(refused!.json?.message).toMatch(/vhost 'limited' holds \d+ bytes of queued messages, over its max-queued-bytes 4096/);
    expect((await post('/v1/publish/queue/orders?vhost=staging', 'fine')).status).toBe(200);
    const vhost = (await api('GET', '/v1/vhosts/limited')).json;
    expect(vhost).toMatchObject({ name: 'limited', over_max_queued_bytes: true, limits: { 'max-queued-bytes': 4096 } });
    expect(Number(vhost?.message_bytes_ready)).toBeGreaterThanOrEqual(6000);
    // Purged: publishing resumes once a sample sees it under.
    expect((await api('DELETE', '/v1/queues/limited/a/contents')).status).toBe(200);
    await waitFor(async () => (await post('/v1/publish/queue/b?vhost=limited', 'small')).status === 200, 5000, 'publishing to resume', 100);
  });
});

describe('e2e - vhosts: deleting one', () => {
  it('closes its connections with the reason, deletes its queues and exchanges, and leaves the others', async () => {
    expect((await api('PUT', '/v1/queues/gone/q1', { durable: false })).status).toBe(201);
    expect((await api('PUT', '/v1/exchanges/gone/x1', { type: 'topic', durable: false })).status).toBe(201);
    const ws = await JsonWsClient.connect(broker.url, ADMIN, 'gone');
    await ws.subscribe('s', '/queue/q1');
    const conn = await amqp.connect(amqpUrl('gone'));
    const amqpClosed = new Promise<Error | undefined>((resolve) => conn.on('close', resolve));
    const deleted = await api('DELETE', '/v1/vhosts/gone');
    expect(deleted.json).toMatchObject({ deleted: 'gone', connections_closed: 2, queues_deleted: 1, exchanges_deleted: 1 });
    expect(await ws.closed).toEqual({ code: 1008, reason: "vhost 'gone' was deleted" });
    expect(String(await amqpClosed)).toMatch(/CONNECTION_FORCED - vhost 'gone' was deleted/);
    expect((await api('GET', '/v1/queues?vhost=gone')).status).toBe(404);
    expect(await list('/v1/vhosts')).not.toContainEqual(expect.objectContaining({ name: 'gone' }));
    expect(broker.topology.queueNamesIn('gone\u001f')).toEqual([]);
    expect(broker.topology.listExchanges().some((x) => x.name.startsWith('gone\u001f'))).toBe(false);
    // Staging and / are as they were.
    expect((await api('GET', '/v1/queues/staging/orders')).status).toBe(200);
    expect((await api('DELETE', '/v1/vhosts/%2F')).status).toBe(403);
  });
});

/** The HTTP status (and body) a WebSocket upgrade to `path` gets. */
function upgradeStatus(path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(broker.url.replace(/^http/, 'ws') + path);
    ws.once('open', () => {
      ws.close();
      resolve({ status: 101, body: '' });
    });
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (c: Buffer) => {
        body += c.toString();
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    ws.once('error', (err) => {
      if (!String(err).includes('Unexpected server response')) reject(err);
    });
  });
}
