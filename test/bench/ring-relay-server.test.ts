import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startUwsPubSub, type UwsPubSubServer } from '../../src/bench/open-loop-systems.js';

/** Message i: u32 i, then (i * 7919) % 3000 bytes of a pattern that depends on i. */
function messageOf(i: number): Uint8Array {
  const m = new Uint8Array(4 + ((i * 7919) % 3000));
  new DataView(m.buffer).setUint32(0, i, true);
  for (let k = 4; k < m.length; k++) m[k] = (i + k) & 0xff;
  return m;
}

describe('ring relay server (the latency floor: uWS → ring → worker → ring → uWS)', () => {
  let server: UwsPubSubServer;
  beforeAll(async () => {
    server = await startUwsPubSub('ring-relay-server.js');
  }, 30_000);
  afterAll(async () => {
    await server.stop();
  });

  it('relays every message to the subscriber whole and in order, across many wraps of its 4 MiB rings', async () => {
    const total = 20_000; // ~30 MB through each ring
    let next = 0;
    let bad = 0;
    let ready: () => void = () => undefined;
    const subscribed = new Promise<void>((resolve) => {
      ready = resolve;
    });
    let done: () => void = () => undefined;
    const all = new Promise<void>((resolve) => {
      done = resolve;
    });
    const sub = new WebSocket(`${server.url}/sub`, { perMessageDeflate: false });
    sub.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary) return ready();
      const want = messageOf(next);
      if (data.length !== want.length || !data.equals(want)) bad++;
      if (++next === total) done();
    });
    await subscribed;
    const pub = new WebSocket(`${server.url}/pub`, { perMessageDeflate: false });
    await new Promise<void>((resolve, reject) => {
      pub.once('open', () => resolve());
      pub.once('error', reject);
    });
    for (let i = 0; i < total; i++) pub.send(messageOf(i));
    const timeout = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), 20_000));
    expect(await Promise.race([all.then(() => 'all' as const), timeout])).toBe('all');
    expect(next).toBe(total);
    expect(bad).toBe(0);
    pub.close();
    sub.close();
  }, 40_000);
});
