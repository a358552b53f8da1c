/**
 * Input generators for fuzzing a live broker: binary protocol frames (valid, from
 * BinaryFrameWriter, and mutated), JSON text ops (random and mutated) and raw HTTP/1.1
 * requests. Everything is drawn from a seeded Prng, so a lane's inputs replay from its seed.
 */
import { gzipSync, deflateSync } from 'node:zlib';
import type { Prng } from './prng.js';
import { BinaryFrameWriter } from '../../src/protocol/ws-binary-encode.js';
import type { HeaderTable, HeaderValue } from '../../src/protocol/field-table.js';
import type { MessageProperties } from '../../src/protocol/properties.js';

/**
 * Names the fuzzer may use. The well-behaved client's queue is never among them, so the
 * fuzzer cannot consume, purge or delete it by name (that would be a legitimate operation,
 * not a robustness failure).
 */
export const FUZZ_QUEUES = [
  'fz0',
  'fz1',
  'fz2',
  'fz3',
  'fz-dlq',
  'amq.gen-fz',
  '',
  ' ',
  'a'.repeat(255),
  'a'.repeat(256),
  'ü-名前',
  'fz/slash',
];
export const FUZZ_EXCHANGES = [
  '',
  'amq.direct',
  'amq.topic',
  'amq.fanout',
  'amq.headers',
  'amq.default',
  'fzx',
  'fzx2',
  'nope',
  'x'.repeat(256),
];
export const FUZZ_DESTINATIONS = [
  '/queue/fz0',
  '/queue/fz1',
  '/queue/fz2',
  '/queue/',
  '/queue/fz-dlq',
  '/topic/fz.a',
  '/topic/fz.*',
  '/topic/#',
  '/topic/*.*.#',
  '/topic/',
  '/topic/a..b',
  '/exchange/amq.direct/k',
  '/exchange/amq.fanout/',
  '/exchange/fzx/k',
  '/exchange/nope/k',
  '/exchange/',
  '/exchange//k',
  '/bogus',
  'queue/fz0',
  '',
  '/queue/' + 'q'.repeat(300),
  '/topic/' + 'k.'.repeat(200),
];
const EXCHANGE_TYPES = ['direct', 'fanout', 'topic', 'headers', 'x-consistent-hash', 'bogus', ''];

export function randomBytes(rng: Prng, max: number): Uint8Array {
  const b = new Uint8Array(rng.skewedSize(0, 64, max));
  rng.fill(b);
  return b;
}

function randomString(rng: Prng, max = 16): string {
  const alphabet = ['a', 'b', '.', '*', '#', '/', '-', '_', ' ', '%', '"', '\\', 'é', '名', '\u0000', '\ud800', '😀'];
  let s = '';
  const n = rng.int(0, max);
  for (let i = 0; i < n; i++) s += rng.pick(alphabet);
  return s;
}

function randomHeaderValue(rng: Prng, depth = 0): HeaderValue {
  switch (rng.int(0, depth > 2 ? 4 : 6)) {
    case 0:
      return randomString(rng);
    case 1:
      return rng.pick([0, -1, 1.5, 2 ** 31, 2 ** 53, -(2 ** 63), NaN, Infinity, rng.int(0, 1_000_000)]);
    case 2:
      return rng.chance(0.5);
    case 3:
      return null;
    case 4:
      return randomBytes(rng, 32);
    case 5:
      return Array.from({ length: rng.int(0, 4) }, () => randomHeaderValue(rng, depth + 1));
    default:
      return randomTable(rng, depth + 1);
  }
}

function randomTable(rng: Prng, depth = 0): HeaderTable {
  const t: HeaderTable = {};
  const keys = [
    'x-max-length',
    'x-max-length-bytes',
    'x-message-ttl',
    'x-expires',
    'x-dead-letter-exchange',
    'x-dead-letter-routing-key',
    'x-overflow',
    'x-max-priority',
    'x-delivery-limit',
    'x-queue-type',
    'x-match',
    'alternate-exchange',
    'x-shardmq-slow-consumer',
    '__proto__',
    'k',
  ];
  const n = rng.int(0, 4);
  for (let i = 0; i < n; i++) {
    const key = rng.chance(0.8) ? rng.pick(keys) : randomString(rng, 8);
    t[key] = rng.chance(0.3)
      ? rng.pick<HeaderValue>([
          0,
          1,
          10,
          -5,
          'drop-head',
          'reject-publish',
          'reject-publish-dlx',
          'all',
          'any',
          'fzx',
          'amq.direct',
          'disconnect',
        ])
      : randomHeaderValue(rng, depth);
  }
  return t;
}

