/**
 * `--help` text of every command, from one description per command: what it does, and each flag
 * with its value, default and environment variable. Also the common handling of a bad command
 * line: one line saying what is wrong, a pointer to --help, exit 2 (never a stack trace).
 */

export interface CliFlag {
  readonly name: string;
  /** The value's placeholder (`N`, `URL`); absent for a switch. */
  readonly value?: string;
  /** The default as a person reads it. */
  readonly def?: string;
  /** The environment variable it is also read from. */
  readonly env?: string;
  readonly help: string;
}

export interface CommandHelp {
  readonly command: string;
  /** Positionals after the command, e.g. `<destination> [message]`. */
  readonly synopsis: string;
  readonly description: string;
  readonly flags: readonly CliFlag[];
}

/** The flag column's width; past it a flag's text goes on the next line. */
const MAX_FLAG_COLUMN = 30;

const HELP_FLAG: CliFlag = { name: 'help', help: 'print this text and exit' };

export function helpText(h: CommandHelp): string {
  const flags = [...h.flags, HELP_FLAG];
  const left = flags.map((f) => `  --${f.name}${f.value === undefined ? '' : ` ${f.value}`}`);
  // A long flag (`--slow-consumer drop|disconnect|block`) gets its text on the next line rather than widening every line.
  const width = Math.min(MAX_FLAG_COLUMN, Math.max(...left.map((l) => l.length)) + 2);
  const lines = flags.map((f, i) => {
    const extra = [f.def === undefined ? null : `default: ${f.def}`, f.env === undefined ? null : `env ${f.env}`].filter((x) => x !== null);
    const text = `${f.help}${extra.length > 0 ? ` (${extra.join('; ')})` : ''}`;
    return left[i].length + 2 <= width ? `${left[i].padEnd(width)}${text}` : `${left[i]}\n${' '.repeat(width)}${text}`;
  });
  return [
    `usage: shardmq ${h.command}${h.synopsis === '' ? '' : ` ${h.synopsis}`} [flags]`,
    '',
    h.description,
    '',
    'flags:',
    ...lines,
    '',
  ].join('\n');
}

/** A command line parseArgs refused: what is wrong and where to look, exit status 2. */
export function badUsage(command: string, err: unknown): number {
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`shardmq ${command}: ${message}\nsee: shardmq ${command} --help\n`);
  return 2;
}

/** True when the arguments ask for help (checked before parsing, so help works beside bad flags). */
export function wantsHelp(args: readonly string[]): boolean {
  return args.includes('--help') || args.includes('-h');
}
