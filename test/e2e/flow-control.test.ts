/**
 * Flow control end to end (docs/protocol.md §6a, docs/architecture.md "Flow control"): a publisher
 * that outruns its subscriber is slowed, not dropped; a client cannot forge credit or publish past
 * it, and breaking the rule closes only its own connection.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { Broker } from '../../src/front/broker.js';
import { BinaryDecoder, Direction } from '../../src/protocol/ws-binary-decode.js';
import { BinaryFrameWriter } from '../../src/protocol/ws-binary-encode.js';
import { INITIAL_PUBLISH_CREDIT, Opcode, type BinaryClientDispatcher, type ErrorEvent } from '../../src/protocol/ws-binary.js';
import { connect, type ShardmqClient } from '../../src/index.js';
import { startBroker } from '../helpers/broker.js';
import { brokerStats, waitFor } from '../helpers/http.js';

interface RawBinary {
  readonly ws: WebSocket;
  readonly errors: ErrorEvent[];
  readonly closed: Promise<{ code: number; reason: string }>;
  credits: number;
}

/** A bare binary-protocol socket that records ERRORs, CREDITs and how it was closed. */
async function rawBinary(url: string): Promise<RawBinary> {
  const ws = new WebSocket(url.replace(/^http/, 'ws') + '/v1/ws');
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  const raw: RawBinary = {
    ws,
    errors: [],
    credits: 0,
    closed: new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() }))),
  };
  const noop = (): void => undefined;
  const dispatcher: BinaryClientDispatcher = {
    processDeliver: noop,
    processConfirm: noop,
    processOk: noop,
    processError: (ev) => raw.errors.push(ev),
    processCancel: noop,
    processCredit: (ev) => {
      raw.credits += ev.messages;
    },
    processDropped: noop,
    processStream: noop,
  };
  const decoder = new BinaryDecoder(Direction.toClient, dispatcher);
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    if (isBinary) decoder.decodeFrame(data);
  });
  return raw;
}

