import { RouterError } from '../router/exchange-registry.js';
import { BrokerError } from '../protocol/errors.js';

/** Runs a router/topology operation, turning its RouterErrors into BrokerErrors with the same code. */
export function withBrokerErrors<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof RouterError) throw BrokerError.from(err.code, err.message);
    throw err;
  }
}
