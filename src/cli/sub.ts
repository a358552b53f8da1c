import { parseArgs } from 'node:util';
import { connect } from '../client/client.js';
import type { ShardmqError } from '../client/errors.js';
import { badUsage, helpText, wantsHelp, type CommandHelp } from './help.js';
import { defaultUrl, defaultVhost, URL_FLAG, urlList, VHOST_FLAG } from './pub.js';

/**
 * `shardmq sub <destination>`: prints one message payload per line (as UTF-8); acks them in client
 * mode. `--count N` exits 0 after N messages; otherwise it runs until SIGINT (exit 0). It
 * reconnects and re-subscribes if the broker restarts.
 */
export const SUB_HELP: CommandHelp = {
  command: 'sub',
  synopsis: '<destination>',
  description:
    'Subscribes and prints each message payload on a line of its own (UTF-8); in client mode acks each once\nprinted. Reconnects and subscribes again if the broker restarts; Ctrl-C ends it (exit 0).',
  flags: [
    { name: 'count', value: 'N', def: 'run until Ctrl-C', help: 'exit 0 after N messages' },
    { name: 'ack', value: 'auto|client', def: 'auto', help: 'acknowledgement mode' },
    { name: 'prefetch', value: 'N', def: "the broker's", help: 'unacked messages at most (client mode)' },
    {
      name: 'offset',
      value: 'SPEC',
      def: 'next',
      help: 'a stream queue: where to start (first, last, next, stored, an offset, an ISO time, 10m, 1h...)',
    },
    { name: 'name', value: 'NAME', def: 'none', help: "a stream consumer's name (stored offsets)" },
    URL_FLAG,
    VHOST_FLAG,
  ],
};

export async function sub(args: string[]): Promise<number> {
  if (wantsHelp(args)) {
    process.stdout.write(helpText(SUB_HELP));
    return 0;
  }
  let parsed: {
    values: { url: string; vhost: string; count?: string; ack: string; prefetch?: string; offset?: string; name?: string };
    positionals: string[];
  };
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: {
        url: { type: 'string', default: defaultUrl() },
        vhost: { type: 'string', default: defaultVhost() },
        count: { type: 'string' },
        ack: { type: 'string', default: 'auto' },
        prefetch: { type: 'string' },
        offset: { type: 'string' },
        name: { type: 'string' },
      },
    });
  } catch (err) {
    return badUsage('sub', err);
  }
  const { values, positionals } = parsed;
  const [destination] = positionals;
  if (destination === undefined) {
    process.stderr.write('shardmq sub: a destination is required, e.g. /topic/sensors.#\n');
    return 2;
  }
  const ack = values.ack;
  if (ack !== 'auto' && ack !== 'client') {
    process.stderr.write(`shardmq sub: --ack must be auto or client (got ${ack})\n`);
    return 2;
  }
  const limit = values.count === undefined ? Infinity : Number(values.count);
  if (limit !== Infinity && (!Number.isInteger(limit) || limit < 1)) {
    process.stderr.write(`shardmq sub: --count must be a positive integer (got ${values.count})\n`);
    return 2;
  }
  const prefetch = values.prefetch === undefined ? undefined : Number(values.prefetch);
  if (prefetch !== undefined && (!Number.isInteger(prefetch) || prefetch < 0)) {
    process.stderr.write(`shardmq sub: --prefetch must be an integer ≥ 0 (got ${values.prefetch})\n`);
    return 2;
  }

  let client: Awaited<ReturnType<typeof connect>>;
  try {
    client = await connect(urlList(values.url), { vhost: values.vhost });
  } catch (err) {
    process.stderr.write(`shardmq sub: ${(err as Error).message}\n`);
    return 1;
  }
  client.on('error', (err: ShardmqError) => process.stderr.write(`error ${err.code}: ${err.message}\n`));
  client.on('reconnecting', ({ attempt, delayMs }) =>
    process.stderr.write(`connection lost; reconnect attempt ${attempt} in ${delayMs} ms\n`),
  );
  client.on('reconnected', () => process.stderr.write(`reconnected; subscribed to ${destination} again\n`));

  let received = 0;
  const onSigint = (): void => void client.close();
  process.once('SIGINT', onSigint);
  try {
    // A numeric --offset is an offset; anything else goes as written (first, an ISO time, 10m...).
    const offset = values.offset === undefined ? undefined : /^\d+$/.test(values.offset) ? Number(values.offset) : values.offset;
    const subscription = await client.subscribe(destination, { ack, prefetch, offset, consumerName: values.name });
    process.stderr.write(`subscribed to ${destination}\n`);
    for await (const message of subscription) {
      process.stdout.write(message.text() + '\n');
      if (ack === 'client') await message.ack();
      if (++received >= limit) break;
    }
  } catch (err) {
    process.stderr.write(`shardmq sub: ${(err as Error).message}\n`);
    return 1;
  } finally {
    process.off('SIGINT', onSigint);
    await client.close();
  }
  return received >= limit || limit === Infinity ? 0 : 1;
}
