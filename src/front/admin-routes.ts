/**
 * GET /healthz, /v1/stats and /metrics. Counters are read straight from each shard's
 * shared counters; only the queue list and the health ping go to the shards.
 */
import { DEFAULT_VHOST, localName, vhostOf } from '../protocol/vhost-name.js';
import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import type { BrokerContext } from './context.js';
import { ConfirmStatus } from '../protocol/ring-record-codec.js';
import { COUNTER_NAMES, CounterSlot, readCounters } from '../metrics/shard-counters.js';
import { HOPS } from '../metrics/hop-trace.js';
import { prometheusParts, type QueueView, type VhostView } from '../metrics/prometheus.js';
import { nodeFacts } from './node-facts.js';
import { HEALTH_TIMEOUT_MS } from '../config/defaults.js';
import { checkFraming, refuseFraming, sendJson, watchAbort } from './http-util.js';
import { streamAnswer } from './stream-answer.js';
import { listedQueues, type ListedQueue } from './listed-queues.js';
import { statsJson } from './queue-rows.js';
import { authorize } from './http-auth.js';
import type { Principal } from '../control/auth.js';
import type { DroppedSubscription } from './ws-session.js';

export interface FrontStats {
  websocket: number;
  /** Of `websocket`, the connections that spoke the binary protocol. */
  binaryConnections: number;
  /** Payload bytes delivered to subscribers so far. */
  deliveredBytes: number;
  subscriptions: number;
  undeliverable: number;
  unroutable: number;
  slowConsumerClosed: number;
  slowConnections: number;
  slowEpisodes: number;
  slowConsumerDropped: number;
  /** Of slowConsumerDropped, what shared streams' slow members lost (counted on the main thread, not in the shards' `dropped`). */
  streamDropped: number;
  /** Shared streams (one per pattern subscribed to that way). */
  streams: number;
  droppedSubscriptions: ReadonlyArray<DroppedSubscription>;
  /** AMQP 0-9-1 connections, their open channels and consumers (listed in `connections` too). */
  amqp: { connections: number; channels: number; consumers: number };
  connections: ReadonlyArray<Record<string, unknown>>;
}

export function registerAdminRoutes(
  uwsApp: TemplatedApp,
  ctx: BrokerContext,
  frontStats: () => FrontStats,
  ownConnections: (principal: Principal) => ReadonlyArray<Record<string, unknown>>,
): void {
  // Bodiless GETs, but their headers are checked like any request's (431, duplicate framing).
  const app = {
    get: (path: string, handler: (res: HttpResponse, req: HttpRequest) => void): void => {
      ctx.routes.note('GET', path);
      uwsApp.get(path, (res, req) => {
        const framing = checkFraming(req, false);
        if (framing === null) handler(res, req);
        else refuseFraming(res, framing, ctx.refusals);
      });
    },
  };
  app.get('/healthz', (res) => {
    const state = watchAbort(res);
    void pingAll(ctx).then((answered) => {
      const ok = answered.every(Boolean);
      const shards = answered.map((up, index) => ({ index, up }));
      if (ok) sendJson(res, 200, { status: 'ok', shards }, state);
      else sendJson(res, 503, { error: 'degraded', message: 'some shards did not answer', shards }, state);
    });
  });

  // The whole broker's views (every vhost's queues and connections) take `monitor` in `/`,
  // whatever ?vhost= says: a tenant sees its own vhost through GET /v1/vhosts/<name>.
  app.get('/v1/stats', (res, req) => {
    if (authorize(res, req, ctx, 'monitor', DEFAULT_VHOST) === null) return;
    const state = watchAbort(res);
    void streamAnswer(res, state, 'application/json', statsParts(ctx, frontStats()), ctx.pacer).catch((err: unknown) =>
      ctx.log.error({ err }, '/v1/stats failed'),
    );
  });

  // Sampled hop latencies inside the broker, with the GC pauses and parks that explain them.
  app.get('/v1/stats/latency', (res, req) => {
    if (authorize(res, req, ctx, 'monitor', DEFAULT_VHOST) === null) return;
    sendJson(res, 200, latencyStats(ctx));
  });

  // The cluster as this node sees it: members, interest, what crossed and what was dropped.
  app.get('/v1/cluster', (res, req) => {
    if (authorize(res, req, ctx, 'monitor', DEFAULT_VHOST) === null) return;
    const status = ctx.clusterStatus();
    sendJson(res, 200, status ?? { enabled: false, node: null, members: [] });
  });

  // What any authenticated user may see: itself and its own connections, nobody else's (in the
  // vhost asked, `?vhost=`, `/` by default).
  app.get('/v1/me', (res, req) => {
    const principal = authorize(res, req, ctx, 'any');
    if (principal === null) return;
    sendJson(res, 200, {
      user: principal.name,
      vhost: principal.vhost.name,
      manage: principal.canManage,
      monitor: principal.canMonitor,
      connections: ownConnections(principal),
    });
  });

  app.get('/metrics', (res, req) => {
    if (authorize(res, req, ctx, 'monitor', DEFAULT_VHOST) === null) return;
    const state = watchAbort(res);
    void streamAnswer(res, state, 'text/plain; version=0.0.4', metricsParts(ctx, frontStats()), ctx.pacer).catch((err: unknown) =>
      ctx.log.error({ err }, '/metrics failed'),
    );
  });
}

