import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Broker } from '../../src/front/broker.js';
import { startBroker } from '../helpers/broker.js';
import { publishNdjson, request } from '../helpers/http.js';
import { JsonWsClient } from '../helpers/ws-client.js';

const json = (body: unknown): RequestInit => ({
  method: 'PUT',
  body: JSON.stringify(body),
  headers: { 'content-type': 'application/json' },
});

interface Line {
  offset: number;
  timestamp: string;
  exchange: string;
  routing_key: string;
  payload: string;
  encoding?: string;
  properties?: Record<string, unknown>;
}

describe('stream queues over HTTP: declare, publish, read from an offset (issue 16, first slice)', () => {
  let broker: Broker;
  beforeAll(async () => {
    broker = await startBroker();
  });
  afterAll(async () => {
    await broker.stop();
  });

  const read = async (name: string, query: string): Promise<{ status: number; lines: Line[]; headers: Headers; text: string }> => {
    const a = await request(`${broker.url}/v1/streams/${name}/messages?${query}`);
    const lines =
      a.status === 200
        ? a.text
            .split('\n')
            .filter(Boolean)
            .map((l) => JSON.parse(l) as Line)
        : [];
    return { status: a.status, lines, headers: a.headers, text: a.text };
  };

  it('keeps every published message at its offset; reads never remove; readers from first, an offset and a time get exactly their suffix', async () => {
    const put = await request(`${broker.url}/v1/queues/metrics`, json({ arguments: { 'x-queue-type': 'stream' } }));
    expect(put.status).toBe(201);
    const total = 3000;
    const before = Date.now();
    for (let b = 0; b < total; b += 1000) {
      const batch = Array.from({ length: 1000 }, (_, i) => JSON.stringify({ n: b + i }));
      const ack = await publishNdjson(broker.url, '/queue/metrics', batch);
      expect(ack.status).toBe(200);
      expect(ack.json?.accepted).toBe(1000);
    }
    const info = (await request(`${broker.url}/v1/streams/metrics`)).json as Record<string, unknown>;
    expect(info).toMatchObject({ name: 'metrics', first_offset: 0, next_offset: total, messages: total, segments: 1 });
    expect(Date.parse(info.first_timestamp as string)).toBeGreaterThanOrEqual(before - 5);

    const all = await read('metrics', 'offset=first&limit=10000');
    expect(all.status).toBe(200);
    expect(all.headers.get('content-type')).toBe('application/x-ndjson');
    expect(all.lines.map((l) => l.offset)).toEqual(Array.from({ length: total }, (_, i) => i));
    expect(all.lines.every((l, i) => JSON.parse(l.payload).n === i && l.exchange === '' && l.routing_key === 'metrics')).toBe(true);
    expect(all.headers.get('x-stream-next-offset')).toBe(String(total));

    // Reading removed nothing: the same again, and from an offset in the middle exactly the suffix.
    const from = await read('metrics', 'offset=1500&limit=10000');
    expect(from.lines.map((l) => l.offset)).toEqual(Array.from({ length: 1500 }, (_, i) => 1500 + i));
    const mid = all.lines[2200].timestamp;
    const byTime = await read('metrics', `offset=${encodeURIComponent(mid)}&limit=10000`);
    expect(byTime.lines[0].timestamp >= mid).toBe(true);
    expect(byTime.lines[0].offset).toBeLessThanOrEqual(2200);
    expect(byTime.lines.at(-1)?.offset).toBe(total - 1);
    const byEpoch = await read('metrics', `timestamp=${Date.parse(mid)}&limit=10000`);
    expect(byEpoch.lines.map((l) => l.offset)).toEqual(byTime.lines.map((l) => l.offset));
    const last = await read('metrics', 'offset=last');
    expect(last.lines.map((l) => l.offset)).toEqual([total - 1]);
    const page = await read('metrics', 'offset=10&limit=5');
    expect(page.lines.map((l) => l.offset)).toEqual([10, 11, 12, 13, 14]);
    expect(page.headers.get('x-stream-next-offset')).toBe('15');
    const atEnd = await read('metrics', `offset=${total}`);
    expect([atEnd.status, atEnd.lines.length]).toEqual([200, 0]);

    // The listing shows the stream's entries as its messages.
    const row = (await request(`${broker.url}/v1/queues/metrics`)).json as Record<string, unknown>;
    expect(row.messages).toBe(total);
  });

  it('retention by bytes drops whole old segments; a read from before the head starts at the first kept offset and says how many it skipped', async () => {
    const args = { 'x-queue-type': 'stream', 'x-max-length-bytes': 20_000, 'x-stream-max-segment-size-bytes': 5000 };
    expect((await request(`${broker.url}/v1/queues/logs`, json({ arguments: args }))).status).toBe(201);
    const payload = 'x'.repeat(100);
    for (let b = 0; b < 4; b++) {
      const ack = await publishNdjson(
        broker.url,
        '/queue/logs',
        Array.from({ length: 250 }, () => payload),
      );
      expect(ack.status).toBe(200);
    }
    const info = (await request(`${broker.url}/v1/streams/logs`)).json as Record<string, number>;
    expect(info.next_offset).toBe(1000);
    expect(info.bytes).toBeLessThanOrEqual(20_000 + 5000);
    expect(info.first_offset).toBeGreaterThan(0);
    expect(info.retention_dropped).toBe(info.first_offset);
    const r = await read('logs', 'offset=0&limit=10000');
    expect(r.lines[0].offset).toBe(info.first_offset);
    expect(r.lines.length).toBe(1000 - info.first_offset);
    expect(r.headers.get('x-stream-skipped')).toBe(String(info.first_offset));
    // A consumer asking for offset 0 is moved up to the first kept one and told how many it missed.
    const ws = await JsonWsClient.connect(broker.url);
    try {
      await ws.subscribe('late', '/queue/logs', { arguments: { 'x-stream-offset': 0 } });
      const [first, second] = await ws.messages(2, 'late');
      const headers = (f: Record<string, unknown>): Record<string, number> => (f.properties as { headers: Record<string, number> }).headers;
      expect(headers(first)['x-stream-offset']).toBe(info.first_offset);
      expect(headers(first)['x-stream-offset-skipped']).toBe(info.first_offset);
      expect(headers(second)['x-stream-offset-skipped']).toBeUndefined();
    } finally {
      await ws.close();
    }
  });

  it('refuses bad inputs with RabbitMQ-style errors and changes nothing', async () => {
    await request(`${broker.url}/v1/queues/events`, json({ arguments: { 'x-queue-type': 'stream' } }));
    await publishNdjson(broker.url, '/queue/events', ['a', 'b', 'c']);
    const bad = async (query: string): Promise<[number, string]> => {
      const a = await request(`${broker.url}/v1/streams/events/messages?${query}`);
      return [a.status, String(a.json?.error)];
    };
    expect(await bad('offset=begin')).toEqual([406, 'precondition_failed']);
    expect(await bad('offset=-1')).toEqual([406, 'precondition_failed']);
    expect(await bad('offset=4')).toEqual([406, 'precondition_failed']); // past the end (next offset is 3)
    expect(await bad('limit=0')).toEqual([400, 'bad_request']);
    expect(await bad('offset=1&timestamp=5')).toEqual([400, 'bad_request']);
    expect((await request(`${broker.url}/v1/streams/nope/messages`)).status).toBe(404);
    // A stream argument on a classic queue; a classic argument on a stream; a stream that is exclusive or auto-delete.
    const classic = await request(`${broker.url}/v1/queues/plain`, json({ arguments: { 'x-max-age': '1h' } }));
    expect([classic.status, classic.json?.error]).toEqual([406, 'precondition_failed']);
    expect(String(classic.json?.message)).toContain("invalid arg 'x-max-age' for queue 'plain'");
    const ttl = await request(`${broker.url}/v1/queues/s2`, json({ arguments: { 'x-queue-type': 'stream', 'x-message-ttl': 1000 } }));
    expect([ttl.status, ttl.json?.error]).toEqual([406, 'precondition_failed']);
    const ad = await request(`${broker.url}/v1/queues/s3`, json({ auto_delete: true, arguments: { 'x-queue-type': 'stream' } }));
    expect(ad.status).toBe(406);
    const age = await request(`${broker.url}/v1/queues/s4`, json({ arguments: { 'x-queue-type': 'stream', 'x-max-age': '7d' } }));
    expect(String(age.json?.message)).toContain('invalid_max_age');
    // Changing the type on redeclare.
    const retype = await request(`${broker.url}/v1/queues/events`, json({ arguments: {} }));
    expect([retype.status, retype.json?.error]).toEqual([406, 'precondition_failed']);
    expect(String(retype.json?.message)).toContain("inequivalent arg 'x-queue-type'");
    // A classic queue is not a stream; purge of a stream is refused.
    await request(`${broker.url}/v1/queues/jobs`, json({}));
    expect((await request(`${broker.url}/v1/streams/jobs`)).status).toBe(406);
    expect((await request(`${broker.url}/v1/queues/events/contents`, { method: 'DELETE' })).status).toBe(400);
    // Nothing changed.
    for (const name of ['plain', 's2', 's3', 's4']) expect((await request(`${broker.url}/v1/queues/${name}`)).status).toBe(404);
    const info = (await request(`${broker.url}/v1/streams/events`)).json as Record<string, number>;
    expect([info.first_offset, info.next_offset]).toEqual([0, 3]);
  });

  it('WebSocket consumers read from first, from an offset, from a time and from next, each at its own position, with the offset in every delivery', async () => {
    await request(`${broker.url}/v1/queues/ticks`, json({ arguments: { 'x-queue-type': 'stream' } }));
    const total = 20_000; // well past the delivery window: credit goes round many times
    for (let b = 0; b < total; b += 5000) {
      const ack = await publishNdjson(
        broker.url,
        '/queue/ticks',
        Array.from({ length: 5000 }, (_, i) => `tick ${b + i}`),
      );
      expect(ack.status).toBe(200);
    }
    const midTime = (await read('ticks', 'offset=12345&limit=1')).lines[0].timestamp;
    const offsetOf = (f: Record<string, unknown>): number =>
      ((f.properties as { headers: Record<string, number> }).headers['x-stream-offset'] as number) ?? -1;
    const clients = await Promise.all([0, 1, 2, 3].map(() => JsonWsClient.connect(broker.url)));
    try {
      const [fromFirst, fromOffset, fromTime, fromNext] = clients;
      await fromFirst.subscribe('a', '/queue/ticks', { arguments: { 'x-stream-offset': 'first' } });
      await fromOffset.subscribe('b', '/queue/ticks', { arguments: { 'x-stream-offset': 15_000 } });
      await fromTime.subscribe('c', '/queue/ticks', { arguments: { 'x-stream-offset': midTime } });
      await fromNext.subscribe('d', '/queue/ticks', { arguments: { 'x-stream-offset': 'next' } });
      const all = await fromFirst.messages(total, 'a', 20_000);
      expect(all.map(offsetOf)).toEqual(Array.from({ length: total }, (_, i) => i));
      expect(all.every((m, i) => m.payload === `tick ${i}`)).toBe(true);
      const suffix = await fromOffset.messages(5000, 'b', 20_000);
      expect(suffix.map(offsetOf)).toEqual(Array.from({ length: 5000 }, (_, i) => 15_000 + i));
      const first = await fromTime.take((f) => f.op === 'message');
      expect(offsetOf(first)).toBeLessThanOrEqual(12_345);
      // 'next' gets only what comes after it subscribed; everyone gets the new one.
      expect((await publishNdjson(broker.url, '/queue/ticks', ['late'])).status).toBe(200);
      const late = await fromNext.take((f) => f.op === 'message');
      expect([offsetOf(late), late.payload]).toEqual([total, 'late']);
      const lateToFirst = await fromFirst.take((f) => f.op === 'message');
      expect(offsetOf(lateToFirst)).toBe(total);
      // Reading removed nothing.
      const info = (await request(`${broker.url}/v1/streams/ticks`)).json as Record<string, number>;
      expect([info.first_offset, info.next_offset]).toEqual([0, total + 1]);
    } finally {
      await Promise.all(clients.map((c) => c.close()));
    }
  }, 60_000);

  it('refuses a bad offset with a precise error and the connection keeps working; a client-ack consumer reads on as it acks', async () => {
    await request(`${broker.url}/v1/queues/refusals`, json({ arguments: { 'x-queue-type': 'stream' } }));
    const ws = await JsonWsClient.connect(broker.url);
    try {
      expect((await ws.request({ op: 'publish', destination: '/queue/refusals', payload: 'one' })).op).toBe('receipt');
      ws.send({ op: 'subscribe', id: 'bad', destination: '/queue/refusals', arguments: { 'x-stream-offset': 'begin' } });
      const e1 = await ws.take((f) => f.op === 'error');
      expect([e1.code, String(e1.message).includes('invalid x-stream-offset "begin"')]).toEqual(['precondition_failed', true]);
      // With a receipt, the refusal is the answer to it (an error naming the receipt, and no receipt after).
      const e2 = await ws.request({ op: 'subscribe', id: 'past', destination: '/queue/refusals', arguments: { 'x-stream-offset': 7 } });
      expect([e2.op, e2.code]).toEqual(['error', 'precondition_failed']);
      expect(String(e2.message)).toContain('past the end of the stream');
      await new Promise((r) => setTimeout(r, 100));
      expect(ws.frames.filter((f) => f.op === 'receipt' || f.op === 'error')).toHaveLength(0);
      await ws.subscribe('ok', '/queue/refusals', { arguments: { 'x-stream-offset': 'first' } });
      const m = await ws.take((f) => f.op === 'message');
      expect(m.payload).toBe('one');
      // Acks only free prefetch slots: a stream keeps its entries.
      for (let i = 0; i < 5; i++) await ws.request({ op: 'publish', destination: '/queue/refusals', payload: `more ${i}` });
      await ws.subscribe('acks', '/queue/refusals', { ack: 'client', prefetch: 2, arguments: { 'x-stream-offset': 'first' } });
      const two = await ws.messages(2, 'acks');
      await new Promise((r) => setTimeout(r, 200));
      expect(ws.frames.filter((f) => f.op === 'message' && f.subscription === 'acks')).toHaveLength(0);
      ws.send({ op: 'ack', tag: two[1].tag, multiple: true });
      const next = await ws.messages(2, 'acks');
      expect([...two, ...next].map((f) => f.payload)).toEqual(['one', 'more 0', 'more 1', 'more 2']);
      const info = (await request(`${broker.url}/v1/streams/refusals`)).json as Record<string, number>;
      expect([info.first_offset, info.next_offset]).toEqual([0, 6]);
    } finally {
      await ws.close();
    }
  });

  it('a named consumer commits its offset, is killed, and resumes with "stored" on another connection: nothing lost or repeated beyond its commit', async () => {
    await request(`${broker.url}/v1/queues/resume`, json({ arguments: { 'x-queue-type': 'stream' } }));
    expect(
      (
        await publishNdjson(
          broker.url,
          '/queue/resume',
          Array.from({ length: 300 }, (_, i) => `m${i}`),
        )
      ).status,
    ).toBe(200);
    const offsetOf = (f: Record<string, unknown>): number =>
      (f.properties as { headers: Record<string, number> }).headers['x-stream-offset'];
    const args = { 'x-stream-offset': 'first', 'x-stream-consumer-name': 'dashboard' };
    const first = await JsonWsClient.connect(broker.url);
    await first.subscribe('s1', '/queue/resume', { arguments: args });
    const got = await first.messages(120, 's1');
    expect(got.map(offsetOf)).toEqual(Array.from({ length: 120 }, (_, i) => i));
    expect((await first.request({ op: 'commit', subscription: 's1', offset: 99 })).op).toBe('receipt');
    const during = (await request(`${broker.url}/v1/streams/resume`)).json as {
      consumers: Array<{ name: string; lag: number }>;
      stored_offsets: Record<string, number>;
    };
    expect(during.stored_offsets).toEqual({ dashboard: 99 });
    expect(during.consumers.map((c) => c.name)).toEqual(['dashboard']);
    first.ws.terminate(); // killed: no goodbye
    await first.closed;
    const second = await JsonWsClient.connect(broker.url);
    try {
      await second.subscribe('other-id', '/queue/resume', {
        arguments: { 'x-stream-offset': 'stored', 'x-stream-consumer-name': 'dashboard' },
      });
      const rest = await second.messages(200, 'other-id');
      expect(rest.map(offsetOf)).toEqual(Array.from({ length: 200 }, (_, i) => 100 + i));
      expect(rest.map((m) => m.payload)).toEqual(Array.from({ length: 200 }, (_, i) => `m${100 + i}`));
      // Refused: a commit past the end; "stored" for a name that stored nothing; "stored" without a name is its subscription id's.
      const past = await second.request({ op: 'commit', subscription: 'other-id', offset: 300 });
      expect([past.op, past.code]).toEqual(['error', 'precondition_failed']);
      second.send({ op: 'subscribe', id: 'fresh', destination: '/queue/resume', arguments: { 'x-stream-offset': 'stored' } });
      const none = await second.take((f) => f.op === 'error');
      expect(String(none.message)).toContain('no stored offset');
    } finally {
      await second.close();
    }
  });

  it('a gzip NDJSON telemetry batch lands in the stream whole; the HTTP read and a WebSocket consumer give the same messages at the same offsets', async () => {
    await request(`${broker.url}/v1/queues/telemetry`, json({ arguments: { 'x-queue-type': 'stream' } }));
    const lines = Array.from({ length: 2000 }, (_, i) => JSON.stringify({ sensor: i % 7, value: i / 10 }));
    const body = gzipSync(Buffer.from(lines.join('\n') + '\n'));
    const ack = await request(`${broker.url}/v1/publish/queue/telemetry`, {
      method: 'POST',
      body,
      headers: { 'content-type': 'application/x-ndjson', 'content-encoding': 'gzip' },
    });
    expect([ack.status, ack.json?.accepted]).toEqual([200, 2000]);
    const http = await read('telemetry', 'offset=first&limit=10000');
    expect(http.lines.map((l) => l.payload)).toEqual(lines);
    const ws = await JsonWsClient.connect(broker.url);
    try {
      await ws.subscribe('t', '/queue/telemetry', { arguments: { 'x-stream-offset': 'first' } });
      const got = await ws.messages(2000, 't');
      expect(got.map((m) => [m.offset, m.payload])).toEqual(http.lines.map((l) => [l.offset, l.payload]));
      expect(got.every((m) => (m.properties as { headers: Record<string, number> }).headers['x-stream-offset'] === m.offset)).toBe(true);
    } finally {
      await ws.close();
    }
  });

  it('retention by age: once their newest entry is older than x-max-age, old segments go on their own (no publish needed), the newest stays', async () => {
    const args = { 'x-queue-type': 'stream', 'x-max-age': '1s', 'x-stream-max-segment-size-bytes': 1000 };
    expect((await request(`${broker.url}/v1/queues/aging`, json({ arguments: args }))).status).toBe(201);
    expect(
      (
        await publishNdjson(
          broker.url,
          '/queue/aging',
          Array.from({ length: 100 }, () => 'y'.repeat(100)),
        )
      ).status,
    ).toBe(200);
    const before = (await request(`${broker.url}/v1/streams/aging`)).json as Record<string, number>;
    expect([before.first_offset, before.next_offset]).toEqual([0, 100]);
    expect(before.segments).toBeGreaterThan(5);
    // Older than 1 s, and the once-a-second sweep has had its turn.
    await new Promise((r) => setTimeout(r, 2500));
    const after = (await request(`${broker.url}/v1/streams/aging`)).json as Record<string, number>;
    expect(after.segments).toBe(1);
    expect(after.next_offset).toBe(100);
    expect(after.first_offset).toBeGreaterThan(80);
    expect(after.retention_dropped).toBe(after.first_offset);
    const r = await read('aging', 'offset=first&limit=1000');
    expect(r.lines.map((l) => l.offset)).toEqual(Array.from({ length: 100 - after.first_offset }, (_, i) => after.first_offset + i));
  });
});
