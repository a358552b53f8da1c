/**
 * Who is in the cluster, from the heartbeats every node publishes on `shardmq.members`. Pure:
 * the caller feeds heartbeats and the clock, so expiry is tested without timers or NATS.
 *
 * A node is in from its first heartbeat and out when it says it is leaving or after
 * `expireMs` without one. A heartbeat with a new boot id under a known name is the same node
 * restarted (it rejoins; whatever it held in memory is gone).
 */

/** What a node says about itself in each heartbeat. */
export interface MemberAnnouncement {
  readonly name: string;
  /** Random per process start: tells a restarted node from the one before it. */
  readonly boot: string;
  readonly state: 'up' | 'leaving';
  /** Where clients reach it (http://…, amqp://…; null when that listener is off). */
  readonly http: string;
  readonly amqp: string | null;
  /** NATS subjects this node is interested in, and messages it had to drop from other nodes. */
  readonly interest: number;
  readonly droppedIn: number;
  /** Messages it holds (ready + unacked, all its queues): what is lost with it if it dies. */
  readonly queued: number;
  /** It cannot keep up with what the others send (its waiting messages passed a quarter of its buffer): they hold their publishers. */
  readonly pressed: boolean;
}

export interface Member extends MemberAnnouncement {
  readonly joinedAt: number;
  readonly lastSeen: number;
}

/** `previous`: for a rejoin, the incarnation it replaces (gone, with what it held). */
export type MembershipChange = { kind: 'joined' | 'rejoined' | 'left' | 'expired'; member: Member; previous?: Member };

export class Membership {
  readonly self: string;
  readonly #expireMs: number;
  readonly #members = new Map<string, Member>();

  constructor(self: string, expireMs: number) {
    this.self = self;
    this.#expireMs = expireMs;
  }

  /** Applies one heartbeat; returns the change it makes, or null when the node was known and stays. */
  heard(a: MemberAnnouncement, now: number): MembershipChange | null {
    const known = this.#members.get(a.name);
    if (a.state === 'leaving') {
      if (known === undefined || known.boot !== a.boot) return null;
      this.#members.delete(a.name);
      return { kind: 'left', member: { ...known, ...a, joinedAt: known.joinedAt, lastSeen: now } };
    }
    const member: Member = { ...a, joinedAt: known !== undefined && known.boot === a.boot ? known.joinedAt : now, lastSeen: now };
    this.#members.set(a.name, member);
    if (known === undefined) return { kind: 'joined', member };
    if (known.boot !== a.boot) return { kind: 'rejoined', member, previous: known };
    return null;
  }

  /** Removes every node silent for longer than the expiry; returns them. */
  sweep(now: number): MembershipChange[] {
    const out: MembershipChange[] = [];
    for (const [name, m] of this.#members) {
      if (name === this.self) continue;
      if (now - m.lastSeen > this.#expireMs) {
        this.#members.delete(name);
        out.push({ kind: 'expired', member: m });
      }
    }
    return out;
  }

  /** Everyone in, this node included once it heard itself; by name. */
  members(): Member[] {
    return [...this.#members.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  has(name: string): boolean {
    return this.#members.has(name);
  }

  get size(): number {
    return this.#members.size;
  }
}
