/**
 * Streaming decoder of the binary WebSocket protocol (docs/protocol.md), in the shape of the
 * nats.js parser: one byte-level `switch (state)` over whatever chunks arrive, events pushed to a
 * dispatcher interface, semantics elsewhere.
 *
 * Framing is the state machine: `OP_START` reads the opcode, `OP_LENGTH_0..3` the four length
 * bytes, `OP_BODY` collects a body that did not arrive whole. Once a body is whole it is decoded
 * in place by one function per op (a bounds-checked cursor, FieldReader) and dispatched.
 *
 * Copies: when an op is whole within the chunk being pushed (always, for decodeFrame on a
 * WebSocket message), its payload, batch payloads and properties block are handed out as
 * `subarray` views of that chunk: zero copy, valid until the caller reuses the chunk. An op split
 * across chunks is collected into a fresh array of exactly its body length, so its views stay valid
 * for good and later chunks cannot clobber them. Strings are decoded once, into the event.
 *
 * Limits (DecoderOptions) are checked before anything is buffered or built: the op length at the
 * header, string lengths at their prefix, counts before their loops. Anything malformed or over a
 * limit throws a ProtocolError (`bad_frame` or `too_large`) out of push()/decodeFrame(), with the
 * state and a capped hex excerpt; the decoder then stays FAILED (a length-prefixed stream cannot
 * resynchronise) until reset(). Every loop advances by at least one byte or one counted item, so
 * no input can make it spin.
 */
import { ErrorCode } from './errors.js';
import { StringCache } from './string-cache.js';
import { DEFAULT_TABLE_LIMITS, MAX_HEADER_DEPTH, MAX_HEADER_ENTRIES, readProperties, readTable } from './properties.js';
import type { TableLimits } from './properties.js';
import type { HeaderTable } from './field-table.js';
import {
  ConfirmFlag,
  DeliverFlag,
  ExchangeDeclareFlag,
  ExchangeDeleteFlag,
  FieldReader,
  FIRST_SERVER_OPCODE,
  MAX_DESTINATION_BYTES,
  MAX_FRAME_OPS,
  MAX_OP_BODY_BYTES,
  OP_FIXED_BODY,
  OP_HEADER_BYTES,
  OP_MIN_BODY,
  SUBSCRIBE_SHARED,
  Opcode,
  ProtocolError,
  PublishFlag,
  QueueDeclareFlag,
  QueueDeleteFlag,
  SettleFlag,
  opcodeName,
  readU32,
} from './ws-binary.js';
import type { AckMode, BinaryClientDispatcher, BinaryDispatcher, ProtocolErrorCode } from './ws-binary.js';

/** The arguments of a SUBSCRIBE that carries none (shared: nothing mutates it). */
const EMPTY_ARGUMENTS: HeaderTable = Object.freeze({}) as HeaderTable;

export const DecoderState = {
  /** Expecting an opcode (between ops). */
  OP_START: 0,
  /** Have the opcode; expecting length byte 0 (least significant). */
  OP_LENGTH_0: 1,
  OP_LENGTH_1: 2,
  OP_LENGTH_2: 3,
  /** Expecting the last length byte. */
  OP_LENGTH_3: 4,
  /** Collecting a body that is split across chunks. */
  OP_BODY: 5,
  /** A ProtocolError (or a throwing dispatcher) stopped the decoder; reset() to reuse it. */
  FAILED: 6,
} as const;
export type DecoderState = (typeof DecoderState)[keyof typeof DecoderState];

export const DECODER_STATE_NAMES: readonly string[] = Object.freeze(
  Object.entries(DecoderState)
    .sort((a, b) => a[1] - b[1])
    .map(([name]) => name),
);

/** Which way the decoded ops travel: a server decodes `toServer`, a client `toClient`. */
export const Direction = { toServer: 0, toClient: 1 } as const;
export type Direction = (typeof Direction)[keyof typeof Direction];

