import { afterEach, describe, expect, it } from 'vitest';
import { Socket, createServer, type AddressInfo } from 'node:net';
import { Broker } from '../../src/front/broker.js';
import { resolveConfig } from '../../src/config/config.js';
import { createLogger } from '../../src/log/logger.js';
import { startBroker } from '../helpers/broker.js';
import { ConnectionLostError, DeliveryTagError, connect } from '../../src/index.js';
import type { ClientEvents, Message, ShardmqClient, Subscription } from '../../src/index.js';

/**
 * Starts a broker on `port`, retrying while the port is briefly unavailable. Built here rather
 * than with startBroker so that a failed listen can be stopped (Broker.start() has started its
 * shard workers before it listens, and startBroker would drop the half-started broker).
 */
async function restartOn(port: number): Promise<Broker> {
  let lastError: unknown;
  for (let i = 0; i < 20; i++) {
    const config = resolveConfig({ host: '127.0.0.1', port: String(port), shards: '1', 'log-level': 'silent' }, {});
    const broker = new Broker(config, createLogger(config.logLevel));
    try {
      await broker.start();
      return broker;
    } catch (err) {
      lastError = err;
      await broker.stop();
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw lastError;
}

/**
 * Works around a broker bug (see the report): uWebSockets.js listens without SO_REUSEADDR, and
 * `Broker.stop()` closes client sockets actively (close frame 1001, then FIN), so each leaves a
 * TIME-WAIT entry on the broker's port that makes listening on it again fail with EADDRINUSE for
 * 60 s. Resetting the client's TCP socket (SO_LINGER 0) as soon as the broker's close frame
 * arrives leaves no TIME-WAIT. The client still reads that close frame (code 1001) and goes
 * through its normal reconnect path; only the TCP teardown differs. This reaches into this
 * process's sockets because the client under test shares the process.
 */
function resetOnServerClose(port: number): number {
  const handles = (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles();
  let n = 0;
  for (const h of handles) {
    if (!(h instanceof Socket) || h.remotePort !== port) continue;
    // Nothing else is in flight to this socket now, so the next chunk is the close frame (+ FIN).
    h.prependOnceListener('data', () => h.resetAndDestroy());
    n++;
  }
  return n;
}

async function next(it: AsyncIterator<Message>, timeoutMs = 5000): Promise<Message> {
  let timer: NodeJS.Timeout | undefined;
  const r = await Promise.race([
    it.next(),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('timed out waiting for a message')), timeoutMs);
    }),
  ]);
  clearTimeout(timer);
  if (r.done === true) throw new Error('subscription ended');
  return r.value;
}

