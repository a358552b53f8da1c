/**
 * A scripted stand-in for the broker's WebSocket endpoint, for client tests that need to control
 * exactly what the server sends and when: publish credit, confirms, a held FLUSH answer, DROPPED
 * notices. It speaks the binary protocol with the same encoder and decoder as the broker, listens
 * on 127.0.0.1 (a port the OS picks) and records every op each connection receives, in order.
 *
 * Requests (CONFIRM_SELECT, SUBSCRIBE, UNSUBSCRIBE, declares…) are answered OK at once, except
 * FLUSH while `holdFlush` is set (the test answers it with `ok`). Nothing else is sent on its own:
 * in particular no CREDIT, so a client gets the initial credit and no more until a test grants it.
 */
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { BinaryDecoder, Direction } from '../../src/protocol/ws-binary-decode.js';
import { BinaryFrameWriter } from '../../src/protocol/ws-binary-encode.js';
import { Opcode, opcodeName, type BinaryDispatcher } from '../../src/protocol/ws-binary.js';

export type ReceivedOp =
  | { readonly op: 'PUBLISH'; readonly destination: string; readonly payload: Buffer; readonly properties: Buffer | null }
  | { readonly op: 'FLUSH'; readonly requestId: number }
  | { readonly op: 'SUBSCRIBE'; readonly requestId: number; readonly subscriptionId: number; readonly destination: string }
  /** Any other op: its name, and its request id when it has one. */
  | { readonly op: string; readonly requestId?: number };

export type PublishOp = Extract<ReceivedOp, { op: 'PUBLISH' }>;

export class FakeConnection {
  readonly ops: ReceivedOp[] = [];
  /** Hold FLUSH requests instead of answering them (the test calls `ok(requestId, Opcode.FLUSH)`). */
  holdFlush = false;
  readonly #ws: WebSocket;
  readonly #writer = new BinaryFrameWriter();
  readonly #decoder: BinaryDecoder;
  #closed = false;

  constructor(ws: WebSocket) {
    this.#ws = ws;
    const record = (op: ReceivedOp): void => {
      this.ops.push(op);
    };
    const answer = (requestId: number, op: Opcode): void => {
      this.send((w) => w.ok(requestId, op));
    };
    const request =
      (op: Opcode) =>
      (ev: { requestId: number }): void => {
        record({ op: opcodeName(op), requestId: ev.requestId });
        answer(ev.requestId, op);
      };
    const dispatcher: BinaryDispatcher = {
      processPublish: (ev) =>
        record({
          op: 'PUBLISH',
          destination: ev.destination,
          payload: Buffer.from(ev.payload),
          properties: ev.properties === null ? null : Buffer.from(ev.properties),
        }),
      // The client joins consecutive publishes to one destination into a batch; the broker numbers and
      // handles its messages one by one, so they are recorded as the PUBLISHes they stand for.
      processPublishBatch: (ev) => {
        for (const payload of ev.payloads) {
          record({
            op: 'PUBLISH',
            destination: ev.destination,
            payload: Buffer.from(payload),
            properties: ev.properties === null ? null : Buffer.from(ev.properties),
          });
        }
      },
      processConfirmSelect: request(Opcode.CONFIRM_SELECT),
      processSubscribe: (ev) => {
        record({ op: 'SUBSCRIBE', requestId: ev.requestId, subscriptionId: ev.subscriptionId, destination: ev.destination });
        answer(ev.requestId, Opcode.SUBSCRIBE);
      },
      processUnsubscribe: request(Opcode.UNSUBSCRIBE),
      processCommitOffset: request(Opcode.COMMIT_OFFSET),
      processAck: () => record({ op: 'ACK' }),
      processNack: () => record({ op: 'NACK' }),
      processFlush: (ev) => {
        record({ op: 'FLUSH', requestId: ev.requestId });
        if (!this.holdFlush) answer(ev.requestId, Opcode.FLUSH);
      },
      processDeclareExchange: request(Opcode.DECLARE_EXCHANGE),
      processDeleteExchange: request(Opcode.DELETE_EXCHANGE),
      processDeclareQueue: request(Opcode.DECLARE_QUEUE),
      processDeleteQueue: request(Opcode.DELETE_QUEUE),
      processPurgeQueue: request(Opcode.PURGE_QUEUE),
      processBindQueue: request(Opcode.BIND_QUEUE),
      processUnbindQueue: request(Opcode.UNBIND_QUEUE),
      processBindExchange: request(Opcode.BIND_EXCHANGE),
      processUnbindExchange: request(Opcode.UNBIND_EXCHANGE),
    };
    this.#decoder = new BinaryDecoder(Direction.toServer, dispatcher);
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary) throw new Error('fake server: the client sent a text frame');
      this.#decoder.decodeFrame(data);
    });
    ws.on('close', () => {
      this.#closed = true;
    });
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** The PUBLISH ops received so far, in order. */
  publishes(): PublishOp[] {
    return this.ops.filter((o): o is PublishOp => o.op === 'PUBLISH');
  }

  /** Sends one frame holding the ops `build` writes. */
  send(build: (w: BinaryFrameWriter) => void): void {
    build(this.#writer);
    this.#ws.send(this.#writer.finishCopy());
  }

  credit(messages: number, bytes: number): void {
    this.send((w) => w.credit(messages, bytes));
  }

  ok(requestId: number, op: Opcode): void {
    this.send((w) => w.ok(requestId, op));
  }

  /** Drops the TCP connection without a close frame (a network failure, as the client sees it). */
  terminate(): void {
    this.#ws.terminate();
  }
}

export class FakeServer {
  readonly connections: FakeConnection[] = [];
  readonly #wss: WebSocketServer;
  readonly #waiters: Array<() => void> = [];

  private constructor(wss: WebSocketServer) {
    this.#wss = wss;
    wss.on('connection', (ws) => {
      this.connections.push(new FakeConnection(ws));
      for (const w of this.#waiters.splice(0)) w();
    });
  }

  static async start(): Promise<FakeServer> {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, path: '/v1/ws', perMessageDeflate: false });
    await new Promise<void>((resolve, reject) => {
      wss.once('listening', resolve);
      wss.once('error', reject);
    });
    return new FakeServer(wss);
  }

  get url(): string {
    return `http://127.0.0.1:${(this.#wss.address() as AddressInfo).port}`;
  }

  /** Resolves with connection number `index` (from 0) once it has been accepted, within `timeoutMs`. */
  async connection(index: number, timeoutMs = 2000): Promise<FakeConnection> {
    const deadline = Date.now() + timeoutMs;
    while (this.connections.length <= index) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`fake server: no connection #${index} within ${timeoutMs} ms`);
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        this.#waiters.push(resolve);
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
    }
    return this.connections[index];
  }

  async stop(): Promise<void> {
    for (const c of this.#wss.clients) c.terminate();
    await new Promise<void>((resolve) => this.#wss.close(() => resolve()));
  }
}
