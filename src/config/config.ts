import * as D from './defaults.js';
import { maxRecordPayload } from '../ring/spsc-ring.js';
import { InboundWriter } from '../protocol/ring-record-codec.js';
import { LOG_LEVELS } from '../log/logger.js';
import type { LevelWithSilent } from 'pino';

/** The broker's settings, validated once at start-up and frozen. */
export interface BrokerConfig {
  readonly host: string;
  readonly port: number;
  /** AMQP 0-9-1 listener port on `host`; null: no AMQP listener (`--amqp-port off`). */
  readonly amqpPort: number | null;
  /** AMQP over TLS (the HTTPS certificate and key); null: none. */
  readonly amqpsPort: number | null;
  readonly shards: number;
  readonly dataDir: string | null;
  readonly logLevel: LevelWithSilent;
  readonly ringBytes: number;
  readonly maxMessageBytes: number;
  readonly maxBodyBytes: number;
  readonly maxFrameBytes: number;
  readonly deliveryWindow: number;
  readonly deliveryWindowBytes: number;
  readonly publishWindow: number;
  readonly publishWindowBytes: number;
  readonly slowConsumerMs: number;
  readonly latencySample: number;
  readonly statsMaxQueues: number;
  readonly managementShare: number;
  readonly socketHighWater: number;
  readonly topicBuffer: number;
  readonly overflowBytes: number;
  readonly publishWaitMs: number;
  readonly shutdownTimeoutMs: number;
  readonly fsync: 'always' | 'batch';
  readonly fsyncIntervalMs: number;
  readonly inflateThreads: number;
  readonly inflateQueue: number;
  readonly maxBatchLines: number;
  readonly maxConnections: number;
  readonly maxSubscriptions: number;
  readonly idleTimeoutS: number;
  readonly slowConsumer: 'drop' | 'disconnect' | 'block';
  readonly maxMemoryBytes: number;
  readonly tlsCert: string | null;
  readonly tlsKey: string | null;
  readonly authToken: string | null;
  readonly usersFile: string | null;
  /** NATS servers joining this node to a cluster (nats://host:port, several for failover); null: a node of its own. */
  readonly cluster: readonly string[] | null;
  /** This node's name in the cluster; null: `<hostname>-<port>`. */
  readonly nodeName: string | null;
  readonly clusterTimeoutMs: number;
  readonly clusterBufferBytes: number;
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly code = 'bad_config';
}

type Kind = 'string' | 'int' | 'level' | 'pow2' | 'enum' | 'port' | 'nats-urls' | 'node-name';
interface Spec {
  key: keyof BrokerConfig;
  flag: string;
  kind: Kind;
  min?: number;
  max?: number;
  values?: readonly string[];
  def: string | number | null;
  /** One line for --help and the README. */
  help?: string;
}

