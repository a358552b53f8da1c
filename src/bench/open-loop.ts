/**
 * The open-loop driver (design.md §4): one publisher sending as fast as its client lets it, paced
 * only by the system's own flow control the way nats.js users drive NATS — fire-and-forget
 * publishes, a flush() after every 1024 of them, at most 4 flushes outstanding (the oldest is
 * awaited when 4 are pending) — and never by its subscribers. What the subscribers do not get is
 * counted as lost.
 *
 * Processes: the server under test runs in its own process (started by the workload); the
 * publisher runs in the harness process; the subscribers run together in one child process
 * (open-loop-subscribers.ts), so that receiving cannot slow the publisher down through a shared
 * event loop: the publisher's pace is the server's flow control, nothing else.
 *
 * Clocks: both processes read the same monotonic clock (process.hrtime, CLOCK_MONOTONIC), so the
 * subscribers' last-delivery time and the publisher's first-publish time are comparable.
 *
 * Every run is bounded: at most `messages` publishes and `maxSeconds` of publishing; the final
 * flushes are awaited at most 10 s; delivery then ends when every subscriber has every message,
 * when deliveries have been quiet for 1 s, or after `drainSeconds`, whichever comes first.
 */
import { ChildChannel } from './child-channel.js';
import { monotonicMs } from '../metrics/clock.js';
import { processCpuSeconds, ResourceMeter, type ResourceSample } from './proc.js';

/** Publishes between two flush() calls, and flushes outstanding at most (nats.js practice). */
/** Extra node flags for the subscriber process, like the broker's SHARDMQ_BENCH_NODE_ARGS (profiling the receive side). */
export const SUBSCRIBER_NODE_ARGS_ENV = 'SHARDMQ_BENCH_SUBSCRIBER_NODE_ARGS';
export const FLUSH_EVERY = 1024;
export const MAX_PENDING_FLUSHES = 4;
/** Deliveries that have not moved for this long are over (the rest is lost). */
export const QUIET_MS = 1000;
/** The last flushes of a run are awaited at most this long. */
const FINAL_FLUSH_TIMEOUT_MS = 10_000;
/** A subscriber process that is not subscribed by then fails the run. */
/** How often the subscriber process reports its count (and the driver polls during the drain). */
export const PROGRESS_INTERVAL_MS = 100;

export type SubscriberKind = 'shardmq' | 'shardmq-json' | 'nats' | 'uws';

/** What the subscriber process is told to open (argv[2], JSON). */
export interface SubscriberSpec {
  readonly kind: SubscriberKind;
  /**
   * shardmq: the broker's http:// URL; nats: host:port; uws: the pub/sub server's ws:// URL. shardmq
   * and nats: several, comma-separated (a cluster's nodes), take the subscribers in turn.
   */
  readonly url: string;
  readonly subscribers: number;
  /** shardmq: `/topic/bench`; nats: `bench`; uws: unused (the server's topic). */
  readonly destination: string;
  /** shardmq: the vhost the subscribers connect to (`/` when absent). */
  readonly vhost?: string;
}

/** Subscriber process → driver, over the IPC channel. */
export type SubscriberReport =
  | { readonly type: 'ready' }
  | { readonly type: 'progress'; readonly delivered: number; readonly lastAt: number }
  | {
      readonly type: 'final';
      readonly delivered: number;
      readonly perSubscriber: readonly number[];
      /** monotonicMs() of the last delivery (0: none). */
      readonly lastAt: number;
      readonly errors: number;
      readonly lastError: string;
      /** Subscriber connections the server (or the network) closed before the end of the run. */
      readonly closed: number;
    }
  | { readonly type: 'failed'; readonly message: string };

/** Driver → subscriber process. */
export type SubscriberCommand = { readonly type: 'stop' };

/** Milliseconds on the machine-wide monotonic clock: the same in every process. */
export { monotonicMs };

export interface OpenLoopPublisher {
  /** Publishes one message carrying the run's payload, fire-and-forget. */
  publish(): void;
  /** Resolves once the server has taken everything published before it (the system's own flush). */
  flush(): Promise<void>;
  close(): Promise<void>;
}

