import { RouterError } from '../router/exchange-registry.js';
import { BrokerError, ErrorCode } from '../protocol/errors.js';
import { VHOST_SEPARATOR } from '../router/vhost-name.js';

/** Runs a router/topology operation, turning its RouterErrors into BrokerErrors with the same code. */
export function withBrokerErrors<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof RouterError) throw BrokerError.from(err.code, err.message);
    throw err;
  }
}

/**
 * `name` as vhost `prefix`'s qualified name (router/vhost-name.ts), or the 406 BrokerError for a
 * name holding the separator. No closure: AMQP publishes call it once per message.
 */
export function qualified(prefix: string, name: string): string {
  if (name.indexOf(VHOST_SEPARATOR) >= 0) {
    throw new BrokerError(ErrorCode.preconditionFailed, `name ${JSON.stringify(name)} holds the control character U+001F`);
  }
  return prefix.length === 0 ? name : prefix + name;
}
