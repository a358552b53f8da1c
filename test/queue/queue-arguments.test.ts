import { describe, expect, it } from 'vitest';
import {
  MAX_EXPIRY_MS,
  NO_QUEUE_ARGUMENTS,
  QueueArgumentError,
  parseExpiration,
  parseQueueArguments,
} from '../../src/queue/queue-arguments.js';

function refusal(args: Record<string, unknown>, name = 'q'): QueueArgumentError {
  try {
    parseQueueArguments(args, name);
  } catch (error) {
    expect(error).toBeInstanceOf(QueueArgumentError);
    return error as QueueArgumentError;
  }
  throw new Error(`expected ${JSON.stringify(args)} to be refused`);
}

describe('queue arguments', () => {
  it('queue arguments - no arguments parse to the defaults (drop-head, nothing else)', () => {
    expect(parseQueueArguments({})).toEqual({ overflow: 'drop-head' });
    expect(NO_QUEUE_ARGUMENTS).toEqual({ overflow: 'drop-head' });
  });

  it('queue arguments - every supported argument is parsed into a field', () => {
    const parsed = parseQueueArguments({
      'x-message-ttl': 0,
      'x-expires': 1,
      'x-max-length': 0,
      'x-max-length-bytes': 1024,
      'x-overflow': 'reject-publish-dlx',
      'x-dead-letter-exchange': '',
      'x-dead-letter-routing-key': 'dead',
      'x-max-priority': 255,
      'x-delivery-limit': 0,
    });
    expect(parsed).toEqual({
      messageTtl: 0,
      expires: 1,
      maxLength: 0,
      maxLengthBytes: 1024,
      overflow: 'reject-publish-dlx',
      deadLetterExchange: '',
      deadLetterRoutingKey: 'dead',
      maxPriority: 255,
      deliveryLimit: 0,
    });
    expect(Object.isFrozen(parsed)).toBe(true);
  });

  it('queue arguments - unknown x- arguments and ones we do not implement are ignored, as RabbitMQ does', () => {
    expect(parseQueueArguments({ 'x-queue-type': 'quorum', 'x-single-active-consumer': true, 'x-whatever': [1], plain: 'x' })).toEqual({
      overflow: 'drop-head',
    });
  });

  it('queue arguments - a bigint in the safe range is accepted as an integer, a larger one refused', () => {
    expect(parseQueueArguments({ 'x-max-length': 10n }).maxLength).toBe(10);
    expect(refusal({ 'x-max-length': 2n ** 64n }).message).toMatch(/value_too_large/);
  });

  it('queue arguments - refusals are precondition_failed with RabbitMQ-shaped messages naming argument and value', () => {
    const error = refusal({ 'x-max-length': -1 }, 'orders');
    expect(error.code).toBe('precondition_failed');
    expect(error.argument).toBe('x-max-length');
    expect(error.value).toBe(-1);
    expect(error.message).toBe("invalid arg 'x-max-length' for queue 'orders': {value_negative,-1}");
  });

  it.each([
    [{ 'x-message-ttl': -1 }, 'x-message-ttl', /value_negative,-1/],
    [{ 'x-message-ttl': 1.5 }, 'x-message-ttl', /expected integer, got number/],
    [{ 'x-message-ttl': '1000' }, 'x-message-ttl', /expected integer, got string/],
    [{ 'x-message-ttl': MAX_EXPIRY_MS + 1 }, 'x-message-ttl', /value_too_large/],
    [{ 'x-expires': 0 }, 'x-expires', /value_zero/],
    [{ 'x-expires': -5 }, 'x-expires', /value_negative,-5/],
    [{ 'x-max-length': -1 }, 'x-max-length', /value_negative/],
    [{ 'x-max-length': null }, 'x-max-length', /expected integer, got null/],
    [{ 'x-max-length-bytes': -1 }, 'x-max-length-bytes', /value_negative/],
    [{ 'x-max-length-bytes': true }, 'x-max-length-bytes', /expected integer, got boolean/],
    [{ 'x-overflow': 'drop-tail' }, 'x-overflow', /invalid_overflow/],
    [{ 'x-overflow': 1 }, 'x-overflow', /expected a string/],
    [{ 'x-dead-letter-exchange': 5 }, 'x-dead-letter-exchange', /expected a string/],
    [{ 'x-dead-letter-routing-key': 'k' }, 'x-dead-letter-routing-key', /routing_key_but_no_dlx_defined/],
    [{ 'x-dead-letter-exchange': 'dlx', 'x-dead-letter-routing-key': ['k'] }, 'x-dead-letter-routing-key', /expected a string, got array/],
    [{ 'x-max-priority': 0 }, 'x-max-priority', /value_out_of_range,0/],
    [{ 'x-max-priority': 256 }, 'x-max-priority', /max_value_exceeded,256/],
    [{ 'x-max-priority': 'high' }, 'x-max-priority', /expected integer/],
    [{ 'x-delivery-limit': -1 }, 'x-delivery-limit', /value_negative/],
  ])('queue arguments - %j is refused naming %s', (args, argument, reason) => {
    const error = refusal(args as Record<string, unknown>);
    expect(error.argument).toBe(argument);
    expect(error.message).toMatch(new RegExp(`^invalid arg '${argument}' for queue 'q': `));
    expect(error.message).toMatch(reason);
  });

  it('queue arguments - parseExpiration reads AMQP expiration strings: decimal ms, at most 10 years', () => {
    expect(parseExpiration(undefined)).toBeUndefined();
    expect(parseExpiration('0')).toBe(0);
    expect(parseExpiration('60000')).toBe(60_000);
    expect(parseExpiration('007')).toBe(7);
    expect(parseExpiration(String(MAX_EXPIRY_MS))).toBe(MAX_EXPIRY_MS);
    for (const bad of ['', '-1', '1.5', '1e3', ' 10', 'ten', String(MAX_EXPIRY_MS + 1), '9'.repeat(30)]) {
      expect(parseExpiration(bad), bad).toBeNull();
    }
  });
});
