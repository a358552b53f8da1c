/**
 * The subscriber side of one open-loop run, in a process of its own (see open-loop.ts): opens
 * `subscribers` connections of one system, each subscribed to the run's topic, says `ready` over
 * the IPC channel once every subscription is live at the server, then counts what arrives.
 *
 * - shardmq: the exported client (`connect` from the package entry), `subscribe(dest, { ack: 'auto' }, handler)`;
 * - shardmq-json: `ws` clients speaking the JSON text ops (`subscribe` with a receipt, `message` frames);
 * - NATS core: the `nats` client from benchmarks/peers/, `subscribe(subject, { callback })`;
 * - uWebSockets.js pub/sub: `ws` clients on the server's /sub path.
 *
 * Every PROGRESS_INTERVAL_MS it reports its total when it moved; on `stop` it sends the final count
 * (per subscriber, and the monotonic time of the last delivery), closes its connections and exits.
 * The handlers only count: the time of the last delivery is stamped once per event-loop turn (a
 * setImmediate after the burst), not per message.
 */
import WebSocket from 'ws';
import { connect } from '../index.js';
import { monotonicMs, PROGRESS_INTERVAL_MS, type SubscriberCommand, type SubscriberReport, type SubscriberSpec } from './open-loop.js';
import { loadPeers } from './peers.js';
import { finishChild, runChild, sendToParent } from './child-channel.js';

const spec = JSON.parse(process.argv[2] ?? '{}') as SubscriberSpec;
const counts: number[] = new Array<number>(spec.subscribers).fill(0);
const closers: Array<() => Promise<unknown>> = [];
let total = 0;
let lastAt = 0;
let stampQueued = false;
let errors = 0;
let lastError = '';
let closed = 0;
let stopping = false;

const send = (report: SubscriberReport): Promise<void> => sendToParent(report);

function stamp(): void {
  stampQueued = false;
  lastAt = monotonicMs();
}

function got(i: number): void {
  counts[i]++;
  total++;
  if (!stampQueued) {
    stampQueued = true;
    setImmediate(stamp);
  }
}

function noteError(err: unknown): void {
  errors++;
  lastError = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}

function noteClosed(): void {
  if (!stopping) closed++;
}

/**
 * Subscriber `i`'s server: `spec.url` may list several (comma-separated: the nodes of a cluster),
 * and the subscribers are spread over them in turn.
 */
function urlFor(i: number): string {
  const urls = spec.url.split(',');
  return urls[i % urls.length];
}

async function openShardmq(i: number): Promise<void> {
  const client = await connect(urlFor(i), { confirms: false, reconnect: false, vhost: spec.vhost ?? '/' });
  client.on('error', noteError);
  client.on('close', noteClosed);
  closers.push(() => client.close());
  await client.subscribe(spec.destination, { ack: 'auto' }, () => got(i));
}

/** Closes a `ws` socket; resolves once it is closed. */
function closeWs(ws: WebSocket): Promise<void> {
  return new Promise<void>((resolve) => {
    if (ws.readyState === WebSocket.CLOSED) resolve();
    else {
      ws.once('close', () => resolve());
      ws.close();
    }
  });
}

async function openShardmqJson(i: number): Promise<void> {
  const ws = new WebSocket(`${spec.url.replace(/^http/, 'ws')}/v1/ws`, { perMessageDeflate: false });
  closers.push(() => closeWs(ws));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  await new Promise<void>((resolve, reject) => {
    ws.on('message', (data) => {
      // Only `message` frames start with this; the receipt and anything else are parsed.
      const text = String(data);
      if (text.startsWith('{"op":"message"')) {
        got(i);
        return;
      }
      const f = JSON.parse(text) as { op: string; receipt?: string };
      if (f.op === 'receipt' && f.receipt === 'ready') resolve();
      else if (f.op === 'error') reject(new Error(text));
    });
    ws.send(JSON.stringify({ op: 'subscribe', id: `s${i}`, destination: spec.destination, ack: 'auto', receipt: 'ready' }));
  });
  ws.on('error', noteError);
  ws.on('close', noteClosed);
}

async function openNats(i: number, nats: Awaited<ReturnType<typeof loadPeers>>['nats']): Promise<void> {
  if ('missing' in nats) throw new Error(nats.missing);
  const nc = await nats.client.connect({ servers: urlFor(i), maxReconnectAttempts: 0 });
  closers.push(() => nc.close());
  void nc.closed().then(noteClosed);
  nc.subscribe(spec.destination, {
    callback: (err) => {
      if (err !== null) noteError(err);
      else got(i);
    },
  });
  await nc.flush(); // the server has the subscription once the PONG is back
}

async function openUws(i: number): Promise<void> {
  const ws = new WebSocket(`${spec.url}/sub`);
  closers.push(() => closeWs(ws));
  await new Promise<void>((resolve, reject) => {
    ws.once('error', reject);
    ws.on('message', (_data, isBinary) => {
      if (isBinary) got(i);
      else resolve(); // `ready`: subscribed
    });
  });
  ws.on('error', noteError);
  ws.on('close', noteClosed);
}

async function main(): Promise<void> {
  const nats = spec.kind === 'nats' ? (await loadPeers()).nats : undefined;
  for (let i = 0; i < spec.subscribers; i++) {
    if (spec.kind === 'shardmq') await openShardmq(i);
    else if (spec.kind === 'shardmq-json') await openShardmqJson(i);
    else if (spec.kind === 'nats' && nats !== undefined) await openNats(i, nats);
    else if (spec.kind === 'uws') await openUws(i);
    else throw new Error(`unknown subscriber kind ${String(spec.kind)}`);
  }
  let reported = 0;
  const timer = setInterval(() => {
    if (total === reported) return;
    reported = total;
    void send({ type: 'progress', delivered: total, lastAt });
  }, PROGRESS_INTERVAL_MS);
  process.on('message', (m: SubscriberCommand) => {
    if (m.type !== 'stop' || stopping) return;
    stopping = true;
    clearInterval(timer);
    if (stampQueued) stamp();
    void finishChild(
      { type: 'final', delivered: total, perSubscriber: counts, lastAt, errors, lastError, closed } satisfies SubscriberReport,
      closers,
    );
  });
  await send({ type: 'ready' });
}

runChild(main);