function randomProperties(rng: Prng): MessageProperties | undefined {
  if (rng.chance(0.6)) return undefined;
  const p: MessageProperties = {};
  if (rng.chance(0.3)) p.contentType = randomString(rng);
  if (rng.chance(0.3)) p.headers = randomTable(rng);
  if (rng.chance(0.3)) p.deliveryMode = rng.pick([1, 2] as const);
  if (rng.chance(0.3)) p.priority = rng.int(0, 255);
  if (rng.chance(0.3)) p.expiration = rng.pick(['0', '1', '10', '100000', '-1', 'abc', '1e3', '']);
  if (rng.chance(0.2)) p.messageId = randomString(rng);
  if (rng.chance(0.2)) p.timestamp = rng.int(0, 2 ** 31);
  if (rng.chance(0.2)) p.replyTo = randomString(rng);
  return p;
}

/** One or a few valid client → server ops written with BinaryFrameWriter (may be semantically bad). */
export function validBinaryFrame(rng: Prng, writer = new BinaryFrameWriter()): Uint8Array {
  writer.reset();
  const ops = rng.skewedSize(1, 2, 20);
  for (let i = 0; i < ops; i++) {
    try {
      writeRandomOp(rng, writer);
    } catch {
      // The writer refused the input (e.g. an over-long name): it rolled back that op.
    }
  }
  return writer.finishCopy();
}

function writeRandomOp(rng: Prng, w: BinaryFrameWriter): void {
  const req = rng.chance(0.2) ? 0 : rng.int(1, 1000);
  const dest = rng.chance(0.9) ? rng.pick(FUZZ_DESTINATIONS) : randomString(rng, 40);
  const queue = rng.pick(FUZZ_QUEUES);
  const exchange = rng.pick(FUZZ_EXCHANGES);
  const key = rng.chance(0.7) ? rng.pick(['k', 'fz.a', '#', '*', '', 'fz0', 'fz1']) : randomString(rng, 20);
  switch (rng.int(0, 16)) {
    case 0:
    case 1:
    case 2:
      w.publish(dest, randomBytes(rng, 2048), randomProperties(rng));
      return;
    case 3:
      w.publishBatch(
        dest,
        Array.from({ length: rng.int(0, 20) }, () => randomBytes(rng, 256)),
        randomProperties(rng),
      );
      return;
    case 4:
      w.confirmSelect(req);
      return;
    case 5:
      w.subscribe(req, rng.int(0, 5), dest, rng.pick(['auto', 'client'] as const), rng.pick([0, 1, 10, 0xffff_ffff]));
      return;
    case 6:
      w.unsubscribe(req, rng.int(0, 5));
      return;
    case 7:
      w.ack(rng.pick([0, 1, 2, 3, 100, 2 ** 40, 2 ** 53 - 1]), rng.chance(0.3));
      return;
    case 8:
      w.nack(rng.pick([0, 1, 2, 3, 100, 2 ** 53 - 1]), rng.chance(0.3), rng.chance(0.5));
      return;
    case 9:
      w.declareExchange(req, exchange, rng.pick(EXCHANGE_TYPES), {
        passive: rng.chance(0.2),
        durable: rng.chance(0.5),
        autoDelete: rng.chance(0.3),
        internal: rng.chance(0.1),
        arguments: randomTable(rng),
      });
      return;
    case 10:
      w.deleteExchange(req, exchange, rng.chance(0.5));
      return;
    case 11:
      w.declareQueue(req, queue, {
        passive: rng.chance(0.2),
        durable: rng.chance(0.5),
        exclusive: rng.chance(0.3),
        autoDelete: rng.chance(0.3),
        arguments: randomTable(rng),
      });
      return;
    case 12:
      w.deleteQueue(req, queue, { ifUnused: rng.chance(0.5), ifEmpty: rng.chance(0.5) });
      return;
    case 13:
      w.purgeQueue(req, queue);
      return;
    case 14:
      if (rng.chance(0.5)) w.bindQueue(req, queue, exchange, key, randomTable(rng));
      else w.unbindQueue(req, queue, exchange, key, randomTable(rng));
      return;
    default:
      if (rng.chance(0.5)) w.bindExchange(req, rng.pick(FUZZ_EXCHANGES), exchange, key, randomTable(rng));
      else w.unbindExchange(req, rng.pick(FUZZ_EXCHANGES), exchange, key, randomTable(rng));
  }
}

