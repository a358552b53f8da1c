/**
 * Splits an NDJSON batch body into message ranges without copying: each non-empty
 * line is one message (a trailing `\r` is dropped, so CRLF bodies work).
 * Lines are not parsed as JSON: the broker carries bytes; NDJSON is the framing.
 */
export function forEachLine(body: Uint8Array, onLine: (start: number, end: number) => void): number {
  let start = 0;
  let count = 0;
  const n = body.byteLength;
  while (start < n) {
    let nl = body.indexOf(0x0a, start);
    if (nl < 0) nl = n;
    let end = nl;
    if (end > start && body[end - 1] === 0x0d) end--;
    if (end > start) {
      onLine(start, end);
      count++;
    }
    start = nl + 1;
  }
  return count;
}
