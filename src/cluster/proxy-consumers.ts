/**
 * The queue node's side of a consumer on another node (main thread).
 *
 * Each (node, connection) that consumes here gets a proxy connection id of the cluster's range
 * (front/connection-ids.ts); its control ops (remote-consumers.ts) become records in the queue's
 * shard under that id, so the shard runs an ordinary consumer: round robin with the local ones,
 * prefetch, credit, acks, and requeue with redelivered set when the proxy's connection closes
 * (the consumer's connection closed, or its node left the cluster). What the shard sends back
 * for a proxy (deliveries, errors, drop notices) is copied, with the consumer's own connection
 * id written back in, into one outgoing buffer per node, sent once per turn.
 */
import { FIRST_CLUSTER_CONNECTION, LAST_CLUSTER_CONNECTION } from '../front/connection-ids.js';
import { RecordKind, type RecordReader } from '../protocol/ring-record-codec.js';
import type { ControlPort } from '../shard/shard-handle.js';
import type { ControlOp } from './remote-consumers.js';

interface Proxy {
  readonly id: number;
  readonly node: string;
  readonly conn: number;
  /** subscription id → its shard and the op that made it (sent again after a shard restart). */
  readonly subs: Map<number, { readonly shard: number; readonly op: Extract<ControlOp, { op: 'sub' }> }>;
}

export interface ProxyParts {
  /** This node's name, written at the head of what it sends. */
  readonly self: string;
  /** The local shard of `queue`, declaring the queue first if it does not exist. */
  shardOfQueue(queue: string): number;
  shard(index: number): ControlPort;
  shardCount(): number;
  /** Records for `node` are ready to go (called once per turn at most). */
  flushSoon(): void;
}

/** Outgoing records for one node: the sender's name (u8 length + bytes), then kind, length and the record, repeated. */
class Outbox {
  readonly #from: Buffer;
  buf: Buffer;
  length: number;
  count = 0;

  constructor(from: string) {
    this.#from = Buffer.from(from, 'utf8');
    this.buf = Buffer.allocUnsafe(64 * 1024);
    this.length = this.#start();
  }

  #start(): number {
    this.buf[0] = this.#from.length;
    return 1 + this.#from.copy(this.buf, 1);
  }

  add(kind: number, bytes: Uint8Array, start: number, length: number, conn: number): void {
    const need = this.length + 8 + length;
    if (need > this.buf.length) {
      const grown = Buffer.allocUnsafe(Math.max(need, this.buf.length * 2));
      this.buf.copy(grown, 0, 0, this.length);
      this.buf = grown;
    }
    const at = this.length;
    this.buf.writeUInt32LE(kind, at);
    this.buf.writeUInt32LE(length, at + 4);
    this.buf.set(bytes.subarray(start, start + length), at + 8);
    this.buf.writeUInt32LE(conn, at + 8);
    this.length = need;
    this.count++;
  }

  take(): Uint8Array {
    const out = this.buf.subarray(0, this.length);
    this.buf = Buffer.allocUnsafe(64 * 1024);
    this.length = this.#start();
    this.count = 0;
    return out;
  }
}

export class ProxyConsumers {
  readonly #parts: ProxyParts;
  readonly #byRemote = new Map<string, Proxy>();
  readonly #byId = new Map<number, Proxy>();
  readonly #outboxes = new Map<string, Outbox>();
  #next = FIRST_CLUSTER_CONNECTION;
  /** Deliveries sent to other nodes so far. */
  delivered = 0;

  constructor(parts: ProxyParts) {
    this.#parts = parts;
  }

  /** Applies `node`'s ops in order. A refusal (an unknown queue) goes back as an error record from the shard. */
  apply(node: string, ops: readonly ControlOp[]): void {
    for (const op of ops) this.#applyOne(node, op);
  }

