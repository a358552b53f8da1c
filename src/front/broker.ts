/**
 * The composition root: configuration, shards, the uWebSockets.js app and its
 * routes. The main thread does I/O and framing only; routing happens in shards.
 */
import { loadUws, type UWS } from './uws.js';
import { Supervisor } from '../shard/supervisor.js';
import type { ShardHandle, OutboundSink } from '../shard/shard-handle.js';
import { ConfirmTracker } from './confirm-tracker.js';
import { ConfirmStatus, RecordKind, type RecordReader } from '../protocol/ring-record-codec.js';
import { shardFor } from '../router/shard-map.js';
import type { Destination } from '../protocol/destination.js';
import { registerHttpPublish } from './http-publish.js';
import { registerAdminRoutes } from './admin-routes.js';
import { WsFront } from './ws-session.js';
import { sendJson } from './http-util.js';
import { ErrorCode } from '../protocol/errors.js';
import type { BrokerConfig } from '../config/config.js';
import type { Logger } from '../log/logger.js';

export interface BrokerContext {
  readonly config: BrokerConfig;
  readonly log: Logger;
  readonly shards: readonly ShardHandle[];
  readonly supervisor: Supervisor;
  readonly confirms: ConfirmTracker;
  /** The shard that owns a destination's messages (publish side). */
  shardOf(destination: Destination): number;
}

export class Broker implements OutboundSink {
  readonly config: BrokerConfig;
  readonly log: Logger;
  readonly #uws: typeof UWS;
  readonly #binary: string;
  readonly #supervisor: Supervisor;
  readonly #confirms = new ConfirmTracker();
  readonly #ws: WsFront;
  readonly #app: UWS.TemplatedApp;
  #listenSocket: UWS.us_listen_socket | null = null;
  #port = 0;
  #running = false;

  constructor(config: BrokerConfig, log: Logger) {
    this.config = config;
    this.log = log;
    const { uws, binary } = loadUws();
    this.#uws = uws;
    this.#binary = binary;
    this.#supervisor = new Supervisor({
      shards: config.shards,
      ringBytes: config.ringBytes,
      topicBuffer: config.topicBuffer,
      logLevel: config.logLevel,
      log,
      onCrash: (index) => {
        const failed = this.#confirms.failShard(index, ConfirmStatus.rejected);
        if (failed > 0) log.warn({ shard: index, failed }, 'publishes waiting on the dead shard were answered with an error');
        this.#ws.onShardCrash(index);
      },
      onRestart: (index) => this.#ws.onShardRestart(index),
    });
    const ctx: BrokerContext = {
      config,
      log,
      shards: this.#supervisor.handles,
      supervisor: this.#supervisor,
      confirms: this.#confirms,
      // Queues live on the shard of their name, topic messages on the shard of their routing key.
      shardOf: (d) => shardFor(d.name, config.shards),
    };
    this.#app = uws.App();
    this.#ws = new WsFront(ctx);
    this.#ws.register(this.#app);
    registerHttpPublish(this.#app, ctx);
    registerAdminRoutes(this.#app, ctx, () => this.#ws.stats());
    this.#app.any('/*', (res, req) => {
      const method = req.getMethod().toUpperCase();
      const url = req.getUrl();
      sendJson(res, 404, { error: ErrorCode.notFound, message: `no route for ${method} ${url}` });
    });
  }

  get port(): number {
    return this.#port;
  }

  get url(): string {
    const host = this.config.host.includes(':') ? `[${this.config.host}]` : this.config.host;
    return `http://${host}:${this.#port}`;
  }

  get nativeBinary(): string {
    return this.#binary;
  }

  get supervisor(): Supervisor {
    return this.#supervisor;
  }

  async start(): Promise<void> {
    this.#running = true;
    await this.#supervisor.start(this);
    await new Promise<void>((resolve, reject) => {
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
    const deadline = Date.now() + this.config.shutdownTimeoutMs;
    while (this.#confirms.size > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 5));
    }
    this.#ws.closeAll(1001, 'broker shutting down');
    await this.#supervisor.stop();
    this.#running = false;
    // close() exists at runtime in 20.30 though its typings lack it; it drops keep-alive
    // HTTP sockets that would otherwise hold the process open for seconds (engine-notes §3).
    (this.#app as unknown as { close?: () => void }).close?.();
  }

  // ---- OutboundSink: what shards send back ------------------------------------------------

  onRecord(shard: number, kind: number, offset: number, _length: number, reader: RecordReader): void {
    switch (kind) {
      case RecordKind.deliver:
        this.#ws.onDeliver(shard, offset, reader);
        break;
      case RecordKind.confirm: {
        // HTTP requests and WebSocket receipts alike wait on tokens in one tracker.
        this.#confirms.settle(reader.u32(offset + 4), reader.u32(offset + 8) as ConfirmStatus);
        break;
      }
      case RecordKind.pong:
        this.#confirms.settle(reader.u32(offset), ConfirmStatus.ok);
        break;
      case RecordKind.error: {
        const e = reader.error(offset);
        this.#ws.onShardError(e.connectionId, e.subscriptionId, e.code, e.message);
        break;
      }
      default:
        this.log.error({ shard, kind }, 'unknown outbound record kind; skipped');
    }
  }

  onChunkEnd(shard: number): void {
    this.#ws.flush(shard);
  }
}
