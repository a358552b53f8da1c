/**
 * AMQP 0-9-1 wire constants, as the spec's amqp0-9-1.xml and RabbitMQ name them. Plain `as const`
 * objects (no TS enums), so a hex dump, a RabbitMQ log line and this file use the same numbers.
 */

/** The frame type octet that opens every frame. */
export const FrameType = { method: 1, header: 2, body: 3, heartbeat: 8 } as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

/** The octet that closes every frame; anything else there means the stream lost its framing. */
export const FRAME_END = 0xce;

/** What a 0-9-1 client sends first, and what the server answers to any other header before closing. */
export const PROTOCOL_HEADER: Uint8Array = Uint8Array.of(0x41, 0x4d, 0x51, 0x50, 0, 0, 9, 1); // 'AMQP' 0 0 9 1

/** The smallest frame-max a peer may negotiate, and the only size allowed before tune-ok. */
export const FRAME_MIN_SIZE = 4096;

/** Bytes a frame adds around its payload: type (1), channel (2), size (4) and frame-end (1). */
export const FRAME_OVERHEAD = 8;

/** The 7 bytes before a payload: type, channel, size. */
export const FRAME_HEADER_SIZE = 7;

export const ReplyCode = {
  success: 200,
  contentTooLarge: 311,
  noRoute: 312,
  noConsumers: 313,
  connectionForced: 320,
  invalidPath: 402,
  accessRefused: 403,
  notFound: 404,
  resourceLocked: 405,
  preconditionFailed: 406,
  frameError: 501,
  syntaxError: 502,
  commandInvalid: 503,
  channelError: 504,
  unexpectedFrame: 505,
  resourceError: 506,
  notAllowed: 530,
  notImplemented: 540,
  internalError: 541,
} as const;
export type ReplyCode = (typeof ReplyCode)[keyof typeof ReplyCode];

export const ClassId = { connection: 10, channel: 20, exchange: 40, queue: 50, basic: 60, confirm: 85, tx: 90 } as const;
export type ClassId = (typeof ClassId)[keyof typeof ClassId];

/** A whole heartbeat frame (type 8, channel 0, no payload), ready to write. */
export const HEARTBEAT_FRAME: Uint8Array = Uint8Array.of(FrameType.heartbeat, 0, 0, 0, 0, 0, 0, FRAME_END);
