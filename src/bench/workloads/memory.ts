/**
 * Memory and loss with a stalled subscriber (issue 12; design.md §4: "a consumer that never reads
 * costs at most its configured buffer", and a subscriber that keeps up loses nothing).
 *
 * Processes: the broker with its defaults (`startBrokerProcess([])`) in its own process; one
 * publisher in the harness process; two subscribers in one child process (memory-subscribers.ts),
 * each its own connection of the exported client, both on /topic/bench.memory:
 * - HEALTHY: `ack: 'auto'`, counts and checks order by the sequence number in the payload;
 * - STALLED: stops reading its socket as soon as deliveries start. The exported client does not
 *   expose its `ws` (a private field), so the stall goes through the client's own backpressure: a
 *   handler that does not return until told, and `bufferSize: 1` with `overflow: 'block'`, so the
 *   client pauses its `ws` with the second delivery, which pauses the TCP socket (`socket.pause()`,
 *   what the old raw-client version of this workload did by hand). The kernel's buffers fill,
 *   then uWS's past --socket-high-water; after --slow-consumer-ms the broker declares it slow and
 *   its shard drops its oldest messages (policy `drop`, the default), reporting them.
 *
 * Steps:
 * 1. Warm-up: the same volume through one reading subscriber (runOpenLoop), then the stalled scenario
 *    below once at the same volume, figures discarded, so the heap (the shard's young generation
 *    grows once under a stalled queue's per-message allocations), the rings and the allocator are at
 *    their working size and the RSS baseline is warm.
 * 2. Publish 1,000,000 messages of 128 bytes (quick: 200,000), bounded by a time cap, with the
 *    exported client driven as open-loop.ts drives it: publishNoWait, flush() after every 1024, at
 *    most 4 flushes outstanding. One difference: the wait for the oldest flush is bounded by the
 *    time cap, so a broker that holds the publisher for good ends the run instead of hanging it.
 *    The broker's RSS is sampled every 50 ms from just before the first publish until the healthy
 *    subscriber has drained (the stalled one still not reading).
 * 3. The stalled subscriber reads again; the run waits (bounded) until its deliveries and notices
 *    stop, then checks that stalled received + notified dropped = published, and that the notified
 *    total equals the broker's counters (/v1/stats slowConsumers.dropped, and the sum of the
 *    shards' `dropped`), each taken as a delta over the measured phase.
 *
 * Memory bound, from the broker's defaults (config/defaults.ts):
 *   socketHighWater + deliveryWindowBytes + topicBuffer × (payload + 512 B bookkeeping)
 *   + ringBytes (what a pressing queue may overshoot by) + overflowBytes (main-thread held publishes)
 *   + publishWindowBytes (one publisher's credit)
 * RSS includes garbage not yet collected, so the growth is an upper bound on what is retained.
 * One run (a footprint and an accounting check, not a rate).
 */
import {
  DEFAULT_DELIVERY_WINDOW_BYTES,
  DEFAULT_OVERFLOW_BYTES,
  DEFAULT_PUBLISH_WINDOW_BYTES,
  DEFAULT_RING_BYTES,
  DEFAULT_SOCKET_HIGH_WATER,
  DEFAULT_SLOW_CONSUMER_MS,
  DEFAULT_TOPIC_BUFFER,
} from '../../config/defaults.js';
import { connect } from '../../index.js';
import { startBrokerProcess, type BrokerProcess } from '../broker-process.js';
import { ChildChannel } from '../child-channel.js';
import {
  type MemorySubscriberCommand,
  type MemorySubscriberCounts,
  type MemorySubscriberReport,
  type MemorySubscriberSpec,
  writeSeq,
} from '../memory-subscribers-ipc.js';
import {
  benchPayload,
  FLUSH_EVERY,
  HELD_WAIT_MS,
  MAX_PENDING_FLUSHES,
  monotonicMs,
  publishPaced,
  QUIET_MS,
  runOpenLoop,
} from '../open-loop.js';
import { shardmqOpenLoop } from '../open-loop-systems.js';
import { ResourceMeter, mib } from '../proc.js';
import { formatRate } from '../sample-stats.js';
import type { Workload, WorkloadContext, WorkloadResult } from '../workload.js';

