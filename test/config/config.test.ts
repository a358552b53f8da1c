/**
 * Config resolution: one case per rule (piscina option-validation style). Flags beat SHARDMQ_* env,
 * env beats defaults, every value is validated once with an error that names the flag and the bad
 * value, and the result is frozen.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { CONFIG_SPECS, ConfigError, envName, resolveConfig, type BrokerConfig } from '../../src/config/config.js';
import * as D from '../../src/config/defaults.js';
import { LOG_LEVELS } from '../../src/log/logger.js';
import { InboundWriter } from '../../src/protocol/ring-record-codec.js';
import { MAX_NAME_BYTES } from '../../src/protocol/destination.js';
import { maxRecordPayload } from '../../src/ring/spsc-ring.js';

afterEach(() => {
  vi.unstubAllEnvs();
});

const NO_ENV: Readonly<Record<string, string | undefined>> = {};

/** Runs `fn`, expecting a ConfigError whose message names `flag` and shows `bad`; returns the message. */
function configError(fn: () => unknown, flag: string, bad: string): string {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(ConfigError);
  const err = caught as ConfigError;
  expect(err.name).toBe('ConfigError');
  expect(err.code).toBe('bad_config');
  expect(err.message).toContain(flag);
  expect(err.message).toContain(bad);
  return err.message;
}

const INT_SPECS = CONFIG_SPECS.filter((s) => s.kind === 'int' || s.kind === 'pow2');

/**
 * Flags that keep the cross-check (max-message-bytes vs ring-bytes) out of the way of a bounds test:
 * a large ring and a tiny message limit, unless the flag under test is one of the two.
 */
function isolating(flag: string): Record<string, string> {
  const base: Record<string, string> = { 'ring-bytes': String(2 ** 29), 'max-message-bytes': '1' };
  delete base[flag];
  return base;
}

