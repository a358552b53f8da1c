import { ConfirmStatus } from '../protocol/ring-record-codec.js';
import { BrokerError, ErrorCode } from '../protocol/errors.js';
import { describeIn } from '../protocol/vhost-name.js';

type Done = (status: ConfirmStatus) => void;

interface Pending {
  readonly shards: readonly number[];
  remaining: number;
  status: ConfirmStatus;
  done: Done;
}

/**
 * Tokens that wait for shards to confirm: an HTTP request, a WebSocket receipt or a
 * health ping waits for one confirm per shard it wrote to. The shard confirms after
 * it processed the token's record (and, with durability, after the fsync covering it).
 */
export class ConfirmTracker {
  readonly #pending = new Map<number, Pending>();
  #next: number;

  /** @param lastToken the token before the first one handed out (tests start near 2^32 to cover the wrap). */
  constructor(lastToken = 0) {
    this.#next = lastToken >>> 0;
  }

  /** Allocates a token (never 0: 0 means "no confirm wanted"). */
  allocate(shards: readonly number[], done: Done): number {
    do {
      this.#next = (this.#next + 1) >>> 0;
    } while (this.#next === 0 || this.#pending.has(this.#next));
    this.#pending.set(this.#next, { shards, remaining: shards.length, status: ConfirmStatus.ok, done });
    return this.#next;
  }

  /** One shard confirmed the token; the worst status of all shards wins. */
  settle(token: number, status: ConfirmStatus): void {
    const p = this.#pending.get(token);
    if (p === undefined) return;
    if (status > p.status) p.status = status;
    if (--p.remaining > 0) return;
    this.#pending.delete(token);
    p.done(p.status);
  }

  /** Gives up on a token (timeout, shard death): its callback runs with `status`. */
  fail(token: number, status: ConfirmStatus): void {
    const p = this.#pending.get(token);
    if (p === undefined) return;
    this.#pending.delete(token);
    p.done(status);
  }

  /** A shard died: whatever waited on it will never hear back from that thread. */
  failShard(shard: number, status: ConfirmStatus): number {
    let failed = 0;
    for (const [token, p] of this.#pending) {
      if (!p.shards.includes(shard)) continue;
      this.#pending.delete(token);
      p.done(status);
      failed++;
    }
    return failed;
  }

  get size(): number {
    return this.#pending.size;
  }
}

/**
 * What a publisher is told when its shards did not confirm: the same code and words on every
 * protocol (HTTP status, JSON error op, binary ERROR). `exchange` names where it was published.
 */
export function confirmRefusal(status: ConfirmStatus, exchange: string): BrokerError {
  switch (status) {
    case ConfirmStatus.notFound:
      return new BrokerError(ErrorCode.notFound, `no ${describeIn('exchange', exchange)} (it was deleted)`);
    case ConfirmStatus.storageFailed:
      return new BrokerError(ErrorCode.storageFailed, 'the message could not be written to disk; it was not accepted (retry later)');
    case ConfirmStatus.nodeUnavailable:
      return new BrokerError(
        ErrorCode.nodeUnavailable,
        "the cluster node of the message's queue did not confirm it (NATS or that node is away, or its buffer is full); it was not accepted (retry later)",
      );
    default:
      return new BrokerError(
        ErrorCode.saturated,
        'a queue refused the message (x-overflow reject-publish), or its shard restarted before confirming; it was not accepted',
      );
  }
}