const PAYLOAD_BYTES = 128;
const DESTINATION = '/topic/bench.memory';
/** Allowance per held message for the queue entry, its headers and the allocator (JS objects). */
const BOOKKEEPING_BYTES = 512;
const RSS_SAMPLE_MS = 50;
/** After the stalled subscriber reads again: over when nothing moved for this long (notices come ≤ 1/s). */
const STALLED_QUIET_MS = 3000;

/** The bound, and its terms for the notes. */
const BOUND_TERMS = {
  socketHighWater: DEFAULT_SOCKET_HIGH_WATER,
  deliveryWindowBytes: DEFAULT_DELIVERY_WINDOW_BYTES,
  topicBuffer: DEFAULT_TOPIC_BUFFER * (PAYLOAD_BYTES + BOOKKEEPING_BYTES),
  ringBytes: DEFAULT_RING_BYTES,
  overflowBytes: DEFAULT_OVERFLOW_BYTES,
  publishWindowBytes: DEFAULT_PUBLISH_WINDOW_BYTES,
};
const BOUND = Object.values(BOUND_TERMS).reduce((s, x) => s + x, 0);

const count = (x: number): string => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : 'n/a');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const describe = (err: unknown): string => (err instanceof Error ? `${err.name}: ${err.message}` : String(err));

// ---- the broker's counters ---------------------------------------------------------------------

interface DroppedSub {
  readonly connection: number;
  readonly destination: string;
  readonly dropped: number;
  readonly slow: boolean;
}

interface BrokerCounters {
  /** /v1/stats slowConsumers.dropped (the front's count of what it was told, all subscriptions). */
  readonly slowConsumersDropped: number;
  /** Sum of the shards' `dropped` counters. */
  readonly shardsDropped: number;
  /** /v1/stats slowConsumers.streamDropped: what shared streams' slow members lost (counted on the main thread). */
  readonly streamDropped: number;
  readonly slowEpisodes: number;
  readonly slowConnections: number;
  readonly subscriptions: readonly DroppedSub[];
}

const NO_COUNTERS: BrokerCounters = {
  slowConsumersDropped: NaN,
  shardsDropped: NaN,
  streamDropped: NaN,
  slowEpisodes: NaN,
  slowConnections: NaN,
  subscriptions: [],
};

async function brokerCounters(url: string): Promise<BrokerCounters> {
  try {
    const res = await fetch(`${url}/v1/stats`, { signal: AbortSignal.timeout(5000) });
    if (!res.ok) return NO_COUNTERS;
    const body = (await res.json()) as {
      shards?: Array<{ dropped?: number }>;
      slowConsumers?: { dropped?: number; streamDropped?: number; subscriptions?: DroppedSub[] };
      connections?: { slowEpisodes?: number; slowConnections?: number };
    };
    const num = (x: unknown): number => (typeof x === 'number' ? x : NaN);
    return {
      slowConsumersDropped: num(body.slowConsumers?.dropped),
      shardsDropped: Array.isArray(body.shards) ? body.shards.reduce((s, sh) => s + num(sh.dropped), 0) : NaN,
      streamDropped: num(body.slowConsumers?.streamDropped),
      slowEpisodes: num(body.connections?.slowEpisodes),
      slowConnections: num(body.connections?.slowConnections),
      subscriptions: body.slowConsumers?.subscriptions ?? [],
    };
  } catch {
    return NO_COUNTERS;
  }
}

/** The broker's `slow consumer` log lines (info), as they arrive on its stdout. */
interface SlowEvent {
  readonly at: number;
  readonly connection: number;
  readonly slow: boolean;
  /** The broker's RSS when the line arrived. */
  readonly rss: number;
}