describe('e2e - flow control', () => {
  let broker: Broker;
  const clients: ShardmqClient[] = [];

  beforeAll(async () => {
    // A small topic buffer and delivery window, so a publisher outruns a subscriber within milliseconds.
    broker = await startBroker({ shards: '2', 'topic-buffer': '200', 'delivery-window': '256' });
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await broker.stop();
  });

  /** A healthy pair on its own topic: a subscriber and a publisher that must keep working. */
  async function bystander(topic: string): Promise<{ check: (n: number) => Promise<void> }> {
    const sub = await connect(broker.url);
    const pub = await connect(broker.url, { confirms: true });
    clients.push(sub, pub);
    const got: string[] = [];
    await sub.subscribe(`/topic/${topic}`, {}, (m) => {
      got.push(m.text());
    });
    let next = 0;
    return {
      check: async (n) => {
        const first = next;
        for (let i = 0; i < n; i++) pub.publishNoWait(`/topic/${topic}`, `b${next++}`);
        await pub.flush();
        await waitFor(() => got.length >= next, 5000, `the bystander's ${next} messages (have ${got.length})`);
        expect(got.slice(first)).toEqual(Array.from({ length: n }, (_, i) => `b${first + i}`));
      },
    };
  }

  it('credit - a fast publisher and a slow subscriber that keeps up: nothing is lost, nothing reordered, and the publisher was held', async () => {
    // Its own broker: --slow-consumer-ms far above the subscriber's pauses, so it is never slow,
    // only behind: the broker must hold the publisher rather than drop anything.
    const own = await startBroker({ shards: '2', 'topic-buffer': '200', 'delivery-window': '256', 'slow-consumer-ms': '20000' });
    const sub = await connect(own.url, { bufferSize: 64 });
    const pub = await connect(own.url);
    try {
      const n = 30_000;
      const seen: number[] = [];
      let outOfOrder = 0;
      // Behind: every 5,000th message the handler stops for 400 ms. 4 KiB bodies, 120 MB in all,
      // so what the publisher offers meanwhile is more than loopback's socket buffers take
      // (tcp_rmem reaches 32 MiB here) and the broker sees the socket above high water.
      await sub.subscribe('/topic/flow.keepsup', {}, async (m) => {
        const i = Number(m.text().split(':')[0]);
        if (seen.length > 0 && i !== seen[seen.length - 1] + 1) outOfOrder++;
        seen.push(i);
        if (i % 5000 === 4999) await new Promise((r) => setTimeout(r, 400));
      });
      const holdsBefore = (await brokerStats(own.url)).overflow.reduce((s, o) => s + (o.flowHolds ?? 0), 0);
      const pending: Promise<void>[] = [];
      const pad = 'x'.repeat(4096);
      for (let i = 0; i < n; i++) {
        pub.publishNoWait('/topic/flow.keepsup', `${i}:${pad}`);
        if ((i + 1) % 1024 === 0) {
          pending.push(pub.flush());
          if (pending.length >= 4) await pending.shift();
        }
      }
      await Promise.all([...pending, pub.flush()]);
      await waitFor(() => seen.length >= n, 30_000, `all ${n} messages (have ${seen.length})`);
      const stats = await brokerStats(own.url);
      expect(seen.length).toBe(n);
      expect(outOfOrder).toBe(0);
      expect(seen[n - 1]).toBe(n - 1);
      expect(stats.shards.reduce((s, x) => s + x.dropped, 0)).toBe(0);
      expect(sub.stats.brokerDropped).toBe(0);
      // The subscription's queue went past its 200 messages: the broker held the publisher instead.
      const holds = stats.overflow.reduce((s, o) => s + (o.flowHolds ?? 0), 0);
      expect(holds).toBeGreaterThan(holdsBefore);
    } finally {
      await sub.close();
      await pub.close();
      await own.stop();
    }
  }, 60_000);

  it('credit - delivery credit goes back in eighths of the window, and a consumer never stalls on what is held back', async () => {
    // Its own broker, so the only subscription in the stats is this one. Window 256: credit goes back at 32.
    const own = await startBroker({ shards: '1', 'delivery-window': '256' });
    const sub = await connect(own.url);
    const pub = await connect(own.url, { confirms: true });
    try {
      const got: string[] = [];
      // Client ack: a subscription with its own consumer (an auto-ack one would share a stream).
      await sub.subscribe('/queue/credit-eighths', { ack: 'client', prefetch: 0 }, (m) => {
        got.push(m.text());
        void m.ack();
      });
      const owed = async (): Promise<number> => {
        const list = (await brokerStats(own.url)).connections.list as Array<{ subscriptions: number; owedCredit: number }>;
        const mine = list.filter((c) => c.subscriptions === 1);
        expect(mine).toHaveLength(1);
        return mine[0].owedCredit;
      };
      for (let i = 0; i < 10; i++) await pub.publish('/queue/credit-eighths', `c${i}`);
      await waitFor(() => got.length >= 10, 5000, `10 deliveries (have ${got.length})`);
      // Ten single deliveries, each its own chunk: held, not ten credit records.
      expect(await owed()).toBe(10);
      // Far past the window in one go: it must keep flowing, and what stays owed is under an eighth.
      for (let i = 10; i < 3000; i++) pub.publishNoWait('/queue/credit-eighths', `c${i}`);
      await pub.flush();
      await waitFor(() => got.length >= 3000, 10_000, `3000 deliveries (have ${got.length})`);
      expect(got).toEqual(Array.from({ length: 3000 }, (_, i) => `c${i}`));
      expect(await owed()).toBeLessThan(32);
    } finally {
      await Promise.all([sub.close(), pub.close()]);
      await own.stop();
    }
  });

  it('slow consumer - a client-ack topic subscriber that stops acking is slow after --slow-consumer-ms; the healthy one beside it gets everything', async () => {
    const stuck = await connect(broker.url);
    const good = await connect(broker.url);
    const pub = await connect(broker.url);
    clients.push(stuck, good, pub);
    const n = 5000;
    let goodGot = 0;
    let stuckGot = 0;
    // Takes its prefetch and never acks.
    const stuckSub = await stuck.subscribe('/topic/flow.noack', { ack: 'client', prefetch: 10 }, () => {
      stuckGot++;
    });
    await good.subscribe('/topic/flow.noack', {}, () => {
      goodGot++;
    });
    const pending: Promise<void>[] = [];
    for (let i = 0; i < n; i++) {
      pub.publishNoWait('/topic/flow.noack', String(i));
      if ((i + 1) % 1024 === 0) {
        pending.push(pub.flush());
        if (pending.length >= 4) await pending.shift();
      }
    }
    await Promise.all([...pending, pub.flush()]);
    await waitFor(() => goodGot >= n, 10_000, `the healthy subscriber's ${n} (have ${goodGot})`);
    expect(goodGot).toBe(n);
    expect(stuckGot).toBe(10);
    // Its buffer (200) holds the newest; the rest was dropped, counted and told.
    await waitFor(() => stuckSub.brokerDropped > 0, 5000, 'the DROPPED notice');
    const stats = await brokerStats(broker.url);
    const entry = stats.slowConsumers.subscriptions.find((s) => s.destination === '/topic/flow.noack');
    expect(entry?.dropped).toBe(n - 10 - 200);
    await waitFor(() => stuckSub.brokerDropped === n - 10 - 200, 5000, 'every DROPPED notice');
  }, 30_000);

  it('credit - a binary client that publishes past its credit gets credit_exceeded and only its connection closes (1008)', async () => {
    const others = await bystander('flow.bystander1');
    await others.check(100);
    const raw = await rawBinary(broker.url);
    // Everything the initial credit allows, plus one, in one frame, before any CREDIT could be read.
    const w = new BinaryFrameWriter();
    for (let i = 0; i <= INITIAL_PUBLISH_CREDIT.messages; i++) w.publish('/queue/flow.greedy', new Uint8Array([i & 0xff]));
    raw.ws.send(w.finishCopy());
    const closed = await raw.closed;
    expect(closed).toEqual({ code: 1008, reason: 'credit_exceeded' });
    expect(raw.errors).toEqual([expect.objectContaining({ requestId: 0, code: 'credit_exceeded' })]);
    // What came within the credit was taken; the publish past it was not.
    await waitFor(
      async () => (await brokerStats(broker.url)).queues.find((q) => q.name === 'flow.greedy')?.depth === INITIAL_PUBLISH_CREDIT.messages,
      5000,
      'the queue to hold the credited publishes',
    );
    await others.check(100);
  });

  it('credit - with --slow-consumer block a stalled subscriber holds the publishers; a JSON client that ignores credit then is closed (1008)', async () => {
    // Its own broker: one shard, block policy, a 10-message topic buffer, the smallest publish window.
    const b = await startBroker({
      shards: '1',
      'slow-consumer': 'block',
      'topic-buffer': '10',
      'overflow-bytes': '65536',
      'publish-window': '1024',
      'publish-window-bytes': '1048576',
    });
    try {
      const stalled = new WebSocket(b.url.replace(/^http/, 'ws') + '/v1/ws');
      await new Promise((r) => stalled.once('open', r));
      const subscribed = new Promise((r) => stalled.once('message', r));
      stalled.send(JSON.stringify({ op: 'subscribe', id: 's', destination: '/topic/flow.block', receipt: 'r' }));
      await subscribed;
      // Never read again: the kernel buffers fill, then the broker's.
      (stalled as unknown as { _socket: { pause(): void } })._socket.pause();

      const ws = new WebSocket(b.url.replace(/^http/, 'ws') + '/v1/ws');
      await new Promise((r) => ws.once('open', r));
      const errors: Array<Record<string, unknown>> = [];
      ws.on('message', (d) => {
        const f = JSON.parse(String(d)) as Record<string, unknown>;
        if (f.op === 'error') errors.push(f);
      });
      const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
      const frame = JSON.stringify({ op: 'publish', destination: '/topic/flow.block', payload: 'y'.repeat(1000) });
      // Sent without reading a credit frame, bounded: the broker stops granting credit once the
      // shard holds publishes, so this publisher goes past its credit long before the end.
      let sent = 0;
      for (; sent < 50_000 && ws.readyState === WebSocket.OPEN; sent++) {
        ws.send(frame);
        if (sent % 500 === 499) await new Promise((r) => setTimeout(r, 5));
      }
      expect(await closed).toBe(1008);
      expect(errors).toEqual([expect.objectContaining({ code: 'credit_exceeded' })]);
      const stats = await brokerStats(b.url);
      // Block: nothing dropped, the shard held the publishers.
      expect(stats.shards[0].dropped).toBe(0);
      expect(stats.overflow[0].flowHolds).toBeGreaterThan(0);
      stalled.terminate();
    } finally {
      await b.stop();
    }
  }, 30_000);

  it('credit - a client cannot forge credit: a CREDIT op sent to the broker is bad_frame and closes that connection (1002)', async () => {
    const others = await bystander('flow.bystander3');
    const raw = await rawBinary(broker.url);
    // CREDIT travels broker → client only: [op 0x45][u32 length 8][u32 messages][u32 bytes].
    const forged = new Uint8Array(13);
    const view = new DataView(forged.buffer);
    forged[0] = Opcode.CREDIT;
    view.setUint32(1, 8, true);
    view.setUint32(5, 0xffffffff, true);
    view.setUint32(9, 0xffffffff, true);
    raw.ws.send(forged);
    expect((await raw.closed).code).toBe(1002);
    expect(raw.errors).toEqual([expect.objectContaining({ code: 'bad_frame' })]);
    expect(raw.errors[0].message).toMatch(/CREDIT/);
    await others.check(100);
  });

  it('flush - a FLUSH is answered only after the publishes before it were routed', async () => {
    const raw = await rawBinary(broker.url);
    const oks: number[] = [];
    const decoder = new BinaryDecoder(Direction.toClient, {
      processDeliver: () => undefined,
      processConfirm: () => undefined,
      processOk: (ev) => {
        if (ev.op === Opcode.FLUSH) oks.push(ev.requestId);
      },
      processError: () => undefined,
      processCancel: () => undefined,
      processCredit: () => undefined,
      processDropped: () => undefined,
      processStream: () => undefined,
    });
    raw.ws.on('message', (data: Buffer) => decoder.decodeFrame(data));
    const w = new BinaryFrameWriter();
    for (let i = 0; i < 500; i++) w.publish('/queue/flow.flushed', new Uint8Array(100));
    w.flush(77);
    raw.ws.send(w.finishCopy());
    await waitFor(() => oks.length > 0, 5000, 'the FLUSH OK');
    expect(oks).toEqual([77]);
    // Routed means queued in its shard: the depth is already there, no settling needed.
    const q = (await brokerStats(broker.url)).queues.find((x) => x.name === 'flow.flushed');
    expect(q?.depth).toBe(500);
    raw.ws.close();
  });
});
