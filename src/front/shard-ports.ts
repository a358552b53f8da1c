/**
 * Where a consumer's control records go: its queue's local shard, or (REMOTE_SHARD) the node of
 * the cluster that holds its queue. The WebSocket fronts write subscribe, credit, settle,
 * unsubscribe, slow and close through these, never to a handle by index.
 */
import { REMOTE_SHARD, REMOTE_TAG_BASE, type ControlPort } from '../shard/shard-handle.js';
import type { BrokerContext } from './context.js';

export function portOf(ctx: Pick<BrokerContext, 'shards' | 'remotePort'>, shard: number): ControlPort {
  if (shard !== REMOTE_SHARD) return ctx.shards[shard];
  // The node is leaving its cluster (stop): whatever its remote consumers still say goes nowhere.
  return ctx.remotePort() ?? NOWHERE;
}

const NOWHERE: ControlPort = { writeControl: () => undefined };

/** The port that settles shard tag `tag`: local shards number theirs `k × shards + index`, other nodes' are remapped above REMOTE_TAG_BASE. */
export function portOfTag(ctx: Pick<BrokerContext, 'shards' | 'remotePort'>, tag: number): ControlPort {
  return portOf(ctx, tag >= REMOTE_TAG_BASE ? REMOTE_SHARD : tag % ctx.shards.length);
}
