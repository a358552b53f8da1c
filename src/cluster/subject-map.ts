/**
 * AMQP exchanges and routing keys onto NATS subjects, so NATS itself carries the interest
 * between nodes: a node subscribes to the subjects its bindings map to, a publish goes out on
 * the subject of its exchange and key, and NATS forwards it only to nodes with a matching
 * subscription (across its routes, clusters and leaf nodes too).
 *
 * `shardmq.x.<exchange>.<word>.<word>…`: one NATS token per AMQP word (the exchange is always one
 * token, so the key's words start at the fourth). A word of letters,
 * digits, `_` and `-` is its own token; any other word (the empty word, `*`, `>`, `.`-free
 * punctuation, non-ASCII) becomes `~` + its UTF-8 in base64url, so no key can forge a wildcard
 * or a separator. The exchange is one token, encoded the same way.
 *
 * A binding maps exactly where NATS can say the same thing: `*` is `*`, a trailing `#` (zero or
 * more words) is the prefix itself plus `prefix.>`. A `#` followed by more words has no NATS
 * form; its node subscribes to the prefix before the `#` (a superset) and the exact filter is
 * the local routing every arriving message goes through anyway.
 */
import { splitWords } from '../router/topic-matcher.js';

/** The root of every subject the cluster uses (membership, forwarded publishes). */
export const SUBJECT_ROOT = 'shardmq';
const PUBLISH_ROOT = `${SUBJECT_ROOT}.x.`;

const PLAIN_TOKEN = /^[A-Za-z0-9_-]+$/;

/** One AMQP word (or an exchange name) as one NATS subject token. */
export function encodeToken(word: string): string {
  if (word.length > 0 && PLAIN_TOKEN.test(word)) return word;
  return '~' + Buffer.from(word, 'utf8').toString('base64url');
}

/** The inverse of {@link encodeToken}. */
export function decodeToken(token: string): string {
  return token.startsWith('~') ? Buffer.from(token.slice(1), 'base64url').toString('utf8') : token;
}

/** The subject a message published to `exchange` with `routingKey` travels on. */
export function publishSubject(exchange: string, routingKey: string): string {
  let subject = PUBLISH_ROOT + encodeToken(exchange);
  for (const word of splitWords(routingKey)) subject += '.' + encodeToken(word);
  return subject;
}

/** What a node subscribes to for one binding. */
export interface BindingSubjects {
  readonly subjects: readonly string[];
  /** True when the subjects match exactly the keys the binding does (no filtering on arrival needed). */
  readonly exact: boolean;
}

export type BindingExchangeType = 'direct' | 'fanout' | 'topic' | 'headers';

/**
 * The subjects a node with a binding of `pattern` on `exchange` (of `type`) subscribes to.
 * Direct keys are literal (`*` is a word like any other there); fanout and headers exchanges
 * ignore the key, so their bindings take every key of the exchange.
 */
export function bindingSubjects(type: BindingExchangeType, exchange: string, pattern: string): BindingSubjects {
  const base = PUBLISH_ROOT + encodeToken(exchange);
  if (type === 'fanout') return { subjects: [base, base + '.>'], exact: true };
  if (type === 'headers') return { subjects: [base, base + '.>'], exact: false };
  const words = splitWords(pattern);
  if (type === 'direct') return { subjects: [base + words.map((w) => '.' + encodeToken(w)).join('')], exact: true };
  let prefix = base;
  for (let i = 0; i < words.length; i++) {
    const w = words[i];
    if (w === '#') {
      // Only `#`s from here on: the prefix with zero more words, or with one or more.
      const trailing = words.slice(i).every((rest) => rest === '#');
      return { subjects: [prefix, prefix + '.>'], exact: trailing };
    }
    prefix += '.' + (w === '*' ? '*' : encodeToken(w));
  }
  return { subjects: [prefix], exact: true };
}
