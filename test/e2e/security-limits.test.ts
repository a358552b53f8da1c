import amqp from 'amqplib';
import { afterAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import WebSocket from 'ws';
import type { Broker } from '../../src/front/broker.js';
import { startBroker, publish } from '../helpers/broker.js';
import { JsonWsClient } from '../helpers/ws-client.js';

const dir = mkdtempSync(join(tmpdir(), 'shardmq-sec-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function wsStatus(url: string, headers: Record<string, string> = {}): Promise<{ status: number; open: boolean }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url.replace(/^http/, 'ws') + '/v1/ws', { headers });
    ws.once('open', () => {
      ws.close();
      resolve({ status: 101, open: true });
    });
    ws.once('unexpected-response', (_req, res) => {
      resolve({ status: res.statusCode ?? 0, open: false });
      res.resume();
    });
    ws.once('error', () => undefined);
  });
}

describe('e2e - auth', () => {
  let broker: Broker;
  const users = join(dir, 'users.json');
  writeFileSync(
    users,
    JSON.stringify({
      users: [
        { name: 'sensor', token: 'sensor-token-1', publish: ['/topic/sensors.#'], subscribe: [] },
        { name: 'reader', token: 'reader-token-1', publish: [], subscribe: ['/topic/sensors.*', '/queue/jobs'] },
        { name: 'admin', token: 'admin-token-12', publish: ['#'], subscribe: ['#'], manage: true },
      ],
    }),
  );
  afterAll(async () => broker?.stop());

  const post = (path: string, token: string | null, body = 'x'): Promise<Response> =>
    fetch(`${broker.url}${path}`, { method: 'POST', body, headers: token === null ? {} : { authorization: `Bearer ${token}` } });

  it('auth - an allow/deny table over HTTP publish, management and WebSocket', async () => {
    broker = await startBroker({ 'users-file': users });
    const table: Array<[string, string | null, string, number]> = [
      ['no token', null, '/v1/publish/topic/sensors.t', 401],
      ['wrong token', 'nope-nope-nope', '/v1/publish/topic/sensors.t', 401],
      ['sensor may publish to its topics', 'sensor-token-1', '/v1/publish/topic/sensors.t', 200],
      ['sensor may not publish elsewhere', 'sensor-token-1', '/v1/publish/topic/billing.x', 403],
      ['reader may not publish', 'reader-token-1', '/v1/publish/queue/jobs', 403],
      ['admin may publish anywhere', 'admin-token-12', '/v1/publish/queue/jobs', 200],
    ];
    for (const [what, token, path, status] of table) {
      const res = await post(path, token);
      expect(res.status, what).toBe(status);
      if (status !== 200)
        expect(((await res.json()) as { error: string }).error, what).toBe(status === 401 ? 'unauthorized' : 'access_refused');
    }
    const manage = (token: string): Promise<Response> =>
      fetch(`${broker.url}/v1/exchanges/x-auth`, {
        method: 'PUT',
        body: '{"type":"fanout"}',
        headers: { authorization: `Bearer ${token}` },
      });
    expect((await manage('sensor-token-1')).status).toBe(403);
    expect((await manage('admin-token-12')).status).toBe(201);
    expect((await fetch(`${broker.url}/v1/stats`)).status).toBe(401);
    expect((await fetch(`${broker.url}/healthz`)).status).toBe(200);

    expect((await wsStatus(broker.url)).status).toBe(401);
    expect((await wsStatus(broker.url, { authorization: 'Bearer reader-token-1' })).open).toBe(true);
  });

  it('auth - WebSocket ops are checked per destination; a token in the query works for browsers', async () => {
    const ws = new WebSocket(broker.url.replace(/^http/, 'ws') + '/v1/ws?token=reader-token-1');
    await new Promise((r) => ws.once('open', r));
    const frames: Array<Record<string, unknown>> = [];
    ws.on('message', (d) => {
      const f = JSON.parse(String(d)) as Record<string, unknown>;
      // Publish credit (docs/protocol.md §6a) is granted after the first publish: not an answer.
      if (f.op !== 'credit') frames.push(f);
    });
    const next = async (): Promise<Record<string, unknown>> => {
      for (let i = 0; i < 200 && frames.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
      return frames.shift() ?? {};
    };
    ws.send(JSON.stringify({ op: 'subscribe', id: 'a', destination: '/topic/sensors.t', receipt: 'r1' }));
    expect(await next()).toMatchObject({ op: 'receipt', receipt: 'r1' });
    ws.send(JSON.stringify({ op: 'subscribe', id: 'b', destination: '/topic/billing.x', receipt: 'r2' }));
    expect(await next()).toMatchObject({ op: 'error', code: 'access_refused', receipt: 'r2' });
    ws.send(JSON.stringify({ op: 'publish', destination: '/topic/sensors.t', payload: 'x', receipt: 'r3' }));
    expect(await next()).toMatchObject({ op: 'error', code: 'access_refused', receipt: 'r3' });
    expect((await post('/v1/publish/topic/sensors.t', 'sensor-token-1', 'hello')).status).toBe(200);
    expect(await next()).toMatchObject({ op: 'message', subscription: 'a', payload: 'hello' });
    ws.close();
  });
});

describe('e2e - TLS', () => {
  it('tls - a self-signed certificate made in the test serves HTTPS and WSS', async () => {
    const key = join(dir, 'key.pem');
    const cert = join(dir, 'cert.pem');
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-keyout',
        key,
        '-out',
        cert,
        '-days',
        '1',
        '-subj',
        '/CN=127.0.0.1',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
      ],
      { stdio: 'ignore' },
    );
    const broker = await startBroker({ 'tls-cert': cert, 'tls-key': key, 'amqps-port': '0' });
    try {
      expect(broker.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      // AMQP over TLS with the same certificate: amqplib verifies it against the CA it is given.
      expect(broker.amqpsUrl).toMatch(/^amqps:\/\/127\.0\.0\.1:\d+$/);
      const amqps = await amqp.connect(broker.amqpsUrl ?? '', { ca: [execFileSync('cat', [cert])] });
      const ach = await amqps.createChannel();
      const aq = await ach.assertQueue('', { exclusive: true });
      ach.sendToQueue(aq.queue, Buffer.from('over tls'));
      const gotTls = await new Promise<string>(
        (resolve) => void ach.consume(aq.queue, (m) => m && resolve(m.content.toString()), { noAck: true }),
      );
      expect(gotTls).toBe('over tls');
      await amqps.close();
      const ca = execFileSync('cat', [cert]);
      const ws = new WebSocket(broker.url.replace(/^https/, 'wss') + '/v1/ws', { ca });
      await new Promise((resolve, reject) => {
        ws.once('open', resolve);
        ws.once('error', reject);
      });
      const got = new Promise<string>((resolve) =>
        ws.on('message', (d) => {
          const f = JSON.parse(String(d)) as { op: string; payload?: string };
          if (f.op === 'message') resolve(f.payload ?? '');
          else if (f.op === 'receipt') ws.send(JSON.stringify({ op: 'publish', destination: '/queue/tls', payload: 'secret' }));
        }),
      );
      ws.send(JSON.stringify({ op: 'subscribe', id: 's', destination: '/queue/tls', receipt: 'r' }));
      expect(await got).toBe('secret');
      ws.close();
      // Plain HTTP to a TLS port does not get an answer in clear text.
      await expect(fetch(broker.url.replace('https', 'http') + '/healthz', { signal: AbortSignal.timeout(2000) })).rejects.toThrow();
    } finally {
      await broker.stop();
    }
  });
});

