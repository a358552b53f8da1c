/**
 * Growable double-ended queue over a power-of-two ring of slots.
 *
 * Why not a plain array: `Array.prototype.shift` is O(n) once V8 leaves its fast path, and a
 * queue with a million ready messages shifts on every delivery. Here push, pop, shift and
 * unshift are O(1) amortised, `at(i)` is O(1) (so callers can binary search), and `insertAt`
 * moves only the shorter side. Single-threaded; no shared memory.
 */

/** Smallest ring allocated, at the first element. */
const MIN_CAPACITY = 16;
/**
 * Shrink (to half) once only 1/SHRINK_RATIO of the slots are in use. Halving at a quarter
 * leaves the ring half full, so a shrink cannot be followed at once by a grow (no thrash).
 */
const SHRINK_RATIO = 4;

export class Deque<T> {
  #slots: (T | undefined)[];
  #mask: number;
  /** Slot index of the first element. */
  #first = 0;
  #length = 0;

  constructor() {
    // No ring until the first element: most queues never hold a message (an idle queue costs its
    // object, not 16 slots); every write grows a full ring first.
    this.#slots = [];
    this.#mask = 0;
  }

  get length(): number {
    return this.#length;
  }

  /** Slots currently allocated (for tests and memory accounting). */
  get capacity(): number {
    return this.#slots.length;
  }

  push(item: T): void {
    if (this.#length === this.#slots.length) this.#resize(Math.max(MIN_CAPACITY, this.#slots.length * 2));
    this.#slots[(this.#first + this.#length) & this.#mask] = item;
    this.#length++;
  }

  unshift(item: T): void {
    if (this.#length === this.#slots.length) this.#resize(Math.max(MIN_CAPACITY, this.#slots.length * 2));
    this.#first = (this.#first - 1) & this.#mask;
    this.#slots[this.#first] = item;
    this.#length++;
  }

  shift(): T | undefined {
    if (this.#length === 0) return undefined;
    const item = this.#slots[this.#first];
    // Clear the slot so the deque does not keep a dead message (and its payload) alive.
    this.#slots[this.#first] = undefined;
    this.#first = (this.#first + 1) & this.#mask;
    this.#length--;
    this.#maybeShrink();
    return item;
  }

  pop(): T | undefined {
    if (this.#length === 0) return undefined;
    const index = (this.#first + this.#length - 1) & this.#mask;
    const item = this.#slots[index];
    this.#slots[index] = undefined;
    this.#length--;
    this.#maybeShrink();
    return item;
  }

  peekFirst(): T | undefined {
    return this.#length === 0 ? undefined : this.#slots[this.#first];
  }

  peekLast(): T | undefined {
    return this.#length === 0 ? undefined : this.#slots[(this.#first + this.#length - 1) & this.#mask];
  }

  /** Element at position `index` from the front; undefined outside 0..length-1. */
  at(index: number): T | undefined {
    if (index < 0 || index >= this.#length) return undefined;
    return this.#slots[(this.#first + index) & this.#mask];
  }

  /** Inserts so that the item ends up at position `index` (0..length), moving the shorter side. */
  insertAt(index: number, item: T): void {
    if (!Number.isInteger(index) || index < 0 || index > this.#length) {
      throw new RangeError(`Deque.insertAt index must be an integer in 0..${this.#length} (got ${index})`);
    }
    if (this.#length === this.#slots.length) this.#resize(Math.max(MIN_CAPACITY, this.#slots.length * 2));
    const slots = this.#slots;
    const mask = this.#mask;
    if (index < this.#length - index) {
      // Front side is shorter: move elements 0..index-1 one slot towards the front.
      this.#first = (this.#first - 1) & mask;
      for (let i = 0; i < index; i++) {
        slots[(this.#first + i) & mask] = slots[(this.#first + i + 1) & mask];
      }
    } else {
      // Back side is shorter: move elements index..length-1 one slot towards the back.
      for (let i = this.#length; i > index; i--) {
        slots[(this.#first + i) & mask] = slots[(this.#first + i - 1) & mask];
      }
    }
    slots[(this.#first + index) & mask] = item;
    this.#length++;
  }

  /** Drops every element and the ring with them. */
  clear(): void {
    this.#slots = [];
    this.#mask = 0;
    this.#first = 0;
    this.#length = 0;
  }

  toArray(): T[] {
    const out = new Array<T>(this.#length);
    for (let i = 0; i < this.#length; i++) out[i] = this.#slots[(this.#first + i) & this.#mask] as T;
    return out;
  }

  *[Symbol.iterator](): IterableIterator<T> {
    for (let i = 0; i < this.#length; i++) yield this.#slots[(this.#first + i) & this.#mask] as T;
  }

  #maybeShrink(): void {
    const capacity = this.#slots.length;
    if (capacity > MIN_CAPACITY && this.#length * SHRINK_RATIO <= capacity) this.#resize(capacity / 2);
  }

  /** Copies the elements, in order, to the start of a new ring of `capacity` slots (a power of two). */
  #resize(capacity: number): void {
    const next = new Array<T | undefined>(capacity).fill(undefined);
    for (let i = 0; i < this.#length; i++) next[i] = this.#slots[(this.#first + i) & this.#mask];
    this.#slots = next;
    this.#mask = capacity - 1;
    this.#first = 0;
  }
}
