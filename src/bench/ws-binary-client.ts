/**
 * The harness's own minimal client of the binary WebSocket protocol (docs/protocol.md), over the
 * `ws` package: BinaryFrameWriter to encode, BinaryDecoder (Direction.toClient) to decode. It does
 * only what the workloads need (requests answered by OK/ERROR, subscribe, confirms, counting and
 * inspecting deliveries), so the benchmarks do not depend on the package's client (src/client/),
 * and measure the broker, not a client under development.
 */
import WebSocket from 'ws';
import { BinaryDecoder, Direction } from '../protocol/ws-binary-decode.js';
import { BinaryFrameWriter } from '../protocol/ws-binary-encode.js';
import { INITIAL_PUBLISH_CREDIT, type BinaryClientDispatcher, type DeliverEvent, type OkEvent } from '../protocol/ws-binary.js';

/** How long a request (subscribe, declare, bind…) may wait for its OK before it fails the run. */
const REQUEST_TIMEOUT_MS = 15_000;

export type DeliverHandler = (ev: DeliverEvent) => void;

export class BenchWsClient {
  readonly ws: WebSocket;
  /** Encoder for ops built on the fly; `finishCopy()` because `ws` may keep the buffer under backpressure. */
  readonly writer = new BinaryFrameWriter();
  /** DELIVER ops received. */
  delivered = 0;
  /** performance.now() of the last frame that held a DELIVER. */
  lastDeliverAt = 0;
  /** Highest publish sequence number confirmed (acked or nacked) contiguously from 1. */
  confirmedUpTo = 0;
  nacked = 0;
  /** ERROR ops received (request id 0: publishes refused, unknown tags…) and the last one's text. */
  errors = 0;
  lastError = '';
  /**
   * Publish credit left (docs/protocol.md §6a): what the broker granted (the initial credit, then
   * CREDIT ops) minus what was published. Publish frames sent with sendPublishes() wait here while
   * it is short, so the harness never breaks the protocol (the broker closes a client that does).
   */
  creditMessages: number = INITIAL_PUBLISH_CREDIT.messages;
  creditBytes: number = INITIAL_PUBLISH_CREDIT.bytes;
  readonly #waiting: Array<{ frame: Uint8Array; messages: number; bytes: number }> = [];
  /** Messages the broker said it dropped from this connection's subscriptions (DROPPED ops). */
  droppedReported = 0;
  /** Called after every frame that carried deliveries (the fanout driver's pacing hook). */
  onFrame: (() => void) | null = null;

  readonly #decoder: BinaryDecoder;
  readonly #requests = new Map<number, { resolve: (ok: OkEvent) => void; reject: (err: Error) => void }>();
  readonly #confirmedAbove = new Set<number>();
  #nextRequest = 1;
  #onDeliver: DeliverHandler | null;
  #closed: Promise<void>;

