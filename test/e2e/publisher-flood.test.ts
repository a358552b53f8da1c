/**
 * Publishers that push harder than a shard drains must be refused cleanly, never silently:
 * with a tiny ring and overflow, every HTTP answer is either 200 {"accepted":N} or
 * 503 + Retry-After + {"error":"saturated","accepted":k} (the first k of the batch were taken).
 * A JSON WebSocket publisher within its publish credit is never refused: the broker holds what it
 * sent and slows it by returning credit later, so every publish gets exactly one receipt.
 * The consumer subscribes only after the flood, so everything accepted waited in the queue;
 * consuming it must then yield exactly what was accepted, no more, no fewer, no duplicates.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { Broker } from '../../src/front/broker.js';
import { startBroker } from '../helpers/broker.js';
import { brokerStats, publishNdjson, sleep, waitFor, type HttpAnswer } from '../helpers/http.js';
import { StreamSubscriber } from '../helpers/stream-subscriber.js';
import { INITIAL_PUBLISH_CREDIT } from '../../src/protocol/ws-binary.js';

const PUBLISHERS = 32;
const REQUESTS_PER_PUBLISHER = 25;
const LINES_PER_BATCH = 200;
/** ~200-byte messages: one batch is ~40 KB, so one request fits the 64 KiB ring, a few at once do not. */
const PAD = 'p'.repeat(180);
const FLOOD_BUDGET_MS = 10_000;

/** Every payload starts with its unique id and a colon. */
function idOf(payload: string): string | null {
  const m = /^([a-z]+-\d+-\d+-\d+):p*$/.exec(payload);
  return m === null ? null : m[1];
}

/**
 * Subscribes to `queue` after the fact and collects every message (auto ack) until `expected`
 * arrived, then a little longer so duplicates would show. Bounded in time.
 */
async function drainQueue(
  url: string,
  queue: string,
  expected: number,
): Promise<{ ids: Map<string, number>; received: number; corrupt: number; samples: string[] }> {
  const ids = new Map<string, number>();
  const samples: string[] = [];
  let corrupt = 0;
  const sub = await StreamSubscriber.open(url, 'drain', `/queue/${queue}`, {
    onMessage: (m) => {
      const id = m.encoding === undefined ? idOf(m.payload) : null;
      if (id === null) {
        // Not what any publisher sent (base64 means the broker found bytes that are not UTF-8).
        corrupt++;
        if (samples.length < 5) samples.push(`${m.encoding ?? 'utf8'}:${JSON.stringify(m.payload.slice(0, 40))}`);
        return;
      }
      ids.set(id, (ids.get(id) ?? 0) + 1);
    },
  });
  try {
    await waitFor(() => sub.received >= expected, 20_000, `${expected} messages from /queue/${queue} (have ${sub.received})`);
    await sleep(300);
    expect(sub.errors).toEqual([]);
    return { ids, received: sub.received, corrupt, samples };
  } finally {
    await sub.close();
  }
}

