/**
 * The NATS message that carries publishes from one node to the others: every message of one
 * event-loop turn for one exchange and routing key, so a burst to one subject crosses as one
 * NATS message, not one per record.
 *
 * Little-endian: u8 version · u8 n + n bytes sender boot id · f64 sequence · u8 n + exchange ·
 * u8 n + routing key · u32 count · count × (u32 n + properties block · u32 n + payload).
 * The boot id and sequence let a receiver drop the second copy NATS hands it when two of its
 * subscriptions match one subject (a sequence it has seen from that boot).
 */
export const FORWARD_BATCH_VERSION = 1;

export class ForwardBatchError extends Error {
  override readonly name = 'ForwardBatchError';
  readonly code = 'bad_forward_batch';
}

/** Collects the records of one batch, copying each in (the caller's bytes may die after the call). */
export class ForwardBatchBuilder {
  readonly exchange: string;
  readonly routingKey: string;
  #buf: Buffer;
  #length: number;
  #count = 0;
  readonly #countAt: number;
  readonly #seqAt: number;

  constructor(boot: string, exchange: string, routingKey: string, initialBytes = 4096) {
    this.exchange = exchange;
    this.routingKey = routingKey;
    const bootBytes = Buffer.from(boot, 'latin1');
    const ex = Buffer.from(exchange, 'utf8');
    const key = Buffer.from(routingKey, 'utf8');
    if (bootBytes.length > 255 || ex.length > 255 || key.length > 255)
      throw new ForwardBatchError('boot id, exchange and key are at most 255 bytes');
    const headerBytes = 1 + 1 + bootBytes.length + 8 + 1 + ex.length + 1 + key.length + 4;
    this.#buf = Buffer.allocUnsafe(Math.max(initialBytes, headerBytes + 64));
    let at = 0;
    this.#buf[at++] = FORWARD_BATCH_VERSION;
    this.#buf[at++] = bootBytes.length;
    at += bootBytes.copy(this.#buf, at);
    this.#seqAt = at;
    at += 8;
    this.#buf[at++] = ex.length;
    at += ex.copy(this.#buf, at);
    this.#buf[at++] = key.length;
    at += key.copy(this.#buf, at);
    this.#countAt = at;
    at += 4;
    this.#length = at;
  }

  get count(): number {
    return this.#count;
  }

  get byteLength(): number {
    return this.#length;
  }

  /** The bytes `add` would take for this record. */
  static recordBytes(properties: Uint8Array | null, payload: Uint8Array): number {
    return 8 + (properties?.byteLength ?? 0) + payload.byteLength;
  }

  add(properties: Uint8Array | null, payload: Uint8Array): void {
    const need = this.#length + ForwardBatchBuilder.recordBytes(properties, payload);
    if (need > this.#buf.length) {
      const grown = Buffer.allocUnsafe(Math.max(need, this.#buf.length * 2));
      this.#buf.copy(grown, 0, 0, this.#length);
      this.#buf = grown;
    }
    const buf = this.#buf;
    let at = this.#length;
    const propsLength = properties?.byteLength ?? 0;
    buf.writeUInt32LE(propsLength, at);
    at += 4;
    if (properties !== null) buf.set(properties, at);
    at += propsLength;
    buf.writeUInt32LE(payload.byteLength, at);
    at += 4;
    buf.set(payload, at);
    this.#length = at + payload.byteLength;
    this.#count++;
  }

  /** The finished batch; the builder must not be used after. */
  finish(seq: number): Uint8Array {
    this.#buf.writeDoubleLE(seq, this.#seqAt);
    this.#buf.writeUInt32LE(this.#count, this.#countAt);
    return this.#buf.subarray(0, this.#length);
  }
}

export interface ForwardBatchHeader {
  readonly boot: string;
  readonly seq: number;
  readonly exchange: string;
  readonly routingKey: string;
  readonly count: number;
}

/**
 * Reads a batch: its header, then `onRecord` once per record with views into `data` (valid
 * during the call only). Throws ForwardBatchError, before any record, if the batch is not
 * whole; records are checked before the first is handed out, so a bad batch delivers nothing.
 */
export function decodeForwardBatch(
  data: Uint8Array,
  onHeader: (header: ForwardBatchHeader) => boolean,
  onRecord: (properties: Uint8Array | null, payload: Uint8Array) => void,
): ForwardBatchHeader {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  let at = 0;
  const need = (n: number, what: string): void => {
    if (at + n > data.byteLength) throw new ForwardBatchError(`forward batch cut short in ${what} (${data.byteLength} bytes)`);
  };
  need(2, 'header');
  const version = data[at++];
  if (version !== FORWARD_BATCH_VERSION)
    throw new ForwardBatchError(`forward batch version ${version} (this node reads ${FORWARD_BATCH_VERSION})`);
  const bootLength = data[at++];
  need(bootLength + 9, 'header');
  const boot = Buffer.from(data.buffer, data.byteOffset + at, bootLength).toString('latin1');
  at += bootLength;
  const seq = view.getFloat64(at, true);
  at += 8;
  const exLength = data[at++];
  need(exLength + 1, 'exchange');
  const exchange = Buffer.from(data.buffer, data.byteOffset + at, exLength).toString('utf8');
  at += exLength;
  const keyLength = data[at++];
  need(keyLength + 4, 'routing key');
  const routingKey = Buffer.from(data.buffer, data.byteOffset + at, keyLength).toString('utf8');
  at += keyLength;
  const count = view.getUint32(at, true);
  at += 4;
  const header: ForwardBatchHeader = { boot, seq, exchange, routingKey, count };
  const first = at;
  for (let i = 0; i < count; i++) {
    need(4, 'record');
    at += 4 + view.getUint32(at, true);
    need(4, 'record');
    at += 4 + view.getUint32(at, true);
    if (at > data.byteLength) throw new ForwardBatchError(`forward batch cut short in record ${i} of ${count}`);
  }
  if (at !== data.byteLength) throw new ForwardBatchError(`forward batch has ${data.byteLength - at} bytes after its ${count} records`);
  if (!onHeader(header)) return header;
  at = first;
  for (let i = 0; i < count; i++) {
    const propsLength = view.getUint32(at, true);
    at += 4;
    const properties = propsLength === 0 ? null : data.subarray(at, at + propsLength);
    at += propsLength;
    const payloadLength = view.getUint32(at, true);
    at += 4;
    onRecord(properties, data.subarray(at, at + payloadLength));
    at += payloadLength;
  }
  return header;
}
