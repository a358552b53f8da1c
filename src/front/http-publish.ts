/**
 * POST /v1/publish/<destination>: one message per body, or one per line with
 * `Content-Type: application/x-ndjson`; gzip/deflate bodies accepted. Answers
 * `200 {"accepted":N}` once every shard that took a message confirmed it.
 */
import type { VhostScope } from '../protocol/vhost-name.js';
import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import type { BrokerContext } from './context.js';
import { parseDestination, DestinationError, type Destination } from '../protocol/destination.js';
import { authorize } from './http-auth.js';
import { confirmRefusal } from '../control/confirm-tracker.js';
import { forEachLine } from '../protocol/ndjson.js';
import { ConfirmStatus, HTTP_CONNECTION, NO_TOKEN } from '../protocol/ring-record-codec.js';
import { BrokerError, ErrorCode, HTTP_STATUS } from '../protocol/errors.js';
import type { MessageProperties } from '../protocol/properties.js';
import { checkExpiration, deliveryModeFromText, encodeCheckedProperties, priorityFromText } from '../protocol/property-rules.js';
import type { PublishTarget } from '../control/publish-path.js';
import {
  checkFraming,
  refuseFraming,
  RETRY_AFTER_SECONDS,
  sendError,
  sendJson,
  sendRefusal,
  watchAbort,
  type ResponseState,
} from './http-util.js';

const PREFIX = '/v1/publish/';

interface PublishRequest {
  readonly destination: Destination;
  /** The vhost its names are in (the principal's). */
  readonly vhost: VhostScope;
  readonly ndjson: boolean;
  readonly encoding: 'identity' | 'gzip' | 'deflate';
}

export function registerHttpPublish(app: TemplatedApp, ctx: BrokerContext): void {
  ctx.routes.note('POST', '/v1/publish/*');
  app.post('/v1/publish/*', (res, req) => handlePublish(res, req, ctx));
}

function handlePublish(res: HttpResponse, req: HttpRequest, ctx: BrokerContext): void {
  const state = watchAbort(res);
  // uWS's req lives only during this callback: read every header now.
  const url = req.getUrl();
  const headerProperties = new HeaderProperties();
  const framing = checkFraming(req, true, headerProperties.visit);
  if (framing !== null) {
    refuseFraming(res, framing, ctx.refusals, state);
    return;
  }
  const contentType = req.getHeader('content-type');
  const contentEncoding = req.getHeader('content-encoding').toLowerCase();
  const contentLength = req.getHeader('content-length');
  const { maxBodyBytes } = ctx.config;
  const principal = authorize(res, req, ctx, 'any');
  if (principal === null) return;
  let properties: Uint8Array | null;
  try {
    properties = headerProperties.encode();
  } catch (err) {
    sendError(res, err instanceof BrokerError ? err : new BrokerError(ErrorCode.badRequest, (err as Error).message), state, ctx.refusals);
    return;
  }

  let request: PublishRequest;
  try {
    request = parseRequest(url, contentType, contentEncoding, principal.vhost);
  } catch (err) {
    const code =
      err instanceof UnsupportedEncoding
        ? ErrorCode.unsupportedMediaType
        : err instanceof DestinationError
          ? ErrorCode.badDestination
          : ErrorCode.badRequest;
    sendRefusal(res, ctx.refusals, HTTP_STATUS[code] ?? 400, { error: code, message: (err as Error).message }, state);
    return;
  }
  try {
    ctx.publisher.authorize(request.destination, principal);
  } catch (err) {
    sendError(res, err, state, ctx.refusals);
    return;
  }
  const declared = contentLength === '' ? -1 : Number(contentLength);
  if (declared > maxBodyBytes) {
    sendRefusal(
      res,
      ctx.refusals,
      413,
      { error: ErrorCode.tooLarge, message: `body of ${declared} bytes exceeds max-body-bytes ${maxBodyBytes}` },
      state,
    );
    return;
  }

  // Collect the body. uWS neuters each chunk after its callback, so it is copied once here.
  let body = Buffer.allocUnsafe(declared > 0 ? declared : 0);
  let used = 0;
  let failed = false;
  res.onData((chunk, isLast) => {
    if (failed || state.aborted) return;
    const bytes = new Uint8Array(chunk);
    if (used + bytes.byteLength > maxBodyBytes) {
      failed = true;
      sendRefusal(res, ctx.refusals, 413, { error: ErrorCode.tooLarge, message: `body exceeds max-body-bytes ${maxBodyBytes}` }, state);
      return;
    }
    if (used + bytes.byteLength > body.byteLength) {
      const grown = Buffer.allocUnsafe(Math.max(used + bytes.byteLength, body.byteLength * 2, 4096));
      body.copy(grown, 0, 0, used);
      body = grown;
    }
    body.set(bytes, used);
    used += bytes.byteLength;
    if (isLast) void finish(res, state, ctx, request, properties, body.subarray(0, used));
  });
}

