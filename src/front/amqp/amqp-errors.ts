/**
 * The broker's errors as AMQP exceptions: control/ throws BrokerErrors with RabbitMQ's wording
 * (queue and exchange declarations, rights, limits); an AMQP client expects the same condition as a
 * reply code that closes its channel (403–406) or, for a broken conversation, its connection.
 */
import { AmqpError } from '../../protocol/amqp/errors.js';
import { ReplyCode } from '../../protocol/amqp/constants.js';
import { BrokerError, ErrorCode } from '../../protocol/errors.js';

const REPLY_FOR: Readonly<Partial<Record<ErrorCode, number>>> = {
  [ErrorCode.notFound]: ReplyCode.notFound,
  [ErrorCode.accessRefused]: ReplyCode.accessRefused,
  [ErrorCode.unauthorized]: ReplyCode.accessRefused,
  [ErrorCode.resourceLocked]: ReplyCode.resourceLocked,
  [ErrorCode.preconditionFailed]: ReplyCode.preconditionFailed,
  [ErrorCode.tooLarge]: ReplyCode.preconditionFailed,
  [ErrorCode.badDestination]: ReplyCode.preconditionFailed,
  [ErrorCode.badRequest]: ReplyCode.preconditionFailed,
  [ErrorCode.limitExceeded]: ReplyCode.preconditionFailed,
  [ErrorCode.unknownTag]: ReplyCode.preconditionFailed,
  // RabbitMQ answers an unknown exchange type with a connection exception.
  [ErrorCode.commandInvalid]: ReplyCode.commandInvalid,
  [ErrorCode.saturated]: ReplyCode.resourceError,
  [ErrorCode.shardUnavailable]: ReplyCode.resourceError,
  [ErrorCode.shardRestarted]: ReplyCode.resourceError,
  [ErrorCode.storageFailed]: ReplyCode.resourceError,
  [ErrorCode.unsupported]: ReplyCode.notImplemented,
  // RabbitMQ's answer for a durable queue whose home node is down: NOT_FOUND, closing the channel.
  [ErrorCode.nodeUnavailable]: ReplyCode.notFound,
};

/** The reply code for a broker error code (a shard's refusal of a consumer, say); internal_error for one it does not know. */
export function replyCodeFor(code: string): number {
  return REPLY_FOR[code as ErrorCode] ?? ReplyCode.internalError;
}

/** Any error a method's handling threw, as the AMQP exception the client gets; `unexpected` logs bugs. */
export function toAmqpError(err: unknown, classId: number, methodId: number, unexpected: (err: unknown) => void): AmqpError {
  if (err instanceof AmqpError) return err;
  if (err instanceof BrokerError) {
    return new AmqpError(REPLY_FOR[err.code] ?? ReplyCode.internalError, err.message, classId, methodId);
  }
  unexpected(err);
  return new AmqpError(ReplyCode.internalError, 'internal error; see the broker log', classId, methodId);
}
