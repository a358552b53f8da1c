/**
 * Where a stream consumer starts: the `x-stream-offset` consumer argument, as RabbitMQ streams
 * take it, plus `stored` (resume from the offset a named consumer committed).
 *
 * Accepted values:
 * - `"first"`, `"last"` (the newest message), `"next"` (only what comes after subscribing), `"stored"`;
 * - an offset: a non-negative integer (number, bigint or a string of digits);
 * - a time: an ISO-8601 string (`"2026-12-06T21:00:00Z"`), `{"timestamp": <epoch ms or ISO-8601>}`,
 *   or an interval back from now as RabbitMQ (`"10m"`, `"1h"`, `"7D"`: units Y M D h m s).
 * Anything else is refused with a message that says what is accepted (precondition_failed).
 */
import { parseAge } from './stream-arguments.js';

export type StreamOffsetSpec =
  | { readonly kind: 'first' | 'last' | 'next' | 'stored' }
  | { readonly kind: 'offset'; readonly offset: number }
  | { readonly kind: 'timestamp'; readonly ms: number };

export class StreamOffsetError extends Error {
  override readonly name = 'StreamOffsetError';
  readonly code = 'precondition_failed' as const;
}

const ACCEPTED =
  'expected "first", "last", "next", "stored", a non-negative integer offset, an ISO-8601 time, {"timestamp": epoch ms}, or an interval such as "10m"';

function refuse(value: unknown, why: string): never {
  let shown: string;
  try {
    shown = typeof value === 'bigint' ? String(value) : (JSON.stringify(value) ?? String(value));
  } catch {
    shown = String(value);
  }
  throw new StreamOffsetError(`invalid x-stream-offset ${shown}: ${why}; ${ACCEPTED}`);
}

function timeOf(value: unknown, original: unknown): number {
  if (typeof value === 'number' && Number.isFinite(value) && value >= 0) return value;
  if (typeof value === 'string' && /^\d{4}-\d{2}-\d{2}/.test(value)) {
    const ms = Date.parse(value);
    if (Number.isFinite(ms)) return ms;
  }
  return refuse(original, 'not a time');
}

/** Parses an x-stream-offset value; `now` (epoch ms) anchors intervals. Absent means "next", as RabbitMQ. */
export function parseStreamOffset(value: unknown, now: number): StreamOffsetSpec {
  if (value === undefined || value === null) return { kind: 'next' };
  if (typeof value === 'bigint') {
    if (value < 0n) refuse(value, 'an offset cannot be negative');
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) refuse(value, 'offset too large');
    return { kind: 'offset', offset: Number(value) };
  }
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) refuse(value, 'an offset is an integer');
    if (value < 0) refuse(value, 'an offset cannot be negative');
    if (!Number.isSafeInteger(value)) refuse(value, 'offset too large');
    return { kind: 'offset', offset: value };
  }
  if (typeof value === 'string') {
    if (value === 'first' || value === 'last' || value === 'next' || value === 'stored') return { kind: value };
    if (/^\d+$/.test(value)) return parseStreamOffset(Number(value), now);
    if (/^-\d+$/.test(value)) refuse(value, 'an offset cannot be negative');
    const interval = parseAge(value);
    if (interval !== null) return { kind: 'timestamp', ms: now - interval };
    return { kind: 'timestamp', ms: timeOf(value, value) };
  }
  if (typeof value === 'object' && !Array.isArray(value) && Object.keys(value).length === 1 && 'timestamp' in value) {
    return { kind: 'timestamp', ms: timeOf((value as { timestamp: unknown }).timestamp, value) };
  }
  return refuse(value, 'unknown offset spec');
}

/** What resolveStart needs of a log. */
export interface OffsetRange {
  readonly firstOffset: number;
  readonly nextOffset: number;
  offsetAtTime(ms: number): number;
}

/**
 * The first offset a consumer reads, for `spec` on `log`. `stored` is the last offset the named
 * consumer committed (it resumes right after it), undefined when it committed none. An offset below
 * the first one held is kept as asked: the reader is then moved up to the first and told how many
 * it missed (StreamCursor.skipped), never silently. Refused: an offset past the end of the stream,
 * and `stored` with nothing stored.
 */
export function resolveStart(spec: StreamOffsetSpec, log: OffsetRange, stored: number | undefined): number {
  switch (spec.kind) {
    case 'first':
      return log.firstOffset;
    case 'last':
      return log.nextOffset > log.firstOffset ? log.nextOffset - 1 : log.nextOffset;
    case 'next':
      return log.nextOffset;
    case 'timestamp':
      return log.offsetAtTime(spec.ms);
    case 'offset':
      if (spec.offset > log.nextOffset) {
        throw new StreamOffsetError(`invalid x-stream-offset ${spec.offset}: past the end of the stream (next offset ${log.nextOffset})`);
      }
      return spec.offset;
    case 'stored':
      if (stored === undefined)
        throw new StreamOffsetError(
          'x-stream-offset "stored": this consumer has no stored offset (commit one first, or start from "first")',
        );
      return Math.min(stored + 1, log.nextOffset);
  }
}
