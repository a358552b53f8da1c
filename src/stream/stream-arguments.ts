/**
 * The arguments of a stream queue (`x-queue-type: stream`), parsed once at declare time, with
 * RabbitMQ's rules and error texts: what a stream accepts (x-max-length-bytes, x-max-age,
 * x-stream-max-segment-size-bytes), what it refuses because it belongs to classic queues (a TTL,
 * dead-lettering, priorities, x-max-length, x-overflow...), and the stream-only arguments a classic
 * queue refuses. A bad one fails the declare with precondition_failed (406), as RabbitMQ.
 */
import { parseQueueArguments, QueueArgumentError } from '../queue/queue-arguments.js';

export interface StreamArguments {
  /** x-max-length-bytes: retention by size (whole segments). */
  readonly maxBytes?: number;
  /** x-max-age in ms: retention by age (whole segments). */
  readonly maxAgeMs?: number;
  /** x-stream-max-segment-size-bytes. */
  readonly segmentBytes: number;
}

/**
 * Segment size when not given. RabbitMQ's is 500 MB, for disk; a stream here may live in memory
 * (no --data-dir), where retention drops whole segments and a smaller one keeps the excess small.
 */
export const DEFAULT_STREAM_SEGMENT_BYTES = 8 * 1024 * 1024;
/** RabbitMQ's cap on x-stream-max-segment-size-bytes (3 GB). */
export const MAX_STREAM_SEGMENT_BYTES = 3_000_000_000;

/** Arguments only classic (and quorum) queues take: a stream refuses them. */
const CLASSIC_ONLY = [
  'x-message-ttl',
  'x-expires',
  'x-max-length',
  'x-overflow',
  'x-dead-letter-exchange',
  'x-dead-letter-routing-key',
  'x-max-priority',
  'x-delivery-limit',
  'x-single-active-consumer',
];

/** Arguments only streams take: a classic queue refuses them. */
const STREAM_ONLY = ['x-max-age', 'x-stream-max-segment-size-bytes', 'x-initial-cluster-size', 'x-stream-filter-size-bytes'];

const AGE_UNITS_MS: Record<string, number> = {
  Y: 365 * 24 * 3600_000,
  M: 30 * 24 * 3600_000,
  D: 24 * 3600_000,
  h: 3600_000,
  m: 60_000,
  s: 1000,
};

/** `7D`, `1h`, `30m`, `10s`, `1M`, `1Y` (RabbitMQ's x-max-age units) in ms; null when not one. */
export function parseAge(text: string): number | null {
  const m = /^(\d+)([YMDhms])$/.exec(text);
  if (m === null) return null;
  const ms = Number(m[1]) * (AGE_UNITS_MS[m[2] as string] as number);
  return Number.isSafeInteger(ms) && ms > 0 ? ms : null;
}

/** x-queue-type as declared: 'stream', 'classic' (also when absent), or a refusal. */
export function queueTypeOf(args: Record<string, unknown>, queueName: string): 'classic' | 'stream' {
  const t = args['x-queue-type'];
  if (t === undefined || t === 'classic') return 'classic';
  if (t === 'stream') return 'stream';
  if (t === 'quorum')
    throw new QueueArgumentError('x-queue-type', t, queueName, '{unsupported_queue_type,quorum} (classic and stream are supported)');
  throw new QueueArgumentError('x-queue-type', t, queueName, `{unacceptable_type,${JSON.stringify(t)}} (expected "classic" or "stream")`);
}

/** Refuses a stream-only argument on a classic queue. */
export function refuseStreamArguments(args: Record<string, unknown>, queueName: string): void {
  for (const a of STREAM_ONLY) {
    if (args[a] !== undefined)
      throw new QueueArgumentError(a, args[a], queueName, "not allowed on a classic queue (declare it with x-queue-type 'stream')");
  }
}

export function parseStreamArguments(args: Record<string, unknown>, queueName: string): StreamArguments {
  for (const a of CLASSIC_ONLY) {
    if (args[a] !== undefined)
      throw new QueueArgumentError(a, args[a], queueName, 'not allowed on a stream (it is a classic queue argument)');
  }
  const integer = (argument: string, min: number, max: number): number | undefined => {
    let value = args[argument];
    if (value === undefined) return undefined;
    if (typeof value === 'bigint') value = Number(value);
    if (typeof value !== 'number' || !Number.isInteger(value))
      throw new QueueArgumentError(argument, value, queueName, `{unacceptable_type,"expected integer"}`);
    if (value < min)
      throw new QueueArgumentError(argument, value, queueName, value < 0 ? `{value_negative,${value}}` : `{value_zero,${value}}`);
    if (value > max) throw new QueueArgumentError(argument, value, queueName, `{value_too_large,${value}}`);
    return value;
  };
  const maxBytes = integer('x-max-length-bytes', 0, Number.MAX_SAFE_INTEGER);
  const segmentBytes = integer('x-stream-max-segment-size-bytes', 1, MAX_STREAM_SEGMENT_BYTES) ?? DEFAULT_STREAM_SEGMENT_BYTES;
  let maxAgeMs: number | undefined;
  const age = args['x-max-age'];
  if (age !== undefined) {
    const ms = typeof age === 'string' ? parseAge(age) : null;
    if (ms === null)
      throw new QueueArgumentError(
        'x-max-age',
        age,
        queueName,
        `{invalid_max_age,${JSON.stringify(age)}} (expected e.g. "7D", "1h", "30m": a positive integer and one of Y M D h m s)`,
      );
    maxAgeMs = ms;
  }
  return { segmentBytes, ...(maxBytes !== undefined ? { maxBytes } : {}), ...(maxAgeMs !== undefined ? { maxAgeMs } : {}) };
}

/**
 * A queue declaration's stream arguments: parsed when `x-queue-type` says stream (which is never
 * exclusive or auto-delete), null for a classic queue (whose arguments may not be stream-only ones).
 * The one check the main thread (before asking the shard) and the shard (declaring it) both make.
 * Throws QueueArgumentError.
 */
export function streamArgumentsOf(
  args: Record<string, unknown>,
  queueName: string,
  flags: { readonly exclusive: boolean; readonly autoDelete: boolean },
): StreamArguments | null {
  if (queueTypeOf(args, queueName) === 'classic') {
    refuseStreamArguments(args, queueName);
    return null;
  }
  if (flags.exclusive || flags.autoDelete) {
    const property = flags.exclusive ? 'exclusive' : 'auto-delete';
    throw new QueueArgumentError('x-queue-type', 'stream', queueName, `a stream cannot be ${property} (invalid property '${property}')`);
  }
  return parseStreamArguments(args, queueName);
}

/** A queue declaration's arguments checked as its type wants (the main thread's check); throws QueueArgumentError. */
export function checkQueueDeclaration(
  args: Record<string, unknown>,
  queueName: string,
  flags: { readonly exclusive: boolean; readonly autoDelete: boolean },
): void {
  if (streamArgumentsOf(args, queueName, flags) === null) parseQueueArguments(args, queueName);
}
