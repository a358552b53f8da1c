import { parseArgs } from 'node:util';
import { CONFIG_SPECS, ConfigError, resolveConfig } from '../config/config.js';
import { createLogger } from '../log/logger.js';
import { Broker } from '../front/broker.js';

/** `shardmq serve`: runs the broker until SIGINT/SIGTERM, then drains and exits 0. */
export async function serve(args: string[]): Promise<number> {
  const options = Object.fromEntries(CONFIG_SPECS.map((s) => [s.flag, { type: 'string' as const }]));
  let flags: Record<string, string | undefined>;
  try {
    flags = parseArgs({ args, options, strict: true, allowPositionals: false }).values as Record<string, string | undefined>;
  } catch (err) {
    process.stderr.write(`shardmq serve: ${(err as Error).message}\n`);
    return 2;
  }
  let config: ReturnType<typeof resolveConfig>;
  try {
    config = resolveConfig(flags);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`shardmq serve: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  const log = createLogger(config.logLevel);
  const broker = new Broker(config, log);
  await broker.start();
  log.info(
    { url: broker.url, shards: config.shards, uws: `native (${broker.nativeBinary})`, dataDir: config.dataDir ?? 'none (in memory)' },
    `shardmq listening on ${broker.url} with ${config.shards} shard(s); uWebSockets.js loaded natively`,
  );
  let stopping = false;
  const shutdown = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down: no new connections, draining');
    broker.stop().then(
      () => {
        log.info('stopped');
        log.flush();
        process.exit(0);
      },
      (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        log.flush();
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  return 0;
}
