/**
 * Hierarchical timing wheel: many (deadline, item) timers behind one OS timer.
 *
 * Why: a shard may hold millions of messages with a TTL across thousands of queues; a setTimeout
 * per message (or per queue) costs a heap entry and a callback each. Here a timer is an object in
 * an array slot, scheduling and cancelling are O(1), and the owner arms ONE timer for
 * nextDeadline() and calls advance() when it fires. Generic: items are whatever the owner wants
 * woken (the queue module schedules queues, see ExpiryScheduler).
 *
 * Layout. Time is cut into ticks of `tickMs`. Level k has 2^slotBits slots of (2^slotBits)^k ticks
 * each, so level 0 slots are single ticks and each level spans one slot of the level above. A timer
 * sits at the lowest level whose block (one slot of the level above) also holds the current tick,
 * in the slot of its due tick: the classic "aligned" hierarchical wheel. When the clock enters a
 * slot of a higher level, that slot's timers are cascaded (re-placed, so they land lower), and a
 * level 0 slot that becomes current fires. Timers beyond the top level wait in an overflow list.
 * Consequences used below:
 *   - every timer at a lower level is due before every timer at a higher level;
 *   - advance() jumps from one non-empty slot to the next, so a big jump costs the slots it
 *     crosses that hold timers, not the ticks it crosses.
 *
 * Timing guarantee: a timer with deadline d fires in the first advance(now) with
 * now >= ceil(d / tickMs) * tickMs, so never before its deadline and at most one tick after it.
 * Single-threaded; no timers of its own.
 */

const FIRING = -4;
const DEAD = -3;
const DUE = -2;
const OVERFLOW = -1;

/** A scheduled timer; pass it to cancel(). Do not modify it. */
export interface WheelTimer<T> {
  /** The deadline it was scheduled with (ms, same clock as advance()). */
  readonly deadline: number;
  readonly item: T;
}

interface Entry<T> extends WheelTimer<T> {
  /** ceil(deadline / tickMs): the tick at which it fires. */
  readonly dueTick: number;
  /** Level 0.., or DUE (fires at the next advance), OVERFLOW, FIRING (in the batch being fired), DEAD (fired or cancelled). */
  level: number;
  slot: number;
  /** Position in its array, for O(1) swap-removal on cancel. */
  index: number;
}

export interface TtlWheelOptions {
  /** Resolution in ms (default 10). Timers fire at most one tick late, never early. */
  readonly tickMs?: number;
  /** log2 of the slots per level (default 6: 64 slots). */
  readonly slotBits?: number;
  /** Levels (default 4). With the defaults the levels span 0.64 s, 41 s, 44 min, 46.6 h; later timers wait in an overflow list. */
  readonly levels?: number;
  /** The clock reading the wheel starts at (ms, default 0); advance() never goes back before it. */
  readonly start?: number;
}

export class TtlWheel<T> {
  readonly tickMs: number;
  readonly #slotCount: number;
  readonly #levels: number;
  /** #spans[k] = ticks covered by one slot of level k; #spans[levels] = ticks covered by the whole wheel. */
  readonly #spans: number[];
  /** #slots[level][slot]: timers, or null when never used. */
  readonly #slots: (Entry<T>[] | null)[][];
  /** Smallest dueTick ever put in a slot since it was last emptied (a lower bound once timers are cancelled). */
  readonly #slotMin: Float64Array[];
  /** Live timers per level, so empty levels are skipped without scanning their slots. */
  readonly #levelCounts: number[];
  #overflow: Entry<T>[] = [];
  #overflowMin = Infinity;
  /** Timers already due when scheduled (or cascaded onto the current tick): they fire at the next advance(). */
  #due: Entry<T>[] = [];
  #dueMin = Infinity;
  /** The tick the wheel has been advanced to; everything due at or before it has fired. */
  #cur: number;
  #size = 0;

  constructor(options: TtlWheelOptions = {}) {
    const tickMs = options.tickMs ?? 10;
    const slotBits = options.slotBits ?? 6;
    const levels = options.levels ?? 4;
    if (!(tickMs > 0) || !Number.isFinite(tickMs)) throw new RangeError(`TtlWheel tickMs must be a positive number (got ${tickMs})`);
    if (!Number.isInteger(slotBits) || slotBits < 1 || slotBits > 16)
      throw new RangeError(`TtlWheel slotBits must be an integer in 1..16 (got ${slotBits})`);
    if (!Number.isInteger(levels) || levels < 1 || levels > 8)
      throw new RangeError(`TtlWheel levels must be an integer in 1..8 (got ${levels})`);
    this.tickMs = tickMs;
    this.#slotCount = 2 ** slotBits;
    this.#levels = levels;
    this.#spans = [];
    for (let k = 0; k <= levels; k++) this.#spans.push(this.#slotCount ** k);
    this.#slots = [];
    this.#slotMin = [];
    this.#levelCounts = [];
    for (let k = 0; k < levels; k++) {
      this.#slots.push(new Array<Entry<T>[] | null>(this.#slotCount).fill(null));
      this.#slotMin.push(new Float64Array(this.#slotCount).fill(Infinity));
      this.#levelCounts.push(0);
    }
    this.#cur = Math.floor((options.start ?? 0) / tickMs);
  }

