/**
 * Streaming AMQP 0-9-1 frame decoder, in the shape of ws-binary-decode.ts (and the nats.js parser
 * before it): one `switch (state)` over whatever chunks the socket delivers, each complete frame
 * handed to a sink, method semantics elsewhere (methods.ts, content.ts, the front end).
 *
 * The stream is the 8-byte protocol header, then frames: `[u8 type][u16 channel][u32 size]
 * [size bytes payload][0xCE]`, big-endian.
 *
 * Copies: a frame whole inside the pushed chunk reaches the sink as a `subarray` of that chunk, so
 * the publish path copies nothing here. A frame split across chunks is collected into one reusable
 * buffer that grows (doubling) only as far as the largest payload seen, which frameMax bounds; the
 * sink's view of it is valid only during the call, since the next split frame overwrites it.
 *
 * Limits are checked at the 7-byte header, before a byte of the payload is buffered: the type must
 * be known and the size within frameMax. A bad header, a wrong frame-end or a throwing sink leaves
 * the decoder FAILED for good, re-throwing the same error on every later push: a length-prefixed
 * stream cannot resynchronise, and AMQP answers a frame error by closing the connection anyway.
 * Every state consumes at least one byte per turn, so no input can make push() spin.
 */
import { FRAME_END, FRAME_HEADER_SIZE, FRAME_OVERHEAD, FrameType, PROTOCOL_HEADER, ReplyCode } from './constants.js';
import { AmqpError } from './errors.js';
import { readU32BE } from './wire.js';

export interface FrameSink {
  /** One whole frame. `payload` is valid only during the call. */
  frame(type: number, channel: number, payload: Uint8Array): void;
}

/** The client's first 8 bytes were not AMQP 0-9-1's: answer PROTOCOL_HEADER and close. */
export class BadProtocolHeader extends Error {
  override readonly name = 'BadProtocolHeader';
  /** The bytes received, up to and including the first one that differs. */
  readonly received: Uint8Array;

  constructor(received: Uint8Array) {
    super(`not an AMQP 0-9-1 protocol header: ${describeHeader(received)}`);
    this.received = received;
  }
}

export const FrameDecoderState = {
  /** Reading the 8-byte protocol header. */
  PROTOCOL_HEADER: 0,
  /** Between frames, or holding part of a 7-byte frame header. */
  FRAME_HEADER: 1,
  /** Collecting a payload that did not arrive whole. */
  PAYLOAD: 2,
  /** Have a buffered payload; expecting its frame-end octet. */
  FRAME_END: 3,
  /** A frame error, a bad protocol header or a throwing sink stopped the decoder for good. */
  FAILED: 4,
} as const;
export type FrameDecoderState = (typeof FrameDecoderState)[keyof typeof FrameDecoderState];

/** Indexed by frame type: the known ones (1, 2, 3, 8) are 1. */
const KNOWN_TYPE = new Uint8Array(256);
for (const t of Object.values(FrameType)) KNOWN_TYPE[t] = 1;

const TYPE_NAMES: Readonly<Record<number, string>> = { 1: 'method', 2: 'header', 3: 'body', 8: 'heartbeat' };

/** Largest whole frame the 32-bit size field can describe. */
const MAX_FRAME = 0xffff_ffff + FRAME_OVERHEAD;
/** First size of the split-frame buffer; most split frames are small publishes. */
const INITIAL_BUFFER = 4096;

const EMPTY = new Uint8Array(0);

export class AmqpFrameDecoder {
  #frameMax = 0;
  #state: FrameDecoderState = FrameDecoderState.PROTOCOL_HEADER;
  #error: unknown = null;
  #running = false;
  #headerDone = false;
  /** The protocol header, then a frame header, as far as it has arrived. */
  readonly #head = new Uint8Array(8);
  #headFilled = 0;
  /** The frame being collected. */
  #type = 0;
  #channel = 0;
  #size = 0;
  /** Split payloads land here; reused for every split frame. */
  #buf: Uint8Array = EMPTY;
  #filled = 0;