describe('e2e - a publisher flood against a tiny ring is refused cleanly and loses nothing it accepted', () => {
  let broker: Broker;
  beforeAll(async () => {
    broker = await startBroker({ 'ring-bytes': '65536', 'overflow-bytes': '65536', 'max-message-bytes': '4096', 'publish-wait-ms': '0' });
  });
  afterAll(async () => {
    await broker.stop();
  });

  it(`http - ${PUBLISHERS} concurrent NDJSON publishers: only 200 {"accepted":N} or 503 + Retry-After {"error":"saturated","accepted":k}; the queue then holds exactly what was accepted`, async () => {
    const accepted = new Set<string>();
    const refused = new Set<string>();
    let ok = 0;
    let saturated = 0;
    let partial = 0;
    const unexpected: string[] = [];
    const deadline = Date.now() + FLOOD_BUDGET_MS;

    const check = (a: HttpAnswer, lines: string[]): void => {
      if (a.status === 200) {
        expect(a.json).toEqual({ accepted: lines.length });
        ok++;
        for (const l of lines) accepted.add(l.slice(0, l.indexOf(':')));
        return;
      }
      if (a.status !== 503) {
        unexpected.push(`${a.status} ${a.text.slice(0, 200)}`);
        return;
      }
      saturated++;
      expect(a.headers.get('retry-after'), 'a 503 says when to retry').toMatch(/^\d+$/);
      expect(a.json).toMatchObject({ error: 'saturated' });
      const k = a.json?.accepted;
      expect(typeof k === 'number' && Number.isInteger(k) && k >= 0 && k < lines.length, `accepted ${String(k)} of ${lines.length}`).toBe(
        true,
      );
      if ((k as number) > 0) partial++;
      // The first k lines of the batch were taken, in order; the rest were not.
      for (const [i, l] of lines.entries()) (i < (k as number) ? accepted : refused).add(l.slice(0, l.indexOf(':')));
    };

    const publisher = async (p: number): Promise<void> => {
      for (let r = 0; r < REQUESTS_PER_PUBLISHER && Date.now() < deadline; r++) {
        const lines = Array.from({ length: LINES_PER_BATCH }, (_, i) => `h-${p}-${r}-${i}:${PAD}`);
        check(await publishNdjson(broker.url, 'queue/flood', lines, 10_000), lines);
      }
    };
    const started = Date.now();
    await Promise.all(Array.from({ length: PUBLISHERS }, (_, p) => publisher(p)));
    const seconds = (Date.now() - started) / 1000;
    const stats = await brokerStats(broker.url);
    console.log(
      `[publisher-flood http] ${ok + saturated} requests in ${seconds.toFixed(1)} s: ${ok} × 200, ${saturated} × 503 (${partial} with part of the batch accepted); ` +
        `${accepted.size} messages accepted, ${refused.size} refused; queue depth ${stats.queues.find((q) => q.name === 'flood')?.depth}`,
    );
    expect(unexpected).toEqual([]);
    // The flood really hit the limit, and the broker still took work while it lasted.
    expect(saturated).toBeGreaterThan(0);
    expect(ok).toBeGreaterThan(0);

    const got = await drainQueue(broker.url, 'flood', accepted.size);
    expect(got.received, 'messages delivered vs accepted').toBe(accepted.size);
    expect(got.corrupt, `payloads that are not what was published, e.g. ${got.samples.join(', ')}`).toBe(0);
    const duplicates = [...got.ids].filter(([, n]) => n > 1).map(([id]) => id);
    expect(duplicates.slice(0, 10)).toEqual([]);
    const missing = [...accepted].filter((id) => !got.ids.has(id));
    expect(missing.slice(0, 10), `${missing.length} accepted messages never delivered`).toEqual([]);
    const ghosts = [...got.ids.keys()].filter((id) => !accepted.has(id));
    expect(ghosts.slice(0, 10), `${ghosts.length} delivered messages that were refused or never sent`).toEqual([]);
  }, 45_000);

  it('websocket - JSON publishes with receipts, within their credit, on the same tiny ring: each gets exactly one receipt, none is refused; the queue then holds exactly them', async () => {
    const CONNECTIONS = 8;
    const BURST = 400;
    const ROUNDS = 10;
    const payloadPad = 'w'.repeat(900);
    const receipted = new Set<string>();
    const refused = new Set<string>();
    const otherErrors: string[] = [];
    let creditFrames = 0;
    const deadline = Date.now() + FLOOD_BUDGET_MS;

    const connection = async (c: number): Promise<void> => {
      const ws = new WebSocket(broker.url.replace(/^http/, 'ws') + '/v1/ws');
      await new Promise<void>((resolve, reject) => {
        ws.once('open', () => resolve());
        ws.once('error', reject);
      });
      // Publish credit (docs/protocol.md §6a): a client may not publish past what the broker granted.
      let credit = INITIAL_PUBLISH_CREDIT.messages;
      ws.on('message', (data) => {
        const f = JSON.parse(String(data)) as { op: string; messages?: number };
        if (f.op !== 'credit') return;
        credit += f.messages ?? 0;
        creditFrames++;
      });
      try {
        for (let round = 0; round < ROUNDS && Date.now() < deadline; round++) {
          await waitFor(() => credit >= BURST, 10_000, `connection ${c}: credit for round ${round} (have ${credit})`);
          credit -= BURST;
          const waiting = new Set<string>();
          const answered = new Promise<void>((resolve, reject) => {
            const timer = setTimeout(
              () => reject(new Error(`connection ${c} round ${round}: ${waiting.size} publishes never answered`)),
              10_000,
            );
            ws.on('message', function onMessage(data) {
              const f = JSON.parse(String(data)) as { op: string; receipt?: string; code?: string; message?: string };
              if (f.op === 'credit') return;
              if (typeof f.receipt !== 'string' || !waiting.has(f.receipt)) {
                otherErrors.push(JSON.stringify(f).slice(0, 200));
                return;
              }
              waiting.delete(f.receipt);
              const id = f.receipt;
              if (f.op === 'receipt') receipted.add(id);
              else if (f.op === 'error' && f.code === 'saturated') refused.add(id);
              else otherErrors.push(JSON.stringify(f).slice(0, 200));
              if (waiting.size === 0) {
                clearTimeout(timer);
                ws.off('message', onMessage);
                resolve();
              }
            });
          });
          // One burst, sent without waiting: the frames arrive together and are decoded in one turn.
          // 400 is within the credit every connection starts with (docs/protocol.md §6a).
          for (let i = 0; i < BURST; i++) {
            const id = `w-${c}-${round}-${i}`;
            waiting.add(id);
            ws.send(JSON.stringify({ op: 'publish', destination: '/queue/flood-ws', payload: `${id}:${payloadPad}`, receipt: id }));
          }
          await answered;
        }
      } finally {
        ws.close();
      }
    };
    const started = Date.now();
    await Promise.all(Array.from({ length: CONNECTIONS }, (_, c) => connection(c)));
    console.log(
      `[publisher-flood ws] ${receipted.size + refused.size} JSON publishes in ${((Date.now() - started) / 1000).toFixed(1)} s: ` +
        `${receipted.size} receipts, ${refused.size} refused (saturated)`,
    );
    expect(otherErrors.slice(0, 5)).toEqual([]);
    expect(refused.size, 'a publish within its credit was refused').toBe(0);
    expect(receipted.size).toBe(CONNECTIONS * BURST * ROUNDS);
    // The broker granted the rest of its window after the first frames.
    expect(creditFrames).toBeGreaterThanOrEqual(CONNECTIONS);

    // Ids are checked by hand here: these payloads are padded with 'w', not 'p'.
    const ids = new Map<string, number>();
    const corrupt: string[] = [];
    const sub = await StreamSubscriber.open(broker.url, 'drain-ws', '/queue/flood-ws', {
      onMessage: (m) => {
        const match = m.encoding === undefined ? /^(w-\d+-\d+-\d+):w+$/.exec(m.payload) : null;
        if (match === null || m.payload.length !== match[1].length + 1 + payloadPad.length)
          corrupt.push(`${m.encoding ?? 'utf8'}:${JSON.stringify(m.payload.slice(0, 40))}`);
        else ids.set(match[1], (ids.get(match[1]) ?? 0) + 1);
      },
    });
    try {
      await waitFor(() => sub.received >= receipted.size, 20_000, `${receipted.size} messages (have ${sub.received})`);
      await sleep(300);
    } finally {
      await sub.close();
    }
    expect(sub.received, 'delivered vs receipted').toBe(receipted.size);
    expect(corrupt.length, `payloads that are not what was published: ${corrupt.slice(0, 5).join(', ')}`).toBe(0);
    expect([...ids].filter(([, n]) => n > 1).slice(0, 10)).toEqual([]);
    expect([...receipted].filter((id) => !ids.has(id)).slice(0, 10)).toEqual([]);
    expect([...ids.keys()].filter((id) => refused.has(id)).slice(0, 10)).toEqual([]);
  }, 45_000);
});
