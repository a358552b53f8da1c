/**
 * Fuzzes a live in-process broker for a bounded time (SHARDMQ_FUZZ_MS, default 10 s) with:
 *   - WebSocket binary frames: random bytes, valid frames from BinaryFrameWriter, and mutated ones;
 *   - WebSocket text frames: random JSON, plausible ops with bad fields, text that is not JSON;
 *   - WebSocket protocol violations written by hand over TCP (bad opcodes, RSV bits, unmasked or
 *     oversized control frames, invalid UTF-8, broken fragmentation, frames past max-frame-bytes);
 *   - HTTP/1.1 requests written by hand: random methods, paths, headers and bodies, bogus
 *     content-encoding, truncated gzip, broken framing, bodies that stop midway (socket destroyed).
 * Meanwhile a well-behaved client publishes to and consumes from a queue of its own. At the end:
 * /healthz is 200, no shard restarted, the good client received exactly what it published, bad
 * input was answered (error frames, close codes, 4xx), no complete HTTP request hung, and nothing
 * was answered with an internal error. Inputs come from a seeded PRNG; the seed is printed
 * (replay with SHARDMQ_SEED=<seed>; lanes interleave by timing, so a replay is close, not exact).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from 'node:net';
import WebSocket from 'ws';
import type { Broker } from '../../src/front/broker.js';
import { startBroker } from '../helpers/broker.js';
import { Prng, testSeed } from '../helpers/prng.js';
import { brokerStats, request, sleep, waitFor } from '../helpers/http.js';
import { StreamSubscriber } from '../helpers/stream-subscriber.js';
import { rawWebSocket, encodeClientFrame, ServerFrameParser, WsOpcode } from '../helpers/raw-ws.js';
import { httpRequest, jsonTextFrame, mutate, randomBytes, validBinaryFrame } from '../helpers/fuzz-inputs.js';
import { BinaryDecoder, Direction } from '../../src/protocol/ws-binary-decode.js';
import { BinaryFrameWriter } from '../../src/protocol/ws-binary-encode.js';
import type { BinaryClientDispatcher } from '../../src/protocol/ws-binary.js';

const FUZZ_MS = Number(process.env.SHARDMQ_FUZZ_MS ?? 10_000);
const MAX_INPUTS = Number(process.env.SHARDMQ_FUZZ_MAX_INPUTS ?? 1_000_000);
const LANES = 4;
const MAX_FRAME_BYTES = 65_536;
const SEED = testSeed();

interface Tally {
  inputs: number;
  byKind: Record<string, number>;
  closeCodes: Record<string, number>;
  errorCodes: Record<string, number>;
  httpStatus: Record<string, number>;
  /** Complete HTTP requests that got neither a status line nor a closed connection in time. */
  hung: string[];
  /** Evidence of unexpected exceptions: 500s and `internal` error frames. */
  internal: string[];
  /** Server binary frames our own decoder could not read (the server must only send valid ones). */
  badServerFrames: string[];
}

const tally: Tally = { inputs: 0, byKind: {}, closeCodes: {}, errorCodes: {}, httpStatus: {}, hung: [], internal: [], badServerFrames: [] };
const bump = (rec: Record<string, number>, key: string | number): void => {
  rec[String(key)] = (rec[String(key)] ?? 0) + 1;
};

/** Counts what the broker answered on a fuzz connection: JSON error frames, binary ERROR/CANCEL ops. */
function countServerFrame(data: WebSocket.RawData, isBinary: boolean): void {
  const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
  if (!isBinary) {
    let f: { op?: string; code?: string; message?: string };
    try {
      f = JSON.parse(buf.toString('utf8')) as typeof f;
    } catch {
      tally.badServerFrames.push(`text: ${buf.toString('utf8').slice(0, 80)}`);
      return;
    }
    if (f.op === 'error' && typeof f.code === 'string') {
      bump(tally.errorCodes, f.code);
      if (f.code === 'internal' && tally.internal.length < 20) tally.internal.push(`ws json: ${f.message}`);
    }
    return;
  }
  const onCoded = (ev: { code: string; message: string }): void => {
    bump(tally.errorCodes, ev.code);
    if (ev.code === 'internal' && tally.internal.length < 20) tally.internal.push(`ws binary: ${ev.message}`);
  };
  const dispatcher: BinaryClientDispatcher = {
    processDeliver: () => undefined,
    processConfirm: () => undefined,
    processOk: () => undefined,
    processError: onCoded,
    processCancel: onCoded,
    processCredit: () => undefined,
    processDropped: () => undefined,
    processStream: () => undefined,
  };
  try {
    new BinaryDecoder(Direction.toClient, dispatcher).decodeFrame(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength));
  } catch (err) {
    if (tally.badServerFrames.length < 20) tally.badServerFrames.push(`binary: ${(err as Error).message.slice(0, 200)}`);
  }
}

