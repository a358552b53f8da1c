/**
 * RabbitMQ queue arguments (`x-…` entries of queue.declare's argument table), parsed and
 * validated once at declare time so the queue's hot paths read plain fields.
 *
 * Validation follows RabbitMQ (rabbit_amqqueue declare_args): integers must be integers (a string
 * "10" is refused, as RabbitMQ refuses a longstr), TTLs are capped at 10 years, and an invalid
 * value fails the declare with precondition_failed and a message in RabbitMQ's shape:
 * `invalid arg 'x-max-length' for queue 'q': {value_negative,-1}`. Unknown `x-` arguments (and
 * known ones we do not implement, e.g. x-queue-type, x-single-active-consumer) are ignored, as
 * RabbitMQ ignores arguments it does not know.
 */

/** What happens to a publish that would take the ready messages over x-max-length(-bytes). */
export type OverflowMode = 'drop-head' | 'reject-publish' | 'reject-publish-dlx';

export interface QueueArguments {
  /** x-message-ttl: ms a message may stay ready in this queue. */
  readonly messageTtl?: number;
  /** x-expires: ms the queue may stay unused before the shard deletes it. */
  readonly expires?: number;
  /** x-max-length: ready messages kept. */
  readonly maxLength?: number;
  /** x-max-length-bytes: payload bytes of ready messages kept. */
  readonly maxLengthBytes?: number;
  /** x-overflow; 'drop-head' when absent. */
  readonly overflow: OverflowMode;
  /** x-dead-letter-exchange ('' = the default exchange); dead-lettering happens only when set. */
  readonly deadLetterExchange?: string;
  /** x-dead-letter-routing-key; when absent a dead-lettered message keeps its own routing key. */
  readonly deadLetterRoutingKey?: string;
  /** x-max-priority: 1..255; the queue orders by message priority only when set. */
  readonly maxPriority?: number;
  /** x-delivery-limit (quorum-queue semantics): returns allowed before a message is dead-lettered. */
  readonly deliveryLimit?: number;
}

/** The arguments of a queue declared with none. */
export const NO_QUEUE_ARGUMENTS: QueueArguments = Object.freeze({ overflow: 'drop-head' });

/** RabbitMQ's rabbit_misc:check_expiry cap for TTLs and x-expires: 10 years in ms. */
export const MAX_EXPIRY_MS = 315_360_000_000;
/** RabbitMQ's ?MAX_SUPPORTED_PRIORITY. */
export const MAX_SUPPORTED_PRIORITY = 255;

const OVERFLOW_MODES: readonly OverflowMode[] = ['drop-head', 'reject-publish', 'reject-publish-dlx'];

/** A queue.declare refused for a bad argument; travels to the client as precondition_failed (channel error 406). */
export class QueueArgumentError extends Error {
  override readonly name = 'QueueArgumentError';
  readonly code = 'precondition_failed' as const;
  readonly argument: string;
  readonly value: unknown;

  constructor(argument: string, value: unknown, queueName: string, reason: string) {
    super(`invalid arg '${argument}' for queue '${queueName}': ${reason}`);
    this.argument = argument;
    this.value = value;
  }
}

/**
 * Parses the x- arguments of a queue declaration. `queueName` only goes into error messages.
 * Throws QueueArgumentError on the first invalid argument.
 */
