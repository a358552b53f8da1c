import { describe, expect, it } from 'vitest';
import { runWindowed } from '../../src/client/windowed.js';

/** A task whose promise the test settles by hand. */
function manual(): { task: () => Promise<unknown>; started: boolean; resolve: () => void; reject: (e: Error) => void } {
  const t = {
    started: false,
    resolve: () => undefined as void,
    reject: (_e: Error) => undefined as void,
    task: () => {
      t.started = true;
      return new Promise<void>((res, rej) => {
        t.resolve = res;
        t.reject = rej;
      });
    },
  };
  return t;
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('runWindowed', () => {
  it('keeps at most `limit` pending, starts them in order, and resolves once all have settled', async () => {
    let pending = 0;
    let most = 0;
    const order: number[] = [];
    const tasks = Array.from({ length: 2500 }, (_, i) => async () => {
      order.push(i);
      pending++;
      most = Math.max(most, pending);
      await tick();
      pending--;
    });
    await runWindowed(tasks, 1000);
    expect(most).toBe(1000);
    expect(order).toEqual(Array.from({ length: 2500 }, (_, i) => i));
    expect(pending).toBe(0);
  });

  it('starts the next one only when one settles', async () => {
    const ts = Array.from({ length: 3 }, manual);
    let done = false;
    const run = runWindowed(
      ts.map((t) => t.task),
      2,
    ).then(() => {
      done = true;
    });
    expect(ts.map((t) => t.started)).toEqual([true, true, false]);
    ts[1].resolve();
    await tick();
    expect(ts[2].started).toBe(true);
    ts[0].resolve();
    ts[2].resolve();
    await run;
    expect(done).toBe(true);
  });

  it('rejects with the first failure and starts nothing after it', async () => {
    const ts = Array.from({ length: 4 }, manual);
    const run = runWindowed(
      ts.map((t) => t.task),
      2,
    );
    ts[0].reject(new Error('dropped'));
    await expect(run).rejects.toThrow('dropped');
    ts[1].resolve();
    await tick();
    expect(ts.map((t) => t.started)).toEqual([true, true, false, false]);
  });

  it('resolves at once for nothing to do, treats a throwing task as a failure, and refuses a bad limit', async () => {
    await expect(runWindowed([])).resolves.toBeUndefined();
    await expect(
      runWindowed([
        () => {
          throw new Error('sync');
        },
      ]),
    ).rejects.toThrow('sync');
    expect(() => runWindowed([], 0)).toThrow(RangeError);
  });
});
