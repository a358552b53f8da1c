/**
 * Fan-out late: shared streams for auto-ack `/topic/` subscriptions, carried light.
 *
 * Subscriptions that allow it (SUBSCRIBE_SHARED, which the exported client sets for auto ack) and
 * name the same `/topic/` pattern join one group: one stream, whose messages are encoded once, as
 * DELIVERs with the STREAM flag (stream id = group id, tag 0), into the group's frame; at the end of
 * the chunk the frame goes to uWebSockets.js's topic publish, which copies it to every member socket
 * in C++ (a group that never had a second member has no uWS topic: its frame is sent to its one
 * member's socket directly). Each member learned its stream id from a STREAM op, sent before the
 * socket joined the uWS topic, so the bytes are the same for every member.
 *
 * A group is light: it has no queue of its own. Every group on one exchange (of one vhost) is fed by
 * that exchange's carrier, one queue on one shard with one consumer (GROUP_CONNECTION, the carrier
 * id). The groups' patterns sit in the carrier's trie on this thread (control/light-routes.ts): the
 * publish path sends a message to the carrier only when a pattern matches its key, and each deliver
 * record of the carrier is matched here again to the groups it goes to. So an idle subscription
 * costs a trie entry and its group here, and nothing on a shard: no queue, binding or consumer.
 *
 * Flow control is the carrier's: its credit goes back to the shard after a chunk only while no
 * member socket that got its messages is above --socket-high-water (checked per chunk for the groups
 * the chunk touched, and per drain, never per message), so a member that lags holds the carrier, and
 * the full carrier presses (holds the publishers) as a private topic queue does. The carrier is the
 * light subscription's backlog: what a lagging member's groups have not taken waits there, in order.
 * A member whose socket stays above high water for --slow-consumer-ms is slow, and --slow-consumer
 * applies to it alone: `drop` takes it out of its streams until its socket drains, then sends it the
 * newest --topic-buffer messages of each stream it missed (a group keeps that many of its frames
 * while a member is out) and tells each of its subscriptions how many older ones it lost (a DROPPED
 * notice, counted exactly from the stream's sequence): the same drop-oldest a private topic queue
 * applies; `disconnect` closes it; `block` keeps it in, holding the carrier and its publishers, as
 * it would hold its own queue.
 *
 * A member joining gets the stream from the next message matched to it: a few messages still in the
 * carrier (published just before it subscribed) can reach it, where a private queue would have
 * started empty.
 */
import type { VhostScope } from '../protocol/vhost-name.js';
import type { TemplatedApp } from 'uWebSockets.js';
import type { BrokerContext } from './context.js';
import type { DeliveryFlush } from './delivery-flush.js';
import type { Connection, StreamGroup, WsSubscription } from './ws-connection.js';
import type { Destination } from '../protocol/destination.js';
import { LightRoutes, type LightExchange } from '../control/light-routes.js';
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
  /**
   * Its subscriptions to the group's pattern: almost always one, held as itself (an array of one is
   * ~56 bytes of every idle subscription); several in an array, replaced, never spliced, so a walk
   * over it stays valid.
   */
  subs: WsSubscription | readonly WsSubscription[];
  /** The stream's sequence when the member was taken out as slow (drop); null while it is in. */
  leftAt: number | null;
}

/** A member's subscriptions as a list. */
function subsOf(member: Member): readonly WsSubscription[] {
  return Array.isArray(member.subs) ? member.subs : [member.subs as WsSubscription];
}

/** A group's members become a Map past this many. */
const MEMBERS_AS_MAP = 8;

/**
 * A group's members by connection: the member itself while it is alone (most streams have one, and
 * an array of one is ~56 bytes of every idle subscription), an array while they are few, a Map past
 * MEMBERS_AS_MAP (an empty Map alone is ~180 bytes). A change replaces the array, so a walk over
 * values() is not disturbed by a member leaving during it.
 */
class Members {
  #set: Member | readonly Member[] | Map<Connection, Member> | null = null;