function watchSlowLog(broker: BrokerProcess): SlowEvent[] {
  const events: SlowEvent[] = [];
  let buf = '';
  broker.child.stdout?.on('data', (d: Buffer) => {
    buf += d.toString();
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (!line.includes('slow consumer')) continue;
      try {
        const rec = JSON.parse(line) as { msg?: string; connection?: number };
        if (typeof rec.msg !== 'string' || !rec.msg.startsWith('slow consumer')) continue;
        events.push({
          at: monotonicMs(),
          connection: rec.connection ?? -1,
          slow: !rec.msg.includes('keeps up again'),
          rss: broker.rssBytes(),
        });
      } catch {
        // Not a JSON line: not ours.
      }
    }
  });
  return events;
}

// ---- the subscriber process ----------------------------------------------------------------------

class MemorySubscribers {
  counts: MemorySubscriberCounts | null = null;
  /** monotonicMs() when `counts` last moved. */
  changedAt = monotonicMs();
  #channel: ChildChannel<MemorySubscriberReport> | null = null;

  static async start(spec: MemorySubscriberSpec): Promise<MemorySubscribers> {
    const sp = new MemorySubscribers();
    sp.#channel = await ChildChannel.start<MemorySubscriberReport>(
      new URL('../memory-subscribers.js', import.meta.url),
      spec,
      'memory subscribers',
      (m) => {
        if (m.type === 'progress' || m.type === 'final') {
          sp.counts = m.counts;
          if (m.type === 'progress') sp.changedAt = monotonicMs();
        }
      },
    );
    return sp;
  }

  send(command: MemorySubscriberCommand): void {
    this.#channel?.send(command);
  }

  /** The final counts (null if the process gave none within 5 s); the process then exits (bounded). */
  async stop(): Promise<MemorySubscriberCounts | null> {
    const r = (await this.#channel?.stop()) ?? null;
    return r !== null && r.type === 'final' ? r.counts : null;
  }

  async kill(): Promise<void> {
    await this.#channel?.kill();
  }
}

const ZERO_STREAM = { received: 0, outOfOrder: 0, lastSeq: -1 };

// ---- the workload --------------------------------------------------------------------------------

interface Measured {
  published: number;
  publishSeconds: number;
  hitTimeCap: boolean;
  flushTimedOut: boolean;
  publisherErrors: number;
  firstPublisherError: string;
  heldMs: number;
  longestWaitMs: number;
  noCreditMs: number;
  baseline: number;
  peak: number;
  peakAtMs: number;
  peakBeforeSlow: number;
  endOfStall: number;
  rssSamples: number;
  brokerCores: number;
  foreignCores: number;
  healthyDrainSeconds: number;
  whileStalled: BrokerCounters;
  stalledReadPaused: boolean;
  resumeSeconds: number;
  before: BrokerCounters;
  after: BrokerCounters;
  final: MemorySubscriberCounts | null;
  slowEvents: SlowEvent[];
  t0: number;
}

