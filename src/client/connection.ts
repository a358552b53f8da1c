/**
 * The client's socket: one `ws` WebSocket at a time speaking the binary protocol, outbound ops
 * coalesced into frames, inbound frames decoded into dispatcher calls, and reconnection with
 * backoff when the socket drops without `close()` having been asked for.
 *
 * Outbound batching (nats.js `sendCommand` style): ops are appended to one BinaryFrameWriter.
 * When the frame goes from empty to non-empty one flush is scheduled (a microtask, or a timer when
 * `batchMaxDelayMs` > 0), so everything written in the same turn travels as one WebSocket message;
 * the frame is sent at once when it reaches `batchMaxMessages` ops or `batchMaxBytes`, and before
 * an op that would push it past `maxFrameBytes` (the broker closes a connection whose frame is
 * larger than its `--max-frame-bytes`, 1 MiB by default).
 *
 * This module knows nothing of requests, confirms or subscriptions: it reports `opened`, `lost`,
 * `reconnecting` and `closed` to its owner, which re-establishes its state on each new socket.
 */
import { randomFillSync } from 'node:crypto';
import WebSocket from 'ws';
import { BinaryDecoder, Direction } from '../protocol/ws-binary-decode.js';
import { BinaryFrameWriter } from '../protocol/ws-binary-encode.js';
import { ProtocolError, SUBPROTOCOL, VHOST_HEADER, type BinaryClientDispatcher } from '../protocol/ws-binary.js';
import { backoffDelay, type ResolvedReconnect } from './backoff.js';
import { ConnectFailedError, ConnectionLostError, ProtocolViolationError, ShardmqError } from './errors.js';

/** A random masking key that is never all zeros (see flush: `ws` would then send our buffer itself). */
function nonZeroMask(mask: Buffer): void {
  randomFillSync(mask);
  if ((mask[0] | mask[1] | mask[2] | mask[3]) === 0) mask[0] = 1;
}

/** Path of the WebSocket endpoint (design.md §3). */
export const WS_PATH = '/v1/ws';

export interface ConnectionOptions {
  readonly reconnect: ResolvedReconnect | null;
  readonly batchMaxMessages: number;
  readonly batchMaxBytes: number;
  readonly batchMaxDelayMs: number;
  readonly maxFrameBytes: number;
  readonly connectTimeoutMs: number;
  readonly pingIntervalMs: number;
  /** Sent as the handshake's x-shardmq-vhost header. */
  readonly vhost: string;
}

/** What the connection tells its owner. Every call is made from a socket or timer callback. */
export interface ConnectionHandlers {
  readonly dispatcher: BinaryClientDispatcher;
  /** After each inbound frame's ops were dispatched. */
  frameEnd(): void;
  /** A socket is open and writable (the first one, or one after a reconnect). */
  opened(reconnected: boolean): void;
  /** The socket dropped unexpectedly; a reconnect follows unless it is disabled or exhausted. */
  lost(error: ConnectionLostError): void;
  /** A reconnect attempt is scheduled in `delayMs`. */
  reconnecting(attempt: number, delayMs: number, cause: unknown): void;
  /** No more sockets: `close()` finished (no error) or reconnecting gave up (error). */
  closed(error: ShardmqError | undefined): void;
  /** Something went wrong that is not tied to an operation (a malformed frame from the broker). */
  error(error: ShardmqError): void;
}

type State = 'idle' | 'connecting' | 'open' | 'waiting' | 'closing' | 'closed';

/** The ws:// URL of the endpoint for `http://host:port`, `ws://host:port` or a full `ws://…/v1/ws`. */
export function endpointUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new TypeError(`url must be an absolute URL such as http://127.0.0.1:7070 (got ${JSON.stringify(url)})`);
  }
  if (u.protocol === 'http:') u.protocol = 'ws:';
  else if (u.protocol === 'https:') u.protocol = 'wss:';
  else if (u.protocol !== 'ws:' && u.protocol !== 'wss:') {
    throw new TypeError(`url must use http, https, ws or wss (got ${JSON.stringify(u.protocol)})`);
  }
  if (u.pathname === '' || u.pathname === '/') u.pathname = WS_PATH;
  return u.toString();
}

