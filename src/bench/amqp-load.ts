/**
 * The AMQP 0-9-1 driver of workloads/amqp.ts: one amqplib code path, pointed at a broker by URL
 * only, so shardmq and RabbitMQ run exactly the same client code. Three throughput shapes and one
 * latency run, all with 128-byte messages:
 *
 * - `queue` (1→1): one publisher connection publishing to one queue through the default exchange,
 *   one consumer connection with noAck;
 * - `fanout` (1→16): one publisher to a fanout exchange bound to 16 exclusive server-named queues,
 *   one consumer connection each, noAck; every copy counts as a delivery;
 * - `acks`: a ConfirmChannel publisher keeping at most MAX_UNCONFIRMED publishes unconfirmed, one
 *   consumer with a prefetch of PREFETCH acking every message on its own.
 *
 * Open loop: the publisher publishes as fast as amqplib takes messages. `channel.publish` returning
 * false (the channel's write buffer is full: the socket, and so the broker, is not keeping up) is
 * honoured by waiting for the channel's 'drain'; nothing waits for the consumers. Every run is
 * bounded in time and count; deliveries then end when all are in, after DRAIN_QUIET_MS without
 * one, or after the drain bound. lost = expected − delivered.
 *
 * Processes: the broker under test in its own process (started by the workload); the publisher in
 * the harness process; the consumers of a run together in one child process (amqp-consumers.ts),
 * so receiving cannot slow publishing through a shared event loop. Both read the machine-wide
 * monotonic clock (src/metrics/clock.ts). Latency runs publisher and consumer in the harness
 * process, so one clock stamps the send and reads the delivery.
 */
import amqp, { type Channel, type ChannelModel, type ConfirmChannel } from 'amqplib';
import { ChildChannel } from './child-channel.js';
import { monotonicMs } from '../metrics/clock.js';
import { LatencyHistogram } from '../metrics/latency-histogram.js';
import { SUBSCRIBER_NODE_ARGS_ENV } from './open-loop.js';
import { drainUntil, Wakeup } from './pacing.js';
import { processCpuSeconds, ResourceMeter, type ResourceSample } from './proc.js';

export const AMQP_PAYLOAD_BYTES = 128;
/** Confirms mode: publishes outstanding at most (the publisher waits for confirms beyond it). */
export const MAX_UNCONFIRMED = 1000;
/** Acks mode: the consumer's basic.qos prefetch count. */
export const PREFETCH = 100;
/** Deliveries that have not moved for this long are over (the rest is lost). */
export const DRAIN_QUIET_MS = 2000;
/** Publishes between two yields of the event loop while the channel takes them (amqplib writes in a setImmediate). */
const BURST = 256;
/** The last confirms of a run are awaited at most this long. */
const FINAL_CONFIRM_TIMEOUT_MS = 10_000;
/** How often the consumer process reports its count. */
export const CONSUMER_PROGRESS_MS = 100;
/** Latency: beyond this many messages outstanding the run stops (latency there only measures queueing). */
const LATENCY_MAX_IN_FLIGHT = 100_000;
/** Latency payload: f64 send time (performance.now(), ms) at 0, u8 "record me" at 8 (0 during warm-up). */
const STAMP_AT = 0;
const FLAG_AT = 8;
/**
 * Latency connections turn Nagle's algorithm off (amqplib leaves it on by default; both brokers set
 * TCP_NODELAY on their side). With it on, a publisher writing a few small frames per millisecond
 * waits for the broker's delayed ACK: p50 was 18 ms for shardmq and RabbitMQ alike (quick run,
 * this harness), the client's TCP stack and not the broker. Throughput runs keep amqplib's defaults.
 */
const LATENCY_SOCKET_OPTIONS = { noDelay: true };

export type AmqpShape = 'queue' | 'fanout' | 'acks';

/** A broker as the driver sees it: a URL for amqplib and the process whose CPU is "the server". */
export interface AmqpBroker {
  /** Figure key: `shardmq`, `rabbitmq`. */
  readonly key: string;
  readonly name: string;
  readonly url: string;
  readonly pid: number;
}