  get size(): number {
    const set = this.#set;
    if (set === null) return 0;
    if (Array.isArray(set)) return set.length;
    return set instanceof Map ? set.size : 1;
  }

  get(connection: Connection): Member | undefined {
    const set = this.#set;
    if (set === null) return undefined;
    if (set instanceof Map) return set.get(connection);
    if (!Array.isArray(set)) return (set as Member).connection === connection ? (set as Member) : undefined;
    for (const member of set) if (member.connection === connection) return member;
    return undefined;
  }

  add(member: Member): void {
    const set = this.#set;
    if (set === null) this.#set = member;
    else if (set instanceof Map) set.set(member.connection, member);
    else if (!Array.isArray(set)) this.#set = [set as Member, member];
    else if (set.length < MEMBERS_AS_MAP)
      this.#set = set.concat(member); // exact size: a spread leaves room for 17
    else this.#set = new Map([...set, member].map((m) => [m.connection, m]));
  }

  delete(connection: Connection): void {
    const set = this.#set;
    if (set === null) return;
    if (set instanceof Map) set.delete(connection);
    else if (!Array.isArray(set)) {
      if ((set as Member).connection === connection) this.#set = null;
    } else {
      const rest = set.filter((m) => m.connection !== connection);
      this.#set = rest.length === 1 ? rest[0] : rest.length === 0 ? null : rest;
    }
  }

  values(): Iterable<Member> {
    const set = this.#set;
    if (set === null) return EMPTY_MEMBERS;
    if (set instanceof Map) return set.values();
    return Array.isArray(set) ? set : [set as Member];
  }

  clear(): void {
    this.#set = null;
  }
}

const EMPTY_MEMBERS: readonly Member[] = Object.freeze([]);

/** The queue that feeds every group of one exchange (of one vhost), and its flow control. */
interface Carrier {
  /** Its consumer's id on the shard (with GROUP_CONNECTION). */
  readonly id: number;
  /** Its groups, by pattern, in the trie that routes to them (one group per pattern: the trie's size is their number). */
  readonly routes: LightExchange<Group>;
  owedCredit: number;
  owedBytes: number;
  touched: boolean;
  /** Member connections above high water when last sampled for it: its credit waits while any is. */
  holders: Set<Connection> | null;
}

/** What a stream keeps while members are out of it as slow (drop), made when the first one goes out. */
interface Kept {
  /** Members out. */
  out: number;
  /** Frames handed to uWS while a member was out, oldest first, at most --topic-buffer messages beyond the first. */
  readonly frames: Array<{ frame: Uint8Array; ops: number }>;
  /** Messages in them. */
  ops: number;
}

/**
 * A stream: its members (the group is its own member set, so an idle subscription pays for no
 * separate object) and what it gathers for them.
 */
class Group extends Members implements StreamGroup {
  /**
   * The uWS topic its members' sockets subscribe to, once it has had two members; null before: a
   * stream with one member (most of a telemetry fleet's 100,000 patterns) sends it its frames
   * directly, and no uWS topic holds ~410 bytes of native memory for it.
   */
  topic: string | null = null;
  /** Lent by the flush's pool from the group's first delivery of a chunk until its frame goes to uWS. */
  writer: BinaryFrameWriter | null = null;
  /** Messages handed to the stream so far (a dropped member's loss is the difference). */
  seq = 0;
  /** While members are out as slow (drop): how many, and the newest frames kept for them. */
  kept: Kept | null = null;
  /** Payload bytes in the frame being gathered (each member gets them). */
  frameBytes = 0;
  touched = false;

  constructor(
    readonly id: number,
    readonly destination: Destination,
    readonly carrier: Carrier,
  ) {
    super();
  }

  /** Its members (the group itself: a getter, no field). */
  get members(): Members {
    return this;
  }

