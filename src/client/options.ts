/**
 * Client options: the public shape, the defaults (one frozen object, each with its reason) and
 * validation that names the option and the bad value.
 */
import { resolveReconnect, type ReconnectOptions, type ResolvedReconnect } from './backoff.js';

/** Anything with pino's or console's log methods; the client logs rarely, never per message. */
export interface ClientLogger {
  debug(obj: Record<string, unknown>, msg: string): void;
  info(obj: Record<string, unknown>, msg: string): void;
  warn(obj: Record<string, unknown>, msg: string): void;
  error(obj: Record<string, unknown>, msg: string): void;
}

export interface ClientOptions {
  /**
   * Reconnect after an unexpected drop, with exponential backoff and jitter (default on:
   * 100 ms doubling to 5 s, never giving up). `false` closes the client on the first drop.
   */
  reconnect?: ReconnectOptions | false;
  /**
   * Publisher confirms (default true): `publish()` resolves when the broker holds the message (on
   * disk for durable queues under `--data-dir`). With false it resolves once the message is queued
   * for the socket, and refusals only reach the 'error' event.
   */
  confirms?: boolean;
  /** Messages and other ops per outbound frame before it is sent without waiting for the end of the turn (default 4096). */
  batchMaxMessages?: number;
  /** Bytes per outbound frame before it is sent without waiting for the end of the turn (default 256 KiB). */
  batchMaxBytes?: number;
  /**
   * How long an outbound frame may wait for more ops, in ms. 0 (default) sends at the end of the
   * current microtask queue: everything issued in one synchronous run travels together.
   */
  batchMaxDelayMs?: number;
  /** Largest frame the broker accepts (its `--max-frame-bytes`, default 1 MiB); larger ops are refused locally with TooLargeError. */
  maxFrameBytes?: number;
  /** Default prefetch of client-ack subscriptions (default 1000, the broker's JSON default). */
  prefetch?: number;
  /** Default buffer of auto-ack subscriptions, in messages (default 1000). */
  bufferSize?: number;
  /** Payload bytes of publishes held while reconnecting; beyond it publishes fail with SaturatedError (default 8 MiB). */
  reconnectBufferBytes?: number;
  /**
   * Bytes of PUBLISH ops (payload, properties, destination and framing) held while the broker's
   * flow control withholds publish credit; beyond it publishes fail with SaturatedError (default
   * 64 MiB). Publishes that waited through a reconnect are let in over it, so the client holds at
   * most this plus `reconnectBufferBytes`.
   */
  maxPendingBytes?: number;
  /** WebSocket handshake timeout in ms (default 10 s). */
  connectTimeoutMs?: number;
  /** Ping the broker this often and drop the socket when a pong is missing, in ms (default 30 s; 0 disables). */
  pingIntervalMs?: number;
  /** How long close() waits for unconfirmed publishes, in ms (default 5 s). */
  closeTimeoutMs?: number;
  /** The vhost every name of this client is in (default `/`): sent with the WebSocket handshake. */
  vhost?: string;
  /**
   * Where the client logs (default: nowhere; it never logs per message). An 'error' event with no
   * listener is logged here as a warning, or becomes a process warning when there is no logger.
   */
  logger?: ClientLogger;
}

export interface ResolvedOptions {
  readonly reconnect: ResolvedReconnect | null;
  readonly vhost: string;
  readonly confirms: boolean;
  readonly batchMaxMessages: number;
  readonly batchMaxBytes: number;
  readonly batchMaxDelayMs: number;
  readonly maxFrameBytes: number;
  readonly prefetch: number;
  readonly bufferSize: number;
  readonly reconnectBufferBytes: number;
  readonly maxPendingBytes: number;
  readonly connectTimeoutMs: number;
  readonly pingIntervalMs: number;
  readonly closeTimeoutMs: number;
  readonly logger: ClientLogger;
}

const noop = (): void => undefined;
export const SILENT_LOGGER: ClientLogger = Object.freeze({ debug: noop, info: noop, warn: noop, error: noop });

export const CLIENT_DEFAULTS = Object.freeze({
  confirms: true,
  /** Far below the broker's 65,536 ops per frame, large enough that a burst costs a handful of frames. */
  batchMaxMessages: 4096,
  /** A quarter of the broker's default frame limit: big enough to amortise, small enough to interleave. */
  batchMaxBytes: 256 * 1024,
  batchMaxDelayMs: 0,
  /** The broker's default `--max-frame-bytes`. */
  maxFrameBytes: 1024 * 1024,
  /** The broker's default for JSON client-ack subscriptions. */
  prefetch: 1000,
  bufferSize: 1000,
  /** nats.js' reconnect buffer size. */
  reconnectBufferBytes: 8 * 1024 * 1024,
  /**
   * 64 windows of the broker's initial publish credit (1 MiB): a producer that outruns the broker
   * for a while is smoothed over, one that outruns it for good hears about it.
   */
  maxPendingBytes: 64 * 1024 * 1024,
  connectTimeoutMs: 10_000,
  /** Well inside the broker's 120 s idle timeout. */
  pingIntervalMs: 30_000,
  closeTimeoutMs: 5000,
});

export function resolveOptions(options: ClientOptions = {}): ResolvedOptions {
  const int = (
    key: keyof typeof CLIENT_DEFAULTS & keyof ClientOptions,
    min: number,
    max = Number.MAX_SAFE_INTEGER,
    def?: number,
  ): number => {
    const v = options[key] ?? def ?? CLIENT_DEFAULTS[key];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      throw new RangeError(`options.${key} must be an integer from ${min} to ${max} (got ${String(v)})`);
    }
    return v;
  };
  if (options.confirms !== undefined && typeof options.confirms !== 'boolean') {
    throw new TypeError(`options.confirms must be a boolean (got ${typeof options.confirms})`);
  }
  const maxFrameBytes = int('maxFrameBytes', 1024);
  return Object.freeze({
    reconnect: options.reconnect === false ? null : resolveReconnect(options.reconnect),
    confirms: options.confirms ?? CLIENT_DEFAULTS.confirms,
    batchMaxMessages: int('batchMaxMessages', 1, 65_536),
    batchMaxBytes: int('batchMaxBytes', 1, maxFrameBytes, Math.min(CLIENT_DEFAULTS.batchMaxBytes, maxFrameBytes)),
    batchMaxDelayMs: int('batchMaxDelayMs', 0, 60_000),
    maxFrameBytes,
    prefetch: int('prefetch', 0, 0xffff_ffff),
    bufferSize: int('bufferSize', 1),
    reconnectBufferBytes: int('reconnectBufferBytes', 0),
    maxPendingBytes: int('maxPendingBytes', 0),
    connectTimeoutMs: int('connectTimeoutMs', 1),
    pingIntervalMs: int('pingIntervalMs', 0),
    closeTimeoutMs: int('closeTimeoutMs', 0),
    vhost: vhostOption(options.vhost),
    logger: options.logger ?? SILENT_LOGGER,
  });
}

/** The vhost option: a non-empty name without control characters (the broker's rule), `/` when absent. */
function vhostOption(vhost: unknown): string {
  if (vhost === undefined) return '/';
  if (typeof vhost !== 'string' || vhost.length === 0 || [...vhost].some((c) => c < ' ' || c === '\u007f'))
    throw new TypeError(`vhost must be a non-empty name without control characters (got ${JSON.stringify(vhost)})`);
  return vhost;
}
