/**
 * Error codes shared by HTTP JSON bodies, WebSocket error frames and close reasons.
 * Stable strings: clients match on them.
 */
export const ErrorCode = {
  badDestination: 'bad_destination',
  badRequest: 'bad_request',
  badFrame: 'bad_frame',
  unknownOp: 'unknown_op',
  notFound: 'not_found',
  tooLarge: 'too_large',
  saturated: 'saturated',
  unknownTag: 'unknown_tag',
  unknownSubscription: 'unknown_subscription',
  duplicateSubscription: 'duplicate_subscription',
  shardUnavailable: 'shard_unavailable',
  shardRestarted: 'shard_restarted',
  unsupported: 'unsupported',
  internal: 'internal',
  // AMQP reply names, for topology operations (RabbitMQ's wording in the messages).
  preconditionFailed: 'precondition_failed',
  accessRefused: 'access_refused',
  resourceLocked: 'resource_locked',
  commandInvalid: 'command_invalid',
  consumerCancelled: 'consumer_cancelled',
  unauthorized: 'unauthorized',
  slowConsumer: 'slow_consumer',
  limitExceeded: 'limit_exceeded',
  storageFailed: 'storage_failed',
  lengthRequired: 'length_required',
  headersTooLarge: 'headers_too_large',
  /** HTTP: a known path asked with a method it does not answer (405, with Allow). */
  methodNotAllowed: 'method_not_allowed',
  /** HTTP: a body in a Content-Encoding or Content-Type the route does not take (415). */
  unsupportedMediaType: 'unsupported_media_type',
  /** A WebSocket client published past the credit the broker granted (flow control). */
  creditExceeded: 'credit_exceeded',
  /** A durable queue lives on a cluster node that is out of the cluster; it is back when that node is. */
  nodeUnavailable: 'node_unavailable',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** HTTP status for each code that can reach an HTTP client. */
export const HTTP_STATUS: Readonly<Record<string, number>> = {
  bad_destination: 400,
  bad_request: 400,
  bad_frame: 400,
  not_found: 404,
  too_large: 413,
  saturated: 503,
  shard_unavailable: 503,
  node_unavailable: 503,
  // AMQP's reply code for PRECONDITION_FAILED, as RabbitMQ users know it.
  precondition_failed: 406,
  access_refused: 403,
  unauthorized: 401,
  limit_exceeded: 429,
  storage_failed: 507,
  length_required: 411,
  headers_too_large: 431,
  method_not_allowed: 405,
  unsupported_media_type: 415,
  resource_locked: 409,
  command_invalid: 400,
  internal: 500,
};

/** An error that travels to the offending client as `{"error": code, "message": text}`. */
export class BrokerError extends Error {
  override readonly name = 'BrokerError';
  readonly code: ErrorCode;
  readonly status: number;

  constructor(code: ErrorCode, message: string, status = HTTP_STATUS[code] ?? 400) {
    super(message);
    this.code = code;
    this.status = status;
  }

  /** Wraps an error from the router, the queue arguments or a shard answer. */
  static from(code: string, message: string): BrokerError {
    const known = (Object.values(ErrorCode) as string[]).includes(code) ? (code as ErrorCode) : ErrorCode.internal;
    return new BrokerError(known, message);
  }
}