class UnsupportedEncoding extends Error {}

function parseRequest(url: string, contentType: string, encoding: string, vhost: VhostScope): PublishRequest {
  let path: string;
  try {
    path = decodeURIComponent(url.slice(PREFIX.length));
  } catch {
    throw new DestinationError(`destination is not valid percent-encoding: ${JSON.stringify(url)}`);
  }
  const destination = parseDestination(path, true);
  if (encoding !== '' && encoding !== 'identity' && encoding !== 'gzip' && encoding !== 'deflate') {
    throw new UnsupportedEncoding(`content-encoding ${JSON.stringify(encoding)} is not supported (gzip, deflate or none)`);
  }
  return {
    destination,
    vhost,
    ndjson: contentType.toLowerCase().startsWith('application/x-ndjson'),
    encoding: encoding === '' ? 'identity' : (encoding as 'identity' | 'gzip' | 'deflate'),
  };
}

async function finish(
  res: HttpResponse,
  state: ResponseState,
  ctx: BrokerContext,
  request: PublishRequest,
  properties: Uint8Array | null,
  raw: Buffer,
): Promise<void> {
  if (request.encoding === 'identity') {
    publishBody(res, state, ctx, request, properties, raw, null);
    return;
  }
  // Inflating and splitting a compressed batch is CPU work: it runs in the offload pool,
  // never on the main thread; the pool's queue is bounded, so a flood gets 503.
  const pending = ctx.inflate.run({
    encoding: request.encoding,
    body: raw,
    maxOutputBytes: ctx.config.maxBodyBytes,
    ndjson: request.ndjson,
    maxLines: ctx.config.maxBatchLines,
  });
  if (pending === null) {
    sendRefusal(
      res,
      ctx.refusals,
      503,
      { error: ErrorCode.saturated, message: 'too many compressed batches waiting to be inflated; retry later' },
      state,
      {
        'retry-after': RETRY_AFTER_SECONDS,
      },
    );
    return;
  }
  const result = await pending.catch((err: unknown) => ({
    ok: false as const,
    code: 'internal' as const,
    message: (err as Error).message,
  }));
  if (!result.ok) {
    const status = result.code === 'too_large' ? 413 : result.code === 'bad_request' ? 400 : 500;
    sendJson(
      res,
      status,
      {
        error: result.code === 'too_large' ? ErrorCode.tooLarge : result.code === 'bad_request' ? ErrorCode.badRequest : ErrorCode.internal,
        message: result.message,
      },
      state,
    );
    return;
  }
  publishBody(res, state, ctx, request, properties, result.data, request.ndjson ? result.lines : null);
}

/** Calls `onLine` per message: NDJSON lines (pre-split by the offload pool, or split here), or the whole body. */
function eachMessage(body: Uint8Array, ndjson: boolean, lines: Uint32Array | null, onLine: (start: number, end: number) => void): number {
  if (!ndjson) {
    onLine(0, body.byteLength);
    return 1;
  }
  if (lines === null) return forEachLine(body, onLine);
  for (let i = 0; i < lines.length; i += 2) onLine(lines[i], lines[i + 1]);
  return lines.length / 2;
}