describe('resolveConfig - defaults', () => {
  it('defaults - no flags and no env give every default', () => {
    expect(resolveConfig({}, NO_ENV)).toEqual({
      host: D.DEFAULT_HOST,
      port: D.DEFAULT_PORT,
      shards: D.DEFAULT_SHARDS,
      dataDir: null,
      logLevel: D.DEFAULT_LOG_LEVEL,
      ringBytes: D.DEFAULT_RING_BYTES,
      maxMessageBytes: D.DEFAULT_MAX_MESSAGE_BYTES,
      maxBodyBytes: D.DEFAULT_MAX_BODY_BYTES,
      maxFrameBytes: D.DEFAULT_MAX_FRAME_BYTES,
      deliveryWindow: D.DEFAULT_DELIVERY_WINDOW,
      socketHighWater: D.DEFAULT_SOCKET_HIGH_WATER,
      topicBuffer: D.DEFAULT_TOPIC_BUFFER,
      overflowBytes: D.DEFAULT_OVERFLOW_BYTES,
      publishWaitMs: D.DEFAULT_PUBLISH_WAIT_MS,
      shutdownTimeoutMs: D.DEFAULT_SHUTDOWN_TIMEOUT_MS,
      fsync: D.DEFAULT_FSYNC,
      fsyncIntervalMs: D.DEFAULT_FSYNC_INTERVAL_MS,
      inflateThreads: D.DEFAULT_INFLATE_THREADS,
      inflateQueue: D.DEFAULT_INFLATE_QUEUE,
      maxBatchLines: D.DEFAULT_MAX_BATCH_LINES,
      maxConnections: D.DEFAULT_MAX_CONNECTIONS,
      maxSubscriptions: D.DEFAULT_MAX_SUBSCRIPTIONS,
      idleTimeoutS: D.DEFAULT_IDLE_TIMEOUT_S,
      slowConsumer: D.DEFAULT_SLOW_CONSUMER,
      slowConsumerMs: D.DEFAULT_SLOW_CONSUMER_MS,
      latencySample: D.DEFAULT_LATENCY_SAMPLE,
      statsMaxQueues: D.DEFAULT_STATS_MAX_QUEUES,
      managementShare: D.DEFAULT_MANAGEMENT_SHARE,
      deliveryWindowBytes: D.DEFAULT_DELIVERY_WINDOW_BYTES,
      publishWindow: D.DEFAULT_PUBLISH_WINDOW,
      publishWindowBytes: D.DEFAULT_PUBLISH_WINDOW_BYTES,
      maxMemoryBytes: D.DEFAULT_MAX_MEMORY_BYTES,
      tlsCert: null,
      tlsKey: null,
      authToken: null,
      usersFile: null,
      amqpPort: D.DEFAULT_AMQP_PORT,
      amqpsPort: null,
      cluster: null,
      nodeName: null,
      clusterTimeoutMs: D.DEFAULT_CLUSTER_TIMEOUT_MS,
      clusterBufferBytes: D.DEFAULT_CLUSTER_BUFFER_BYTES,
    } satisfies BrokerConfig);
  });

  it('cluster: comma-separated NATS URLs (a bare host:port gets nats://), from the flag or SHARDMQ_CLUSTER; bad ones name the flag', () => {
    expect(resolveConfig({ cluster: 'nats://127.0.0.1:4222, 10.0.0.2:4222' }, NO_ENV).cluster).toEqual([
      'nats://127.0.0.1:4222',
      'nats://10.0.0.2:4222',
    ]);
    expect(resolveConfig({}, { SHARDMQ_CLUSTER: 'nats://a:1' }).cluster).toEqual(['nats://a:1']);
    expect(() => resolveConfig({ cluster: 'http://a:1' }, NO_ENV)).toThrow(/cluster takes nats:\/\/ or tls:\/\/ URLs/);
    expect(() => resolveConfig({ cluster: ' , ' }, NO_ENV)).toThrow(/cluster needs at least one/);
  });

  it('node-name: letters, digits, . _ - up to 64; anything else names the flag', () => {
    expect(resolveConfig({ 'node-name': 'node-a.1_x' }, NO_ENV).nodeName).toBe('node-a.1_x');
    expect(() => resolveConfig({ 'node-name': 'a b' }, NO_ENV)).toThrow(/node-name must be 1 to 64/);
    expect(() => resolveConfig({ 'node-name': 'x'.repeat(65) }, NO_ENV)).toThrow(/node-name must be 1 to 64/);
    expect(() => resolveConfig({ 'cluster-timeout-ms': '100' }, NO_ENV)).toThrow(/cluster-timeout-ms must be an integer from 200/);
  });

  it('amqp-port: 5672 by default, 0 lets the OS pick, off disables; amqps-port needs the TLS pair', () => {
    expect(resolveConfig({}, NO_ENV).amqpPort).toBe(5672);
    expect(resolveConfig({ 'amqp-port': '0' }, NO_ENV).amqpPort).toBe(0);
    expect(resolveConfig({ 'amqp-port': 'off' }, NO_ENV).amqpPort).toBeNull();
    expect(resolveConfig({}, { SHARDMQ_AMQP_PORT: 'off' }).amqpPort).toBeNull();
    expect(() => resolveConfig({ 'amqp-port': '70000' }, NO_ENV)).toThrow(/amqp-port must be a port from 0 to 65535/);
    expect(() => resolveConfig({ 'amqp-port': 'on' }, NO_ENV)).toThrow(/or off \(got "on"\)/);
    expect(() => resolveConfig({ 'amqps-port': '5671' }, NO_ENV)).toThrow(/amqps-port needs tls-cert and tls-key/);
  });

  it('defaults - host is loopback, port is the contract port 7070, at least one shard', () => {
    const config = resolveConfig({}, NO_ENV);
    expect(config.host).toBe('127.0.0.1');
    expect(config.port).toBe(7070);
    expect(config.shards).toBeGreaterThanOrEqual(1);
  });

  it.each(INT_SPECS.map((s) => [s.flag, s] as const))('defaults - %s default lies within its own bounds', (_flag, spec) => {
    expect(typeof spec.def).toBe('number');
    expect(spec.def as number).toBeGreaterThanOrEqual(spec.min ?? 0);
    expect(spec.def as number).toBeLessThanOrEqual(spec.max ?? Number.MAX_SAFE_INTEGER);
  });

  it('defaults - an empty env value counts as unset', () => {
    expect(resolveConfig({}, { SHARDMQ_PORT: '', SHARDMQ_LOG_LEVEL: '' }).port).toBe(D.DEFAULT_PORT);
  });

  it('defaults - the env argument defaults to process.env', () => {
    vi.stubEnv('SHARDMQ_PORT', '4321');
    vi.stubEnv('SHARDMQ_LOG_LEVEL', 'debug');
    const config = resolveConfig({});
    expect(config.port).toBe(4321);
    expect(config.logLevel).toBe('debug');
  });
});

