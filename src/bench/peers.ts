/**
 * Peer message systems for side-by-side comparison: NATS core (nats-server + the `nats` client)
 * and Redis pub/sub (redis-server + `ioredis`). The servers come from Debian and the clients from
 * benchmarks/peers/, a dependency island of their own (style.md §8.5.7), both installed by
 * scripts/install-bench-peers.sh. Nothing here is imported statically: when a server or a client
 * is missing, `loadPeers` says what and how to install it, and the workload skips that peer.
 *
 * Servers listen on 127.0.0.1 on a free port, persistence off, and are stopped after the workload.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { connect as tcpConnect, createServer } from 'node:net';
import { delimiter, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { stopChild } from './child.js';
import { PEERS_DIR } from './paths.js';
import type { FanoutPublisher, FanoutSubscriber, FanoutSystem } from './fanout.js';

export const INSTALL_HINT =
  'bash scripts/install-bench-peers.sh (apt-get installs nats-server and redis-server; npm installs the clients into benchmarks/peers/)';

// ---- the parts of the client APIs the harness uses (the clients are not dependencies) -----------

export interface NatsMsg {
  readonly data: Uint8Array;
}
export interface NatsConnection {
  publish(subject: string, data?: Uint8Array): void;
  subscribe(subject: string, opts: { callback: (err: Error | null, msg: NatsMsg) => void }): unknown;
  flush(): Promise<void>;
  close(): Promise<void>;
  /** Resolves when the connection is closed for good (with the error that closed it, if any). */
  closed(): Promise<void | Error>;
}
export interface NatsModule {
  connect(opts: { servers: string; noEcho?: boolean; maxReconnectAttempts?: number; pingInterval?: number }): Promise<NatsConnection>;
}
interface RedisPipeline {
  publish(channel: string, message: Buffer): RedisPipeline;
  exec(): Promise<unknown>;
}
interface RedisClient {
  subscribe(channel: string): Promise<unknown>;
  on(event: 'messageBuffer', listener: (channel: Buffer, message: Buffer) => void): this;
  on(event: 'error', listener: (err: Error) => void): this;
  pipeline(): RedisPipeline;
  quit(): Promise<unknown>;
  disconnect(): void;
}
type RedisCtor = new (opts: {
  host: string;
  port: number;
  enableOfflineQueue?: boolean;
  maxRetriesPerRequest?: number;
  lazyConnect?: boolean;
}) => RedisClient;

// ---- finding things --------------------------------------------------------------------------

function onPath(command: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, command);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return null;
}

async function importPeerClient(name: string): Promise<unknown> {
  const require = createRequire(join(PEERS_DIR, 'package.json'));
  const resolved = require.resolve(name);
  return import(pathToFileURL(resolved).href);
}

/** A port free on 127.0.0.1 right now (the OS picks it: bind port 0, read it, close). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Resolves once 127.0.0.1:`port` accepts a TCP connection; throws if `child` exits first or after `timeoutMs`. */
export async function waitForPort(port: number, child: ChildProcess, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${what} exited with ${child.exitCode} before listening`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = tcpConnect({ host: '127.0.0.1', port }, () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what} did not listen on 127.0.0.1:${port} within ${timeoutMs} ms`);
}

export interface PeerServer {
  readonly name: string;
  readonly version: string;
  readonly port: number;
  readonly pid: number;
  stop(): Promise<void>;
}

