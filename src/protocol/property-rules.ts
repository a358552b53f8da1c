/**
 * What a message's AMQP properties may hold, checked once, the same way for every publish path
 * (HTTP headers, JSON `properties`, the binary properties block, and any later protocol): a
 * message that breaks a rule is refused with `precondition_failed` (HTTP 406, AMQP's reply code)
 * and not accepted, as RabbitMQ refuses it. Structure (string lengths, header table types, depth
 * and entries) is checked by the codecs in `properties.ts`; these are the value rules on top.
 */
import { BrokerError, ErrorCode } from './errors.js';
import { encodeProperties, type MessageProperties } from './properties.js';

/** The longest per-message TTL RabbitMQ takes in `expiration`, in ms (2^32 - 1). */
export const MAX_EXPIRATION_MS = 0xffff_ffff;

const DECIMAL = /^[0-9]+$/;

function refuse(message: string): BrokerError {
  return new BrokerError(ErrorCode.preconditionFailed, message);
}

/** `expiration`: a non-negative decimal integer of milliseconds, at most {@link MAX_EXPIRATION_MS}. */
export function checkExpiration(value: string): void {
  // Ten digits already exceed the maximum's length test below; longer strings cannot be in range.
  if (!DECIMAL.test(value) || value.length > 10 || Number(value) > MAX_EXPIRATION_MS) {
    throw refuse(`invalid expiration ${JSON.stringify(value.slice(0, 40))}: a whole number of milliseconds from 0 to ${MAX_EXPIRATION_MS}`);
  }
}

/** `priority`: an integer from 0 to 255. */
export function checkPriority(value: number): void {
  if (!Number.isInteger(value) || value < 0 || value > 255) throw refuse(`invalid priority ${value}: an integer from 0 to 255`);
}

/** `delivery_mode`: 1 (transient) or 2 (persistent). */
export function checkDeliveryMode(value: number): void {
  if (value !== 1 && value !== 2) throw refuse(`invalid delivery mode ${value}: 1 (transient) or 2 (persistent)`);
}

/** A priority written as text (an HTTP header): decimal digits only, so "", "0x10" and "1e2" are refused. */
export function priorityFromText(text: string): number {
  if (!DECIMAL.test(text) || text.length > 3)
    throw refuse(`invalid priority ${JSON.stringify(text.slice(0, 40))}: an integer from 0 to 255, in decimal`);
  const n = Number(text);
  checkPriority(n);
  return n;
}

/** A delivery mode written as text: "1" or "2". */
export function deliveryModeFromText(text: string): 1 | 2 {
  if (text !== '1' && text !== '2')
    throw refuse(`invalid delivery mode ${JSON.stringify(text.slice(0, 40))}: 1 (transient) or 2 (persistent)`);
  return text === '1' ? 1 : 2;
}

/** Applies every value rule to the properties present. */
export function checkMessageProperties(p: MessageProperties): void {
  if (p.expiration !== undefined) checkExpiration(p.expiration);
  if (p.priority !== undefined) checkPriority(p.priority);
  if (p.deliveryMode !== undefined) checkDeliveryMode(p.deliveryMode);
}

/**
 * Checks and encodes properties built from text (HTTP headers, JSON): the value rules, then the
 * codec's structural limits (header table types, depth, entries, string lengths), whose
 * RangeError becomes the same `precondition_failed` answer.
 */
export function encodeCheckedProperties(p: MessageProperties): Uint8Array {
  checkMessageProperties(p);
  try {
    return encodeProperties(p);
  } catch (err) {
    if (err instanceof RangeError || err instanceof TypeError) throw refuse(`invalid properties: ${err.message}`);
    throw err;
  }
}