/** What the consumer process is told to open (argv[2], JSON). */
export interface AmqpConsumerSpec {
  readonly url: string;
  readonly shape: AmqpShape;
  readonly consumers: number;
  /** queue, acks: the queue (declared exclusive by the consumer); fanout: unused (server-named). */
  readonly queue: string;
  /** fanout: the exchange the consumers' queues are bound to. */
  readonly exchange: string;
  /** acks: basic.qos prefetch count. */
  readonly prefetch: number;
}

/** Consumer process → driver, over the IPC channel. */
export type AmqpConsumerReport =
  | { readonly type: 'ready' }
  | { readonly type: 'progress'; readonly delivered: number; readonly lastAt: number }
  | {
      readonly type: 'final';
      readonly delivered: number;
      readonly perConsumer: readonly number[];
      /** monotonicMs() of the last delivery (0: none). */
      readonly lastAt: number;
      readonly errors: number;
      readonly lastError: string;
      /** Consumer connections closed by the broker (or the network) before the end of the run. */
      readonly closed: number;
    }
  | { readonly type: 'failed'; readonly message: string };

export interface ThroughputSpec {
  readonly shape: AmqpShape;
  readonly consumers: number;
  readonly seconds: number;
  readonly maxMessages: number;
  readonly drainSeconds: number;
}

export interface ThroughputResult {
  readonly broker: string;
  readonly shape: AmqpShape;
  readonly consumers: number;
  /** Messages handed to channel.publish. */
  readonly sent: number;
  /** Confirms mode: publishes the broker acked / nacked (0 otherwise). */
  readonly confirmed: number;
  readonly nacked: number;
  /** sent × copies per message (the consumers in fanout, else 1). */
  readonly expected: number;
  readonly delivered: number;
  readonly lost: number;
  /** sent ÷ time from the first publish to the end of publishing (confirms: the last confirm). */
  readonly publishedPerSecond: number;
  readonly publishSeconds: number;
  /** delivered ÷ time from the first publish to the last delivery. */
  readonly deliveredPerSecond: number;
  readonly deliverSeconds: number;
  /** Time the publisher spent waiting for 'drain' (or confirms), ms. */
  readonly heldMs: number;
  readonly publisherErrors: number;
  readonly firstPublisherError: string;
  readonly consumerErrors: number;
  readonly lastConsumerError: string;
  readonly consumersClosed: number;
  /** The final confirms did not all come within their bound. */
  readonly confirmsTimedOut: boolean;
  /** CPU of the consumer process per wall second over the run (not counted as foreign). */
  readonly consumerCores: number;
  readonly resources: ResourceSample;
}

export interface LatencyResult {
  readonly broker: string;
  readonly rate: number;
  readonly histogram: LatencyHistogram;
  /** Measured part (after the warm-up). */
  readonly sent: number;
  readonly received: number;
  readonly seconds: number;
  readonly saturated: boolean;
  /** Largest lag of a send behind its schedule, ms. */
  readonly maxScheduleLagMs: number;
  readonly errors: number;
  readonly lastError: string;
  readonly resources: ResourceSample;
}

function describe(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Resolves at the channel's next 'drain' (its write buffer emptied), when it closes, or by `deadline` (monotonicMs). */
function drained(ch: Channel, deadline: number): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      ch.removeListener('drain', done);
      ch.removeListener('close', done);
      resolve();
    };
    const timer = setTimeout(done, Math.max(0, deadline - monotonicMs()));
    ch.once('drain', done);
    ch.once('close', done);
  });
}

/** Names unique per harness process and run, so no run sees another's leftovers. */
let runs = 0;
function names(): { queue: string; exchange: string } {
  const id = `${process.pid}.${++runs}`;
  return { queue: `bench.amqp.${id}`, exchange: `bench.amqp.fanout.${id}` };
}

/** The consumer child process of one run, as the driver sees it. */
class ConsumerProcess {
  delivered = 0;
  lastAt = 0;
  #channel: ChildChannel<AmqpConsumerReport> | null = null;