export interface DecoderOptions {
  /** Largest op body (default MAX_OP_BODY_BYTES); the server passes its WebSocket frame limit. */
  maxOpBodyBytes?: number;
  /** Most ops (batch entries count one each) per push()/decodeFrame() call (default MAX_FRAME_OPS). */
  maxFrameOps?: number;
  /** Longest destination in PUBLISH/PUBLISH_BATCH/SUBSCRIBE (default MAX_DESTINATION_BYTES, at most 65535). */
  maxDestinationBytes?: number;
  /** Deepest table/array nesting in headers and arguments (default MAX_HEADER_DEPTH). */
  maxHeaderDepth?: number;
  /** Most table entries plus array elements per properties block or arguments table (default MAX_HEADER_ENTRIES). */
  maxHeaderEntries?: number;
  /**
   * Check every properties block (structure, UTF-8, limits) before dispatching (default true).
   * The block is forwarded as bytes, so this is the one place it is checked on its way in.
   */
  validateProperties?: boolean;
}

/** Per-direction opcode tables: minimum body (-1 = not accepted here) and fixed body (0 = variable). */
const MIN_BODY = [new Int32Array(256).fill(-1), new Int32Array(256).fill(-1)] as const;
const FIXED_BODY = [new Int32Array(256), new Int32Array(256)] as const;
for (const code of Object.values(Opcode)) {
  const dir = code < FIRST_SERVER_OPCODE ? Direction.toServer : Direction.toClient;
  MIN_BODY[dir][code] = OP_MIN_BODY[code];
  FIXED_BODY[dir][code] = OP_FIXED_BODY[code] ?? 0;
}

/** A name read from an op, through a one-entry cache of the last one read in its position. */
function readCached(cache: StringCache, r: FieldReader, n: number, field: string): string {
  r.need(n, field);
  const hit = cache.lookup(r.bytes, r.pos, n);
  if (hit !== undefined) {
    r.pos += n;
    return hit;
  }
  const at = r.pos;
  const s = n === 0 ? '' : r.text(n, field);
  cache.remember(r.bytes, at, n, s);
  return s;
}

export class BinaryDecoder {
  readonly direction: Direction;
  readonly #dispatcher: BinaryDispatcher | BinaryClientDispatcher;
  readonly #maxOpBody: number;
  readonly #maxFrameOps: number;
  readonly #maxDestination: number;
  readonly #limits: TableLimits;
  readonly #validateProperties: boolean;
  readonly #minBody: Int32Array;
  readonly #fixedBody: Int32Array;
  readonly #reader = new FieldReader();
  readonly #destinations = new StringCache(MAX_DESTINATION_BYTES);
  readonly #exchanges = new StringCache(255);
  readonly #routingKeys = new StringCache(255);

  #state: DecoderState = DecoderState.OP_START;
  #error: unknown = null;
  #opcode = 0;
  #length = 0;
  /** Split body being collected, and how much of it has arrived. */
  #body: Uint8Array | null = null;
  #filled = 0;
  /** Ops dispatched in the current push()/decodeFrame() call. */
  #ops = 0;
  /** True while push()/decodeFrame() runs, to refuse re-entrant calls from a dispatcher. */
  #running = false;

  constructor(direction: typeof Direction.toServer, dispatcher: BinaryDispatcher, options?: DecoderOptions);
  constructor(direction: typeof Direction.toClient, dispatcher: BinaryClientDispatcher, options?: DecoderOptions);
  constructor(direction: Direction, dispatcher: BinaryDispatcher | BinaryClientDispatcher, options: DecoderOptions = {}) {
    if (direction !== Direction.toServer && direction !== Direction.toClient) {
      throw new RangeError(`direction must be Direction.toServer (0) or Direction.toClient (1) (got ${String(direction)})`);
    }
    this.direction = direction;
    this.#dispatcher = dispatcher;
    this.#maxOpBody = option(options, 'maxOpBodyBytes', MAX_OP_BODY_BYTES, 1, 0xffff_ffff);
    this.#maxFrameOps = option(options, 'maxFrameOps', MAX_FRAME_OPS, 1, 0xffff_ffff);
    this.#maxDestination = option(options, 'maxDestinationBytes', MAX_DESTINATION_BYTES, 1, 0xffff);
    const maxHeaderDepth = option(options, 'maxHeaderDepth', MAX_HEADER_DEPTH, 1, 1000);
    const maxHeaderEntries = option(options, 'maxHeaderEntries', MAX_HEADER_ENTRIES, 0, 0xffff_ffff);
    this.#limits =
      maxHeaderDepth === MAX_HEADER_DEPTH && maxHeaderEntries === MAX_HEADER_ENTRIES
        ? DEFAULT_TABLE_LIMITS
        : Object.freeze({ maxHeaderDepth, maxHeaderEntries });
    if (options.validateProperties !== undefined && typeof options.validateProperties !== 'boolean') {
      throw new TypeError(`options.validateProperties must be a boolean (got ${typeof options.validateProperties})`);
    }
    this.#validateProperties = options.validateProperties ?? true;
    this.#minBody = MIN_BODY[direction];
    this.#fixedBody = FIXED_BODY[direction];
  }

