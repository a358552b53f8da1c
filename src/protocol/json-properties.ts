/**
 * AMQP basic properties in JSON text frames, named as RabbitMQ's HTTP API names them
 * (content_type, delivery_mode, headers...). Parsed strictly: a wrong type is an error
 * naming the field, not a silent drop.
 */
import { BrokerError, ErrorCode } from './errors.js';
import type { HeaderValue } from './field-table.js';
import type { MessageProperties } from './properties.js';
import { checkDeliveryMode, checkExpiration, checkPriority } from './property-rules.js';

const STRING_FIELDS = {
  content_type: 'contentType',
  content_encoding: 'contentEncoding',
  correlation_id: 'correlationId',
  reply_to: 'replyTo',
  message_id: 'messageId',
  type: 'type',
  user_id: 'userId',
  app_id: 'appId',
} as const satisfies Record<string, keyof MessageProperties>;

type JsonValue = string | number | boolean | null | JsonValue[] | { [k: string]: JsonValue };

export function propertiesFromJson(value: unknown): MessageProperties {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw bad('properties must be an object');
  const o = value as Record<string, unknown>;
  const p: MessageProperties = {};
  for (const [key, v] of Object.entries(o)) {
    if (key in STRING_FIELDS) {
      if (typeof v !== 'string') throw bad(`properties.${key} must be a string`);
      (p as Record<string, unknown>)[STRING_FIELDS[key as keyof typeof STRING_FIELDS]] = v;
      continue;
    }
    switch (key) {
      // Values go through the rules every publish path shares (property-rules.ts): 406.
      case 'delivery_mode':
        if (typeof v !== 'number') throw bad('properties.delivery_mode must be 1 (transient) or 2 (persistent)');
        checkDeliveryMode(v);
        p.deliveryMode = v as 1 | 2;
        break;
      case 'priority':
        if (typeof v !== 'number') throw bad('properties.priority must be an integer from 0 to 255');
        checkPriority(v);
        p.priority = v;
        break;
      case 'expiration':
        if (typeof v === 'number') p.expiration = String(v);
        else if (typeof v === 'string') p.expiration = v;
        else throw bad('properties.expiration must be a whole number of milliseconds (string or number)');
        checkExpiration(p.expiration);
        break;
      case 'timestamp':
        if (!Number.isInteger(v) || (v as number) < 0) throw bad('properties.timestamp must be whole seconds since the epoch');
        p.timestamp = v as number;
        break;
      case 'headers':
        if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad('properties.headers must be an object');
        p.headers = v as Record<string, HeaderValue>;
        break;
      default:
        throw bad(`unknown property ${JSON.stringify(key)}`);
    }
  }
  return p;
}

/** The JSON form of decoded properties (bytes in headers become base64 strings). */
export function propertiesToJson(p: MessageProperties): Record<string, JsonValue> {
  const out: Record<string, JsonValue> = {};
  for (const [json, field] of Object.entries(STRING_FIELDS)) {
    const v = p[field];
    if (v !== undefined) out[json] = v;
  }
  if (p.deliveryMode !== undefined) out.delivery_mode = p.deliveryMode;
  if (p.priority !== undefined) out.priority = p.priority;
  if (p.expiration !== undefined) out.expiration = p.expiration;
  if (p.timestamp !== undefined) out.timestamp = p.timestamp;
  if (p.headers !== undefined) out.headers = toJsonValue(p.headers) as Record<string, JsonValue>;
  return out;
}

/** A header or table value as JSON (bytes become base64 strings). */
export function toJsonValue(v: HeaderValue): JsonValue {
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64');
  if (Array.isArray(v)) return v.map(toJsonValue);
  if (v !== null && typeof v === 'object') {
    const out: Record<string, JsonValue> = {};
    for (const [k, x] of Object.entries(v)) out[k] = toJsonValue(x);
    return out;
  }
  return v;
}

function bad(message: string): BrokerError {
  return new BrokerError(ErrorCode.badFrame, message);
}