  get pid(): number {
    return this.#channel?.pid ?? 0;
  }

  static async start(spec: AmqpConsumerSpec): Promise<ConsumerProcess> {
    const cp = new ConsumerProcess();
    cp.#channel = await ChildChannel.start<AmqpConsumerReport>(
      new URL('./amqp-consumers.js', import.meta.url),
      spec,
      `amqp ${spec.shape} consumers`,
      (m) => {
        if (m.type === 'progress') {
          cp.delivered = m.delivered;
          cp.lastAt = m.lastAt;
        }
      },
      SUBSCRIBER_NODE_ARGS_ENV,
    );
    return cp;
  }

  async stop(): Promise<Extract<AmqpConsumerReport, { type: 'final' }> | null> {
    const r = (await this.#channel?.stop()) ?? null;
    return r !== null && r.type === 'final' ? r : null;
  }

  async kill(): Promise<void> {
    await this.#channel?.kill();
  }
}

/** The run's payload: `bytes` of printable letters. */
function payloadOf(bytes: number): Buffer {
  const b = Buffer.alloc(bytes);
  for (let i = 0; i < bytes; i++) b[i] = 0x61 + (i % 26);
  return b;
}

interface Publishing {
  sent: number;
  confirmed: number;
  nacked: number;
  heldMs: number;
  confirmsTimedOut: boolean;
}

/**
 * Fire-and-forget publishing: bursts of BURST while publish() returns true, a yield between bursts
 * so amqplib's muxer writes them out, and a wait for 'drain' whenever publish() returned false.
 */
async function publishOpen(
  ch: Channel,
  exchange: string,
  key: string,
  payload: Buffer,
  max: number,
  deadline: number,
  onError: (err: unknown) => void,
): Promise<Publishing> {
  const p: Publishing = { sent: 0, confirmed: 0, nacked: 0, heldMs: 0, confirmsTimedOut: false };
  while (p.sent < max && monotonicMs() < deadline) {
    let ok = true;
    try {
      for (let i = 0; i < BURST && ok && p.sent < max; i++) {
        ok = ch.publish(exchange, key, payload);
        p.sent++; // false still means "buffered": the message goes out once the buffer drains
      }
    } catch (err) {
      onError(err); // the channel or connection closed: stop publishing
      break;
    }
    if (ok) await nextTurn();
    else {
      const w0 = monotonicMs();
      await drained(ch, deadline);
      p.heldMs += monotonicMs() - w0;
    }
  }
  return p;
}

/** Confirmed publishing: at most MAX_UNCONFIRMED outstanding, 'drain' honoured too; then the last confirms (bounded). */
async function publishConfirmed(
  ch: ConfirmChannel,
  exchange: string,
  key: string,
  payload: Buffer,
  max: number,
  deadline: number,
  onError: (err: unknown) => void,
): Promise<Publishing> {
  const p: Publishing = { sent: 0, confirmed: 0, nacked: 0, heldMs: 0, confirmsTimedOut: false };
  const wakeup = new Wakeup();
  let outstanding = 0;
  const onConfirm = (err: unknown): void => {
    outstanding--;
    if (err === null || err === undefined) p.confirmed++;
    else p.nacked++;
    wakeup.wake();
  };
  while (p.sent < max && monotonicMs() < deadline) {
    if (outstanding >= MAX_UNCONFIRMED) {
      const w0 = monotonicMs();
      await wakeup.wait(Math.max(1, Math.min(100, deadline - w0)));
      p.heldMs += monotonicMs() - w0;
      continue;
    }
    let ok = true;
    try {
      while (ok && outstanding < MAX_UNCONFIRMED && p.sent < max) {
        outstanding++;
        p.sent++;
        ok = ch.publish(exchange, key, payload, {}, onConfirm);
      }
    } catch (err) {
      onError(err);
      break;
    }
    if (ok) await nextTurn();
    else {
      const w0 = monotonicMs();
      await drained(ch, deadline);
      p.heldMs += monotonicMs() - w0;
    }
  }
  const last = monotonicMs() + FINAL_CONFIRM_TIMEOUT_MS;
  while (outstanding > 0 && monotonicMs() < last) await wakeup.wait(100);
  p.confirmsTimedOut = outstanding > 0;
  return p;
}

