/**
 * The composition root: configuration, shards, the uWebSockets.js app and its
 * routes. The main thread does I/O and framing only; routing happens in shards.
 */
import { Vhosts } from '../control/vhosts.js';
import { createVhostNumberTable, VhostNumbering } from '../protocol/vhost-numbers.js';
import { VhostBudgets } from './vhost-usage.js';
import { deleteVhostContents, registerVhostRoutes } from './vhost-routes.js';
import { prefixOf, vhostOf, vhostScope, type VhostScope } from '../protocol/vhost-name.js';
import { CLOSE_POLICY } from './ws-connection.js';
import { RefusalLog } from './refusal-log.js';
import { registerDashboardRoutes } from './dashboard-routes.js';
import { RouteMethods } from './route-methods.js';
import { copyBytes } from '../protocol/bytes.js';
import { loadUws, type UWS } from './uws.js';
import { Supervisor } from '../shard/supervisor.js';
import type { OutboundSink } from '../shard/shard-handle.js';
import { ConfirmTracker } from '../control/confirm-tracker.js';
import { ConfirmStatus, RecordKind, type RecordReader } from '../protocol/ring-record-codec.js';
import { Topology } from '../control/topology.js';
import { ShardCalls } from '../control/shard-calls.js';
import { Management } from '../control/management.js';
import { PublishPath } from '../control/publish-path.js';
import { ConsumePath } from '../control/consume-path.js';
import { InflatePool } from '../offload/inflate-pool.js';
import { MemoryGuard } from '../control/memory-guard.js';
import { Authenticator } from '../control/auth.js';
import { registerManagementRoutes } from './management-routes.js';
import type { RecoverySummary } from '../shard/shard-core.js';
import { newDeliverHead, newPublishRecord, type ManageOp, type ManageResult } from '../protocol/ring-record-codec.js';
import { registerHttpPublish } from './http-publish.js';
import { registerAdminRoutes } from './admin-routes.js';
import { WsFront } from './ws-session.js';
import { AmqpFront } from './amqp/amqp-front.js';
import { isAmqpConnection, isClusterConnection } from './connection-ids.js';
import { CounterSlot } from '../metrics/shard-counters.js';
import { sendRefusal } from './http-util.js';
import { ErrorCode } from '../protocol/errors.js';
import type { BrokerConfig } from '../config/config.js';
import type { Logger } from '../log/logger.js';
import type { BrokerContext } from './context.js';
import { HopTrace } from '../metrics/hop-trace.js';
import { countGcPauses, type GcMonitor, type GcPauses } from '../metrics/gc-monitor.js';
import type { ClusterNode } from '../cluster/cluster-node.js';
import { hostname } from 'node:os';
import { WorkPacer } from './work-pacer.js';

export class Broker implements OutboundSink {
  readonly config: BrokerConfig;
  readonly log: Logger;
  readonly #uws: typeof UWS;
  readonly #binary: string;
  readonly #supervisor: Supervisor;
  readonly #confirms = new ConfirmTracker();
  readonly #topology: Topology;
  readonly #calls: ShardCalls;
  readonly #management: Management;
  readonly #publisher: PublishPath;
  readonly #inflate: InflatePool;
  readonly #memory: MemoryGuard;
  readonly #vhosts: Vhosts;
  readonly #budgets: VhostBudgets;
  readonly #ctx: BrokerContext;
  readonly #republish = newPublishRecord();
  /** What shards recovered from their logs, merged into the topology once all are up. */
  readonly #recovered: Array<{ index: number; summary: RecoverySummary }> = [];
  readonly #ws: WsFront;
  readonly #amqp: AmqpFront;
  readonly #deliverHead = newDeliverHead();
  readonly #trace: HopTrace;
  readonly #gc: GcPauses = { pauses: 0, pauseMs: 0, maxPauseMs: 0 };
  #gcMonitor: GcMonitor | null = null;
  readonly #app: UWS.TemplatedApp;
  readonly #tls: boolean;
  #listenSocket: UWS.us_listen_socket | null = null;
  #port = 0;
  #cluster: ClusterNode | null = null;
  #running = false;
  #started = false;

