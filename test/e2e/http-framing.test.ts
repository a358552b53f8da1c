/**
 * Issue 18, item 3: every HTTP request gets a status, or is one of the inputs uWebSockets.js
 * refuses by itself before the broker sees the request (docs/security.md lists them). Raw bytes
 * over a socket, because fetch cannot send most of these. Each socket is bounded in time.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from 'node:net';
import type { Broker } from '../../src/front/broker.js';
import { startBroker } from '../helpers/broker.js';
import { request, settledDepth } from '../helpers/http.js';

let broker: Broker;
let port: number;
beforeAll(async () => {
  broker = await startBroker();
  port = Number(new URL(broker.url).port);
});
afterAll(async () => broker?.stop());

interface RawAnswer {
  /** The status line's code, or null when no status came. */
  status: number | null;
  body: string;
  /** The broker closed the socket within the wait. */
  closed: boolean;
  elapsedMs: number;
}

/** Writes `chunks` (20 ms apart) and collects what comes back for at most `waitMs`. */
function raw(chunks: readonly string[], waitMs = 1000): Promise<RawAnswer> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    const started = Date.now();
    let text = '';
    let settled = false;
    const done = (closed: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
      resolve({
        status: m === null ? null : Number(m[1]),
        body: text.slice(text.indexOf('\r\n\r\n') + 4),
        closed,
        elapsedMs: Date.now() - started,
      });
    };
    const timer = setTimeout(() => done(false), waitMs);
    socket.on('data', (d) => {
      text += d.toString('latin1');
      // One whole answer is enough: a status line and a body as long as it says.
      const length = /content-length: (\d+)/i.exec(text);
      if (length !== null && text.length >= text.indexOf('\r\n\r\n') + 4 + Number(length[1])) done(false);
    });
    socket.on('close', () => done(true));
    socket.on('error', () => undefined);
    let i = 0;
    const next = (): void => {
      if (i < chunks.length && !settled) {
        socket.write(chunks[i++]);
        setTimeout(next, 20);
      }
    };
    next();
  });
}

const publish = (headers: string, body = ''): string => `POST /v1/publish/queue/framing HTTP/1.1\r\nHost: a\r\n${headers}\r\n${body}`;

describe('e2e - HTTP framing the broker answers', () => {
  it.each(
    (
      [
        [
          'two different content-lengths (request smuggling)',
          publish('Content-Length: 3\r\nContent-Length: 5\r\n', 'abcde'),
          400,
          'bad_request',
        ],
        ['two equal content-lengths', publish('Content-Length: 3\r\nContent-Length: 3\r\n', 'abc'), 400, 'bad_request'],
        [
          'two transfer-encodings',
          publish('Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n', '1\r\nx\r\n0\r\n\r\n'),
          400,
          'bad_request',
        ],
        [
          'a transfer coding other than chunked',
          publish('Transfer-Encoding: gzip, chunked\r\n', '1\r\nx\r\n0\r\n\r\n'),
          400,
          'bad_request',
        ],
        ['a publish with no length at all', publish(''), 411, 'length_required'],
        [
          '5 KiB of headers in one packet',
          `GET /healthz HTTP/1.1\r\nHost: a\r\nx-big: ${'a'.repeat(5000)}\r\n\r\n`,
          431,
          'headers_too_large',
        ],
        ['30 KiB of headers on a publish', publish(`x-big: ${'a'.repeat(30_000)}\r\nContent-Length: 1\r\n`, 'x'), 431, 'headers_too_large'],
      ] as Array<[string, string, number, string]>
    ).map(([what, bytes, status, error]) => ({ what, bytes, status, error })),
  )('$what: $status with a JSON error', async ({ bytes, status, error }) => {
    const answer = await raw([bytes]);
    expect(answer.status).toBe(status);
    expect(JSON.parse(answer.body)).toMatchObject({ error });
    expect(answer.elapsedMs).toBeLessThan(1000);
  });

  it('nothing refused was enqueued; a well-framed publish still is', async () => {
    expect((await raw([publish('Content-Length: 2\r\n', 'ok')])).status).toBe(200);
    expect((await raw([publish('Transfer-Encoding: chunked\r\n', '2\r\nok\r\n0\r\n\r\n')])).status).toBe(200);
    expect(await settledDepth(broker.url, 'framing', 2)).toBe(2);
  });
});

describe('e2e - HTTP inputs uWebSockets.js refuses by itself (pinned; docs/security.md)', () => {
  // uWS closes these sockets at once, without a status line; the broker never sees the request.
  it.each([
    ['a negative content-length', publish('Content-Length: -5\r\n', 'x')],
    ['a content-length that is not a number', publish('Content-Length: abc\r\n', 'x')],
    ['a content-length list', publish('Content-Length: 3, 3\r\n', 'abc')],
    ['content-length with transfer-encoding', publish('Content-Length: 1\r\nTransfer-Encoding: chunked\r\n', '1\r\nx\r\n0\r\n\r\n')],
    ['a publish without Host', 'POST /v1/publish/queue/framing HTTP/1.1\r\nContent-Length: 1\r\n\r\nx'],
    ['a method with a bad character', 'G(T /healthz HTTP/1.1\r\nHost: a\r\n\r\n'],
  ])('%s: closed without a status', async (_what, bytes) => {
    const answer = await raw([bytes]);
    expect(answer).toMatchObject({ status: null, closed: true });
  });

  it('over 4 KiB of headers arriving in more than one read: closed without a status', async () => {
    const head = `GET /healthz HTTP/1.1\r\nHost: a\r\nx-big: ${'a'.repeat(2000)}`;
    const answer = await raw([head, 'a'.repeat(3000) + '\r\n\r\n']);
    expect(answer).toMatchObject({ status: null, closed: true });
  });

  // uWS neither answers nor closes these: the socket waits for its idle timeout (about 10 s).
  it('an underscore in a header name, a space in one, a control character, a bare LF, an absolute-form target, HTTP/1.0, a GET without Host, over 50 header fields: no answer (held until uWS times the socket out)', async () => {
    const inputs = [
      'GET /healthz HTTP/1.1\r\nHost: a\r\nx-header-a_b: v\r\n\r\n',
      'GET /healthz HTTP/1.1\r\nHost: a\r\nx a: v\r\n\r\n',
      'GET /healthz HTTP/1.1\r\nHost: a\r\nx-a: v\x01\r\n\r\n',
      'GET /healthz HTTP/1.1\nHost: a\n\n',
      'GET http://a/healthz HTTP/1.1\r\nHost: a\r\n\r\n',
      'GET /healthz HTTP/1.0\r\nHost: a\r\n\r\n',
      'GET /healthz HTTP/1.1\r\n\r\n',
      `GET /healthz HTTP/1.1\r\nHost: a\r\n${Array.from({ length: 60 }, (_, i) => `x-h${i}: v\r\n`).join('')}\r\n`,
    ];
    const answers = await Promise.all(inputs.map((bytes) => raw([bytes], 1000)));
    for (const [i, a] of answers.entries())
      expect(a, JSON.stringify(inputs[i].slice(0, 40))).toMatchObject({ status: null, closed: false });
  });

  it('the broker stays healthy after all of them', async () => {
    expect((await request(`${broker.url}/healthz`, {}, 2000)).status).toBe(200);
    expect((await request(`${broker.url}/v1/publish/queue/after`, { method: 'POST', body: 'x' }, 2000)).status).toBe(200);
  });
});
