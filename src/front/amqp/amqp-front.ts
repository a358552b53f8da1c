/**
 * The AMQP 0-9-1 front: a node:net listener (uWebSockets.js has no raw TCP) on --amqp-port, and
 * node:tls on --amqps-port with the HTTPS certificate, next to the HTTP and WebSocket fronts and
 * feeding the same control/ paths and rings. What shards send back for an AMQP connection (its
 * connection ids are the upper half of the id space) comes here from the broker.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { WireReader } from '../../protocol/amqp/wire.js';
import type { DeliverHead } from '../../protocol/ring-record-codec.js';
import { ErrorCode } from '../../protocol/errors.js';
import { ANONYMOUS, User } from '../../control/auth.js';
import type { Vhost } from '../../control/vhosts.js';
import { toJsonValue } from '../../protocol/json-properties.js';
import type { BrokerContext } from '../context.js';
import { AmqpConnection, type AmqpHost } from './amqp-connection.js';
import { FIRST_AMQP_CONNECTION, LAST_AMQP_CONNECTION } from '../connection-ids.js';
import { replyCodeFor } from './amqp-errors.js';

/** Connections listed one by one in /v1/stats. */
const MAX_STATS_CONNECTIONS = 1000;

export type AmqpConnectionStats = {
  id: number;
  user: string;
  /** null before connection.open. */
  vhost: string | null;
  protocol: 'amqp';
  peer: string;
  state: string;
  channels: number;
  consumers: number;
  unacked: number;
  bufferedBytes: number;
  published: number;
  delivered: number;
};

export class AmqpFront implements AmqpHost {
  readonly ctx: BrokerContext;
  readonly #connections = new Map<number, AmqpConnection>();
  readonly #touched = new Set<AmqpConnection>();
  readonly #servers: Server[] = [];
  #nextId = FIRST_AMQP_CONNECTION;
  #blocked = false;
  #undeliverable = 0;
  #refused = 0;
  port: number | null = null;
  tlsPort: number | null = null;

  constructor(ctx: BrokerContext) {
    this.ctx = ctx;
  }

  get blocked(): boolean {
    return this.#blocked;
  }

  /** Opens the listeners the configuration asks for; rejects when a port cannot be had. */
  async listen(): Promise<void> {
    const { config } = this.ctx;
    if (config.amqpPort !== null) {
      this.port = await this.#listenOn(
        createServer({ noDelay: true }, (s) => this.#accept(s)),
        config.amqpPort,
        'amqp-port',
      );
    }
    if (config.amqpsPort !== null && config.tlsCert !== null && config.tlsKey !== null) {
      const server = createTlsServer({ cert: readFileSync(config.tlsCert), key: readFileSync(config.tlsKey) }, (s) => this.#accept(s));
      this.tlsPort = await this.#listenOn(server, config.amqpsPort, 'amqps-port');
    }
  }

  #listenOn(server: Server, port: number, flag: string): Promise<number> {
    return new Promise((resolve, reject) => {
      server.once('error', (err) =>
        reject(new Error(`cannot listen for AMQP on ${this.ctx.config.host}:${port} (${flag}): ${err.message}`)),
      );
      server.listen({ host: this.ctx.config.host, port }, () => {
        this.#servers.push(server);
        const address = server.address();
        resolve(typeof address === 'object' && address !== null ? address.port : port);
      });
    });
  }

