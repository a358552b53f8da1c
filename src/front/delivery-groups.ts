/**
 * Fan-out late: shared streams for auto-ack `/topic/` subscriptions.
 *
 * Subscriptions that allow it (SUBSCRIBE_SHARED, which the exported client sets for auto ack) and
 * name the same `/topic/` pattern join one group. The group has one queue on one shard, bound and
 * bounded like a private topic queue, with one consumer (GROUP_CONNECTION, the group id): the
 * shard writes one deliver record per message for all members, not one per member. Here each
 * record is encoded once, as a DELIVER with the STREAM flag (stream id = group id, tag 0), into the
 * group's frame; at the end of the chunk the frame goes to uWebSockets.js's topic publish, which
 * copies it to every member socket in C++ (a group that never had a second member has no uWS topic:
 * its frame is sent to its one member's socket directly). Each member learned its stream id from a STREAM op,
 * sent before the socket joined the uWS topic, so the bytes are the same for every member.
 *
 * Flow control is the group's: its credit goes back to the shard after a chunk only while every
 * member's socket is below --socket-high-water (checked per chunk and per drain, never per
 * message), so a member that lags holds the group, and the full group queue presses (holds the
 * publishers) as a private topic queue does. A member whose socket stays above high water for
 * --slow-consumer-ms is slow, and --slow-consumer applies to it alone: `drop` takes it out of the
 * stream until its socket drains, then sends it the newest --topic-buffer messages it missed (the
 * group keeps that many of its frames while a member is out) and tells each of its subscriptions
 * how many older ones it lost (a DROPPED notice, counted exactly from the stream's sequence): the
 * same drop-oldest a private topic queue applies; `disconnect` closes it; `block` keeps it in,
 * holding the group and its publishers, as it would hold its own queue.
 *
 * A member joining gets the stream from the next message handed to uWS: a few messages still in
 * the group queue (published just before it subscribed) can reach it, where a private queue would
 * have started empty.
 */
import type { VhostScope } from '../protocol/vhost-name.js';
import type { TemplatedApp } from 'uWebSockets.js';
import type { BrokerContext } from './context.js';
import type { DeliveryFlush } from './delivery-flush.js';
import type { Connection, WsSubscription } from './ws-connection.js';
import type { Destination } from '../protocol/destination.js';
import { AckModeCode, type DeliverHead } from '../protocol/ring-record-codec.js';
import type { BinaryFrameWriter } from '../protocol/ws-binary-encode.js';
import { OP_HEADER_BYTES, readU32 } from '../protocol/ws-binary.js';

/** Where the op after the first `skip` ops of a frame starts (`[u8 opcode][u32 LE length][body]` each). */
function opOffset(frame: Uint8Array, skip: number): number {
  let at = 0;
  for (let i = 0; i < skip; i++) at += OP_HEADER_BYTES + readU32(frame, at + 1);
  return at;
}

/** The connection id of every group consumer in ring records (real connections stop below it). */
export const GROUP_CONNECTION = 0xffff_ffff;

/** A group's frame is handed to uWS before it grows past this, even mid-chunk. */
const MAX_GROUP_FRAME_BYTES = 256 * 1024;

interface Member {
  readonly connection: Connection;
  /** Its subscriptions to the group's pattern (almost always one); replaced, never spliced, so a walk over it stays valid. */
  subs: readonly WsSubscription[];
  /** The stream's sequence when the member was taken out as slow (drop); null while it is in. */
  leftAt: number | null;
}

/** A group's members become a Map past this many. */
const MEMBERS_AS_MAP = 8;

/**
 * A group's members by connection: an array while they are few (most streams have one member, and
 * an empty Map is ~180 bytes of every idle subscription), a Map past MEMBERS_AS_MAP. A removal
 * replaces the array, so a walk over values() is not disturbed by a member leaving during it.
 */
class Members {
  #few: readonly Member[] = [];
  #many: Map<Connection, Member> | null = null;

  get size(): number {
    return this.#many === null ? this.#few.length : this.#many.size;
  }