async function measure(
  ctx: WorkloadContext,
  broker: BrokerProcess,
  messages: number,
  maxSeconds: number,
  drainSeconds: number,
): Promise<Measured> {
  const slowEvents = watchSlowLog(broker);
  const before = await brokerCounters(broker.url);
  const subs = await MemorySubscribers.start({ url: broker.url, destination: DESTINATION });
  const pub = await connect(broker.url, { confirms: false, reconnect: false }).catch(async (err: unknown) => {
    await subs.kill();
    throw err;
  });
  try {
    let publisherErrors = 0;
    let firstPublisherError = '';
    const onError = (err: unknown): void => {
      publisherErrors++;
      if (firstPublisherError === '') firstPublisherError = describe(err);
    };
    pub.on('error', onError);
    const healthy = (): number => subs.counts?.healthy.received ?? 0;

    await sleep(500); // subscriptions settled, the harness's own start-up garbage out of the way
    const baseline = broker.rssBytes();
    let peak = baseline;
    let peakAt = monotonicMs();
    /** Highest RSS before the broker declared any subscriber slow (the publisher held, nothing dropped yet). */
    let peakBeforeSlow = baseline;
    let rssSamples = 0;
    let noCreditSamples = 0;
    let sampling = true;
    const sampler = setInterval(() => {
      const rss = broker.rssBytes();
      rssSamples++;
      if (rss > peak) {
        peak = rss;
        peakAt = monotonicMs();
      }
      if (!slowEvents.some((e) => e.slow)) peakBeforeSlow = Math.max(peakBeforeSlow, rss);
      if (sampling && pub.stats.creditWaiting > 0) noCreditSamples++;
    }, RSS_SAMPLE_MS);
    const meter = new ResourceMeter([broker.pid]);

    // ---- publish: as open-loop.ts publishes (publishPaced), the wait for the oldest flush bounded by the time cap
    const payload = benchPayload(PAYLOAD_BYTES);
    const t0 = monotonicMs();
    const paced = await publishPaced(
      (seq) => {
        writeSeq(payload, seq); // the client copies a borrowed payload before the call returns
        pub.publishNoWait(DESTINATION, payload);
      },
      () => pub.flush(),
      messages,
      t0 + maxSeconds * 1000,
      onError,
      (sent, heldMs) =>
        ctx.progress(
          `memory: published ${count(sent)}, healthy got ${count(healthy())}, broker RSS ${mib(broker.rssBytes())} (baseline ${mib(baseline)}), publisher held ${(heldMs / 1000).toFixed(1)} s so far`,
        ),
    );
    const { sent, hitTimeCap, heldMs, longestWaitMs, publishEnd } = paced;
    const flushed = !paced.flushTimedOut;
    sampling = false;
    const publishSeconds = (publishEnd - t0) / 1000;
    ctx.progress(
      `memory: published ${count(sent)} in ${publishSeconds.toFixed(2)} s${hitTimeCap ? ' (TIME CAP)' : ''}${flushed ? '' : ' (FINAL FLUSH TIMED OUT)'}; draining the healthy subscriber`,
    );

    // ---- the healthy subscriber drains (the stalled one still does not read)
    const drainStart = monotonicMs();
    for (;;) {
      const now = monotonicMs();
      if (healthy() >= sent || now - drainStart >= drainSeconds * 1000) break;
      if (now - Math.max(subs.changedAt, drainStart) >= QUIET_MS) break;
      await sleep(20);
    }
    const healthyDrainSeconds = (monotonicMs() - drainStart) / 1000;
    clearInterval(sampler);
    const usage = meter.stop();
    const endOfStall = broker.rssBytes();
    const whileStalled = await brokerCounters(broker.url);
    const stalledReadPaused = subs.counts?.stalledReadPaused ?? false;
    ctx.progress(
      `memory: healthy got ${count(healthy())} of ${count(sent)}; broker RSS peak ${mib(peak)} (+${mib(peak - baseline)}), bound ${mib(BOUND)}; stalled client reading paused: ${stalledReadPaused ? 'yes' : 'NO'}; broker dropped so far ${count(whileStalled.shardsDropped - before.shardsDropped)}; the stalled subscriber now reads again`,
    );

    // ---- the stalled subscriber reads again: until its deliveries and notices stop (bounded)
    subs.send({ type: 'resume' });
    const resumeStart = monotonicMs();
    const resumeDeadline = resumeStart + Math.max(20, drainSeconds * 2) * 1000;
    let after = whileStalled;
    let lastKey = '';
    let movedAt = resumeStart;
    let lastStats = 0;
    let lastProgress = resumeStart;
    for (;;) {
      const now = monotonicMs();
      if (now >= resumeDeadline) break;
      if (now - lastStats >= 500) {
        lastStats = now;
        after = await brokerCounters(broker.url);
      }
      const c = subs.counts;
      const stalledGot = c?.stalled.received ?? 0;
      const notified = c?.notified ?? 0;
      const key = `${stalledGot}/${notified}/${after.shardsDropped}/${after.slowConsumersDropped}`;
      if (key !== lastKey) {
        lastKey = key;
        movedAt = now;
      }
      const brokerDelta = after.slowConsumersDropped - before.slowConsumersDropped;
      if (stalledGot + notified >= sent && notified === brokerDelta) break;
      if (now - movedAt >= STALLED_QUIET_MS) break;
      if (now - lastProgress >= 1000) {
        lastProgress = now;
        ctx.progress(
          `memory: stalled subscriber reading again: received ${count(stalledGot)}, notified dropped ${count(notified)} (sum ${count(stalledGot + notified)} of ${count(sent)}), broker dropped ${count(after.shardsDropped - before.shardsDropped)}`,
        );
      }
      await sleep(50);
    }
    const resumeSeconds = (monotonicMs() - resumeStart) / 1000;
    after = await brokerCounters(broker.url);
    const final = await subs.stop();
    return {
      published: sent,
      publishSeconds,
      hitTimeCap,
      flushTimedOut: !flushed,
      publisherErrors,
      firstPublisherError,
      heldMs,
      longestWaitMs,
      noCreditMs: noCreditSamples * RSS_SAMPLE_MS,
      baseline,
      peak,
      peakAtMs: peakAt - t0,
      peakBeforeSlow,
      endOfStall,
      rssSamples,
      brokerCores: usage.cores,
      foreignCores: usage.foreignCores,
      healthyDrainSeconds,
      whileStalled,
      stalledReadPaused,
      resumeSeconds,
      before,
      after,
      final,
      slowEvents,
      t0,
    };
  } finally {
    await pub.close().catch(() => undefined);
    await subs.kill();
  }
}