  /** Timers scheduled and not yet fired or cancelled. */
  get size(): number {
    return this.#size;
  }

  /** The time (ms, tick-aligned) the wheel has been advanced to. */
  get now(): number {
    return this.#cur * this.tickMs;
  }

  /** Schedules `item` for `deadline` (ms). A deadline already passed fires at the next advance(). */
  schedule(deadline: number, item: T): WheelTimer<T> {
    if (Number.isNaN(deadline) || !Number.isFinite(deadline)) {
      throw new RangeError(`TtlWheel.schedule needs a finite deadline (got ${deadline})`);
    }
    const entry: Entry<T> = { deadline, item, dueTick: Math.ceil(deadline / this.tickMs), level: DEAD, slot: 0, index: 0 };
    this.#place(entry);
    this.#size++;
    return entry;
  }

  /** Removes a timer that has not fired yet; false if it already fired or was cancelled. O(1). */
  cancel(timer: WheelTimer<T>): boolean {
    const entry = timer as Entry<T>;
    const level = entry.level;
    if (level === DEAD) return false;
    if (level === FIRING) {
      // Cancelled by an earlier callback of the same batch: it is skipped.
      entry.level = DEAD;
      this.#size--;
      return true;
    }
    let list: Entry<T>[];
    if (level === DUE) list = this.#due;
    else if (level === OVERFLOW) list = this.#overflow;
    else {
      list = this.#slots[level][entry.slot] as Entry<T>[];
      this.#levelCounts[level]--;
    }
    const last = list.pop() as Entry<T>;
    if (last !== entry) {
      list[entry.index] = last;
      last.index = entry.index;
    }
    entry.level = DEAD;
    this.#size--;
    // Slot and overflow minimums are left as they are: a lower bound, corrected when the slot is emptied.
    return true;
  }

