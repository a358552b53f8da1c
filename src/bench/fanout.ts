/**
 * The fanout driver shared by ws-fanout, peers and latency's quick max: one publisher connection,
 * N subscriber connections on one topic, fixed-size messages, measured at the receivers.
 *
 * Pacing: a bounded window of messages in flight, counted end to end: the publisher sends only
 * while `sent - (fewest received by any subscriber) < window`. This keeps every system below its
 * slow-consumer limits (shardmq's private topic queue drops the oldest past --topic-buffer, 10,000 by
 * default; NATS and Redis cut slow subscribers), so what is measured is delivered throughput, with
 * nothing dropped. Delivered, not sent: the clock stops when the last subscriber has its last message.
 * Every run is bounded by a message count and a time limit, and ends by itself.
 */
import { BinaryFrameWriter } from '../protocol/ws-binary-encode.js';
import { Wakeup } from './pacing.js';
import { ResourceMeter, type ResourceSample } from './proc.js';
import { BenchWsClient } from './ws-binary-client.js';

export interface FanoutPublisher {
  /** Sends `n` more messages, all carrying the run's payload. */
  publish(n: number): void;
  /** True while the client's own send buffer is too full to add more. */
  congested(): boolean;
  close(): Promise<void>;
}

export interface FanoutSubscriber {
  received(): number;
  /** performance.now() of the last message received. */
  lastAt(): number;
  close(): Promise<void>;
}

/** A message system under test: how to open a publisher and a (subscribed, live) subscriber. */
export interface FanoutSystem {
  readonly name: string;
  /** Server processes whose CPU and RSS the runs report. */
  readonly pids: readonly number[];
  publisher(topic: string, payload: Uint8Array, batch: number): Promise<FanoutPublisher>;
  /** Resolves once the subscription is live at the server; `onMessages` runs after each receive burst. */
  subscriber(topic: string, onMessages: () => void): Promise<FanoutSubscriber>;
}

export interface FanoutSpec {
  readonly subscribers: number;
  /** Messages to publish at most. */
  readonly messages: number;
  /** Sending stops after this long even if `messages` were not all sent. */
  readonly maxSeconds: number;
  readonly payloadBytes: number;
  /** Messages in flight per subscriber (see the module comment). */
  readonly window: number;
  /** Messages per publish call (one PUBLISH_BATCH, one NATS burst, one Redis pipeline). */
  readonly batch: number;
  readonly topic: string;
}

export interface FanoutResult {
  readonly system: string;
  readonly subscribers: number;
  readonly sent: number;
  readonly delivered: number;
  /** Every subscriber got every message. */
  readonly complete: boolean;
  readonly seconds: number;
  /** Messages delivered per second, summed over subscribers. */
  readonly deliveredPerSecond: number;
  /** Messages published per second (delivered ÷ subscribers, over the same clock). */
  readonly publishedPerSecond: number;
  readonly resources: ResourceSample;
}

/** Default pacing: 8,000 in flight per subscriber stays below shardmq's 10,000-message topic buffer. */
export const DEFAULT_WINDOW = 8000;
export const DEFAULT_BATCH = 250;
/** A drain that makes no progress for this long ends the run as incomplete. */
const STALL_MS = 2000;

function tick(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** One bounded fanout run: opens the connections, publishes paced by the window, waits for delivery. */
export async function runFanout(system: FanoutSystem, spec: FanoutSpec): Promise<FanoutResult> {
  const wakeup = new Wakeup();
  const subs: FanoutSubscriber[] = [];
  let pub: FanoutPublisher | null = null;
  try {
    for (let i = 0; i < spec.subscribers; i++) subs.push(await system.subscriber(spec.topic, wakeup.wake));
    const payload = new Uint8Array(spec.payloadBytes);
    for (let i = 0; i < payload.length; i++) payload[i] = 0x61 + (i % 26);
    pub = await system.publisher(spec.topic, payload, spec.batch);
    const fewest = (): number => {
      let m = Infinity;
      for (const s of subs) m = Math.min(m, s.received());
      return m;
    };

    const meter = new ResourceMeter(system.pids);
    const started = performance.now();
    const deadline = started + spec.maxSeconds * 1000;
    let sent = 0;
    while (sent < spec.messages && performance.now() < deadline) {
      const room = spec.window - (sent - fewest());
      if (room <= 0 || pub.congested()) {
        await wakeup.wait(50);
        continue;
      }
      const n = Math.min(spec.batch, room, spec.messages - sent);
      pub.publish(n);
      sent += n;
      await tick(); // let the socket write and the subscribers read
    }
    // Drain: every subscriber must get every message; a drain that stalls ends the run.
    let last = -1;
    let lastProgressAt = performance.now();
    const total = (): number => subs.reduce((s, x) => s + x.received(), 0);
    while (fewest() < sent) {
      const now = performance.now();
      const t = total();
      if (t !== last) {
        last = t;
        lastProgressAt = now;
      } else if (now - lastProgressAt > STALL_MS) break;
      await wakeup.wait(50);
    }
    const delivered = total();
    const endAt = Math.max(...subs.map((s) => s.lastAt()));
    const resources = meter.stop();
    const seconds = (endAt - started) / 1000;
    return {
      system: system.name,
      subscribers: spec.subscribers,
      sent,
      delivered,
      complete: delivered === sent * spec.subscribers,
      seconds,
      deliveredPerSecond: seconds > 0 ? delivered / seconds : 0,
      publishedPerSecond: seconds > 0 ? delivered / spec.subscribers / seconds : 0,
      resources,
    };
  } finally {
    await pub?.close();
    await Promise.all(subs.map((s) => s.close()));
  }
}

/** shardmq over the binary WebSocket protocol: PUBLISH_BATCH out, DELIVER ops counted in. */
export function shardmqSystem(url: string, pid: number, name = 'shardmq (binary WebSocket)'): FanoutSystem {
  return {
    name,
    pids: [pid],
    async publisher(topic, payload, batch) {
      const client = await BenchWsClient.connect(url);
      const destination = `/topic/${topic}`;
      // Pre-encoded frames, one per batch size used, never modified after: safe to hand to `ws`.
      const frames = new Map<number, Uint8Array>();
      const frameOf = (n: number): Uint8Array => {
        let f = frames.get(n);
        if (f === undefined) {
          f = new BinaryFrameWriter()
            .publishBatch(
              destination,
              Array.from({ length: n }, () => payload),
            )
            .finishCopy();
          frames.set(n, f);
        }
        return f;
      };
      frameOf(batch);
      return {
        publish: (n) => client.sendPublishes(frameOf(n), n, n * payload.byteLength),
        congested: () => client.bufferedAmount > 1 << 20 || client.creditWaiting > 0,
        close: async () => {
          if (client.errors > 0) throw new Error(`publisher got ${client.errors} ERROR op(s); last: ${client.lastError}`);
          await client.close();
        },
      };
    },
    async subscriber(topic, onMessages) {
      const client = await BenchWsClient.connect(url);
      client.onFrame = onMessages;
      await client.subscribe(1, `/topic/${topic}`);
      return {
        received: () => client.delivered,
        lastAt: () => client.lastDeliverAt,
        close: () => client.close(),
      };
    },
  };
}