/** A message system as the open-loop driver drives it. */
export interface OpenLoopSystem {
  /** Figure key, e.g. `shardmq_confirms`. */
  readonly key: string;
  readonly name: string;
  /** Server processes whose CPU counts as "the server". */
  readonly pids: readonly number[];
  subscriberSpec(subscribers: number): SubscriberSpec;
  /** A connected publisher; `onError` receives failures nobody awaits (refused publishes, drops). */
  publisher(payload: Uint8Array, onError: (err: unknown) => void): Promise<OpenLoopPublisher>;
  /** Messages the server says it dropped so far (shardmq: the shards' `dropped` counters), if it says. */
  dropped?(): Promise<number | null>;
}

export interface OpenLoopSpec {
  readonly subscribers: number;
  readonly messages: number;
  readonly maxSeconds: number;
  readonly drainSeconds: number;
  readonly payloadBytes: number;
}

export interface OpenLoopResult {
  readonly key: string;
  readonly system: string;
  readonly subscribers: number;
  /** Messages handed to the publishing client. */
  readonly published: number;
  /** published ÷ time from the first publish until the last flush resolved. */
  readonly publishedPerSecond: number;
  readonly publishSeconds: number;
  /** published × subscribers. */
  readonly expected: number;
  readonly delivered: number;
  /** expected − delivered (negative would mean duplicates). */
  readonly lost: number;
  readonly lostPercent: number;
  /** delivered (all subscribers) ÷ time from the first publish to the last delivery. */
  readonly deliveredPerSecond: number;
  readonly deliverSeconds: number;
  /** Fewest and most messages one subscriber got. */
  readonly fewestPerSubscriber: number;
  readonly mostPerSubscriber: number;
  /** Server CPU (user + system, all threads) from the first publish to the last delivery seen. */
  readonly serverCpuSeconds: number;
  readonly cpuUsPerDelivered: number;
  /** Messages the server itself counted as dropped during the run, null if it does not say. */
  readonly serverDropped: number | null;
  /** Flushes that failed, publishes that threw, errors nobody awaited. */
  readonly publisherErrors: number;
  readonly firstPublisherError: string;
  readonly subscriberErrors: number;
  readonly lastSubscriberError: string;
  readonly subscribersClosed: number;
  /** CPU of the subscriber process per wall second over the run (not counted in resources.foreignCores). */
  readonly subscriberCores: number;
  /** Publishing stopped at maxSeconds before all messages were sent. */
  readonly hitTimeCap: boolean;
  /** The final flushes did not resolve within their bound. */
  readonly flushTimedOut: boolean;
  readonly resources: ResourceSample;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function describe(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}

/** The subscriber child process of one run, as the driver sees it. */
class SubscriberProcess {
  delivered = 0;
  /** The subscribers' last-delivery time as of their latest progress report (monotonicMs()). */
  lastAt = 0;
  /** monotonicMs() when `delivered` was last seen to move. */
  changedAt = 0;
  /** Called each time `delivered` is seen to move. */
  onChange: (() => void) | null = null;
  #channel: ChildChannel<SubscriberReport> | null = null;

  get pid(): number {
    return this.#channel?.pid ?? 0;
  }

  static async start(spec: SubscriberSpec): Promise<SubscriberProcess> {
    const sp = new SubscriberProcess();
    sp.#channel = await ChildChannel.start<SubscriberReport>(
      new URL('./open-loop-subscribers.js', import.meta.url),
      spec,
      `${spec.kind} subscribers`,
      (m) => {
        if (m.type === 'progress' && m.delivered !== sp.delivered) {
          sp.delivered = m.delivered;
          sp.lastAt = m.lastAt;
          sp.changedAt = monotonicMs();
          sp.onChange?.();
        }
      },
      SUBSCRIBER_NODE_ARGS_ENV,
    );
    return sp;
  }

