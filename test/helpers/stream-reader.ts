/** Reading a stream log to its readable end the way a reader does, waiting for the chunks a log on disk fetches. */
import type { ReplayLog } from '../../src/stream/stream-log.js';
import { StreamCursor } from '../../src/stream/stream-log.js';

export interface ReadAllOptions {
  /** Entries asked for by the i-th read (97 by default). */
  readonly batch?: (i: number) => number;
  /** Bytes asked for by each read (64 KiB by default). */
  readonly maxBytes?: number;
}

/** Every entry from `from` to the readable end as [offset, a copy of its bytes] (the read buffer is reused), and the skip count. */
export async function readAll(
  log: ReplayLog,
  from: number,
  options: ReadAllOptions = {},
): Promise<{ got: Array<[number, Uint8Array]>; skipped: number }> {
  const batch = options.batch ?? (() => 97);
  const maxBytes = options.maxBytes ?? 64 * 1024;
  const cursor = new StreamCursor(from);
  const got: Array<[number, Uint8Array]> = [];
  for (let i = 0; cursor.next < log.readableEnd && i < 1_000_000; i++) {
    const woke = new Promise<void>((r) => {
      cursor.wake = r;
    });
    const n = log.read(cursor, batch(i), maxBytes, (off, _ts, bytes, start, end) => {
      got.push([off, new Uint8Array(bytes.subarray(start, end))]);
      return true;
    });
    if (n === 0) await woke;
  }
  return { got, skipped: cursor.skipped };
}
