/**
 * Dead-lettering, the RabbitMQ way: the copy of a message that leaves a queue for its
 * dead-letter exchange, with the death recorded in its headers.
 *
 * The queue does not route; it hands this copy to its owner (MessageQueue's onDeadLetter), which
 * publishes it to `copy.exchange` with `copy.routingKey`. What the copy carries (RabbitMQ 3.13+,
 * rabbit_dead_letter / mc:record_death / mc_amqpl):
 *
 *   - `x-death`: an array of tables, most recent death first. One entry per (queue, reason):
 *       { count, reason, queue, time, exchange, 'routing-keys', 'original-expiration'? }
 *     `time` is an AMQP timestamp (seconds) of the FIRST such death, `exchange` and
 *     'routing-keys' are where the message had been published when it died there (its routing key
 *     plus its CC header keys; BCC never appears), 'original-expiration' is its per-message TTL
 *     property if it had one. Dying again in the same queue for the same reason increments
 *     `count` and moves that entry to the front; its other fields stay.
 *   - `x-first-death-reason` / `-queue` / `-exchange`: set by the first death, never changed.
 *   - `x-last-death-reason` / `-queue` / `-exchange` (RabbitMQ 3.13+): the latest death.
 *   - no `expiration` property, so it does not expire again wherever it is routed.
 *
 * Difference from RabbitMQ: RabbitMQ 3.13+ keeps deaths in internal annotations and ignores an
 * x-death header set by a publisher; here deaths live in the headers, so a message re-published
 * by a client with its x-death header carries on counting from it (RabbitMQ ≤ 3.12 behaviour).
 */
import { localName, prefixOf } from '../protocol/vhost-name.js';
import type { QueueArguments } from './queue-arguments.js';
import type { DeadLetterReason, HeaderValue, MessageProperties, StoredMessage } from './types.js';

/** Where a dead-lettered message is republished. */
export interface DeadLetterTarget {
  readonly exchange: string;
  readonly routingKey: string;
}

/** One x-death table as this module writes it. */
export interface XDeathEntry {
  count: number;
  reason: DeadLetterReason;
  queue: string;
  /** AMQP timestamp: seconds. */
  time: number;
  exchange: string;
  'routing-keys': string[];
  'original-expiration'?: string;
}

type Table = { [k: string]: HeaderValue };

/**
 * The queue's dead-letter exchange and the routing key to republish `message` with: the queue's
 * x-dead-letter-routing-key if set, else the message's own. null when the queue has no DLX (the
 * message is then simply dropped).
 */
export function deadLetterTarget(args: QueueArguments, message: StoredMessage, queueName = ''): DeadLetterTarget | null {
  if (args.deadLetterExchange === undefined) return null;
  // The argument names an exchange of the queue's own vhost (qualified names: vhost-name.ts).
  const exchange = prefixOf(queueName) + args.deadLetterExchange;
  return { exchange, routingKey: args.deadLetterRoutingKey ?? message.routingKey };
}

/**
 * A copy of `message` dead-lettered from `queueName` for `reason` at `now` (ms): headers updated
 * as described above, `expiration` removed, expiresAt Infinity, redelivered false, deliveryCount
 * 0. With `target` the copy is addressed to it (exchange and routing key to republish with);
 * without, it keeps the message's own. The payload bytes are shared (nothing mutates them); the
 * original message and its properties are left untouched.
 */
export function deadLetterMessage(
  message: StoredMessage,
  reason: DeadLetterReason,
  queueName: string,
  now: number,
  target?: DeadLetterTarget,
): StoredMessage {
  // Headers name the queue and exchange as the vhost's clients do, not by their qualified names.
  queueName = localName(queueName);
  const fromExchange = localName(message.exchange);
  const properties: MessageProperties = message.properties === null ? {} : { ...message.properties };
  const oldHeaders = properties.headers ?? {};
  const headers: Record<string, HeaderValue> = { ...oldHeaders };

  const previous = Array.isArray(oldHeaders['x-death']) ? (oldHeaders['x-death'] as HeaderValue[]) : [];
  const deaths: HeaderValue[] = [];
  let existing: Table | null = null;
  for (const entry of previous) {
    if (existing === null && isTable(entry) && entry.queue === queueName && entry.reason === reason) {
      existing = entry;
      continue;
    }
    deaths.push(entry);
  }
  let death: Table;
  if (existing !== null) {
    // Same queue and reason: count it and move it to the front; the rest of the entry stays.
    const count = typeof existing.count === 'number' ? existing.count + 1 : 1;
    death = { ...existing, count };
  } else {
    const entry: XDeathEntry = {
      count: 1,
      reason,
      queue: queueName,
      time: Math.floor(now / 1000),
      exchange: fromExchange,
      'routing-keys': [message.routingKey, ...ccKeys(oldHeaders)],
    };
    if (properties.expiration !== undefined) entry['original-expiration'] = properties.expiration;
    death = entry as unknown as Table;
  }
  deaths.unshift(death);
  headers['x-death'] = deaths;

  if (headers['x-first-death-reason'] === undefined) {
    headers['x-first-death-reason'] = reason;
    headers['x-first-death-queue'] = queueName;
    headers['x-first-death-exchange'] = fromExchange;
  }
  headers['x-last-death-reason'] = reason;
  headers['x-last-death-queue'] = queueName;
  headers['x-last-death-exchange'] = fromExchange;

  properties.headers = headers;
  delete properties.expiration;

  return {
    seq: message.seq,
    routingKey: target?.routingKey ?? message.routingKey,
    payload: message.payload,
    exchange: target?.exchange ?? message.exchange,
    properties,
    expiresAt: Infinity,
    redelivered: false,
    deliveryCount: 0,
  };
}

/**
 * Would delivering dead-lettered `message` to `targetQueue` close a dead-letter cycle that RabbitMQ
 * drops? True when the message already died in `targetQueue` and no death since then (that one
 * included) was a client rejection: a fully automatic loop (expiry or length limits bouncing it
 * around) that would otherwise never end. The router should skip such a queue (RabbitMQ logs it).
 */
export function isDeadLetterCycle(message: StoredMessage, targetQueue: string): boolean {
  const deaths = message.properties?.headers?.['x-death'];
  if (!Array.isArray(deaths)) return false;
  targetQueue = localName(targetQueue);
  for (const entry of deaths) {
    if (!isTable(entry)) continue;
    if (entry.reason === 'rejected') return false;
    if (entry.queue === targetQueue) return true;
  }
  return false;
}

/** The x-death entries of a message, most recent first (for inspection and tests). */
export function xDeathOf(message: StoredMessage): XDeathEntry[] {
  const deaths = message.properties?.headers?.['x-death'];
  return Array.isArray(deaths) ? (deaths.filter(isTable) as unknown as XDeathEntry[]) : [];
}

function isTable(value: HeaderValue): value is Table {
  // ArrayBuffer views excluded so that a byte-array header value (if HeaderValue grows one) is never read as a table.
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !ArrayBuffer.isView(value);
}

/** String keys of the CC header (RabbitMQ sender-selected distribution): they count as routing keys. */
function ccKeys(headers: Record<string, HeaderValue>): string[] {
  const cc = headers.CC;
  if (typeof cc === 'string') return [cc];
  if (!Array.isArray(cc)) return [];
  return cc.filter((key): key is string => typeof key === 'string');
}