  get state(): DecoderState {
    return this.#state;
  }

  get stateName(): string {
    return DECODER_STATE_NAMES[this.#state];
  }

  /** What stopped the decoder (state FAILED), else null. */
  get error(): unknown {
    return this.#error;
  }

  /** Back to OP_START, dropping any partial op and a failure. */
  reset(): void {
    this.#state = DecoderState.OP_START;
    this.#error = null;
    this.#body = null;
    this.#filled = 0;
  }

  /**
   * Feeds the next chunk of a byte stream, any size, split anywhere. Dispatches every op that
   * completes. Throws ProtocolError on bad input (after dispatching the ops before it).
   */
  push(chunk: Uint8Array): void {
    this.#run(chunk, false);
  }

  /**
   * Decodes one WebSocket message, which must hold whole ops only: a trailing partial op is
   * `bad_frame` (and is detected before anything of it is buffered). Every view aliases `message`.
   */
  decodeFrame(message: Uint8Array): void {
    if (this.#state !== DecoderState.OP_START && this.#state !== DecoderState.FAILED) {
      throw new Error(`decodeFrame needs a decoder between ops, but this one is in ${this.stateName} (mixing push and decodeFrame)`);
    }
    this.#run(message, true);
  }

  #run(chunk: Uint8Array, whole: boolean): void {
    if (this.#state === DecoderState.FAILED) throw this.#error;
    if (this.#running) {
      // The field reader and the string caches are shared: a nested call would corrupt the outer one.
      throw new Error('BinaryDecoder is not re-entrant: a dispatcher called push()/decodeFrame() on the decoder that is calling it');
    }
    this.#ops = 0;
    this.#running = true;
    try {
      this.#parse(chunk, whole);
    } catch (err) {
      this.#state = DecoderState.FAILED;
      this.#error = err;
      this.#body = null;
      throw err;
    } finally {
      this.#running = false;
    }
  }

  #parse(chunk: Uint8Array, whole: boolean): void {
    const n = chunk.length;
    let i = 0;
    while (i < n) {
      switch (this.#state) {
        case DecoderState.OP_START: {
          const op = chunk[i];
          if (this.#minBody[op] < 0) this.#unknownOpcode(op, chunk, i);
          this.#opcode = op;
          if (n - i >= OP_HEADER_BYTES) {
            // Fast path: the whole header is here.
            const length = readU32(chunk, i + 1);
            this.#checkLength(length, chunk, i);
            i += OP_HEADER_BYTES;
            if (n - i >= length) {
              this.#decode(chunk, i, i + length);
              i += length;
            } else {
              if (whole)
                this.#truncated('OP_BODY', chunk, i - OP_HEADER_BYTES, `${opcodeName(op)} has ${n - i} of its ${length} body bytes`);
              this.#startBody(chunk, i, length);
              i = n;
            }
          } else {
            if (whole)
              this.#truncated('OP_LENGTH_0', chunk, i, `the frame ends inside an op header (${n - i} of ${OP_HEADER_BYTES} bytes)`);
            this.#state = DecoderState.OP_LENGTH_0;
            i++;
          }
          break;
        }
        case DecoderState.OP_LENGTH_0:
          this.#length = chunk[i++];
          this.#state = DecoderState.OP_LENGTH_1;
          break;
        case DecoderState.OP_LENGTH_1:
          this.#length |= chunk[i++] << 8;
          this.#state = DecoderState.OP_LENGTH_2;
          break;
        case DecoderState.OP_LENGTH_2:
          this.#length |= chunk[i++] << 16;
          this.#state = DecoderState.OP_LENGTH_3;
          break;
        case DecoderState.OP_LENGTH_3: {
          const length = (this.#length | (chunk[i++] << 24)) >>> 0;
          this.#length = length;
          this.#checkLength(length, undefined, 0);
          if (n - i >= length) {
            // The header was split but the body is whole here: still zero copy.
            this.#state = DecoderState.OP_START;
            this.#decode(chunk, i, i + length);
            i += length;
          } else {
            this.#startBody(chunk, i, length);
            i = n;
          }
          break;
        }
        case DecoderState.OP_BODY: {
          const body = this.#body!;
          const take = Math.min(body.length - this.#filled, n - i);
          body.set(take === n - i && i === 0 ? chunk : chunk.subarray(i, i + take), this.#filled);
          this.#filled += take;
          i += take;
          if (this.#filled === body.length) {
            this.#state = DecoderState.OP_START;
            this.#body = null;
            this.#decode(body, 0, body.length);
          }
          break;
        }
        default:
          // FAILED cannot be reached here (#run checks first); anything else is a bug.
          throw new ProtocolError(ErrorCode.badFrame, this.stateName, 'decoder is not running');
      }
    }
  }

  #startBody(chunk: Uint8Array, at: number, length: number): void {
    const body = new Uint8Array(length);
    if (at < chunk.length) body.set(chunk.subarray(at), 0);
    this.#body = body;
    this.#filled = chunk.length - at;
    this.#state = DecoderState.OP_BODY;
  }

  /** Checks a complete op length against the opcode and the limits. `bytes` undefined: header was split. */
  #checkLength(length: number, bytes: Uint8Array | undefined, at: number): void {
    const op = this.#opcode;
    const fixed = this.#fixedBody[op];
    let code: ProtocolErrorCode | 0 = 0;
    let detail = '';
    if (fixed !== 0 && length !== fixed) {
      code = ErrorCode.badFrame;
      detail = `${opcodeName(op)} body must be ${fixed} bytes (header says ${length})`;
    } else if (length > this.#maxOpBody) {
      code = ErrorCode.tooLarge;
      detail = `${opcodeName(op)} body of ${length} bytes is over the limit of ${this.#maxOpBody}`;
    } else if (length < this.#minBody[op]) {
      code = ErrorCode.badFrame;
      detail = `${opcodeName(op)} body must be at least ${this.#minBody[op]} bytes (header says ${length})`;
    }
    if (code === 0) return;
    if (bytes === undefined) {
      // The header arrived in pieces: quote it rebuilt.
      bytes = Uint8Array.of(op, length & 0xff, (length >>> 8) & 0xff, (length >>> 16) & 0xff, length >>> 24);
      at = 0;
    }
    throw new ProtocolError(code, 'OP_LENGTH_3', detail, bytes, at);
  }

  #unknownOpcode(op: number, chunk: Uint8Array, at: number): never {
    const known = MIN_BODY[this.direction === Direction.toServer ? Direction.toClient : Direction.toServer][op] >= 0;
    const detail = known
      ? `opcode 0x${op.toString(16).padStart(2, '0')} (${opcodeName(op)}) travels ${this.direction === Direction.toServer ? 'server → client' : 'client → server'}, not this way`
      : `unknown opcode 0x${op.toString(16).padStart(2, '0')}`;
    throw new ProtocolError(ErrorCode.badFrame, 'OP_START', detail, chunk, at);
  }

  #truncated(state: string, chunk: Uint8Array, at: number, detail: string): never {
    throw new ProtocolError(ErrorCode.badFrame, state, `truncated frame: ${detail}`, chunk, at);
  }