export function parseQueueArguments(args: Record<string, unknown>, queueName = ''): QueueArguments {
  const fail = (argument: string, reason: string): never => {
    throw new QueueArgumentError(argument, args[argument], queueName, reason);
  };
  /** The integer value of `argument`, undefined when absent; refuses non-integers. */
  const integer = (argument: string): number | undefined => {
    const value = args[argument];
    if (value === undefined) return undefined;
    if (typeof value === 'bigint') {
      if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < BigInt(Number.MIN_SAFE_INTEGER)) {
        fail(argument, `{value_too_large,${value}}`);
      }
      return Number(value);
    }
    if (typeof value !== 'number' || !Number.isInteger(value)) {
      return fail(argument, `{unacceptable_type,"expected integer, got ${describe(value)}"}`);
    }
    return value;
  };
  const nonNegative = (argument: string): number | undefined => {
    const value = integer(argument);
    if (value !== undefined && value < 0) fail(argument, `{value_negative,${value}}`);
    return value;
  };
  const expiry = (argument: string, allowZero: boolean): number | undefined => {
    const value = integer(argument);
    if (value === undefined) return undefined;
    if (value === 0 && !allowZero) fail(argument, `{value_zero,0}`);
    if (value < 0) fail(argument, `{value_negative,${value}}`);
    if (value > MAX_EXPIRY_MS) fail(argument, `{value_too_large,${value}}`);
    return value;
  };
  const string = (argument: string): string | undefined => {
    const value = args[argument];
    if (value === undefined) return undefined;
    if (typeof value !== 'string') return fail(argument, `{unacceptable_type,"expected a string, got ${describe(value)}"}`);
    return value;
  };

  const messageTtl = expiry('x-message-ttl', true);
  const expires = expiry('x-expires', false);
  const maxLength = nonNegative('x-max-length');
  const maxLengthBytes = nonNegative('x-max-length-bytes');

  let overflow: OverflowMode = 'drop-head';
  const rawOverflow = args['x-overflow'];
  if (rawOverflow !== undefined) {
    if (typeof rawOverflow !== 'string') fail('x-overflow', `{unacceptable_type,"expected a string, got ${describe(rawOverflow)}"}`);
    if (!OVERFLOW_MODES.includes(rawOverflow as OverflowMode))
      fail('x-overflow', `invalid_overflow (${JSON.stringify(rawOverflow)}; expected one of ${OVERFLOW_MODES.join(', ')})`);
    overflow = rawOverflow as OverflowMode;
  }

  const deadLetterExchange = string('x-dead-letter-exchange');
  const deadLetterRoutingKey = string('x-dead-letter-routing-key');
  if (deadLetterRoutingKey !== undefined && deadLetterExchange === undefined) {
    fail('x-dead-letter-routing-key', 'routing_key_but_no_dlx_defined');
  }

  const maxPriority = integer('x-max-priority');
  if (maxPriority !== undefined) {
    if (maxPriority < 1) fail('x-max-priority', `{value_out_of_range,${maxPriority}} (expected 1..${MAX_SUPPORTED_PRIORITY})`);
    if (maxPriority > MAX_SUPPORTED_PRIORITY) fail('x-max-priority', `{max_value_exceeded,${maxPriority}}`);
  }

  const deliveryLimit = nonNegative('x-delivery-limit');

  const parsed: { -readonly [K in keyof QueueArguments]: QueueArguments[K] } = { overflow };
  if (messageTtl !== undefined) parsed.messageTtl = messageTtl;
  if (expires !== undefined) parsed.expires = expires;
  if (maxLength !== undefined) parsed.maxLength = maxLength;
  if (maxLengthBytes !== undefined) parsed.maxLengthBytes = maxLengthBytes;
  if (deadLetterExchange !== undefined) parsed.deadLetterExchange = deadLetterExchange;
  if (deadLetterRoutingKey !== undefined) parsed.deadLetterRoutingKey = deadLetterRoutingKey;
  if (maxPriority !== undefined) parsed.maxPriority = maxPriority;
  if (deliveryLimit !== undefined) parsed.deliveryLimit = deliveryLimit;
  return Object.freeze(parsed);
}

/**
 * The per-message TTL of an AMQP `expiration` property, in ms: undefined when absent, null when
 * invalid. RabbitMQ refuses a publish with an invalid expiration (a non-negative decimal integer,
 * at most 10 years) with a channel error; that check belongs to the publish path, which can use
 * this. A queue handed an invalid one treats the message as having no per-message TTL.
 */
export function parseExpiration(expiration: string | undefined): number | undefined | null {
  if (expiration === undefined) return undefined;
  if (!/^[0-9]{1,15}$/.test(expiration)) return null;
  const ms = Number(expiration);
  return ms <= MAX_EXPIRY_MS ? ms : null;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}
