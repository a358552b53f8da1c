import { parseArgs } from 'node:util';
import { DEFAULT_HOST, DEFAULT_PORT } from '../config/defaults.js';
import { connect, type ShardmqClient } from '../client/client.js';
import { ShardmqError } from '../client/errors.js';
import { badUsage, helpText, wantsHelp, type CliFlag, type CommandHelp } from './help.js';

/**
 * Publishes issued before the CLI waits for their confirms. Bounds memory for a large --count
 * while keeping the socket busy: the client batches each window into a few frames.
 */
const WINDOW = 1000;

export function defaultUrl(): string {
  return process.env.SHARDMQ_URL ?? `http://${DEFAULT_HOST}:${DEFAULT_PORT}`;
}

/**
 * `shardmq pub <destination> [message]`: publishes over the binary WebSocket protocol with
 * confirms; without a message, each stdin line is one. `--count N` repeats the message(s) N times,
 * `--rate R` paces them at R messages per second (0 or absent: as fast as confirms allow).
 */
/** --url of pub and sub. */
export const URL_FLAG: CliFlag = {
  name: 'url',
  value: 'URL',
  def: `http://${DEFAULT_HOST}:${DEFAULT_PORT}`,
  env: 'SHARDMQ_URL',
  help: 'the broker; several nodes of a cluster comma-separated (a reconnect fails over to the next)',
};

/** --vhost of pub and sub. */
export const VHOST_FLAG: CliFlag = {
  name: 'vhost',
  value: 'NAME',
  def: '/',
  env: 'SHARDMQ_VHOST',
  help: 'the vhost every destination is in',
};

/** The --vhost value, or SHARDMQ_VHOST, or `/`. */
export function defaultVhost(): string {
  return process.env.SHARDMQ_VHOST ?? '/';
}

/** `--url a,b,c`: the nodes the client may use, in order. */
export function urlList(value: string): string[] {
  return value
    .split(',')
    .map((u) => u.trim())
    .filter((u) => u !== '');
}

export const PUB_HELP: CommandHelp = {
  command: 'pub',
  synopsis: '<destination> [message]',
  description:
    'Publishes over the binary WebSocket protocol with confirms and waits for them. Without a message, each\nnon-empty line of stdin is one. Destinations: /topic/<key>, /queue/<name>, /exchange/<exchange>/<key>.',
  flags: [
    { name: 'count', value: 'N', def: '1', help: 'publish the message(s) N times' },
    { name: 'rate', value: 'R', def: 'as fast as confirms allow', help: 'messages per second' },
    URL_FLAG,
    VHOST_FLAG,
  ],
};

export async function pub(args: string[]): Promise<number> {
  if (wantsHelp(args)) {
    process.stdout.write(helpText(PUB_HELP));
    return 0;
  }
  let parsed: { values: { count: string; rate?: string; url: string; vhost: string }; positionals: string[] };
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: {
        count: { type: 'string', default: '1' },
        rate: { type: 'string' },
        url: { type: 'string', default: defaultUrl() },
        vhost: { type: 'string', default: defaultVhost() },
      },
    });
  } catch (err) {
    return badUsage('pub', err);
  }
  const { values, positionals } = parsed;
  const [destination, message] = positionals;
  if (destination === undefined) {
    process.stderr.write('shardmq pub: a destination is required, e.g. /topic/sensors.temp\n');
    return 2;
  }
  const count = Number(values.count);
  const rate = values.rate === undefined ? 0 : Number(values.rate);
  if (!Number.isInteger(count) || count < 1) {
    process.stderr.write(`shardmq pub: --count must be a positive integer (got ${values.count})\n`);
    return 2;
  }
  if (!Number.isFinite(rate) || rate < 0) {
    process.stderr.write(`shardmq pub: --rate must be a number ≥ 0 (got ${values.rate})\n`);
    return 2;
  }

  let lines: string[];
  if (message !== undefined) lines = [message];
  else lines = (await readStdin()).split('\n').filter((l) => l.length > 0);
  if (lines.length === 0) {
    process.stderr.write('shardmq pub: nothing to publish: give a message, or lines on stdin\nsee: shardmq pub --help\n');
    return 2;
  }

  // A CLI run should fail rather than wait for a broker that is gone.
  let client: ShardmqClient;
  try {
    client = await connect(urlList(values.url), {
      vhost: values.vhost,
      reconnect: { initialDelayMs: 100, maxDelayMs: 1000, maxAttempts: 3 },
    });
  } catch (err) {
    return fail(err);
  }
  // Refusals are reported by flush(); the 'error' event would only repeat them.
  client.on('error', () => undefined);
  let sent = 0;
  const started = Date.now();
  const windows: Promise<void>[] = [];
  try {
    for (let i = 0; i < count; i++) {
      for (const line of lines) {
        client.publishNoWait(destination, line);
        sent++;
        if (rate > 0) {
          const wait = started + (sent / rate) * 1000 - Date.now();
          if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        } else if (sent % WINDOW === 0) {
          const window = client.flush();
          window.catch(() => undefined); // awaited below; this only keeps an early failure from being "unhandled"
          windows.push(window);
          // Two windows in flight: one being confirmed while the next is sent.
          if (windows.length >= 2) await windows.shift();
        }
      }
    }
    await Promise.all(windows);
    await client.flush();
  } catch (err) {
    return fail(err);
  } finally {
    await client.close();
  }
  process.stderr.write(`published ${sent} message(s) to ${destination}\n`);
  return 0;
}

/** One line on stderr for broker and connection errors (exit 1); anything else is a bug and keeps its stack. */
function fail(err: unknown): number {
  if (!(err instanceof ShardmqError)) throw err;
  process.stderr.write(`shardmq pub: ${err.code}: ${err.message}\n`);
  return 1;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
