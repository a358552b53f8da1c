/**
 * Typed errors of the shardmq client. Every error the client raises on its own or maps from the
 * broker extends {@link ShardmqError} and carries a stable `code` string to match on; each class
 * is one failure family (nats.js `errors.ts` style). Server codes are those of docs/protocol.md §8;
 * a code the client does not know becomes a plain {@link ServerError} with the code as sent.
 *
 * Argument mistakes (a payload that is not a string or Uint8Array, a priority above 255, a name
 * over 255 bytes) are not broker failures: they throw the usual `TypeError`/`RangeError`.
 */

/** Base class: `code` is stable, `message` is for people. */
export class ShardmqError extends Error {
  override name = 'ShardmqError';
  readonly code: string;
  /** Opcode name of the request this answers (`DECLARE_QUEUE`, `PUBLISH`…), when there is one. */
  readonly op: string | undefined;

  constructor(code: string, message: string, options?: { cause?: unknown; op?: string }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.op = options?.op;
  }
}

// ---- the connection ---------------------------------------------------------------------------

export type ConnectionErrorCode = 'connect_failed' | 'connection_lost' | 'connection_closed';

/** The connection family: catch this to handle all three below. */
export class ConnectionError extends ShardmqError {
  override name = 'ConnectionError';
  declare readonly code: ConnectionErrorCode;
}

/** `connect()` could not reach the broker (refused, DNS, handshake timeout, not a shardmq endpoint). */
export class ConnectFailedError extends ConnectionError {
  override name = 'ConnectFailedError';
  constructor(message: string, options?: { cause?: unknown }) {
    super('connect_failed', message, options);
  }
}

/**
 * The socket dropped while this operation was in flight, so its outcome is unknown: a publish may
 * or may not have reached a queue (delivery is at-least-once if you republish), a declare may or
 * may not have been applied. Also used when the client gave up reconnecting.
 */
export class ConnectionLostError extends ConnectionError {
  override name = 'ConnectionLostError';
  constructor(message: string, options?: { cause?: unknown; op?: string }) {
    super('connection_lost', message, options);
  }
}

/** The client was closed (by `close()`) before or while this operation ran. */
export class ConnectionClosedError extends ConnectionError {
  override name = 'ConnectionClosedError';
  constructor(message = 'the client is closed', options?: { op?: string }) {
    super('connection_closed', message, options);
  }
}

// ---- broker answers (ERROR ops) ---------------------------------------------------------------

/** An ERROR from the broker with a code this client has no dedicated class for (e.g. `internal`). */
export class ServerError extends ShardmqError {
  override name = 'ServerError';
}

/** `not_found` (AMQP 404): no such exchange or queue, including passive declares. */
export class NotFoundError extends ShardmqError {
  override name = 'NotFoundError';
  declare readonly code: 'not_found';
}

/** `precondition_failed` (AMQP 406): inequivalent redeclare, delete if-unused/if-empty refused, bad queue arguments. */
export class PreconditionFailedError extends ShardmqError {
  override name = 'PreconditionFailedError';
  declare readonly code: 'precondition_failed';
}

/** `access_refused` (AMQP 403): an `amq.` name, the default exchange, publishing to an internal exchange. */
export class AccessRefusedError extends ShardmqError {
  override name = 'AccessRefusedError';
  declare readonly code: 'access_refused';
}

/** `resource_locked` (AMQP 405): another connection's exclusive queue. */
export class ResourceLockedError extends ShardmqError {
  override name = 'ResourceLockedError';
  declare readonly code: 'resource_locked';
}

/** `not_allowed` (AMQP 530): e.g. redeclaring an exchange with another type. */
export class NotAllowedError extends ShardmqError {
  override name = 'NotAllowedError';
  declare readonly code: 'not_allowed';
}

/** `command_invalid` (AMQP 503): e.g. an unknown exchange type. */
export class CommandInvalidError extends ShardmqError {
  override name = 'CommandInvalidError';
  declare readonly code: 'command_invalid';
}

/**
 * `saturated`: the broker refused a publish (ring full past its overflow, a queue with
 * `x-overflow: reject-publish`, a shard restarting) or the client's own reconnect buffer is full.
 * Nothing was taken; retry later.
 */
export class SaturatedError extends ShardmqError {
  override name = 'SaturatedError';
  declare readonly code: 'saturated';
}

/** `too_large`: a message over the broker's `--max-message-bytes`, or an op over the client's `maxFrameBytes`. */
export class TooLargeError extends ShardmqError {
  override name = 'TooLargeError';
  declare readonly code: 'too_large';
}

/** `bad_destination`: not `/topic/<key>`, `/queue/<name>` or `/exchange/<exchange>/<key>` (checked locally first). */
export class BadDestinationError extends ShardmqError {
  override name = 'BadDestinationError';
  declare readonly code: 'bad_destination';
}

export type ProtocolViolationCode = 'bad_frame' | 'unknown_op' | 'bad_request';

