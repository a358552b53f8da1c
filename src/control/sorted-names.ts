/**
 * Names kept in code-unit order as they come and go, for the management API's pages: a list of
 * blocks of at most BLOCK names each, so adding or removing a name costs a binary search and a
 * splice within one block, never a sort of every name. (A cache sorted on demand and dropped on
 * every change sorted 100,000 names, a 15 ms turn of the main thread, on the first page after any
 * declare or delete; with server-named queues coming and going that was every page.)
 */

/** Names per block at most; a full block splits in two. */
const BLOCK = 512;

/** What a page needs of a sorted list. */
export interface SortedList extends Iterable<string> {
  readonly length: number;
  /** Names from position `from` (inclusive) to `to` (exclusive), in order. */
  slice(from: number, to: number): string[];
}

export class SortedNames implements SortedList {
  /** Non-empty blocks in order; every name of a block sorts before every name of the next. */
  #blocks: string[][] = [];
  #length = 0;

  get length(): number {
    return this.#length;
  }

  /** Adds `name`; false when it was there already. */
  add(name: string): boolean {
    const blocks = this.#blocks;
    if (blocks.length === 0) {
      blocks.push([name]);
      this.#length = 1;
      return true;
    }
    const b = this.#blockFor(name);
    const block = blocks[b];
    const i = lowerBound(block, name);
    if (i < block.length && block[i] === name) return false;
    block.splice(i, 0, name);
    this.#length++;
    if (block.length > BLOCK) blocks.splice(b + 1, 0, block.splice(BLOCK >> 1));
    return true;
  }

  /** Removes `name`; false when it was not there. */
  delete(name: string): boolean {
    if (this.#blocks.length === 0) return false;
    const b = this.#blockFor(name);
    const block = this.#blocks[b];
    const i = lowerBound(block, name);
    if (i >= block.length || block[i] !== name) return false;
    block.splice(i, 1);
    this.#length--;
    if (block.length === 0) this.#blocks.splice(b, 1);
    return true;
  }

  slice(from: number, to: number): string[] {
    const start = Math.max(0, from);
    const count = Math.min(to, this.#length) - start;
    const out: string[] = [];
    if (count <= 0) return out;
    let skip = start;
    for (const block of this.#blocks) {
      if (skip >= block.length) {
        skip -= block.length;
        continue;
      }
      for (let i = skip; i < block.length && out.length < count; i++) out.push(block[i]);
      if (out.length >= count) break;
      skip = 0;
    }
    return out;
  }

  *[Symbol.iterator](): Iterator<string> {
    for (const block of this.#blocks) yield* block;
  }

  /** The block `name` belongs in: the first whose last name is not below it (else the last block). */
  #blockFor(name: string): number {
    const blocks = this.#blocks;
    let lo = 0;
    let hi = blocks.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const last = blocks[mid][blocks[mid].length - 1];
      if (last < name) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

/** The first position in sorted `block` whose name is not below `name`. */
function lowerBound(block: readonly string[], name: string): number {
  let lo = 0;
  let hi = block.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (block[mid] < name) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
