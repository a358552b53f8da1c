import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { defaultUrl } from './pub.js';

interface MessageFrame {
  op: string;
  tag?: number;
  payload?: string;
  encoding?: string;
  code?: string;
  message?: string;
  receipt?: string;
}

/** `shardmq sub <destination>`: prints one message payload per line; acks them in client mode. */
export async function sub(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      url: { type: 'string', default: defaultUrl() },
      count: { type: 'string' },
      ack: { type: 'string', default: 'auto' },
      prefetch: { type: 'string' },
    },
  });
  const [destination] = positionals;
  if (destination === undefined) {
    process.stderr.write('shardmq sub: a destination is required, e.g. /topic/sensors.#\n');
    return 2;
  }
  if (values.ack !== 'auto' && values.ack !== 'client') {
    process.stderr.write(`shardmq sub: --ack must be auto or client (got ${values.ack})\n`);
    return 2;
  }
  const limit = values.count === undefined ? Infinity : Number(values.count);
  const wsUrl = values.url.replace(/^http/, 'ws').replace(/\/$/, '') + '/v1/ws';
  const ws = new WebSocket(wsUrl);
  let received = 0;
  return new Promise<number>((resolve) => {
    ws.on('open', () => {
      const frame: Record<string, unknown> = { op: 'subscribe', id: 'cli', destination, ack: values.ack, receipt: 'subscribed' };
      if (values.prefetch !== undefined) frame.prefetch = Number(values.prefetch);
      ws.send(JSON.stringify(frame));
    });
    ws.on('message', (data) => {
      const frame = JSON.parse(String(data)) as MessageFrame;
      if (frame.op === 'receipt') {
        process.stderr.write(`subscribed to ${destination}\n`);
      } else if (frame.op === 'message') {
        const payload = frame.encoding === 'base64' ? Buffer.from(frame.payload ?? '', 'base64').toString('utf8') : (frame.payload ?? '');
        process.stdout.write(payload + '\n');
        if (values.ack === 'client') ws.send(JSON.stringify({ op: 'ack', tag: frame.tag }));
        if (++received >= limit) ws.close(1000);
      } else if (frame.op === 'error') {
        process.stderr.write(`error ${frame.code}: ${frame.message}\n`);
      }
    });
    ws.on('close', () => resolve(received >= limit || limit === Infinity ? 0 : 1));
    ws.on('error', (err) => {
      process.stderr.write(`shardmq sub: ${err.message}\n`);
      resolve(1);
    });
    process.once('SIGINT', () => ws.close(1000));
  });
}
