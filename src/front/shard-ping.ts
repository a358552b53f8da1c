import type { BrokerContext } from './context.js';
import { ConfirmStatus } from '../protocol/ring-record-codec.js';
import { BrokerError, ErrorCode } from '../protocol/errors.js';
import { REMOTE_SHARD } from '../shard/shard-handle.js';

/**
 * Resolves once `shard` has processed everything written to it before (a ping record behind it,
 * answered through the confirm tracker); with `afterPublishes`, also every publish still held for
 * it in main-thread memory. Rejects with shard_unavailable when the shard restarted first.
 */
export function pingShard(ctx: Pick<BrokerContext, 'confirms' | 'shards'>, shard: number, afterPublishes = false): Promise<void> {
  // A queue on another node: what was written to it is on its way in order; nothing to wait for here.
  if (shard === REMOTE_SHARD) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const token = ctx.confirms.allocate([shard], (status) => {
      if (status === ConfirmStatus.ok) resolve();
      else reject(new BrokerError(ErrorCode.shardUnavailable, `shard ${shard} restarted before answering`));
    });
    const handle = ctx.shards[shard];
    if (afterPublishes) handle.writeAfterPublishes((w) => w.ping(token));
    else handle.writeControl((w) => w.ping(token));
  });
}