  #accept(socket: Socket): void {
    if (this.#connections.size >= this.ctx.config.maxConnections) {
      // Before the handshake there is no channel for an error: RabbitMQ drops such sockets too.
      this.#refused++;
      this.ctx.log.warn({ peer: socket.remoteAddress, max: this.ctx.config.maxConnections }, 'AMQP connection refused: max-connections');
      socket.destroy();
      return;
    }
    const id = this.#nextId;
    this.#nextId = this.#nextId >= LAST_AMQP_CONNECTION ? FIRST_AMQP_CONNECTION : this.#nextId + 1;
    this.#connections.set(id, new AmqpConnection(id, socket, this));
  }

  /**
   * PLAIN (`\0user\0password`) or AMQPLAIN (a LOGIN/PASSWORD table). With auth off any user gets in
   * from loopback, as RabbitMQ's guest does; with auth on the password is the user's token.
   */
  authenticate(mechanism: string, response: Uint8Array, address: string): User | string {
    let user: string;
    let password: string;
    if (mechanism === 'PLAIN') {
      const parts = Buffer.from(response).toString('utf8').split('\0');
      if (parts.length !== 3) return 'PLAIN response must be [authzid]\\0user\\0password';
      user = parts[1];
      password = parts[2];
    } else if (mechanism === 'AMQPLAIN') {
      // The table without its length prefix, as clients send it.
      const framed = new Uint8Array(response.byteLength + 4);
      new DataView(framed.buffer).setUint32(0, response.byteLength);
      framed.set(response, 4);
      const table = new WireReader(framed).table('AMQPLAIN response');
      user = typeof table.LOGIN === 'string' ? table.LOGIN : '';
      password = typeof table.PASSWORD === 'string' ? table.PASSWORD : '';
    } else {
      return `unsupported mechanism '${mechanism}'; this broker offers PLAIN and AMQPLAIN`;
    }
    const { auth } = this.ctx;
    if (!auth.enabled) {
      if (!isLoopback(address)) return `user '${user}' can only connect via localhost while the broker runs without auth`;
      return user === '' ? ANONYMOUS : new User(user, null);
    }
    const known = auth.authenticate(password);
    // --auth-token is one secret for everyone; a users-file token belongs to its user's name.
    if (known === null || (known.name !== 'token' && known.name !== user)) {
      return `ACCESS_REFUSED - Login was refused using authentication mechanism ${mechanism}`;
    }
    return known;
  }

  touch(connection: AmqpConnection): void {
    this.#touched.add(connection);
  }

  closed(connection: AmqpConnection): void {
    this.#connections.delete(connection.id);
    this.#touched.delete(connection);
  }

  /** Closes every connection in `vhost` (it was deleted) with 320 CONNECTION_FORCED; returns how many. */
  closeVhost(vhost: Vhost, reason: string): number {
    let n = 0;
    for (const c of [...this.#connections.values()]) {
      if (c.vhost !== vhost) continue;
      c.forceClose(reason);
      n++;
    }
    return n;
  }

  // ---- from the shards -------------------------------------------------------------------------

  onDeliver(rec: DeliverHead, bytes: Uint8Array): void {
    const connection = this.#connections.get(rec.connectionId);
    if (connection === undefined || !connection.deliver(rec, bytes)) this.#undeliverable++;
  }

  onShardError(connectionId: number, subscriptionId: number, code: string, message: string): void {
    const connection = this.#connections.get(connectionId);
    const consumer = connection?.consumers.get(subscriptionId);
    if (connection === undefined || consumer === undefined) return;
    if (code === ErrorCode.consumerCancelled) consumer.channel.cancelledByServer(consumer);
    else if (code === ErrorCode.accessRefused || code === ErrorCode.preconditionFailed) {
      // Refused at subscribe: exclusive use (403), a bad x-stream-offset (406). Both are channel errors.
      consumer.channel.refusedByShard(consumer, replyCodeFor(code), message);
    } else connection.log.warn({ code, message, consumer: consumer.tag }, 'shard error for an AMQP consumer');
    this.touch(connection);
  }

  /** End of an outbound chunk: one write per touched connection, then credit back to the shards. */
  flush(): void {
    if (this.#touched.size === 0) return;
    for (const c of this.#touched) c.flush();
    this.#touched.clear();
  }

  onShardCrash(shard: number): void {
    for (const c of this.#connections.values()) c.shardCrashed(shard);
  }

  onShardRestart(shard: number): void {
    for (const c of this.#connections.values()) c.shardRestarted(shard);
  }

  /** The memory guard's verdict: publishers are told (connection.blocked) and held. */
  setBlocked(on: boolean): void {
    this.#blocked = on;
    for (const c of this.#connections.values()) c.blocked(on);
    this.flush();
  }

  stats(): {
    connections: number;
    channels: number;
    consumers: number;
    undeliverable: number;
    refused: number;
    list: AmqpConnectionStats[];
  } {
    let channels = 0;
    let consumers = 0;
    const list: AmqpConnectionStats[] = [];
    for (const c of this.#connections.values()) {
      channels += c.channels.size;
      consumers += c.consumers.size;
      if (list.length >= MAX_STATS_CONNECTIONS) continue;
      let unacked = 0;
      for (const ch of c.channels.values()) unacked += ch.unacked;
      list.push({
        id: c.id,
        user: c.user,
        vhost: c.vhost?.name ?? null,
        protocol: 'amqp',
        peer: c.peer,
        state: c.state,
        channels: c.channels.size,
        consumers: c.consumers.size,
        unacked,
        bufferedBytes: c.socket.writableLength,
        published: c.published,
        delivered: c.delivered,
      });
    }
    return { connections: this.#connections.size, channels, consumers, undeliverable: this.#undeliverable, refused: this.#refused, list };
  }

  /** AMQP connections in the shape of RabbitMQ's management API (GET /api/connections). */
  rabbitConnections(vhost: Vhost): Array<Record<string, unknown>> {
    const out: Array<Record<string, unknown>> = [];
    for (const c of this.#connections.values()) {
      if (out.length >= MAX_STATS_CONNECTIONS) break;
      if (c.vhost !== vhost) continue;
      out.push({
        name: connectionName(c),
        node: 'shardmq',
        type: 'network',
        protocol: 'AMQP 0-9-1',
        user: c.user,
        vhost: vhost.name,
        state: c.state,
        channels: c.channels.size,
        peer_host: c.socket.remoteAddress ?? '',
        peer_port: c.socket.remotePort ?? 0,
        host: c.socket.localAddress ?? '',
        port: c.socket.localPort ?? 0,
        ssl: this.tlsPort !== null && c.socket.localPort === this.tlsPort,
        timeout: c.heartbeatS,
        frame_max: c.frameMax,
        channel_max: c.channelMax,
        connected_at: c.connectedAt,
        recv_oct: c.socket.bytesRead,
        send_oct: c.socket.bytesWritten,
        send_pend: c.socket.writableLength,
        client_properties: toJsonValue(c.clientProperties),
        published: c.published,
        delivered: c.delivered,
      });
    }
    return out;
  }

  /** AMQP channels in the shape of RabbitMQ's management API (GET /api/channels). */
  rabbitChannels(vhost: Vhost): Array<Record<string, unknown>> {
    const out: Array<Record<string, unknown>> = [];
    for (const c of this.#connections.values()) {
      if (c.vhost !== vhost) continue;
      const name = connectionName(c);
      for (const ch of c.channels.values()) {
        if (out.length >= MAX_STATS_CONNECTIONS) return out;
        out.push({
          name: `${name} (${ch.number})`,
          number: ch.number,
          connection_details: { name, peer_host: c.socket.remoteAddress ?? '', peer_port: c.socket.remotePort ?? 0 },
          user: c.user,
          vhost: vhost.name,
          state: ch.closing ? 'closing' : c.state,
          consumer_count: ch.consumers.size,
          messages_unacknowledged: ch.unacked,
          prefetch_count: ch.prefetch,
          confirm: ch.confirming,
          transactional: ch.transactional,
        });
      }
    }
    return out;
  }

  /** Stops listening and closes every connection with connection.close 320 CONNECTION_FORCED. */
  async close(reason: string): Promise<void> {
    for (const c of [...this.#connections.values()]) c.forceClose(reason);
    await Promise.all(this.#servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    this.#servers.length = 0;
  }
}

function isLoopback(address: string): boolean {
  if (address === '::1') return true;
  const v4 = address.startsWith('::ffff:') ? address.slice(7) : address;
  return isIP(v4) === 4 && v4.startsWith('127.');
}

/** RabbitMQ names a connection by its two ends. */
function connectionName(c: AmqpConnection): string {
  return `${c.socket.remoteAddress ?? ''}:${c.socket.remotePort ?? 0} -> ${c.socket.localAddress ?? ''}:${c.socket.localPort ?? 0}`;
}
