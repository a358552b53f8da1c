import { describe, expect, it } from 'vitest';
import { ShardExpiryTimer } from '../../src/shard/shard-expiry-timer.js';
import type { ExpiryScheduler } from '../../src/queue/expiry-scheduler.js';
import type { ShardOutbound } from '../../src/shard/shard-outbound.js';

describe('shard expiry timer', () => {
  it("a deadline beyond setTimeout's range (an expiration near 2^32 - 1 ms) does not fire every millisecond", async () => {
    let runs = 0;
    const now = Date.now();
    const expiry = { nextDeadline: () => now + 0xffff_fff0, run: () => void runs++ } as unknown as ExpiryScheduler;
    const outbound = { republishDeadLetters: () => undefined, dispatch: () => undefined, commit: () => true } as unknown as ShardOutbound;
    const timer = new ShardExpiryTimer(expiry, new Map(), outbound, () => Date.now());
    timer.arm();
    await new Promise((r) => setTimeout(r, 100));
    timer.stop();
    expect(runs).toBe(0);
  });

  it('a near deadline fires once, then re-arms for the next', async () => {
    let runs = 0;
    let deadline = Date.now() + 20;
    const expiry = {
      nextDeadline: () => deadline,
      run: () => {
        runs++;
        deadline = Infinity;
      },
    } as unknown as ExpiryScheduler;
    const outbound = { republishDeadLetters: () => undefined, dispatch: () => undefined, commit: () => true } as unknown as ShardOutbound;
    const timer = new ShardExpiryTimer(expiry, new Map(), outbound, () => Date.now());
    timer.arm();
    for (let i = 0; i < 500 && runs === 0; i++) await new Promise((r) => setTimeout(r, 10));
    await new Promise((r) => setTimeout(r, 50));
    timer.stop();
    expect(runs).toBe(1);
  });
});
