import { parseArgs } from 'node:util';
import { CONFIG_SPECS, ConfigError, envName, resolveConfig } from '../config/config.js';
import { FLAG_HELP } from '../config/flag-help.js';
import { badUsage, helpText, wantsHelp, type CommandHelp } from './help.js';

/** The placeholder of a flag's value in --help: by flag where the kind says too little, else by the kind of its spec. */
const VALUE_NAMES: Readonly<Record<string, string>> = {
  host: 'ADDRESS',
  'data-dir': 'DIR',
  'tls-cert': 'FILE',
  'tls-key': 'FILE',
  'users-file': 'FILE',
  'auth-token': 'TOKEN',
  string: 'TEXT',
  int: 'N',
  pow2: 'BYTES',
  level: 'LEVEL',
};
import { createLogger } from '../log/logger.js';
import { Broker } from '../front/broker.js';
import { tuneGcForLatency } from './gc-tuning.js';

/** `shardmq serve`: runs the broker until SIGINT/SIGTERM, then drains and exits 0. */
/** Every CONFIG_SPECS flag, with its meaning and default from FLAG_HELP and its SHARDMQ_* variable. */
export const SERVE_HELP: CommandHelp = {
  command: 'serve',
  synopsis: '',
  description:
    'Runs the broker until SIGINT or SIGTERM, then drains and exits 0. Each flag is also read from its\nSHARDMQ_* variable (a flag wins over the variable).',
  flags: CONFIG_SPECS.map((spec) => ({
    name: spec.flag,
    value:
      spec.kind === 'enum' && spec.values !== undefined
        ? spec.values.join('|')
        : (VALUE_NAMES[spec.flag] ?? VALUE_NAMES[spec.kind] ?? 'VALUE'),
    def: FLAG_HELP[spec.flag]?.def ?? String(spec.def),
    env: envName(spec.flag),
    help: FLAG_HELP[spec.flag]?.meaning ?? '',
  })),
};

export async function serve(args: string[]): Promise<number> {
  if (wantsHelp(args)) {
    process.stdout.write(helpText(SERVE_HELP));
    return 0;
  }
  const options = Object.fromEntries(CONFIG_SPECS.map((s) => [s.flag, { type: 'string' as const }]));
  let flags: Record<string, string | undefined>;
  try {
    flags = parseArgs({ args, options, strict: true, allowPositionals: false }).values as Record<string, string | undefined>;
  } catch (err) {
    return badUsage('serve', err);
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
  tuneGcForLatency();
  const broker = new Broker(config, log);
  await broker.start();
  log.info(
    {
      url: broker.url,
      amqp: broker.amqpUrl ?? 'off',
      amqps: broker.amqpsUrl ?? 'off',
      shards: config.shards,
      uws: `native (${broker.nativeBinary})`,
      dataDir: config.dataDir ?? 'none (in memory)',
    },
    `shardmq listening on ${broker.url} with ${config.shards} shard(s); uWebSockets.js loaded natively${broker.amqpUrl === null ? '' : `; AMQP 0-9-1 on ${broker.amqpUrl}`}`,
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