/** One fuzz lane's WebSocket (a `ws` client): reopened whenever the broker closes it. */
class FuzzSocket {
  #ws: WebSocket | null = null;
  #opening: Promise<WebSocket> | null = null;

  constructor(private readonly url: string) {}

  async get(): Promise<WebSocket> {
    if (this.#ws !== null && this.#ws.readyState === WebSocket.OPEN) return this.#ws;
    this.#opening ??= this.#open().finally(() => (this.#opening = null));
    return this.#opening;
  }

  async #open(): Promise<WebSocket> {
    const ws = new WebSocket(this.url.replace(/^http/, 'ws') + '/v1/ws', { maxPayload: 64 * 1024 * 1024 });
    ws.on('message', countServerFrame);
    ws.on('close', (code) => bump(tally.closeCodes, code));
    ws.on('error', () => undefined);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('fuzz websocket did not open in 5 s')), 5000);
      ws.once('open', () => {
        clearTimeout(timer);
        resolve();
      });
      ws.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
    this.#ws = ws;
    return ws;
  }

  async send(data: Uint8Array | string, binary: boolean): Promise<void> {
    const ws = await this.get();
    // Bounded buffering on our side too: wait for the socket to drain past 1 MiB.
    for (let i = 0; i < 100 && ws.bufferedAmount > 1024 * 1024; i++) await sleep(10);
    ws.send(data, { binary });
  }

  close(): void {
    this.#ws?.terminate();
  }
}

/** Writes one raw request over TCP and records the status line, a close, or a hang. */
function sendHttp(url: string, rng: Prng): Promise<void> {
  const u = new URL(url);
  const req = httpRequest(rng, u.host);
  return new Promise<void>((resolve) => {
    const socket = connect({ host: u.hostname, port: Number(u.port) });
    let head = '';
    let done = false;
    const finish = (outcome: string): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      bump(tally.httpStatus, outcome);
      if (outcome === 'timeout' && req.mode === 'complete' && tally.hung.length < 20) tally.hung.push(req.what);
      socket.destroy();
      resolve();
    };
    const wait = req.mode === 'truncated' ? rng.int(0, 100) : req.mode === 'malformed' ? 1000 : 3000;
    const timer = setTimeout(
      () => finish(req.mode === 'truncated' ? 'truncated' : req.mode === 'malformed' ? 'no-answer-1s' : 'timeout'),
      wait,
    );
    socket.on('data', (d: Buffer) => {
      head += d.toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(head);
      if (m) {
        const status = Number(m[1]);
        if (status === 500 && tally.internal.length < 20) tally.internal.push(`http 500 for ${req.what}: ${head.slice(0, 300)}`);
        finish(String(status));
      } else if (head.length >= 12) {
        finish('garbage');
      }
    });
    socket.on('error', () => finish('error'));
    socket.on('close', () => finish('closed'));
    socket.on('connect', () => socket.write(req.bytes));
  });
}