function once<K extends keyof ClientEvents>(client: ShardmqClient, event: K, timeoutMs = 5000): Promise<ClientEvents[K]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no '${String(event)}' event within ${timeoutMs} ms`)), timeoutMs);
    client.once(event, (arg) => {
      clearTimeout(timer);
      resolve(arg);
    });
  });
}

describe('client - reconnect', () => {
  const brokers: Broker[] = [];
  const clients: ShardmqClient[] = [];
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await Promise.all(brokers.splice(0).map((b) => b.stop()));
  });

  it('broker restart on the same port - reconnects, re-declares, re-binds, re-subscribes; in-flight publishes fail with ConnectionLostError', async () => {
    const first = await startBroker();
    brokers.push(first);
    const port = first.port;
    const client = await connect(first.url, { reconnect: { initialDelayMs: 20, maxDelayMs: 200 } });
    clients.push(client);
    const events: string[] = [];
    client.on('disconnected', () => events.push('disconnected'));
    client.on('reconnecting', ({ attempt }) => events.push(`reconnecting ${attempt}`));
    client.on('reconnected', () => events.push('reconnected'));
    const renamed: Array<ClientEvents['queueRenamed']> = [];
    client.on('queueRenamed', (e) => renamed.push(e));

    await client.declareExchange('rx', 'topic');
    await client.declareQueue('rq', { arguments: { 'x-max-length': 1000 } });
    await client.bindQueue('rq', 'rx', 'k.#');
    const named = await client.declareQueue('', { exclusive: true });
    await client.bindQueue(named.queue, 'rx', 'k.#');
    const before = named.queue;

    const queueSub: Subscription = await client.subscribe('/queue/rq', { ack: 'client', prefetch: 10 });
    const it = queueSub[Symbol.asyncIterator]();
    const topicSeen: string[] = [];
    await client.subscribe('/topic/t.*', {}, (m) => {
      topicSeen.push(m.text());
    });

    await client.publish('/exchange/rx/k.1', 'before');
    const old = await next(it);
    expect(old.text()).toBe('before');

    // Publishes still unconfirmed when the socket drops: the broker closes the socket in the same
    // tick, before the client's end-of-turn flush, so none of these is ever confirmed.
    const inFlight = Array.from({ length: 5 }, (_, i) =>
      client.publish('/topic/t.lost', `lost${i}`).then(
        () => 'confirmed',
        (e: unknown) => e,
      ),
    );
    const down = once(client, 'disconnected');
    expect(resetOnServerClose(port)).toBe(1);
    const stopping = first.stop();
    brokers.length = 0;
    const outcomes = await Promise.all(inFlight);
    expect(outcomes.every((o) => o instanceof ConnectionLostError && o.code === 'connection_lost')).toBe(true);
    await down;
    await stopping;

    // While disconnected: tags are stale, publishes wait for the new connection.
    await expect(old.ack()).rejects.toMatchObject({ name: 'DeliveryTagError', code: 'stale_tag' });
    expect(() => client.ack(old.tag)).toThrow(DeliveryTagError);
    expect(client.connected).toBe(false);
    const reconnected = once(client, 'reconnected');
    const heldPublish = client.publish('/topic/t.held', 'held');

    const second = await restartOn(port);
    brokers.push(second);
    await reconnected;
    await heldPublish;
    expect(client.connected).toBe(true);
    expect(events[0]).toBe('disconnected');
    expect(events).toContain('reconnecting 1');
    expect(events.at(-1)).toBe('reconnected');

    // Re-declared: the new broker knows the exchange and queue, the server-named queue has a new name.
    const probe = await connect(second.url);
    clients.push(probe);
    await expect(probe.declareExchange('rx', 'topic', { passive: true })).resolves.toBeUndefined();
    expect((await probe.declareQueue('rq', { passive: true })).consumerCount).toBe(1);
    expect(named.queue).not.toBe(before);
    expect(named.queue).toMatch(/^amq\.gen-/);
    expect(renamed).toEqual([{ previous: before, queue: named.queue }]);

    // Re-bound and re-subscribed: a message published after the restart reaches the same iterator,
    // and the server-named queue through its re-created binding.
    await probe.publish('/exchange/rx/k.2', 'after');
    const fresh = await next(it);
    expect(fresh.text()).toBe('after');
    expect(fresh.tag).toBeGreaterThan(old.tag);
    await fresh.ack();
    expect((await client.declareQueue(named.queue, { passive: true })).messageCount).toBe(1);

    await probe.publish('/topic/t.x', 'topic-after');
    await expect.poll(() => topicSeen).toEqual(['held', 'topic-after']);
  });

  it('a dropped socket restores thousands of bindings and subscriptions, a window at a time, and each works again', async () => {
    const broker = await startBroker({ 'max-subscriptions': '5000' });
    brokers.push(broker);
    const client = await connect(broker.url, { reconnect: { initialDelayMs: 20, maxDelayMs: 200 } });
    clients.push(client);
    const bindings = 2500; // more than one restore window (1,000 requests) of each kind
    const subscriptions = 1500;
    // An exclusive queue goes with its connection, so every binding must come back through the client.
    await client.declareQueue('restored', { exclusive: true });
    await Promise.all(Array.from({ length: bindings }, (_, i) => client.bindQueue('restored', 'amq.topic', `bound.${i}`)));
    const got = new Set<number>();
    await Promise.all(
      Array.from({ length: subscriptions }, (_, i) => client.subscribe(`/topic/sub.${i}.*`, { ack: 'auto' }, () => void got.add(i))),
    );
    const reconnected = new Promise<void>((r) => client.once('reconnected', () => r()));
    const port = broker.port;
    const handles = (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles();
    const sockets = handles.filter((h): h is Socket => h instanceof Socket && h.remotePort === port);
    expect(sockets).toHaveLength(1);
    sockets[0].resetAndDestroy();
    await reconnected;
    const queued: number[] = [];
    await client.subscribe('/queue/restored', { ack: 'auto' }, (m) => void queued.push(Number(m.text())));
    for (let i = 0; i < bindings; i++) client.publishNoWait(`/exchange/amq.topic/bound.${i}`, String(i));
    for (let i = 0; i < subscriptions; i++) client.publishNoWait(`/topic/sub.${i}.x`, 'x');
    await client.flush();
    const deadline = Date.now() + 10_000;
    while ((queued.length < bindings || got.size < subscriptions) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(queued).toEqual(Array.from({ length: bindings }, (_, i) => i));
    expect(got.size).toBe(subscriptions);
  }, 30_000);

  it('gives up after maxAttempts - close event with ConnectionLostError; iterators throw it; queued publishes fail', async () => {
    const broker = await startBroker();
    const client = await connect(broker.url, { reconnect: { initialDelayMs: 50, maxDelayMs: 100, maxAttempts: 2 } });
    clients.push(client);
    const sub = await client.subscribe('/topic/gone.*');
    const iterated = (async () => {
      for await (const _ of sub) {
        // nothing arrives
      }
    })().then(
      () => null,
      (e: unknown) => e,
    );
    const closed = once(client, 'close');
    const attempts: number[] = [];
    client.on('reconnecting', ({ attempt }) => attempts.push(attempt));
    const down = once(client, 'disconnected');
    const stopping = broker.stop();
    await down;
    const queued = client.publish('/topic/gone.x', 'never').then(
      () => 'sent',
      (e: unknown) => e,
    );
    await stopping;
    const { error } = await closed;
    expect(error).toBeInstanceOf(ConnectionLostError);
    expect(error?.message).toMatch(/gave up after 2 reconnect attempt/);
    expect(attempts).toEqual([1, 2]);
    expect(await iterated).toBe(error);
    expect(await queued).toBe(error);
    expect(client.closed).toBe(true);
    await expect(client.publish('/topic/gone.x', 'late')).rejects.toMatchObject({ code: 'connection_closed' });
  });

  it('reconnect disabled - the first drop closes the client', async () => {
    const broker = await startBroker();
    const client = await connect(broker.url, { reconnect: false });
    clients.push(client);
    const closed = once(client, 'close');
    await broker.stop();
    expect((await closed).error).toMatchObject({ code: 'connection_lost', message: expect.stringMatching(/reconnect is disabled/) });
  });

  it('connect - an unreachable broker rejects with ConnectFailedError', async () => {
    // A port that was free a moment ago: nothing listens there.
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    await new Promise((r) => server.close(r));
    await expect(connect(`http://127.0.0.1:${port}`, { connectTimeoutMs: 2000 })).rejects.toMatchObject({
      name: 'ConnectFailedError',
      code: 'connect_failed',
    });
    await expect(connect('ftp://127.0.0.1:1')).rejects.toThrow(TypeError);
  });

  it('several URLs - connect takes the first that answers; a drop moves on to the next; none answering names each', async () => {
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    await new Promise((r) => server.close(r));
    const dead = `http://127.0.0.1:${port}`;
    const a = await startBroker();
    const b = await startBroker();
    const client = await connect([dead, a.url, b.url], { reconnect: { initialDelayMs: 20, maxDelayMs: 50 } });
    clients.push(client);
    expect(client.url).toContain(`:${a.port}/`);
    const got: string[] = [];
    await client.subscribe('/topic/multi', {}, (m) => {
      got.push(m.text());
    });
    const reconnected = once(client, 'reconnected');
    await a.stop();
    await reconnected;
    expect(client.url).toContain(`:${b.port}/`);
    // The subscription came back on b.
    const deadline = Date.now() + 5000;
    while (!got.includes('on b') && Date.now() < deadline) {
      await fetch(`${b.url}/v1/publish/topic/multi`, { method: 'POST', body: 'on b' });
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(got).toContain('on b');
    await client.close();
    await b.stop();
    await expect(connect([dead, `http://127.0.0.1:${port}`], { connectTimeoutMs: 2000 })).rejects.toThrow(
      new RegExp(`cannot connect to ws://127\\.0\\.0\\.1:${port}/v1/ws: .*; ws://127\\.0\\.0\\.1:${port}/v1/ws: `),
    );
    await expect(connect([])).rejects.toThrow(/at least one broker/);
  });
});
