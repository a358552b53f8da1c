/**
 * One latency run of the `latency` workload (workloads/latency.ts): a publisher and a subscriber of
 * one system at a fixed rate, each message stamped with its send time. The pair runs in a process of
 * its own (latency-child.ts), fresh for each run: in the harness it shared a heap that earlier
 * workloads had grown, whose collections stalled the publisher and the subscriber (worst send lag
 * 13.1 ms against the broker's own worst 5.3 ms in one run). Both clients are in that one process,
 * so one clock (performance.now()) stamps and reads every message: no cross-process clock skew.
 */
import WebSocket from 'ws';
import { HOP_NAMES, type HopName } from '../metrics/hop-trace.js';
import type { ExportedHistogram } from '../metrics/latency-histogram.js';
import { LatencyHistogram } from '../metrics/latency-histogram.js';
import { countGcPauses, type GcMonitor, type GcPauses } from '../metrics/gc-monitor.js';
import { ResourceMeter, type ResourceSample } from './proc.js';
import { BenchWsClient } from './ws-binary-client.js';
import { ChildChannel } from './child-channel.js';
import { loadPeers } from './peers.js';
export const PAYLOAD_BYTES = 128;
const TOPIC = 'bench.latency';
/** Beyond this many outstanding messages the run stops: latency there only measures queueing. */
const MAX_IN_FLIGHT = 100_000;
/** Most messages per frame when the publisher fell behind (a stall must not build one huge frame). */
const MAX_FRAME_MESSAGES = 1000;
/** Payload layout: f64 send time (ms, performance.now()) at 0, u8 "record me" at 8 (0 during warm-up). */
const STAMP_AT = 0;
const FLAG_AT = 8;

export interface LatencyRun {
  readonly rate: number;
  readonly histogram: LatencyHistogram;
  readonly sent: number;
  readonly received: number;
  readonly seconds: number;
  readonly saturated: boolean;
  /** Largest lag of a send behind its schedule, ms. */
  readonly maxScheduleLagMs: number;
  readonly resources: ResourceSample;
  /** The broker's hop trace over the measured part (a traced broker only). */
  readonly hops: Record<HopName, LatencyHistogram> | null;
  readonly threads: ThreadFigures | null;
  /** The client process's own GC pauses over the measured part: latency the broker is not to blame for. */
  readonly clientGc: GcPauses;
}

/** GC pauses and parks over the measured part, per second (from GET /v1/stats/latency). */
export interface ThreadFigures {
  readonly seconds: number;
  readonly mainGcPauses: number;
  readonly mainGcMs: number;
  readonly shardGcPauses: number;
  readonly shardGcMs: number;
  readonly pumpParks: number;
  readonly shardParks: number;
}

/** One publisher and one subscriber connection of a system, in the client process. */
export interface LatencyPair {
  /** Sends `n` copies of `payload` now, gathered into one write. */
  send(payload: Uint8Array, n: number): void;
  /** Errors the publisher got back (shardmq ERROR ops), with the last one. */
  readonly errors: number;
  readonly lastError: string;
  close(): Promise<void>;
}

export interface LatencySystem {
  readonly name: string;
  readonly pid: number;
  /** Connects a publisher and a subscriber (subscribed when this resolves); `onPayload` gets every delivery. */
  open(onPayload: (payload: Uint8Array) => void): Promise<LatencyPair>;
  /** GET /v1/stats/latency, for a traced broker; null otherwise. */
  readonly traceUrl: string | null;
}

/** How long a subscriber's interest may take to reach the other servers of a cluster before the first publish. */
export const CLUSTER_INTEREST_MS = 500;

/**
 * shardmq: publisher and subscriber on `url`, or (a cluster) the subscriber on `subscribeUrl`,
 * another node, so every message crosses NATS.
 */
export function shardmqLatency(url: string, pid: number, traced: boolean, subscribeUrl?: string, name?: string): LatencySystem {
  return {
    name: name ?? (traced ? 'shardmq, --latency-sample 1' : 'shardmq'),
    pid,
    traceUrl: traced ? `${url}/v1/stats/latency` : null,
    async open(onPayload) {
      const sub = await BenchWsClient.connect(subscribeUrl ?? url, (ev) => onPayload(ev.payload));
      const pub = await BenchWsClient.connect(url);
      await sub.subscribe(1, `/topic/${TOPIC}`);
      if (subscribeUrl !== undefined) await new Promise((r) => setTimeout(r, CLUSTER_INTEREST_MS));
      const destination = `/topic/${TOPIC}`;
      return {
        send: (payload, n) =>
          pub.sendPublishes(
            pub.writer
              .publishBatch(
                destination,
                Array.from({ length: n }, () => payload),
              )
              .finishCopy(),
            n,
            n * payload.byteLength,
          ),
        get errors() {
          return pub.errors;
        },
        get lastError() {
          return pub.lastError;
        },
        close: async () => {
          await pub.close();
          await sub.close();
        },
      };
    },
  };
}

