import { describe, expect, it } from 'vitest';
import { clientPool } from '../helpers/client-pool.js';
import { HandlerError, NotFoundError, connect } from '../../src/index.js';
import type { ShardmqError } from '../../src/index.js';

describe('client - flow control, confirms off, handler failures', () => {
  const pool = clientPool({ shards: '2' });
  const open = pool.open.bind(pool);

  it('backpressure - a full auto-ack buffer stops reading (overflow block); nothing is lost, order kept', async () => {
    const consumer = await open();
    const producer = await open();
    const sub = await consumer.subscribe('/topic/bp.block', { bufferSize: 10 });
    const body = 'x'.repeat(1000);
    const n = 3000;
    for (let round = 0; round < 30; round++) {
      await Promise.all(Array.from({ length: 100 }, (_, i) => producer.publish('/topic/bp.block', `${round * 100 + i}:${body}`)));
    }
    await new Promise((r) => setTimeout(r, 100));
    expect(consumer.stats.readPaused).toBe(true);
    // Bounded by the buffer plus what the socket had already handed over when reading stopped.
    expect(sub.buffered).toBeGreaterThanOrEqual(10);
    expect(sub.buffered).toBeLessThan(n / 4);
    let expected = 0;
    for await (const m of sub) {
      expect(Number(m.text().split(':')[0])).toBe(expected++);
      if (expected === n) break;
    }
    expect(consumer.stats.readPaused).toBe(false);
  });

  it('backpressure - overflow dropOldest keeps the newest bufferSize messages and counts the rest', async () => {
    const consumer = await open();
    const producer = await open();
    const sub = await consumer.subscribe('/topic/bp.drop', { bufferSize: 5, overflow: 'dropOldest' });
    for (let i = 0; i < 200; i++) producer.publishNoWait('/topic/bp.drop', `d${i}`);
    await producer.flush();
    await expect.poll(() => sub.dropped + sub.buffered).toBe(200);
    expect(sub.buffered).toBe(5);
    expect(consumer.stats.readPaused).toBe(false);
    const it = sub[Symbol.asyncIterator]();
    const kept: string[] = [];
    for (let i = 0; i < 5; i++) kept.push((await it.next()).value.text());
    expect(kept).toEqual(['d195', 'd196', 'd197', 'd198', 'd199']);
    await sub.unsubscribe();
  });

  it('confirms off - publish resolves once queued, flush() is a round trip, refusals reach the error event', async () => {
    const c = await open({ confirms: false });
    const consumer = await open();
    const got: string[] = [];
    await consumer.subscribe('/topic/nc.*', {}, (m) => {
      got.push(m.text());
    });
    await c.publish('/topic/nc.a', 'one');
    c.publishNoWait('/topic/nc.b', 'two');
    await c.flush();
    expect(c.stats.unconfirmed).toBe(0);
    await expect.poll(() => got).toEqual(['one', 'two']);
    const errors: ShardmqError[] = [];
    c.on('error', (e) => errors.push(e));
    await c.publish('/exchange/missing-x/k', 'nowhere');
    await c.flush();
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(NotFoundError);
  });

  it('handler - one message at a time, async handlers awaited; a throw becomes a HandlerError event and the next message still comes', async () => {
    const c = await open();
    const errors: ShardmqError[] = [];
    c.on('error', (e) => errors.push(e));
    let running = 0;
    let maxRunning = 0;
    const seen: string[] = [];
    await c.subscribe('/queue/handler-q', { ack: 'client', prefetch: 5 }, async (m) => {
      running++;
      maxRunning = Math.max(maxRunning, running);
      await new Promise((r) => setTimeout(r, 2));
      running--;
      seen.push(m.text());
      if (m.text() === 'bad') throw new Error('boom');
      await m.ack();
    });
    for (const t of ['a', 'bad', 'b', 'c']) c.publishNoWait('/queue/handler-q', t);
    await c.flush();
    await expect.poll(() => seen).toEqual(['a', 'bad', 'b', 'c']);
    expect(maxRunning).toBe(1);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(HandlerError);
    expect(errors[0]).toMatchObject({ code: 'handler_failed', destination: '/queue/handler-q', cause: new Error('boom') });
    expect(c.stats.unsettled).toBe(1); // 'bad' was left unsettled by its handler
  });

  it('handler - sync and async results mixed: order kept, never two at once, sync throws reported', async () => {
    const c = await open();
    const errors: ShardmqError[] = [];
    c.on('error', (e) => errors.push(e));
    let running = 0;
    let maxRunning = 0;
    const seen: number[] = [];
    const n = 300;
    await c.subscribe('/topic/handler.mixed', {}, (m) => {
      const i = Number(m.text());
      running++;
      maxRunning = Math.max(maxRunning, running);
      seen.push(i);
      if (i % 7 === 3) {
        running--;
        throw new Error(`sync ${i}`);
      }
      if (i % 5 === 0) {
        return new Promise<void>((r) =>
          setTimeout(() => {
            running--;
            r();
          }, 1),
        );
      }
      running--;
      return undefined;
    });
    for (let i = 0; i < n; i++) c.publishNoWait('/topic/handler.mixed', String(i));
    await c.flush();
    await expect.poll(() => seen.length).toBe(n);
    expect(seen).toEqual(Array.from({ length: n }, (_, i) => i));
    expect(maxRunning).toBe(1);
    expect(errors).toHaveLength(Array.from({ length: n }, (_, i) => i).filter((i) => i % 7 === 3).length);
    expect(errors.every((e) => e instanceof HandlerError)).toBe(true);
  });

  it('frames - every payload arrives byte for byte while the client reuses its frame buffer for frame after frame', async () => {
    // The connection hands `ws` its writer's bytes without a copy (ws masks them into its own
    // buffer): a frame sent while the next one is being written must not change under it.
    const consumer = await open();
    const producer = await open({ batchMaxBytes: 16 * 1024 });
    const n = 400;
    const sent: Uint8Array[] = [];
    let seed = 7;
    for (let i = 0; i < n; i++) {
      const b = new Uint8Array(1000 + (i % 7) * 700);
      for (let k = 0; k < b.length; k++) {
        seed = (seed * 1103515245 + 12345) & 0x7fffffff;
        b[k] = seed & 0xff;
      }
      b[0] = i & 0xff;
      b[1] = i >> 8;
      sent.push(b);
    }
    const got: Uint8Array[] = [];
    await consumer.subscribe('/topic/frames.x', {}, (m) => void got.push(m.payload));
    for (const b of sent) producer.publishNoWait('/topic/frames.x', b);
    await producer.flush();
    await expect.poll(() => got.length).toBe(n);
    for (let i = 0; i < n; i++) expect(Buffer.compare(Buffer.from(got[i]), Buffer.from(sent[i])), `message ${i}`).toBe(0);
  });

  it('close - waits for unconfirmed publishes, then refuses new work with ConnectionClosedError', async () => {
    const c = await connect(pool.broker.url);
    const closedEvents: unknown[] = [];
    c.on('close', (e) => closedEvents.push(e));
    const confirms = Array.from({ length: 100 }, (_, i) => c.publish('/topic/closing.x', `c${i}`));
    const closing = c.close();
    await expect(Promise.all(confirms)).resolves.toHaveLength(100);
    await closing;
    expect(closedEvents).toEqual([{}]);
    await expect(c.publish('/topic/closing.x', 'late')).rejects.toMatchObject({ name: 'ConnectionClosedError', code: 'connection_closed' });
    await expect(c.declareQueue('q')).rejects.toMatchObject({ code: 'connection_closed' });
    await expect(c.subscribe('/topic/x')).rejects.toMatchObject({ code: 'connection_closed' });
    await c.close(); // idempotent
  });
});