/** One hand-written WebSocket protocol violation on a fresh connection; records how it ended. */
async function sendWsViolation(url: string, rng: Prng): Promise<void> {
  let raw: Awaited<ReturnType<typeof rawWebSocket>>;
  try {
    raw = await rawWebSocket(url, '/v1/ws', 3000);
  } catch {
    bump(tally.closeCodes, 'handshake-failed');
    return;
  }
  const { socket } = raw;
  const parser = new ServerFrameParser({ keepData: false });
  const violations: Array<() => Buffer> = [
    () => encodeClientFrame(rng.pick([0x3, 0x4, 0x5, 0x6, 0x7, 0xb, 0xc, 0xd, 0xe, 0xf]), randomBytes(rng, 100)),
    () => encodeClientFrame(WsOpcode.text, '{"op":"ack","tag":1}', { rsv: rng.int(1, 7) }),
    () => encodeClientFrame(WsOpcode.text, '{"op":"ack","tag":1}', { mask: false }),
    () => encodeClientFrame(WsOpcode.ping, Buffer.alloc(126 + rng.int(0, 200))),
    () => encodeClientFrame(WsOpcode.ping, 'x', { fin: false }),
    () => encodeClientFrame(WsOpcode.text, Buffer.from([0xc3, 0x28, 0xff, 0xfe])),
    () => encodeClientFrame(WsOpcode.continuation, 'no start'),
    () => Buffer.concat([encodeClientFrame(WsOpcode.text, '{"op":', { fin: false }), encodeClientFrame(WsOpcode.binary, 'x')]),
    () => encodeClientFrame(WsOpcode.binary, Buffer.alloc(MAX_FRAME_BYTES + rng.int(1, 1000))),
    () => encodeClientFrame(WsOpcode.close, Buffer.from([0x03, 0xe8, 0xff])),
    () => encodeClientFrame(WsOpcode.close, Buffer.from([0x00, rng.int(0, 255)])),
    () => Buffer.from(randomBytes(rng, 64)),
    () => {
      // A frame header that claims 2^62 bytes.
      const b = Buffer.alloc(14);
      b[0] = 0x82;
      b[1] = 0xff;
      b.writeBigUInt64BE(1n << 62n, 2);
      return b;
    },
  ];
  const which = rng.int(0, violations.length - 1);
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      bump(tally.closeCodes, parser.closeCode() ?? `no-close-in-2s(violation ${which})`);
      socket.destroy();
      resolve();
    }, 2000);
    socket.on('data', (d: Buffer) => {
      try {
        parser.push(d);
      } catch {
        // A frame we cannot parse: counted below as no close code.
      }
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      bump(tally.closeCodes, parser.closeCode() ?? 'tcp-closed');
      resolve();
    });
    socket.write(violations[which]());
  });
}

/** The well-behaved client: publishes numbered messages with receipts to its own queue and consumes them. */
async function goodClient(
  url: string,
  until: () => boolean,
): Promise<{ receipted: Set<string>; received: Map<string, number>; refused: number; errors: unknown[] }> {
  const queue = `/queue/good-${SEED}`;
  const received = new Map<string, number>();
  const consumer = await StreamSubscriber.open(url, 'good', queue, {
    ack: 'client',
    prefetch: 100,
    onMessage: (m) => received.set(m.payload, (received.get(m.payload) ?? 0) + 1),
  });
  const publisher = await StreamSubscriber.open(url, 'unused', '/topic/good.unused');
  const receipted = new Set<string>();
  let refused = 0;
  try {
    for (let i = 0; i < 100_000 && !until(); i++) {
      const payload = `good-${i}`;
      const answer = await publisher.request({ op: 'publish', destination: queue, payload }, 5000);
      if (answer.op === 'receipt') receipted.add(payload);
      else refused++;
      await sleep(2);
    }
    await waitFor(() => [...receipted].every((p) => received.has(p)), 10_000, `the good client to get its ${receipted.size} messages back`);
    await sleep(200);
    return { receipted, received, refused, errors: [...consumer.errors, ...publisher.errors] };
  } finally {
    await consumer.close();
    await publisher.close();
  }
}

