#!/usr/bin/env node
/**
 * `shardmq serve|pub|sub|bench`: the command line. node:util parseArgs (in each subcommand), no CLI dependency.
 */
import { BENCH_HELP, bench } from './bench.js';
import { helpText } from './help.js';
import { PUB_HELP, pub } from './pub.js';
import { SERVE_HELP, serve } from './serve.js';
import { SUB_HELP, sub } from './sub.js';

const HELPS = [SERVE_HELP, PUB_HELP, SUB_HELP, BENCH_HELP];

const USAGE = `usage: shardmq <command> [flags]    (shardmq <command> --help for one command)

commands:
  serve   run the broker
  pub     publish messages
  sub     subscribe and print messages
  bench   run the benchmark harness

${HELPS.map((h) => helpText(h)).join('\n')}`;

const commands: Record<string, (args: string[]) => Promise<number>> = { serve, pub, sub, bench };

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    (command === undefined ? process.stderr : process.stdout).write(USAGE);
    return command === undefined ? 2 : 0;
  }
  const run = commands[command];
  if (run === undefined) {
    process.stderr.write(`shardmq: unknown command ${JSON.stringify(command)}; the commands are serve, pub, sub, bench (shardmq --help)\n`);
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
