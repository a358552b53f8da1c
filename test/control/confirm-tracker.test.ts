/**
 * ConfirmTracker: token allocation (never 0, unique while pending, wrap-around at 2^32), settling
 * across several shards (worst status wins), fail, failShard, and unknown tokens.
 */
import { describe, expect, it, vi } from 'vitest';
import { ConfirmTracker } from '../../src/control/confirm-tracker.js';
import { ConfirmStatus, NO_TOKEN } from '../../src/protocol/ring-record-codec.js';

describe('ConfirmTracker.allocate', () => {
  it('allocate - the first tokens are 1, 2, 3 and never NO_TOKEN (0)', () => {
    const tracker = new ConfirmTracker();
    const tokens = [0, 1, 2].map(() => tracker.allocate([0], () => {}));
    expect(NO_TOKEN).toBe(0);
    expect(tokens).toEqual([1, 2, 3]);
    expect(tracker.size).toBe(3);
  });

  it('allocate - tokens are unique while pending', () => {
    const tracker = new ConfirmTracker();
    const tokens = new Set<number>();
    for (let i = 0; i < 10_000; i++) tokens.add(tracker.allocate([i % 4], () => {}));
    expect(tokens.size).toBe(10_000);
    expect(tokens.has(0)).toBe(false);
    expect(tracker.size).toBe(10_000);
  });

  it('allocate - tokens are u32 values, as the ring record carries them', () => {
    const tracker = new ConfirmTracker();
    for (let i = 0; i < 100; i++) {
      const t = tracker.allocate([0], () => {});
      expect(t >>> 0).toBe(t);
    }
  });

  it('allocate - after 2^32 - 1 the counter wraps to 1, never handing out 0', () => {
    const tracker = new ConfirmTracker(2 ** 32 - 3);
    const a = tracker.allocate([0], () => {});
    const b = tracker.allocate([0], () => {});
    expect([a, b]).toEqual([2 ** 32 - 2, 2 ** 32 - 1]);
    tracker.settle(b, ConfirmStatus.ok);
    expect(tracker.allocate([0], () => {})).toBe(1);
    expect(tracker.allocate([0], () => {})).toBe(2);
    expect(tracker.size).toBe(3);
  });
});

describe('ConfirmTracker.settle', () => {
  it('settle - a one-shard token completes on its confirm with that status', () => {
    const tracker = new ConfirmTracker();
    const done = vi.fn();
    const token = tracker.allocate([3], done);
    tracker.settle(token, ConfirmStatus.notFound);
    expect(done).toHaveBeenCalledTimes(1);
    expect(done).toHaveBeenCalledWith(ConfirmStatus.notFound);
    expect(tracker.size).toBe(0);
  });

  it('settle - a token on several shards waits for every shard', () => {
    const tracker = new ConfirmTracker();
    const done = vi.fn();
    const token = tracker.allocate([0, 1, 2], done);
    tracker.settle(token, ConfirmStatus.ok);
    tracker.settle(token, ConfirmStatus.ok);
    expect(done).not.toHaveBeenCalled();
    expect(tracker.size).toBe(1);
    tracker.settle(token, ConfirmStatus.ok);
    expect(done).toHaveBeenCalledTimes(1);
    expect(done).toHaveBeenCalledWith(ConfirmStatus.ok);
    expect(tracker.size).toBe(0);
  });

  it.each([
    [[ConfirmStatus.ok, ConfirmStatus.ok, ConfirmStatus.ok], ConfirmStatus.ok],
    [[ConfirmStatus.notFound, ConfirmStatus.ok, ConfirmStatus.ok], ConfirmStatus.notFound],
    [[ConfirmStatus.ok, ConfirmStatus.rejected, ConfirmStatus.notFound], ConfirmStatus.rejected],
    [[ConfirmStatus.rejected, ConfirmStatus.ok, ConfirmStatus.ok], ConfirmStatus.rejected],
    [[ConfirmStatus.ok, ConfirmStatus.ok, ConfirmStatus.notFound], ConfirmStatus.notFound],
  ])('settle - the worst status wins: %j → %i', (statuses, worst) => {
    const tracker = new ConfirmTracker();
    const done = vi.fn();
    const token = tracker.allocate([0, 1, 2], done);
    for (const s of statuses) tracker.settle(token, s);
    expect(done).toHaveBeenCalledTimes(1);
    expect(done).toHaveBeenCalledWith(worst);
  });

  it('settle - a confirm after completion is ignored (the callback runs once)', () => {
    const tracker = new ConfirmTracker();
    const done = vi.fn();
    const token = tracker.allocate([0], done);
    tracker.settle(token, ConfirmStatus.ok);
    tracker.settle(token, ConfirmStatus.rejected);
    expect(done).toHaveBeenCalledTimes(1);
    expect(done).toHaveBeenCalledWith(ConfirmStatus.ok);
  });

  it('settle - tokens settle independently of one another', () => {
    const tracker = new ConfirmTracker();
    const a = vi.fn();
    const b = vi.fn();
    const ta = tracker.allocate([0, 1], a);
    const tb = tracker.allocate([0], b);
    tracker.settle(tb, ConfirmStatus.ok);
    expect(b).toHaveBeenCalledWith(ConfirmStatus.ok);
    expect(a).not.toHaveBeenCalled();
    tracker.settle(ta, ConfirmStatus.ok);
    expect(a).not.toHaveBeenCalled();
    tracker.settle(ta, ConfirmStatus.rejected);
    expect(a).toHaveBeenCalledWith(ConfirmStatus.rejected);
  });
});

