/**
 * For a describe block of client tests: a broker started before them, and the exported clients
 * its tests open, all closed after them.
 */
import { afterAll, beforeAll } from 'vitest';
import type { Broker } from '../../src/front/broker.js';
import { connect, type ShardmqClient } from '../../src/index.js';
import { startBroker } from './broker.js';

export interface ClientPool {
  /** The broker (valid inside tests, once beforeAll ran). */
  readonly broker: Broker;
  /** Connects a client that is closed after the block. */
  open(options?: Parameters<typeof connect>[1]): Promise<ShardmqClient>;
}

/** Call inside describe(): registers the beforeAll/afterAll that start and stop everything. */
export function clientPool(flags: Record<string, string> = {}): ClientPool {
  let broker: Broker | null = null;
  const clients: ShardmqClient[] = [];
  beforeAll(async () => {
    broker = await startBroker(flags);
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await broker?.stop();
  });
  return {
    get broker(): Broker {
      if (broker === null) throw new Error('clientPool: the broker is not started (used outside a test?)');
      return broker;
    },
    async open(options) {
      const c = await connect(this.broker.url, options);
      clients.push(c);
      return c;
    },
  };
}