describe('resolveConfig - precedence', () => {
  it('precedence - SHARDMQ_* env beats the default', () => {
    const config = resolveConfig(
      {},
      { SHARDMQ_PORT: '8081', SHARDMQ_HOST: '0.0.0.0', SHARDMQ_DATA_DIR: '/var/lib/shardmq', SHARDMQ_SHARDS: '3' },
    );
    expect(config).toMatchObject({ port: 8081, host: '0.0.0.0', dataDir: '/var/lib/shardmq', shards: 3 });
  });

  it('precedence - a flag beats SHARDMQ_* env', () => {
    const config = resolveConfig({ port: '9000', 'log-level': 'warn' }, { SHARDMQ_PORT: '8081', SHARDMQ_LOG_LEVEL: 'debug' });
    expect(config.port).toBe(9000);
    expect(config.logLevel).toBe('warn');
  });

  it('precedence - a bad env value is not consulted when the flag is given', () => {
    expect(resolveConfig({ port: '9000' }, { SHARDMQ_PORT: 'not-a-port' }).port).toBe(9000);
  });

  it('precedence - every setting is read from its SHARDMQ_* variable and overridden by its flag', () => {
    // Two distinct valid values per setting, chosen so the max-message-bytes/ring-bytes check holds.
    const envValue: Record<string, string> = {};
    const flagValue: Record<string, string> = {};
    for (const spec of CONFIG_SPECS) {
      if (spec.kind === 'string') {
        envValue[spec.flag] = `from-env-${spec.flag}`;
        flagValue[spec.flag] = `from-flag-${spec.flag}`;
      } else if (spec.kind === 'level') {
        envValue[spec.flag] = 'debug';
        flagValue[spec.flag] = 'error';
      } else if (spec.kind === 'enum') {
        envValue[spec.flag] = (spec.values as readonly string[])[0];
        flagValue[spec.flag] = (spec.values as readonly string[])[1];
      } else if (spec.kind === 'port') {
        envValue[spec.flag] = '5673';
        flagValue[spec.flag] = '5674';
      } else if (spec.kind === 'pow2') {
        envValue[spec.flag] = String(2 ** 20);
        flagValue[spec.flag] = String(2 ** 21);
      } else if (spec.kind === 'nats-urls') {
        envValue[spec.flag] = 'nats://env:4222';
        flagValue[spec.flag] = 'nats://flag:4222';
      } else if (spec.kind === 'node-name') {
        envValue[spec.flag] = 'from-env';
        flagValue[spec.flag] = 'from-flag';
      } else {
        envValue[spec.flag] = String(spec.min === 0 ? 1 : (spec.min as number) + 1);
        flagValue[spec.flag] = String(spec.min === 0 ? 2 : (spec.min as number) + 2);
      }
    }
    const env = Object.fromEntries(CONFIG_SPECS.map((s) => [envName(s.flag), envValue[s.flag]]));
    const fromEnv = resolveConfig({}, env) as unknown as Record<string, unknown>;
    const fromFlags = resolveConfig(flagValue, env) as unknown as Record<string, unknown>;
    for (const spec of CONFIG_SPECS) {
      const parse = (v: string): unknown =>
        spec.kind === 'int' || spec.kind === 'pow2' || spec.kind === 'port' ? Number(v) : spec.kind === 'nats-urls' ? [v] : v;
      expect(fromEnv[spec.key], spec.flag).toEqual(parse(envValue[spec.flag]));
      expect(fromFlags[spec.key], spec.flag).toEqual(parse(flagValue[spec.flag]));
    }
  });
});