export const memory: Workload = {
  name: 'memory',
  description: `broker memory and loss with a stalled subscriber next to a healthy one: ${PAYLOAD_BYTES}-byte messages published open-loop far past its buffer, RSS growth vs the configured bound, healthy loss, and the stalled one's received + notified dropped vs published`,
  async run(ctx: WorkloadContext): Promise<WorkloadResult> {
    const messages = ctx.quick ? 200_000 : 1_000_000;
    const maxSeconds = ctx.quick ? 15 : 30;
    const drainSeconds = ctx.quick ? 5 : 10;
    const broker = await startBrokerProcess([]);
    let m: Measured;
    let warmLine: string;
    try {
      // Warm-up: the same volume through a subscriber that reads.
      const warm = await runOpenLoop(shardmqOpenLoop(broker.url, broker.pid, false), {
        subscribers: 1,
        messages,
        maxSeconds,
        drainSeconds,
        payloadBytes: PAYLOAD_BYTES,
      });
      warmLine =
        `warm-up through one reading subscriber (/topic/bench): ${count(warm.published)} published at ${formatRate(warm.publishedPerSecond)}/s, ` +
        `${count(warm.delivered)} delivered, lost ${count(warm.lost)}, broker RSS after ${mib(broker.rssBytes())}`;
      ctx.progress(`memory: ${warmLine}`);
      await sleep(500);
      // Warm-up 2: the stalled scenario itself, once, at the same volume. Reading subscribers take
      // their messages ring to ring, so the shard allocates almost nothing; a stalled one's private
      // queue allocates per message, and V8 then grows the shard's young generation (semi-spaces,
      // up to 16 MiB each in Node 20) once, whatever the volume: ~29 MiB of the shard's heapTotal
      // measured on this machine. That is the runtime sizing itself, not what this subscriber holds.
      const churn = await measure(ctx, broker, messages, maxSeconds, drainSeconds);
      warmLine +=
        `; then the stalled scenario once at the same volume (${count(churn.published)} published, figures discarded), ` +
        `broker RSS after ${mib(broker.rssBytes())}`;
      ctx.progress('memory: warm-up with a stalled subscriber done; now the measured run');
      await sleep(500);
      m = await measure(ctx, broker, messages, maxSeconds, drainSeconds);
    } finally {
      await broker.stop();
    }

    // ---- figures and checks
    const hs = m.final?.healthy ?? ZERO_STREAM;
    const ss = m.final?.stalled ?? ZERO_STREAM;
    const notified = m.final?.notified ?? NaN;
    const healthyLost = m.published - hs.received;
    const growth = Math.max(0, m.peak - m.baseline);
    const ratio = growth / BOUND;
    const frontDropped = m.after.slowConsumersDropped - m.before.slowConsumersDropped;
    // Where the drops happen: a private topic queue drops in its shard, a shared stream (the exported
    // client's default) on the main thread; the two counters together are what the broker dropped.
    const shardsDropped = m.after.shardsDropped - m.before.shardsDropped + (m.after.streamDropped - m.before.streamDropped);
    const addsUp = ss.received + notified === m.published;
    const notifiedMatches = notified === frontDropped && notified === shardsDropped;
    const consistent = addsUp && notifiedMatches;
    const publishedPerSecond = m.publishSeconds > 0 ? m.published / m.publishSeconds : 0;
    const entryOf = (c: BrokerCounters): DroppedSub | null => c.subscriptions.find((s) => s.destination === DESTINATION) ?? null;
    const stalledEntry = entryOf(m.whileStalled) ?? entryOf(m.after);
    const stalledEntryAfter = entryOf(m.after);
    const slowOn = m.slowEvents.filter((e) => e.slow && e.at >= m.t0);
    const firstSlow = slowOn[0] ?? null;
    const slowAfterMs = firstSlow === null ? NaN : firstSlow.at - m.t0;
    const otherSlow = stalledEntry === null ? [] : slowOn.filter((e) => e.connection !== stalledEntry.connection);
    const yes = (b: boolean): string => (b ? 'yes' : 'NO');
    ctx.progress(
      `memory: healthy ${count(hs.received)}/${count(m.published)} (lost ${count(healthyLost)}, out of order ${count(hs.outOfOrder)}); stalled received ${count(ss.received)} + notified ${count(notified)} = ${count(ss.received + notified)} (published ${count(m.published)}); broker slowConsumers.dropped ${count(frontDropped)}, shards + streams dropped ${count(shardsDropped)}; consistent: ${yes(consistent)}`,
    );

    const oddities: string[] = [];
    if (m.final === null) oddities.push('the subscriber process gave no final counts: the counts above are zeros');
    if (healthyLost !== 0) oddities.push(`the HEALTHY subscriber lost ${count(healthyLost)} messages`);
    if (hs.outOfOrder > 0) oddities.push(`the healthy subscriber saw ${count(hs.outOfOrder)} messages out of order`);
    if (ss.outOfOrder > 0) oddities.push(`the stalled subscriber saw ${count(ss.outOfOrder)} messages out of order`);
    if (!m.stalledReadPaused) oddities.push('the stalled client was not paused at the end of publishing (its buffer never filled?)');
    if (firstSlow === null) oddities.push('the broker never logged the stalled subscriber as a slow consumer');
    if (otherSlow.length > 0)
      oddities.push(
        `the broker declared ${otherSlow.length} slow-consumer episode(s) on connections other than the stalled one (${otherSlow.map((e) => e.connection).join(', ')})`,
      );
    if (!addsUp)
      oddities.push(
        `stalled received + notified dropped = ${count(ss.received + notified)} ≠ published ${count(m.published)} (difference ${count(m.published - ss.received - notified)})`,
      );
    if (!notifiedMatches)
      oddities.push(
        `notified ${count(notified)} ≠ broker counters (slowConsumers.dropped ${count(frontDropped)}, shards' + streams' dropped ${count(shardsDropped)})`,
      );
    if (m.final !== null && notified !== m.final.brokerDropped)
      oddities.push(
        `the 'dropped' events add up to ${count(notified)} but subscription.brokerDropped says ${count(m.final.brokerDropped)}`,
      );
    if (ss.received > 0 && ss.lastSeq !== m.published - 1)
      oddities.push(`the stalled subscriber's last message was #${ss.lastSeq}, not the last published #${m.published - 1}`);
    if (m.hitTimeCap) oddities.push('publishing hit the time cap');
    if (m.flushTimedOut) oddities.push('the final flushes did not resolve within 10 s');
    if (m.publisherErrors > 0) oddities.push(`${m.publisherErrors} publisher error(s), first: ${m.firstPublisherError}`);
    if ((m.final?.errors ?? 0) > 0) oddities.push(`${m.final?.errors} subscriber error(s), last: ${m.final?.lastError}`);
    if ((m.final?.closed ?? 0) > 0) oddities.push(`${m.final?.closed} subscriber connection(s) closed by the broker`);
    for (const o of oddities) ctx.progress(`memory: ODD: ${o}`);

    const b = BOUND_TERMS;
    return {
      tables: [
        {
          title: `Stalled subscriber next to a healthy one: ${count(m.published)} × ${PAYLOAD_BYTES}-byte messages published open-loop, broker defaults — memory and the healthy subscriber`,
          columns: [
            'published',
            'published msg/s',
            'publisher held (longest wait)',
            'healthy received',
            'healthy LOST',
            'healthy out of order',
            'broker RSS before',
            'peak',
            'growth',
            'configured bound',
            'growth ÷ bound',
            'broker CPU (cores)',
          ],
          rows: [
            [
              count(m.published),
              formatRate(publishedPerSecond),
              `${(m.heldMs / 1000).toFixed(2)} s (${(m.longestWaitMs / 1000).toFixed(2)} s)`,
              count(hs.received),
              count(healthyLost),
              count(hs.outOfOrder),
              mib(m.baseline),
              mib(m.peak),
              mib(growth),
              mib(BOUND),
              `${(ratio * 100).toFixed(0)}%`,
              m.brokerCores.toFixed(2),
            ],
          ],
          notes: [
            `bound = socket high-water ${mib(b.socketHighWater)} + delivery window ${mib(b.deliveryWindowBytes)} + topic buffer ${count(DEFAULT_TOPIC_BUFFER)} × (${PAYLOAD_BYTES} B payload + ${BOOKKEEPING_BYTES} B bookkeeping) = ${mib(b.topicBuffer)} + ring ${mib(b.ringBytes)} (what a pressing queue may overshoot by) + overflow ${mib(b.overflowBytes)} (main-thread held publishes) + publish window ${mib(b.publishWindowBytes)} (one publisher's credit) = ${mib(BOUND)} (all broker defaults, config/defaults.ts)`,
            `RSS sampled every ${RSS_SAMPLE_MS} ms (${m.rssSamples} samples) from just before the first publish until the healthy subscriber had drained (${m.healthyDrainSeconds.toFixed(1)} s after the last flush), the stalled subscriber not reading throughout; peak ${(m.peakAtMs / 1000).toFixed(1)} s after the first publish; RSS at the end of the stall ${mib(m.endOfStall)}. RSS includes garbage not yet collected, so growth is an upper bound on what the stalled subscriber retains. Other load on the machine meanwhile: ${m.foreignCores.toFixed(2)} cores (foreign CPU)`,
            `${warmLine}: the heap and the rings are at their working size before the baseline`,
            `publisher: the exported client as open-loop.ts drives it (publishNoWait, flush() every ${FLUSH_EVERY}, at most ${MAX_PENDING_FLUSHES} outstanding), ${count(messages)} messages or ${maxSeconds} s; published msg/s = published ÷ time from the first publish to the last flush resolved (${m.publishSeconds.toFixed(2)} s); held = the time spent waiting for the oldest flush in waits ≥ ${HELD_WAIT_MS} ms (the broker holding the publisher, its flush() unanswered, while the stalled subscriber's topic buffer is full and it is not yet declared slow); of that, the client had publishes waiting for publish credit in ${(m.noCreditMs / 1000).toFixed(2)} s of ${RSS_SAMPLE_MS} ms samples`,
            `the broker declared the stalled subscriber slow ${firstSlow !== null ? `${(slowAfterMs / 1000).toFixed(2)} s after the first publish, broker RSS then ${mib(firstSlow.rss)} (+${mib(firstSlow.rss - m.baseline)}); highest RSS before that (publisher held, nothing dropped yet) ${mib(m.peakBeforeSlow)} (+${mib(m.peakBeforeSlow - m.baseline)})` : 'NEVER (no slow-consumer log line)'} (--slow-consumer-ms ${DEFAULT_SLOW_CONSUMER_MS}); slow episodes during the run: ${count(m.after.slowEpisodes - m.before.slowEpisodes)}`,
            `goal (design.md §4): a consumer that never reads costs at most its configured buffer — ${ratio <= 1 ? 'met' : 'not met'} (${(ratio * 100).toFixed(0)}% of the bound); a subscriber that keeps up loses nothing — ${healthyLost === 0 && hs.outOfOrder === 0 ? 'met' : 'NOT met'}`,
          ],
        },
        {
          title: 'Stalled subscriber after it reads again: what it got and what it was told it lost',
          columns: [
            'published',
            'stalled received',
            'notified dropped (notices)',
            'received + notified',
            'broker slowConsumers.dropped',
            "shards' + streams' dropped",
            'consistent',
          ],
          rows: [
            [
              count(m.published),
              count(ss.received),
              `${count(notified)} (${count(m.final?.notices ?? NaN)})`,
              count(ss.received + notified),
              count(frontDropped),
              count(shardsDropped),
              consistent ? 'yes' : 'NO',
            ],
          ],
          notes: [
            `consistent = stalled received + notified dropped = published (${yes(addsUp)}) and notified = both broker counters (${yes(notifiedMatches)}: slowConsumers.dropped, and the shards' dropped plus slowConsumers.streamDropped, which shared streams count on the main thread); broker counters are deltas over the measured phase (before: slowConsumers.dropped ${count(m.before.slowConsumersDropped)}, shards' dropped ${count(m.before.shardsDropped)}, streamDropped ${count(m.before.streamDropped)})`,
            `the stalled client (exported client, its own connection) stops reading through its own backpressure: a handler that does not return and bufferSize 1 with overflow 'block', so the client pauses its socket with the second delivery; when told, it reads again and counts the 'dropped' events (DROPPED notices, ≤ 1 per second per subscription, behind the deliveries); waited ${m.resumeSeconds.toFixed(1)} s for its deliveries and notices to stop (over when nothing moved for ${STALLED_QUIET_MS / 1000} s)`,
            `while still stalled: shards' dropped ${count(m.whileStalled.shardsDropped - m.before.shardsDropped)}, slow connections ${count(m.whileStalled.slowConnections)}` +
              (entryOf(m.whileStalled) !== null
                ? `; /v1/stats lists the stalled subscription (connection ${stalledEntry?.connection}) with dropped ${count(stalledEntry?.dropped ?? NaN)}, slow ${stalledEntry?.slow}`
                : '; /v1/stats lists no dropped subscription on this destination') +
              (stalledEntryAfter !== null
                ? `; after it read again: dropped ${count(stalledEntryAfter.dropped)}, slow ${stalledEntryAfter.slow}`
                : '; after it read again /v1/stats lists it no more'),
            `last sequence number received: healthy #${hs.lastSeq}, stalled #${ss.lastSeq} (last published #${m.published - 1}); out of order at the stalled one: ${count(ss.outOfOrder)}`,
            ...(oddities.length > 0 ? [`odd: ${oddities.join('; ')}`] : []),
          ],
        },
      ],
      figures: {
        memory_stalled_consumer_rss_growth_bytes: growth,
        memory_stalled_consumer_growth_vs_bound: ratio,
        memory_stalled_consumer_bound_bytes: BOUND,
        memory_healthy_lost: healthyLost,
        memory_healthy_out_of_order: hs.outOfOrder,
        memory_stalled_received: ss.received,
        memory_stalled_notified_dropped: notified,
        memory_broker_dropped: shardsDropped,
        memory_broker_slow_consumers_dropped: frontDropped,
        memory_dropped_consistent: consistent ? 1 : 0,
        memory_published: m.published,
        memory_published_msgs_per_s: publishedPerSecond,
        memory_rss_growth_before_slow_bytes: Math.max(0, m.peakBeforeSlow - m.baseline),
        memory_publish_held_seconds: m.heldMs / 1000,
        ...(Number.isFinite(slowAfterMs) ? { memory_slow_declared_after_seconds: slowAfterMs / 1000 } : {}),
      },
    };
  },
};
