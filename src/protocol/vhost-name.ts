/**
 * How a virtual host's objects are named below the edge: every exchange and queue of vhost V other
 * than `/` is known to the topology, the shards, the store and the cluster as `V` + U+001F + its
 * name (its "qualified" name); the objects of `/` keep their bare names. So one name space serves
 * every vhost, the shard map hashes vhost and name together (`shardFor(qualified)`), durable
 * state written before vhosts existed is `/`'s, and `/`'s publish path does no extra work.
 *
 * U+001F (unit separator) is a control character: destinations refuse it already, and
 * {@link qualify} refuses it in every name, so no name in `/` can pose as another vhost's.
 * Clients never see a qualified name: a shard's deliver records name the exchange by its local
 * name (OutboundWriter.deliver), and error messages name the vhost the RabbitMQ way.
 */
import { BrokerError, ErrorCode } from './errors.js';

/** What the layers that qualify names need of a vhost (control/vhosts.ts's Vhost has it). */
export interface VhostScope {
  readonly name: string;
  /** vhostPrefix(name). */
  readonly prefix: string;
  /** Its qualified names as made per message (publish targets), kept flat and reused. */
  readonly names: QualifiedNames;
  /** Its number in ring records (protocol/vhost-numbers.ts); 0: records carry its qualified names. */
  readonly number: number;
}

/** A VhostScope with no state of its own (tests, a deleted vhost's leftovers): unnumbered. */
export function vhostScope(name: string): VhostScope {
  const prefix = vhostPrefix(name);
  return { name, prefix, names: new QualifiedNames(prefix), number: 0 };
}

/**
 * `prefix + name` as a flat string. The concatenation alone stays a cons string, which a ring write
 * reads through and a Map lookup must flatten and hash; a flat one is read as `/`'s names are and
 * caches its hash, so it is what a name made for many messages should be.
 */
export function qualifiedFlat(prefix: string, name: string): string {
  return Buffer.from(prefix + name, 'utf8').toString('utf8');
}

/** Entries a QualifiedNames holds before it starts over. */
const QUALIFIED_NAMES_MAX = 1024;

/**
 * The qualified names one vhost's publishes use, made once each (qualifiedFlat) instead of a
 * concatenation per message. Bounded: a vhost publishing to more distinct names starts over.
 */
export class QualifiedNames {
  readonly #prefix: string;
  readonly #names = new Map<string, string>();

  constructor(prefix: string) {
    this.#prefix = prefix;
  }

  /** `name` qualified (the caller has refused separators in it: qualify(), or a parsed destination). */
  of(name: string): string {
    if (this.#prefix.length === 0) return name;
    let qualified = this.#names.get(name);
    if (qualified === undefined) {
      if (this.#names.size >= QUALIFIED_NAMES_MAX) this.#names.clear();
      qualified = qualifiedFlat(this.#prefix, name);
      this.#names.set(name, qualified);
    }
    return qualified;
  }
}

/** The vhost every broker has and every request without a vhost uses. */
export const DEFAULT_VHOST = '/';

/** Between a vhost's name and an object's name in a qualified name. */
export const VHOST_SEPARATOR = '\u001f';

/** What a vhost's qualified names start with: '' for `/`, else the name and the separator. */
export function vhostPrefix(vhost: string): string {
  return vhost === DEFAULT_VHOST ? '' : vhost + VHOST_SEPARATOR;
}

/**
 * The qualified name of `name` in the vhost whose prefix is `prefix`. Throws (406
 * precondition_failed) for a name holding the separator, in every vhost: one in `/` would
 * otherwise name another vhost's object. No closure, no allocation for `/`: AMQP publishes call
 * it once per message.
 */
export function qualify(prefix: string, name: string): string {
  if (name.indexOf(VHOST_SEPARATOR) >= 0) {
    throw new BrokerError(ErrorCode.preconditionFailed, `name ${JSON.stringify(name)} holds the control character U+001F`);
  }
  return prefix.length === 0 ? name : prefix + name;
}

/** The vhost a qualified name belongs to. */
export function vhostOf(qualified: string): string {
  const sep = qualified.indexOf(VHOST_SEPARATOR);
  return sep < 0 ? DEFAULT_VHOST : qualified.slice(0, sep);
}

/** The prefix of the vhost a qualified name belongs to ('' for `/`). */
export function prefixOf(qualified: string): string {
  const sep = qualified.indexOf(VHOST_SEPARATOR);
  return sep < 0 ? '' : qualified.slice(0, sep + 1);
}

/** A qualified name as its vhost's clients name it. */
export function localName(qualified: string): string {
  const sep = qualified.indexOf(VHOST_SEPARATOR);
  return sep < 0 ? qualified : qualified.slice(sep + 1);
}

/** RabbitMQ's wording for an object in errors: `queue 'orders' in vhost 'staging'`. */
export function describeIn(kind: 'queue' | 'exchange', qualified: string): string {
  return `${kind} '${localName(qualified)}' in vhost '${vhostOf(qualified)}'`;
}

/** Longest vhost name, in UTF-8 bytes (an AMQP shortstr, as connection.open carries it). */
export const MAX_VHOST_BYTES = 255;

/** Why `name` cannot name a vhost, or null when it can. */
export function vhostNameProblem(name: string): string | null {
  if (name.length === 0) return 'a vhost name must not be empty';
  if (Buffer.byteLength(name) > MAX_VHOST_BYTES) return `a vhost name is at most ${MAX_VHOST_BYTES} bytes`;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return 'a vhost name must not hold control characters';
  }
  return null;
}