const INTERESTING_BYTES = [0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff, 0x40, 0x3f];
const INTERESTING_U32 = [0, 1, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff, 0x10_0000, 0x100_0000];

/** A copy of `input` with 1–4 random mutations: bit flips, interesting bytes and u32s, cuts, splices. */
export function mutate(rng: Prng, input: Uint8Array): Uint8Array {
  let b = Uint8Array.from(input);
  const n = rng.int(1, 4);
  for (let i = 0; i < n; i++) {
    switch (rng.int(0, 7)) {
      case 0:
        if (b.length > 0) b[rng.int(0, b.length - 1)] ^= 1 << rng.int(0, 7);
        break;
      case 1:
        if (b.length > 0) b[rng.int(0, b.length - 1)] = rng.pick(INTERESTING_BYTES);
        break;
      case 2:
        if (b.length >= 4) {
          const at = rng.int(0, b.length - 4);
          new DataView(b.buffer, b.byteOffset, b.byteLength).setUint32(at, rng.pick(INTERESTING_U32), true);
        }
        break;
      case 3:
        b = b.subarray(0, rng.int(0, b.length));
        break;
      case 4: {
        const extra = randomBytes(rng, 64);
        const out = new Uint8Array(b.length + extra.length);
        out.set(b);
        out.set(extra, b.length);
        b = out;
        break;
      }
      case 5: {
        if (b.length === 0) break;
        const from = rng.int(0, b.length - 1);
        const piece = b.slice(from, rng.int(from, b.length));
        const at = rng.int(0, b.length);
        const out = new Uint8Array(b.length + piece.length);
        out.set(b.subarray(0, at));
        out.set(piece, at);
        out.set(b.subarray(at), at + piece.length);
        b = out;
        break;
      }
      case 6:
        if (b.length > 1) {
          const at = rng.int(0, b.length - 1);
          b = Uint8Array.from([...b.subarray(0, at), ...b.subarray(at + 1)]);
        }
        break;
      default:
        // The op length field of the first op (bytes 1–4) gets a value that lies.
        if (b.length >= 5) new DataView(b.buffer, b.byteOffset, b.byteLength).setUint32(1, rng.pick(INTERESTING_U32), true);
    }
  }
  return b;
}

// ---- JSON text frames ------------------------------------------------------------------------

function randomJsonValue(rng: Prng, depth = 0): unknown {
  switch (rng.int(0, depth > 3 ? 3 : 5)) {
    case 0:
      return randomString(rng, 20);
    case 1:
      return rng.pick([0, -1, 1, 1.5, 2 ** 32, 2 ** 53, -(2 ** 53), 1e308, rng.int(0, 100000)]);
    case 2:
      return rng.pick([true, false, null]);
    case 3:
      return rng.pick(['', 'auto', 'client', 'base64', 'utf8', '/queue/fz0', 'publish', 'subscribe']);
    case 4:
      return Array.from({ length: rng.int(0, 4) }, () => randomJsonValue(rng, depth + 1));
    default: {
      const o: Record<string, unknown> = {};
      for (let i = rng.int(0, 5); i > 0; i--)
        o[
          rng.pick([
            'op',
            'id',
            'destination',
            'payload',
            'ack',
            'prefetch',
            'tag',
            'receipt',
            'requeue',
            'multiple',
            'encoding',
            'properties',
            '__proto__',
            randomString(rng, 6),
          ])
        ] = randomJsonValue(rng, depth + 1);
      return o;
    }
  }
}

function plausibleOp(rng: Prng): Record<string, unknown> {
  const dest = rng.chance(0.9) ? rng.pick(FUZZ_DESTINATIONS) : randomString(rng, 30);
  switch (rng.int(0, 4)) {
    case 0:
      return {
        op: 'subscribe',
        id: rng.pick(['s1', 's2', '', 'x'.repeat(200)]),
        destination: dest,
        ack: rng.pick(['auto', 'client', 'bogus']),
        prefetch: rng.pick([0, 1, 10, -1, 1.5, 2 ** 33]),
      };
    case 1:
      return { op: 'unsubscribe', id: rng.pick(['s1', 's2', 'none']) };
    case 2: {
      const o: Record<string, unknown> = {
        op: 'publish',
        destination: dest,
        payload: rng.chance(0.8) ? randomString(rng, 200) : rng.pick([null, 5, {}, []]),
      };
      if (rng.chance(0.3)) o.encoding = rng.pick(['base64', 'utf8', 'hex']);
      if (rng.chance(0.3))
        o.properties = rng.chance(0.5)
          ? {
              content_type: 'x',
              headers: { a: 1 },
              priority: rng.pick([1, 300, -1]),
              expiration: rng.pick(['10', 'x']),
              delivery_mode: rng.pick([1, 2, 3]),
            }
          : randomJsonValue(rng);
      if (rng.chance(0.5)) o.receipt = rng.pick(['r', '', 7]);
      return o;
    }
    case 3:
      return { op: 'ack', tag: rng.pick([0, 1, 2, -1, 1.5, 2 ** 53, '1']), multiple: rng.pick([true, false, 'yes']) };
    default:
      return { op: 'nack', tag: rng.pick([0, 1, 2, -1, 2 ** 60]), requeue: rng.pick([true, false, 0]) };
  }
}