  /** Asks for the final count, then lets the process close its connections and exit (bounded). */
  async stop(): Promise<Extract<SubscriberReport, { type: 'final' }> | null> {
    const r = (await this.#channel?.stop()) ?? null;
    return r !== null && r.type === 'final' ? r : null;
  }

  async kill(): Promise<void> {
    await this.#channel?.kill();
  }
}

/** The run's payload: `bytes` of printable letters. */
export function benchPayload(bytes: number): Uint8Array {
  const payload = new Uint8Array(bytes);
  for (let i = 0; i < payload.length; i++) payload[i] = 0x61 + (i % 26);
  return payload;
}

/** What publishPaced did. */
export interface PacedPublishing {
  readonly sent: number;
  /** Publishing stopped at the deadline, not at the message count. */
  readonly hitTimeCap: boolean;
  /** The last flushes did not resolve within FINAL_FLUSH_TIMEOUT_MS. */
  readonly flushTimedOut: boolean;
  /** When the last flush resolved (monotonicMs), or when the final wait gave up. */
  readonly publishEnd: number;
  /** Time spent waiting for the oldest flush in waits of at least HELD_WAIT_MS (the server holding the publisher). */
  readonly heldMs: number;
  readonly longestWaitMs: number;
}

/** A wait for the oldest flush this long counts as the server holding the publisher. */
export const HELD_WAIT_MS = 100;

/**
 * The one pacing every open-loop publisher gets, whatever the system: `publish(seq)` fire-and-forget,
 * `flush()` after every FLUSH_EVERY publishes, and when MAX_PENDING_FLUSHES are outstanding the
 * oldest is awaited (bounded by `deadline`, so a server that holds the publisher for good ends the
 * run instead of hanging it). Stops at `messages`, at the deadline, or when a publish throws.
 */
export async function publishPaced(
  publish: (seq: number) => void,
  flush: () => Promise<void>,
  messages: number,
  deadline: number,
  onError: (err: unknown) => void,
  onProgress?: (sent: number, heldMs: number) => void,
): Promise<PacedPublishing> {
  const pending: Promise<void>[] = [];
  let lastFlushAt = monotonicMs();
  let sent = 0;
  let hitTimeCap = false;
  let broken = false;
  let heldMs = 0;
  let longestWaitMs = 0;
  let lastProgress = lastFlushAt;
  const settled = (): void => {
    lastFlushAt = monotonicMs();
  };
  while (sent < messages) {
    const n = Math.min(FLUSH_EVERY, messages - sent);
    try {
      for (let i = 0; i < n; i++) {
        publish(sent);
        sent++;
      }
    } catch (err) {
      onError(err); // a publish that throws (connection closed): stop publishing
      broken = true;
    }
    pending.push(
      flush().then(settled, (err: unknown) => {
        onError(err);
        settled();
      }),
    );
    if (broken) break;
    if (pending.length >= MAX_PENDING_FLUSHES) {
      const w0 = monotonicMs();
      const done = await within(pending.shift() as Promise<void>, deadline - w0);
      const waited = monotonicMs() - w0;
      if (waited >= HELD_WAIT_MS) heldMs += waited;
      longestWaitMs = Math.max(longestWaitMs, waited);
      if (!done) {
        hitTimeCap = true;
        break;
      }
    }
    const now = monotonicMs();
    if (now >= deadline && sent < messages) {
      hitTimeCap = true;
      break;
    }
    if (onProgress !== undefined && now - lastProgress >= 1000) {
      lastProgress = now;
      onProgress(sent, heldMs);
    }
  }
  const flushed = await within(Promise.all(pending), FINAL_FLUSH_TIMEOUT_MS);
  return { sent, hitTimeCap, flushTimedOut: !flushed, publishEnd: flushed ? lastFlushAt : monotonicMs(), heldMs, longestWaitMs };
}

/** `p` settled within `ms` (true) or not (false); the timer does not outlive the race. */
export async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), Math.max(0, ms));
  });
  try {
    return await Promise.race([p.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** One bounded open-loop run: subscribers live, publisher paced by flushes only, deliveries counted. */
export async function runOpenLoop(system: OpenLoopSystem, spec: OpenLoopSpec): Promise<OpenLoopResult> {
  const subs = await SubscriberProcess.start(system.subscriberSpec(spec.subscribers));
  let pub: OpenLoopPublisher | null = null;
  try {
    let publisherErrors = 0;
    let firstPublisherError = '';
    const onError = (err: unknown): void => {
      publisherErrors++;
      if (firstPublisherError === '') firstPublisherError = describe(err);
    };
    pub = await system.publisher(benchPayload(spec.payloadBytes), onError);
    const droppedBefore = (await system.dropped?.()) ?? null;
    const serverCpu = (): number => system.pids.reduce((s, pid) => s + processCpuSeconds(pid), 0);

    const meter = new ResourceMeter(system.pids);
    const subCpu0 = processCpuSeconds(subs.pid);
    const cpu0 = serverCpu();
    let cpuAtLastDelivery = cpu0;
    subs.onChange = () => {
      cpuAtLastDelivery = serverCpu();
    };

    // ---- publish: fire-and-forget, flush every FLUSH_EVERY, at most MAX_PENDING_FLUSHES outstanding
    const t0 = monotonicMs();
    const paced = await publishPaced(pub.publish, pub.flush, spec.messages, t0 + spec.maxSeconds * 1000, onError);
    const { sent, hitTimeCap, flushTimedOut, publishEnd } = paced;

    // ---- drain: all delivered, or quiet for QUIET_MS, or drainSeconds
    const expected = sent * spec.subscribers;
    const drainStart = monotonicMs();
    const drainDeadline = drainStart + spec.drainSeconds * 1000;
    for (;;) {
      const now = monotonicMs();
      if (subs.delivered >= expected || now >= drainDeadline) break;
      if (now - Math.max(subs.changedAt, drainStart) >= QUIET_MS) break;
      await sleep(20);
    }
    const measured = meter.stop();
    const subCpu = processCpuSeconds(subs.pid) - subCpu0;
    const subscriberCores = measured.seconds > 0 ? subCpu / measured.seconds : 0;
    // The subscriber process is part of the run, not other load on the machine.
    const resources: ResourceSample = { ...measured, foreignCores: Math.max(0, measured.foreignCores - subscriberCores) };
    const droppedAfter = (await system.dropped?.()) ?? null;
    const final = await subs.stop();
    const delivered = final?.delivered ?? subs.delivered;
    const lastAt = final?.lastAt ?? subs.lastAt;
    const deliverSeconds = delivered > 0 && lastAt > t0 ? (lastAt - t0) / 1000 : 0;
    const publishSeconds = (publishEnd - t0) / 1000;
    const serverCpuSeconds = cpuAtLastDelivery - cpu0;
    const perSub = final?.perSubscriber ?? [];
    return {
      key: system.key,
      system: system.name,
      subscribers: spec.subscribers,
      published: sent,
      publishedPerSecond: publishSeconds > 0 ? sent / publishSeconds : 0,
      publishSeconds,
      expected,
      delivered,
      lost: expected - delivered,
      lostPercent: expected > 0 ? ((expected - delivered) / expected) * 100 : 0,
      deliveredPerSecond: deliverSeconds > 0 ? delivered / deliverSeconds : 0,
      deliverSeconds,
      fewestPerSubscriber: perSub.length > 0 ? Math.min(...perSub) : 0,
      mostPerSubscriber: perSub.length > 0 ? Math.max(...perSub) : 0,
      serverCpuSeconds,
      cpuUsPerDelivered: delivered > 0 ? (serverCpuSeconds * 1e6) / delivered : NaN,
      serverDropped: droppedBefore !== null && droppedAfter !== null ? droppedAfter - droppedBefore : null,
      publisherErrors,
      firstPublisherError,
      subscriberErrors: final === null ? 1 : final.errors,
      lastSubscriberError: final?.lastError ?? (final === null ? 'the subscriber process gave no final count' : ''),
      subscribersClosed: final?.closed ?? 0,
      subscriberCores,
      hitTimeCap,
      flushTimedOut,
      resources,
    };
  } finally {
    await pub?.close().catch(() => undefined);
    await subs.kill();
  }
}
