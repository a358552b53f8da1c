/**
 * This node's link to the others over NATS (main thread; loaded only with --cluster, and the
 * only module that imports the NATS client).
 *
 * - Membership: a heartbeat on `shardmq.members` every timeout/4; a node silent for the
 *   timeout is out (membership.ts).
 * - Interest: every binding on this node becomes a subscription to the NATS subjects it maps to
 *   (subject-map.ts, counted in interest.ts), so NATS forwards a message only to nodes with a
 *   matching binding.
 * - Forwarding: what goes out is batched in batch-outbox.ts, what comes in is routed by this node's
 *   own topology in batch-intake.ts; both bounded by --cluster-buffer-bytes, past it dropped and
 *   counted (in /v1/cluster, and in this node's heartbeat so a sender is told).
 * - Queues across nodes: cluster-queues.ts.
 */
import { randomBytes } from 'node:crypto';
import { connect, Events, type NatsConnection, type Subscription, type Msg } from 'nats';
import { BatchOutbox, type BatchAnswer } from './batch-outbox.js';
import { BatchIntake } from './batch-intake.js';
import { Interest, type SubjectSubscriber } from './interest.js';
import { Membership, type MemberAnnouncement, type MembershipChange } from './membership.js';
import { SUBJECT_ROOT, type BindingExchangeType } from './subject-map.js';
import type { ConfirmStatus, RecordReader } from '../protocol/ring-record-codec.js';
import type { ClusterForward, PublishPath } from '../control/publish-path.js';
import type { Topology } from '../control/topology.js';
import type { Logger } from '../log/logger.js';
import { REMOTE_SHARD, type ControlPort, type OutboundSink, type RoomSignal } from '../shard/shard-handle.js';
import { ClusterQueues, QUEUES_SUBJECT, nodeSubject } from './cluster-queues.js';
import type { QueueAnnouncement } from './queue-placement.js';
import type { ControlOp } from './remote-consumers.js';

/** Membership heartbeats and leave notices. */
export const MEMBERS_SUBJECT = `${SUBJECT_ROOT}.members`;

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
  readonly pressed: boolean;
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

/** Membership changes kept for /v1/cluster. */
const CHANGES_KEPT = 50;

export class ClusterNode implements ClusterForward, SubjectSubscriber, RoomSignal {
  readonly #settings: ClusterSettings;
  readonly #parts: ClusterParts;
  readonly #log: Logger;
  readonly #nc: NatsConnection;
  readonly boot = randomBytes(8).toString('hex');
  readonly #membership: Membership;
  readonly #interest: Interest;
  readonly #queues: ClusterQueues;
  readonly #subscriptions = new Map<string, Subscription>();
  readonly #out: BatchOutbox;
  readonly #in: BatchIntake;
  /** Nodes whose heartbeat says they cannot keep up: publishers that cross wait while any does. */
  readonly #pressed = new Set<string>();
  #roomWaiters: Array<() => void> = [];
  readonly #changes: { at: string; kind: MembershipChange['kind']; node: string }[] = [];
  #heartbeat: NodeJS.Timeout | null = null;
  #sweep: NodeJS.Timeout | null = null;
  #stopped = false;
  #disconnects = 0;
  #reconnects = 0;