  #applyOne(node: string, op: ControlOp): void {
    switch (op.op) {
      case 'sub': {
        const proxy = this.#proxy(node, op.conn, true) as Proxy;
        const shard = this.#parts.shardOfQueue(op.queue);
        proxy.subs.set(op.sub, { shard, op });
        this.#subscribe(proxy, shard, op);
        return;
      }
      case 'unsub': {
        const proxy = this.#proxy(node, op.conn, false);
        const shard = proxy?.subs.get(op.sub)?.shard;
        if (proxy === undefined || shard === undefined) return;
        proxy.subs.delete(op.sub);
        this.#parts.shard(shard).writeControl((w) => w.unsubscribe(proxy.id, op.sub));
        return;
      }
      case 'credit': {
        const proxy = this.#proxy(node, op.conn, false);
        const shard = proxy?.subs.get(op.sub)?.shard;
        if (proxy === undefined || shard === undefined) return;
        this.#parts.shard(shard).writeControl((w) => w.credit(proxy.id, op.sub, op.n, op.bytes));
        return;
      }
      case 'settle': {
        const proxy = this.#proxy(node, op.conn, false);
        if (proxy === undefined) return;
        const kind = op.kind === RecordKind.ack ? RecordKind.ack : RecordKind.nack;
        this.#parts.shard(op.tag % this.#parts.shardCount()).writeControl((w) => w.settle(kind, proxy.id, op.tag, op.requeue));
        return;
      }
      case 'slow': {
        const proxy = this.#proxy(node, op.conn, false);
        if (proxy === undefined) return;
        for (const s of shardsOf(proxy)) this.#parts.shard(s).writeControl((w) => w.slow(proxy.id, op.on));
        return;
      }
      case 'closed': {
        const proxy = this.#proxy(node, op.conn, false);
        if (proxy !== undefined) this.#close(proxy);
        return;
      }
    }
  }

  /** A consumer's node left: each of its connections closes here, so their unacked deliveries are redelivered. */
  nodeGone(node: string): number {
    let closed = 0;
    for (const proxy of [...this.#byRemote.values()]) {
      if (proxy.node !== node) continue;
      this.#close(proxy);
      closed++;
    }
    this.#outboxes.delete(node);
    return closed;
  }

  /** A local shard restarted: the proxies' consumers on it are registered again (as the fronts' are). */
  shardRestarted(shard: number): void {
    for (const proxy of this.#byId.values()) {
      for (const s of proxy.subs.values()) if (s.shard === shard) this.#subscribe(proxy, shard, s.op);
    }
  }

  #subscribe(proxy: Proxy, shard: number, op: Extract<ControlOp, { op: 'sub' }>): void {
    this.#parts
      .shard(shard)
      .writeControl((w) => w.subscribe(proxy.id, op.sub, op.queue, op.ack, op.prefetch, op.window, op.windowBytes, op.flags, op.start));
  }

  /** A record a shard sent for a proxy connection: copied for its node with the consumer's connection id. */
  onRecord(kind: number, offset: number, length: number, reader: RecordReader): void {
    const proxy = this.#byId.get(reader.u32(offset));
    if (proxy === undefined) return;
    let box = this.#outboxes.get(proxy.node);
    if (box === undefined) this.#outboxes.set(proxy.node, (box = new Outbox(this.#parts.self)));
    box.add(kind, reader.bytes, offset, length, proxy.conn);
    if (kind === RecordKind.deliver) this.delivered++;
    this.#parts.flushSoon();
  }

  /** Every node's pending records, emptied. */
  takeOutboxes(): Array<[node: string, records: Uint8Array]> {
    const out: Array<[string, Uint8Array]> = [];
    for (const [node, box] of this.#outboxes) if (box.count > 0) out.push([node, box.take()]);
    return out;
  }

  get proxies(): number {
    return this.#byId.size;
  }

  #proxy(node: string, conn: number, create: boolean): Proxy | undefined {
    const k = `${node}\u0000${conn}`;
    let proxy = this.#byRemote.get(k);
    if (proxy === undefined && create) {
      proxy = { id: this.#allocate(), node, conn, subs: new Map() };
      this.#byRemote.set(k, proxy);
      this.#byId.set(proxy.id, proxy);
    }
    return proxy;
  }

  #allocate(): number {
    for (;;) {
      const id = this.#next;
      this.#next = id >= LAST_CLUSTER_CONNECTION ? FIRST_CLUSTER_CONNECTION : id + 1;
      if (!this.#byId.has(id)) return id;
    }
  }

  #close(proxy: Proxy): void {
    for (const s of shardsOf(proxy)) this.#parts.shard(s).writeControl((w) => w.connectionClosed(proxy.id));
    this.#byRemote.delete(`${proxy.node}\u0000${proxy.conn}`);
    this.#byId.delete(proxy.id);
  }
}

function shardsOf(proxy: Proxy): Set<number> {
  const out = new Set<number>();
  for (const s of proxy.subs.values()) out.add(s.shard);
  return out;
}

/**
 * Reads one outbox batch: returns the sending node's name after handing out each record's kind,
 * offset and length inside `data` (its connection id already the receiving node's).
 */
export function forEachRemoteRecord(data: Uint8Array, each: (from: string, kind: number, offset: number, length: number) => void): string {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  if (data.byteLength < 1 || data.byteLength < 1 + data[0]) throw new RangeError('remote records without their sender');
  const from = Buffer.from(data.buffer, data.byteOffset + 1, data[0]).toString('utf8');
  let at = 1 + data[0];
  while (at + 8 <= data.byteLength) {
    const kind = view.getUint32(at, true);
    const length = view.getUint32(at + 4, true);
    if (at + 8 + length > data.byteLength) throw new RangeError(`remote record cut short at ${at} (${data.byteLength} bytes)`);
    each(from, kind, at + 8, length);
    at += 8 + length;
  }
  if (at !== data.byteLength) throw new RangeError(`remote records have ${data.byteLength - at} stray bytes`);
  return from;
}