/** The broker and the client disagree on the protocol (`bad_frame`, `unknown_op`, `bad_request`): a bug on one side. */
export class ProtocolViolationError extends ShardmqError {
  override name = 'ProtocolViolationError';
  declare readonly code: ProtocolViolationCode;
}

export type ShardUnavailableCode = 'shard_unavailable' | 'shard_restarted';

/**
 * A shard died and is being restarted (`shard_restarted`: unacked deliveries from it are void; the
 * broker restores the subscription itself) or did not answer (`shard_unavailable`).
 */
export class ShardUnavailableError extends ShardmqError {
  override name = 'ShardUnavailableError';
  declare readonly code: ShardUnavailableCode;
}

export type SubscriptionErrorCode = 'unknown_subscription' | 'duplicate_subscription';

/** The broker does not know the subscription id, or it is already in use on the connection. */
export class SubscriptionError extends ShardmqError {
  override name = 'SubscriptionError';
  declare readonly code: SubscriptionErrorCode;
}

// ---- settling deliveries ----------------------------------------------------------------------

export type DeliveryTagErrorCode = 'unknown_tag' | 'stale_tag';

/**
 * ACK/NACK of a tag that cannot be settled. `stale_tag`: it was delivered on an earlier connection
 * (before a reconnect) or by a subscription that has ended; the broker has already requeued that
 * message, so it will be delivered again. `unknown_tag`: never delivered, already settled, or an
 * auto-ack delivery. The client raises these locally and sends nothing; the broker's own
 * `unknown_tag` ERROR maps here too.
 */
export class DeliveryTagError extends ShardmqError {
  override name = 'DeliveryTagError';
  declare readonly code: DeliveryTagErrorCode;
  readonly tag: number;

  constructor(code: DeliveryTagErrorCode, tag: number, message: string) {
    super(code, message);
    this.tag = tag;
  }
}

// ---- subscriptions ----------------------------------------------------------------------------

/**
 * The broker ended a subscription on its own (CANCEL): its queue was deleted. `serverCode` is the
 * code the broker sent (`consumer_cancelled`, or e.g. `shard_restarted`).
 */
export class SubscriptionCancelledError extends ShardmqError {
  override name = 'SubscriptionCancelledError';
  declare readonly code: 'consumer_cancelled';
  readonly serverCode: string;
  readonly destination: string;

  constructor(serverCode: string, destination: string, message: string) {
    super('consumer_cancelled', message);
    this.serverCode = serverCode;
    this.destination = destination;
  }
}

/** A subscription's message handler threw or rejected; `cause` is what it threw. */
export class HandlerError extends ShardmqError {
  override name = 'HandlerError';
  declare readonly code: 'handler_failed';
  readonly destination: string;
  readonly tag: number;

  constructor(destination: string, tag: number, cause: unknown) {
    super('handler_failed', `message handler for ${destination} failed on tag ${tag}: ${describe(cause)}`, { cause });
    this.destination = destination;
    this.tag = tag;
  }
}

// ---- mapping ----------------------------------------------------------------------------------

type ErrorClass = new (code: string, message: string, options?: { cause?: unknown; op?: string }) => ShardmqError;

/** Server code → class. Codes not listed become ServerError. */
const BY_CODE: Readonly<Record<string, ErrorClass>> = {
  not_found: NotFoundError,
  precondition_failed: PreconditionFailedError,
  access_refused: AccessRefusedError,
  resource_locked: ResourceLockedError,
  not_allowed: NotAllowedError,
  command_invalid: CommandInvalidError,
  saturated: SaturatedError,
  too_large: TooLargeError,
  bad_destination: BadDestinationError,
  bad_frame: ProtocolViolationError,
  unknown_op: ProtocolViolationError,
  bad_request: ProtocolViolationError,
  shard_unavailable: ShardUnavailableError,
  shard_restarted: ShardUnavailableError,
  unknown_subscription: SubscriptionError,
  duplicate_subscription: SubscriptionError,
};

/** The typed error for an ERROR op's `code` and `message` (`op`: the request it answers, if any). */
export function errorFromServer(code: string, message: string, op?: string): ShardmqError {
  if (code === 'unknown_tag') return new DeliveryTagError('unknown_tag', 0, message);
  const Class = BY_CODE[code] ?? ServerError;
  return new Class(code, message, op === undefined ? undefined : { op });
}

/** A local error of a server-code class (e.g. a local destination check raising BadDestinationError). */
export function localError(code: keyof typeof BY_CODE, message: string, op?: string): ShardmqError {
  return errorFromServer(code, message, op);
}

/** A failure while restoring after a reconnect, as the same typed error with what was being restored in its message. */
export function restoreError(err: unknown, what: string): ShardmqError {
  if (!(err instanceof ShardmqError))
    return new ShardmqError('internal', `after reconnecting, ${what} failed: ${String(err)}`, { cause: err });
  const e = errorFromServer(err.code, `after reconnecting, ${what} failed: ${err.message}`, err.op);
  (e as { cause?: unknown }).cause = err;
  return e;
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