  /** Dropped (its last member left, or its carrier was cancelled): a group in use always has a member. */
  get gone(): boolean {
    return this.size === 0;
  }
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
  readonly #light: LightRoutes<Group>;
  /** Carriers by qualified exchange, and by consumer id. */
  readonly #carriers = new Map<string, Carrier>();
  readonly #carriersById = new Map<number, Carrier>();
  /** After the ids wrapped: the ids then in use, skipped until the next wrap. */
  #usedAfterWrap: Set<number> | null = null;
  /** Each connection's carriers, with how many of its groups each feeds (drains walk these, not the groups). */
  readonly #carriersOf = new Map<Connection, Map<Carrier, number>>();
  readonly #touched: Group[] = [];
  readonly #touchedCarriers: Carrier[] = [];
  #app: TemplatedApp | null = null;
  #nextId = 1;
  #nextCarrier = 1;
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
    const registry = ctx.topology.registry;
    this.#light = new LightRoutes<Group>(
      () => registry.bindingObserver,
      (group) => group.destination.name,
    );
    ctx.topology.light = this.#light;
  }

  register(app: TemplatedApp): void {
    this.#app = app;
  }

  /** Groups alive: each is one pattern in its carrier's trie. */
  get groups(): number {
    let n = 0;
    for (const carrier of this.#carriersById.values()) n += carrier.routes.matcher.size;
    return n;
  }

  /** The queue and shard `sub` (being created) will share for `destination`, creating the group if needed. */
  place(destination: Destination, vhost: VhostScope): { queue: string; shard: number; group: StreamGroup } {
    // Per vhost: two tenants' subscribers to the same pattern read different exchanges.
    const carrier = this.#carrierFor(destination, vhost);
    let group: Group | undefined = carrier.routes.matcher.valuesAt(destination.name)[0];
    if (group === undefined) {
      group = new Group(this.#allocateId(), destination, carrier);
      this.#light.add(carrier.routes, destination.name, group);
    }
    return { queue: carrier.routes.queue, shard: carrier.routes.shard, group };
  }

  /**
   * `sub` (placed in its group) starts: its client learns the stream id, then its socket joins the
   * stream. What the group gathered before goes out first, so the member starts after it.
   */
  join(sub: WsSubscription): void {
    // Right after place(): a new group has no member yet.
    const group = sub.group as Group | null;
    if (group === null) return;
    const { connection } = sub;
    this.#flush.writer(connection).stream(sub.clientId as number, group.id);
    this.#flush.flushConnection(connection);
    let member = group.members.get(connection);
    if (member === undefined) {
      this.#publishPending(group);
      member = { connection, subs: sub, leftAt: null };
      group.members.add(member);
      let carriers = this.#carriersOf.get(connection);
      if (carriers === undefined) this.#carriersOf.set(connection, (carriers = new Map()));
      carriers.set(group.carrier, (carriers.get(group.carrier) ?? 0) + 1);
      if (group.topic !== null) connection.ws.subscribe(group.topic);
      else if (group.members.size > 1) this.#toTopic(group);
    }
    const subs = subsOf(member);
    if (!subs.includes(sub)) member.subs = subs.concat(sub);
  }

  /** `sub` ended (unsubscribe, cancel, close): the group drops with its last member. */
  leave(sub: WsSubscription): void {
    const group = sub.group as Group | null;
    if (group === null || group.gone) return;
    const { connection } = sub;
    const member = group.members.get(connection);
    if (member === undefined) return;
    const subs = subsOf(member);
    if (!subs.includes(sub)) return;
    if (subs.length > 1) {
      const rest = subs.filter((s) => s !== sub);
      member.subs = rest.length === 1 ? rest[0] : rest;
      return;
    }
    const { carrier } = group;
    this.#remove(group, member);
    this.#leaveCarrier(connection, carrier);
    if (group.members.size === 0) this.#drop(group);
    // The one that lagged may have gone: the rest may take more.
    if (this.#carriersById.get(carrier.id) === carrier) this.#creditIfKeepingUp(carrier);
  }

  /** The connection closed: it leaves every group (uWS dropped its topics with the socket). */
  connectionClosed(connection: Connection): void {
    const carriers = this.#carriersOf.get(connection);
    if (carriers === undefined) return;
    this.#carriersOf.delete(connection);
    for (const group of this.#groupsOf(connection)) {
      const member = group.members.get(connection);
      if (member !== undefined) this.#remove(group, member);
      if (group.members.size === 0) this.#drop(group);
    }
    for (const carrier of carriers.keys()) {
      carrier.holders?.delete(connection);
      if (this.#carriersById.get(carrier.id) === carrier) this.#creditIfKeepingUp(carrier);
    }
  }

  /**
   * One deliver record of a carrier: matched to the groups whose pattern fits its key, and encoded
   * once into each one's frame; `key` is its routing key (RecordReader.deliverKey).
   */
  onDeliver(rec: DeliverHead, buf: Uint8Array, key: string): boolean {
    const carrier = this.#carriersById.get(rec.subscriptionId);
    if (carrier === undefined) return false;
    carrier.owedCredit++;
    carrier.owedBytes += rec.payloadLength;
    if (!carrier.touched) {
      carrier.touched = true;
      this.#touchedCarriers.push(carrier);
    }
    const groups = carrier.routes.matcher.match(key);
    for (let i = 0; i < groups.length; i++) {
      const group = groups[i];
      const writer = (group.writer ??= this.#flush.writers.take());
      writer.deliverRecord(group.id, 0, rec, buf, true);
      group.seq++;
      group.frameBytes += rec.payloadLength;
      if (!group.touched) {
        group.touched = true;
        this.#touched.push(group);
      }
      if (writer.length >= MAX_GROUP_FRAME_BYTES) this.#publishPending(group);
    }
    return true;
  }

  /** End of an outbound chunk: each touched group's frame to uWS, and its carrier's credit back if every member keeps up. */
  endChunk(): void {
    const touched = this.#touched;
    for (let i = 0; i < touched.length; i++) {
      const group = touched[i];
      group.touched = false;
      // Dropped during the chunk (its last member left): nobody to send to.
      if (group.gone) continue;
      this.#publishPending(group);
      this.#sampleMembers(group);
    }
    touched.length = 0;
    const carriers = this.#touchedCarriers;
    for (let i = 0; i < carriers.length; i++) {
      const carrier = carriers[i];
      carrier.touched = false;
      // Dropped during the chunk: no consumer to credit.
      if (this.#carriersById.get(carrier.id) === carrier) this.#creditIfKeepingUp(carrier, true);
    }
    carriers.length = 0;
  }

  /** uWS drained a member's socket: the carriers it held may take more. */
  drained(connection: Connection): void {
    const carriers = this.#carriersOf.get(connection);
    if (carriers === undefined) return;
    const keepsUp = this.#flush.sample(connection);
    for (const carrier of carriers.keys()) {
      if (keepsUp) carrier.holders?.delete(connection);
      this.#creditIfKeepingUp(carrier);
    }
  }

  /** DeliveryFlush's verdict on a connection changed: --slow-consumer applies to its memberships. */
  slowChanged(connection: Connection, slow: boolean): void {
    if (!this.#carriersOf.has(connection)) return;
    const policy = this.#ctx.config.slowConsumer;
    if (slow && policy === 'disconnect') {
      this.#hooks.disconnect(connection);
      return;
    }
    if (policy !== 'drop') return; // block: it stays in and holds its carriers
    for (const group of this.#groupsOf(connection)) {
      const member = group.members.get(connection);
      if (member === undefined) continue;
      // Everything numbered up to here reaches it (its frame goes out first); after, nothing until it drains.
      this.#publishPending(group);
      if (slow && member.leftAt === null) {
        member.leftAt = group.seq;
        (group.kept ??= { out: 0, frames: [], ops: 0 }).out++;
        if (group.topic !== null) connection.ws.unsubscribe(group.topic);
      } else if (!slow && member.leftAt !== null) {
        const missed = group.seq - member.leftAt;
        member.leftAt = null;
        const replayed = this.#replay(group, connection, Math.min(missed, this.#ctx.config.topicBuffer));
        this.#endOut(group);
        if (group.topic !== null) connection.ws.subscribe(group.topic);
        this.replayed += replayed;
        if (missed > replayed) {
          for (const sub of subsOf(member)) {
            this.dropped += missed - replayed;
            this.#hooks.dropped(sub, missed - replayed);
          }
        }
      }
    }
    if (!slow) return;
    // Out of its streams, it holds no carrier.
    for (const carrier of this.#carriersOf.get(connection)?.keys() ?? []) {
      carrier.holders?.delete(connection);
      this.#creditIfKeepingUp(carrier);
    }
  }

  /** A carrier's consumer was cancelled (its queue deleted): its groups are gone; returns their members' subscriptions. */
  cancel(carrierId: number): WsSubscription[] {
    const carrier = this.#carriersById.get(carrierId);
    if (carrier === undefined) return [];
    const subs: WsSubscription[] = [];
    for (const group of carrier.routes.matcher.allValues()) {
      for (const member of group.members.values()) {
        subs.push(...subsOf(member));
        this.#carriersOf.get(member.connection)?.delete(carrier);
        if (!member.connection.closed && member.leftAt === null && group.topic !== null) member.connection.ws.unsubscribe(group.topic);
      }
      group.members.clear();
      this.#forget(group);
      this.#light.remove(carrier.routes, group.destination.name, group);
    }
    this.#forgetCarrier(carrier);
    return subs;
  }

  /** The shard died: its carriers' consumers and their credit went with it. */
  onShardCrash(shard: number): void {
    for (const carrier of this.#carriersById.values()) {
      if (carrier.routes.shard !== shard) continue;
      carrier.owedCredit = 0;
      carrier.owedBytes = 0;
    }
  }

  /** The restarted shard has its topology back: its carriers' consumers again. */
  onShardRestart(shard: number): void {
    for (const carrier of this.#carriersById.values()) if (carrier.routes.shard === shard) this.#writeConsumer(carrier);
  }

  /** The carrier of `destination`'s exchange in `vhost`, declared (queue, consumer) on first use. */
  #carrierFor(destination: Destination, vhost: VhostScope): Carrier {
    const exchange = vhost.names.of(destination.exchange);
    let carrier = this.#carriers.get(exchange);
    if (carrier !== undefined) return carrier;
    const { queue, shard } = this.#ctx.consume.carrierQueue(exchange, vhost);
    let id = this.#nextCarrier;
    while (this.#carriersById.has(id)) id = id >= 0xffff_fffe ? 1 : id + 1;
    this.#nextCarrier = id >= 0xffff_fffe ? 1 : id + 1;
    carrier = {
      id,
      routes: this.#light.open(exchange, queue, shard),
      owedCredit: 0,
      owedBytes: 0,
      touched: false,
      holders: null,
    };
    this.#carriers.set(exchange, carrier);
    this.#carriersById.set(id, carrier);
    this.#writeConsumer(carrier);
    return carrier;
  }

  #writeConsumer(carrier: Carrier): void {
    const { deliveryWindow, deliveryWindowBytes } = this.#ctx.config;
    this.#ctx.shards[carrier.routes.shard].writeControl((w) =>
      w.subscribe(GROUP_CONNECTION, carrier.id, carrier.routes.queue, AckModeCode.auto, 0, deliveryWindow, deliveryWindowBytes),
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
      if (group.kept !== null) this.#remember(group.kept, frame.slice(), ops);
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
  #remember(kept: Kept, frame: Uint8Array, ops: number): void {
    const history = kept.frames;
    history.push({ frame, ops });
    kept.ops += ops;
    const bound = this.#ctx.config.topicBuffer;
    while (history.length > 1 && kept.ops - history[0].ops >= bound) {
      kept.ops -= history[0].ops;
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
    const history = group.kept?.frames ?? [];
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
    const kept = group.kept;
    if (kept === null) return;
    kept.out--;
    if (kept.out === 0) group.kept = null;
  }

  #remove(group: Group, member: Member): void {
    const { connection } = member;
    group.members.delete(connection);
    if (member.leftAt !== null) this.#endOut(group);
    else if (!connection.closed && group.topic !== null) connection.ws.unsubscribe(group.topic);
  }

  /** One group fewer of `connection` in `carrier`: with none left, the connection holds it no more. */
  #leaveCarrier(connection: Connection, carrier: Carrier): void {
    const carriers = this.#carriersOf.get(connection);
    const n = carriers?.get(carrier);
    if (carriers === undefined || n === undefined) return;
    if (n > 1) {
      carriers.set(carrier, n - 1);
      return;
    }
    carriers.delete(carrier);
    carrier.holders?.delete(connection);
  }

  /**
   * The groups `connection` is a member of, each once, from its subscriptions (the connection's
   * close or slow verdict: rare, so no per-connection set of groups is kept for it).
   */
  #groupsOf(connection: Connection): Set<Group> {
    const groups = new Set<Group>();
    for (const sub of connection.byNumericId.values()) {
      const group = sub.group as Group | null;
      if (group !== null && !group.gone) groups.add(group);
    }
    return groups;
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
   * Samples each member of a group that just got messages (so its slow timer runs): one above high
   * water holds the carrier until a drain finds it below. Per chunk and touched group, not per message.
   */
  #sampleMembers(group: Group): void {
    const carrier = group.carrier;
    for (const member of group.members.values()) {
      const { connection } = member;
      if (member.leftAt !== null || connection.closed) continue;
      if (this.#flush.sample(connection)) carrier.holders?.delete(connection);
      // The sample may have found it slow and (drop) taken it out of its streams at once: then it holds nothing.
      else if (member.leftAt === null) (carrier.holders ??= new Set()).add(connection);
    }
  }

  /** Returns the carrier's owed credit when no member it fed is above high water. */
  #creditIfKeepingUp(carrier: Carrier, chunkEnd = false): void {
    if ((carrier.holders !== null && carrier.holders.size > 0) || carrier.owedCredit === 0) return;
    // At a chunk's end only in eighths of the window (DeliveryFlush.creditDue); a drain or a member leaving returns all.
    if (chunkEnd && !this.#flush.creditDue(carrier.owedCredit, carrier.owedBytes)) return;
    const owed = carrier.owedCredit;
    const bytes = carrier.owedBytes;
    carrier.owedCredit = 0;
    carrier.owedBytes = 0;
    this.#ctx.shards[carrier.routes.shard].writeControl((w) => w.credit(GROUP_CONNECTION, carrier.id, owed, bytes));
  }

  /** The group lost its last member: its pattern leaves the trie, and the carrier goes with its last group. */
  #drop(group: Group): void {
    const { carrier } = group;
    this.#forget(group);
    this.#light.remove(carrier.routes, group.destination.name, group);
    if (carrier.routes.matcher.size > 0) return;
    this.#forgetCarrier(carrier);
    const { shard, queue } = carrier.routes;
    this.#ctx.shards[shard].writeControl((w) => w.unsubscribe(GROUP_CONNECTION, carrier.id));
    this.#ctx.consume.dropQueue(queue, shard);
  }

  /** The group is gone: unreachable by id, and a frame it was gathering goes nowhere. */
  #forget(group: Group): void {
    if (group.writer !== null) {
      this.#flush.writers.give(group.writer);
      group.writer = null;
    }
  }

  /** The carrier is gone: publishes stop going to it, its records find nobody. */
  #forgetCarrier(carrier: Carrier): void {
    this.#carriers.delete(carrier.routes.exchange);
    this.#carriersById.delete(carrier.id);
    this.#light.close(carrier.routes.exchange);
  }

  /**
   * A stream id no live group has: ids count up; when they wrap (after 4,294,967,294 groups), the ids
   * then in use are gathered once and skipped until the next wrap.
   */
  #allocateId(): number {
    for (;;) {
      if (this.#nextId >= 0xffff_fffe) {
        this.#nextId = 1;
        this.#usedAfterWrap = new Set();
        for (const carrier of this.#carriersById.values())
          for (const g of carrier.routes.matcher.allValues()) this.#usedAfterWrap.add(g.id);
      } else this.#nextId++;
      if (this.#usedAfterWrap === null || !this.#usedAfterWrap.has(this.#nextId)) return this.#nextId;
    }
  }
}