describe('resolveConfig - integer bounds', () => {
  it.each(INT_SPECS.map((s) => [s.flag, s] as const))('bounds - %s accepts its min and max', (flag, spec) => {
    const min = spec.min as number;
    const max = spec.max as number;
    const lo = resolveConfig({ ...isolating(flag), [flag]: String(min) }, NO_ENV) as unknown as Record<string, number>;
    const hi = resolveConfig({ ...isolating(flag), [flag]: String(max) }, NO_ENV) as unknown as Record<string, number>;
    expect(lo[spec.key]).toBe(min);
    expect(hi[spec.key]).toBe(max);
  });

  it.each(INT_SPECS.map((s) => [s.flag, s] as const))('bounds - %s rejects max + 1, naming the flag and the value', (flag, spec) => {
    const bad = String((spec.max as number) + 1);
    const message = configError(() => resolveConfig({ ...isolating(flag), [flag]: bad }, NO_ENV), flag, `"${bad}"`);
    expect(message).toContain(`from ${spec.min} to ${spec.max}`);
  });

  it.each(INT_SPECS.filter((s) => (s.min as number) > 0).map((s) => [s.flag, s] as const))(
    'bounds - %s rejects min - 1, naming the flag and the value',
    (flag, spec) => {
      const bad = String((spec.min as number) - 1);
      configError(() => resolveConfig({ ...isolating(flag), [flag]: bad }, NO_ENV), flag, `"${bad}"`);
    },
  );

  it.each(['-1', '1.5', '1e3', '0x10', ' 80', '80 ', '+80', 'abc', '99999999999999999999'])(
    'bounds - port rejects %j (not a plain decimal integer)',
    (bad) => {
      configError(() => resolveConfig({ port: bad }, NO_ENV), 'port', JSON.stringify(bad));
    },
  );

  it('bounds - a bad env value is reported by its flag name', () => {
    configError(() => resolveConfig({}, { SHARDMQ_SHARDS: '0' }), 'shards', '"0"');
  });

  it('bounds - port 0 (pick a free port) is accepted', () => {
    expect(resolveConfig({ port: '0' }, NO_ENV).port).toBe(0);
  });
});

describe('resolveConfig - ring-bytes', () => {
  it.each([65536 * 3, 65536 + 8, 2 ** 30 - 8])('ring-bytes - %i within bounds but not a power of two is rejected', (n) => {
    const message = configError(
      () => resolveConfig({ 'ring-bytes': String(n), 'max-message-bytes': '1' }, NO_ENV),
      'ring-bytes',
      String(n),
    );
    expect(message).toContain('power of two');
  });

  it.each([16, 17, 18, 19, 20, 24, 29, 30])('ring-bytes - 2^%i is accepted', (exp) => {
    expect(resolveConfig({ 'ring-bytes': String(2 ** exp), 'max-message-bytes': '1' }, NO_ENV).ringBytes).toBe(2 ** exp);
  });
});

describe('resolveConfig - log-level', () => {
  it.each([...LOG_LEVELS])('log-level - %s is accepted', (level) => {
    expect(resolveConfig({ 'log-level': level }, NO_ENV).logLevel).toBe(level);
  });

  it.each(['verbose', 'INFO', 'warning', '30', ' info'])('log-level - %j is rejected with the known levels listed', (bad) => {
    const message = configError(() => resolveConfig({ 'log-level': bad }, NO_ENV), 'log-level', JSON.stringify(bad));
    for (const level of LOG_LEVELS) expect(message).toContain(level);
  });
});