/** One bounded throughput run of `shape` against `broker`. */
export async function runThroughput(broker: AmqpBroker, spec: ThroughputSpec): Promise<ThroughputResult> {
  const { queue, exchange } = names();
  const consumers = await ConsumerProcess.start({
    url: broker.url,
    shape: spec.shape,
    consumers: spec.consumers,
    queue,
    exchange,
    prefetch: PREFETCH,
  });
  let conn: ChannelModel | null = null;
  try {
    let publisherErrors = 0;
    let firstPublisherError = '';
    const onError = (err: unknown): void => {
      publisherErrors++;
      if (firstPublisherError === '') firstPublisherError = describe(err);
    };
    conn = await amqp.connect(broker.url);
    conn.on('error', onError);
    const ch = spec.shape === 'acks' ? await conn.createConfirmChannel() : await conn.createChannel();
    ch.on('error', onError);
    if (spec.shape === 'fanout') await ch.assertExchange(exchange, 'fanout', { durable: false });
    const [target, key] = spec.shape === 'fanout' ? [exchange, ''] : ['', queue];
    const payload = payloadOf(AMQP_PAYLOAD_BYTES);

    const meter = new ResourceMeter([broker.pid]);
    const consumerCpu0 = processCpuSeconds(consumers.pid);
    const t0 = monotonicMs();
    const deadline = t0 + spec.seconds * 1000;
    const p =
      spec.shape === 'acks'
        ? await publishConfirmed(ch as ConfirmChannel, target, key, payload, spec.maxMessages, deadline, onError)
        : await publishOpen(ch, target, key, payload, spec.maxMessages, deadline, onError);
    const publishEnd = monotonicMs();

    const copies = spec.shape === 'fanout' ? spec.consumers : 1;
    const expected = p.sent * copies;
    await drainUntil(
      () => consumers.delivered >= expected,
      () => consumers.delivered,
      { quietMs: DRAIN_QUIET_MS, maxMs: spec.drainSeconds * 1000 },
    );
    const measured = meter.stop();
    const consumerCpu = processCpuSeconds(consumers.pid) - consumerCpu0;
    const consumerCores = measured.seconds > 0 ? consumerCpu / measured.seconds : 0;
    const final = await consumers.stop();
    const delivered = final?.delivered ?? consumers.delivered;
    const lastAt = final?.lastAt ?? consumers.lastAt;
    const deliverSeconds = delivered > 0 && lastAt > t0 ? (lastAt - t0) / 1000 : 0;
    const publishSeconds = (publishEnd - t0) / 1000;
    if (spec.shape === 'fanout') await ch.deleteExchange(exchange).catch(onError);
    return {
      broker: broker.name,
      shape: spec.shape,
      consumers: spec.consumers,
      sent: p.sent,
      confirmed: p.confirmed,
      nacked: p.nacked,
      expected,
      delivered,
      lost: expected - delivered,
      publishedPerSecond: publishSeconds > 0 ? p.sent / publishSeconds : 0,
      publishSeconds,
      deliveredPerSecond: deliverSeconds > 0 ? delivered / deliverSeconds : 0,
      deliverSeconds,
      heldMs: p.heldMs,
      publisherErrors,
      firstPublisherError,
      consumerErrors: final === null ? 1 : final.errors,
      lastConsumerError: final?.lastError ?? (final === null ? 'the consumer process gave no final count' : ''),
      consumersClosed: final?.closed ?? 0,
      confirmsTimedOut: p.confirmsTimedOut,
      consumerCores,
      // The consumer process is part of the run, not other load on the machine.
      resources: { ...measured, foreignCores: Math.max(0, measured.foreignCores - consumerCores) },
    };
  } finally {
    await conn?.close().catch(() => undefined);
    await consumers.kill();
  }
}

