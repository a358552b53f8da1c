import { describe, expect, it } from 'vitest';
import { QueueArgumentError } from '../../src/queue/queue-arguments.js';
import {
  DEFAULT_STREAM_SEGMENT_BYTES,
  parseAge,
  parseStreamArguments,
  queueTypeOf,
  refuseStreamArguments,
} from '../../src/stream/stream-arguments.js';

describe('stream arguments', () => {
  it('parses x-max-age in RabbitMQ units', () => {
    expect(parseAge('7D')).toBe(7 * 86_400_000);
    expect(parseAge('1h')).toBe(3_600_000);
    expect(parseAge('30m')).toBe(1_800_000);
    expect(parseAge('10s')).toBe(10_000);
    expect(parseAge('1M')).toBe(30 * 86_400_000);
    expect(parseAge('2Y')).toBe(2 * 365 * 86_400_000);
    for (const bad of ['0s', '1d', 'h', '1.5h', '-1h', '', '1 h']) expect(parseAge(bad)).toBeNull();
  });

  it('takes the retention and segment arguments', () => {
    expect(parseStreamArguments({ 'x-queue-type': 'stream' }, 'q')).toEqual({ segmentBytes: DEFAULT_STREAM_SEGMENT_BYTES });
    expect(
      parseStreamArguments({ 'x-max-length-bytes': 1_000_000, 'x-max-age': '1h', 'x-stream-max-segment-size-bytes': 65536 }, 'q'),
    ).toEqual({
      maxBytes: 1_000_000,
      maxAgeMs: 3_600_000,
      segmentBytes: 65536,
    });
  });

  it('refuses classic-queue arguments on a stream, bad values, and stream arguments on a classic queue, in RabbitMQ form', () => {
    expect(() => parseStreamArguments({ 'x-message-ttl': 1000 }, 'metrics')).toThrow(
      "invalid arg 'x-message-ttl' for queue 'metrics': not allowed on a stream",
    );
    expect(() => parseStreamArguments({ 'x-max-age': '7d' }, 'q')).toThrow(/invalid_max_age/);
    expect(() => parseStreamArguments({ 'x-max-length-bytes': -1 }, 'q')).toThrow(/value_negative/);
    expect(() => parseStreamArguments({ 'x-stream-max-segment-size-bytes': 0 }, 'q')).toThrow(/value_zero/);
    expect(() => parseStreamArguments({ 'x-max-length-bytes': '10' }, 'q')).toThrow(/unacceptable_type/);
    expect(() => refuseStreamArguments({ 'x-max-age': '1h' }, 'q')).toThrow(/not allowed on a classic queue/);
    expect(() => refuseStreamArguments({ 'x-max-length-bytes': 10 }, 'q')).not.toThrow();
    try {
      parseStreamArguments({ 'x-max-priority': 5 }, 'q');
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(QueueArgumentError);
      expect((err as QueueArgumentError).code).toBe('precondition_failed');
    }
  });

  it('knows the queue types', () => {
    expect(queueTypeOf({}, 'q')).toBe('classic');
    expect(queueTypeOf({ 'x-queue-type': 'classic' }, 'q')).toBe('classic');
    expect(queueTypeOf({ 'x-queue-type': 'stream' }, 'q')).toBe('stream');
    expect(() => queueTypeOf({ 'x-queue-type': 'quorum' }, 'q')).toThrow(/unsupported_queue_type/);
    expect(() => queueTypeOf({ 'x-queue-type': 'lazy' }, 'q')).toThrow(/expected "classic" or "stream"/);
  });
});