  /** frameMax: the largest whole frame accepted (header + payload + frame-end), as negotiated; settable later (tune-ok). */
  constructor(frameMax: number) {
    this.frameMax = frameMax;
  }

  get frameMax(): number {
    return this.#frameMax;
  }

  /**
   * A negotiated frame-max of 0 ("no limit") is refused here: the front end settles on a real
   * number during tune, as RabbitMQ does, so that one peer cannot make this buffer 4 GiB.
   */
  set frameMax(v: number) {
    if (!Number.isInteger(v) || v < FRAME_OVERHEAD || v > MAX_FRAME) {
      throw new RangeError(`frameMax must be an integer from ${FRAME_OVERHEAD} to ${MAX_FRAME} (got ${v})`);
    }
    this.#frameMax = v;
  }

  /** True once the 8-byte protocol header was read and accepted. */
  get headerDone(): boolean {
    return this.#headerDone;
  }

  get state(): FrameDecoderState {
    return this.#state;
  }

  /** True after a throw: every later push() throws `error` again. */
  get failed(): boolean {
    return this.#state === FrameDecoderState.FAILED;
  }

  /** What stopped the decoder, else null. */
  get error(): unknown {
    return this.#error;
  }

  /** Capacity of the split-frame buffer (for tests and stats). */
  get bufferSize(): number {
    return this.#buf.length;
  }

