/**
 * This node's link to the others over NATS (main thread; loaded only with --cluster, and the
 * only module that imports the NATS client).
 *
 * - Membership: a heartbeat on `shardmq.members` every timeout/4; a node silent for the
 *   timeout is out (membership.ts).
 * - Interest: every binding on this node becomes a subscription to the NATS subjects it maps to
 *   (subject-map.ts, counted in interest.ts), so NATS forwards a message only to nodes with a
 *   matching binding.
 * - Forwarding: a publish to an exchange, once its local copies are in the rings, is copied into
 *   the batch of its subject for this event-loop turn; each batch is one NATS message
 *   (forward-batch.ts). On arrival a batch is routed by the receiving node's own topology (the
 *   exact filter) into its rings, never forwarded again.
 *
 * Bounded both ways: what NATS has not acknowledged (a flush round trip) and what waits here for
 * room in a full ring are each at most --cluster-buffer-bytes. Past that a message is dropped
 * and counted, and the count is in /v1/cluster and in this node's heartbeat, so the sending
 * node is told (nothing is lost silently).
 */
import { randomBytes } from 'node:crypto';
import { connect, Events, type NatsConnection, type Subscription, type Msg } from 'nats';
import { decodeForwardBatch, ForwardBatchBuilder, type ForwardBatchHeader } from './forward-batch.js';
import { Interest, type SubjectSubscriber } from './interest.js';
import { Membership, type MemberAnnouncement, type MembershipChange } from './membership.js';
import { publishSubject, SUBJECT_ROOT, type BindingExchangeType } from './subject-map.js';
import { ConfirmStatus, NO_TOKEN, type RecordReader } from '../protocol/ring-record-codec.js';
import type { ClusterForward, PublishPath, PublishTarget } from '../control/publish-path.js';
import type { Topology } from '../control/topology.js';
import type { Logger } from '../log/logger.js';
import { REMOTE_SHARD, type ControlPort, type OutboundSink } from '../shard/shard-handle.js';
import { ClusterQueues, QUEUES_SUBJECT, nodeSubject } from './cluster-queues.js';
import type { QueueAnnouncement } from './queue-placement.js';
import type { ControlOp } from './remote-consumers.js';

/** Membership heartbeats and leave notices. */
export const MEMBERS_SUBJECT = `${SUBJECT_ROOT}.members`;
/** A batch is published once it holds this much, even mid-turn (NATS's default max_payload is 1 MiB). */
const MAX_BATCH_BYTES = 256 * 1024;
/** A queue batch's publishers are nacked when its node has not answered in this long (it is up, but the answer was lost). */
const ANSWER_TIMEOUT_MS = 10_000;
/** Messages waiting for ring room are retried at least this often when no room event comes. */
const ROOM_WAIT_MS = 1000;

export interface ClusterSettings {
  readonly servers: readonly string[];
  readonly nodeName: string;
  /** Where this node's clients connect, announced to the others. */
  readonly http: string;
  readonly amqp: string | null;
  /** A node silent this long is out; heartbeats go every quarter of it. */
  readonly timeoutMs: number;
  /** Bound on forwarded bytes NATS has not acknowledged, and on received bytes waiting for ring room. */
  readonly bufferBytes: number;
}

export interface ClusterParts {
  readonly topology: Topology;
  readonly publisher: PublishPath;
  /** This node's shards (their control records). */
  readonly shards: () => readonly ControlPort[];
  /** Where records from other nodes' shards go: the broker, as for its own. */
  readonly sink: OutboundSink;
  /** Messages this node holds (ready + unacked), for its heartbeat. */
  readonly heldMessages: () => number;
  /** Confirm tokens of publishes to queues on other nodes, settled when those nodes answer. */
  readonly confirms: {
    settle(token: number, status: ConfirmStatus): void;
    allocate(shards: readonly number[], done: (status: ConfirmStatus) => void): number;
  };
  readonly log: Logger;
}

export interface ClusterMemberView {
  readonly name: string;
  readonly boot: string;
  readonly self: boolean;
  readonly state: 'up' | 'leaving';
  readonly http: string;
  readonly amqp: string | null;
  readonly joinedAt: string;
  readonly lastSeenMsAgo: number;
  readonly interest: number;
  readonly droppedIn: number;
  readonly queued: number;
  /** Queues it announced. */
  readonly queues: number;
}

