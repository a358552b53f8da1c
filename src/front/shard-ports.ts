/**
 * Where a consumer's control records go: its queue's local shard, or (REMOTE_SHARD) the node of
 * the cluster that holds its queue. The WebSocket fronts write subscribe, credit, settle,
 * unsubscribe, slow and close through these, never to a handle by index.
 */
import { REMOTE_SHARD, REMOTE_TAG_BASE, type ControlPort, type RoomSignal } from '../shard/shard-handle.js';
import type { BrokerContext } from './context.js';

export function portOf(ctx: Pick<BrokerContext, 'shards' | 'remotePort'>, shard: number): ControlPort {
  if (shard !== REMOTE_SHARD) return ctx.shards[shard];
  // The node is leaving its cluster (stop): whatever its remote consumers still say goes nowhere.
  return ctx.remotePort() ?? NOWHERE;
}

const NOWHERE: ControlPort = { writeControl: () => undefined };

/**
 * What a publisher's credit waits on for `shard`: that shard's room, or (REMOTE_SHARD, a publish that
 * went to other nodes) the cluster link's: it has none while NATS has not taken what was sent, or
 * another node presses because it cannot keep up.
 */
export function roomOf(ctx: Pick<BrokerContext, 'shards' | 'clusterRoom'>, shard: number): RoomSignal {
  if (shard !== REMOTE_SHARD) return ctx.shards[shard];
  return ctx.clusterRoom() ?? ALWAYS_ROOM;
}

const ALWAYS_ROOM: RoomSignal = { hasRoom: true, onRoom: (wake) => wake() };

/** The port that settles shard tag `tag`: local shards number theirs `k × shards + index`, other nodes' are remapped above REMOTE_TAG_BASE. */
export function portOfTag(ctx: Pick<BrokerContext, 'shards' | 'remotePort'>, tag: number): ControlPort {
  return portOf(ctx, tag >= REMOTE_TAG_BASE ? REMOTE_SHARD : tag % ctx.shards.length);
}