/** uWebSockets.js's built-in pub/sub (src/bench/uws-pubsub-server.ts): every message its own frame and app.publish. */
export function uwsLatency(server: { readonly url: string; readonly pid: number }, name = 'uWebSockets.js pub/sub'): LatencySystem {
  const connect = (path: string): Promise<WebSocket> =>
    new Promise((resolve, reject) => {
      const ws = new WebSocket(`${server.url}${path}`, { perMessageDeflate: false });
      ws.once('open', () => resolve(ws));
      ws.once('error', reject);
    });
  return {
    name,
    pid: server.pid,
    traceUrl: null,
    async open(onPayload) {
      let subscribed: () => void = () => undefined;
      const ready = new Promise<void>((resolve) => {
        subscribed = resolve;
      });
      const sub = new WebSocket(`${server.url}/sub`, { perMessageDeflate: false });
      // Listening before 'open': the server's `ready` text frame can come in the same read as the handshake.
      sub.on('message', (data: Buffer, isBinary: boolean) => {
        if (isBinary) onPayload(data);
        else subscribed();
      });
      await new Promise<void>((resolve, reject) => {
        sub.once('error', reject);
        ready.then(resolve, reject);
      });
      const pub = await connect('/pub');
      const socket = (pub as unknown as { _socket: { cork(): void; uncork(): void } })._socket;
      return {
        send: (payload, n) => {
          // One write for the frames of one wake, as the shardmq publisher's one PUBLISH_BATCH frame.
          socket.cork();
          for (let i = 0; i < n; i++) pub.send(payload);
          socket.uncork();
        },
        errors: 0,
        lastError: '',
        close: async () => {
          for (const ws of [pub, sub]) {
            await new Promise<void>((resolve) => {
              ws.once('close', () => resolve());
              ws.close();
            });
          }
        },
      };
    },
  };
}

export async function latencyStats(url: string): Promise<LatencyStatsAnswer> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`GET ${url}: ${res.status}`);
  return (await res.json()) as LatencyStatsAnswer;
}

export interface LatencyStatsAnswer {
  readonly hops: Record<HopName, ExportedHistogram>;
  readonly main: { gcPauses: number; gcPauseMs: number; pumpParks: number };
  readonly shards: ReadonlyArray<{ gcPauses: number; gcPauseMs: number; parks: number }>;
}

export function threadFigures(a: LatencyStatsAnswer, b: LatencyStatsAnswer, seconds: number): ThreadFigures {
  const sum = (x: LatencyStatsAnswer, pick: (s: LatencyStatsAnswer['shards'][number]) => number): number =>
    x.shards.reduce((n, s) => n + pick(s), 0);
  return {
    seconds,
    mainGcPauses: b.main.gcPauses - a.main.gcPauses,
    mainGcMs: b.main.gcPauseMs - a.main.gcPauseMs,
    shardGcPauses: sum(b, (s) => s.gcPauses) - sum(a, (s) => s.gcPauses),
    shardGcMs: sum(b, (s) => s.gcPauseMs) - sum(a, (s) => s.gcPauseMs),
    pumpParks: b.main.pumpParks - a.main.pumpParks,
    shardParks: sum(b, (s) => s.parks) - sum(a, (s) => s.parks),
  };
}