describe('e2e - fuzzing a live broker', () => {
  let broker: Broker;
  beforeAll(async () => {
    broker = await startBroker({
      shards: '2',
      'ring-bytes': '262144',
      'max-frame-bytes': String(MAX_FRAME_BYTES),
      'max-message-bytes': '32768',
    });
  });
  afterAll(async () => {
    await broker.stop();
  });

  it(
    `survives ${FUZZ_MS} ms of random and mutated WebSocket and HTTP input (seed from SHARDMQ_SEED or random; printed)`,
    async () => {
      console.log(`[fuzz] seed ${SEED} (replay with SHARDMQ_SEED=${SEED}), ${FUZZ_MS} ms, ${LANES} lanes`);
      const root = new Prng(SEED);
      const url = broker.url;
      const end = Date.now() + FUZZ_MS;
      const over = (): boolean => Date.now() >= end || tally.inputs >= MAX_INPUTS;
      const good = goodClient(url, over);

      const lane = async (rng: Prng): Promise<void> => {
        const sock = new FuzzSocket(url);
        // Slow inputs (fresh TCP connections that may wait for a timeout) run in the background,
        // at most 8 at a time per lane.
        const inflight = new Set<Promise<void>>();
        const background = async (work: Promise<void>): Promise<void> => {
          const p = work.finally(() => inflight.delete(p));
          inflight.add(p);
          if (inflight.size >= 8) await Promise.race(inflight);
        };
        const writer = new BinaryFrameWriter();
        const kinds: Array<[string, number]> = [
          ['ws-binary-random', 15],
          ['ws-binary-valid', 15],
          ['ws-binary-mutated', 25],
          ['ws-text-json', 25],
          ['ws-violation', 3],
          ['http', 12],
          ['http-publish-valid', 5],
        ];
        const total = kinds.reduce((n, [, w]) => n + w, 0);
        try {
          while (!over()) {
            let r = rng.int(1, total);
            let kind = kinds[0][0];
            for (const [k, w] of kinds) {
              if ((r -= w) <= 0) {
                kind = k;
                break;
              }
            }
            tally.inputs++;
            bump(tally.byKind, kind);
            switch (kind) {
              case 'ws-binary-random':
                await sock.send(randomBytes(rng, 4096), true);
                break;
              case 'ws-binary-valid':
                await sock.send(validBinaryFrame(rng, writer), true);
                break;
              case 'ws-binary-mutated':
                await sock.send(mutate(rng, validBinaryFrame(rng, writer)), true);
                break;
              case 'ws-text-json':
                await sock.send(jsonTextFrame(rng), false);
                break;
              case 'ws-violation':
                await background(sendWsViolation(url, rng.fork()));
                break;
              case 'http':
                await background(sendHttp(url, rng.fork()));
                break;
              default: {
                const a = await request(`${url}/v1/publish/queue/fz${rng.int(0, 3)}`, { method: 'POST', body: `valid-${rng.u32()}` }, 5000);
                bump(tally.httpStatus, a.status);
                if (a.status === 500 && tally.internal.length < 20) tally.internal.push(`valid publish: ${a.text}`);
              }
            }
            // Let the broker (same event loop) breathe between inputs.
            if (tally.inputs % 8 === 0) await new Promise((resolve) => setImmediate(resolve));
          }
        } finally {
          await Promise.all(inflight);
          sock.close();
        }
      };
      await Promise.all(Array.from({ length: LANES }, () => lane(root.fork())));
      const g = await good;

      const health = await request(`${url}/healthz`, {}, 5000);
      const stats = await brokerStats(url);
      const count = (rec: Record<string, number>, pred: (k: string) => boolean): number =>
        Object.entries(rec).reduce((n, [k, v]) => n + (pred(k) ? v : 0), 0);
      const errorFrames = count(tally.errorCodes, () => true);
      const closes = count(tally.closeCodes, (k) => /^\d+$/.test(k) && k !== '1000' && k !== '1005');
      const http4xx = count(tally.httpStatus, (k) => /^4\d\d$/.test(k));
      console.log(
        `[fuzz] seed ${SEED}: ${tally.inputs} inputs tried ${JSON.stringify(tally.byKind)}\n` +
          `[fuzz] answers: error codes ${JSON.stringify(tally.errorCodes)}\n` +
          `[fuzz] close codes ${JSON.stringify(tally.closeCodes)}\n` +
          `[fuzz] http ${JSON.stringify(tally.httpStatus)}\n` +
          `[fuzz] good client: ${g.receipted.size} receipted, ${g.refused} refused, ${[...g.received.values()].reduce((a, b) => a + b, 0)} received; ` +
          `shards ${JSON.stringify(stats.shards.map((s) => ({ i: s.index, alive: s.alive, restarts: s.restarts })))}`,
      );

      const context = `seed ${SEED}`;
      expect(health.status, `${context}: /healthz ${health.text}`).toBe(200);
      expect(
        stats.shards.map((s) => s.restarts),
        `${context}: a fuzz input crashed a shard`,
      ).toEqual(stats.shards.map(() => 0));
      expect(tally.hung, `${context}: complete HTTP requests that got no answer`).toEqual([]);
      expect(tally.internal, `${context}: inputs answered with an internal error`).toEqual([]);
      expect(tally.badServerFrames, `${context}: server frames that do not decode`).toEqual([]);
      // Bad input was answered, on every channel.
      expect(errorFrames, context).toBeGreaterThan(0);
      expect(closes, context).toBeGreaterThan(0);
      expect(http4xx, context).toBeGreaterThan(0);
      // The well-behaved client got exactly what it published (each receipted message once).
      expect(g.receipted.size, context).toBeGreaterThan(0);
      expect(g.errors, context).toEqual([]);
      for (const p of g.receipted) expect(g.received.get(p), `${context}: ${p}`).toBe(1);
      expect(
        [...g.received.keys()].filter((p) => !g.receipted.has(p)),
        context,
      ).toEqual([]);
    },
    FUZZ_MS + 40_000,
  );
});