export async function startPeerServer(name: string, command: string, args: readonly string[], port: number): Promise<PeerServer> {
  const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    if (stderr.length < 4000) stderr += d.toString();
  });
  try {
    await waitForPort(port, child, name);
  } catch (err) {
    child.kill('SIGKILL');
    throw new Error(`${(err as Error).message}: ${stderr.trim()}`);
  }
  const version = await new Promise<string>((resolve) => {
    const v = spawn(command, ['--version'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    v.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    v.once('exit', () => resolve(out.trim().split('\n')[0] ?? ''));
    v.once('error', () => resolve(''));
  });
  return {
    name,
    version,
    port,
    pid: child.pid ?? 0,
    stop: () => stopChild(child, 5000),
  };
}

// ---- NATS core ---------------------------------------------------------------------------------

export async function startNatsServer(binary: string): Promise<PeerServer> {
  const port = await freePort();
  // Core NATS only (no JetStream), loopback, no monitoring port.
  return startPeerServer('nats-server', binary, ['-a', '127.0.0.1', '-p', String(port)], port);
}

export function natsSystem(nats: NatsModule, server: PeerServer): FanoutSystem {
  const servers = `127.0.0.1:${server.port}`;
  return {
    name: 'NATS core (nats.js, TCP)',
    pids: [server.pid],
    async publisher(topic, payload, _batch): Promise<FanoutPublisher> {
      const nc = await nats.connect({ servers, noEcho: true, maxReconnectAttempts: 0 });
      return {
        // The client gathers publishes in its outbound buffer and writes them in one go per tick.
        publish: (n) => {
          for (let i = 0; i < n; i++) nc.publish(topic, payload);
        },
        congested: () => false,
        close: () => nc.close(),
      };
    },
    async subscriber(topic, onMessages): Promise<FanoutSubscriber> {
      const nc = await nats.connect({ servers, maxReconnectAttempts: 0 });
      let received = 0;
      let lastAt = 0;
      nc.subscribe(topic, {
        callback: () => {
          received++;
          lastAt = performance.now();
          onMessages();
        },
      });
      await nc.flush(); // the server has the subscription once the PONG is back
      return { received: () => received, lastAt: () => lastAt, close: () => nc.close() };
    },
  };
}

// ---- Redis pub/sub -----------------------------------------------------------------------------

export async function startRedisServer(binary: string): Promise<PeerServer> {
  const port = await freePort();
  return startPeerServer(
    'redis-server',
    binary,
    [
      '--bind',
      '127.0.0.1',
      '--port',
      String(port),
      '--save',
      '',
      '--appendonly',
      'no',
      '--daemonize',
      'no',
      '--protected-mode',
      'yes',
      '--loglevel',
      'warning',
    ],
    port,
  );
}

export function redisSystem(Redis: RedisCtor, server: PeerServer): FanoutSystem {
  const opts = { host: '127.0.0.1', port: server.port, maxRetriesPerRequest: 1 };
  return {
    name: 'Redis pub/sub (ioredis)',
    pids: [server.pid],
    async publisher(topic, payload, _batch): Promise<FanoutPublisher> {
      const client = new Redis(opts);
      client.on('error', () => undefined);
      const buf = Buffer.from(payload);
      return {
        // One pipeline per batch: N PUBLISH commands written together, replies awaited in the background.
        publish: (n) => {
          const p = client.pipeline();
          for (let i = 0; i < n; i++) p.publish(topic, buf);
          void p.exec().catch(() => undefined);
        },
        congested: () => false,
        close: async () => {
          await client.quit().catch(() => client.disconnect());
        },
      };
    },
    async subscriber(topic, onMessages): Promise<FanoutSubscriber> {
      const client = new Redis(opts);
      client.on('error', () => undefined);
      let received = 0;
      let lastAt = 0;
      client.on('messageBuffer', () => {
        received++;
        lastAt = performance.now();
        onMessages();
      });
      await client.subscribe(topic); // resolves on the server's subscribe reply
      return {
        received: () => received,
        lastAt: () => lastAt,
        close: async () => {
          await client.quit().catch(() => client.disconnect());
        },
      };
    },
  };
}

// ---- what is installed -------------------------------------------------------------------------

export interface PeerAvailability {
  readonly nats: { binary: string; client: NatsModule } | { missing: string };
  readonly redis: { binary: string; client: RedisCtor } | { missing: string };
}

/** Finds the peer servers and clients; anything missing comes back as a sentence saying how to install it. */
export async function loadPeers(): Promise<PeerAvailability> {
  const islandInstalled = existsSync(join(PEERS_DIR, 'node_modules'));
  const load = async <T>(
    client: string,
    server: string,
    pick: (mod: Record<string, unknown>) => T | undefined,
  ): Promise<{ binary: string; client: T } | { missing: string }> => {
    const binary = onPath(server);
    const missing: string[] = [];
    if (binary === null) missing.push(`${server} is not on PATH`);
    let mod: T | undefined;
    if (!islandInstalled) missing.push(`benchmarks/peers/node_modules is absent`);
    else {
      try {
        mod = pick((await importPeerClient(client)) as Record<string, unknown>);
        if (mod === undefined) missing.push(`the ${client} client in benchmarks/peers/ has an unexpected shape`);
      } catch (err) {
        missing.push(`the ${client} client cannot be loaded from benchmarks/peers/ (${(err as Error).message.split('\n')[0]})`);
      }
    }
    if (missing.length > 0 || binary === null || mod === undefined)
      return { missing: `${missing.join('; ')}; install with ${INSTALL_HINT}` };
    return { binary, client: mod };
  };
  const [nats, redis] = await Promise.all([
    load<NatsModule>('nats', 'nats-server', (m) => (typeof m.connect === 'function' ? (m as unknown as NatsModule) : undefined)),
    load<RedisCtor>('ioredis', 'redis-server', (m) =>
      typeof m.Redis === 'function' ? (m.Redis as RedisCtor) : typeof m.default === 'function' ? (m.default as RedisCtor) : undefined,
    ),
  ]);
  return { nats, redis };
}