export async function runAtRate(system: LatencySystem, rate: number, warmSeconds: number, seconds: number): Promise<LatencyRun> {
  const histogram = new LatencyHistogram();
  const stamp = new Float64Array(1);
  const stampBytes = new Uint8Array(stamp.buffer);
  let received = 0;
  let lastDeliverAt = 0;
  const pair = await system.open((p) => {
    received++;
    const now = performance.now();
    lastDeliverAt = now;
    if (p[FLAG_AT] !== 1) return;
    for (let i = 0; i < 8; i++) stampBytes[i] = p[STAMP_AT + i];
    histogram.record((now - stamp[0]) * 1000);
  });
  try {
    const payload = new Uint8Array(PAYLOAD_BYTES).fill(0x6c);
    const payloadStamp = new Float64Array(1);
    const payloadStampBytes = new Uint8Array(payloadStamp.buffer);
    let started = performance.now();
    const warmEnd = started + warmSeconds * 1000;
    const total = Math.round(rate * (warmSeconds + seconds));
    let sent = 0;
    let saturated = false;
    let maxLag = 0;
    let meter: ResourceMeter | null = null;
    let measuredFrom = 0;
    let sentAtMeasureStart = 0;
    let traceBefore: LatencyStatsAnswer | null = null;
    const clientGc: GcPauses = { pauses: 0, pauseMs: 0, maxPauseMs: 0 };
    let gcMonitor: GcMonitor | null = null;
    while (sent < total) {
      let now = performance.now();
      if (meter === null && now >= warmEnd) {
        if (system.traceUrl !== null) {
          traceBefore = await latencyStats(system.traceUrl);
          // The request took time the schedule does not owe: start it again from here.
          const fetched = performance.now();
          started += fetched - now;
          now = fetched;
        }
        meter = new ResourceMeter([system.pid]);
        gcMonitor = countGcPauses(clientGc);
        measuredFrom = now;
        sentAtMeasureStart = sent;
      }
      const due = Math.min(total, Math.floor(((now - started) / 1000) * rate));
      if (due > sent) {
        // The oldest due message was scheduled at (sent + 1) / rate; how late is it going out?
        maxLag = now >= warmEnd ? Math.max(maxLag, now - (started + ((sent + 1) / rate) * 1000)) : maxLag;
        const n = Math.min(due - sent, MAX_FRAME_MESSAGES);
        payloadStamp[0] = performance.now();
        payload.set(payloadStampBytes, STAMP_AT);
        payload[FLAG_AT] = meter !== null ? 1 : 0;
        pair.send(payload, n);
        sent += n;
      }
      if (sent - received > MAX_IN_FLIGHT) {
        saturated = true;
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    // Drain (bounded): whatever is still on its way.
    const drainDeadline = performance.now() + 3000;
    while (received < sent && performance.now() < drainDeadline) await new Promise((resolve) => setTimeout(resolve, 5));
    const resources = (meter ?? new ResourceMeter([system.pid])).stop();
    // Entries arrive a little after their pause: let the last ones in before counting stops.
    await new Promise((resolve) => setTimeout(resolve, 20));
    gcMonitor?.stop();
    const measuredSeconds = ((lastDeliverAt || performance.now()) - (measuredFrom || started)) / 1000;
    let hops: Record<HopName, LatencyHistogram> | null = null;
    let threads: ThreadFigures | null = null;
    if (system.traceUrl !== null && traceBefore !== null) {
      const after = await latencyStats(system.traceUrl);
      hops = {} as Record<HopName, LatencyHistogram>;
      for (const name of HOP_NAMES) hops[name] = LatencyHistogram.fromExport(after.hops[name]).since(traceBefore.hops[name]);
      threads = threadFigures(traceBefore, after, measuredSeconds);
    }
    if (pair.errors > 0) throw new Error(`latency publisher got ${pair.errors} ERROR op(s); last: ${pair.lastError}`);
    return {
      rate,
      histogram,
      sent: sent - sentAtMeasureStart,
      received: histogram.count,
      seconds: measuredSeconds,
      saturated,
      maxScheduleLagMs: maxLag,
      resources,
      hops,
      threads,
      clientGc,
    };
  } finally {
    await pair.close();
  }
}

/**
 * NATS core with the peers' `nats` client: the publisher on `servers`, the subscriber on
 * `subscribeServers` (another server of a NATS cluster: every message crosses a route).
 */
export function natsLatency(servers: string, subscribeServers: string, pid: number, name: string): LatencySystem {
  return {
    name,
    pid,
    traceUrl: null,
    async open(onPayload) {
      const peers = await loadPeers();
      if ('missing' in peers.nats) throw new Error(peers.nats.missing);
      const client = peers.nats.client;
      const sub = await client.connect({ servers: subscribeServers, maxReconnectAttempts: 0 });
      const pub = await client.connect({ servers, noEcho: true, maxReconnectAttempts: 0 });
      sub.subscribe(TOPIC, {
        callback: (err, msg) => {
          if (err === null) onPayload(msg.data);
        },
      });
      await sub.flush();
      await new Promise((r) => setTimeout(r, CLUSTER_INTEREST_MS));
      return {
        send: (payload, n) => {
          for (let i = 0; i < n; i++) pub.publish(TOPIC, payload);
        },
        errors: 0,
        lastError: '',
        close: async () => {
          await pub.close();
          await sub.close();
        },
      };
    },
  };
}

/** A system the child can open, by what it needs to reach it. */
export type LatencySystemSpec =
  | {
      readonly kind: 'shardmq';
      readonly url: string;
      readonly pid: number;
      readonly traced: boolean;
      readonly subscribeUrl?: string;
      readonly name?: string;
    }
  | { readonly kind: 'uws'; readonly url: string; readonly pid: number; readonly name?: string }
  | { readonly kind: 'nats'; readonly servers: string; readonly subscribeServers: string; readonly pid: number; readonly name: string };

export function systemOf(spec: LatencySystemSpec): LatencySystem {
  if (spec.kind === 'shardmq') return shardmqLatency(spec.url, spec.pid, spec.traced, spec.subscribeUrl, spec.name);
  if (spec.kind === 'nats') return natsLatency(spec.servers, spec.subscribeServers, spec.pid, spec.name);
  return uwsLatency(spec, spec.name);
}

/** What the child is asked to do (its argv[2], JSON). */
export interface LatencyRunSpec {
  readonly system: LatencySystemSpec;
  readonly rate: number;
  readonly warmSeconds: number;
  readonly seconds: number;
}

/** A LatencyRun with its histograms exported, as it crosses the IPC channel. */
export interface SerializedRun extends Omit<LatencyRun, 'histogram' | 'hops'> {
  readonly histogram: ExportedHistogram;
  readonly hops: Record<HopName, ExportedHistogram> | null;
}

export type LatencyChildReport =
  | { readonly type: 'result'; readonly run: SerializedRun }
  | { readonly type: 'runFailed'; readonly message: string }
  | { readonly type: 'final' }
  | { readonly type: 'ready' }
  | { readonly type: 'failed'; readonly message: string };

/** What the parent asks of a client process: one run, or the end. */
export type LatencyChildCommand =
  | { readonly type: 'run'; readonly rate: number; readonly warmSeconds: number; readonly seconds: number }
  | { readonly type: 'stop' };

export function serializeRun(run: LatencyRun): SerializedRun {
  const hops =
    run.hops === null
      ? null
      : (Object.fromEntries(HOP_NAMES.map((h) => [h, (run.hops as Record<HopName, LatencyHistogram>)[h].export()])) as Record<
          HopName,
          ExportedHistogram
        >);
  return { ...run, histogram: run.histogram.export(), hops };
}

export function deserializeRun(s: SerializedRun): LatencyRun {
  const hops =
    s.hops === null
      ? null
      : (Object.fromEntries(
          HOP_NAMES.map((h) => [h, LatencyHistogram.fromExport((s.hops as Record<HopName, ExportedHistogram>)[h])]),
        ) as Record<HopName, LatencyHistogram>);
  return { ...s, histogram: LatencyHistogram.fromExport(s.histogram), hops };
}

/** Longest a child's run may take beyond its own length before it is given up on. */
const CHILD_SLACK_MS = 30_000;

/**
 * The publisher and subscriber of one system in a client process of their own (latency-child.ts),
 * kept for all the rounds of that system: as a user's clients are long-lived processes, and so a
 * run does not measure a fresh process's cold code (a fresh process per run raised both systems'
 * p50, uWS's from 52 to 95 µs). The process is the system's alone, so no other workload's heap
 * stalls it (in the harness they shared one: a worst send lag of 13.1 ms against the broker's 5.3).
 */
export class LatencyClients {
  readonly #channel: ChildChannel<LatencyChildReport>;
  #waiting: ((r: LatencyChildReport) => void) | null = null;

  private constructor(channel: ChildChannel<LatencyChildReport>) {
    this.#channel = channel;
  }

  static async start(system: LatencySystemSpec): Promise<LatencyClients> {
    let deliver: (r: LatencyChildReport) => void = () => undefined;
    const channel = await ChildChannel.start<LatencyChildReport>(
      new URL('./latency-child.js', import.meta.url),
      system,
      'latency clients',
      (r) => deliver(r),
    );
    const clients = new LatencyClients(channel);
    deliver = (r) => clients.#waiting?.(r);
    return clients;
  }

  /** One measured run (runAtRate) in the client process. */
  async run(rate: number, warmSeconds: number, seconds: number): Promise<LatencyRun> {
    const report = new Promise<LatencyChildReport>((resolve) => {
      this.#waiting = resolve;
    });
    const command: LatencyChildCommand = { type: 'run', rate, warmSeconds, seconds };
    this.#channel.send(command);
    let timer: NodeJS.Timeout | undefined;
    const limit = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error('the latency run did not finish in time')),
        (warmSeconds + seconds) * 1000 + CHILD_SLACK_MS,
      );
    });
    try {
      const r = await Promise.race([report, limit]);
      if (r.type === 'result') return deserializeRun(r.run);
      throw new Error(`latency run failed: ${r.type === 'runFailed' ? r.message : r.type}`);
    } finally {
      clearTimeout(timer);
      this.#waiting = null;
    }
  }

  async stop(): Promise<void> {
    await this.#channel.stop();
  }
}

/** One run in a client process of its own, started and stopped for it. */
export async function runAtRateInChild(spec: LatencyRunSpec): Promise<LatencyRun> {
  const clients = await LatencyClients.start(spec.system);
  try {
    return await clients.run(spec.rate, spec.warmSeconds, spec.seconds);
  } finally {
    await clients.stop();
  }
}
