/**
 * What every part of the client (publisher, subscriptions, topology) shares across sockets: the
 * client's state, the requests in flight on the current socket and the operations that wait for the
 * connection to be ready again. The client drives the state; the parts only read it.
 */
import type { BinaryFrameWriter } from '../protocol/ws-binary-encode.js';
import type { OkEvent } from '../protocol/ws-binary.js';
import type { Connection } from './connection.js';
import { ConnectionClosedError, ConnectionLostError, SaturatedError, type ShardmqError } from './errors.js';
import type { ResolvedOptions } from './options.js';
import { RequestTable } from './requests.js';

export type ClientState = 'connecting' | 'ready' | 'restoring' | 'reconnecting' | 'closing' | 'closed';

/** An operation waiting for the connection to be ready. */
interface Deferred {
  readonly run: () => void;
  readonly fail: (err: ShardmqError) => void;
  readonly bytes: number;
}

export class ClientSession {
  readonly conn: Connection;
  readonly options: ResolvedOptions;
  readonly requests = new RequestTable();
  /** An error no call is waiting for (the client's 'error' event). */
  readonly report: (err: ShardmqError) => void;
  state: ClientState = 'connecting';
  #deferred: Deferred[] = [];
  #deferredBytes = 0;

  constructor(conn: Connection, options: ResolvedOptions, report: (err: ShardmqError) => void) {
    this.conn = conn;
    this.options = options;
    this.report = report;
  }

  /** close() was called or the client is closed for good: new operations are refused. */
  get ending(): boolean {
    return this.state === 'closing' || this.state === 'closed';
  }

  /** A request that waits for the connection when it is not ready (user operations). */
  request(op: number, sizeHint: number, write: (w: BinaryFrameWriter, id: number) => void): Promise<OkEvent> {
    if (this.state === 'ready') return this.send(op, sizeHint, write);
    return new Promise<OkEvent>((resolve, reject) => {
      this.whenReady(0, () => this.send(op, sizeHint, write).then(resolve, reject), reject);
    });
  }

  /** A request written now, ready or not (restoring), failing at once when no socket is open. */
  send(op: number, sizeHint: number, write: (w: BinaryFrameWriter, id: number) => void): Promise<OkEvent> {
    return new Promise<OkEvent>((resolve, reject) => {
      if (!this.conn.isOpen) {
        reject(this.ending ? new ConnectionClosedError() : new ConnectionLostError('not connected'));
        return;
      }
      const id = this.requests.add(op, resolve, reject);
      try {
        this.conn.write(sizeHint, (w) => write(w, id));
      } catch (err) {
        this.requests.remove(id);
        reject(err);
      }
    });
  }

  /** Runs `run` now when ready, else when the connection is back (fails it when the client closes). */
  whenReady(bytes: number, run: () => void, fail: (err: ShardmqError) => void): void {
    if (this.state === 'ready') {
      run();
      return;
    }
    if (this.ending) {
      fail(new ConnectionClosedError());
      return;
    }
    if (bytes > 0 && this.#deferredBytes + bytes > this.options.reconnectBufferBytes) {
      fail(
        new SaturatedError(
          'saturated',
          `not connected and the reconnect buffer is full (reconnectBufferBytes ${this.options.reconnectBufferBytes}); retry later`,
          { op: 'PUBLISH' },
        ),
      );
      return;
    }
    this.#deferred.push({ run, fail, bytes });
    this.#deferredBytes += bytes;
  }

  drainDeferred(): void {
    const list = this.#deferred;
    this.#deferred = [];
    this.#deferredBytes = 0;
    for (const d of list) {
      if (this.state !== 'ready') {
        // Dropped again while draining: keep the rest for the next connection.
        this.#deferred.push(d);
        this.#deferredBytes += d.bytes;
        continue;
      }
      d.run();
    }
  }

  failDeferred(err: ShardmqError): void {
    const list = this.#deferred;
    this.#deferred = [];
    this.#deferredBytes = 0;
    for (const d of list) d.fail(err);
  }
}