export class Connection {
  /** Every endpoint it may use (the nodes of a cluster); a reconnect moves on to the next. */
  readonly urls: readonly string[];
  #at = 0;
  readonly #options: ConnectionOptions;
  readonly #handlers: ConnectionHandlers;
  readonly #writer = new BinaryFrameWriter();
  #decoder: BinaryDecoder;
  #ws: WebSocket | null = null;
  #state: State = 'idle';
  /** Consecutive reconnect attempts since the owner last called resetBackoff(). */
  #attempts = 0;
  #lastCause: unknown = undefined;
  #retryTimer: NodeJS.Timeout | null = null;
  #flushScheduled = false;
  #flushTimer: NodeJS.Timeout | null = null;
  #pingTimer: NodeJS.Timeout | null = null;
  #alive = true;
  #paused = false;
  #closedPromise: Promise<void> | null = null;
  /** Frames and bytes sent, for the owner's stats. */
  framesOut = 0;
  bytesOut = 0;

  constructor(url: string | readonly string[], options: ConnectionOptions, handlers: ConnectionHandlers) {
    const list = typeof url === 'string' ? [url] : url;
    if (list.length === 0) throw new TypeError('url must name at least one broker');
    this.urls = list.map(endpointUrl);
    this.#options = options;
    this.#handlers = handlers;
    this.#decoder = new BinaryDecoder(Direction.toClient, handlers.dispatcher);
  }

