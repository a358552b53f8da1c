/**
 * The message store contract: what a shard persists and what it gets back after a restart.
 *
 * One store per shard, owned and called by that shard's thread only (no locking, no sharing; the
 * main thread never touches it). Two implementations meet it:
 * - {@link MemoryStore} (`memory-store.ts`): nothing on disk; transient mode and the contract tests.
 * - {@link LogStore} (`log-store.ts`): append-only CRC-checked segment files with group commit.
 *
 * The promise it serves: the shard confirms a persistent message only after `onDurable` reported an
 * LSN at or above the LSN `appendMessage` returned for it. Such a message is recovered after a
 * SIGKILL (or power loss, for the log store) at any instant, unless a remove for it was durable too.
 *
 * Call order: `recover()` once, then any appends/`requestFlush()`, then `close()`. Appends before
 * `recover()` or after `close()` throw.
 */

/** One message in one queue, as the store keeps it. */
export interface PersistedMessage {
  /** The queue holding it. A message routed to several queues is stored once per queue. */
  readonly queue: string;
  /**
   * Shard-unique per (queue, id), chosen by the shard and increasing over the shard's life: start
   * from `RecoveryResult.nextId`. The store keys messages by (queue, id), so a fan-out may reuse one
   * id for its copies. An integer in [0, 2^53).
   */
  readonly id: number;
  readonly exchange: string;
  readonly routingKey: string;
  /** The encoded properties block, opaque to the store; null when there are none. */
  readonly properties: Uint8Array | null;
  readonly payload: Uint8Array;
}

/**
 * A topology change, opaque JSON to the store except for the fields compaction needs (see
 * `topology-model.ts`). Accepted ops: declareQueue, deleteQueue, declareExchange, deleteExchange,
 * bindQueue, unbindQueue, bindExchange, unbindExchange (the shapes of `ManageOp` in
 * `src/protocol/ring-record-codec.ts`). Anything else (including purgeQueue: log a purge as removes)
 * is refused with a TypeError, because compaction could not keep it right.
 */
export type TopologyOp = { op: string; [k: string]: unknown };

/** One damaged region of a segment file found by recovery. */
export interface LogDamage {
  /** The segment file's name. */
  readonly segment: string;
  readonly offset: number;
  readonly bytes: number;
  /** `corrupt`: skipped, left in place; `torn`: the newest segment's tail, copied aside and cut. */
  readonly kind: 'corrupt' | 'torn';
  /** The file the bytes were copied to before the cut (torn tails), in the same directory. */
  readonly copiedTo: string | null;
}

export interface RecoveryStats {
  /** Segment files read. */
  readonly segments: number;
  /** Records read with a valid CRC (segment headers included). */
  readonly records: number;
  /**
   * Damaged records skipped: each region of bytes between two whole records (at least one record
   * each), each record that passed its CRC but does not decode, and each damaged tail that is not a
   * torn write. The messages among them are lost; a person may still repair them from the files.
   */
  readonly corruptSkipped: number;
  /** Bytes cut off the newest segment's torn tail (copied aside to a `.corrupt` file first). */
  readonly tornBytesTruncated: number;
  /** The damaged regions, at most the first 100 (`corruptSkipped` counts them all). */
  readonly damage: readonly LogDamage[];
  /** Wall time of `recover()`. */
  readonly durationMs: number;
}

export interface RecoveryResult {
  /**
   * The live topology, compacted: a declare later deleted is gone, bindings of deleted queues and
   * exchanges are gone, auto-delete exchanges that lost their last binding are gone, a redeclare
   * keeps the first declaration. Ordered for replay: exchanges, then queues, then bindings.
   */
  readonly topology: TopologyOp[];
  /** Messages appended and not removed (nor dropped with their queue), in id order (equal ids: append order). */
  readonly messages: PersistedMessage[];
  /** The next id to use: above every id the store has ever seen, even of messages long removed. */
  readonly nextId: number;
  /** The highest LSN recovered (0 when empty); the first append after recovery gets `lastLsn + 1`. */
  readonly lastLsn: number;
  readonly stats: RecoveryStats;
}

/** Called with the highest LSN now durable: every append with an LSN at or below it is durable. */
export type DurableListener = (lsn: number) => void;

/**
 * Called when a flush failed. Appends up to `failedUpToLsn` above the last reported durable LSN are
 * NOT durable; the store keeps them and retries them on the next flush. It stays usable.
 */
export type FlushErrorListener = (err: Error, failedUpToLsn: number) => void;

export interface MessageStore {
  /**
   * Reads what the store holds. Call once, before any append; synchronous (the shard is not serving
   * yet). A store with nothing to recover returns empty state, `nextId` 0 and `lastLsn` 0.
   */
  recover(): RecoveryResult;

  /**
   * Appends a message; returns its LSN (log sequence number: increasing by one per append, across
   * restarts). Buffered, not durable until `onDurable` reports an LSN at or above it. The store
   * copies what it needs before returning: the caller may reuse `payload`/`properties` buffers.
   * The log store refuses (RangeError, no LSN taken) names over 65535 UTF-8 bytes and records over
   * 256 MiB.
   */
  appendMessage(m: PersistedMessage): number;

  /**
   * Appends the removal of a message (acked, dropped, expired, dead-lettered, purged). Removing an
   * unknown or already removed (queue, id) is harmless. Returns its LSN.
   */
  appendRemove(queue: string, id: number): number;

  /**
   * Appends a topology change; returns its LSN. `deleteQueue` also removes every message of that
   * queue appended before it (no per-message removes needed). Throws TypeError for an op it does not
   * know (see {@link TopologyOp}).
   */
  appendTopology(op: TopologyOp): number;

  /**
   * Asks for everything appended so far to become durable per the fsync policy. Cheap to call often
   * (the shard calls it once per drained batch): it never blocks and never does I/O itself.
   */
  requestFlush(): void;

  /**
   * Durability listener, called asynchronously (never from inside an append or `requestFlush`) with
   * increasing LSNs after each successful flush. Assign before the first flush.
   */
  onDurable: DurableListener;

  /** Flush failure listener; see {@link FlushErrorListener}. */
  onFlushError: FlushErrorListener;

  /** The highest durable LSN (0 before anything is). */
  readonly durableLsn: number;

  /**
   * Flushes what is pending, waits for background work and closes files. Rejects with the flush
   * error when the final flush fails (the files are closed anyway). Idempotent.
   */
  close(): Promise<void>;
}

/** Thrown by appends before `recover()` or after `close()`. */
export class StoreStateError extends Error {
  override readonly name = 'StoreStateError';
}

/** Both stores refuse appends out of the call order the contract sets (module comment), with the same words. */
export function checkAppendable(recovered: boolean, closed: boolean): void {
  if (!recovered) throw new StoreStateError('call recover() before appending');
  if (closed) throw new StoreStateError('store is closed');
}

/** The largest id a message may carry: ids are stored as u64 but handled as JS safe integers. */
export const MAX_MESSAGE_ID = Number.MAX_SAFE_INTEGER;

/** Throws a RangeError unless `id` is an integer in [0, 2^53). */
export function checkMessageId(id: number): void {
  if (!Number.isSafeInteger(id) || id < 0) throw new RangeError(`message id must be an integer in [0, 2^53) (got ${id})`);
}