  #countOps(count: number, r: FieldReader): void {
    this.#ops += count;
    if (this.#ops > this.#maxFrameOps) {
      r.fail(ErrorCode.tooLarge, 'op', `more than ${this.#maxFrameOps} ops (batch entries count one each) in one frame`, r.pos);
    }
  }

  /** Decodes the whole body `bytes[start, end)` of the current opcode and dispatches it. */
  #decode(bytes: Uint8Array, start: number, end: number): void {
    const op = this.#opcode;
    const r = this.#reader.reset(bytes, start, end, opcodeName(op));
    if (op !== Opcode.PUBLISH_BATCH) this.#countOps(1, r);
    if (this.direction === Direction.toServer) this.#decodeClientOp(op, r, this.#dispatcher as BinaryDispatcher);
    else this.#decodeServerOp(op, r, this.#dispatcher as BinaryClientDispatcher);
  }

  #decodeClientOp(op: number, r: FieldReader, d: BinaryDispatcher): void {
    switch (op) {
      case Opcode.PUBLISH: {
        const flags = r.flags('flags', PublishFlag.PROPERTIES);
        const destination = this.#destination(r);
        const properties = flags & PublishFlag.PROPERTIES ? this.#properties(r) : null;
        const payload = r.view(r.remaining, 'payload');
        d.processPublish({ destination, properties, payload });
        return;
      }
      case Opcode.PUBLISH_BATCH: {
        const flags = r.flags('flags', PublishFlag.PROPERTIES);
        const destination = this.#destination(r);
        const properties = flags & PublishFlag.PROPERTIES ? this.#properties(r) : null;
        const count = r.u32('count');
        // Every entry has a 4-byte length: reject an impossible count before allocating for it.
        if (count > r.remaining / 4)
          r.fail(ErrorCode.badFrame, 'count', `count ${count} needs at least ${4 * count} bytes but ${r.remaining} are left`, r.pos - 4);
        this.#countOps(Math.max(1, count), r);
        const payloads = new Array<Uint8Array>(count);
        for (let k = 0; k < count; k++) {
          const length = r.u32('length');
          payloads[k] = r.view(length, 'payload');
        }
        r.done();
        d.processPublishBatch({ destination, properties, payloads });
        return;
      }
      case Opcode.CONFIRM_SELECT:
        d.processConfirmSelect({ requestId: r.u32('requestId') });
        return;
      case Opcode.SUBSCRIBE: {
        const requestId = r.u32('requestId');
        const subscriptionId = r.u32('subscriptionId');
        const mode = r.u8('ackMode');
        if (mode !== 0 && mode !== 1 && mode !== SUBSCRIBE_SHARED) {
          r.fail(ErrorCode.badFrame, 'ackMode', `ackMode ${mode} is not 0 (auto), 1 (client) or 2 (auto, shared)`, r.pos - 1);
        }
        const ackMode: AckMode = mode === 1 ? 'client' : 'auto';
        const prefetch = r.u32('prefetch');
        const destination = this.#destination(r);
        // Optional since the table was added: a frame that ends after the destination has none.
        const args = r.remaining > 0 ? this.#arguments(r) : EMPTY_ARGUMENTS;
        r.done();
        d.processSubscribe({
          requestId,
          subscriptionId,
          destination,
          ackMode,
          prefetch,
          shared: mode === SUBSCRIBE_SHARED,
          arguments: args,
        });
        return;
      }
      case Opcode.FLUSH:
        d.processFlush({ requestId: r.u32('requestId') });
        return;
      case Opcode.COMMIT_OFFSET:
        d.processCommitOffset({ requestId: r.u32('requestId'), subscriptionId: r.u32('subscriptionId'), offset: r.u64('offset') });
        return;
      case Opcode.UNSUBSCRIBE:
        d.processUnsubscribe({ requestId: r.u32('requestId'), subscriptionId: r.u32('subscriptionId') });
        return;
      case Opcode.ACK: {
        const flags = r.flags('flags', SettleFlag.MULTIPLE);
        d.processAck({ tag: r.u64('tag'), multiple: (flags & SettleFlag.MULTIPLE) !== 0 });
        return;
      }
      case Opcode.NACK: {
        const flags = r.flags('flags', SettleFlag.MULTIPLE | SettleFlag.REQUEUE);
        d.processNack({
          tag: r.u64('tag'),
          multiple: (flags & SettleFlag.MULTIPLE) !== 0,
          requeue: (flags & SettleFlag.REQUEUE) !== 0,
        });
        return;
      }
      case Opcode.DECLARE_EXCHANGE: {
        const requestId = r.u32('requestId');
        const F = ExchangeDeclareFlag;
        const flags = r.flags('flags', F.PASSIVE | F.DURABLE | F.AUTO_DELETE | F.INTERNAL);
        const name = r.shortstr('name');
        const type = r.shortstr('type');
        const args = this.#arguments(r);
        d.processDeclareExchange({
          requestId,
          name,
          type,
          passive: (flags & F.PASSIVE) !== 0,
          durable: (flags & F.DURABLE) !== 0,
          autoDelete: (flags & F.AUTO_DELETE) !== 0,
          internal: (flags & F.INTERNAL) !== 0,
          arguments: args,
        });
        return;
      }
      case Opcode.DELETE_EXCHANGE: {
        const requestId = r.u32('requestId');
        const flags = r.flags('flags', ExchangeDeleteFlag.IF_UNUSED);
        const name = r.shortstr('name');
        r.done();
        d.processDeleteExchange({ requestId, name, ifUnused: (flags & ExchangeDeleteFlag.IF_UNUSED) !== 0 });
        return;
      }
      case Opcode.DECLARE_QUEUE: {
        const requestId = r.u32('requestId');
        const F = QueueDeclareFlag;
        const flags = r.flags('flags', F.PASSIVE | F.DURABLE | F.EXCLUSIVE | F.AUTO_DELETE);
        const name = r.shortstr('name');
        const args = this.#arguments(r);
        d.processDeclareQueue({
          requestId,
          name,
          passive: (flags & F.PASSIVE) !== 0,
          durable: (flags & F.DURABLE) !== 0,
          exclusive: (flags & F.EXCLUSIVE) !== 0,
          autoDelete: (flags & F.AUTO_DELETE) !== 0,
          arguments: args,
        });
        return;
      }
      case Opcode.DELETE_QUEUE: {
        const requestId = r.u32('requestId');
        const flags = r.flags('flags', QueueDeleteFlag.IF_UNUSED | QueueDeleteFlag.IF_EMPTY);
        const name = r.shortstr('name');
        r.done();
        d.processDeleteQueue({
          requestId,
          name,
          ifUnused: (flags & QueueDeleteFlag.IF_UNUSED) !== 0,
          ifEmpty: (flags & QueueDeleteFlag.IF_EMPTY) !== 0,
        });
        return;
      }
      case Opcode.PURGE_QUEUE: {
        const requestId = r.u32('requestId');
        r.flags('flags', 0);
        const name = r.shortstr('name');
        r.done();
        d.processPurgeQueue({ requestId, name });
        return;
      }
      case Opcode.BIND_QUEUE:
      case Opcode.UNBIND_QUEUE: {
        const requestId = r.u32('requestId');
        r.flags('flags', 0);
        const queue = r.shortstr('queue');
        const exchange = r.shortstr('exchange');
        const routingKey = r.shortstr('routingKey');
        const ev = { requestId, queue, exchange, routingKey, arguments: this.#arguments(r) };
        if (op === Opcode.BIND_QUEUE) d.processBindQueue(ev);
        else d.processUnbindQueue(ev);
        return;
      }
      case Opcode.BIND_EXCHANGE:
      case Opcode.UNBIND_EXCHANGE: {
        const requestId = r.u32('requestId');
        r.flags('flags', 0);
        const destination = r.shortstr('destination');
        const source = r.shortstr('source');
        const routingKey = r.shortstr('routingKey');
        const ev = { requestId, destination, source, routingKey, arguments: this.#arguments(r) };
        if (op === Opcode.BIND_EXCHANGE) d.processBindExchange(ev);
        else d.processUnbindExchange(ev);
        return;
      }
      default:
        // The opcode table admitted it, so it must have a case: a table/switch mismatch is a bug.
        r.fail(ErrorCode.badFrame, 'op', `no decoder for opcode ${opcodeName(op)}`);
    }
  }

  #decodeServerOp(op: number, r: FieldReader, d: BinaryClientDispatcher): void {
    switch (op) {
      case Opcode.DELIVER: {
        const subscriptionId = r.u32('subscriptionId');
        const tag = r.u64('tag');
        const flags = r.flags('flags', DeliverFlag.PROPERTIES | DeliverFlag.REDELIVERED | DeliverFlag.STREAM);
        const exchange = readCached(this.#exchanges, r, r.u8('exchange'), 'exchange');
        const routingKey = readCached(this.#routingKeys, r, r.u8('routingKey'), 'routingKey');
        const properties = flags & DeliverFlag.PROPERTIES ? this.#properties(r) : null;
        const payload = r.view(r.remaining, 'payload');
        d.processDeliver({
          subscriptionId,
          stream: (flags & DeliverFlag.STREAM) !== 0,
          tag,
          redelivered: (flags & DeliverFlag.REDELIVERED) !== 0,
          exchange,
          routingKey,
          properties,
          payload,
        });
        return;
      }
      case Opcode.CONFIRM: {
        const flags = r.flags('flags', ConfirmFlag.MULTIPLE | ConfirmFlag.NACK);
        d.processConfirm({
          seq: r.u64('seq'),
          multiple: (flags & ConfirmFlag.MULTIPLE) !== 0,
          nack: (flags & ConfirmFlag.NACK) !== 0,
        });
        return;
      }
      case Opcode.OK: {
        const requestId = r.u32('requestId');
        const forOp = r.u8('op');
        const messageCount = r.u32('messageCount');
        const consumerCount = r.u32('consumerCount');
        const name = r.shortstr('name');
        r.done();
        d.processOk({ requestId, op: forOp, name, messageCount, consumerCount });
        return;
      }
      case Opcode.ERROR:
      case Opcode.CANCEL: {
        const id = r.u32(op === Opcode.ERROR ? 'requestId' : 'subscriptionId');
        const code = r.shortstr('code');
        const message = r.str16('message', 0xffff);
        r.done();
        if (op === Opcode.ERROR) d.processError({ requestId: id, code, message });
        else d.processCancel({ subscriptionId: id, code, message });
        return;
      }
      case Opcode.CREDIT: {
        const messages = r.u32('messages');
        const bytes = r.u32('bytes');
        d.processCredit({ messages, bytes });
        return;
      }
      case Opcode.STREAM: {
        const subscriptionId = r.u32('subscriptionId');
        d.processStream({ subscriptionId, streamId: r.u32('streamId') });
        return;
      }
      case Opcode.DROPPED: {
        const subscriptionId = r.u32('subscriptionId');
        const count = r.u64('count');
        const destination = this.#destination(r);
        r.done();
        d.processDropped({ subscriptionId, count, destination });
        return;
      }
      default:
        r.fail(ErrorCode.badFrame, 'op', `no decoder for opcode ${opcodeName(op)}`);
    }
  }

  #destination(r: FieldReader): string {
    const n = r.u16('destination');
    if (n > this.#maxDestination) {
      r.fail(ErrorCode.tooLarge, 'destination', `destination of ${n} bytes is over the limit of ${this.#maxDestination}`, r.pos - 2);
    }
    return readCached(this.#destinations, r, n, 'destination');
  }

  /** `[u32 length][block]` → a view of the block, checked unless validateProperties is off. */
  #properties(r: FieldReader): Uint8Array {
    const n = r.u32('properties');
    r.need(n, 'properties');
    const start = r.pos;
    const stop = start + n;
    if (this.#validateProperties) {
      const end = r.end;
      r.end = stop;
      readProperties(r, this.#limits, false, true);
      r.end = end;
    }
    r.pos = stop;
    return r.bytes.subarray(start, stop);
  }

  /** Arguments table, the last field of management ops. */
  #arguments(r: FieldReader): HeaderTable {
    r.entriesLeft = this.#limits.maxHeaderEntries;
    const table = readTable(r, this.#limits, 1, true, 'arguments');
    r.done();
    return table;
  }
}

/**
 * Decodes one whole WebSocket message with a throwaway decoder. A connection should keep its own
 * BinaryDecoder and call its decodeFrame instead (limits set once, string caches kept warm).
 */
export function decodeFrame(
  message: Uint8Array,
  dispatcher: BinaryDispatcher,
  direction?: typeof Direction.toServer,
  options?: DecoderOptions,
): void;
export function decodeFrame(
  message: Uint8Array,
  dispatcher: BinaryClientDispatcher,
  direction: typeof Direction.toClient,
  options?: DecoderOptions,
): void;
export function decodeFrame(
  message: Uint8Array,
  dispatcher: BinaryDispatcher | BinaryClientDispatcher,
  direction: Direction = Direction.toServer,
  options?: DecoderOptions,
): void {
  const decoder =
    direction === Direction.toClient
      ? new BinaryDecoder(Direction.toClient, dispatcher as BinaryClientDispatcher, options)
      : new BinaryDecoder(Direction.toServer, dispatcher as BinaryDispatcher, options);
  decoder.decodeFrame(message);
}

function option(options: DecoderOptions, key: keyof DecoderOptions, def: number, min: number, max: number): number {
  const v = options[key];
  if (v === undefined) return def;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new RangeError(`options.${key} must be an integer from ${min} to ${max} (got ${String(v)})`);
  }
  return v;
}