/** A JSON text frame: random JSON, a plausible op with bad fields, or text that is not JSON. */
export function jsonTextFrame(rng: Prng): string {
  const kind = rng.int(0, 9);
  if (kind <= 3) return JSON.stringify(plausibleOp(rng));
  if (kind <= 5) return JSON.stringify(randomJsonValue(rng));
  const valid = JSON.stringify(plausibleOp(rng));
  switch (kind) {
    case 6:
      return valid.slice(0, rng.int(0, valid.length));
    case 7: {
      const chars = [...valid];
      for (let i = rng.int(1, 4); i > 0; i--)
        chars[rng.int(0, Math.max(0, chars.length - 1))] = rng.pick(['{', '}', '"', ',', ':', '\\', '\u0000', 'x', '\\ud800']);
      return chars.join('');
    }
    case 8:
      return '['.repeat(rng.int(1, 5000)) + ']'.repeat(rng.int(0, 5000));
    default:
      return randomString(rng, 100);
  }
}

// ---- HTTP/1.1 requests ------------------------------------------------------------------------

export interface HttpFuzzRequest {
  /** The bytes to write. */
  bytes: Buffer;
  /**
   * 'complete': a well-formed request with its whole body, which must get a status line;
   * 'malformed': may get a status line or a closed connection;
   * 'truncated': the body stops midway and the client destroys the socket.
   */
  mode: 'complete' | 'malformed' | 'truncated';
  /** Short description for failure messages. */
  what: string;
}

const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'HEAD', 'OPTIONS', 'PATCH', 'TRACE', 'post', 'FOO', 'G\u0000T', ''];
const PATHS = [
  '/v1/publish/queue/fz0',
  '/v1/publish/queue/fz1',
  '/v1/publish/topic/fz.a',
  '/v1/publish/exchange/amq.topic/fz.a',
  '/v1/publish/exchange/nope/k',
  '/v1/publish/',
  '/v1/publish/queue/',
  '/v1/publish/%zz',
  '/v1/publish/queue/%00',
  '/v1/publish/queue/' + 'q'.repeat(400),
  '/v1/publish/topic/a..b',
  '/healthz',
  '/v1/stats',
  '/metrics',
  '/v1/queues',
  '/v1/queues/fz2',
  '/v1/queues/fz3/contents',
  '/v1/exchanges',
  '/v1/exchanges/fzx',
  '/v1/exchanges/amq.direct',
  '/v1/exchanges/',
  '/v1/bindings',
  '/v1/ws',
  '/',
  '/../../etc/passwd',
  '/v1/publish/queue/fz0?token=x&x=%',
];
/**
 * Request targets that are not origin-form. uWS (20.30) answers none of these and holds the
 * connection until its ~10 s idle timeout, so they are sent as 'malformed' (no answer required)
 * and reported; see the fuzz test's header.
 */
const ODD_TARGETS = ['*', 'http://127.0.0.1/healthz', 'healthz', ''];

function gzipBody(rng: Prng, ndjson: boolean): Buffer {
  const lines = Array.from({ length: rng.int(1, 50) }, (_, i) => `fuzz-${i}-${randomString(rng, 30)}`);
  const raw = Buffer.from(ndjson ? lines.join('\n') + '\n' : lines[0]);
  return rng.chance(0.5) ? gzipSync(raw) : deflateSync(raw);
}

