import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import { BrokerError, ErrorCode } from '../protocol/errors.js';
import type { RefusalLog } from './refusal-log.js';

const STATUS_TEXT: Record<number, string> = {
  200: '200 OK',
  201: '201 Created',
  400: '400 Bad Request',
  401: '401 Unauthorized',
  403: '403 Forbidden',
  404: '404 Not Found',
  405: '405 Method Not Allowed',
  406: '406 Not Acceptable',
  409: '409 Conflict',
  411: '411 Length Required',
  413: '413 Payload Too Large',
  415: '415 Unsupported Media Type',
  429: '429 Too Many Requests',
  431: '431 Request Header Fields Too Large',
  500: '500 Internal Server Error',
  503: '503 Service Unavailable',
  507: '507 Insufficient Storage',
};

/** Tracks whether the client went away, which uWS requires for every async response. */
export interface ResponseState {
  aborted: boolean;
  /** Called when the client goes away, by watchAbort: set by whoever waits on the response meanwhile. */
  onAbort?: () => void;
}

export function watchAbort(res: HttpResponse): ResponseState {
  const state: ResponseState = { aborted: false };
  res.onAborted(() => {
    state.aborted = true;
    state.onAbort?.();
  });
  return state;
}

/** Writes a JSON answer in one corked write (required outside the request callback). */
export function sendJson(
  res: HttpResponse,
  status: number,
  body: unknown,
  state?: ResponseState,
  headers?: Readonly<Record<string, string>>,
): void {
  if (state?.aborted) return;
  const text = JSON.stringify(body);
  res.cork(() => {
    res.writeStatus(STATUS_TEXT[status] ?? String(status));
    res.writeHeader('content-type', 'application/json');
    if (headers) for (const k in headers) res.writeHeader(k, headers[k]);
    res.end(text);
  });
}

/**
 * Answers a refusal with its status and `{"error","message"}` body; anything that is not a
 * BrokerError is a bug, answered 500 without its details. 503 carries Retry-After.
 */
export function sendError(res: HttpResponse, err: unknown, state?: ResponseState, refusals?: RefusalLog): void {
  const e = err instanceof BrokerError ? err : new BrokerError(ErrorCode.internal, 'internal error; see the broker log');
  sendRefusal(res, refusals, e.status, { error: e.code, message: e.message }, state, e.status === 503 ? RETRY_AFTER : undefined);
}

/** Answers a refusal (status ≥ 400) with its JSON body, noting it in `refusals` (one warn line per client and code per interval). */
export function sendRefusal(
  res: HttpResponse,
  refusals: RefusalLog | undefined,
  status: number,
  body: { readonly error: string; readonly message: string; readonly [key: string]: unknown },
  state?: ResponseState,
  headers?: Readonly<Record<string, string>>,
): void {
  if (state?.aborted) return;
  refusals?.note(clientAddress(res), status, body.error, body.message);
  sendJson(res, status, body, state, headers);
}

/** The peer's address as text (valid until the response ends or is aborted). */
export function clientAddress(res: HttpResponse): string {
  return Buffer.from(res.getRemoteAddressAsText()).toString();
}

/** Seconds a saturated client is told to wait before retrying. */
export const RETRY_AFTER_SECONDS = '1';
const RETRY_AFTER: Readonly<Record<string, string>> = { 'retry-after': RETRY_AFTER_SECONDS };

export function sendText(res: HttpResponse, status: number, contentType: string, text: string, state?: ResponseState): void {
  if (state?.aborted) return;
  res.cork(() => {
    res.writeStatus(STATUS_TEXT[status] ?? String(status));
    res.writeHeader('content-type', contentType);
    res.end(text);
  });
}

/**
 * The most header bytes (names and values) a request may carry: uWebSockets.js's own limit, which
 * it enforces only when the header section arrives in more than one read (it then closes the
 * socket); one that arrives whole reaches us, and gets 431 here, so the limit does not depend on
 * how the client's packets fell.
 */
export const MAX_HEADER_BYTES = 4096;

/** Why a request's framing is refused: the status and error body to answer with. */
export interface FramingProblem {
  readonly status: number;
  readonly error: ErrorCode;
  readonly message: string;
}

/**
 * Checks what uWebSockets.js lets through about a request's framing (RFC 9112 §6): it frames the
 * body by the first Content-Length and ignores a second one, so two of them (3 and 5) would read a
 * different body than a proxy in front that used the other, which is how requests are smuggled.
 * Refused: duplicate Content-Length or Transfer-Encoding, Content-Length with Transfer-Encoding,
 * any transfer coding but `chunked`, header sections over {@link MAX_HEADER_BYTES}, and, where the
 * route needs a body (`needsLength`), neither Content-Length nor Transfer-Encoding (411).
 * One pass over the headers, which `visit` shares (the publish route reads message properties in it):
 * measured no slower than none under autocannon (pipelining 10).
 * Reads `req`, so it must run in the request callback.
 */
export function checkFraming(req: HttpRequest, needsLength: boolean, visit?: (name: string, value: string) => void): FramingProblem | null {
  let lengths = 0;
  let codings = 0;
  let coding = '';
  let bytes = 0;
  req.forEach((name, value) => {
    visit?.(name, value);
    bytes += name.length + value.length + 4;
    if (name === 'content-length') lengths++;
    else if (name === 'transfer-encoding') {
      codings++;
      coding = value;
    }
  });
  if (bytes > MAX_HEADER_BYTES) {
    return { status: 431, error: ErrorCode.headersTooLarge, message: `request headers of ${bytes} bytes exceed ${MAX_HEADER_BYTES}` };
  }
  if (lengths > 1) return { status: 400, error: ErrorCode.badRequest, message: 'more than one content-length header' };
  if (codings > 1) return { status: 400, error: ErrorCode.badRequest, message: 'more than one transfer-encoding header' };
  if (lengths > 0 && codings > 0)
    return { status: 400, error: ErrorCode.badRequest, message: 'content-length together with transfer-encoding' };
  if (codings > 0 && coding.trim().toLowerCase() !== 'chunked') {
    return {
      status: 400,
      error: ErrorCode.badRequest,
      message: `transfer-encoding ${JSON.stringify(coding)} is not supported (chunked only)`,
    };
  }
  if (needsLength && lengths === 0 && codings === 0) {
    return { status: 411, error: ErrorCode.lengthRequired, message: 'a publish needs content-length or transfer-encoding: chunked' };
  }
  return null;
}

/** Answers a framing problem with its status and JSON body, noted in `refusals` like every refusal. */
export function refuseFraming(res: HttpResponse, problem: FramingProblem, refusals: RefusalLog, state?: ResponseState): void {
  // The body may not be framed as the client meant: do not read it, close after the answer.
  sendRefusal(res, refusals, problem.status, { error: problem.error, message: problem.message }, state, { connection: 'close' });
}
