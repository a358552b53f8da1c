import { describe, expect, it } from 'vitest';
import {
  AccessRefusedError,
  DeliveryTagError,
  NotFoundError,
  PreconditionFailedError,
  ProtocolViolationError,
  ResourceLockedError,
  SaturatedError,
  ServerError,
  ShardmqError,
  ShardUnavailableError,
  errorFromServer,
} from '../../src/client/errors.js';

describe('client errors', () => {
  it('errors - every broker code maps to its class, keeps its code and extends ShardmqError', () => {
    const cases: Array<[string, new (...args: never[]) => ShardmqError]> = [
      ['not_found', NotFoundError],
      ['precondition_failed', PreconditionFailedError],
      ['access_refused', AccessRefusedError],
      ['resource_locked', ResourceLockedError],
      ['saturated', SaturatedError],
      ['bad_frame', ProtocolViolationError],
      ['unknown_op', ProtocolViolationError],
      ['shard_restarted', ShardUnavailableError],
      ['unknown_tag', DeliveryTagError],
      ['internal', ServerError],
      ['some_future_code', ServerError],
    ];
    for (const [code, Class] of cases) {
      const e = errorFromServer(code, `msg for ${code}`, 'DECLARE_QUEUE');
      expect(e).toBeInstanceOf(Class);
      expect(e).toBeInstanceOf(ShardmqError);
      expect(e).toBeInstanceOf(Error);
      expect(e.code).toBe(code);
      expect(e.message).toBe(`msg for ${code}`);
      expect(e.name).toBe(Class.name);
    }
    expect(errorFromServer('not_found', 'x', 'DECLARE_QUEUE').op).toBe('DECLARE_QUEUE');
  });
});
