/**
 * The systems the open-loop workload compares, each driven the same way (open-loop.ts):
 * - shardmq through its exported client (`connect`, `publishNoWait`, `flush`), confirms off or on;
 * - NATS core with the `nats` client (`publish`, `flush`: PING/PONG);
 * - uWebSockets.js's built-in pub/sub (uws-pubsub-server.ts) with `ws` clients, flush = an echoed
 *   text frame.
 * Publishers run in the harness process; subscribers in the subscriber process.
 */
import { spawn } from 'node:child_process';
import WebSocket from 'ws';
import { connect } from '../index.js';
import { JsonCreditSender } from './json-ws.js';
import { nodeScriptArgs, stopChild } from './child.js';
import type { OpenLoopPublisher, OpenLoopSystem } from './open-loop.js';
import type { NatsModule, PeerServer } from './peers.js';

export const OPEN_LOOP_TOPIC = 'bench';
export const SHARDMQ_DESTINATION = `/topic/${OPEN_LOOP_TOPIC}`;

/** The sum of the shards' `dropped` counters in GET /v1/stats (no auth on the default broker), or null. */
export async function brokerDropped(url: string): Promise<number | null> {
  try {
    const res = await fetch(`${url}/v1/stats`, { signal: AbortSignal.timeout(5000) });
    if (!res.ok) return null;
    const body = (await res.json()) as { shards?: Array<{ dropped?: number }> };
    if (!Array.isArray(body.shards)) return null;
    return body.shards.reduce((s, sh) => s + (typeof sh.dropped === 'number' ? sh.dropped : 0), 0);
  } catch {
    return null;
  }
}

/** shardmq through its exported client; `vhost` other than `/` adds it to the key and name. */
export function shardmqOpenLoop(url: string, pid: number, confirms: boolean, vhost = '/'): OpenLoopSystem {
  const inVhost = vhost === '/' ? '' : ` in vhost ${vhost}`;
  return {
    key: (confirms ? 'shardmq_confirms' : 'shardmq') + (vhost === '/' ? '' : `_vhost_${vhost}`),
    name: `shardmq (client, confirms ${confirms ? 'on' : 'off'})${inVhost}`,
    pids: [pid],
    subscriberSpec: (subscribers) => ({ kind: 'shardmq', url, subscribers, destination: SHARDMQ_DESTINATION, vhost }),
    async publisher(payload, onError): Promise<OpenLoopPublisher> {
      const client = await connect(url, { confirms, reconnect: false, vhost });
      client.on('error', onError);
      return {
        publish: () => client.publishNoWait(SHARDMQ_DESTINATION, payload),
        flush: () => client.flush(),
        close: () => client.close(),
      };
    },
    dropped: () => brokerDropped(url),
  };
}

export function natsOpenLoop(nats: NatsModule, server: PeerServer): OpenLoopSystem {
  const servers = `127.0.0.1:${server.port}`;
  return {
    key: 'nats',
    name: 'NATS core (nats.js)',
    pids: [server.pid],
    subscriberSpec: (subscribers) => ({ kind: 'nats', url: servers, subscribers, destination: OPEN_LOOP_TOPIC }),
    async publisher(payload, onError): Promise<OpenLoopPublisher> {
      const nc = await nats.connect({ servers, noEcho: true, maxReconnectAttempts: 0 });
      void nc.closed().then((err) => {
        if (err instanceof Error) onError(err);
      });
      return {
        publish: () => nc.publish(OPEN_LOOP_TOPIC, payload),
        flush: () => nc.flush(),
        close: () => nc.close(),
      };
    },
  };
}

/**
 * shardmq over the JSON text protocol: the same pacing, with what JSON has. A publisher honours
 * publish credit (`{"op":"credit"}` frames; it starts with INITIAL_PUBLISH_CREDIT) and its flush is a
 * receipt: the publish before each flush() is held back and sent with a `receipt`, which the broker
 * answers once that message (and so every one before it, same connection, same order) is in a
 * shard's ring or routed. Subscribers are JSON `subscribe` ops with `ack: auto`.
 */