  private constructor(settings: ClusterSettings, parts: ClusterParts, nc: NatsConnection) {
    this.#settings = settings;
    this.#parts = parts;
    this.#log = parts.log.child({ cluster: settings.nodeName });
    this.#nc = nc;
    this.#membership = new Membership(settings.nodeName, settings.timeoutMs);
    this.#interest = new Interest(this);
    this.#out = new BatchOutbox({
      boot: this.boot,
      self: settings.nodeName,
      bufferBytes: settings.bufferBytes,
      maxPayload: () => nc.info?.max_payload ?? 1024 * 1024,
      publish: (subject, data, reply) => nc.publish(subject, data, reply === undefined ? undefined : { reply }),
      flush: () => nc.flush(),
      confirms: parts.confirms,
      // What the confirms produced (AMQP basic.ack, binary CONFIRM) is written as at a shard chunk's end.
      afterSettles: () => parts.sink.onChunkEnd(REMOTE_SHARD),
      roomAgain: () => this.#wakeIfRoom(),
      log: this.#log,
    });
    this.#in = new BatchIntake({
      publisher: parts.publisher,
      bufferBytes: settings.bufferBytes,
      confirms: parts.confirms,
      publish: (subject, data) => this.#publishRaw(subject, data),
      // The others hear it now, not a heartbeat later.
      pressureChanged: (pressed) => {
        this.#log.info(
          { pressed, waitingBytes: this.#in.waitingBytes },
          pressed ? 'cluster: asking the other nodes to hold their publishers' : 'cluster: keeping up again',
        );
        this.#announce('up');
      },
      log: this.#log,
    });
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
      callback: (err, msg) => (err === null ? this.#in.onBatch(msg.data, true, msg.reply ?? null) : undefined),
    });
    this.#nc.subscribe(nodeSubject(self, 'a'), {
      callback: (err, msg) => {
        const answer = err === null ? (parseJson(msg.data) as BatchAnswer | null) : null;
        if (answer !== null && typeof answer.seq === 'number') this.#out.onAnswer(answer);
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
          this.#in.figures.badBatches++;
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
    // Light subscriptions' patterns are bindings to cluster interest (control/light-routes.ts).
    topology.light?.eachPattern((exchange, pattern) => this.#interest.add('topic', exchange, pattern));
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
      droppedIn: this.#in.figures.dropped,
      queued: this.#parts.heldMessages(),
      pressed: this.#in.pressed,
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
    if (a.pressed === true && a.state === 'up') this.#pressed.add(a.name);
    else if (this.#pressed.delete(a.name)) this.#wakeIfRoom();
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
    this.#out.sweep(now);
  }

  #record(change: MembershipChange): void {
    const m = change.member;
    if (change.kind === 'left' || change.kind === 'expired') {
      if (this.#pressed.delete(m.name)) this.#wakeIfRoom();
      this.#in.forgetBoot(m.boot);
      this.#queues.nodeGone(m.name, m.queued);
      this.#out.failAwaiting(m.name);
    } else if (change.kind === 'rejoined' && change.previous !== undefined) {
      // A restart: the incarnation before it is gone with what it held.
      this.#in.forgetBoot(change.previous.boot);
      this.#queues.nodeGone(m.name, change.previous.queued);
      this.#out.failAwaiting(m.name);
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
        this.#disconnects++;
        // What NATS had not acknowledged may not have reached it: counted, never silent.
        const unacknowledged = this.#out.disconnected();
        this.#log.warn({ server: s.data, unacknowledged }, 'cluster: NATS connection lost; reconnecting');
      } else if (s.type === Events.Reconnect) {
        this.#out.connected = true;
        this.#reconnects++;
        this.#log.info({ server: s.data }, 'cluster: NATS connection back');
        this.#announce('up');
      }
    }
  }

  // ---- room (RoomSignal): publishers whose messages cross wait while there is none ---------------

  /** NATS has taken what was sent (within half the buffer) and no node says it cannot keep up. */
  get hasRoom(): boolean {
    return this.#out.hasRoom && this.#pressed.size === 0;
  }

  onRoom(wake: () => void): void {
    if (this.hasRoom) wake();
    else this.#roomWaiters.push(wake);
  }

  #wakeIfRoom(): void {
    if (!this.hasRoom || this.#roomWaiters.length === 0) return;
    const waiters = this.#roomWaiters;
    this.#roomWaiters = [];
    for (const wake of waiters) wake();
  }

  // ---- interest (SubjectSubscriber) -----------------------------------------------------------

  subscribe(subject: string): void {
    const sub = this.#nc.subscribe(subject, {
      callback: (err, msg) => {
        if (err === null) this.#in.onBatch(msg.data, false, null);
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
    this.#out.forward(exchange, routingKey, properties, payload);
  }

  forwardToQueue(node: string, queue: string, properties: Uint8Array | null, payload: Uint8Array, token: number): void {
    this.#out.forwardToQueue(node, queue, properties, payload, token);
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

  /** Publishes as is (membership, announcements, control ops, records for consumers elsewhere). */
  #publishRaw(subject: string, data: Uint8Array): void {
    if (this.#stopped) return;
    try {
      this.#nc.publish(subject, data);
    } catch (err) {
      this.#log.debug({ err, subject }, 'cluster: not published');
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
        server: this.#out.connected ? this.#nc.getServer() : null,
        connected: this.#out.connected,
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
        pressed: m.pressed,
        queues: m.name === this.#settings.nodeName ? this.#queues.ownQueues : this.#queues.placement.countOf(m.name),
      })),
      interest: { subjects: this.#interest.size, inexact: this.#interest.inexact },
      forwarded: { ...this.#out.figures, unacknowledgedBytes: this.#out.unacknowledgedBytes },
      received: { ...this.#in.figures, waitingBytes: this.#in.waitingBytes },
      changes: [...this.#changes],
      queues: this.#queues.figures(),
    };
  }

  /** Says goodbye (the others drop this node at once, not after the timeout) and closes the link. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#out.flush();
    this.#stopped = true;
    this.#out.stopped = true;
    this.#in.stopped = true;
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
