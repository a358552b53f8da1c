/**
 * The bytes of one stream entry: what a message was published with, kept as the publish record
 * carried it (the properties stay in the broker's encoded block, so a read copies them as they are).
 *
 *   exchangeLength u16 | exchange (UTF-8) | routingKeyLength u16 | routingKey (UTF-8) |
 *   propertiesLength u32 | properties (protocol/properties.ts block) | payload (the rest)
 *
 * The offset and the timestamp are not in the entry: the log keeps them beside it.
 */
const encoder = new TextEncoder();
const decoder = new TextDecoder();

export interface StreamEntry {
  readonly exchange: string;
  readonly routingKey: string;
  /** The encoded properties block (empty: none). */
  readonly properties: Uint8Array;
  readonly payload: Uint8Array;
}

/** Exchange and routing key, encoded once per publish (they are short, and repeat). */
export interface EntryHead {
  readonly exchange: Uint8Array;
  readonly routingKey: Uint8Array;
}

export function entryHead(exchange: string, routingKey: string): EntryHead {
  return { exchange: encoder.encode(exchange), routingKey: encoder.encode(routingKey) };
}

export function entryLength(head: EntryHead, propertiesLength: number, payloadLength: number): number {
  return 2 + head.exchange.byteLength + 2 + head.routingKey.byteLength + 4 + propertiesLength + payloadLength;
}

/** Writes an entry at `bytes[at…]` (entryLength bytes), its properties and payload copied from where they are. */
export function writeEntry(
  bytes: Uint8Array,
  at: number,
  head: EntryHead,
  properties: Uint8Array,
  payloadSource: Uint8Array,
  payloadOffset: number,
  payloadLength: number,
): void {
  const propsLength = properties.byteLength;
  let p = at;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  view.setUint16(p, head.exchange.byteLength, true);
  bytes.set(head.exchange, p + 2);
  p += 2 + head.exchange.byteLength;
  view.setUint16(p, head.routingKey.byteLength, true);
  bytes.set(head.routingKey, p + 2);
  p += 2 + head.routingKey.byteLength;
  view.setUint32(p, propsLength, true);
  p += 4;
  bytes.set(properties, p);
  p += propsLength;
  bytes.set(payloadSource.subarray(payloadOffset, payloadOffset + payloadLength), p);
}

/** Reads the entry in `bytes[start, end)`; properties and payload are views into `bytes` (copy what you keep). */
export function readEntry(bytes: Uint8Array, start: number, end: number): StreamEntry {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let p = start;
  const exchangeLength = view.getUint16(p, true);
  const exchange = decoder.decode(bytes.subarray(p + 2, p + 2 + exchangeLength));
  p += 2 + exchangeLength;
  const routingKeyLength = view.getUint16(p, true);
  const routingKey = decoder.decode(bytes.subarray(p + 2, p + 2 + routingKeyLength));
  p += 2 + routingKeyLength;
  const propertiesLength = view.getUint32(p, true);
  p += 4;
  if (p + propertiesLength > end) throw new RangeError(`stream entry at ${start}: properties run past its end`);
  return {
    exchange,
    routingKey,
    properties: bytes.subarray(p, p + propertiesLength),
    payload: bytes.subarray(p + propertiesLength, end),
  };
}
