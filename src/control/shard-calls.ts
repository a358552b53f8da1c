import type { ShardHandle } from '../shard/shard-handle.js';
import type { GetOp, ManageOp, ManageResult, StreamOp } from '../protocol/ring-record-codec.js';

export interface ManageAnswer {
  readonly ok: boolean;
  readonly result: ManageResult;
}

/** How long a topology call waits for its shard before it is answered as unavailable. */
const CALL_TIMEOUT_MS = 5000;

/**
 * Request/answer calls to shards for topology operations (declare, delete, purge, bind).
 * They travel through the rings like everything else, so they are ordered with the
 * publishes and subscriptions around them.
 */
export class ShardCalls {
  readonly #shards: readonly ShardHandle[];
  readonly #waiting = new Map<number, { shard: number; resolve: (a: ManageAnswer) => void; timer: NodeJS.Timeout }>();
  #next = 0;

  constructor(shards: readonly ShardHandle[]) {
    this.#shards = shards;
  }

  /** Sends `op` to `shard` and resolves with its answer (or a shard_unavailable error). */
  call(shard: number, op: ManageOp | GetOp | StreamOp, connectionId = 0): Promise<ManageAnswer> {
    const token = this.#token();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#waiting.delete(token);
        resolve({ ok: false, result: { code: 'shard_unavailable', message: `shard ${shard} did not answer in ${CALL_TIMEOUT_MS} ms` } });
      }, CALL_TIMEOUT_MS);
      this.#waiting.set(token, { shard, resolve, timer });
      this.#shards[shard].writeControl((w) => w.manage(connectionId, token, op));
    });
  }

  /** Sends `op` to every shard and waits for all; the first failure wins. */
  async broadcast(op: ManageOp): Promise<ManageAnswer> {
    const answers = await Promise.all(this.#shards.map((h) => this.call(h.index, op)));
    return answers.find((a) => !a.ok) ?? answers[0] ?? { ok: true, result: {} };
  }

  /** A shard's manageReply. */
  settle(token: number, status: number, result: ManageResult): void {
    const w = this.#waiting.get(token);
    if (w === undefined) return;
    this.#waiting.delete(token);
    clearTimeout(w.timer);
    w.resolve({ ok: status === 0, result });
  }

  /** A shard died: calls waiting on it are answered as failed. */
  failShard(shard: number): void {
    for (const [token, w] of this.#waiting) {
      if (w.shard !== shard) continue;
      this.#waiting.delete(token);
      clearTimeout(w.timer);
      w.resolve({ ok: false, result: { code: 'shard_unavailable', message: `shard ${shard} restarted before answering` } });
    }
  }

  #token(): number {
    do this.#next = (this.#next + 1) >>> 0;
    while (this.#next === 0 || this.#waiting.has(this.#next));
    return this.#next;
  }
}