/**
 * The exposition in parts: per-queue series for at most --stats-max-queues queues per shard
 * (RabbitMQ's return_per_object_metrics, as a bound; 0 leaves them out and asks the shards nothing).
 * A family's samples must stand together, so the listed queues' figures are gathered first.
 */
async function* metricsParts(ctx: BrokerContext, front: FrontStats): AsyncGenerator<string> {
  const limit = ctx.config.statsMaxQueues;
  let queues: QueueView[] | undefined;
  if (limit > 0) {
    queues = [];
    for await (const slice of listedQueues(ctx, limit)) {
      for (const { meta, figures } of slice) {
        queues.push({ name: meta.name, shard: meta.shard, ready: figures.depth, unacked: figures.unacked, consumers: figures.consumers });
      }
    }
  }
  const shards = ctx.shards.map((h) => ({
    index: h.index,
    alive: h.alive,
    counters: readCounters(h.counters),
    ring: h.occupancy(),
    held: h.overflow,
  }));
  const { received, confirmed, unroutable } = ctx.publisher;
  yield* prometheusParts(shards, front, { received, confirmed, unroutable }, queues, vhostRows(ctx));
}

/** Each vhost's connections and queues, counted as they change (no walk). */
function vhostRows(ctx: BrokerContext): VhostView[] {
  return ctx.vhosts.list().map((v) => ({
    name: v.name,
    connections: v.connections,
    queues: ctx.topology.queueCountIn(v.prefix),
    limits: v.limitsJson(),
    ...(v.limits.maxQueuedBytes === null ? {} : { queuedBytes: v.queuedBytes, overMaxQueuedBytes: v.overBudget }),
  }));
}

/**
 * GET /v1/stats/latency: the hop trace (µs; each hop's histogram as `[bucket, count]` pairs, so a
 * reader can subtract an earlier answer: LatencyHistogram.since) and, per thread, GC pauses and
 * parks: the main thread's pumps parking on empty outbound rings, the shards on empty inbound ones.
 */
function latencyStats(ctx: BrokerContext): unknown {
  const gc = ctx.mainGc;
  return {
    ...ctx.trace.export(),
    hopMeaning: HOPS,
    main: {
      gcPauses: gc.pauses,
      gcPauseMs: gc.pauseMs,
      gcMaxPauseMs: gc.maxPauseMs,
      pumpParks: ctx.shards.reduce((n, h) => n + h.pumpParks, 0),
    },
    shards: ctx.shards.map((h) => {
      const c = h.counters;
      return {
        index: h.index,
        gcPauses: c[CounterSlot.gcPauses],
        gcPauseMs: c[CounterSlot.gcPauseMs],
        gcMaxPauseMs: c[CounterSlot.gcMaxPauseMs],
        parks: c[CounterSlot.parks],
        pumpParks: h.pumpParks,
      };
    }),
  };
}