describe('ConfirmTracker.fail', () => {
  it('fail - completes a pending token at once with the given status, even with shards outstanding', () => {
    const tracker = new ConfirmTracker();
    const done = vi.fn();
    const token = tracker.allocate([0, 1], done);
    tracker.settle(token, ConfirmStatus.ok);
    tracker.fail(token, ConfirmStatus.rejected);
    expect(done).toHaveBeenCalledTimes(1);
    expect(done).toHaveBeenCalledWith(ConfirmStatus.rejected);
    expect(tracker.size).toBe(0);
    tracker.settle(token, ConfirmStatus.ok);
    expect(done).toHaveBeenCalledTimes(1);
  });

  it('fail - a failed token is free for reuse and stays unique', () => {
    const tracker = new ConfirmTracker();
    const t1 = tracker.allocate([0], () => {});
    tracker.fail(t1, ConfirmStatus.rejected);
    const t2 = tracker.allocate([0], () => {});
    expect(t2).not.toBe(t1);
    expect(t2).not.toBe(0);
  });
});

describe('ConfirmTracker.failShard', () => {
  it('failShard - fails exactly the tokens that include the shard, and counts them', () => {
    const tracker = new ConfirmTracker();
    const onlyShard1 = vi.fn();
    const shards0and1 = vi.fn();
    const onlyShard2 = vi.fn();
    tracker.allocate([1], onlyShard1);
    tracker.allocate([0, 1], shards0and1);
    const t2 = tracker.allocate([2], onlyShard2);
    expect(tracker.failShard(1, ConfirmStatus.rejected)).toBe(2);
    expect(onlyShard1).toHaveBeenCalledWith(ConfirmStatus.rejected);
    expect(shards0and1).toHaveBeenCalledWith(ConfirmStatus.rejected);
    expect(onlyShard2).not.toHaveBeenCalled();
    expect(tracker.size).toBe(1);
    tracker.settle(t2, ConfirmStatus.ok);
    expect(onlyShard2).toHaveBeenCalledWith(ConfirmStatus.ok);
  });

  it('failShard - a token whose shard already confirmed is still failed (the other shard never will)', () => {
    const tracker = new ConfirmTracker();
    const done = vi.fn();
    const token = tracker.allocate([0, 1], done);
    tracker.settle(token, ConfirmStatus.ok); // say shard 1 answered; shard 0 then dies
    expect(tracker.failShard(0, ConfirmStatus.rejected)).toBe(1);
    expect(done).toHaveBeenCalledTimes(1);
    expect(done).toHaveBeenCalledWith(ConfirmStatus.rejected);
  });

  it('failShard - a shard with no pending tokens fails nothing', () => {
    const tracker = new ConfirmTracker();
    const done = vi.fn();
    tracker.allocate([0], done);
    expect(tracker.failShard(5, ConfirmStatus.rejected)).toBe(0);
    expect(done).not.toHaveBeenCalled();
    expect(tracker.size).toBe(1);
  });

  it('failShard - callbacks run once even if they allocate new tokens on the failed shard', () => {
    const tracker = new ConfirmTracker();
    const retried: number[] = [];
    const done = vi.fn(() => {
      retried.push(tracker.allocate([0], () => {}));
    });
    tracker.allocate([0], done);
    tracker.allocate([0], done);
    const failed = tracker.failShard(0, ConfirmStatus.rejected);
    // Tokens allocated during the sweep belong to the restarted shard; whether the sweep reaches them
    // is not specified, but every original token must have been failed exactly once.
    expect(failed).toBeGreaterThanOrEqual(2);
    expect(done).toHaveBeenCalledTimes(2);
    expect(new Set(retried).size).toBe(retried.length);
  });
});

describe('ConfirmTracker - unknown tokens', () => {
  it('unknown - settle and fail of never-allocated tokens (including NO_TOKEN) change nothing', () => {
    const tracker = new ConfirmTracker();
    const done = vi.fn();
    const token = tracker.allocate([0], done);
    for (const unknown of [NO_TOKEN, token + 1, 2 ** 32 - 1, -1]) {
      tracker.settle(unknown, ConfirmStatus.rejected);
      tracker.fail(unknown, ConfirmStatus.rejected);
    }
    expect(done).not.toHaveBeenCalled();
    expect(tracker.size).toBe(1);
    tracker.settle(token, ConfirmStatus.ok);
    expect(done).toHaveBeenCalledWith(ConfirmStatus.ok);
  });
});