  /**
   * Feeds bytes. First the 8-byte protocol header (may arrive a byte at a time): anything other than
   * AMQP\0\0\x09\x01 throws BadProtocolHeader (the server then writes PROTOCOL_HEADER and closes).
   * Then frames: [u8 type][u16 channel][u32 size][payload][0xCE]. Each complete frame is handed to
   * sink.frame; `payload` is a view valid only during the call (a view of `chunk` when the frame is
   * whole inside it, else of an internal buffer). Throws AmqpError(501 FRAME_ERROR) for a wrong
   * frame-end, a size above frameMax - 8, an unknown frame type; after a throw the decoder stays failed
   * (further push throws again). A sink that throws propagates; the decoder is then also failed.
   */
  push(chunk: Uint8Array, sink: FrameSink): void {
    if (this.#state === FrameDecoderState.FAILED) throw this.#error;
    if (this.#running) {
      // The split-frame buffer may be the very payload the calling sink is reading.
      throw new Error('AmqpFrameDecoder is not re-entrant: a sink called push() on the decoder that is calling it');
    }
    this.#running = true;
    try {
      this.#parse(chunk, sink);
    } catch (err) {
      this.#state = FrameDecoderState.FAILED;
      this.#error = err;
      this.#buf = EMPTY;
      throw err;
    } finally {
      this.#running = false;
    }
  }

  #parse(chunk: Uint8Array, sink: FrameSink): void {
    const n = chunk.length;
    let i = 0;
    while (i < n) {
      switch (this.#state) {
        case FrameDecoderState.PROTOCOL_HEADER: {
          // Byte by byte, failing at the first wrong one: an HTTP request or a 0-8 client is told at once.
          const k = this.#headFilled;
          const b = chunk[i++];
          this.#head[k] = b;
          this.#headFilled = k + 1;
          if (b !== PROTOCOL_HEADER[k]) throw new BadProtocolHeader(this.#head.slice(0, k + 1));
          if (k + 1 === PROTOCOL_HEADER.length) {
            this.#headFilled = 0;
            this.#headerDone = true;
            this.#state = FrameDecoderState.FRAME_HEADER;
          }
          break;
        }
        case FrameDecoderState.FRAME_HEADER: {
          let type: number;
          let channel: number;
          let size: number;
          if (this.#headFilled === 0 && n - i >= FRAME_HEADER_SIZE) {
            // Fast path: the whole header is here.
            type = chunk[i];
            channel = (chunk[i + 1] << 8) | chunk[i + 2];
            size = readU32BE(chunk, i + 3);
            i += FRAME_HEADER_SIZE;
          } else {
            const head = this.#head;
            while (this.#headFilled < FRAME_HEADER_SIZE && i < n) head[this.#headFilled++] = chunk[i++];
            if (this.#headFilled < FRAME_HEADER_SIZE) break;
            this.#headFilled = 0;
            type = head[0];
            channel = (head[1] << 8) | head[2];
            size = readU32BE(head, 3);
          }
          if (KNOWN_TYPE[type] === 0) {
            throw new AmqpError(ReplyCode.frameError, `unknown frame type ${type} on channel ${channel}`);
          }
          if (size > this.#frameMax - FRAME_OVERHEAD) {
            throw new AmqpError(
              ReplyCode.frameError,
              `${TYPE_NAMES[type]} frame of ${size + FRAME_OVERHEAD} bytes on channel ${channel} is larger than frame_max ${this.#frameMax}`,
            );
          }
          if (n - i > size) {
            // Payload and frame-end both here: hand out a view, copy nothing.
            const end = i + size;
            if (chunk[end] !== FRAME_END) this.#badFrameEnd(chunk[end], type, channel, size);
            const payload = chunk.subarray(i, end);
            i = end + 1;
            sink.frame(type, channel, payload);
          } else {
            this.#type = type;
            this.#channel = channel;
            this.#size = size;
            this.#startPayload(chunk, i, size);
            i = n;
          }
          break;
        }
        case FrameDecoderState.PAYLOAD: {
          const want = this.#size - this.#filled;
          const take = want < n - i ? want : n - i;
          this.#buf.set(i === 0 && take === n ? chunk : chunk.subarray(i, i + take), this.#filled);
          this.#filled += take;
          i += take;
          if (this.#filled === this.#size) this.#state = FrameDecoderState.FRAME_END;
          break;
        }
        case FrameDecoderState.FRAME_END: {
          const b = chunk[i++];
          if (b !== FRAME_END) this.#badFrameEnd(b, this.#type, this.#channel, this.#size);
          this.#state = FrameDecoderState.FRAME_HEADER;
          sink.frame(this.#type, this.#channel, this.#buf.subarray(0, this.#size));
          break;
        }
        default:
          // FAILED is refused by push() before parsing; anything else is a bug here.
          throw new AmqpError(ReplyCode.internalError, `frame decoder in unknown state ${this.#state}`);
      }
    }
  }

  /** Buffers the start of a payload that continues in a later chunk. */
  #startPayload(chunk: Uint8Array, at: number, size: number): void {
    if (this.#buf.length < size) {
      // Doubling, capped at the largest payload frameMax allows: a burst of growing frames costs
      // O(log) allocations, and one huge frame allocates exactly its size.
      let cap = this.#buf.length === 0 ? INITIAL_BUFFER : this.#buf.length * 2;
      while (cap < size) cap *= 2;
      // size ≤ max: the header check ran against the same frameMax.
      const max = this.#frameMax - FRAME_OVERHEAD;
      this.#buf = new Uint8Array(cap < max ? cap : max);
    }
    const have = chunk.length - at;
    if (have > 0) this.#buf.set(chunk.subarray(at), 0);
    this.#filled = have;
    this.#state = have === size ? FrameDecoderState.FRAME_END : FrameDecoderState.PAYLOAD;
  }

  #badFrameEnd(b: number, type: number, channel: number, size: number): never {
    throw new AmqpError(
      ReplyCode.frameError,
      `frame end octet 0x${b.toString(16).padStart(2, '0')} (expected 0xce) after a ${size}-byte ${TYPE_NAMES[type]} frame payload on channel ${channel}`,
    );
  }
}

/** The received header as text where printable, \xNN elsewhere: `AMQP\x00\x00\x09\x00`. */
function describeHeader(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += b >= 0x20 && b < 0x7f && b !== 0x5c ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, '0')}`;
  return `'${s}'`;
}