export function shardmqJsonOpenLoop(url: string, pid: number): OpenLoopSystem {
  return {
    key: 'shardmq_json',
    name: 'shardmq (JSON WebSocket)',
    pids: [pid],
    subscriberSpec: (subscribers) => ({ kind: 'shardmq-json', url, subscribers, destination: SHARDMQ_DESTINATION }),
    async publisher(payload, onError): Promise<OpenLoopPublisher> {
      const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/v1/ws`, { perMessageDeflate: false });
      await new Promise<void>((resolve, reject) => {
        ws.once('open', () => resolve());
        ws.once('error', reject);
      });
      const text = Buffer.from(payload).toString('latin1');
      const plain = JSON.stringify({ op: 'publish', destination: SHARDMQ_DESTINATION, payload: text });
      const sender = new JsonCreditSender(ws);
      let held = false;
      let nextReceipt = 1;
      const receipts = new Map<string, { resolve: () => void; reject: (err: Error) => void }>();
      const send = (frame: string): void => sender.send(frame, payload.byteLength);
      ws.on('message', (data) => {
        const f = JSON.parse(String(data)) as { op: string; messages?: number; bytes?: number; receipt?: string; message?: string };
        if (f.op === 'credit') sender.granted(f.messages ?? 0, f.bytes ?? 0);
        else if (f.receipt !== undefined) {
          const w = receipts.get(f.receipt);
          receipts.delete(f.receipt);
          if (f.op === 'receipt') w?.resolve();
          else w?.reject(new Error(`publish refused: ${f.message ?? f.op}`));
        } else if (f.op === 'error') onError(new Error(`JSON error frame: ${String(data)}`));
      });
      ws.on('error', onError);
      ws.on('close', () => {
        for (const w of receipts.values()) w.reject(new Error('the JSON publisher socket closed'));
        receipts.clear();
      });
      return {
        publish: () => {
          if (held) send(plain);
          held = true;
        },
        flush: () =>
          new Promise<void>((resolve, reject) => {
            if (!held) {
              resolve();
              return;
            }
            held = false;
            const receipt = String(nextReceipt++);
            receipts.set(receipt, { resolve, reject });
            send(JSON.stringify({ op: 'publish', destination: SHARDMQ_DESTINATION, payload: text, receipt }));
          }),
        close: () =>
          new Promise<void>((resolve) => {
            if (held) send(plain);
            held = false;
            if (ws.readyState === WebSocket.CLOSED) resolve();
            else {
              ws.once('close', () => resolve());
              ws.close();
            }
          }),
      };
    },
    dropped: () => brokerDropped(url),
  };
}

/** uWebSockets.js pub/sub in its own process (uws-pubsub-server.ts, or ring-relay-server.ts: same endpoints). */
export interface UwsPubSubServer {
  readonly url: string;
  readonly pid: number;
  stop(): Promise<void>;
}

export async function startUwsPubSub(
  script: 'uws-pubsub-server.js' | 'ring-relay-server.js' = 'uws-pubsub-server.js',
): Promise<UwsPubSubServer> {
  const child = spawn(process.execPath, nodeScriptArgs(new URL(`./${script}`, import.meta.url)), {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${script} did not start in 20 s`)), 20_000);
    child.stdout?.once('data', (d: Buffer) => {
      clearTimeout(timer);
      resolve((JSON.parse(d.toString()) as { url: string }).url);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${script} exited ${code}`));
    });
  });
  child.stdout?.resume();
  return { url, pid: child.pid ?? 0, stop: () => stopChild(child, 5000) };
}

export function uwsOpenLoop(server: UwsPubSubServer, batchWrites = true): OpenLoopSystem {
  return {
    key: 'uws',
    name: 'uWebSockets.js pub/sub (ws clients)',
    pids: [server.pid],
    subscriberSpec: (subscribers) => ({ kind: 'uws', url: server.url, subscribers, destination: OPEN_LOOP_TOPIC }),
    async publisher(payload, onError): Promise<OpenLoopPublisher> {
      const ws = new WebSocket(`${server.url}/pub`);
      await new Promise<void>((resolve, reject) => {
        ws.once('open', () => resolve());
        ws.once('error', reject);
      });
      // Echoes come back in order: the oldest waiting flush is the one answered.
      const waiting: Array<{ resolve: () => void; reject: (err: Error) => void }> = [];
      ws.on('message', () => waiting.shift()?.resolve());
      ws.on('error', onError);
      ws.on('close', () => {
        for (const w of waiting.splice(0)) w.reject(new Error('the uWS publisher socket closed'));
      });
      // `ws` writes every frame to the socket on its own (one syscall per 128-byte message); nats.js
      // and shardmq's client gather what is published in one turn into one write. So that the
      // server sees the same kind of TCP stream from every publisher, the frames between two
      // flushes are gathered too: the socket is corked from the first publish to the flush frame.
      // Every message is still its own WebSocket frame and its own app.publish().
      const socket = (ws as unknown as { _socket?: { cork(): void; uncork(): void } })._socket;
      let corked = false;
      const uncork = (): void => {
        if (corked) {
          corked = false;
          socket?.uncork();
        }
      };
      return {
        publish: () => {
          if (ws.readyState !== WebSocket.OPEN) throw new Error('the uWS publisher socket is closed');
          if (batchWrites && !corked && socket !== undefined) {
            corked = true;
            socket.cork();
          }
          ws.send(payload);
        },
        flush: () =>
          new Promise<void>((resolve, reject) => {
            if (ws.readyState !== WebSocket.OPEN) {
              uncork();
              reject(new Error('the uWS publisher socket is closed'));
              return;
            }
            waiting.push({ resolve, reject });
            ws.send('flush');
            uncork();
          }),
        close: () =>
          new Promise<void>((resolve) => {
            if (ws.readyState === WebSocket.CLOSED) resolve();
            else {
              ws.once('close', () => resolve());
              ws.close();
            }
          }),
      };
    },
  };
}