/**
 * Publish→deliver latency at `rate` msg/s, 1→1 through one queue, consumer noAck: publisher and
 * consumer connections in this process. The publisher wakes about once per millisecond
 * (setTimeout) and publishes what is due since the last wake, each message stamped with
 * performance.now() as it is handed to amqplib; how late sends ran behind the schedule is reported
 * beside it (coordinated omission shows there). The first `warmSeconds` are not recorded.
 */
export async function runLatency(broker: AmqpBroker, rate: number, warmSeconds: number, seconds: number): Promise<LatencyResult> {
  const { queue } = names();
  const histogram = new LatencyHistogram();
  let received = 0;
  let errors = 0;
  let lastError = '';
  const onError = (err: unknown): void => {
    errors++;
    lastError = describe(err);
  };
  const conns: ChannelModel[] = [];
  try {
    const consumerConn = await amqp.connect(broker.url, LATENCY_SOCKET_OPTIONS);
    conns.push(consumerConn);
    consumerConn.on('error', onError);
    const cch = await consumerConn.createChannel();
    cch.on('error', onError);
    await cch.assertQueue(queue, { exclusive: true, durable: false });
    let lastDeliverAt = 0;
    await cch.consume(
      queue,
      (msg) => {
        if (msg === null) return; // cancelled by the broker
        received++;
        const now = performance.now();
        lastDeliverAt = now;
        if (msg.content[FLAG_AT] === 1) histogram.record((now - msg.content.readDoubleLE(STAMP_AT)) * 1000);
      },
      { noAck: true },
    );
    const pubConn = await amqp.connect(broker.url, LATENCY_SOCKET_OPTIONS);
    conns.push(pubConn);
    pubConn.on('error', onError);
    const pch = await pubConn.createChannel();
    pch.on('error', onError);

    const payload = payloadOf(AMQP_PAYLOAD_BYTES);
    const started = performance.now();
    const warmEnd = started + warmSeconds * 1000;
    const total = Math.round(rate * (warmSeconds + seconds));
    let sent = 0;
    let saturated = false;
    let maxLag = 0;
    let meter: ResourceMeter | null = null;
    let measuredFrom = 0;
    let sentAtMeasureStart = 0;
    while (sent < total) {
      const now = performance.now();
      if (meter === null && now >= warmEnd) {
        meter = new ResourceMeter([broker.pid]);
        measuredFrom = now;
        sentAtMeasureStart = sent;
      }
      const due = Math.min(total, Math.floor(((now - started) / 1000) * rate));
      if (due > sent) {
        // The oldest due message was scheduled at (sent + 1) / rate: how late does it go out?
        if (meter !== null) maxLag = Math.max(maxLag, now - (started + ((sent + 1) / rate) * 1000));
        payload[FLAG_AT] = meter !== null ? 1 : 0;
        let ok = true;
        try {
          while (sent < due) {
            payload.writeDoubleLE(performance.now(), STAMP_AT); // amqplib copies the content into its frame
            ok = pch.sendToQueue(queue, payload);
            sent++;
          }
        } catch (err) {
          onError(err);
          break;
        }
        // The socket is behind: wait (bounded); the schedule keeps running, so the send lag shows what this cost.
        if (!ok) await drained(pch, monotonicMs() + 5000);
      }
      if (sent - received > LATENCY_MAX_IN_FLIGHT) {
        saturated = true;
        break;
      }
      await sleep(1);
    }
    // Drain (bounded): whatever is still on its way.
    const drainDeadline = performance.now() + 3000;
    while (received < sent && performance.now() < drainDeadline) await sleep(5);
    const resources = (meter ?? new ResourceMeter([broker.pid])).stop();
    return {
      broker: broker.name,
      rate,
      histogram,
      sent: sent - sentAtMeasureStart,
      received: histogram.count,
      seconds: ((lastDeliverAt || performance.now()) - (measuredFrom || started)) / 1000,
      saturated,
      maxScheduleLagMs: maxLag,
      errors,
      lastError,
      resources,
    };
  } finally {
    for (const c of conns.reverse()) await c.close().catch(() => undefined);
  }
}