function publishBody(
  res: HttpResponse,
  state: ResponseState,
  ctx: BrokerContext,
  request: PublishRequest,
  properties: Uint8Array | null,
  body: Uint8Array,
  lines: Uint32Array | null,
): void {
  const max = ctx.config.maxMessageBytes - (properties?.byteLength ?? 0);
  // Validate the whole batch before writing any of it, so a bad line rejects nothing half-way.
  let count = 0;
  let oversized = -1;
  if (request.ndjson) {
    count = eachMessage(body, true, lines, (start, end) => {
      if (end - start > max && oversized < 0) oversized = end - start;
    });
    if (count > ctx.config.maxBatchLines) {
      sendJson(
        res,
        413,
        { error: ErrorCode.tooLarge, message: `batch has ${count} lines, more than max-batch-lines ${ctx.config.maxBatchLines}` },
        state,
      );
      return;
    }
    if (count === 0) {
      sendRefusal(res, ctx.refusals, 400, { error: ErrorCode.badRequest, message: 'NDJSON body holds no non-empty line' }, state);
      return;
    }
  } else {
    count = 1;
    if (body.byteLength > max) oversized = body.byteLength;
  }
  if (oversized >= 0) {
    sendJson(
      res,
      413,
      {
        error: ErrorCode.tooLarge,
        message: `a message of ${oversized} bytes exceeds max-message-bytes ${ctx.config.maxMessageBytes} (properties included)`,
      },
      state,
    );
    return;
  }

  let target: PublishTarget;
  try {
    target = ctx.publisher.target(request.destination, request.vhost);
  } catch (err) {
    sendError(res, err, state, ctx.refusals);
    return;
  }

  // Every message of one request goes to one destination, hence the same shards. When the
  // shards must confirm (durable or refusing queues), the token rides on the last message:
  // a shard processes its ring in order, so its confirm covers the whole request.
  let token = NO_TOKEN;
  const progress = { written: 0, refused: false };
  if ((target.confirmFromShard && target.shards.length > 0) || target.remote !== undefined) {
    token = ctx.confirms.allocate(ctx.publisher.confirmShards(target), (status) => {
      if (progress.refused) return;
      if (status === ConfirmStatus.ok) accept(res, ctx, progress.written, state);
      else sendError(res, confirmRefusal(status, target.exchange), state, ctx.refusals);
    });
  }
  const batch: Batch = { ctx, target, token, properties, body, ranges: messageRanges(body, request.ndjson, lines, count), progress };
  const stoppedAt = writeSync(batch, 0);
  if (stoppedAt < 0) {
    // Without shard confirms the messages are held once they are in the rings (which outlive
    // a shard thread): answer now, saving a round trip per request.
    if (token === NO_TOKEN) accept(res, ctx, progress.written, state);
    return;
  }
  // A shard's ring and overflow are full. Wait (bounded) for it to drain and go on from the
  // shard that refused, so a legal batch on a broker that keeps up is accepted whole.
  void writeWaiting(batch, stoppedAt, Date.now() + ctx.config.publishWaitMs, state).then((done) => {
    if (done) {
      if (token === NO_TOKEN) accept(res, ctx, progress.written, state);
      return;
    }
    // Still full after the wait. The record carrying the token was never written everywhere:
    // drop the token and answer now. What was written is accepted and will be delivered; the
    // body says how many, so a client resends exactly the rest.
    progress.refused = true;
    if (token !== NO_TOKEN) ctx.confirms.fail(token, ConfirmStatus.rejected);
    const why = ctx.publisher.overMemory
      ? 'the broker is above its memory high-watermark (max-memory)'
      : 'a shard ring and its overflow stayed full';
    sendJson(
      res,
      503,
      {
        error: ErrorCode.saturated,
        message: `${why}; ${progress.written} of ${batch.ranges.length / 2} messages were accepted`,
        accepted: progress.written,
      },
      state,
      { 'retry-after': RETRY_AFTER_SECONDS },
    );
  });
}

/** One request's messages on their way into the rings. */
interface Batch {
  readonly ctx: BrokerContext;
  readonly target: PublishTarget;
  readonly token: number;
  readonly properties: Uint8Array | null;
  readonly body: Uint8Array;
  /** [start, end) of each message, in order. */
  readonly ranges: Uint32Array;
  readonly progress: { written: number; refused: boolean };
}

