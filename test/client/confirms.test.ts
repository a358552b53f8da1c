import { describe, expect, it } from 'vitest';
import { PublishConfirms, type SettleOutcome } from '../../src/client/confirms.js';
import { ConnectionLostError, SaturatedError } from '../../src/client/errors.js';

const outcome = (): SettleOutcome => ({ rejected: 0, failedNoWait: 0 });

function tracked(c: PublishConfirms): { seq: number; state: () => string } {
  let state = 'pending';
  const seq = c.add({ resolve: () => (state = 'ok'), reject: (e) => (state = e.code) });
  return { seq, state: () => state };
}

describe('client confirms', () => {
  it('confirms - numbers from 1; single, multiple and out-of-order settles; each number once', async () => {
    const c = new PublishConfirms();
    const p = [tracked(c), tracked(c), tracked(c), tracked(c)];
    expect(p.map((x) => x.seq)).toEqual([1, 2, 3, 4]);
    c.settle(3, false, null, outcome());
    await Promise.resolve();
    expect(p.map((x) => x.state())).toEqual(['pending', 'pending', 'ok', 'pending']);
    const o = outcome();
    c.settle(2, true, new SaturatedError('saturated', 'full'), o);
    expect(o).toEqual({ rejected: 2, failedNoWait: 0 });
    c.settle(4, true, null, outcome()); // 1–3 already settled: only 4
    expect(p.map((x) => x.state())).toEqual(['saturated', 'saturated', 'ok', 'ok']);
    expect(c.unconfirmed).toBe(0);
  });

  it('confirms - waitForAll waits for numbers given out before it, and reports fire-and-forget failures once', async () => {
    const c = new PublishConfirms();
    c.add(null);
    c.add(null);
    let done = false;
    const all = c.waitForAll().then(() => (done = true));
    c.add(null); // after the flush: not waited for
    c.settle(2, false, null, outcome());
    await Promise.resolve();
    expect(done).toBe(false);
    c.settle(1, false, null, outcome());
    await all;
    expect(done).toBe(true);
    const o = outcome();
    c.settle(3, false, new SaturatedError('saturated', 'refused'), o);
    expect(o).toEqual({ rejected: 0, failedNoWait: 1 });
    await expect(c.waitForAll()).rejects.toMatchObject({ code: 'saturated' });
    await expect(c.waitForAll()).resolves.toBeUndefined();
  });

  it('confirms - failAll rejects unconfirmed publishes and waiters, and numbering restarts at 1', async () => {
    const c = new PublishConfirms();
    const a = tracked(c);
    c.add(null);
    const waiting = c.waitForAll();
    c.failAll(new ConnectionLostError('gone'));
    await expect(waiting).rejects.toBeInstanceOf(ConnectionLostError);
    expect(a.state()).toBe('connection_lost');
    expect(c.add(null)).toBe(1);
  });
});
