/**
 * The subscriber process of the `memory` workload (workloads/memory.ts): two connections of the
 * exported client (`connect` from the package entry), each subscribed to the same topic with
 * `ack: 'auto'`:
 * - HEALTHY: counts what arrives and checks order by the sequence number in the payload
 *   (memory-subscribers-ipc.ts);
 * - STALLED: stops reading its socket as soon as deliveries start, through the client's own
 *   backpressure and nothing private: its handler does not return (it returns a promise that is
 *   resolved only on `resume`) and its buffer holds one message (`bufferSize: 1`, `overflow:
 *   'block'`), so with the second delivery the client pauses its `ws`, which pauses the TCP
 *   socket (`ws.pause()` → `socket.pause()`). The kernel's buffers fill, then the broker's, exactly
 *   as for a peer that never reads. On `resume` the promise resolves and it reads everything it is
 *   sent, counting the DROPPED notices (`subscription.on('dropped')`) that arrive behind the deliveries.
 *
 * It says `ready` over the IPC channel once both subscriptions are live at the broker, reports its
 * counts every PROGRESS_INTERVAL_MS when they moved, and on `stop` sends the final counts, closes
 * its connections (bounded) and exits. Kept out of the harness process so that receiving cannot
 * slow the publisher through a shared event loop (as open-loop.ts does for its subscribers).
 */
import { finishChild, runChild, sendToParent } from './child-channel.js';
import { connect } from '../index.js';
import type {
  MemorySubscriberCommand,
  MemorySubscriberCounts,
  MemorySubscriberReport,
  MemorySubscriberSpec,
  StreamCounts,
} from './memory-subscribers-ipc.js';
import { readSeq } from './memory-subscribers-ipc.js';
import { PROGRESS_INTERVAL_MS } from './open-loop.js';

const spec = JSON.parse(process.argv[2] ?? '{}') as MemorySubscriberSpec;

class Stream {
  received = 0;
  outOfOrder = 0;
  lastSeq = -1;

  take(payload: Uint8Array): void {
    this.received++;
    const seq = readSeq(payload);
    if (seq <= this.lastSeq) this.outOfOrder++;
    else this.lastSeq = seq;
  }

  counts(): StreamCounts {
    return { received: this.received, outOfOrder: this.outOfOrder, lastSeq: this.lastSeq };
  }
}

const healthy = new Stream();
const stalled = new Stream();
const closers: Array<() => Promise<unknown>> = [];
let notified = 0;
let notices = 0;
let errors = 0;
let lastError = '';
let closed = 0;
let stopping = false;
let stalledDropped = (): number => 0;
let stalledPaused = (): boolean => false;
/** Pending while the stalled subscriber must not read; null once it reads again. */
let gate: Promise<void> | null = null;
let release: () => void = () => undefined;

const send = (report: MemorySubscriberReport): Promise<void> => sendToParent(report);

function noteError(err: unknown): void {
  errors++;
  lastError = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}

function noteClosed(): void {
  if (!stopping) closed++;
}

function counts(): MemorySubscriberCounts {
  return {
    healthy: healthy.counts(),
    stalled: stalled.counts(),
    notified,
    notices,
    brokerDropped: stalledDropped(),
    stalledReadPaused: stalledPaused(),
    closed,
    errors,
    lastError,
  };
}

function resume(): void {
  if (gate === null) return;
  gate = null;
  release();
}

async function main(): Promise<void> {
  gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  const h = await connect(spec.url, { confirms: false, reconnect: false });
  h.on('error', noteError);
  h.on('close', noteClosed);
  closers.push(() => h.close());
  await h.subscribe(spec.destination, { ack: 'auto' }, (m) => healthy.take(m.payload));

  const s = await connect(spec.url, { confirms: false, reconnect: false });
  s.on('error', noteError);
  s.on('close', noteClosed);
  closers.push(() => s.close());
  const sub = await s.subscribe(spec.destination, { ack: 'auto', bufferSize: 1, overflow: 'block' }, (m) => {
    stalled.take(m.payload);
    // The first delivery holds the handler until `resume`; the client stops reading behind it.
    return gate ?? undefined;
  });
  sub.on('dropped', (n) => {
    notified += n.count;
    notices++;
  });
  stalledDropped = () => sub.brokerDropped;
  stalledPaused = () => s.stats.readPaused;

  let reported = '';
  const timer = setInterval(() => {
    const c = counts();
    const key = JSON.stringify(c);
    if (key === reported) return;
    reported = key;
    void send({ type: 'progress', counts: c });
  }, PROGRESS_INTERVAL_MS);
  process.on('message', (m: MemorySubscriberCommand) => {
    if (m.type === 'resume') {
      resume();
      return;
    }
    if (m.type !== 'stop' || stopping) return;
    stopping = true;
    clearInterval(timer);
    resume(); // a paused socket would not read the broker's answer to its close
    void finishChild({ type: 'final', counts: counts() } satisfies MemorySubscriberReport, closers);
  });
  await send({ type: 'ready' });
}

runChild(main);