/** One row per setting: the flag, the SHARDMQ_* env name is derived from it. */
export const CONFIG_SPECS: readonly Spec[] = [
  { key: 'host', flag: 'host', kind: 'string', def: D.DEFAULT_HOST },
  { key: 'port', flag: 'port', kind: 'int', min: 0, max: 65535, def: D.DEFAULT_PORT },
  { key: 'amqpPort', flag: 'amqp-port', kind: 'port', def: D.DEFAULT_AMQP_PORT },
  { key: 'amqpsPort', flag: 'amqps-port', kind: 'port', def: null },
  { key: 'shards', flag: 'shards', kind: 'int', min: 1, max: 256, def: D.DEFAULT_SHARDS },
  { key: 'dataDir', flag: 'data-dir', kind: 'string', def: null },
  { key: 'logLevel', flag: 'log-level', kind: 'level', def: D.DEFAULT_LOG_LEVEL },
  { key: 'ringBytes', flag: 'ring-bytes', kind: 'pow2', min: 64 * 1024, max: 1 << 30, def: D.DEFAULT_RING_BYTES },
  { key: 'maxMessageBytes', flag: 'max-message-bytes', kind: 'int', min: 1, max: 64 * 1024 * 1024, def: D.DEFAULT_MAX_MESSAGE_BYTES },
  { key: 'maxBodyBytes', flag: 'max-body-bytes', kind: 'int', min: 1, max: 1 << 30, def: D.DEFAULT_MAX_BODY_BYTES },
  { key: 'maxFrameBytes', flag: 'max-frame-bytes', kind: 'int', min: 1024, max: 1 << 30, def: D.DEFAULT_MAX_FRAME_BYTES },
  { key: 'deliveryWindow', flag: 'delivery-window', kind: 'int', min: 1, max: 1 << 20, def: D.DEFAULT_DELIVERY_WINDOW },
  {
    key: 'deliveryWindowBytes',
    flag: 'delivery-window-bytes',
    kind: 'int',
    min: 1024,
    max: 2 ** 31,
    def: D.DEFAULT_DELIVERY_WINDOW_BYTES,
  },
  { key: 'publishWindow', flag: 'publish-window', kind: 'int', min: 1024, max: 1 << 24, def: D.DEFAULT_PUBLISH_WINDOW },
  {
    key: 'publishWindowBytes',
    flag: 'publish-window-bytes',
    kind: 'int',
    min: 1024 * 1024,
    max: 2 ** 31,
    def: D.DEFAULT_PUBLISH_WINDOW_BYTES,
  },
  { key: 'socketHighWater', flag: 'socket-high-water', kind: 'int', min: 1024, max: 1 << 30, def: D.DEFAULT_SOCKET_HIGH_WATER },
  { key: 'topicBuffer', flag: 'topic-buffer', kind: 'int', min: 1, max: 1 << 26, def: D.DEFAULT_TOPIC_BUFFER },
  { key: 'overflowBytes', flag: 'overflow-bytes', kind: 'int', min: 0, max: 1 << 30, def: D.DEFAULT_OVERFLOW_BYTES },
  { key: 'publishWaitMs', flag: 'publish-wait-ms', kind: 'int', min: 0, max: 600_000, def: D.DEFAULT_PUBLISH_WAIT_MS },
  { key: 'shutdownTimeoutMs', flag: 'shutdown-timeout-ms', kind: 'int', min: 0, max: 600_000, def: D.DEFAULT_SHUTDOWN_TIMEOUT_MS },
  { key: 'fsync', flag: 'fsync', kind: 'enum', values: ['always', 'batch'], def: D.DEFAULT_FSYNC },
  { key: 'fsyncIntervalMs', flag: 'fsync-interval-ms', kind: 'int', min: 1, max: 1000, def: D.DEFAULT_FSYNC_INTERVAL_MS },
  { key: 'inflateThreads', flag: 'inflate-threads', kind: 'int', min: 1, max: 64, def: D.DEFAULT_INFLATE_THREADS },
  { key: 'inflateQueue', flag: 'inflate-queue', kind: 'int', min: 1, max: 1 << 16, def: D.DEFAULT_INFLATE_QUEUE },
  { key: 'maxBatchLines', flag: 'max-batch-lines', kind: 'int', min: 1, max: 1 << 24, def: D.DEFAULT_MAX_BATCH_LINES },
  { key: 'maxConnections', flag: 'max-connections', kind: 'int', min: 1, max: 1 << 20, def: D.DEFAULT_MAX_CONNECTIONS },
  { key: 'maxSubscriptions', flag: 'max-subscriptions', kind: 'int', min: 1, max: 1 << 20, def: D.DEFAULT_MAX_SUBSCRIPTIONS },
  { key: 'idleTimeoutS', flag: 'idle-timeout-s', kind: 'int', min: 0, max: 3600, def: D.DEFAULT_IDLE_TIMEOUT_S },
  { key: 'slowConsumer', flag: 'slow-consumer', kind: 'enum', values: ['drop', 'disconnect', 'block'], def: D.DEFAULT_SLOW_CONSUMER },
  { key: 'slowConsumerMs', flag: 'slow-consumer-ms', kind: 'int', min: 0, max: 600_000, def: D.DEFAULT_SLOW_CONSUMER_MS },
  { key: 'latencySample', flag: 'latency-sample', kind: 'int', min: 0, max: 1 << 30, def: D.DEFAULT_LATENCY_SAMPLE },
  { key: 'statsMaxQueues', flag: 'stats-max-queues', kind: 'int', min: 0, max: 1 << 24, def: D.DEFAULT_STATS_MAX_QUEUES },
  { key: 'managementShare', flag: 'management-share', kind: 'int', min: 1, max: 100, def: D.DEFAULT_MANAGEMENT_SHARE },
  { key: 'maxMemoryBytes', flag: 'max-memory', kind: 'int', min: 0, max: Number.MAX_SAFE_INTEGER, def: D.DEFAULT_MAX_MEMORY_BYTES },
  { key: 'tlsCert', flag: 'tls-cert', kind: 'string', def: null },
  { key: 'tlsKey', flag: 'tls-key', kind: 'string', def: null },
  { key: 'authToken', flag: 'auth-token', kind: 'string', def: null },
  { key: 'usersFile', flag: 'users-file', kind: 'string', def: null },
  { key: 'cluster', flag: 'cluster', kind: 'nats-urls', def: null },
  { key: 'nodeName', flag: 'node-name', kind: 'node-name', def: null },
  { key: 'clusterTimeoutMs', flag: 'cluster-timeout-ms', kind: 'int', min: 200, max: 600_000, def: D.DEFAULT_CLUSTER_TIMEOUT_MS },
  {
    key: 'clusterBufferBytes',
    flag: 'cluster-buffer-bytes',
    kind: 'int',
    min: 1024 * 1024,
    max: 2 ** 32,
    def: D.DEFAULT_CLUSTER_BUFFER_BYTES,
  },
];

