/**
 * The one error family of the router: exchange and binding operations refused with an AMQP 0-9-1
 * channel-level reason. `code` is the AMQP reply name in snake case, stable for callers to map onto
 * their wire (AMQP reply code, HTTP status, WebSocket error frame); `replyCode` is the AMQP number.
 * Messages follow RabbitMQ's wording ("no exchange 'x' in vhost '/'") so clients that grep for
 * those texts keep working.
 */

export const RouterErrorCode = {
  /** 404 NOT_FOUND: the exchange does not exist (publish, bind, passive declare). */
  notFound: 'not_found',
  /** 406 PRECONDITION_FAILED: inequivalent redeclare, delete if-unused of a used exchange, bad x-match. */
  preconditionFailed: 'precondition_failed',
  /** 403 ACCESS_REFUSED: the default exchange, reserved `amq.` names, publishing to an internal exchange. */
  accessRefused: 'access_refused',
  /** 405 RESOURCE_LOCKED: an exclusive queue declared or used from another connection. */
  resourceLocked: 'resource_locked',
  /** 503 COMMAND_INVALID: unknown exchange type. */
  commandInvalid: 'command_invalid',
} as const;
export type RouterErrorCode = (typeof RouterErrorCode)[keyof typeof RouterErrorCode];

/** AMQP 0-9-1 reply codes for each {@link RouterErrorCode} (amqp0-9-1.xml `constant` elements). */
export const ROUTER_REPLY_CODES: Readonly<Record<RouterErrorCode, number>> = Object.freeze({
  not_found: 404,
  precondition_failed: 406,
  access_refused: 403,
  resource_locked: 405,
  command_invalid: 503,
});

export class RouterError extends Error {
  override readonly name = 'RouterError';
  readonly code: RouterErrorCode;

  constructor(code: RouterErrorCode, message: string) {
    super(message);
    this.code = code;
  }

  /** The AMQP reply code (404, 406, 403, 503). */
  get replyCode(): number {
    return ROUTER_REPLY_CODES[this.code];
  }
}
