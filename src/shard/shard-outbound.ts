import type { StoredMessage } from '../queue/types.js';
import type { ConfirmStatus, ManageResult, OutboundWriter } from '../protocol/ring-record-codec.js';
import type { EncodedProperties } from './encoded-properties.js';

/**
 * Something with deliveries waiting for room in the outbound ring: a queue with ready messages, or
 * a stream with readers behind (shard-streams.ts). `dispatch()` writes what it can.
 */
export interface Dispatchable {
  dispatch(): void;
}

/**
 * What the shard writes to the main thread besides deliveries (control records: confirms,
 * errors, replies, pongs; dead-letter republishes), and what waits while the outbound ring is
 * full: those records, and the queues (and streams) whose deliveries could not be written.
 *
 * Deliveries are written by ShardCore straight to the ring; a delivery that finds no room
 * marks the ring full here, so everything else waits behind it.
 */
export class ShardOutbound {
  readonly #out: OutboundWriter;
  readonly #encoded: EncodedProperties;
  /** Queues and streams with deliveries that could not be written because the outbound ring was full. */
  readonly #stalled = new Set<Dispatchable>();
  /** Confirms, errors and republishes that met a full outbound ring; written before anything else. */
  readonly #pendingControl: Array<() => boolean> = [];
  /** Dead-lettered copies collected during a queue operation, republished right after it. */
  readonly #deadLetters: StoredMessage[] = [];
  /** Set when the last outbound write failed for lack of room. */
  #full = false;

  constructor(out: OutboundWriter, encoded: EncodedProperties) {
    this.#out = out;
    this.#encoded = encoded;
  }

  /** True while output is waiting for room in the outbound ring. */
  get blocked(): boolean {
    return this.#pendingControl.length > 0 || this.#full;
  }

  /** The last outbound write failed for lack of room (and nothing has been retried since). */
  get full(): boolean {
    return this.#full;
  }

  /** A delivery found no room in the ring. */
  markFull(): void {
    this.#full = true;
  }

  /** `target` has deliveries to write once the ring has room. */
  stall(target: Dispatchable): void {
    this.#stalled.add(target);
  }

  /** `target` is gone: nothing of it waits any more. */
  forget(target: Dispatchable): void {
    this.#stalled.delete(target);
  }

  pong(token: number): void {
    this.#control(() => this.#out.pong(token));
  }

  confirm(connectionId: number, token: number, status: ConfirmStatus): void {
    this.#control(() => this.#out.confirm(connectionId, token, status, 1));
  }

  error(connectionId: number, subscriptionId: number, code: string, message: string): void {
    this.#control(() => this.#out.error(connectionId, subscriptionId, code, message));
  }

  /** Flow control: hold publishes for this shard (true) or publish again (false). */
  flow(on: boolean): void {
    this.#control(() => this.#out.flow(on));
  }

  /** A slow subscription's private queue discarded `count` messages. */
  dropped(connectionId: number, subscriptionId: number, count: number): void {
    this.#control(() => this.#out.dropped(connectionId, subscriptionId, count));
  }

  /** A traced publish's deliveries were written: its times so far, for the main thread's hop trace. */
  traced(frontInMs: number, shardInMs: number, shardOutMs: number): void {
    this.#control(() => this.#out.traced(frontInMs, shardInMs, shardOutMs));
  }

  manageReply(connectionId: number, token: number, status: number, body: ManageResult): void {
    this.#control(() => this.#out.manageReply(connectionId, token, status, body));
  }

  /** Writes a control record now, or keeps it for when the outbound ring has room. */
  #control(write: () => boolean): void {
    if (this.#pendingControl.length === 0 && write()) return;
    this.#full = true;
    this.#pendingControl.push(write);
  }

  /** Lets `target` write its deliveries now, or keeps it for when the ring has room. */
  dispatch(target: Dispatchable): void {
    if (this.#full) {
      this.#stalled.add(target);
      return;
    }
    target.dispatch();
    if (this.#full) this.#stalled.add(target);
  }

  /** Retries output that met a full ring. Returns true when nothing is left waiting. */
  flush(): boolean {
    this.#full = false;
    // Dead letters made by the dispatches below are republished on the next call (or batch).
    this.republishDeadLetters();
    while (this.#pendingControl.length > 0) {
      if (!this.#pendingControl[0]()) {
        this.#full = true;
        return false;
      }
      this.#pendingControl.shift();
    }
    for (const target of this.#stalled) {
      this.#stalled.delete(target);
      target.dispatch();
      if (this.#full) {
        this.#stalled.add(target);
        return false;
      }
    }
    return true;
  }

  /** Publishes the ring's records to the main thread (outside the shard loop's batches: timers, store callbacks). */
  commit(): void {
    this.#out.ring.commit();
  }

  /** MessageQueueOptions.onDeadLetter: collected, because a queue must not be called back from inside its own operation. */
  readonly onDeadLetter = (message: StoredMessage): void => {
    this.#deadLetters.push(message);
  };

  /** Republishes the dead letters collected since the last call (after every record: usually none). */
  republishDeadLetters(): void {
    if (this.#deadLetters.length === 0) return;
    // Dead-letter exchanges route anywhere, including other shards: the main thread routes them.
    for (const m of this.#deadLetters.splice(0)) {
      const props = m.properties === null ? null : this.#encoded.bytes(m.properties);
      this.#control(() => this.#out.republish(m.exchange, m.routingKey, props, m.payload));
    }
  }
}