describe('e2e - limits', () => {
  it('limits - max connections (503), max subscriptions (error frame), oversized frame (close 1009), gzip bomb (413), too many lines (413)', async () => {
    const broker = await startBroker({
      'max-connections': '2',
      'max-subscriptions': '1',
      'max-frame-bytes': '4096',
      'max-batch-lines': '3',
      'max-body-bytes': '100000',
    });
    try {
      const a = await JsonWsClient.connect(broker.url);
      const b = await JsonWsClient.connect(broker.url);
      expect((await wsStatus(broker.url)).status).toBe(503);
      await a.subscribe('one', '/queue/l1');
      a.send({ op: 'subscribe', id: 'two', destination: '/queue/l2' });
      expect((await a.take((f) => f.op === 'error')).code).toBe('limit_exceeded');
      b.send({ op: 'publish', destination: '/queue/l1', payload: 'y'.repeat(8000) });
      expect((await b.closed).code).toBe(1009);
      const bomb = gzipSync(Buffer.alloc(10_000_000));
      const bombed = await fetch(`${broker.url}/v1/publish/queue/l1`, {
        method: 'POST',
        body: bomb,
        headers: { 'content-encoding': 'gzip' },
      });
      expect(bombed.status).toBe(413);
      const lines = await publish(broker, 'queue/l1', 'a\nb\nc\nd\n', { 'content-type': 'application/x-ndjson' });
      expect(lines.status).toBe(413);
      const gzLines = await fetch(`${broker.url}/v1/publish/queue/l1`, {
        method: 'POST',
        body: gzipSync('a\nb\nc\nd\n'),
        headers: { 'content-encoding': 'gzip', 'content-type': 'application/x-ndjson' },
      });
      expect(gzLines.status).toBe(413);
      // Nothing of the refused batches arrived; the connection that behaved still works.
      expect((await publish(broker, 'queue/l1', 'fine')).status).toBe(200);
      expect((await a.messages(1, 'one'))[0].payload).toBe('fine');
      await a.close();
    } finally {
      await broker.stop();
    }
  });
});
