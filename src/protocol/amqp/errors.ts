/**
 * AMQP exceptions. A channel exception closes one channel (channel.close), a connection exception
 * closes the whole connection (connection.close); the reply code decides which, as in the spec's
 * constant table ("soft-error" vs "hard-error"). The codec throws them for malformed input; the
 * front end throws them for semantic failures and turns either into the close method.
 */
import { ReplyCode } from './constants.js';

/** An AMQP exception: `code` is a ReplyCode; classId/methodId name the method that caused it (0 when none). */
export class AmqpError extends Error {
  override readonly name = 'AmqpError';
  readonly code: number;
  readonly classId: number;
  readonly methodId: number;

  constructor(code: number, message: string, classId = 0, methodId = 0) {
    super(message);
    this.code = code;
    this.classId = classId;
    this.methodId = methodId;
  }

  /** True when this closes the connection rather than the channel. */
  get isConnectionError(): boolean {
    return isConnectionError(this.code);
  }

  /** The reply text for the close method: `NOT_FOUND - …`, at most 255 bytes. */
  get replyText(): string {
    return replyText(this.code, this.message);
  }
}

const CONNECTION_ERRORS: ReadonlySet<number> = new Set([
  ReplyCode.connectionForced,
  ReplyCode.invalidPath,
  ReplyCode.frameError,
  ReplyCode.syntaxError,
  ReplyCode.commandInvalid,
  ReplyCode.channelError,
  ReplyCode.unexpectedFrame,
  ReplyCode.resourceError,
  ReplyCode.notAllowed,
  ReplyCode.notImplemented,
  ReplyCode.internalError,
]);

/** True for connection exceptions (320, 402, 501–506, 530, 540, 541), false for channel exceptions (311–313, 403–406). */
export function isConnectionError(code: number): boolean {
  return CONNECTION_ERRORS.has(code);
}

/** RabbitMQ's names for the reply codes, which prefix its reply texts (clients and users grep for them). */
export const REPLY_NAMES: Readonly<Record<number, string>> = Object.freeze({
  [ReplyCode.success]: 'REPLY_SUCCESS',
  [ReplyCode.contentTooLarge]: 'CONTENT_TOO_LARGE',
  [ReplyCode.noRoute]: 'NO_ROUTE',
  [ReplyCode.noConsumers]: 'NO_CONSUMERS',
  [ReplyCode.connectionForced]: 'CONNECTION_FORCED',
  [ReplyCode.invalidPath]: 'INVALID_PATH',
  [ReplyCode.accessRefused]: 'ACCESS_REFUSED',
  [ReplyCode.notFound]: 'NOT_FOUND',
  [ReplyCode.resourceLocked]: 'RESOURCE_LOCKED',
  [ReplyCode.preconditionFailed]: 'PRECONDITION_FAILED',
  [ReplyCode.frameError]: 'FRAME_ERROR',
  [ReplyCode.syntaxError]: 'SYNTAX_ERROR',
  [ReplyCode.commandInvalid]: 'COMMAND_INVALID',
  [ReplyCode.channelError]: 'CHANNEL_ERROR',
  [ReplyCode.unexpectedFrame]: 'UNEXPECTED_FRAME',
  [ReplyCode.resourceError]: 'RESOURCE_ERROR',
  [ReplyCode.notAllowed]: 'NOT_ALLOWED',
  [ReplyCode.notImplemented]: 'NOT_IMPLEMENTED',
  [ReplyCode.internalError]: 'INTERNAL_ERROR',
});

/** Reply texts travel as shortstr. */
export const MAX_REPLY_TEXT_BYTES = 255;

const encoder = new TextEncoder();

/**
 * RabbitMQ's reply text shape, `NOT_FOUND - no queue 'x' in vhost '/'`, cut to 255 UTF-8 bytes at a
 * character boundary (a shortstr cannot carry more, and half a character is not UTF-8). A code with
 * no name gives the message alone.
 */
export function replyText(code: number, message: string): string {
  const name = REPLY_NAMES[code];
  const text = name === undefined ? message : message === '' ? name : `${name} - ${message}`;
  return truncateUtf8(text, MAX_REPLY_TEXT_BYTES);
}

/** The longest prefix of `s` whose UTF-8 form fits in `maxBytes`, never splitting a code point. */
export function truncateUtf8(s: string, maxBytes: number): string {
  // At most 3 bytes per UTF-16 unit, so a short string needs no measuring.
  if (s.length * 3 <= maxBytes) return s;
  const bytes = encoder.encode(s);
  if (bytes.length <= maxBytes) return s;
  let units = 0;
  let used = 0;
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    const n = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    if (used + n > maxBytes) break;
    used += n;
    units += ch.length;
  }
  return s.slice(0, units);
}
