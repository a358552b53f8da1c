/**
 * shardmq: the TypeScript client of the shardmq broker (binary WebSocket protocol, docs/protocol.md).
 *
 * ```ts
 * import { connect } from 'shardmq';
 * const client = await connect('http://127.0.0.1:7070');
 * ```
 */
export { connect } from './client/client.js';
export type {
  ShardmqClient,
  Payload,
  PublishCredit,
  PublishOptions,
  SettleOptions,
  ClientNackOptions,
  ClientEvents,
  ExchangeType,
  ExchangeDeclareOptions,
  QueueDeclareOptions,
  QueueDeleteOptions,
} from './client/client.js';
export type { ClientOptions, ClientLogger } from './client/options.js';
export type { ReconnectOptions } from './client/backoff.js';
export type {
  Subscription,
  SubscribeOptions,
  MessageHandler,
  Overflow,
  StreamOffset,
  SubscriptionEnd,
  SubscriptionEndReason,
  SubscriptionEvents,
  SubscriptionListener,
  DroppedNotice,
} from './client/subscription.js';
export type { Message, MessageSubscription, NackOptions } from './client/message.js';
export type { DeclareQueueResult } from './client/topology.js';
export type { MessageProperties } from './protocol/properties.js';
export type { HeaderValue, HeaderTable } from './protocol/field-table.js';
export type { AckMode } from './protocol/ws-binary.js';
export {
  ShardmqError,
  ConnectionError,
  ConnectFailedError,
  ConnectionLostError,
  ConnectionClosedError,
  ServerError,
  NotFoundError,
  PreconditionFailedError,
  AccessRefusedError,
  ResourceLockedError,
  NotAllowedError,
  CommandInvalidError,
  SaturatedError,
  TooLargeError,
  BadDestinationError,
  ProtocolViolationError,
  ShardUnavailableError,
  SubscriptionError,
  DeliveryTagError,
  SubscriptionCancelledError,
  HandlerError,
} from './client/errors.js';
export type {
  ConnectionErrorCode,
  ProtocolViolationCode,
  ShardUnavailableCode,
  SubscriptionErrorCode,
  DeliveryTagErrorCode,
} from './client/errors.js';