  get(connection: Connection): Member | undefined {
    if (this.#many !== null) return this.#many.get(connection);
    for (const member of this.#few) if (member.connection === connection) return member;
    return undefined;
  }

  add(member: Member): void {
    if (this.#many !== null) this.#many.set(member.connection, member);
    else if (this.#few.length < MEMBERS_AS_MAP)
      this.#few = this.#few.concat(member); // exact size: a spread leaves room for 17
    else {
      this.#many = new Map(this.#few.map((m) => [m.connection, m]));
      this.#many.set(member.connection, member);
      this.#few = [];
    }
  }

  delete(connection: Connection): void {
    if (this.#many !== null) this.#many.delete(connection);
    else this.#few = this.#few.filter((m) => m.connection !== connection);
  }

  values(): Iterable<Member> {
    return this.#many === null ? this.#few : this.#many.values();
  }

  clear(): void {
    this.#few = [];
    this.#many = null;
  }
}

interface Group {
  readonly id: number;
  readonly key: string;
  readonly destination: Destination;
  readonly queue: string;
  readonly shard: number;
  /**
   * The uWS topic its members' sockets subscribe to, once it has had two members; null before: a
   * stream with one member (most of a telemetry fleet's 100,000 patterns) sends it its frames
   * directly, and no uWS topic holds ~410 bytes of native memory for it.
   */
  topic: string | null;
  readonly members: Members;
  /** Lent by the flush's pool from the group's first delivery of a chunk until its frame goes to uWS. */
  writer: BinaryFrameWriter | null;
  /** Messages handed to the stream so far (a dropped member's loss is the difference). */
  seq: number;
  /** Members taken out as slow (drop): while any is, the newest frames are kept for them. */
  out: number;
  /** Frames handed to uWS while a member was out, oldest first, at most --topic-buffer messages beyond the first. */
  history: Array<{ frame: Uint8Array; ops: number }> | null;
  historyOps: number;
  owedCredit: number;
  owedBytes: number;
  /** Payload bytes in the frame being gathered (each member gets them). */
  frameBytes: number;
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
  /** Messages slow members of streams lost (drop policy), summed over members. */
  dropped = 0;
  /** Shared streams' deliveries a slow member got again from the kept frames when it drained. */
  replayed = 0;
  /** Payload bytes the streams delivered, once per member that got them. */
  deliveredBytes = 0;

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
  place(destination: Destination, vhost: VhostScope): { queue: string; shard: number; group: number } {
    // Per vhost: two tenants' subscribers to the same pattern read different exchanges.
    const key = `${vhost.prefix}${destination.exchange}\u0000${destination.name}`;
    let group = this.#byKey.get(key);
    if (group === undefined) {
      const { queue, shard } = this.#ctx.consume.sharedQueue(destination, vhost);
      const id = this.#allocateId();
      group = {
        id,
        key,
        destination,
        queue,
        shard,
        topic: null,
        members: new Members(),
        writer: null,
        seq: 0,
        out: 0,
        history: null,
        historyOps: 0,
        owedCredit: 0,
        owedBytes: 0,
        frameBytes: 0,
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
      member = { connection, subs: [], leftAt: null };
      group.members.add(member);
      let mine = this.#ofConnection.get(connection);
      if (mine === undefined) this.#ofConnection.set(connection, (mine = new Set()));
      mine.add(group);
      if (group.topic !== null) connection.ws.subscribe(group.topic);
      else if (group.members.size > 1) this.#toTopic(group);
    }
    if (!member.subs.includes(sub)) member.subs = member.subs.concat(sub);
  }

  /** `sub` ended (unsubscribe, cancel, close): the group drops with its last member. */
  leave(sub: WsSubscription): void {
    const group = this.#byId.get(sub.group);
    if (group === undefined) return;
    const { connection } = sub;
    const member = group.members.get(connection);
    if (member === undefined || !member.subs.includes(sub)) return;
    member.subs = member.subs.filter((s) => s !== sub);
    if (member.subs.length > 0) return;
    this.#remove(group, member);
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
      const member = group.members.get(connection);
      if (member !== undefined) this.#remove(group, member);
      if (group.members.size === 0) this.#drop(group);
      else this.#creditIfKeepingUp(group);
    }
  }

  /** One deliver record of a group consumer: encoded once into the group's frame. */
  onDeliver(rec: DeliverHead, buf: Uint8Array): boolean {
    const group = this.#byId.get(rec.subscriptionId);
    if (group === undefined) return false;
    const writer = (group.writer ??= this.#flush.writers.take());
    writer.deliverRecord(group.id, 0, rec, buf, true);
    group.seq++;
    group.owedCredit++;
    group.owedBytes += rec.payloadLength;
    group.frameBytes += rec.payloadLength;
    if (!group.touched) {
      group.touched = true;
      this.#touched.push(group);
    }
    if (writer.length >= MAX_GROUP_FRAME_BYTES) this.#publishPending(group);
    return true;
  }

  /** End of an outbound chunk: each touched group's frame to uWS, and its credit back if every member keeps up. */
  endChunk(): void {
    const touched = this.#touched;
    for (let i = 0; i < touched.length; i++) {
      const group = touched[i];
      group.touched = false;
      // Dropped during the chunk (its last member left): nobody to send to, no consumer to credit.
      if (this.#byId.get(group.id) !== group) continue;
      this.#publishPending(group);
      this.#creditIfKeepingUp(group, true);
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
        group.out++;
        if (group.topic !== null) connection.ws.unsubscribe(group.topic);
        this.#creditIfKeepingUp(group);
      } else if (!slow && member.leftAt !== null) {
        const missed = group.seq - member.leftAt;
        member.leftAt = null;
        const replayed = this.#replay(group, connection, Math.min(missed, this.#ctx.config.topicBuffer));
        this.#endOut(group);
        if (group.topic !== null) connection.ws.subscribe(group.topic);
        this.replayed += replayed;
        if (missed > replayed) {
          for (const sub of member.subs) {
            this.dropped += missed - replayed;
            this.#hooks.dropped(sub, missed - replayed);
          }
        }
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
      if (!member.connection.closed && member.leftAt === null && group.topic !== null) member.connection.ws.unsubscribe(group.topic);
    }
    group.members.clear();
    this.#forget(group);
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
    if (w === null) return;
    group.writer = null;
    const ops = w.opCount;
    if (ops > 0) {
      const frame = w.finish();
      // uWS copies the frame (into its topic tree, or the socket's buffer) before this returns: the
      // writer can be reused.
      if (group.topic !== null) this.#app?.publish(group.topic, frame, true);
      else {
        for (const member of group.members.values()) {
          if (member.leftAt !== null || member.connection.closed) continue;
          const ws = member.connection.ws;
          ws.cork(() => ws.send(frame, true));
        }
      }
      if (group.out > 0) this.#remember(group, frame.slice(), ops);
      this.streamed += ops;
      // Per frame, not per message: each member in the stream got these ops.
      for (const member of group.members.values()) {
        if (member.leftAt !== null) continue;
        member.connection.delivered += ops;
        member.connection.deliveredBytes += group.frameBytes;
        this.deliveredBytes += group.frameBytes;
      }
    }
    group.frameBytes = 0;
    this.#flush.writers.give(w);
  }

  /** Keeps a frame for the members out of the stream, and no more than --topic-buffer messages beyond the first frame. */
  #remember(group: Group, frame: Uint8Array, ops: number): void {
    const history = (group.history ??= []);
    history.push({ frame, ops });
    group.historyOps += ops;
    const bound = this.#ctx.config.topicBuffer;
    while (history.length > 1 && group.historyOps - history[0].ops >= bound) {
      group.historyOps -= history[0].ops;
      history.shift();
    }
  }

  /**
   * Sends `connection` the last `count` messages of the stream from the kept frames (as they went
   * to everyone: stream DELIVERs), in one cork; returns how many it could (what was kept).
   */
  #replay(group: Group, connection: Connection, count: number): number {
    const frames: Uint8Array[] = [];
    let left = count;
    const history = group.history ?? [];
    for (let i = history.length - 1; i >= 0 && left > 0; i--) {
      const { frame, ops } = history[i];
      frames.push(ops <= left ? frame : frame.subarray(opOffset(frame, ops - left)));
      left -= Math.min(ops, left);
    }
    if (frames.length === 0 || connection.closed) return 0;
    connection.ws.cork(() => {
      for (let i = frames.length - 1; i >= 0; i--) connection.ws.send(frames[i], true);
    });
    return count - left;
  }

  /** One member fewer out of the stream: with none left, the kept frames go. */
  #endOut(group: Group): void {
    group.out--;
    if (group.out > 0) return;
    group.history = null;
    group.historyOps = 0;
  }

  #remove(group: Group, member: Member): void {
    const { connection } = member;
    group.members.delete(connection);
    this.#ofConnection.get(connection)?.delete(group);
    if (member.leftAt !== null) this.#endOut(group);
    else if (!connection.closed && group.topic !== null) connection.ws.unsubscribe(group.topic);
  }

  /** A second member: from now on the stream goes through a uWS topic, which copies each frame to every member in C++. */
  #toTopic(group: Group): void {
    const topic = `shardmq/stream/${group.id}`;
    group.topic = topic;
    for (const member of group.members.values()) {
      if (member.leftAt === null && !member.connection.closed) member.connection.ws.subscribe(topic);
    }
  }

  /**
   * Returns the group's owed credit when every member in the stream is below high water. Each one
   * is sampled (so its slow timer runs): a walk over the members per chunk or drain, not per message.
   */
  #creditIfKeepingUp(group: Group, chunkEnd = false): void {
    let keepingUp = true;
    for (const member of group.members.values()) {
      if (member.leftAt !== null || member.connection.closed) continue;
      if (!this.#flush.sample(member.connection)) keepingUp = false;
    }
    if (!keepingUp || group.owedCredit === 0) return;
    // At a chunk's end only in eighths of the window (DeliveryFlush.creditDue); a drain or a member leaving returns all.
    if (chunkEnd && !this.#flush.creditDue(group.owedCredit, group.owedBytes)) return;
    const owed = group.owedCredit;
    const bytes = group.owedBytes;
    group.owedCredit = 0;
    group.owedBytes = 0;
    this.#ctx.shards[group.shard].writeControl((w) => w.credit(GROUP_CONNECTION, group.id, owed, bytes));
  }

  #drop(group: Group): void {
    this.#forget(group);
    const handle = this.#ctx.shards[group.shard];
    handle.writeControl((w) => w.unsubscribe(GROUP_CONNECTION, group.id));
    this.#ctx.consume.dropQueue(group.queue, group.shard);
  }

  /** The group is gone: unreachable by key or id, and a frame it was gathering goes nowhere. */
  #forget(group: Group): void {
    this.#byKey.delete(group.key);
    this.#byId.delete(group.id);
    if (group.writer !== null) {
      this.#flush.writers.give(group.writer);
      group.writer = null;
    }
  }

  #allocateId(): number {
    do {
      this.#nextId = this.#nextId >= 0xffff_fffe ? 1 : this.#nextId + 1;
    } while (this.#byId.has(this.#nextId));
    return this.#nextId;
  }
}
