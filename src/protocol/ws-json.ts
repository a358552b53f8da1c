/**
 * The JSON text-frame ops of the WebSocket contract (design.md §3), validated into
 * typed ops. Anything malformed becomes a BrokerError naming the field.
 */
import { BrokerError, ErrorCode } from './errors.js';
import { propertiesFromJson } from './json-properties.js';
import type { MessageProperties } from './properties.js';

export type AckMode = 'auto' | 'client';

export type ClientOp =
  | {
      op: 'subscribe';
      id: string;
      destination: string;
      ack: AckMode;
      prefetch: number | null;
      receipt: string | null;
      /** Consumer arguments (RabbitMQ's): `x-stream-offset` is where a stream consumer starts. */
      arguments: Record<string, unknown> | null;
    }
  | { op: 'unsubscribe'; id: string; receipt: string | null }
  | { op: 'publish'; destination: string; payload: Uint8Array; properties: MessageProperties | null; receipt: string | null }
  | { op: 'ack'; tag: number; multiple: boolean }
  | { op: 'nack'; tag: number; requeue: boolean; multiple: boolean }
  /** Stores a stream consumer's offset (the last it processed) under its consumer name. */
  | { op: 'commit'; subscription: string; offset: number; receipt: string | null };

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** Standard alphabet; padded to a multiple of 4, or unpadded (a lone trailing char is never valid). */
function isBase64(s: string): boolean {
  if (!BASE64.test(s)) return false;
  return s.endsWith('=') ? s.length % 4 === 0 : s.length % 4 !== 1;
}

/** Subscription ids are client strings; bounded so a client cannot store megabytes per subscription. */
export const MAX_SUBSCRIPTION_ID_LENGTH = 128;

/** A refused op whose frame named a receipt: the error answers that receipt, so a client can pair them. */
export class ClientOpError extends BrokerError {
  readonly receipt: string;

  constructor(cause: BrokerError, receipt: string) {
    super(cause.code, cause.message, cause.status);
    this.receipt = receipt;
  }
}

export function parseClientOp(text: string): ClientOp {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new BrokerError(ErrorCode.badFrame, `frame is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new BrokerError(ErrorCode.badFrame, 'frame must be a JSON object with an "op" field');
  }
  const o = value as Record<string, unknown>;
  try {
    return parseOp(o);
  } catch (err) {
    if (err instanceof BrokerError && typeof o.receipt === 'string' && o.receipt.length <= MAX_SUBSCRIPTION_ID_LENGTH)
      throw new ClientOpError(err, o.receipt);
    throw err;
  }
}

function parseOp(o: Record<string, unknown>): ClientOp {
  switch (o.op) {
    case 'subscribe': {
      const ack = o.ack ?? 'auto';
      if (ack !== 'auto' && ack !== 'client') throw bad('ack must be "auto" or "client"');
      let prefetch: number | null = null;
      if (o.prefetch !== undefined) {
        if (!Number.isInteger(o.prefetch) || (o.prefetch as number) < 0 || (o.prefetch as number) > 0xffff_ffff) {
          throw bad('prefetch must be an integer ≥ 0');
        }
        prefetch = o.prefetch as number;
      }
      let args: Record<string, unknown> | null = null;
      if (o.arguments !== undefined) {
        if (typeof o.arguments !== 'object' || o.arguments === null || Array.isArray(o.arguments)) throw bad('arguments must be an object');
        args = o.arguments as Record<string, unknown>;
      }
      return {
        op: 'subscribe',
        id: id(o.id),
        destination: str(o.destination, 'destination'),
        ack,
        prefetch,
        receipt: receipt(o.receipt),
        arguments: args,
      };
    }
    case 'unsubscribe':
      return { op: 'unsubscribe', id: id(o.id), receipt: receipt(o.receipt) };
    case 'publish': {
      const payload = o.payload;
      let bytes: Uint8Array;
      if (typeof payload === 'string') {
        if (o.encoding === 'base64') {
          // Node's decoder skips junk silently; a broker must not alter a payload it was given.
          if (!isBase64(payload)) throw bad('payload is not valid base64');
          bytes = Buffer.from(payload, 'base64');
        } else if (o.encoding === undefined || o.encoding === 'utf8') bytes = Buffer.from(payload, 'utf8');
        else throw bad('encoding must be "utf8" or "base64"');
      } else {
        throw bad('payload must be a string');
      }
      const properties = o.properties === undefined || o.properties === null ? null : propertiesFromJson(o.properties);
      return { op: 'publish', destination: str(o.destination, 'destination'), payload: bytes, properties, receipt: receipt(o.receipt) };
    }
    case 'ack': {
      const multiple = flag(o.multiple, 'multiple', false);
      return { op: 'ack', tag: tag(o.tag, multiple), multiple };
    }
    case 'nack': {
      const multiple = flag(o.multiple, 'multiple', false);
      return { op: 'nack', tag: tag(o.tag, multiple), requeue: flag(o.requeue, 'requeue', true), multiple };
    }
    case 'commit': {
      const offset = o.offset;
      if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0) throw bad('offset must be an integer ≥ 0');
      return { op: 'commit', subscription: id(o.subscription), offset, receipt: receipt(o.receipt) };
    }
    default:
      throw new BrokerError(
        ErrorCode.unknownOp,
        `unknown op ${JSON.stringify(o.op)}; expected subscribe, unsubscribe, publish, ack, nack or commit`,
      );
  }
}

function flag(v: unknown, name: string, fallback: boolean): boolean {
  if (v === undefined) return fallback;
  if (typeof v !== 'boolean') throw bad(`${name} must be a boolean`);
  return v;
}

function bad(message: string): BrokerError {
  return new BrokerError(ErrorCode.badFrame, message);
}

function str(v: unknown, name: string): string {
  if (typeof v !== 'string') throw bad(`${name} must be a string`);
  return v;
}

function id(v: unknown): string {
  if (typeof v !== 'string' || v.length === 0 || v.length > MAX_SUBSCRIPTION_ID_LENGTH) {
    throw bad(`id must be a non-empty string of at most ${MAX_SUBSCRIPTION_ID_LENGTH} characters`);
  }
  return v;
}

function receipt(v: unknown): string | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'string' || v.length > MAX_SUBSCRIPTION_ID_LENGTH) throw bad('receipt must be a string');
  return v;
}

/** AMQP's meaning, as in the binary protocol: tag 0 with `multiple` settles every outstanding delivery. */
function tag(v: unknown, multiple: boolean): number {
  if (v === 0 && multiple) return 0;
  if (!Number.isSafeInteger(v) || (v as number) <= 0)
    throw bad('tag must be a positive integer (or 0 with "multiple": true, for all outstanding)');
  return v as number;
}