  /** The endpoint in use (or being tried). */
  get url(): string {
    return this.urls[this.#at];
  }

  /** True while a socket is open and ops can be written. */
  get isOpen(): boolean {
    return this.#state === 'open';
  }

  get isClosed(): boolean {
    return this.#state === 'closed' || this.#state === 'closing';
  }

  /**
   * Opens the first socket, trying each URL once in order; rejects with ConnectFailedError when
   * none answers (no retry: a wrong URL should fail fast).
   */
  async start(): Promise<void> {
    if (this.#state !== 'idle') throw new Error('Connection.start() called twice');
    this.#state = 'connecting';
    let ws: WebSocket | null = null;
    const failures: string[] = [];
    let lastErr: unknown;
    for (this.#at = 0; this.#at < this.urls.length; this.#at++) {
      try {
        ws = await this.#openSocket();
        break;
      } catch (err) {
        lastErr = err;
        failures.push(`${this.url}: ${describe(err)}`);
        if (this.#state !== 'connecting') break;
      }
    }
    if (ws === null) {
      this.#at = 0;
      this.#state = 'closed';
      throw new ConnectFailedError(`cannot connect to ${failures.join('; ')}`, { cause: lastErr });
    }
    if (this.#state !== 'connecting') {
      // close() was called while the handshake ran.
      ws.terminate();
      throw new ConnectFailedError(`connect to ${this.url} aborted by close()`);
    }
    this.#attach(ws, false);
  }

  /**
   * Appends one op to the current frame. `sizeHint` is an upper bound of the op's encoded size,
   * used to cut frames below `maxFrameBytes`. `write` may throw (a bad argument): the writer rolls
   * the op back. Only valid while `isOpen`.
   */
  write(sizeHint: number, write: (w: BinaryFrameWriter) => void): void {
    if (this.#state !== 'open') throw new Error(`internal: write while the connection is ${this.#state}`);
    const w = this.#writer;
    if (w.length > 0 && w.length + sizeHint > this.#options.maxFrameBytes) this.flush();
    write(w);
    if (w.entryCount >= this.#options.batchMaxMessages || w.length >= this.#options.batchMaxBytes) this.flush();
    else this.#scheduleFlush();
  }

  /** Sends the frame being built now (nothing when it is empty or no socket is open). */
  flush(): void {
    if (this.#flushTimer !== null) {
      clearTimeout(this.#flushTimer);
      this.#flushTimer = null;
    }
    const w = this.#writer;
    if (w.length === 0) return;
    if (this.#state !== 'open' || this.#ws === null) {
      w.reset();
      return;
    }
    // No copy: `ws` (8.23, pinned) masks a client frame into a buffer of its own before send()
    // returns, so the writer may reuse its bytes at once. It would keep them only for an all-zero
    // mask (it then skips masking) or with permessage-deflate: nonZeroMask and perMessageDeflate:
    // false rule both out. A copy per frame here was a 256 KiB allocation each time and most of
    // the publisher's GC at 800k msg/s.
    const frame = w.finish();
    this.framesOut++;
    this.bytesOut += frame.length;
    this.#ws.send(frame);
  }

  /** Stops reading from the socket (backpressure: the broker then stops returning credit). */
  pause(): void {
    if (this.#paused) return;
    this.#paused = true;
    this.#ws?.pause();
  }

  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    this.#ws?.resume();
  }

  get paused(): boolean {
    return this.#paused;
  }

  /** The owner has re-established its state on the new socket: later drops start backing off from the beginning. */
  resetBackoff(): void {
    this.#attempts = 0;
  }

  /** Drops the socket as if the network had failed (reconnects as usual). For tests and for a stuck restore. */
  dropSocket(reason: unknown): void {
    if (this.#ws === null || this.#state !== 'open') return;
    this.#lastCause = reason;
    this.#ws.terminate();
  }

  /**
   * Sends what is pending, closes the socket with 1000 and stops reconnecting. Resolves when the
   * socket is gone (terminated after `timeoutMs` if the broker does not answer the close).
   */
  close(timeoutMs = 2000): Promise<void> {
    if (this.#closedPromise !== null) return this.#closedPromise;
    const wasOpen = this.#state === 'open';
    this.flush();
    this.#state = 'closing';
    this.#clearTimers();
    const ws = this.#ws;
    this.#closedPromise = new Promise<void>((resolve) => {
      if (ws === null || !wasOpen) {
        ws?.terminate();
        this.#finalClose(undefined);
        resolve();
        return;
      }
      const timer = setTimeout(() => ws.terminate(), timeoutMs);
      timer.unref();
      ws.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      ws.close(1000, 'client closing');
    });
    return this.#closedPromise;
  }

  // ---- sockets ------------------------------------------------------------------------------

  #openSocket(): Promise<WebSocket> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.url, SUBPROTOCOL, {
        // Percent-encoded: a header carries ASCII; the broker decodes it.
        headers: { [VHOST_HEADER]: encodeURIComponent(this.#options.vhost) },
        perMessageDeflate: false,
        handshakeTimeout: this.#options.connectTimeoutMs,
        generateMask: nonZeroMask,
      });
      const onError = (err: Error): void => {
        cleanup();
        ws.terminate();
        reject(err);
      };
      const onClose = (code: number): void => {
        cleanup();
        reject(new Error(`socket closed during the handshake (code ${code})`));
      };
      const onOpen = (): void => {
        cleanup();
        resolve(ws);
      };
      const cleanup = (): void => {
        ws.off('error', onError);
        ws.off('close', onClose);
        ws.off('open', onOpen);
      };
      ws.on('error', onError);
      ws.on('close', onClose);
      ws.on('open', onOpen);
    });
  }

  #attach(ws: WebSocket, reconnected: boolean): void {
    this.#ws = ws;
    this.#state = 'open';
    this.#alive = true;
    this.#decoder = new BinaryDecoder(Direction.toClient, this.#handlers.dispatcher);
    this.#writer.reset();
    ws.on('message', (data: Buffer, isBinary: boolean) => this.#onMessage(ws, data, isBinary));
    ws.on('pong', () => {
      this.#alive = true;
    });
    ws.on('error', (err) => {
      this.#lastCause = err;
    });
    ws.on('close', (code: number, reason: Buffer) => this.#onSocketClose(ws, code, reason.toString()));
    if (this.#paused) ws.pause();
    this.#startPing(ws);
    this.#handlers.opened(reconnected);
  }

  #onMessage(ws: WebSocket, data: Buffer, isBinary: boolean): void {
    if (ws !== this.#ws) return;
    this.#alive = true;
    if (!isBinary) return; // the broker only sends text in answer to text (JSON) frames, which this client never sends
    try {
      this.#decoder.decodeFrame(data);
    } catch (err) {
      // A length-prefixed stream cannot resynchronise (and a dispatcher that threw left the decoder
      // FAILED): report it and start over on a new socket.
      const e =
        err instanceof ProtocolError
          ? new ProtocolViolationError(err.code, `malformed frame from the broker: ${err.message}`, { cause: err })
          : new ShardmqError('internal', `client failed handling a frame: ${describe(err)}`, { cause: err });
      this.#handlers.error(e);
      this.#lastCause = err;
      ws.terminate();
    } finally {
      this.#handlers.frameEnd();
    }
  }

  #onSocketClose(ws: WebSocket, code: number, reason: string): void {
    if (ws !== this.#ws) return;
    this.#ws = null;
    this.#stopPing();
    this.#writer.reset();
    this.#flushScheduled = false;
    if (this.#state === 'closing') {
      this.#finalClose(undefined);
      return;
    }
    const cause = this.#lastCause ?? new Error(`socket closed with code ${code}${reason === '' ? '' : ` (${reason})`}`);
    this.#lastCause = cause;
    this.#state = 'waiting';
    this.#handlers.lost(new ConnectionLostError(`connection to ${this.url} lost: ${describe(cause)}`, { cause }));
    if (this.#state !== 'waiting') return; // the owner closed us from its handler
    this.#scheduleReconnect();
  }

  #scheduleReconnect(): void {
    const policy = this.#options.reconnect;
    const attempt = ++this.#attempts;
    if (policy === null || attempt > policy.maxAttempts) {
      const why = policy === null ? 'reconnect is disabled' : `gave up after ${policy.maxAttempts} reconnect attempt(s)`;
      this.#state = 'closing';
      this.#finalClose(
        new ConnectionLostError(`connection to ${this.url} lost and ${why}: ${describe(this.#lastCause)}`, { cause: this.#lastCause }),
      );
      return;
    }
    const delay = backoffDelay(attempt, policy);
    this.#handlers.reconnecting(attempt, delay, this.#lastCause);
    if (this.#state !== 'waiting') return;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = null;
      if (this.#state !== 'waiting') return;
      this.#state = 'connecting';
      // Each attempt tries the next endpoint: a dead node is left for a live one at once (failover).
      this.#at = (this.#at + 1) % this.urls.length;
      this.#openSocket().then(
        (ws) => {
          if (this.#state !== 'connecting') {
            ws.terminate();
            return;
          }
          this.#lastCause = undefined;
          this.#attach(ws, true);
        },
        (err: unknown) => {
          if (this.#state !== 'connecting') return;
          this.#lastCause = err;
          this.#state = 'waiting';
          this.#scheduleReconnect();
        },
      );
    }, delay);
  }

  #finalClose(error: ShardmqError | undefined): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#clearTimers();
    this.#writer.reset();
    this.#handlers.closed(error);
  }

  // ---- timers -------------------------------------------------------------------------------

  #scheduleFlush(): void {
    if (this.#flushScheduled || this.#flushTimer !== null) return;
    if (this.#options.batchMaxDelayMs > 0) {
      this.#flushTimer = setTimeout(() => {
        this.#flushTimer = null;
        this.flush();
      }, this.#options.batchMaxDelayMs);
      return;
    }
    this.#flushScheduled = true;
    queueMicrotask(() => {
      this.#flushScheduled = false;
      this.flush();
    });
  }

  #startPing(ws: WebSocket): void {
    this.#stopPing();
    const every = this.#options.pingIntervalMs;
    if (every <= 0) return;
    this.#pingTimer = setInterval(() => {
      if (ws !== this.#ws || this.#paused) return; // a paused socket reads no pongs: not a sign of death
      if (!this.#alive) {
        this.#lastCause = new Error(`no pong within ${every} ms`);
        ws.terminate();
        return;
      }
      this.#alive = false;
      ws.ping();
    }, every);
    this.#pingTimer.unref();
  }

  #stopPing(): void {
    if (this.#pingTimer !== null) clearInterval(this.#pingTimer);
    this.#pingTimer = null;
  }

  #clearTimers(): void {
    this.#stopPing();
    if (this.#retryTimer !== null) clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
    if (this.#flushTimer !== null) clearTimeout(this.#flushTimer);
    this.#flushTimer = null;
  }
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