export function envName(flag: string): string {
  return 'SHARDMQ_' + flag.toUpperCase().replace(/-/g, '_');
}

/**
 * Merges command-line flags over SHARDMQ_* environment variables over defaults,
 * validates every value (errors name the flag and the bad value) and freezes the result.
 */
export function resolveConfig(
  flags: Readonly<Record<string, string | undefined>>,
  env: Readonly<Record<string, string | undefined>> = process.env,
): BrokerConfig {
  const out: Record<string, unknown> = {};
  for (const spec of CONFIG_SPECS) {
    const raw = flags[spec.flag] ?? env[envName(spec.flag)];
    out[spec.key] = raw === undefined || raw === '' ? spec.def : parseValue(spec, raw);
  }
  const config = out as unknown as BrokerConfig;
  // A message travels as one ring record: at most a quarter of the ring, less the record
  // header and the largest message header (255-byte exchange and key, padding).
  const ringPayloadLimit = maxRecordPayload(config.ringBytes) - InboundWriter.MAX_RECORD_OVERHEAD;
  if ((config.tlsCert === null) !== (config.tlsKey === null)) {
    throw new ConfigError('tls-cert and tls-key go together: give both or neither');
  }
  if (config.amqpsPort !== null && config.tlsCert === null) {
    throw new ConfigError('amqps-port needs tls-cert and tls-key (the same certificate as HTTPS)');
  }
  if (config.maxMessageBytes > ringPayloadLimit) {
    throw new ConfigError(
      `max-message-bytes must be at most ${ringPayloadLimit} with ring-bytes ${config.ringBytes} (got ${config.maxMessageBytes})`,
    );
  }
  return Object.freeze(config);
}

function parseValue(spec: Spec, raw: string): string | number | null {
  switch (spec.kind) {
    case 'port': {
      if (raw === 'off') return null;
      const n = /^\d+$/.test(raw) ? Number(raw) : NaN;
      if (!Number.isSafeInteger(n) || n > 65535) {
        throw new ConfigError(`${spec.flag} must be a port from 0 to 65535 (0: the OS picks) or off (got ${JSON.stringify(raw)})`);
      }
      return n;
    }
    case 'string':
      return raw;
    case 'nats-urls':
      return parseNatsUrls(spec.flag, raw) as unknown as string;
    case 'node-name':
      if (!NODE_NAME.test(raw)) {
        throw new ConfigError(`${spec.flag} must be 1 to 64 letters, digits, '.', '_' or '-' (got ${JSON.stringify(raw)})`);
      }
      return raw;
    case 'enum':
    case 'level': {
      const allowed: readonly string[] = spec.kind === 'level' ? LOG_LEVELS : (spec.values ?? []);
      if (!allowed.includes(raw)) {
        throw new ConfigError(`${spec.flag} must be one of ${allowed.join('|')} (got ${JSON.stringify(raw)})`);
      }
      return raw;
    }
    case 'int':
    case 'pow2': {
      const n = /^\d+$/.test(raw) ? Number(raw) : NaN;
      const min = spec.min ?? 0;
      const max = spec.max ?? Number.MAX_SAFE_INTEGER;
      if (!Number.isSafeInteger(n) || n < min || n > max) {
        throw new ConfigError(`${spec.flag} must be an integer from ${min} to ${max} (got ${JSON.stringify(raw)})`);
      }
      if (spec.kind === 'pow2' && (n & (n - 1)) !== 0) {
        throw new ConfigError(`${spec.flag} must be a power of two (got ${n})`);
      }
      return n;
    }
  }
}

/** A node name is a NATS-safe token and a label in logs and URLs. */
const NODE_NAME = /^[A-Za-z0-9._-]{1,64}$/;

/** `nats://host:port[,nats://host:port…]`; a bare host:port gets nats:// (what nats-server users write). */
function parseNatsUrls(flag: string, raw: string): readonly string[] {
  const out: string[] = [];
  for (const part of raw.split(',')) {
    const text = part.trim();
    if (text === '') continue;
    const withScheme = /^[a-z]+:\/\//.test(text) ? text : `nats://${text}`;
    let url: URL;
    try {
      url = new URL(withScheme);
    } catch {
      throw new ConfigError(`${flag} must be nats://host:port URLs separated by commas (got ${JSON.stringify(raw)})`);
    }
    if (url.protocol !== 'nats:' && url.protocol !== 'tls:') {
      throw new ConfigError(`${flag} takes nats:// or tls:// URLs (got ${JSON.stringify(text)})`);
    }
    if (url.hostname === '') throw new ConfigError(`${flag} URL has no host (got ${JSON.stringify(text)})`);
    out.push(withScheme);
  }
  if (out.length === 0) throw new ConfigError(`${flag} needs at least one nats://host:port (got ${JSON.stringify(raw)})`);
  return Object.freeze(out);
}
