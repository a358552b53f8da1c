/**
 * The consuming node's side of a queue on another node (main thread).
 *
 * A WebSocket subscription to a queue that lives elsewhere has shard REMOTE_SHARD; the front
 * writes its control records (subscribe, credit, settle, unsubscribe, slow, close) through this
 * port as it would to a shard, and they travel as control ops to the queue's node, where
 * proxy-consumers.ts turns them into a consumer of its own shard. Deliveries come back as the
 * shard's own deliver records (the connection id already this node's), handed to the front as if
 * from a shard: one code path for local and remote deliveries, the same prefetch, credit, acks
 * and redelivery.
 *
 * Shard tags of that node are remapped above REMOTE_TAG_BASE (front/shard-ports.ts sends a settle
 * of such a tag here), per connection, so closing a connection forgets its tags at once.
 */
import { REMOTE_TAG_BASE, type ControlPort, type ControlWriter } from '../shard/shard-handle.js';
import { AckModeCode } from '../protocol/ring-record-codec.js';

/** One control op, as it travels to the queue's node. */
export type ControlOp =
  | {
      readonly op: 'sub';
      readonly conn: number;
      readonly sub: number;
      readonly queue: string;
      readonly ack: number;
      readonly prefetch: number;
      readonly window: number;
      readonly windowBytes: number;
      readonly flags: number;
      readonly start: string | null;
    }
  | { readonly op: 'unsub'; readonly conn: number; readonly sub: number }
  | { readonly op: 'credit'; readonly conn: number; readonly sub: number; readonly n: number; readonly bytes: number }
  | { readonly op: 'settle'; readonly kind: number; readonly conn: number; readonly tag: number; readonly requeue: boolean }
  | { readonly op: 'closed'; readonly conn: number }
  | { readonly op: 'slow'; readonly conn: number; readonly on: boolean };

export interface RemoteLink {
  /** Queues the op for `node` (sent in order, batched per turn). */
  send(node: string, op: ControlOp): void;
  /** The node that has (or gets) `queue`; this node's own name when it is here. */
  ownerOf(queue: string): string;
}

interface RemoteSub {
  node: string;
  readonly subscribe: Extract<ControlOp, { op: 'sub' }>;
}

export class RemoteConsumers implements ControlPort {
  readonly #link: RemoteLink;
  /** `conn:sub` → where it consumes. */
  readonly #subs = new Map<string, RemoteSub>();
  /** Per connection: its remote subscriptions' count per node. */
  readonly #nodesOf = new Map<number, Map<string, number>>();
  /** Per connection: this node's tag → the queue node's tag. */
  readonly #tags = new Map<number, Map<number, { node: string; tag: number }>>();
  #nextTag = REMOTE_TAG_BASE;
  /** Settles of deliveries whose node went away (void: nothing to settle any more). */
  voidSettles = 0;
  readonly #writer: ControlWriter;

  constructor(link: RemoteLink) {
    this.#link = link;
    this.#writer = {
      subscribe: (conn, sub, queue, ack, prefetch, window, windowBytes, flags = 0, start = null) => {
        const op = { op: 'sub', conn, sub, queue, ack, prefetch, window, windowBytes, flags, start } as const;
        const node = link.ownerOf(queue);
        this.#subs.set(key(conn, sub), { node, subscribe: op });
        this.#count(conn, node, 1);
        link.send(node, op);
        return true;
      },
      unsubscribe: (conn, sub) => {
        const s = this.#subs.get(key(conn, sub));
        if (s === undefined) return true;
        this.#subs.delete(key(conn, sub));
        this.#count(conn, s.node, -1);
        link.send(s.node, { op: 'unsub', conn, sub });
        return true;
      },
      credit: (conn, sub, n, bytes) => {
        const s = this.#subs.get(key(conn, sub));
        if (s !== undefined) link.send(s.node, { op: 'credit', conn, sub, n, bytes });
        return true;
      },
      settle: (kind, conn, tag, requeue) => {
        const mine = this.#tags.get(conn);
        const theirs = mine?.get(tag);
        if (theirs === undefined) {
          this.voidSettles++;
          return true;
        }
        mine?.delete(tag);
        link.send(theirs.node, { op: 'settle', kind, conn, tag: theirs.tag, requeue });
        return true;
      },
      connectionClosed: (conn) => {
        for (const node of this.#nodesOf.get(conn)?.keys() ?? []) link.send(node, { op: 'closed', conn });
        this.#nodesOf.delete(conn);
        this.#tags.delete(conn);
        for (const k of [...this.#subs.keys()]) if (k.startsWith(`${conn}:`)) this.#subs.delete(k);
        return true;
      },
      slow: (conn, on) => {
        for (const node of this.#nodesOf.get(conn)?.keys() ?? []) link.send(node, { op: 'slow', conn, on });
        return true;
      },
    };
  }

  writeControl(write: (w: ControlWriter) => boolean): void {
    write(this.#writer);
  }

  /**
   * A deliver record from `node` about to go to the front: a client-ack delivery's tag becomes
   * one of this node's (written into the record), so its settle finds its way back.
   */
  mapDelivery(node: string, view: DataView, at: number): void {
    const conn = view.getUint32(at, true);
    const sub = view.getUint32(at + 4, true);
    const s = this.#subs.get(key(conn, sub));
    if (s === undefined || s.subscribe.ack !== AckModeCode.client) return;
    const tag = ++this.#nextTag;
    let mine = this.#tags.get(conn);
    if (mine === undefined) this.#tags.set(conn, (mine = new Map()));
    mine.set(tag, { node, tag: view.getFloat64(at + 8, true) });
    view.setFloat64(at + 8, tag, true);
  }

  /**
   * `node` is out of the cluster: its deliveries can no longer be settled (void), and every
   * subscription that consumed there subscribes again wherever its queue is placed now (a
   * transient queue is created anew on its new node; a durable one's node must come back).
   * Returns the subscriptions moved.
   */
  nodeGone(node: string): number {
    for (const mine of this.#tags.values()) for (const [t, theirs] of mine) if (theirs.node === node) mine.delete(t);
    let moved = 0;
    for (const s of this.#subs.values()) {
      if (s.node !== node) continue;
      const conn = s.subscribe.conn;
      this.#count(conn, node, -1);
      s.node = this.#link.ownerOf(s.subscribe.queue);
      this.#count(conn, s.node, 1);
      this.#link.send(s.node, s.subscribe);
      moved++;
    }
    return moved;
  }

  /** Remote subscriptions held, and client-ack deliveries awaiting a settle. */
  get figures(): { subscriptions: number; unsettled: number; voidSettles: number } {
    let unsettled = 0;
    for (const m of this.#tags.values()) unsettled += m.size;
    return { subscriptions: this.#subs.size, unsettled, voidSettles: this.voidSettles };
  }

  #count(conn: number, node: string, by: number): void {
    let nodes = this.#nodesOf.get(conn);
    if (nodes === undefined) this.#nodesOf.set(conn, (nodes = new Map()));
    const n = (nodes.get(node) ?? 0) + by;
    if (n > 0) nodes.set(node, n);
    else nodes.delete(node);
  }
}

function key(conn: number, sub: number): string {
  return `${conn}:${sub}`;
}
