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
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** An error that travels to the offending client as `{"error": code, "message": text}`. */
export class BrokerError extends Error {
  override readonly name = 'BrokerError';
  readonly code: ErrorCode;
  readonly status: number;

  constructor(code: ErrorCode, message: string, status = 400) {
    super(message);
    this.code = code;
    this.status = status;
  }
}