describe('resolveConfig - max-message-bytes vs ring-bytes', () => {
  // The limit: a quarter of the ring, less the ring record header (8) and the largest
  // message header (deliver's 32 fixed + 255 + 255, padded to 8, + 8 = 552): 16384 - 8 - 552 = 15824.
  it('max-message-bytes - exactly ring-bytes/4 - 560 is accepted', () => {
    const config = resolveConfig({ 'ring-bytes': '65536', 'max-message-bytes': String(65536 / 4 - 560) }, NO_ENV);
    expect(config.maxMessageBytes).toBe(15824);
  });

  it('max-message-bytes - one byte over the limit is rejected, naming both numbers', () => {
    const message = configError(
      () => resolveConfig({ 'ring-bytes': '65536', 'max-message-bytes': '15825' }, NO_ENV),
      'max-message-bytes',
      '15825',
    );
    expect(message).toContain('15824');
  });

  it('max-message-bytes - the default limit does not fit a 64 KiB ring, and the error says so', () => {
    configError(() => resolveConfig({ 'ring-bytes': '65536' }, NO_ENV), 'max-message-bytes', String(D.DEFAULT_MAX_MESSAGE_BYTES));
  });

  it('max-message-bytes - the cross-check also applies to env values', () => {
    configError(() => resolveConfig({}, { SHARDMQ_RING_BYTES: '65536', SHARDMQ_MAX_MESSAGE_BYTES: '20000' }), 'max-message-bytes', '20000');
  });

  it('max-message-bytes - the largest accepted value fits one ring publish record with 255-byte exchange and key', () => {
    // The front checks payload <= max-message-bytes, then writes the payload plus the record's fixed
    // fields and names into one ring record (InboundWriter.publish); that must never exceed the ring's
    // record limit, or reserve() throws a RangeError instead of the publisher getting an answer.
    const ringBytes = 65536;
    const largest = ringBytes / 4 - 560;
    const config = resolveConfig({ 'ring-bytes': String(ringBytes), 'max-message-bytes': String(largest) }, NO_ENV);
    const recordBytes = InboundWriter.publishSize(MAX_NAME_BYTES, MAX_NAME_BYTES, config.maxMessageBytes);
    expect(recordBytes, `publish record of ${recordBytes} bytes vs maxRecordPayload ${maxRecordPayload(ringBytes)}`).toBeLessThanOrEqual(
      maxRecordPayload(ringBytes),
    );
  });
});

describe('resolveConfig - strings and result', () => {
  it('strings - host and data-dir pass through unchanged', () => {
    const config = resolveConfig({ host: '::1', 'data-dir': './data dir/é' }, NO_ENV);
    expect(config.host).toBe('::1');
    expect(config.dataDir).toBe('./data dir/é');
  });

  it('result - is frozen: assignment throws and changes nothing', () => {
    const config = resolveConfig({}, NO_ENV);
    expect(Object.isFrozen(config)).toBe(true);
    expect(() => {
      (config as { port: number }).port = 1;
    }).toThrow(TypeError);
    expect(config.port).toBe(D.DEFAULT_PORT);
  });

  it('result - has exactly one key per spec, and flags are unique', () => {
    const config = resolveConfig({}, NO_ENV);
    expect(Object.keys(config).sort()).toEqual(CONFIG_SPECS.map((s) => s.key).sort());
    expect(new Set(CONFIG_SPECS.map((s) => s.flag)).size).toBe(CONFIG_SPECS.length);
  });

  it('result - flags the resolver does not know are ignored', () => {
    expect(resolveConfig({ 'no-such-flag': 'x' }, NO_ENV)).toEqual(resolveConfig({}, NO_ENV));
  });
});

describe('envName', () => {
  it.each([
    ['port', 'SHARDMQ_PORT'],
    ['log-level', 'SHARDMQ_LOG_LEVEL'],
    ['data-dir', 'SHARDMQ_DATA_DIR'],
    ['max-message-bytes', 'SHARDMQ_MAX_MESSAGE_BYTES'],
    ['shutdown-timeout-ms', 'SHARDMQ_SHUTDOWN_TIMEOUT_MS'],
  ])('envName - %s → %s', (flag, name) => {
    expect(envName(flag)).toBe(name);
  });

  it('envName - every spec maps to a distinct SHARDMQ_ name', () => {
    const names = CONFIG_SPECS.map((s) => envName(s.flag));
    expect(names.every((n) => /^SHARDMQ_[A-Z0-9_]+$/.test(n))).toBe(true);
    expect(new Set(names).size).toBe(names.length);
  });
});
