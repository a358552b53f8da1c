/**
 * Piscina task (runs in the offload pool, never on the main thread): inflates a
 * gzip/deflate telemetry batch with its output capped, and for NDJSON splits it into
 * line ranges, so the main thread only copies ranges into rings.
 */
import { gunzipSync, inflateSync } from 'node:zlib';
import { forEachLine } from '../protocol/ndjson.js';

export interface InflateTask {
  readonly encoding: 'gzip' | 'deflate';
  readonly body: Uint8Array;
  readonly maxOutputBytes: number;
  readonly ndjson: boolean;
  readonly maxLines: number;
}

export type InflateResult =
  | {
      readonly ok: true;
      readonly data: Uint8Array /** [start, end) pairs, one per non-empty line; empty when not NDJSON */;
      readonly lines: Uint32Array;
    }
  | { readonly ok: false; readonly code: 'too_large' | 'bad_request'; readonly message: string };

export default function inflate(task: InflateTask): InflateResult {
  let data: Buffer;
  try {
    const opts = { maxOutputLength: task.maxOutputBytes };
    data = task.encoding === 'gzip' ? gunzipSync(task.body, opts) : inflateSync(task.body, opts);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
      return { ok: false, code: 'too_large', message: `decompressed body exceeds max-body-bytes ${task.maxOutputBytes}` };
    }
    return { ok: false, code: 'bad_request', message: `body is not valid ${task.encoding}: ${(err as Error).message}` };
  }
  if (!task.ndjson) return { ok: true, data, lines: new Uint32Array(0) };
  const ranges: number[] = [];
  let tooMany = false;
  forEachLine(data, (start, end) => {
    if (ranges.length / 2 >= task.maxLines) tooMany = true;
    else ranges.push(start, end);
  });
  if (tooMany) return { ok: false, code: 'too_large', message: `batch has more than max-batch-lines ${task.maxLines} lines` };
  return { ok: true, data, lines: Uint32Array.from(ranges) };
}