export interface ClusterStatus {
  readonly enabled: true;
  readonly node: string;
  readonly boot: string;
  readonly nats: {
    readonly servers: readonly string[];
    readonly server: string | null;
    readonly connected: boolean;
    readonly disconnects: number;
    readonly reconnects: number;
  };
  readonly timeoutMs: number;
  readonly members: readonly ClusterMemberView[];
  readonly interest: { readonly subjects: number; readonly inexact: number };
  readonly forwarded: {
    readonly messages: number;
    readonly batches: number;
    readonly bytes: number;
    readonly unacknowledgedBytes: number;
    readonly droppedOverBuffer: number;
    readonly droppedTooLarge: number;
    /** Published here while NATS was away: they reached this node's subscribers only. */
    readonly droppedDisconnected: number;
    /** Handed to NATS but not acknowledged when the connection dropped: may or may not have crossed. */
    readonly inFlightAtDisconnect: number;
    /** Of `messages`, publishes to queues on other nodes. */
    readonly toQueues: number;
  };
  readonly received: {
    readonly messages: number;
    readonly batches: number;
    readonly duplicateBatches: number;
    readonly unknownExchange: number;
    readonly badBatches: number;
    readonly waitingBytes: number;
    readonly dropped: number;
  };
  readonly changes: readonly { readonly at: string; readonly kind: MembershipChange['kind']; readonly node: string }[];
  /** Queues across nodes: placed, consumers of other nodes here, of queues elsewhere, and what went with nodes. */
  readonly queues: Readonly<Record<string, number>>;
}

interface Waiting {
  readonly target: PublishTarget;
  from: number;
  readonly properties: Uint8Array | null;
  readonly payload: Uint8Array;
  /** The last record of a batch whose sender waits for an answer: sent once this one is in. */
  answer: (() => void) | null;
  /** Its confirm token (the last record of a batch for a durable or refusing queue), else NO_TOKEN. */
  readonly token: number;
}

/** One subject's batch of this turn; a queue batch also collects the confirm tokens of its publishes. */
interface BatchEntry {
  readonly subject: string;
  batch: ForwardBatchBuilder;
  /** The queue's node, for a queue batch; null for an exchange's. */
  readonly node: string | null;
  tokens: number[];
}

/** A queue node's answer to a batch published with a reply subject. */
interface BatchAnswer {
  readonly seq: number;
  readonly ok: boolean;
}

/** Membership changes kept for /v1/cluster. */
const CHANGES_KEPT = 50;

