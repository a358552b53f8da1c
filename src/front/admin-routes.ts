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
import { prometheusParts, type VhostView } from '../metrics/prometheus.js';
import { nodeFacts } from './node-facts.js';
import { HEALTH_TIMEOUT_MS } from '../config/defaults.js';
import { checkFraming, joinInTurns, refuseFraming, sendJson, sendText, watchAbort } from './http-util.js';
import { authorize } from './http-auth.js';
import type { Principal } from '../control/auth.js';
import type { DroppedSubscription } from './ws-session.js';
import type { QueueStats } from '../shard/shard-core.js';

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
    void collectStats(ctx, frontStats())
      .then((parts) => joinInTurns(parts, state))
      .then((text) => {
        if (text !== null) sendText(res, 200, 'application/json', text, state);
      });
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
    const front = frontStats();
    // Per-queue series for at most --stats-max-queues queues per shard (RabbitMQ's
    // return_per_object_metrics, as a bound): 0 leaves them out and asks the shards nothing.
    const limit = ctx.config.statsMaxQueues;
    const lists = limit === 0 ? Promise.resolve([]) : Promise.all(ctx.shards.map((h) => ctx.supervisor.queueStatsInSlices(h.index, limit)));
    void lists.then(async (answers) => {
      const shards = ctx.shards.map((h) => ({
        index: h.index,
        alive: h.alive,
        counters: readCounters(h.counters),
        ring: h.occupancy(),
        held: h.overflow,
      }));
      const { received, confirmed, unroutable } = ctx.publisher;
      const queues =
        limit === 0
          ? undefined
          : answers.flatMap((list, shard) =>
              (list?.queues ?? []).map((q) => ({ name: q.name, shard, ready: q.depth, unacked: q.unacked, consumers: q.consumers })),
            );
      // In parts across turns: 1,000 queues per shard of series are too long for one turn.
      const text = await joinInTurns(prometheusParts(shards, front, { received, confirmed, unroutable }, queues, vhostRows(ctx)), state);
      if (text !== null) sendText(res, 200, 'text/plain; version=0.0.4', text, state);
    });
  });
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

/** Queue rows of /v1/stats per part of the answer. */
const STATS_PART = 250;

/**
 * The /v1/stats answer as JSON text in parts (joinInTurns): the broker's figures, then the listed
 * queues (up to --stats-max-queues per shard) a slice at a time, last in the object.
 */
async function collectStats(ctx: BrokerContext, front: FrontStats): Promise<Iterable<string>> {
  const limit = ctx.config.statsMaxQueues;
  const answers = await Promise.all(ctx.shards.map((h) => ctx.supervisor.queueStatsInSlices(h.index, limit)));
  const queueLists = answers.map((a) => a?.queues ?? null);
  const queuesTotal = answers.reduce((n, a) => n + (a?.total ?? 0), 0);
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
    queuesTotal,
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
  return statsParts(JSON.stringify(head), queueLists);
}

function* statsParts(head: string, queueLists: ReadonlyArray<readonly QueueStats[] | null>): Generator<string> {
  yield `${head.slice(0, -1)},"queues":[`;
  let first = true;
  for (const [shard, list] of queueLists.entries()) {
    if (list === null) continue;
    for (let i = 0; i < list.length; i += STATS_PART) {
      const rows = list
        .slice(i, i + STATS_PART)
        .map((q) => JSON.stringify({ ...q, name: localName(q.name), vhost: vhostOf(q.name), shard }));
      yield (first ? '' : ',') + rows.join(',');
      first = false;
    }
  }
  yield ']}';
}
