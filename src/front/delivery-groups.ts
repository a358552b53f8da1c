/**
 * Fan-out late: shared streams for auto-ack `/topic/` subscriptions.
 *
 * Subscriptions that allow it (SUBSCRIBE_SHARED, which the exported client sets for auto ack) and
 * name the same `/topic/` pattern join one group. The group has one queue on one shard, bound and
 * bounded like a private topic queue, with one consumer (GROUP_CONNECTION, the group id): the
 * shard writes one deliver record per message for all members, not one per member. Here each
 * record is encoded once, as a DELIVER with the STREAM flag (stream id = group id, tag 0), into the
 * group's frame; at the end of the chunk the frame goes to uWebSockets.js's topic publish, which
 * copies it to every member socket in C++. Each member learned its stream id from a STREAM op,
 * sent before the socket joined the uWS topic, so the bytes are the same for every member.
 *
 * Flow control is the group's: its credit goes back to the shard after a chunk only while every
 * member's socket is below --socket-high-water (checked per chunk and per drain, never per
 * message), so a member that lags holds the group, and the full group queue presses (holds the
 * publishers) as a private topic queue does. A member whose socket stays above high water for
 * --slow-consumer-ms is slow, and --slow-consumer applies to it alone: `drop` takes it out of the
 * stream until its socket drains, then tells each of its subscriptions how many messages it
 * missed (a DROPPED notice, counted exactly from the stream's sequence); `disconnect` closes it;
 * `block` keeps it in, holding the group and its publishers, as it would hold its own queue.
 *
 * A member joining gets the stream from the next message handed to uWS: a few messages still in
 * the group queue (published just before it subscribed) can reach it, where a private queue would
 * have started empty.
 */
import type { TemplatedApp } from 'uWebSockets.js';
import type { BrokerContext } from './context.js';
import type { DeliveryFlush } from './delivery-flush.js';
import type { Connection, WsSubscription } from './ws-connection.js';
import type { Destination } from '../protocol/destination.js';
import { AckModeCode, type DeliverHead } from '../protocol/ring-record-codec.js';
import { BinaryFrameWriter } from '../protocol/ws-binary-encode.js';

/** The connection id of every group consumer in ring records (real connections stop below it). */
export const GROUP_CONNECTION = 0xffff_ffff;

/** A group's frame is handed to uWS before it grows past this, even mid-chunk. */
const MAX_GROUP_FRAME_BYTES = 256 * 1024;

interface Member {
  readonly connection: Connection;
  readonly subs: Set<WsSubscription>;
  /** The stream's sequence when the member was taken out as slow (drop); null while it is in. */
  leftAt: number | null;
}

interface Group {
  readonly id: number;
  readonly key: string;
  readonly destination: Destination;
  readonly queue: string;
  readonly shard: number;
  readonly topic: string;
  readonly members: Map<Connection, Member>;
  readonly writer: BinaryFrameWriter;
  /** Messages handed to the stream so far (a dropped member's loss is the difference). */
  seq: number;
  owedCredit: number;
  owedBytes: number;
  touched: boolean;
}

export interface GroupHooks {
  /** A member's subscription missed `count` messages (drop policy): count it and tell its client. */
  readonly dropped: (sub: WsSubscription, count: number) => void;
  /** A member is slow under --slow-consumer disconnect. */
  readonly disconnect: (connection: Connection) => void;
}

export class DeliveryGroups {
  readonly #ctx: BrokerContext;
  readonly #flush: DeliveryFlush;
  readonly #hooks: GroupHooks;
  readonly #byKey = new Map<string, Group>();
  readonly #byId = new Map<number, Group>();
  readonly #ofConnection = new Map<Connection, Set<Group>>();
  readonly #touched: Group[] = [];
  #app: TemplatedApp | null = null;
  #nextId = 1;
  /** Stream deliveries handed to uWS (messages × frames, not × members). */
  streamed = 0;

  constructor(ctx: BrokerContext, flush: DeliveryFlush, hooks: GroupHooks) {
    this.#ctx = ctx;
    this.#flush = flush;
    this.#hooks = hooks;
  }

  register(app: TemplatedApp): void {
    this.#app = app;
  }

  get groups(): number {
    return this.#byId.size;
  }

