/**
 * Where each queue of a cluster lives (pure; the caller feeds announcements and membership).
 *
 * A queue stays on the node that created it: moving a queue with messages in it is a migration,
 * and membership changes must not start one. Nodes announce the queues they create and delete
 * (`shardmq.queues`), so every node keeps a directory of name → node. A queue nobody has yet is
 * placed by rendezvous hashing (highest random weight) of its name over the live members: every
 * node computes the same owner from the same membership, and a join moves no existing queue.
 *
 * When a node goes, its transient queues are forgotten (the next use places them again, empty:
 * what they held is reported lost by the caller); its durable queues stay its own and are
 * unavailable until it is back (their messages are on its disk).
 */

export interface PlacedQueue {
  readonly node: string;
  readonly durable: boolean;
}

/** What a node says about its queues: created ones (with durability) and deleted ones. */
export interface QueueAnnouncement {
  readonly node: string;
  readonly add: ReadonlyArray<readonly [name: string, durable: boolean]>;
  readonly remove: readonly string[];
}

export class QueuePlacement {
  readonly #byName = new Map<string, PlacedQueue>();
  readonly #byNode = new Map<string, Set<string>>();
  /** Nodes that are out: their durable queues answer "unavailable", not "place it anew". */
  readonly #down = new Set<string>();

  apply(a: QueueAnnouncement): void {
    this.#down.delete(a.node);
    for (const [name, durable] of a.add) this.#set(name, { node: a.node, durable });
    for (const name of a.remove) {
      if (this.#byName.get(name)?.node === a.node) this.#delete(name);
    }
  }

  /** A node is out: forgets its transient queues (returned), keeps its durable ones as unavailable. */
  nodeGone(node: string): string[] {
    const names = this.#byNode.get(node);
    const forgotten: string[] = [];
    if (names === undefined) return forgotten;
    for (const name of [...names]) {
      if (this.#byName.get(name)?.durable === true) continue;
      this.#delete(name);
      forgotten.push(name);
    }
    this.#down.add(node);
    return forgotten;
  }

  /** The node that has `name`, if any node announced it. */
  get(name: string): PlacedQueue | undefined {
    return this.#byName.get(name);
  }

  /** Whether `node` is out (its durable queues are unavailable). */
  isDown(node: string): boolean {
    return this.#down.has(node);
  }

  /** Queues announced by `node`. */
  countOf(node: string): number {
    return this.#byNode.get(node)?.size ?? 0;
  }

  get size(): number {
    return this.#byName.size;
  }

  #set(name: string, placed: PlacedQueue): void {
    const old = this.#byName.get(name);
    if (old !== undefined && old.node !== placed.node) this.#byNode.get(old.node)?.delete(name);
    this.#byName.set(name, placed);
    let set = this.#byNode.get(placed.node);
    if (set === undefined) this.#byNode.set(placed.node, (set = new Set()));
    set.add(name);
  }

  #delete(name: string): void {
    const old = this.#byName.get(name);
    if (old === undefined) return;
    this.#byName.delete(name);
    this.#byNode.get(old.node)?.delete(name);
  }
}

/**
 * Rendezvous (highest random weight) hashing: the member whose hash with `name` is highest. A
 * member joining takes only the names it now wins; one leaving gives up only its own.
 */
export function placeByHash(name: string, members: readonly string[]): string {
  let best = '';
  let bestWeight = -1;
  for (const m of members) {
    const w = weight(m, name);
    if (w > bestWeight || (w === bestWeight && m < best)) {
      best = m;
      bestWeight = w;
    }
  }
  return best;
}

/** FNV-1a over `node \0 name`, then a murmur3 finalizer (FNV alone mixes its last bytes poorly). */
function weight(node: string, name: string): number {
  let h = 0x811c9dc5;
  const mix = (s: string): void => {
    for (let i = 0; i < s.length; i++) {
      h ^= s.charCodeAt(i);
      h = Math.imul(h, 0x01000193);
    }
  };
  mix(node);
  h ^= 0;
  h = Math.imul(h, 0x01000193);
  mix(name);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
