#!/usr/bin/env node
/**
 * `shardmq serve|pub|sub|bench`: the command line. node:util parseArgs (in each subcommand), no CLI dependency.
 */
import { serve } from './serve.js';
import { pub } from './pub.js';
import { sub } from './sub.js';
import { bench } from './bench.js';

const USAGE = `usage:
  shardmq serve [--host 127.0.0.1] [--port 7070] [--shards N] [--data-dir DIR] [--log-level info] [...]
  shardmq pub <destination> [message] [--count N] [--rate R] [--url URL]
  shardmq sub <destination> [--count N] [--ack auto|client] [--prefetch N] [--url URL]
  shardmq bench [--quick] [--only workload,...] [--runs N]

Every serve flag is also read from SHARDMQ_<FLAG> (e.g. SHARDMQ_PORT). Destinations:
/topic/<key>, /queue/<name>, /exchange/<exchange>/<key>.`;

const commands: Record<string, (args: string[]) => Promise<number>> = { serve, pub, sub, bench };

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(USAGE + '\n');
    return command === undefined ? 2 : 0;
  }
  const run = commands[command];
  if (run === undefined) {
    process.stderr.write(`shardmq: unknown command ${JSON.stringify(command)}\n${USAGE}\n`);
    return 2;
  }
  return run(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    // serve keeps running until a signal; every other command is done when it returns,
    // even if a library left a handle open.
    if (code !== 0 || process.argv[2] !== 'serve') process.exit(code);
  },
  (err: unknown) => {
    process.stderr.write(`shardmq: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
