/**
 * Connection ids as ring records carry them (u32): 0 is HTTP's, the lower half the WebSocket
 * connections' (its top sixteenth the cluster's: consumers on other nodes of this node's queues,
 * cluster/proxy-consumers.ts), the upper half the AMQP connections', and 0xffffffff the shared
 * streams' (front/delivery-groups.ts). The broker hands what a shard sends back to the front
 * whose range the id is in, without a lookup.
 */
export const FIRST_WS_CONNECTION = 1;
export const LAST_WS_CONNECTION = 0x77ff_ffff;
export const FIRST_CLUSTER_CONNECTION = 0x7800_0000;
export const LAST_CLUSTER_CONNECTION = 0x7fff_ffff;
export const FIRST_AMQP_CONNECTION = 0x8000_0000;
export const LAST_AMQP_CONNECTION = 0xffff_fffe;

export function isAmqpConnection(id: number): boolean {
  return id >= FIRST_AMQP_CONNECTION && id <= LAST_AMQP_CONNECTION;
}

export function isClusterConnection(id: number): boolean {
  return id >= FIRST_CLUSTER_CONNECTION && id <= LAST_CLUSTER_CONNECTION;
}
