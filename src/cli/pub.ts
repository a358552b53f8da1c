import { parseArgs } from 'node:util';
import { DEFAULT_HOST, DEFAULT_PORT } from '../config/defaults.js';

/** Messages per NDJSON request when --count repeats a one-line message. */
const BATCH = 500;

export function defaultUrl(): string {
  return process.env.SHARDMQ_URL ?? `http://${DEFAULT_HOST}:${DEFAULT_PORT}`;
}

/** `shardmq pub <destination> [message]`: publishes over HTTP; without a message, each stdin line is one. */
export async function pub(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { count: { type: 'string', default: '1' }, rate: { type: 'string' }, url: { type: 'string', default: defaultUrl() } },
  });
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
  const url = `${values.url.replace(/\/$/, '')}/v1/publish/${destination.replace(/^\//, '').split('/').map(encodeURIComponent).join('/')}`;

  let lines: string[];
  if (message !== undefined) lines = [message];
  else lines = (await readStdin()).split('\n').filter((l) => l.length > 0);
  let accepted = 0;
  const started = Date.now();
  for (let i = 0; i < count; i++) {
    for (let j = 0; j < lines.length; ) {
      // Without a rate limit, one-line messages travel as NDJSON batches.
      const batchable = rate === 0 && !lines[j].includes('\n');
      const take = batchable ? Math.min(BATCH, lines.length - j) : 1;
      const batch = lines.slice(j, j + take);
      j += take;
      accepted += await post(url, batch, take > 1);
      if (rate > 0) {
        const due = started + (accepted / rate) * 1000;
        const wait = due - Date.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      }
    }
  }
  process.stderr.write(`published ${accepted} message(s) to ${destination}\n`);
  return 0;
}

async function post(url: string, messages: string[], ndjson: boolean): Promise<number> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': ndjson ? 'application/x-ndjson' : 'text/plain' },
    body: ndjson ? messages.join('\n') + '\n' : messages[0],
  });
  const body = (await res.json()) as { accepted?: number; error?: string; message?: string };
  if (res.status !== 200) throw new Error(`publish failed: HTTP ${res.status} ${body.error ?? ''}: ${body.message ?? ''}`);
  return body.accepted ?? 0;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