  /** The queue and shard `sub` (being created) will share for `destination`, creating the group if needed. */
  place(destination: Destination): { queue: string; shard: number; group: number } {
    const key = `${destination.exchange}\u0000${destination.name}`;
    let group = this.#byKey.get(key);
    if (group === undefined) {
      const { queue, shard } = this.#ctx.consume.sharedQueue(destination);
      const id = this.#allocateId();
      group = {
        id,
        key,
        destination,
        queue,
        shard,
        topic: `shardmq/stream/${id}`,
        members: new Map(),
        writer: new BinaryFrameWriter(),
        seq: 0,
        owedCredit: 0,
        owedBytes: 0,
        touched: false,
      };
      this.#byKey.set(key, group);
      this.#byId.set(id, group);
      this.#writeConsumer(group);
    }
    return { queue: group.queue, shard: group.shard, group: group.id };
  }

  /**
   * `sub` (placed in its group) starts: its client learns the stream id, then its socket joins the
   * stream. What the group gathered before goes out first, so the member starts after it.
   */
  join(sub: WsSubscription): void {
    const group = this.#byId.get(sub.group);
    if (group === undefined) return;
    const { connection } = sub;
    this.#flush.writer(connection).stream(sub.clientId as number, group.id);
    this.#flush.flushConnection(connection);
    let member = group.members.get(connection);
    if (member === undefined) {
      this.#publishPending(group);
      member = { connection, subs: new Set(), leftAt: null };
      group.members.set(connection, member);
      let mine = this.#ofConnection.get(connection);
      if (mine === undefined) this.#ofConnection.set(connection, (mine = new Set()));
      mine.add(group);
      connection.ws.subscribe(group.topic);
    }
    member.subs.add(sub);
  }

  /** `sub` ended (unsubscribe, cancel, close): the group drops with its last member. */
  leave(sub: WsSubscription): void {
    const group = this.#byId.get(sub.group);
    if (group === undefined) return;
    const { connection } = sub;
    const member = group.members.get(connection);
    if (member === undefined || !member.subs.delete(sub) || member.subs.size > 0) return;
    group.members.delete(connection);
    this.#ofConnection.get(connection)?.delete(group);
    if (!connection.closed && member.leftAt === null) connection.ws.unsubscribe(group.topic);
    if (group.members.size === 0) this.#drop(group);
    // The one that lagged may have gone: the rest may take more.
    else this.#creditIfKeepingUp(group);
  }

  /** The connection closed: it leaves every group (uWS dropped its topics with the socket). */
  connectionClosed(connection: Connection): void {
    const mine = this.#ofConnection.get(connection);
    if (mine === undefined) return;
    this.#ofConnection.delete(connection);
    for (const group of mine) {
      group.members.delete(connection);
      if (group.members.size === 0) this.#drop(group);
      else this.#creditIfKeepingUp(group);
    }
  }

  /** One deliver record of a group consumer: encoded once into the group's frame. */
  onDeliver(rec: DeliverHead, buf: Uint8Array): boolean {
    const group = this.#byId.get(rec.subscriptionId);
    if (group === undefined) return false;
    const props = rec.propsLength > 0 ? buf.subarray(rec.propsOffset, rec.propsOffset + rec.propsLength) : null;
    group.writer.deliverFromBytes(
      group.id,
      0,
      rec.redelivered,
      buf,
      rec.exchangeOffset,
      rec.exchangeLength,
      rec.keyOffset,
      rec.keyLength,
      props,
      rec.payloadOffset,
      rec.payloadLength,
      true,
    );
    group.seq++;
    group.owedCredit++;
    group.owedBytes += rec.payloadLength;
    if (!group.touched) {
      group.touched = true;
      this.#touched.push(group);
    }
    if (group.writer.length >= MAX_GROUP_FRAME_BYTES) this.#publishPending(group);
    return true;
  }

  /** End of an outbound chunk: each touched group's frame to uWS, and its credit back if every member keeps up. */
  endChunk(): void {
    const touched = this.#touched;
    for (let i = 0; i < touched.length; i++) {
      const group = touched[i];
      group.touched = false;
      this.#publishPending(group);
      this.#creditIfKeepingUp(group);
    }
    touched.length = 0;
  }

  /** uWS drained a member's socket: its groups may take more. */
  drained(connection: Connection): void {
    const mine = this.#ofConnection.get(connection);
    if (mine === undefined) return;
    for (const group of mine) this.#creditIfKeepingUp(group);
  }