  private constructor(ws: WebSocket, onDeliver: DeliverHandler | null) {
    this.ws = ws;
    this.#onDeliver = onDeliver;
    const dispatcher: BinaryClientDispatcher = {
      processDeliver: (ev) => {
        this.delivered++;
        this.#onDeliver?.(ev);
      },
      processConfirm: (ev) => {
        if (ev.nack) this.nacked += ev.multiple ? Math.max(0, ev.seq - this.confirmedUpTo) : 1;
        if (ev.multiple) {
          if (ev.seq > this.confirmedUpTo) this.confirmedUpTo = ev.seq;
        } else if (ev.seq === this.confirmedUpTo + 1) {
          this.confirmedUpTo = ev.seq;
        } else if (ev.seq > this.confirmedUpTo) {
          this.#confirmedAbove.add(ev.seq);
        }
        while (this.#confirmedAbove.delete(this.confirmedUpTo + 1)) this.confirmedUpTo++;
      },
      processOk: (ev) => {
        const r = this.#requests.get(ev.requestId);
        this.#requests.delete(ev.requestId);
        r?.resolve(ev);
      },
      processError: (ev) => {
        const r = this.#requests.get(ev.requestId);
        if (r !== undefined && ev.requestId !== 0) {
          this.#requests.delete(ev.requestId);
          r.reject(new Error(`${ev.code}: ${ev.message}`));
          return;
        }
        this.errors++;
        this.lastError = `${ev.code}: ${ev.message}`;
      },
      processCancel: (ev) => {
        this.errors++;
        this.lastError = `subscription ${ev.subscriptionId} cancelled: ${ev.code}: ${ev.message}`;
      },
      processCredit: (ev) => {
        this.creditMessages += ev.messages;
        this.creditBytes += ev.bytes;
        this.#sendWaiting();
      },
      processDropped: (ev) => {
        this.droppedReported += ev.count;
      },
      // It never asks for shared subscriptions, so no stream is ever mapped to it.
      processStream: () => undefined,
    };
    this.#decoder = new BinaryDecoder(Direction.toClient, dispatcher, { maxOpBodyBytes: 64 * 1024 * 1024 });
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary) return;
      const before = this.delivered;
      this.#decoder.decodeFrame(data);
      if (this.delivered !== before) {
        this.lastDeliverAt = performance.now();
        this.onFrame?.();
      }
    });
    this.#closed = new Promise<void>((resolve) => ws.once('close', () => resolve()));
    ws.once('close', () => {
      for (const r of this.#requests.values()) r.reject(new Error('connection closed'));
      this.#requests.clear();
    });
  }

  /** Opens a connection to the broker at `httpUrl` (http://127.0.0.1:port) on /v1/ws. */
  static async connect(httpUrl: string, onDeliver: DeliverHandler | null = null): Promise<BenchWsClient> {
    // No subprotocol requested: a connection that names none speaks v1 (docs/protocol.md §1).
    const ws = new WebSocket(httpUrl.replace(/^http/, 'ws') + '/v1/ws', { perMessageDeflate: false, maxPayload: 256 * 1024 * 1024 });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`WebSocket connect to ${httpUrl} timed out`)), REQUEST_TIMEOUT_MS);
      ws.once('open', () => {
        clearTimeout(timer);
        resolve();
      });
      ws.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
    ws.on('error', () => undefined); // a reset during shutdown is reported by `close`
    return new BenchWsClient(ws, onDeliver);
  }

  setDeliverHandler(handler: DeliverHandler | null): void {
    this.#onDeliver = handler;
  }

  /** Sends one frame (a buffer the caller will not touch again, or a pre-encoded one it never changes). */
  send(frame: Uint8Array): void {
    this.ws.send(frame, { binary: true });
  }

  /**
   * Sends a frame of `messages` publishes carrying `bytes` payload (+ properties) bytes in all, now
   * if the publish credit allows, else once CREDIT ops grant it (in order).
   */
  sendPublishes(frame: Uint8Array, messages: number, bytes: number): void {
    this.#waiting.push({ frame, messages, bytes });
    this.#sendWaiting();
  }

  /** Publish frames waiting for credit (publisher backpressure from the broker's flow control). */
  get creditWaiting(): number {
    return this.#waiting.length;
  }

  #sendWaiting(): void {
    while (this.#waiting.length > 0) {
      const next = this.#waiting[0];
      if (this.creditMessages < next.messages || this.creditBytes <= 0) return;
      this.#waiting.shift();
      this.creditMessages -= next.messages;
      this.creditBytes -= next.bytes;
      this.send(next.frame);
    }
  }

  /** Bytes queued in `ws` not yet handed to the kernel (publisher backpressure). */
  get bufferedAmount(): number {
    return this.ws.bufferedAmount;
  }

  /** Sends one request op built by `build(writer, requestId)` and resolves with its OK. */
  request(build: (w: BinaryFrameWriter, requestId: number) => void): Promise<OkEvent> {
    const requestId = this.#nextRequest++;
    build(this.writer, requestId);
    const frame = this.writer.finishCopy();
    return new Promise<OkEvent>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#requests.delete(requestId);
        reject(new Error(`request ${requestId} got no answer in ${REQUEST_TIMEOUT_MS} ms`));
      }, REQUEST_TIMEOUT_MS);
      this.#requests.set(requestId, {
        resolve: (ok) => {
          clearTimeout(timer);
          resolve(ok);
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      });
      this.send(frame);
    });
  }

  confirmSelect(): Promise<OkEvent> {
    return this.request((w, id) => w.confirmSelect(id));
  }

  /** Subscribes (auto ack) and resolves once the shard has the consumer (the OK). */
  subscribe(subscriptionId: number, destination: string, ackMode: 'auto' | 'client' = 'auto', prefetch = 0): Promise<OkEvent> {
    return this.request((w, id) => w.subscribe(id, subscriptionId, destination, ackMode, prefetch));
  }

  /** Closes and resolves once the socket is closed (bounded: terminated after 2 s). */
  async close(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return;
    this.ws.close();
    const timer = setTimeout(() => this.ws.terminate(), 2000);
    await this.#closed;
    clearTimeout(timer);
  }
}