/** A random HTTP/1.1 request, written by hand so anything can be wrong with it. */
export function httpRequest(rng: Prng, host: string): HttpFuzzRequest {
  const wellFormed = rng.chance(0.6);
  const method = wellFormed ? rng.pick(['GET', 'POST', 'PUT', 'DELETE', 'POST', 'POST']) : rng.pick(METHODS);
  let path = rng.pick(PATHS);
  if (!wellFormed && rng.chance(0.3))
    path =
      '/' +
      Buffer.from(randomBytes(rng, 40))
        .toString('latin1')
        .replace(/[\r\n ]/g, '');
  if (!wellFormed && rng.chance(0.1)) path = rng.pick(ODD_TARGETS);
  const headers: Array<[string, string]> = [['Host', host]];
  let body: Buffer;
  const bodyKind = rng.int(0, 7);
  switch (bodyKind) {
    case 0:
      body = Buffer.alloc(0);
      break;
    case 1:
      body = Buffer.from(randomBytes(rng, 4096));
      break;
    case 2:
      body = Buffer.from(Array.from({ length: rng.int(1, 100) }, () => randomString(rng, 40)).join('\n'));
      headers.push(['Content-Type', 'application/x-ndjson']);
      break;
    case 3:
    case 4: {
      const ndjson = rng.chance(0.7);
      body = gzipBody(rng, ndjson);
      if (ndjson) headers.push(['Content-Type', 'application/x-ndjson']);
      headers.push(['Content-Encoding', body[0] === 0x1f ? 'gzip' : 'deflate']);
      // A compressed body cut short: the inflater must fail cleanly (400), not hang.
      if (bodyKind === 4) body = body.subarray(0, rng.int(0, body.length - 1));
      break;
    }
    case 5:
      body = Buffer.from(randomBytes(rng, 512));
      headers.push(['Content-Encoding', rng.pick(['gzip', 'deflate', 'br', 'identity', 'gzip, gzip', 'x-bogus', 'GZIP', ''])]);
      break;
    case 6:
      body = Buffer.from(
        JSON.stringify({
          type: rng.pick(EXCHANGE_TYPES),
          durable: rng.pick([true, false, 'x']),
          auto_delete: rng.chance(0.5),
          arguments: rng.chance(0.5) ? { 'x-max-length': rng.int(-1, 5) } : 'bad',
          source: rng.pick(FUZZ_EXCHANGES),
          destination: rng.pick(FUZZ_QUEUES),
          routing_key: 'k',
        }),
      );
      headers.push(['Content-Type', 'application/json']);
      break;
    default:
      body = Buffer.from('x'.repeat(rng.pick([1, 1000, 70_000])));
  }
  if (rng.chance(0.2))
    headers.push([
      rng.pick(['x-priority', 'x-expiration', 'x-delivery-mode', 'x-header-a', 'x-message-id', 'content-type', 'authorization']),
      rng.pick(['1', '300', '-5', 'abc', '', 'Bearer x', 'x'.repeat(5000)]),
    ]);
  let mode: HttpFuzzRequest['mode'] = wellFormed ? 'complete' : 'malformed';
  let head = `${method} ${path} HTTP/1.1\r\n`;
  const framing = rng.int(0, 9);
  let sent = body;
  if (framing <= 5) {
    headers.push(['Content-Length', String(body.length)]);
  } else if (framing === 6) {
    // Declares more than it sends, then the client goes away mid-body.
    headers.push(['Content-Length', String(body.length + rng.int(1, 100_000))]);
    mode = 'truncated';
  } else if (framing === 7) {
    headers.push(['Transfer-Encoding', 'chunked']);
    const chunk = body.length.toString(16);
    sent = Buffer.concat([Buffer.from(`${chunk}\r\n`), body, Buffer.from(rng.chance(0.7) ? '\r\n0\r\n\r\n' : '\r\nZZ\r\n')]);
    mode = 'malformed';
  } else if (framing === 8) {
    headers.push(['Content-Length', rng.pick(['-1', 'abc', '99999999999999999999', `${body.length}, ${body.length}`, ' 1'])]);
    mode = 'malformed';
  } else {
    // No framing at all: the body reads as the next request's bytes.
    mode = 'malformed';
  }
  if (!wellFormed && rng.chance(0.3)) headers.push([randomString(rng, 10), randomString(rng, 10)]);
  if (rng.chance(0.05)) {
    // A header line without a colon, or a huge header block.
    head += rng.chance(0.5) ? 'NoColonHere\r\n' : `X-Big: ${'b'.repeat(rng.pick([10_000, 100_000]))}\r\n`;
    mode = mode === 'truncated' ? 'truncated' : 'malformed';
  }
  for (const [k, v] of headers) head += `${k}: ${v}\r\n`;
  const bytes = Buffer.concat([Buffer.from(head + '\r\n', 'latin1'), sent]);
  return { bytes, mode, what: `${method} ${path.slice(0, 60)} (${mode}, body ${body.length} B, kind ${bodyKind}, framing ${framing})` };
}
