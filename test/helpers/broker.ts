import { Broker } from '../../src/front/broker.js';
import { resolveConfig } from '../../src/config/config.js';
import { createLogger } from '../../src/log/logger.js';

/** Starts a real broker in this process on 127.0.0.1 and a port the OS picks. */
export async function startBroker(flags: Record<string, string> = {}): Promise<Broker> {
  const config = resolveConfig({ host: '127.0.0.1', port: '0', 'amqp-port': '0', shards: '1', 'log-level': 'silent', ...flags }, {});
  const broker = new Broker(config, createLogger(config.logLevel));
  await broker.start();
  return broker;
}

export async function publish(
  broker: Broker,
  destination: string,
  body: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${broker.url}/v1/publish/${destination.replace(/^\//, '')}`, { method: 'POST', body, headers });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}
