/**
 * The harness's JSON-protocol WebSocket client: just enough to publish text ops and to count
 * deliveries, for the workloads that measure the JSON side (HTTP → WebSocket, JSON vs binary).
 */
import WebSocket from 'ws';
import { INITIAL_PUBLISH_CREDIT } from '../protocol/ws-binary.js';

/**
 * Publish credit for a JSON publisher (docs/protocol.md §6a): publish frames wait here, in order,
 * while the credit the broker granted is short, so the harness never gets closed for breaking it.
 * The owner passes the broker's `credit` frames to granted().
 */
export class JsonCreditSender {
  readonly #ws: WebSocket;
  #messages: number = INITIAL_PUBLISH_CREDIT.messages;
  #bytes: number = INITIAL_PUBLISH_CREDIT.bytes;
  readonly #queue: Array<{ frame: string; bytes: number }> = [];

  constructor(ws: WebSocket) {
    this.#ws = ws;
  }

  /** Frames waiting for credit. */
  get waiting(): number {
    return this.#queue.length;
  }

  /** Sends a publish frame carrying `bytes` payload bytes, now or once credit allows. */
  send(frame: string, bytes: number): void {
    this.#queue.push({ frame, bytes });
    this.#pump();
  }

  granted(messages: number, bytes: number): void {
    this.#messages += messages;
    this.#bytes += bytes;
    this.#pump();
  }

  #pump(): void {
    const q = this.#queue;
    while (q.length > 0 && this.#messages > 0 && this.#bytes > 0) {
      const next = q.shift() as { frame: string; bytes: number };
      this.#messages--;
      this.#bytes -= next.bytes;
      this.#ws.send(next.frame);
    }
  }
}

/** Opens a JSON-protocol connection to the broker at `httpUrl` (http://127.0.0.1:port) on /v1/ws. */
export function openJsonWs(httpUrl: string): Promise<WebSocket> {
  const ws = new WebSocket(httpUrl.replace(/^http/, 'ws') + '/v1/ws');
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

/**
 * A JSON subscriber that only counts what it receives (no parsing: the count must cost the harness
 * as little as possible); `onMessage` runs after each delivery. Resolves once the broker's receipt
 * says the subscription is live.
 */
export async function countingSubscriber(
  httpUrl: string,
  destination: string,
  onMessage?: () => void,
): Promise<{ count: () => number; lastAt: () => number; close: () => void }> {
  const ws = await openJsonWs(httpUrl);
  let count = 0;
  let lastAt = 0;
  let subscribed: () => void = () => undefined;
  const ready = new Promise<void>((r) => (subscribed = r));
  ws.on('message', (data) => {
    const text = String(data);
    // Cheap check: message frames start with {"op":"message".
    if (text.startsWith('{"op":"message"')) {
      count++;
      lastAt = performance.now();
      onMessage?.();
    } else if (text.includes('"receipt"')) subscribed();
  });
  ws.send(JSON.stringify({ op: 'subscribe', id: 'bench', destination, receipt: 'ready' }));
  await ready;
  return { count: () => count, lastAt: () => lastAt, close: () => ws.close() };
}
