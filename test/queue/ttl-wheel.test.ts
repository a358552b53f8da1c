import { describe, expect, it } from 'vitest';
import { TtlWheel, type TtlWheelOptions, type WheelTimer } from '../../src/queue/ttl-wheel.js';
import { Prng } from '../helpers/prng.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** Advances and returns what fired, in firing order. */
function advance<T>(wheel: TtlWheel<T>, now: number): T[] {
  const fired: T[] = [];
  wheel.advance(now, (item) => fired.push(item));
  return fired;
}

/** Time (ms) at which the wheel must fire a deadline: rounded up to the tick. */
const dueAt = (deadline: number, tick: number): number => Math.ceil(deadline / tick) * tick;

describe('ttl wheel', () => {
  it('ttl wheel - fires a timer once its tick is reached: never early, at most one tick late', () => {
    const wheel = new TtlWheel<string>({ tickMs: 10 });
    wheel.schedule(25, 'a');
    wheel.schedule(30, 'b');
    expect(wheel.nextDeadline()).toBe(30); // 25 rounded up to the tick
    expect(advance(wheel, 24)).toEqual([]);
    expect(advance(wheel, 29)).toEqual([]); // tick 2 reached, 25 not yet
    expect(advance(wheel, 30)).toEqual(['a', 'b']);
    expect(wheel.size).toBe(0);
    expect(wheel.nextDeadline()).toBe(Infinity);
  });

  it('ttl wheel - many timers on the same tick all fire in one advance, in deadline order', () => {
    const wheel = new TtlWheel<number>({ tickMs: 10 });
    // 10 000 deadlines inside one tick (1000, 1010), scheduled latest first.
    for (let i = 0; i < 10_000; i++) wheel.schedule(1_000.5 + (9_999 - i) / 1_112, i);
    expect(wheel.size).toBe(10_000);
    expect(wheel.nextDeadline()).toBe(1_010);
    expect(advance(wheel, 1_009)).toEqual([]);
    const fired = advance(wheel, 1_010);
    expect(fired).toEqual(Array.from({ length: 10_000 }, (_, i) => 9_999 - i));
    expect(wheel.size).toBe(0);
  });

  it('ttl wheel - many timers with one deadline fire together and leave the wheel empty', () => {
    const wheel = new TtlWheel<number>({ tickMs: 10 });
    for (let i = 0; i < 10_000; i++) wheel.schedule(5_000, i);
    expect(wheel.nextDeadline()).toBe(5_000);
    expect(advance(wheel, 4_999)).toHaveLength(0);
    const fired = advance(wheel, 5_000);
    expect(fired).toHaveLength(10_000);
    expect(new Set(fired).size).toBe(10_000);
    expect(wheel.size).toBe(0);
  });

  it('ttl wheel - within one advance timers fire in deadline order across ticks and levels', () => {
    const wheel = new TtlWheel<number>({ tickMs: 1 });
    const deadlines = [70_000, 5, 64, 4_095, 4_096, 1, 262_143, 300_000_000, 63, 65];
    for (const d of deadlines) wheel.schedule(d, d);
    const fired = advance(wheel, 400_000_000);
    expect(fired).toEqual([...deadlines].sort((a, b) => a - b));
  });

  it('ttl wheel - far deadlines (beyond the top level) keep an exact nextDeadline and fire after a big jump', () => {
    const wheel = new TtlWheel<string>({ tickMs: 10, start: 1_700_000_000_000 });
    const now = 1_700_000_000_000;
    wheel.schedule(now + 365 * DAY, 'year');
    wheel.schedule(now + 3 * DAY, 'three days');
    wheel.schedule(now + 90 * 1000, 'ninety seconds');
    expect(wheel.nextDeadline()).toBe(now + 90_000);
    expect(advance(wheel, now + 89_999)).toEqual([]);
    expect(advance(wheel, now + 90_000)).toEqual(['ninety seconds']);
    expect(wheel.nextDeadline()).toBe(now + 3 * DAY);
    expect(advance(wheel, now + 3 * DAY - 1)).toEqual([]);
    expect(wheel.nextDeadline()).toBe(now + 3 * DAY);
    expect(advance(wheel, now + 200 * DAY)).toEqual(['three days']);
    expect(wheel.nextDeadline()).toBe(now + 365 * DAY);
    expect(advance(wheel, now + 10 * 365 * DAY)).toEqual(['year']);
    expect(wheel.size).toBe(0);
  });

  it('ttl wheel - a jump of ten years over a few timers is cheap (it skips empty slots, not ticks)', () => {
    const wheel = new TtlWheel<number>({ tickMs: 1 }); // 1 ms ticks: ten years is 3e11 ticks
    for (let i = 1; i <= 100; i++) wheel.schedule((i * 3 * 365 * DAY) / 100, i);
    const started = performance.now();
    const fired = advance(wheel, 10 * 365 * DAY);
    expect(performance.now() - started).toBeLessThan(1_000);
    expect(fired).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
  });

  it('ttl wheel - a deadline already passed fires at the next advance, even with a clock that went back', () => {
    const wheel = new TtlWheel<string>({ tickMs: 10 });
    expect(advance(wheel, 1_000)).toEqual([]);
    wheel.schedule(500, 'late');
    wheel.schedule(1_000, 'now');
    expect(wheel.nextDeadline()).toBeLessThanOrEqual(1_000);
    expect(advance(wheel, 900)).toEqual(['late', 'now']); // clock went back: only what was already due
    expect(wheel.now).toBe(1_000);
  });

  it('ttl wheel - cancel removes a timer in O(1); cancelling twice or after firing says false', () => {
    const wheel = new TtlWheel<number>({ tickMs: 10 });
    const timers: WheelTimer<number>[] = [];
    for (let i = 0; i < 1_000; i++) timers.push(wheel.schedule(100 + i * 37, i));
    for (let i = 0; i < 1_000; i += 2) expect(wheel.cancel(timers[i])).toBe(true);
    expect(wheel.cancel(timers[0])).toBe(false);
    expect(wheel.size).toBe(500);
    const fired = advance(wheel, 100 + 1_000 * 37);
    expect(fired).toEqual(Array.from({ length: 500 }, (_, i) => 2 * i + 1));
    expect(wheel.cancel(timers[1])).toBe(false);
    expect(wheel.size).toBe(0);
  });

  it('ttl wheel - nextDeadline after cancels is never later than the earliest live timer', () => {
    const wheel = new TtlWheel<string>({ tickMs: 10 });
    const early = wheel.schedule(50_000, 'early');
    wheel.schedule(80_000, 'late');
    wheel.cancel(early);
    const next = wheel.nextDeadline();
    expect(next).toBeLessThanOrEqual(80_000);
    // Following nextDeadline() reaches the timer in a few wake-ups, none of them busy loops.
    let wakeUps = 0;
    let fired: string[] = [];
    while (fired.length === 0 && wakeUps < 10) {
      fired = advance(wheel, wheel.nextDeadline());
      wakeUps++;
    }
    expect(fired).toEqual(['late']);
    expect(wheel.now).toBe(80_000);
  });

  it('ttl wheel - an onExpire callback may cancel a timer of the same batch or schedule new ones', () => {
    const wheel = new TtlWheel<string>({ tickMs: 10 });
    let victim: WheelTimer<string> | null = null;
    const fired: string[] = [];
    wheel.schedule(100, 'killer');
    victim = wheel.schedule(105, 'victim');
    wheel.advance(110, (item) => {
      fired.push(item);
      if (item === 'killer') {
        expect(wheel.cancel(victim as WheelTimer<string>)).toBe(true);
        wheel.schedule(200, 'rescheduled');
        wheel.schedule(0, 'already due');
      }
    });
    // An already-due timer scheduled by a callback fires later in the same advance or in the next one.
    fired.push(...advance(wheel, 110));
    expect(fired).toEqual(['killer', 'already due']);
    expect(wheel.nextDeadline()).toBe(200);
    expect(advance(wheel, 200)).toEqual(['rescheduled']);
  });

  it('ttl wheel - rejects non-finite deadlines and bad options', () => {
    const wheel = new TtlWheel<number>();
    expect(() => wheel.schedule(Infinity, 1)).toThrow(RangeError);
    expect(() => wheel.schedule(Number.NaN, 1)).toThrow(RangeError);
    expect(() => new TtlWheel({ tickMs: 0 })).toThrow(RangeError);
    expect(() => new TtlWheel({ slotBits: 0 })).toThrow(RangeError);
    expect(() => new TtlWheel({ levels: 0 })).toThrow(RangeError);
  });

  const configs: [string, TtlWheelOptions][] = [
    ['defaults', {}],
    ['tiny wheel (4 slots, 2 levels: constant cascades and overflow)', { tickMs: 1, slotBits: 2, levels: 2 }],
    ['coarse ticks', { tickMs: 250, slotBits: 3, levels: 3 }],
  ];
  for (const [label, options] of configs) {
    it.each([1, 2, 3, 4])(
      `ttl wheel - seeded random schedule/cancel/advance in small steps and big jumps matches a reference: ${label} (seed %i)`,
      (seed) => {
        const prng = new Prng(seed);
        const tick = options.tickMs ?? 10;
        const wheel = new TtlWheel<number>(options);
        interface Ref {
          readonly id: number;
          readonly deadline: number;
          readonly timer: WheelTimer<number>;
          live: boolean;
        }
        const refs = new Map<number, Ref>();
        let nextId = 0;
        let now = 0;
        let curTick = 0;
        let cancels = 0;
        for (let step = 0; step < 1_500; step++) {
          const where = `seed ${seed} step ${step}`;
          const roll = prng.int(0, 9);
          if (roll < 5) {
            // Deadlines from "already passed" to far beyond the wheel.
            const span = prng.pick([5 * tick, 200 * tick, 50_000 * tick, 5 * DAY, 400 * DAY]);
            const deadline = now - 10 * tick + prng.int(0, span - 1);
            const id = nextId++;
            refs.set(id, { id, deadline, timer: wheel.schedule(deadline, id), live: true });
          } else if (roll < 6 && (seed % 2 === 0 || step > 1_000)) {
            const live = [...refs.values()].filter((r) => r.live);
            if (live.length > 0) {
              const ref = prng.pick(live);
              expect(wheel.cancel(ref.timer), where).toBe(true);
              ref.live = false;
              cancels++;
            }
          } else {
            const jump = prng.pick([0, 1, tick - 1, tick, 3 * tick, 77 * tick, 10_000 * tick, DAY, 90 * DAY]);
            now += prng.int(0, jump);
            curTick = Math.max(curTick, Math.floor(now / tick));
            const expected = [...refs.values()]
              .filter((r) => r.live && Math.ceil(r.deadline / tick) <= curTick)
              .sort((a, b) => a.deadline - b.deadline);
            const fired: number[] = [];
            const deadlines: number[] = [];
            wheel.advance(now, (id, deadline) => {
              fired.push(id);
              deadlines.push(deadline);
            });
            expect(new Set(fired), where).toEqual(new Set(expected.map((r) => r.id)));
            // Deadline order (ties in any order).
            for (let i = 1; i < deadlines.length; i++) expect(deadlines[i], where).toBeGreaterThanOrEqual(deadlines[i - 1]);
            for (const id of fired) {
              const ref = refs.get(id) as Ref;
              expect(ref.deadline, `${where}: fired early`).toBeLessThanOrEqual(now);
              ref.live = false;
            }
          }
          const live = [...refs.values()].filter((r) => r.live);
          expect(wheel.size, where).toBe(live.length);
          // Exact without cancellations (an already-due timer reports its own deadline); a lower
          // bound, never later, once timers were cancelled.
          const due = live.filter((r) => Math.ceil(r.deadline / tick) <= curTick);
          const exact =
            live.length === 0
              ? Infinity
              : due.length > 0
                ? Math.min(...due.map((r) => r.deadline))
                : Math.min(...live.map((r) => dueAt(r.deadline, tick)));
          if (cancels === 0) expect(wheel.nextDeadline(), where).toBe(exact);
          else expect(wheel.nextDeadline(), where).toBeLessThanOrEqual(exact);
        }
        // Drain: everything left fires by following nextDeadline().
        let guard = 0;
        while (wheel.size > 0 && guard++ < 10_000) {
          const at = wheel.nextDeadline();
          expect(Number.isFinite(at)).toBe(true);
          now = Math.max(now, at);
          wheel.advance(now, (id) => {
            const ref = refs.get(id) as Ref;
            expect(ref.live).toBe(true);
            expect(ref.deadline).toBeLessThanOrEqual(now);
            ref.live = false;
          });
        }
        expect(wheel.size).toBe(0);
        expect([...refs.values()].filter((r) => r.live)).toEqual([]);
      },
    );
  }
});
