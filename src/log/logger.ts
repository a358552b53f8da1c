import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

export const LOG_LEVELS: readonly LevelWithSilent[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/**
 * The root logger. JSON lines to stdout through pino's sonic-boom destination,
 * asynchronous so a slow terminal cannot stall the event loop; pino flushes it on exit.
 * Shards take a child (`shard: N`); nothing on the per-message path logs at info.
 */
export function createLogger(level: LevelWithSilent, name = 'shardmq'): Logger {
  return pino({ name, level, base: { pid: process.pid } }, pino.destination({ sync: false }));
}