export class ClusterNode implements ClusterForward, SubjectSubscriber {
  readonly #settings: ClusterSettings;
  readonly #parts: ClusterParts;
  readonly #log: Logger;
  readonly #nc: NatsConnection;
  readonly boot = randomBytes(8).toString('hex');
  readonly #membership: Membership;
  readonly #interest: Interest;
  readonly #queues: ClusterQueues;
  readonly #subscriptions = new Map<string, Subscription>();
  /**
   * This turn's batches: exchange → routing key → batch; a queue forward's outer key is its node's
   * name after a \u0001 (no exchange name holds a control character).
   */
  readonly #batches = new Map<string, Map<string, BatchEntry>>();
  /** Queue batches whose publishers wait for the queue's node to say it has them: seq → node and tokens. */
  readonly #awaiting = new Map<number, { readonly node: string; readonly tokens: readonly number[]; readonly at: number }>();
  #flushScheduled = false;
  #seq = 0;
  /** Highest batch sequence seen per sending boot (the second copy of a batch is dropped). */
  readonly #lastSeq = new Map<string, number>();
  /** Bytes and messages published since NATS last acknowledged (a flush round trip). */
  #unackedBytes = 0;
  #unackedMessages = 0;
  #acking = false;
  /** Bumped at each disconnect: a flush answered after it no longer acknowledges anything. */
  #ackEpoch = 0;
  readonly #waiting: Waiting[] = [];
  #waitingHead = 0;
  #waitingBytes = 0;
  #draining = false;
  readonly #changes: { at: string; kind: MembershipChange['kind']; node: string }[] = [];
  #heartbeat: NodeJS.Timeout | null = null;
  #sweep: NodeJS.Timeout | null = null;
  #stopped = false;
  #connected = true;
  #disconnects = 0;
  #reconnects = 0;
  #warnedTooLarge = false;
  #warnedOver = false;
  readonly #fwd = {
    messages: 0,
    batches: 0,
    bytes: 0,
    droppedOverBuffer: 0,
    droppedTooLarge: 0,
    droppedDisconnected: 0,
    inFlightAtDisconnect: 0,
    toQueues: 0,
  };
  readonly #rcv = { messages: 0, batches: 0, duplicateBatches: 0, unknownExchange: 0, badBatches: 0, dropped: 0 };

  private constructor(settings: ClusterSettings, parts: ClusterParts, nc: NatsConnection) {
    this.#settings = settings;
    this.#parts = parts;
    this.#log = parts.log.child({ cluster: settings.nodeName });
    this.#nc = nc;
    this.#membership = new Membership(settings.nodeName, settings.timeoutMs);
    this.#interest = new Interest(this);
    this.#queues = new ClusterQueues(
      {
        self: settings.nodeName,
        publish: (subject, data) => this.#publishRaw(subject, data),
        members: () => this.#membership.members().map((m) => m.name),
      },
      { topology: parts.topology, publisher: parts.publisher, shards: parts.shards, sink: parts.sink, log: this.#log },
    );
  }

  /** Connects to NATS (refusing to start when none of `servers` answers), joins, and takes over interest. */
  static async start(settings: ClusterSettings, parts: ClusterParts): Promise<ClusterNode> {
    let nc: NatsConnection;
    try {
      nc = await connect({
        servers: [...settings.servers],
        name: `shardmq ${settings.nodeName}`,
        // A node never needs its own publishes back: its local copies went straight into its rings.
        noEcho: true,
        maxReconnectAttempts: -1,
        reconnectTimeWait: 250,
        reconnectJitter: 100,
        // A dead NATS server is noticed within about the membership timeout.
        pingInterval: Math.max(500, Math.floor(settings.timeoutMs / 2)),
        maxPingOut: 2,
        timeout: 5000,
      });
    } catch (err) {
      throw new Error(`cluster: cannot reach NATS at ${settings.servers.join(', ')}: ${(err as Error).message}`);
    }
    const node = new ClusterNode(settings, parts, nc);
    node.#join();
    return node;
  }

  #join(): void {
    const { topology } = this.#parts;
    const self = this.#settings.nodeName;
    this.#nc.subscribe(MEMBERS_SUBJECT, { callback: (err, msg) => (err === null ? this.#onMember(msg) : undefined) });
    this.#nc.subscribe(QUEUES_SUBJECT, {
      callback: (err, msg) => {
        if (err === null) this.#queues.onAnnouncement(parseJson(msg.data) as QueueAnnouncement);
      },
    });
    this.#nc.subscribe(nodeSubject(self, 'q'), {
      callback: (err, msg) => (err === null ? this.#onBatch(msg.data, true, msg.reply ?? null) : undefined),
    });
    this.#nc.subscribe(nodeSubject(self, 'a'), {
      callback: (err, msg) => {
        const answer = err === null ? (parseJson(msg.data) as BatchAnswer | null) : null;
        if (answer !== null && typeof answer.seq === 'number') this.#onAnswer(answer);
      },
    });
    this.#nc.subscribe(nodeSubject(self, 'c'), {
      callback: (err, msg) => {
        if (err !== null) return;
        const m = parseJson(msg.data) as { from?: unknown; ops?: unknown } | null;
        if (m !== null && typeof m.from === 'string' && Array.isArray(m.ops) && this.#membership.has(m.from)) {
          this.#queues.onControl(m.from, m.ops as ControlOp[]);
        }
      },
    });
    this.#nc.subscribe(nodeSubject(self, 'd'), {
      callback: (err, msg) => {
        if (err !== null) return;
        try {
          this.#queues.onRecords(msg.data);
        } catch (e) {
          this.#rcv.badBatches++;
          this.#log.warn({ err: e }, 'cluster: unreadable records from another node skipped');
        }
      },
    });
    this.#queues.attach();
    // Bindings made before the link (recovered durable ones), then every change as it happens.
    for (const b of topology.listBindings()) {
      const type = topology.registry.getExchange(b.source)?.type;
      if (type !== undefined) this.#interest.add(type as BindingExchangeType, b.source, b.routingKey);
    }
    topology.registry.bindingObserver = {
      bindingAdded: (source, type, key) => this.#interest.add(type, source, key),
      bindingRemoved: (source, type, key) => this.#interest.remove(type, source, key),
    };
    void this.#watchStatus();
    const beat = Math.max(50, Math.floor(this.#settings.timeoutMs / 4));
    this.#heartbeat = setInterval(() => this.#announce('up'), beat);
    this.#heartbeat.unref();
    this.#sweep = setInterval(() => this.#expire(), Math.max(25, Math.floor(beat / 2)));
    this.#sweep.unref();
    this.#announce('up');
    this.#log.info({ servers: this.#settings.servers, boot: this.boot }, 'joined the cluster');
  }

  // ---- membership -------------------------------------------------------------------------

  #announcement(state: 'up' | 'leaving'): MemberAnnouncement {
    const s = this.#settings;
    return {
      name: s.nodeName,
      boot: this.boot,
      state,
      http: s.http,
      amqp: s.amqp,
      interest: this.#interest.size,
      droppedIn: this.#rcv.dropped,
      queued: this.#parts.heldMessages(),
    };
  }

  #announce(state: 'up' | 'leaving'): void {
    const a = this.#announcement(state);
    // Not echoed back to us (noEcho): this node hears itself here.
    if (state === 'up') this.#membership.heard(a, Date.now());
    try {
      this.#nc.publish(MEMBERS_SUBJECT, Buffer.from(JSON.stringify(a)));
    } catch (err) {
      this.#log.debug({ err }, 'heartbeat not sent');
    }
  }

  #onMember(msg: Msg): void {
    const a = parseJson(msg.data) as MemberAnnouncement | null;
    if (a === null || typeof a.name !== 'string' || typeof a.boot !== 'string') return;
    if (a.name === this.#settings.nodeName) {
      if (a.boot !== this.boot)
        this.#log.error({ node: a.name }, 'another node announces this node name: give each node its own --node-name');
      return;
    }
    const change = this.#membership.heard(a, Date.now());
    if (change !== null) {
      this.#record(change);
      // A newcomer hears from everyone at once, not a heartbeat later, and learns where their queues are.
      if (change.kind !== 'left') {
        this.#announce('up');
        this.#queues.announceAll();
      }
    }
  }

  #expire(): void {
    const now = Date.now();
    for (const change of this.#membership.sweep(now)) this.#record(change);
    if (this.#awaiting.size > 0) this.#failAwaiting(null, now - ANSWER_TIMEOUT_MS);
  }

  #record(change: MembershipChange): void {
    const m = change.member;
    if (change.kind === 'left' || change.kind === 'expired') {
      this.#lastSeq.delete(m.boot);
      this.#queues.nodeGone(m.name, m.queued);
      this.#failAwaiting(m.name);
    } else if (change.kind === 'rejoined' && change.previous !== undefined) {
      // A restart: the incarnation before it is gone with what it held.
      this.#lastSeq.delete(change.previous.boot);
      this.#queues.nodeGone(m.name, change.previous.queued);
      this.#failAwaiting(m.name);
    }
    this.#changes.push({ at: new Date().toISOString(), kind: change.kind, node: m.name });
    if (this.#changes.length > CHANGES_KEPT) this.#changes.shift();
    const line = { node: m.name, boot: m.boot, http: m.http };
    if (change.kind === 'expired')
      this.#log.warn({ ...line, timeoutMs: this.#settings.timeoutMs }, 'cluster node silent past the timeout: out');
    else this.#log.info(line, `cluster node ${change.kind}`);
  }

  async #watchStatus(): Promise<void> {
    for await (const s of this.#nc.status()) {
      if (s.type === Events.Disconnect) {
        this.#connected = false;
        this.#disconnects++;
        // What NATS had not acknowledged may not have reached it: counted, never silent.
        this.#fwd.inFlightAtDisconnect += this.#unackedMessages;
        this.#log.warn({ server: s.data, unacknowledged: this.#unackedMessages }, 'cluster: NATS connection lost; reconnecting');
        this.#unackedBytes = 0;
        this.#unackedMessages = 0;
        this.#acking = false;
        this.#ackEpoch++;
        // No answer will come over a connection that is gone: those publishers are told now.
        this.#failAwaiting(null);
      } else if (s.type === Events.Reconnect) {
        this.#connected = true;
        this.#reconnects++;
        this.#log.info({ server: s.data }, 'cluster: NATS connection back');
        this.#announce('up');
      }
    }
  }

  // ---- interest (SubjectSubscriber) -----------------------------------------------------------

  subscribe(subject: string): void {
    const sub = this.#nc.subscribe(subject, {
      callback: (err, msg) => {
        if (err === null) this.#onBatch(msg.data, false, null);
      },
    });
    this.#subscriptions.set(subject, sub);
  }

  unsubscribe(subject: string): void {
    this.#subscriptions.get(subject)?.unsubscribe();
    this.#subscriptions.delete(subject);
  }

  // ---- forwarding (ClusterForward) --------------------------------------------------------------

  forward(exchange: string, routingKey: string, properties: Uint8Array | null, payload: Uint8Array): void {
    if (this.#stopped) return;
    if (!this.#connected) {
      // NATS is away: nothing can cross now (and a server that just came back may not yet know the
      // others' interest). Counted, never silent; local subscribers still got it.
      this.#fwd.droppedDisconnected++;
      return;
    }
    const recordBytes = ForwardBatchBuilder.recordBytes(properties, payload);
    if (this.#unackedBytes + recordBytes > this.#settings.bufferBytes) {
      this.#fwd.droppedOverBuffer++;
      if (!this.#warnedOver) {
        this.#warnedOver = true;
        this.#log.warn(
          { bufferBytes: this.#settings.bufferBytes },
          'cluster: NATS is not keeping up; dropping forwarded messages (counted in /v1/cluster)',
        );
      }
      return;
    }
    this.#enqueue(exchange, null, exchange, routingKey, properties, payload, recordBytes, NO_TOKEN, () =>
      publishSubject(exchange, routingKey),
    );
  }

  /** A publish to `/queue/<queue>` whose queue lives on `node`: batched to that node's queue subject. */
  forwardToQueue(node: string, queue: string, properties: Uint8Array | null, payload: Uint8Array, token: number): void {
    // Not taken: its publisher is told (a nack, a 503), not left believing it is held.
    if (!this.#takeForQueue(node, queue, properties, payload, token) && token !== NO_TOKEN) {
      this.#parts.confirms.settle(token, ConfirmStatus.nodeUnavailable);
    }
  }

  #takeForQueue(node: string, queue: string, properties: Uint8Array | null, payload: Uint8Array, token: number): boolean {
    if (this.#stopped) return false;
    if (!this.#connected) {
      this.#fwd.droppedDisconnected++;
      return false;
    }
    const recordBytes = ForwardBatchBuilder.recordBytes(properties, payload);
    if (this.#unackedBytes + recordBytes > this.#settings.bufferBytes) {
      this.#fwd.droppedOverBuffer++;
      return false;
    }
    this.#fwd.toQueues++;
    return this.#enqueue('\u0001' + node, node, '', queue, properties, payload, recordBytes, token, () => nodeSubject(node, 'q'));
  }

  queueOwner(name: string, mayPlace: boolean): string | null {
    return this.#queues.queueOwner(name, mayPlace);
  }

  /** Where the fronts write control records for queues on other nodes. */
  get remotePort(): ControlPort {
    return this.#queues.remote;
  }

  /** A record one of this node's shards sent for a consumer on another node. */
  onProxyRecord(kind: number, offset: number, length: number, reader: RecordReader): void {
    this.#queues.proxies.onRecord(kind, offset, length, reader);
  }

  /** A local shard restarted: other nodes' consumers on it subscribe again. */
  shardRestarted(shard: number): void {
    this.#queues.shardRestarted(shard);
  }

  /** Adds a record to its subject's batch of this turn; false when it cannot cross (larger than NATS takes). */
  #enqueue(
    outer: string,
    node: string | null,
    exchange: string,
    routingKey: string,
    properties: Uint8Array | null,
    payload: Uint8Array,
    recordBytes: number,
    token: number,
    subjectOf: () => string,
  ): boolean {
    const maxPayload = this.#nc.info?.max_payload ?? 1024 * 1024;
    let perKey = this.#batches.get(outer);
    if (perKey === undefined) this.#batches.set(outer, (perKey = new Map()));
    let entry = perKey.get(routingKey);
    if (entry === undefined) {
      entry = { subject: subjectOf(), batch: new ForwardBatchBuilder(this.boot, exchange, routingKey), node, tokens: [] };
      perKey.set(routingKey, entry);
    }
    if (entry.batch.byteLength + recordBytes > Math.min(MAX_BATCH_BYTES, maxPayload)) {
      if (entry.batch.count > 0) {
        this.#publishBatch(entry);
        entry.batch = new ForwardBatchBuilder(this.boot, exchange, routingKey);
        entry.tokens = [];
      }
      if (entry.batch.byteLength + recordBytes > maxPayload) {
        this.#fwd.droppedTooLarge++;
        if (!this.#warnedTooLarge) {
          this.#warnedTooLarge = true;
          this.#log.warn(
            { bytes: payload.byteLength, maxPayload },
            "cluster: a message larger than NATS's max_payload stays on this node (counted)",
          );
        }
        return false;
      }
    }
    entry.batch.add(properties, payload);
    if (token !== NO_TOKEN) entry.tokens.push(token);
    this.#unackedBytes += recordBytes;
    this.#unackedMessages++;
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      setImmediate(this.#flushBatches);
    }
    return true;
  }

  readonly #flushBatches = (): void => {
    this.#flushScheduled = false;
    for (const perKey of this.#batches.values()) {
      for (const entry of perKey.values()) if (entry.batch.count > 0) this.#publishBatch(entry);
    }
    this.#batches.clear();
    this.#ack();
  };

  /** Publishes as is (membership, announcements, control ops, records for consumers elsewhere). */
  #publishRaw(subject: string, data: Uint8Array): void {
    if (this.#stopped) return;
    try {
      this.#nc.publish(subject, data);
    } catch (err) {
      this.#log.debug({ err, subject }, 'cluster: not published');
    }
  }

  #publishBatch(entry: BatchEntry): void {
    const { batch, tokens } = entry;
    const seq = ++this.#seq;
    const data = batch.finish(seq);
    try {
      // Publishers wait for this batch: its queue's node answers on our answer subject once it has it.
      if (tokens.length > 0 && entry.node !== null) {
        this.#nc.publish(entry.subject, data, { reply: nodeSubject(this.#settings.nodeName, 'a') });
        this.#awaiting.set(seq, { node: entry.node, tokens, at: Date.now() });
      } else this.#nc.publish(entry.subject, data);
      this.#fwd.messages += batch.count;
      this.#fwd.batches++;
      this.#fwd.bytes += data.byteLength;
    } catch (err) {
      this.#fwd.droppedOverBuffer += batch.count;
      this.#awaiting.delete(seq);
      for (const t of tokens) this.#parts.confirms.settle(t, ConfirmStatus.nodeUnavailable);
      this.#log.warn({ err, messages: batch.count }, 'cluster: forward batch not published (counted as dropped)');
    }
  }

  /** A queue node answered a batch: its publishers' confirms (or nacks). */
  #onAnswer(answer: BatchAnswer): void {
    const waiting = this.#awaiting.get(answer.seq);
    if (waiting === undefined) return;
    this.#awaiting.delete(answer.seq);
    for (const t of waiting.tokens) this.#parts.confirms.settle(t, answer.ok ? ConfirmStatus.ok : ConfirmStatus.nodeUnavailable);
    // What the confirms produced (AMQP basic.ack, binary CONFIRM) is written at the end of a chunk, as a shard's.
    this.#parts.sink.onChunkEnd(REMOTE_SHARD);
  }

  /** Batches waiting for an answer that will not come (their node went, NATS did, or `before` passed): nacked. */
  #failAwaiting(node: string | null, before = Number.POSITIVE_INFINITY): void {
    let failed = false;
    for (const [seq, w] of this.#awaiting) {
      if (node !== null && w.node !== node) continue;
      if (w.at >= before) continue;
      this.#awaiting.delete(seq);
      for (const t of w.tokens) this.#parts.confirms.settle(t, ConfirmStatus.nodeUnavailable);
      failed = true;
    }
    if (failed) this.#parts.sink.onChunkEnd(REMOTE_SHARD);
  }

  /** One flush round trip at a time: when NATS answers, what was published before it is acknowledged. */
  #ack(): void {
    if (this.#acking || this.#unackedMessages === 0 || this.#stopped) return;
    this.#acking = true;
    const bytes = this.#unackedBytes;
    const messages = this.#unackedMessages;
    const epoch = this.#ackEpoch;
    this.#nc.flush().then(
      () => {
        if (epoch !== this.#ackEpoch) return;
        this.#acking = false;
        this.#unackedBytes -= bytes;
        this.#unackedMessages -= messages;
        if (this.#unackedBytes < this.#settings.bufferBytes / 2) this.#warnedOver = false;
        this.#ack();
      },
      () => {
        if (epoch === this.#ackEpoch) this.#acking = false;
      },
    );
  }

  // ---- receiving ---------------------------------------------------------------------------

  /** A forward batch: publishes to an exchange (routed here exactly), or with `toQueue` to a queue of this node (declared on first use). */
  #onBatch(data: Uint8Array, toQueue: boolean, reply: string | null): void {
    let target: PublishTarget | null = null;
    let seq = -1;
    let count = 0;
    let index = 0;
    let dropped = false;
    let last: Waiting | null = null;
    // A durable (or refusing) queue answers for itself: its shard confirms the batch's last record
    // (after the fsync that covers it), and that confirm is the answer.
    let shardToken = NO_TOKEN;
    const answer = (ok: boolean): void => {
      if (reply !== null) this.#publishRaw(reply, Buffer.from(JSON.stringify({ seq, ok } satisfies BatchAnswer)));
    };
    try {
      decodeForwardBatch(
        data,
        (h) => {
          if (!this.#fresh(h)) return false;
          seq = h.seq;
          count = h.count;
          this.#rcv.batches++;
          if (toQueue) this.#parts.publisher.ensureQueue(h.routingKey);
          target = this.#parts.publisher.localTarget(toQueue ? '' : h.exchange, h.routingKey);
          if (target === null) {
            this.#rcv.unknownExchange += h.count;
            return false;
          }
          return true;
        },
        (properties, payload) => {
          const t = target as PublishTarget;
          let token = NO_TOKEN;
          if (++index === count && reply !== null && t.confirmFromShard && t.shards.length > 0) {
            token = shardToken = this.#parts.confirms.allocate(t.shards, (status) => answer(status === ConfirmStatus.ok));
          }
          const r = this.#deliverLocal(t, properties, payload, token);
          if (r === 'dropped') dropped = true;
          else if (r !== 'written') last = r;
        },
      );
    } catch (err) {
      this.#rcv.badBatches++;
      dropped = true;
      this.#log.warn({ err }, 'cluster: unreadable forward batch skipped');
    }
    if (reply === null || seq < 0) return;
    // The sender's publishers wait: answered once every record is in a ring (after the last that had
    // to wait), or by the queue's shard when it confirms.
    const waitingFor = last as Waiting | null;
    if (dropped || target === null) {
      if (shardToken !== NO_TOKEN) this.#parts.confirms.settle(shardToken, ConfirmStatus.rejected);
      else answer(false);
    } else if (shardToken !== NO_TOKEN) return;
    else if (waitingFor !== null) waitingFor.answer = () => answer(true);
    else answer(true);
  }

  /** False for the second copy of a batch (two of this node's subjects matched it). */
  #fresh(h: ForwardBatchHeader): boolean {
    const last = this.#lastSeq.get(h.boot);
    if (last !== undefined && h.seq <= last) {
      this.#rcv.duplicateBatches++;
      return false;
    }
    this.#lastSeq.set(h.boot, h.seq);
    return true;
  }

  /** Into the rings now ('written'), or waiting for room (the entry), or over the bound ('dropped'). */
  #deliverLocal(target: PublishTarget, properties: Uint8Array | null, payload: Uint8Array, token: number): 'written' | 'dropped' | Waiting {
    this.#rcv.messages++;
    const publisher = this.#parts.publisher;
    // Behind messages already waiting for room, a message waits too (order per sender and key).
    let from = 0;
    if (this.#waitingHead === this.#waiting.length) {
      from = publisher.write(target, 0, token, properties, payload);
      if (from === target.shards.length) return 'written';
    }
    const bytes = ForwardBatchBuilder.recordBytes(properties, payload);
    if (this.#waitingBytes + bytes > this.#settings.bufferBytes) {
      this.#rcv.dropped++;
      return 'dropped';
    }
    this.#waitingBytes += bytes;
    const w: Waiting = {
      target,
      from,
      properties: properties === null ? null : properties.slice(),
      payload: payload.slice(),
      answer: null,
      token,
    };
    this.#waiting.push(w);
    if (!this.#draining) void this.#drainWaiting();
    return w;
  }

  async #drainWaiting(): Promise<void> {
    this.#draining = true;
    const publisher = this.#parts.publisher;
    try {
      while (this.#waitingHead < this.#waiting.length && !this.#stopped) {
        const w = this.#waiting[this.#waitingHead];
        if (w.from < w.target.shards.length) {
          const room = await publisher.waitForRoom(w.target, w.from, ROOM_WAIT_MS);
          if (!room) await new Promise((r) => setTimeout(r, 20));
          w.from = publisher.write(w.target, 0, w.token, w.properties, w.payload, 0, w.from);
          if (w.from < w.target.shards.length) continue;
        }
        this.#waitingBytes -= ForwardBatchBuilder.recordBytes(w.properties, w.payload);
        this.#waitingHead++;
        w.answer?.();
        if (this.#waitingHead > 1024 && this.#waitingHead * 2 > this.#waiting.length) {
          this.#waiting.splice(0, this.#waitingHead);
          this.#waitingHead = 0;
        }
      }
    } finally {
      this.#draining = false;
    }
  }

  // ---- the outside ---------------------------------------------------------------------------

  status(): ClusterStatus {
    const now = Date.now();
    return {
      enabled: true,
      node: this.#settings.nodeName,
      boot: this.boot,
      nats: {
        servers: this.#settings.servers,
        server: this.#connected ? this.#nc.getServer() : null,
        connected: this.#connected,
        disconnects: this.#disconnects,
        reconnects: this.#reconnects,
      },
      timeoutMs: this.#settings.timeoutMs,
      members: this.#membership.members().map((m) => ({
        name: m.name,
        boot: m.boot,
        self: m.name === this.#settings.nodeName,
        state: m.state,
        http: m.http,
        amqp: m.amqp,
        joinedAt: new Date(m.joinedAt).toISOString(),
        lastSeenMsAgo: now - m.lastSeen,
        interest: m.interest,
        droppedIn: m.droppedIn,
        queued: m.queued,
        queues: m.name === this.#settings.nodeName ? this.#queues.ownQueues : this.#queues.placement.countOf(m.name),
      })),
      interest: { subjects: this.#interest.size, inexact: this.#interest.inexact },
      forwarded: { ...this.#fwd, unacknowledgedBytes: this.#unackedBytes },
      received: { ...this.#rcv, waitingBytes: this.#waitingBytes },
      changes: [...this.#changes],
      queues: this.#queues.figures(),
    };
  }

  /** Names of the nodes in, this one included, in name order. */
  liveNodes(): string[] {
    return this.#membership.members().map((m) => m.name);
  }

  /** Says goodbye (the others drop this node at once, not after the timeout) and closes the link. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#flushBatches();
    this.#stopped = true;
    if (this.#heartbeat !== null) clearInterval(this.#heartbeat);
    if (this.#sweep !== null) clearInterval(this.#sweep);
    this.#parts.topology.registry.bindingObserver = null;
    this.#queues.flush();
    this.#queues.detach();
    this.#announce('leaving');
    try {
      await this.#nc.flush();
    } catch {
      // NATS is gone: the others will time this node out instead.
    }
    await this.#nc.close();
    this.#log.info('left the cluster');
  }
}

function parseJson(data: Uint8Array): unknown {
  try {
    return JSON.parse(Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8')) as unknown;
  } catch {
    return null;
  }
}