  /** DeliveryFlush's verdict on a connection changed: --slow-consumer applies to its memberships. */
  slowChanged(connection: Connection, slow: boolean): void {
    const mine = this.#ofConnection.get(connection);
    if (mine === undefined) return;
    const policy = this.#ctx.config.slowConsumer;
    if (slow && policy === 'disconnect') {
      this.#hooks.disconnect(connection);
      return;
    }
    if (policy !== 'drop') return; // block: it stays in and holds its groups
    for (const group of mine) {
      const member = group.members.get(connection);
      if (member === undefined) continue;
      // Everything numbered up to here reaches it (its frame goes out first); after, nothing until it drains.
      this.#publishPending(group);
      if (slow && member.leftAt === null) {
        member.leftAt = group.seq;
        connection.ws.unsubscribe(group.topic);
        this.#creditIfKeepingUp(group);
      } else if (!slow && member.leftAt !== null) {
        const missed = group.seq - member.leftAt;
        member.leftAt = null;
        connection.ws.subscribe(group.topic);
        if (missed > 0) for (const sub of member.subs) this.#hooks.dropped(sub, missed);
      }
    }
  }

  /** The group's consumer was cancelled (its queue deleted): the group is gone; returns its members' subscriptions. */
  cancel(groupId: number): WsSubscription[] {
    const group = this.#byId.get(groupId);
    if (group === undefined) return [];
    const subs: WsSubscription[] = [];
    for (const member of group.members.values()) {
      subs.push(...member.subs);
      this.#ofConnection.get(member.connection)?.delete(group);
      if (!member.connection.closed && member.leftAt === null) member.connection.ws.unsubscribe(group.topic);
    }
    group.members.clear();
    this.#byKey.delete(group.key);
    this.#byId.delete(group.id);
    return subs;
  }

  /** The shard died: its group consumers and their credit went with it. */
  onShardCrash(shard: number): void {
    for (const group of this.#byId.values()) {
      if (group.shard !== shard) continue;
      group.owedCredit = 0;
      group.owedBytes = 0;
    }
  }

  /** The restarted shard has its topology back: its group consumers again. */
  onShardRestart(shard: number): void {
    for (const group of this.#byId.values()) if (group.shard === shard) this.#writeConsumer(group);
  }

  #writeConsumer(group: Group): void {
    const { deliveryWindow, deliveryWindowBytes } = this.#ctx.config;
    this.#ctx.shards[group.shard].writeControl((w) =>
      w.subscribe(GROUP_CONNECTION, group.id, group.queue, AckModeCode.auto, 0, deliveryWindow, deliveryWindowBytes),
    );
  }

  #publishPending(group: Group): void {
    const w = group.writer;
    if (w.length === 0) return;
    const ops = w.opCount;
    // uWS copies the frame into its topic tree before this returns: the writer can be reused.
    this.#app?.publish(group.topic, w.finish(), true);
    w.reset();
    this.streamed += ops;
  }

  /**
   * Returns the group's owed credit when every member in the stream is below high water. Each one
   * is sampled (so its slow timer runs): a walk over the members per chunk or drain, not per message.
   */
  #creditIfKeepingUp(group: Group): void {
    let keepingUp = true;
    for (const member of group.members.values()) {
      if (member.leftAt !== null || member.connection.closed) continue;
      if (!this.#flush.sample(member.connection)) keepingUp = false;
    }
    if (!keepingUp || group.owedCredit === 0) return;
    const owed = group.owedCredit;
    const bytes = group.owedBytes;
    group.owedCredit = 0;
    group.owedBytes = 0;
    this.#ctx.shards[group.shard].writeControl((w) => w.credit(GROUP_CONNECTION, group.id, owed, bytes));
  }

  #drop(group: Group): void {
    this.#byKey.delete(group.key);
    this.#byId.delete(group.id);
    const handle = this.#ctx.shards[group.shard];
    handle.writeControl((w) => w.unsubscribe(GROUP_CONNECTION, group.id));
    this.#ctx.consume.dropQueue(group.queue, group.shard);
  }

  #allocateId(): number {
    do {
      this.#nextId = this.#nextId >= 0xffff_fffe ? 1 : this.#nextId + 1;
    } while (this.#byId.has(this.#nextId));
    return this.#nextId;
  }
}