/** Pings every shard through its rings (the data path itself), each bounded by a timeout. */
function pingAll(ctx: BrokerContext): Promise<boolean[]> {
  return Promise.all(
    ctx.shards.map(
      (handle) =>
        new Promise<boolean>((resolve) => {
          if (!handle.alive) {
            resolve(false);
            return;
          }
          const token = ctx.confirms.allocate([handle.index], (status) => {
            clearTimeout(timer);
            resolve(status === ConfirmStatus.ok);
          });
          const timer = setTimeout(() => ctx.confirms.fail(token, ConfirmStatus.rejected), HEALTH_TIMEOUT_MS);
          handle.writeControl((w) => w.ping(token));
        }),
    ),
  );
}

/**
 * The /v1/stats answer as JSON text in parts (front/stream-answer.ts): the broker's figures, then the
 * listed queues (up to --stats-max-queues per shard) a slice at a time, last in the object. Every
 * queue is counted in `queuesTotal`.
 */
async function* statsParts(ctx: BrokerContext, front: FrontStats): AsyncGenerator<string> {
  const shards = ctx.shards.map((h) => {
    const counters = readCounters(h.counters);
    const ring = h.occupancy();
    return { index: h.index, alive: h.alive, ...counters, ring };
  });
  const head = {
    // Grouped by vhost: what each holds and who is connected to it (GET /v1/vhosts adds message counts).
    vhosts: vhostRows(ctx),
    node: nodeFacts(ctx),
    // Counted once per message on the main thread (a shard's `published` counts its copy).
    global: {
      received: ctx.publisher.received,
      receivedBytes: ctx.publisher.receivedBytes,
      confirmed: ctx.publisher.confirmed,
      deliveredBytes: front.deliveredBytes,
    },
    shards,
    // Every queue is counted; at most --stats-max-queues per shard are listed in `queues`.
    queuesTotal: ctx.topology.queueCount,
    connections: {
      websocket: front.websocket,
      amqp: front.amqp.connections,
      amqpChannels: front.amqp.channels,
      amqpConsumers: front.amqp.consumers,
      subscriptions: front.subscriptions,
      streams: front.streams,
      slowConsumerClosed: front.slowConsumerClosed,
      slowConnections: front.slowConnections,
      slowEpisodes: front.slowEpisodes,
      list: front.connections,
    },
    slowConsumers: {
      dropped: front.slowConsumerDropped,
      streamDropped: front.streamDropped,
      subscriptions: front.droppedSubscriptions,
    },
    undeliverable: front.undeliverable,
    unroutable: front.unroutable,
    overflow: ctx.shards.map((h) => ({ shard: h.index, ...h.overflow })),
    inflate: ctx.inflate.stats,
    counters: COUNTER_NAMES,
  };
  const text = JSON.stringify(head);
  yield `${text.slice(0, -1)},"queues":[`;
  let first = true;
  for await (const slice of listedQueues(ctx, ctx.config.statsMaxQueues)) {
    if (slice.length === 0) continue;
    yield (first ? '' : ',') + slice.map(statsRow).join(',');
    first = false;
  }
  yield ']}';
}

/** One queue of /v1/stats, written as text (no object per row). */
function statsRow({ meta, figures: f }: ListedQueue): string {
  return (
    `{"name":${JSON.stringify(localName(meta.name))},"depth":${f.depth},"consumers":${f.consumers},"unacked":${f.unacked},` +
    `"readyBytes":${f.readyBytes},"durable":${meta.durable},"exclusive":${meta.exclusive},"autoDelete":${meta.autoDelete},` +
    `"arguments":${JSON.stringify(meta.arguments)},"stats":${statsJson(f)},"vhost":${JSON.stringify(vhostOf(meta.name))},"shard":${meta.shard}}`
  );
}
