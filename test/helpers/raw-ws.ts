/**
 * A WebSocket client written by hand over node:net, for tests that need what a library
 * client hides: a peer that stops reading, frames with arbitrary opcodes or payloads, and the
 * raw bytes the server sends back (RFC 6455).
 */
import { connect, type Socket } from 'node:net';
import { createHash, randomBytes } from 'node:crypto';

const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

export const WsOpcode = {
  continuation: 0x0,
  text: 0x1,
  binary: 0x2,
  close: 0x8,
  ping: 0x9,
  pong: 0xa,
} as const;

export interface RawWebSocket {
  readonly socket: Socket;
  /** Bytes that arrived after the 101 response in the same read (the start of the frame stream). */
  readonly leftover: Buffer;
}

/**
 * Opens a TCP connection to `baseUrl` (http://host:port), sends the HTTP upgrade request for
 * `path` by hand and waits (bounded) for the `101 Switching Protocols` answer, checking
 * `Sec-WebSocket-Accept`. Rejects with the status line on any other answer.
 */
export async function rawWebSocket(
  baseUrl: string,
  path = '/v1/ws',
  timeoutMs = 5000,
  extraHeaders: Record<string, string> = {},
): Promise<RawWebSocket> {
  const url = new URL(baseUrl);
  const key = randomBytes(16).toString('base64');
  const expectedAccept = createHash('sha1')
    .update(key + WS_GUID)
    .digest('base64');
  const socket = connect({ host: url.hostname, port: Number(url.port) });
  socket.setNoDelay(true);
  return new Promise<RawWebSocket>((resolve, reject) => {
    let head = Buffer.alloc(0);
    const timer = setTimeout(() => fail(new Error(`no 101 within ${timeoutMs} ms`)), timeoutMs);
    const fail = (err: Error): void => {
      clearTimeout(timer);
      socket.removeListener('data', onData);
      socket.destroy();
      reject(err);
    };
    const onData = (chunk: Buffer): void => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) {
        if (head.length > 16 * 1024) fail(new Error('upgrade response headers too long'));
        return;
      }
      const text = head.subarray(0, end).toString('latin1');
      const lines = text.split('\r\n');
      if (!/^HTTP\/1\.1 101 /.test(lines[0] ?? '')) {
        fail(new Error(`upgrade refused: ${lines[0]}`));
        return;
      }
      const accept = lines
        .find((l) => l.toLowerCase().startsWith('sec-websocket-accept:'))
        ?.slice(21)
        .trim();
      if (accept !== expectedAccept) {
        fail(new Error(`bad Sec-WebSocket-Accept ${accept} (expected ${expectedAccept})`));
        return;
      }
      clearTimeout(timer);
      socket.removeListener('data', onData);
      socket.removeListener('error', fail);
      resolve({ socket, leftover: head.subarray(end + 4) });
    };
    socket.on('data', onData);
    socket.once('error', fail);
    socket.once('connect', () => {
      const headers = {
        Host: `${url.hostname}:${url.port}`,
        Upgrade: 'websocket',
        Connection: 'Upgrade',
        'Sec-WebSocket-Key': key,
        'Sec-WebSocket-Version': '13',
        ...extraHeaders,
      };
      let request = `GET ${path} HTTP/1.1\r\n`;
      for (const [k, v] of Object.entries(headers)) request += `${k}: ${v}\r\n`;
      socket.write(request + '\r\n');
    });
  });
}

/**
 * Encodes one client → server frame (RFC 6455 §5.2): FIN set unless `fin` is false, payload
 * masked with a random key as clients must. `rsv` sets the RSV1-3 bits (for fuzzing).
 */
export function encodeClientFrame(
  opcode: number,
  payload: Uint8Array | string,
  opts: { fin?: boolean; rsv?: number; mask?: boolean } = {},
): Buffer {
  const data =
    typeof payload === 'string' ? Buffer.from(payload, 'utf8') : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  const fin = opts.fin ?? true;
  const masked = opts.mask ?? true;
  const len = data.length;
  const lenBytes = len < 126 ? 0 : len < 65536 ? 2 : 8;
  const header = Buffer.alloc(2 + lenBytes + (masked ? 4 : 0));
  header[0] = (fin ? 0x80 : 0) | (((opts.rsv ?? 0) & 0x7) << 4) | (opcode & 0x0f);
  if (lenBytes === 0) header[1] = len;
  else if (lenBytes === 2) {
    header[1] = 126;
    header.writeUInt16BE(len, 2);
  } else {
    header[1] = 127;
    header.writeBigUInt64BE(BigInt(len), 2);
  }
  if (!masked) return Buffer.concat([header, data]);
  header[1] |= 0x80;
  const maskKey = randomBytes(4);
  maskKey.copy(header, 2 + lenBytes);
  const body = Buffer.allocUnsafe(len);
  for (let i = 0; i < len; i++) body[i] = data[i] ^ maskKey[i & 3];
  return Buffer.concat([header, body]);
}

export interface ServerFrame {
  fin: boolean;
  opcode: number;
  payload: Buffer;
}

/**
 * Incremental parser of server → client frames (unmasked). `push` bytes as they arrive;
 * complete frames come out of `frames`. `maxPayload` bounds what one frame may claim.
 */
export class ServerFrameParser {
  /** Frames kept: control frames always, data frames only with `keepData`. */
  readonly frames: ServerFrame[] = [];
  /** Data frames (text, binary, continuation) seen, kept or not. */
  dataFrames = 0;
  #buf: Buffer = Buffer.alloc(0);
  readonly #maxPayload: number;
  readonly #keepData: boolean;

  constructor(opts: { maxPayload?: number; keepData?: boolean } = {}) {
    this.#maxPayload = opts.maxPayload ?? 64 * 1024 * 1024;
    this.#keepData = opts.keepData ?? true;
  }

  push(chunk: Buffer): void {
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    for (;;) {
      const b = this.#buf;
      if (b.length < 2) return;
      const masked = (b[1] & 0x80) !== 0;
      let len = b[1] & 0x7f;
      let off = 2;
      if (len === 126) {
        if (b.length < 4) return;
        len = b.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (b.length < 10) return;
        len = Number(b.readBigUInt64BE(2));
        off = 10;
      }
      if (len > this.#maxPayload) throw new Error(`server frame claims ${len} bytes`);
      if (masked) off += 4;
      if (b.length < off + len) return;
      let payload = b.subarray(off, off + len);
      if (masked) {
        const key = b.subarray(off - 4, off);
        payload = Buffer.from(payload.map((x, i) => x ^ key[i & 3]));
      }
      const opcode = b[0] & 0x0f;
      if (opcode < 0x8) this.dataFrames++;
      if (opcode >= 0x8 || this.#keepData) this.frames.push({ fin: (b[0] & 0x80) !== 0, opcode, payload: Buffer.from(payload) });
      this.#buf = b.subarray(off + len);
    }
  }

  /** The close code of the first close frame seen, if any. */
  closeCode(): number | undefined {
    const f = this.frames.find((x) => x.opcode === WsOpcode.close);
    if (f === undefined) return undefined;
    return f.payload.length >= 2 ? f.payload.readUInt16BE(0) : 1005;
  }
}