  constructor(config: BrokerConfig, log: Logger) {
    this.config = config;
    this.log = log;
    const { uws, binary } = loadUws();
    this.#uws = uws;
    this.#binary = binary;
    // Vhosts are numbered for the shards' ring records; the table is shared before any exists.
    const vhostTable = createVhostNumberTable();
    this.#supervisor = new Supervisor({
      vhostTable,
      shards: config.shards,
      ringBytes: config.ringBytes,
      dataDir: config.dataDir,
      fsync: config.fsync,
      fsyncIntervalMs: config.fsyncIntervalMs,
      onRecovered: (index, summary) => {
        // At start the recovered topology is merged once all shards are up; after a restart
        // the main thread already knows it, and the shard got the rest in its snapshot.
        if (!this.#started) this.#recovered.push({ index, summary });
        else
          log.info({ shard: index, messages: summary.messages, durationMs: summary.stats.durationMs }, 'restarted shard recovered its log');
      },
      logLevel: config.logLevel,
      log,
      onCrash: (index) => {
        this.#calls.failShard(index);
        const failed = this.#confirms.failShard(index, ConfirmStatus.rejected);
        if (failed > 0) log.warn({ shard: index, failed }, 'publishes waiting on the dead shard were answered with an error');
        this.#ws.onShardCrash(index);
        this.#amqp.onShardCrash(index);
        // The new thread presses nothing yet: what waited for the old one goes into the ring.
        this.#supervisor.handles[index].setFlowHeld(false);
      },
      // A restarted shard gets the topology it must know in its workerData, applied before it
      // reads the publishes that waited in its ring; then its consumers are registered again.
      topologyFor: (index) => {
        const ops: ManageOp[] = [];
        this.#management.replayShard(index, (op) => ops.push(op));
        return ops;
      },
      onRestart: (index) => {
        this.#ws.onShardRestart(index);
        this.#amqp.onShardRestart(index);
        this.#cluster?.shardRestarted(index);
      },
    });
    this.#topology = new Topology(config.shards);
    this.#vhosts = new Vhosts(config.dataDir, new VhostNumbering(vhostTable));
    for (const v of this.#vhosts.list()) this.#topology.registry.ensureVhost(v.prefix);
    this.#topology.queueLimit = (prefix) => this.#vhosts.byPrefix(prefix)?.limits.maxQueues ?? Number.POSITIVE_INFINITY;
    this.#calls = new ShardCalls(this.#supervisor.handles);
    this.#management = new Management(this.#topology, this.#calls);
    this.#publisher = new PublishPath(this.#topology, this.#supervisor.handles, config.dataDir !== null, log);
    this.#inflate = new InflatePool({ threads: config.inflateThreads, maxQueue: config.inflateQueue });
    this.#memory = new MemoryGuard(config.maxMemoryBytes, (over, rss) => {
      this.#publisher.overMemory = over;
      if (over) log.warn({ rss, maxMemory: config.maxMemoryBytes }, 'memory above max-memory: refusing publishes until it falls');
      else log.info({ rss }, 'memory back under max-memory: accepting publishes');
      this.#amqp.setBlocked(over);
    });
    this.#trace = new HopTrace(config.latencySample);
    for (const h of this.#supervisor.handles) {
      h.overflowLimit = config.overflowBytes;
      h.tracer = this.#trace;
    }
    this.#gcMonitor = countGcPauses(this.#gc);
    const ctx: BrokerContext = {
      config,
      log,
      shards: this.#supervisor.handles,
      supervisor: this.#supervisor,
      confirms: this.#confirms,
      topology: this.#topology,
      management: this.#management,
      calls: this.#calls,
      publisher: this.#publisher,
      consume: new ConsumePath(this.#topology, this.#publisher, this.#management, this.#supervisor.handles, config, log),
      inflate: this.#inflate,
      auth: new Authenticator(config.authToken, config.usersFile),
      vhosts: this.#vhosts,
      trace: this.#trace,
      mainGc: this.#gc,
      refusals: new RefusalLog(log),
      routes: new RouteMethods(),
      clusterStatus: () => this.#cluster?.status() ?? null,
      remotePort: () => this.#cluster?.remotePort ?? null,
      clusterRoom: () => this.#cluster,
      pacer: new WorkPacer(config.managementShare / 100),
    };
    this.#ctx = ctx;
    this.#budgets = new VhostBudgets(ctx);
    this.#tls = config.tlsCert !== null;
    // TLS terminates in uWebSockets.js itself (SSLApp); the data path is unchanged.
    this.#app = this.#tls ? uws.SSLApp({ cert_file_name: config.tlsCert ?? '', key_file_name: config.tlsKey ?? '' }) : uws.App();
    this.#ws = new WsFront(ctx);
    this.#ws.register(this.#app);
    this.#amqp = new AmqpFront(ctx);
    registerHttpPublish(this.#app, ctx);
    registerAdminRoutes(
      this.#app,
      ctx,
      () => {
        const ws = this.#ws.stats();
        const amqp = this.#amqp.stats();
        return {
          ...ws,
          amqp: { connections: amqp.connections, channels: amqp.channels, consumers: amqp.consumers },
          undeliverable: ws.undeliverable + amqp.undeliverable,
          connections: [...ws.connections, ...amqp.list],
          unroutable: this.#publisher.unroutable,
        };
      },
      (principal) => this.#ws.connectionsOf(principal),
    );
    registerManagementRoutes(this.#app, ctx, {
      connections: (vhost) => this.#amqp.rabbitConnections(vhost),
      channels: (vhost) => this.#amqp.rabbitChannels(vhost),
    });
    registerVhostRoutes(
      this.#app,
      ctx,
      (vhost, reason) => this.#ws.closeVhost(vhost, CLOSE_POLICY, reason) + this.#amqp.closeVhost(vhost, reason),
    );
    registerDashboardRoutes(this.#app, ctx);
    this.#app.any('/*', (res, req) => {
      const method = req.getMethod().toUpperCase();
      const url = req.getUrl();
      const allowed = ctx.routes.allowed(url);
      if (allowed.length === 0) {
        sendRefusal(res, ctx.refusals, 404, { error: ErrorCode.notFound, message: `no route for ${method} ${url}` });
        return;
      }
      const allow = allowed.join(', ');
      sendRefusal(
        res,
        ctx.refusals,
        405,
        { error: ErrorCode.methodNotAllowed, message: `${url} answers ${allow}, not ${method}` },
        undefined,
        { allow },
      );
    });
  }

  get port(): number {
    return this.#port;
  }

  get url(): string {
    const host = this.config.host.includes(':') ? `[${this.config.host}]` : this.config.host;
    return `${this.#tls ? 'https' : 'http'}://${host}:${this.#port}`;
  }

  /** amqp://host:port of the AMQP listener; null when --amqp-port is off. */
  get amqpUrl(): string | null {
    return this.#amqp.port === null ? null : `amqp://${this.#hostForUrl()}:${this.#amqp.port}`;
  }

  get amqpsUrl(): string | null {
    return this.#amqp.tlsPort === null ? null : `amqps://${this.#hostForUrl()}:${this.#amqp.tlsPort}`;
  }

  /** The main thread's topology (read-only use: tests and tools that check what it holds). */
  get topology(): Topology {
    return this.#topology;
  }

  get amqpPort(): number | null {
    return this.#amqp.port;
  }

  #hostForUrl(): string {
    return this.config.host.includes(':') ? `[${this.config.host}]` : this.config.host;
  }

  get nativeBinary(): string {
    return this.#binary;
  }

  /** The --max-memory guard (tests drive its samples). */
  get memoryGuard(): MemoryGuard {
    return this.#memory;
  }

  get supervisor(): Supervisor {
    return this.#supervisor;
  }

  async start(): Promise<void> {
    this.#running = true;
    this.#memory.start();
    this.#budgets.start();
    await this.#supervisor.start(this);
    this.#adoptRecovered();
    this.#started = true;
    try {
      await this.#listen();
      await this.#amqp.listen();
      await this.#joinCluster();
    } catch (err) {
      if (this.#listenSocket !== null) {
        this.#uws.us_listen_socket_close(this.#listenSocket);
        this.#listenSocket = null;
      }
      await this.#amqp.close('broker failed to start');
      // Do not leave shard threads running behind a broker that never served.
      await this.#supervisor.stop();
      this.#memory.stop();
      this.#budgets.stop();
      await this.#inflate.close();
      this.#running = false;
      throw err;
    }
  }

  /** The node of a cluster (--cluster): loaded only then, so a node of its own never loads the NATS client. */
  async #joinCluster(): Promise<void> {
    const servers = this.config.cluster;
    if (servers === null) return;
    const { ClusterNode } = await import('../cluster/cluster-node.js');
    this.#cluster = await ClusterNode.start(
      {
        servers,
        nodeName: this.config.nodeName ?? `${hostname()}-${this.#port}`,
        http: this.url,
        amqp: this.amqpUrl,
        timeoutMs: this.config.clusterTimeoutMs,
        bufferBytes: this.config.clusterBufferBytes,
      },
      {
        topology: this.#topology,
        publisher: this.#publisher,
        shards: () => this.#supervisor.handles,
        sink: this,
        confirms: this.#confirms,
        heldMessages: () => {
          let held = 0;
          for (const h of this.#supervisor.handles) held += h.counters[CounterSlot.ready] + h.counters[CounterSlot.unacked];
          return held;
        },
        log: this.log,
      },
    );
    this.#publisher.cluster = this.#cluster;
    const cluster = this.#cluster;
    this.#management.queueElsewhere = (name) => cluster.queueOwner(name, false);
  }

  /** This node's cluster link; null on a node of its own. */
  get cluster(): ClusterNode | null {
    return this.#cluster;
  }

  /**
   * Durable topology recovered by the shards becomes the main thread's topology before the
   * broker listens; exchanges and exchange bindings are then written to every shard, since
   * each must know them (a shard added since the last run has none).
   */
  #adoptRecovered(): void {
    if (this.#recovered.length === 0) return;
    let messages = 0;
    let durationMs = 0;
    for (const { index, summary } of this.#recovered.splice(0)) {
      this.#management.adoptRecovered(index, summary.topology);
      messages += summary.messages;
      durationMs = Math.max(durationMs, summary.stats.durationMs);
    }
    this.#management.broadcastExchanges((shard, op) => this.#supervisor.handles[shard].writeControl((w) => w.manage(0, 0, op)));
    this.log.info({ messages, durationMs }, `recovered ${messages} persistent messages from the log in ${durationMs} ms`);
    this.#finishVhostDeletions();
  }

  /**
   * Recovered queues and exchanges of a vhost vhosts.json no longer has: a deletion a crash cut
   * short (the vhost's record goes first). Finished now, in the background, as DELETE would have.
   */
  #finishVhostDeletions(): void {
    const orphans = new Map<string, VhostScope>();
    const note = (name: string): void => {
      const prefix = prefixOf(name);
      if (prefix !== '' && this.#vhosts.byPrefix(prefix) === undefined) orphans.set(prefix, vhostScope(vhostOf(name)));
    };
    for (const q of this.#topology.listQueues()) note(q.name);
    for (const x of this.#topology.listExchanges()) note(x.name);
    for (const vhost of orphans.values()) {
      this.log.warn({ vhost: vhost.name }, 'recovered objects of a deleted vhost: finishing its deletion');
      void deleteVhostContents(this.#ctx, vhost).then(
        (removed) => this.log.info({ vhost: vhost.name, ...removed }, 'deleted vhost cleared'),
        (err: unknown) => this.log.error({ err, vhost: vhost.name }, 'could not clear a deleted vhost'),
      );
    }
  }

  #listen(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#app.listen(this.config.host, this.config.port, (socket) => {
        if (!socket) {
          reject(new Error(`cannot listen on ${this.config.host}:${this.config.port} (in use, or not an address of this host)`));
          return;
        }
        this.#listenSocket = socket;
        // The v20.30 typings accept only us_socket here; the listen socket works at runtime.
        this.#port = this.#uws.us_socket_local_port(socket as unknown as UWS.us_socket);
        resolve();
      });
    });
  }

  /** Stop accepting, let in-flight confirms finish (bounded), close sockets, stop shards. */
  async stop(): Promise<void> {
    if (!this.#running) return;
    if (this.#listenSocket !== null) {
      this.#uws.us_listen_socket_close(this.#listenSocket);
      this.#listenSocket = null;
    }
    // Leave first: the others stop sending here at once instead of after the timeout.
    this.#publisher.cluster = null;
    this.#management.queueElsewhere = null;
    await this.#cluster?.stop();
    this.#cluster = null;
    const deadline = Date.now() + this.config.shutdownTimeoutMs;
    while (this.#confirms.size > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 5));
    }
    this.#ws.closeAll(1001, 'broker shutting down');
    await this.#amqp.close('broker shutting down');
    await this.#supervisor.stop();
    this.#memory.stop();
    this.#budgets.stop();
    this.#gcMonitor?.stop();
    this.#gcMonitor = null;
    await this.#inflate.close();
    this.#running = false;
    // close() exists at runtime in 20.30 though its typings lack it; it drops keep-alive
    // HTTP sockets that would otherwise hold the process open for seconds (docs/engine-notes.md §3).
    (this.#app as unknown as { close?: () => void }).close?.();
  }

  // ---- OutboundSink: what shards send back ------------------------------------------------

  onRecord(shard: number, kind: number, offset: number, length: number, reader: RecordReader): void {
    switch (kind) {
      case RecordKind.deliver: {
        const connection = reader.u32(offset);
        if (isAmqpConnection(connection)) this.#amqp.onDeliver(reader.deliverHead(offset, this.#deliverHead), reader.bytes);
        else if (isClusterConnection(connection)) this.#cluster?.onProxyRecord(kind, offset, length, reader);
        else this.#ws.onDeliver(shard, offset, reader);
        break;
      }
      case RecordKind.confirm: {
        // HTTP requests and WebSocket receipts alike wait on tokens in one tracker.
        this.#confirms.settle(reader.u32(offset + 4), reader.u32(offset + 8) as ConfirmStatus);
        break;
      }
      case RecordKind.pong:
        this.#confirms.settle(reader.u32(offset), ConfirmStatus.ok);
        break;
      case RecordKind.error: {
        if (isClusterConnection(reader.u32(offset))) {
          this.#cluster?.onProxyRecord(kind, offset, length, reader);
          break;
        }
        const e = reader.error(offset);
        if (isAmqpConnection(e.connectionId)) this.#amqp.onShardError(e.connectionId, e.subscriptionId, e.code, e.message);
        else this.#ws.onShardError(e.connectionId, e.subscriptionId, e.code, e.message);
        break;
      }
      case RecordKind.manageReply: {
        const { token, status, body } = reader.json(offset);
        const result = body as ManageResult;
        if (token !== 0) this.#calls.settle(token, status, result);
        else if (result.event === 'queueDeleted' && result.queue !== undefined) {
          // A shard deleted a queue by itself (auto-delete, x-expires): forget it here too.
          void this.#management.forgetQueue(result.queue);
        }
        break;
      }
      case RecordKind.republish:
        this.#routeDeadLetter(reader, offset);
        break;
      case RecordKind.flow: {
        const held = reader.u32(offset) === 1;
        this.#supervisor.handles[shard].setFlowHeld(held);
        this.log.debug({ shard, held }, held ? 'flow control: holding publishes for a shard' : 'flow control: released');
        break;
      }
      case RecordKind.traced:
        this.#trace.read(reader.f64(offset), reader.f64(offset + 8), reader.f64(offset + 16));
        break;
      case RecordKind.dropped:
        if (isClusterConnection(reader.u32(offset))) this.#cluster?.onProxyRecord(kind, offset, length, reader);
        else this.#ws.onDropped(reader.u32(offset), reader.u32(offset + 4), reader.f64(offset + 8));
        break;
      default:
        this.log.error({ shard, kind }, 'unknown outbound record kind; skipped');
    }
  }

  /** A dead-lettered copy from a shard: copied out of the ring (rare path), routed like a publish. */
  #routeDeadLetter(reader: RecordReader, offset: number): void {
    const rec = reader.publish(offset, this.#republish);
    const buf = reader.buffer;
    const props = rec.propsLength > 0 ? copyBytes(buf, rec.propsOffset, rec.propsOffset + rec.propsLength) : null;
    this.#publisher.republishDeadLetter(
      rec.exchange,
      rec.routingKey,
      props,
      copyBytes(buf, rec.payloadOffset, rec.payloadOffset + rec.payloadLength),
    );
  }

  onRecordError(shard: number, kind: number, err: unknown): void {
    this.log.error({ err, shard, kind }, 'outbound record could not be handled; skipped');
  }

  onChunkEnd(shard: number): void {
    this.#ws.flush(shard);
    this.#amqp.flush();
    this.#trace.chunkEnd();
  }
}
