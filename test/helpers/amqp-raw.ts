/**
 * A raw AMQP 0-9-1 client for tests that must send what no real client would: it speaks the
 * handshake with the project's own codec, then sends any bytes and reads frames back.
 */
import { connect, type Socket } from 'node:net';
import { AmqpFrameDecoder } from '../../src/protocol/amqp/frame-decoder.js';
import { FrameType, PROTOCOL_HEADER } from '../../src/protocol/amqp/constants.js';
import { decodeMethod, methodFrame, type AnyMethod, type MethodArgs, type MethodName } from '../../src/protocol/amqp/methods.js';

export interface RawFrame {
  type: number;
  channel: number;
  payload: Uint8Array;
  method?: AnyMethod;
}

export class RawAmqp {
  readonly socket: Socket;
  readonly frames: RawFrame[] = [];
  /** Everything received, for the protocol-header answer (which is not a frame). */
  received = Buffer.alloc(0);
  readonly ended: Promise<void>;
  #waiters: Array<() => void> = [];
  readonly #decoder = new AmqpFrameDecoder(1 << 20);
  #decodeFrames = false;

  private constructor(socket: Socket) {
    this.socket = socket;
    // The decoder is the server's: it wants the client's protocol header first, which a server never sends.
    this.#decoder.push(PROTOCOL_HEADER, { frame: () => {} });
    socket.on('data', (chunk: Buffer) => {
      this.received = Buffer.concat([this.received, chunk]);
      if (this.#decodeFrames) {
        try {
          this.#decoder.push(chunk, {
            frame: (type, channel, payload) => {
              const copy = payload.slice();
              this.frames.push({ type, channel, payload: copy, method: type === FrameType.method ? decodeMethod(copy) : undefined });
            },
          });
        } catch {
          // A test that sends garbage may get garbage back; it reads `received`.
        }
      }
      for (const w of this.#waiters.splice(0)) w();
    });
    socket.on('error', () => {});
    this.ended = new Promise((resolve) => socket.on('close', () => resolve()));
  }

  static async open(port: number): Promise<RawAmqp> {
    const socket = connect({ host: '127.0.0.1', port });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('error', reject);
    });
    return new RawAmqp(socket);
  }

  /** Header, start-ok (PLAIN guest/guest), tune-ok, open: a connection ready for channels. */
  static async handshake(port: number, tune: { frameMax?: number; heartbeat?: number } = {}): Promise<RawAmqp> {
    const c = await RawAmqp.open(port);
    c.startFrames();
    c.socket.write(PROTOCOL_HEADER);
    await c.method('connection.start');
    c.send(0, 'connection.start-ok', {
      clientProperties: { product: 'raw-test', capabilities: { consumer_cancel_notify: true, 'connection.blocked': true } },
      mechanism: 'PLAIN',
      response: Buffer.from('\0guest\0guest'),
      locale: 'en_US',
    });
    const t = await c.method('connection.tune');
    const tuneArgs = t.args as MethodArgs['connection.tune'];
    c.send(0, 'connection.tune-ok', {
      channelMax: tuneArgs.channelMax,
      frameMax: tune.frameMax ?? tuneArgs.frameMax,
      heartbeat: tune.heartbeat ?? 0,
    });
    c.send(0, 'connection.open', { virtualHost: '/' });
    await c.method('connection.open-ok');
    return c;
  }

  startFrames(): void {
    this.#decodeFrames = true;
  }

  send<N extends MethodName>(channel: number, name: N, args: MethodArgs[N]): void {
    this.socket.write(methodFrame(channel, name, args));
  }

  write(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  /** Waits (bounded) for the next frame carrying method `name`; frames before it are dropped. */
  async method(name: MethodName, timeoutMs = 5000): Promise<AnyMethod> {
    const f = await this.frame((x) => x.method?.name === name, timeoutMs);
    return f.method as AnyMethod;
  }

  async frame(match: (f: RawFrame) => boolean, timeoutMs = 5000): Promise<RawFrame> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.frames.findIndex(match);
      if (i >= 0) return this.frames.splice(i, 1)[0];
      const left = deadline - Date.now();
      if (left <= 0) {
        const seen = this.frames.map((f) => f.method?.name ?? `type ${f.type}`).join(', ');
        throw new Error(`no matching frame in ${timeoutMs} ms (have: ${seen || 'none'})`);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** The connection.close the broker sent: its reply code and text. */
  async connectionClose(timeoutMs = 5000): Promise<{ code: number; text: string; classId: number; methodId: number }> {
    const m = await this.method('connection.close', timeoutMs);
    const a = m.args as MethodArgs['connection.close'];
    return { code: a.replyCode, text: a.replyText, classId: a.classId, methodId: a.methodId };
  }

  async channelClose(timeoutMs = 5000): Promise<{ code: number; text: string; classId: number; methodId: number }> {
    const m = await this.method('channel.close', timeoutMs);
    const a = m.args as MethodArgs['channel.close'];
    return { code: a.replyCode, text: a.replyText, classId: a.classId, methodId: a.methodId };
  }

  close(): void {
    this.socket.destroy();
  }
}

/** A frame with arbitrary type, channel and payload, and a chosen frame-end byte. */
export function rawFrame(type: number, channel: number, payload: Uint8Array, end = 0xce): Buffer {
  const b = Buffer.alloc(8 + payload.byteLength);
  b[0] = type;
  b.writeUInt16BE(channel, 1);
  b.writeUInt32BE(payload.byteLength, 3);
  b.set(payload, 7);
  b[7 + payload.byteLength] = end;
  return b;
}
