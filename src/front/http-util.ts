import type { HttpResponse } from 'uWebSockets.js';

const STATUS_TEXT: Record<number, string> = {
  200: '200 OK',
  201: '201 Created',
  400: '400 Bad Request',
  401: '401 Unauthorized',
  403: '403 Forbidden',
  404: '404 Not Found',
  405: '405 Method Not Allowed',
  409: '409 Conflict',
  413: '413 Payload Too Large',
  415: '415 Unsupported Media Type',
  500: '500 Internal Server Error',
  503: '503 Service Unavailable',
  507: '507 Insufficient Storage',
};

/** Tracks whether the client went away, which uWS requires for every async response. */
export interface ResponseState {
  aborted: boolean;
}

export function watchAbort(res: HttpResponse): ResponseState {
  const state: ResponseState = { aborted: false };
  res.onAborted(() => {
    state.aborted = true;
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

export function sendText(res: HttpResponse, status: number, contentType: string, text: string, state?: ResponseState): void {
  if (state?.aborted) return;
  res.cork(() => {
    res.writeStatus(STATUS_TEXT[status] ?? String(status));
    res.writeHeader('content-type', contentType);
    res.end(text);
  });
}
