/**
 * Writes a long answer as it is made: the parts come from an (async) iterable, and whenever the
 * main thread has spent `budgetMs` on them the text so far goes to the socket (chunked transfer
 * encoding) and the event loop runs before the next part, paced by the front's WorkPacer
 * (--management-share); a socket that is backed up is waited for. So no turn of the main thread
 * makes more than a budget's worth of a /v1/stats or /metrics answer, and the answer is never
 * copied into uWS in one piece (a 350 KB res.end of one string was a 3 ms turn).
 */
import type { HttpResponse } from 'uWebSockets.js';
import type { ResponseState } from './http-util.js';
import type { WorkPacer } from './work-pacer.js';

export async function streamAnswer(
  res: HttpResponse,
  state: ResponseState,
  contentType: string,
  parts: Iterable<string> | AsyncIterable<string>,
  pacer: WorkPacer,
  budgetMs = 1,
): Promise<void> {
  if (state.aborted) return;
  res.cork(() => {
    res.writeStatus('200 OK');
    res.writeHeader('content-type', contentType);
  });
  let pending = '';
  let turnStarted = performance.now();
  try {
    for await (const part of parts) {
      if (state.aborted) return;
      pending += part;
      const spent = performance.now() - turnStarted;
      if (spent < budgetMs) continue;
      const text = pending;
      pending = '';
      let ok = true;
      res.cork(() => {
        ok = res.write(text);
      });
      await pacer.rest(spent);
      if (!ok && !state.aborted) await writable(res, state);
      if (state.aborted) return;
      turnStarted = performance.now();
    }
  } catch (err) {
    // Headers are out: the client learns of the failure by the connection closing mid-answer.
    if (!state.aborted) res.close();
    throw err;
  }
  if (state.aborted) return;
  const last = pending;
  res.cork(() => res.end(last));
}

/** Until uWS has room again or the client went away (onWritable never fires for an aborted response). */
async function writable(res: HttpResponse, state: ResponseState): Promise<void> {
  await new Promise<void>((resolve) => {
    state.onAbort = resolve;
    res.onWritable(() => {
      resolve();
      return true;
    });
  });
  state.onAbort = undefined;
}
