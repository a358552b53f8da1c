/**
 * Connection ids as ring records carry them (u32): 0 is HTTP's, the lower half the WebSocket
 * connections', the upper half the AMQP connections', and 0xffffffff the shared streams'
 * (front/delivery-groups.ts). The broker hands what a shard sends back to the front whose range
 * the id is in, without a lookup.
 */
export const FIRST_WS_CONNECTION = 1;
export const LAST_WS_CONNECTION = 0x7fff_ffff;
export const FIRST_AMQP_CONNECTION = 0x8000_0000;
export const LAST_AMQP_CONNECTION = 0xffff_fffe;

export function isAmqpConnection(id: number): boolean {
  return id >= FIRST_AMQP_CONNECTION && id <= LAST_AMQP_CONNECTION;
}