/** The [start, end) of every message of the body, in order. */
function messageRanges(body: Uint8Array, ndjson: boolean, lines: Uint32Array | null, count: number): Uint32Array {
  if (lines !== null && ndjson) return lines;
  const ranges = new Uint32Array(count * 2);
  let k = 0;
  eachMessage(body, ndjson, null, (start, end) => {
    ranges[k++] = start;
    ranges[k++] = end;
  });
  return ranges;
}

/**
 * Writes messages from `progress.written` on, the first one from shard position `fromShard`.
 * Returns -1 when all are written, else the shard position that refused the next message.
 */
function writeSync(b: Batch, fromShard: number): number {
  const { ctx, target, ranges, progress } = b;
  const count = ranges.length / 2;
  let shard = fromShard;
  while (progress.written < count) {
    const m = progress.written;
    const t = m + 1 === count ? b.token : NO_TOKEN;
    const n = ctx.publisher.write(target, HTTP_CONNECTION, t, b.properties, b.body.subarray(ranges[2 * m], ranges[2 * m + 1]), 0, shard);
    if (n < target.shards.length) return n;
    progress.written++;
    shard = 0;
  }
  return -1;
}

/** Waits for room at the refusing shard and goes on, until done (true) or the deadline (false). */
async function writeWaiting(b: Batch, stoppedAt: number, deadline: number, state: ResponseState): Promise<boolean> {
  let at = stoppedAt;
  for (;;) {
    const left = deadline - Date.now();
    if (state.aborted || !(await b.ctx.publisher.waitForRoom(b.target, at, left))) return false;
    at = writeSync(b, at);
    if (at < 0) return true;
  }
}

/**
 * AMQP properties carried in HTTP headers: content-type, x-priority, x-expiration,
 * x-message-id, x-correlation-id, x-reply-to, x-type, x-app-id, x-delivery-mode,
 * and x-header-<name> for AMQP headers, gathered in the framing check's one walk over the headers.
 */
class HeaderProperties {
  readonly #p: MessageProperties = {};
  #any = false;
  #headers: Record<string, string> | undefined;
  /** The first invalid value met; reported by encode(), after the framing check had its say. */
  #error: unknown = null;

  /** Takes one header of the request's single header walk (checkFraming's). */
  readonly visit = (name: string, value: string): void => {
    if (this.#error !== null) return;
    try {
      this.#take(name, value);
    } catch (err) {
      this.#error = err;
    }
  };

  /** The encoded block, null when the request carries no property; throws the first invalid value. */
  encode(): Uint8Array | null {
    if (this.#error !== null) throw this.#error;
    if (!this.#any) return null;
    if (this.#headers !== undefined) this.#p.headers = this.#headers;
    return encodeCheckedProperties(this.#p);
  }

  #take(name: string, value: string): void {
    const p = this.#p;
    switch (name) {
      case 'content-type':
        if (value.toLowerCase().startsWith('application/x-ndjson')) return;
        p.contentType = value;
        break;
      case 'x-priority':
        p.priority = priorityFromText(value);
        break;
      case 'x-expiration':
        checkExpiration(value);
        p.expiration = value;
        break;
      case 'x-delivery-mode':
        p.deliveryMode = deliveryModeFromText(value);
        break;
      case 'x-message-id':
        p.messageId = value;
        break;
      case 'x-correlation-id':
        p.correlationId = value;
        break;
      case 'x-reply-to':
        p.replyTo = value;
        break;
      case 'x-type':
        p.type = value;
        break;
      case 'x-app-id':
        p.appId = value;
        break;
      default:
        if (!name.startsWith('x-header-') || name.length <= 9) return;
        this.#headers ??= {};
        this.#headers[name.slice(9)] = value;
    }
    this.#any = true;
  }
}

/** 200 `{"accepted":N}`: the HTTP publisher's confirm of its N messages. */
function accept(res: HttpResponse, ctx: BrokerContext, accepted: number, state: ResponseState): void {
  ctx.publisher.confirmed += accepted;
  sendJson(res, 200, { accepted }, state);
}
