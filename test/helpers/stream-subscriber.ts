/**
 * A JSON WebSocket subscriber for high-volume tests: it keeps no frames (a flood of hundreds
 * of thousands of messages would otherwise live in the test process), hands each message to a
 * callback, optionally acks it, and keeps only error frames and counts.
 */
import WebSocket from 'ws';

export interface MessageFrame {
  op: 'message';
  subscription: string;
  destination: string;
  tag: number;
  redelivered: boolean;
  payload: string;
  /** 'base64' when the payload bytes were not valid UTF-8. */
  encoding?: 'base64';
  [key: string]: unknown;
}

export interface ErrorFrame {
  op: 'error';
  code: string;
  message: string;
  subscription?: string;
  receipt?: string;
}

export interface StreamSubscriberOptions {
  /** 'client': every message is acked as soon as it arrives. */
  ack?: 'auto' | 'client';
  prefetch?: number;
  /** Called for every message frame, in arrival order. */
  onMessage?: (m: MessageFrame) => void;
  /** Called for every error frame. */
  onError?: (e: ErrorFrame) => void;
}

export class StreamSubscriber {
  readonly ws: WebSocket;
  readonly errors: ErrorFrame[] = [];
  received = 0;
  readonly closed: Promise<{ code: number; reason: string }>;
  #receipts = new Map<string, (f: Record<string, unknown>) => void>();
  #next = 0;

  private constructor(
    ws: WebSocket,
    private readonly opts: StreamSubscriberOptions,
  ) {
    this.ws = ws;
    ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      const f = JSON.parse(String(data)) as Record<string, unknown>;
      if (f.op === 'message') {
        this.received++;
        const m = f as unknown as MessageFrame;
        this.opts.onMessage?.(m);
        if (this.opts.ack === 'client') ws.send(`{"op":"ack","tag":${m.tag}}`);
        return;
      }
      if (typeof f.receipt === 'string' && this.#receipts.has(f.receipt)) {
        const done = this.#receipts.get(f.receipt);
        this.#receipts.delete(f.receipt);
        done?.(f);
        if (f.op === 'receipt') return;
      }
      if (f.op === 'error') {
        const e = f as unknown as ErrorFrame;
        this.errors.push(e);
        this.opts.onError?.(e);
      }
    });
    this.closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: String(reason) })));
  }

  /** Connects and subscribes `id` to `destination`; resolves once the broker's receipt arrived. */
  static async open(
    baseUrl: string,
    id: string,
    destination: string,
    opts: StreamSubscriberOptions = {},
    timeoutMs = 5000,
  ): Promise<StreamSubscriber> {
    const ws = new WebSocket(baseUrl.replace(/^http/, 'ws') + '/v1/ws');
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('websocket did not open in time')), timeoutMs);
      ws.once('open', () => {
        clearTimeout(timer);
        resolve();
      });
      ws.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
    const sub = new StreamSubscriber(ws, opts);
    const frame: Record<string, unknown> = { op: 'subscribe', id, destination, ack: opts.ack ?? 'auto' };
    if (opts.prefetch !== undefined) frame.prefetch = opts.prefetch;
    const answer = await sub.request(frame, timeoutMs);
    if (answer.op !== 'receipt') throw new Error(`subscribe refused: ${JSON.stringify(answer)}`);
    return sub;
  }

  /** Sends a frame with a fresh receipt and waits (bounded) for the receipt or an error naming it. */
  request(frame: Record<string, unknown>, timeoutMs = 5000): Promise<Record<string, unknown>> {
    const receipt = `sr${++this.#next}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#receipts.delete(receipt);
        reject(new Error(`no answer to ${JSON.stringify(frame).slice(0, 200)} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#receipts.set(receipt, (f) => {
        clearTimeout(timer);
        resolve(f);
      });
      this.ws.send(JSON.stringify({ ...frame, receipt }));
    });
  }

  async close(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return;
    this.ws.close(1000);
    const timer = setTimeout(() => this.ws.terminate(), 3000);
    await this.closed;
    clearTimeout(timer);
  }
}