  /**
   * When advance() next has work: the due time (ms, rounded up to the tick) of the earliest timer,
   * Infinity when empty. Exact unless timers were cancelled, in which case it may be earlier than
   * needed (a spurious wake-up that moves timers down a level; it never makes a timer late).
   * Arm the owner's single timer for it.
   */
  nextDeadline(): number {
    if (this.#size === 0) return Infinity;
    if (this.#due.length > 0) return Math.min(this.#dueMin, this.#cur * this.tickMs);
    const spans = this.#spans;
    for (let k = 0; k < this.#levels; k++) {
      if (this.#levelCounts[k] === 0) continue;
      const slots = this.#slots[k];
      const base = Math.floor(this.#cur / spans[k + 1]) * spans[k + 1];
      for (let d = (Math.floor(this.#cur / spans[k]) % this.#slotCount) + 1; d < this.#slotCount; d++) {
        const list = slots[d];
        if (list === null || list.length === 0) continue;
        const start = base + d * spans[k];
        return Math.max(start, this.#slotMin[k][d]) * this.tickMs;
      }
    }
    return this.#overflowMin * this.tickMs;
  }

  /**
   * Moves the wheel to `now` (ms), calling onExpire for every timer whose due tick is reached, in
   * deadline order to tick precision (timers of one tick fire in no particular order). A clock that
   * went backwards only fires what was already due. Timers scheduled from inside onExpire that are
   * already due fire later in this advance() or in the next one (never in a loop). Returns how
   * many fired.
   */
  advance(now: number, onExpire: (item: T, deadline: number) => void): number {
    let fired = this.#fireDue(onExpire);
    const target = Math.floor(now / this.tickMs);
    while (this.#cur < target) {
      const next = this.#nextEventTick();
      if (next > target) {
        this.#cur = target;
        break;
      }
      this.#cur = next;
      fired += this.#processTick(onExpire);
    }
    return fired;
  }

  /** Every live timer (for tests and inspection; not the hot path). */
  timers(): WheelTimer<T>[] {
    const out: WheelTimer<T>[] = [...this.#due];
    for (const level of this.#slots) for (const list of level) if (list !== null) out.push(...list);
    out.push(...this.#overflow);
    return out;
  }

  /** Puts `entry` where it belongs relative to the current tick. */
  #place(entry: Entry<T>): void {
    const t = entry.dueTick;
    const cur = this.#cur;
    if (t <= cur) {
      entry.level = DUE;
      entry.index = this.#due.length;
      this.#due.push(entry);
      if (entry.deadline < this.#dueMin) this.#dueMin = entry.deadline;
      return;
    }
    const spans = this.#spans;
    for (let k = 0; k < this.#levels; k++) {
      if (Math.floor(t / spans[k + 1]) !== Math.floor(cur / spans[k + 1])) continue;
      const d = Math.floor(t / spans[k]) % this.#slotCount;
      let list = this.#slots[k][d];
      if (list === null) {
        list = [];
        this.#slots[k][d] = list;
      }
      entry.level = k;
      entry.slot = d;
      entry.index = list.length;
      list.push(entry);
      this.#levelCounts[k]++;
      if (t < this.#slotMin[k][d]) this.#slotMin[k][d] = t;
      return;
    }
    entry.level = OVERFLOW;
    entry.index = this.#overflow.length;
    this.#overflow.push(entry);
    if (t < this.#overflowMin) this.#overflowMin = t;
  }

  /**
   * The next tick after the current one at which a slot holding timers becomes current (or the
   * overflow list must be re-placed); Infinity when nothing is scheduled in the wheel proper.
   * Lower levels always hold earlier timers, so the first non-empty level answers.
   */
  #nextEventTick(): number {
    const spans = this.#spans;
    const cur = this.#cur;
    for (let k = 0; k < this.#levels; k++) {
      if (this.#levelCounts[k] === 0) continue;
      const slots = this.#slots[k];
      const base = Math.floor(cur / spans[k + 1]) * spans[k + 1];
      for (let d = (Math.floor(cur / spans[k]) % this.#slotCount) + 1; d < this.#slotCount; d++) {
        const list = slots[d];
        if (list !== null && list.length > 0) return base + d * spans[k];
      }
    }
    if (this.#overflow.length === 0) return Infinity;
    // Skip straight to the top-level block holding the earliest overflow timer.
    const top = spans[this.#levels];
    const nextBlock = (Math.floor(cur / top) + 1) * top;
    return Math.max(nextBlock, Math.floor(this.#overflowMin / top) * top);
  }

  /** The clock has just reached #cur: cascade the higher-level slots that start here, then fire level 0. */
  #processTick(onExpire: (item: T, deadline: number) => void): number {
    const cur = this.#cur;
    const spans = this.#spans;
    if (this.#overflow.length > 0 && cur % spans[this.#levels] === 0) {
      const overflow = this.#overflow;
      this.#overflow = [];
      this.#overflowMin = Infinity;
      for (const entry of overflow) this.#place(entry);
    }
    for (let k = this.#levels - 1; k >= 1; k--) {
      if (cur % spans[k] !== 0 || this.#levelCounts[k] === 0) continue;
      const d = Math.floor(cur / spans[k]) % this.#slotCount;
      const list = this.#slots[k][d];
      if (list === null || list.length === 0) continue;
      this.#slots[k][d] = null;
      this.#slotMin[k][d] = Infinity;
      this.#levelCounts[k] -= list.length;
      for (const entry of list) this.#place(entry);
    }
    let fired = 0;
    if (this.#levelCounts[0] > 0) {
      const d = cur % this.#slotCount;
      const list = this.#slots[0][d];
      if (list !== null && list.length > 0) {
        // Detach first: onExpire may schedule more timers.
        this.#slots[0][d] = null;
        this.#slotMin[0][d] = Infinity;
        this.#levelCounts[0] -= list.length;
        fired += this.#fire(list, onExpire);
      }
    }
    return fired + this.#fireDue(onExpire);
  }

  #fireDue(onExpire: (item: T, deadline: number) => void): number {
    if (this.#due.length === 0) return 0;
    const due = this.#due;
    this.#due = [];
    this.#dueMin = Infinity;
    return this.#fire(due, onExpire);
  }

  #fire(list: Entry<T>[], onExpire: (item: T, deadline: number) => void): number {
    if (list.length > 1) list.sort((a, b) => a.deadline - b.deadline);
    for (const entry of list) entry.level = FIRING;
    let fired = 0;
    for (const entry of list) {
      if (entry.level !== FIRING) continue; // cancelled by an earlier callback
      entry.level = DEAD;
      this.#size--;
      fired++;
      onExpire(entry.item, entry.deadline);
    }
    return fired;
  }
}
