/**
 * The store of transient mode: the {@link MessageStore} contract with nothing on disk and nothing
 * kept (the shard's queues already hold the messages; a second copy here would double memory).
 *
 * Guarantees, as the contract words them for a store that cannot survive its process:
 * - `recover()` always answers empty state (nextId 0, lastLsn 0).
 * - Appends are checked like the log store checks them (ids, topology ops), get increasing LSNs, and
 *   are "durable" at the next `requestFlush()`: `onDurable` is called from a microtask, never from
 *   inside `requestFlush()`, exactly once per flush that had something new.
 * - `onFlushError` is never called.
 */
import { checkTopologyOp } from './topology-model.js';
import {
  StoreStateError,
  checkAppendable,
  checkMessageId,
  type DurableListener,
  type FlushErrorListener,
  type MessageStore,
  type PersistedMessage,
  type RecoveryResult,
  type TopologyOp,
} from './store.js';

export class MemoryStore implements MessageStore {
  onDurable: DurableListener = () => {};
  onFlushError: FlushErrorListener = () => {};
  #recovered = false;
  #closed = false;
  #lastLsn = 0;
  #durableLsn = 0;
  /** The LSN a scheduled microtask will report, or 0 when none is scheduled. */
  #scheduled = 0;

  get durableLsn(): number {
    return this.#durableLsn;
  }

  recover(): RecoveryResult {
    if (this.#recovered) throw new StoreStateError('recover() may be called only once');
    this.#recovered = true;
    return {
      topology: [],
      messages: [],
      nextId: 0,
      lastLsn: 0,
      stats: { segments: 0, records: 0, corruptSkipped: 0, tornBytesTruncated: 0, damage: [], durationMs: 0 },
    };
  }

  appendMessage(m: PersistedMessage): number {
    checkAppendable(this.#recovered, this.#closed);
    checkMessageId(m.id);
    return ++this.#lastLsn;
  }

  appendRemove(_queue: string, id: number): number {
    checkAppendable(this.#recovered, this.#closed);
    checkMessageId(id);
    return ++this.#lastLsn;
  }

  appendTopology(op: TopologyOp): number {
    checkAppendable(this.#recovered, this.#closed);
    checkTopologyOp(op);
    return ++this.#lastLsn;
  }

  requestFlush(): void {
    if (this.#closed || this.#lastLsn === this.#durableLsn || this.#scheduled !== 0) return;
    this.#scheduled = this.#lastLsn;
    queueMicrotask(this.#report);
  }

  readonly #report = (): void => {
    // Everything appended up to now is as durable as it will ever be.
    this.#scheduled = 0;
    if (this.#lastLsn === this.#durableLsn) return;
    this.#durableLsn = this.#lastLsn;
    this.onDurable(this.#durableLsn);
  };

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#lastLsn !== this.#durableLsn) {
      this.#durableLsn = this.#lastLsn;
      this.onDurable(this.#durableLsn);
    }
  }
}
