/**
 * What this client declared and bound, so that it can declare and bind it again on a new
 * connection after a reconnect (a restarted in-memory broker has forgotten everything; a durable
 * one still has its durable queues, and redeclaring them with the same options is a no-op).
 *
 * Only successful, non-passive operations are recorded; deletes and unbinds remove the records.
 * A queue declared with an empty name is server-named: on a new connection it is declared with an
 * empty name again and gets a NEW name, which the record takes over, so bindings that name it
 * follow it (they hold the record, not the string).
 */
import type { HeaderTable } from '../protocol/field-table.js';
import type { ExchangeDeclareOptions, QueueDeclareOptions } from '../protocol/ws-binary-encode.js';

export interface ExchangeRecord {
  readonly name: string;
  readonly type: string;
  readonly options: ExchangeDeclareOptions;
}

export interface QueueRecord {
  /** The queue's current name (changes on reconnect when `serverNamed`). */
  name: string;
  readonly serverNamed: boolean;
  readonly options: QueueDeclareOptions;
}

export interface QueueBindingRecord {
  readonly kind: 'queue';
  /** The record when the queue is one this client declared, so a rename carries over. */
  readonly queue: QueueRecord | string;
  readonly exchange: string;
  readonly routingKey: string;
  readonly args: HeaderTable | undefined;
}

export interface ExchangeBindingRecord {
  readonly kind: 'exchange';
  readonly destination: string;
  readonly source: string;
  readonly routingKey: string;
  readonly args: HeaderTable | undefined;
}

export type BindingRecord = QueueBindingRecord | ExchangeBindingRecord;

/** The result of `declareQueue`: `queue` always reads the latest name (see TopologyRecorder). */
export interface DeclareQueueResult {
  /** The queue's name; for a server-named queue, the name it has on the current connection. */
  readonly queue: string;
  /** Ready messages when it was declared. */
  readonly messageCount: number;
  /** Consumers when it was declared. */
  readonly consumerCount: number;
}

export class QueueDeclaration implements DeclareQueueResult {
  readonly #record: QueueRecord | null;
  readonly #name: string;
  readonly messageCount: number;
  readonly consumerCount: number;

  constructor(record: QueueRecord | null, name: string, messageCount: number, consumerCount: number) {
    this.#record = record;
    this.#name = name;
    this.messageCount = messageCount;
    this.consumerCount = consumerCount;
  }

  get queue(): string {
    return this.#record?.name ?? this.#name;
  }

  toJSON(): { queue: string; messageCount: number; consumerCount: number } {
    return { queue: this.queue, messageCount: this.messageCount, consumerCount: this.consumerCount };
  }
}

export function queueName(ref: QueueRecord | string): string {
  return typeof ref === 'string' ? ref : ref.name;
}

export class TopologyRecorder {
  readonly exchanges = new Map<string, ExchangeRecord>();
  /** By current name. */
  readonly queues = new Map<string, QueueRecord>();
  /**
   * Bindings by identity (bindingKey), in the order they were made: add, remove and the duplicate
   * check are constant time (an array search per binding made 100k bindings take 33 s).
   */
  readonly #bindings = new Map<string, BindingRecord>();
  /** Binding keys by the queue they bind (its record, or its name when this client did not declare it). */
  readonly #byQueue = new Map<QueueRecord | string, Set<string>>();
  /** Binding keys by an exchange they name (source, or destination of an exchange binding). */
  readonly #byExchange = new Map<string, Set<string>>();
  /** Stable ids of queue records, so a binding's key survives the record's renames. */
  readonly #recordIds = new WeakMap<QueueRecord, number>();
  #nextRecordId = 1;

  /** The recorded bindings, in the order they were made (for restore after a reconnect). */
  get bindings(): IterableIterator<BindingRecord> {
    return this.#bindings.values();
  }

  get bindingCount(): number {
    return this.#bindings.size;
  }

  declaredExchange(name: string, type: string, options: ExchangeDeclareOptions): void {
    if (options.passive === true) return;
    this.exchanges.delete(name); // re-insert: replay in the order of the latest declare
    this.exchanges.set(name, { name, type, options: { ...options } });
  }

  deletedExchange(name: string): void {
    this.exchanges.delete(name);
    for (const key of [...(this.#byExchange.get(name) ?? [])]) this.#remove(key);
  }

  /** Records a declare that succeeded as `name`; returns the record (null for passive declares). */
  declaredQueue(requested: string, name: string, options: QueueDeclareOptions): QueueRecord | null {
    if (options.passive === true) return null;
    const existing = this.queues.get(name);
    if (existing !== undefined && !existing.serverNamed) {
      this.queues.delete(name);
    }
    const record: QueueRecord = existing?.serverNamed ? existing : { name, serverNamed: requested === '', options: { ...options } };
    this.queues.set(name, record);
    return record;
  }

  deletedQueue(name: string): void {
    const record = this.queues.get(name);
    this.queues.delete(name);
    for (const ref of record === undefined ? [name] : [record, name]) {
      for (const key of [...(this.#byQueue.get(ref) ?? [])]) this.#remove(key);
    }
  }

  /** A server-named queue got a new name on a new connection. */
  renamedQueue(record: QueueRecord, name: string): void {
    this.queues.delete(record.name);
    record.name = name;
    this.queues.set(name, record);
  }

  boundQueue(queue: string, exchange: string, routingKey: string, args: HeaderTable | undefined): void {
    if (this.#queueBindingKey(queue, exchange, routingKey, args) !== null) return;
    const ref = this.queues.get(queue) ?? queue;
    const key = this.#queueKey(ref, exchange, routingKey, args);
    this.#bindings.set(key, { kind: 'queue', queue: ref, exchange, routingKey, args: copyArgs(args) });
    index(this.#byQueue, ref, key);
    index(this.#byExchange, exchange, key);
  }

  unboundQueue(queue: string, exchange: string, routingKey: string, args: HeaderTable | undefined): void {
    const key = this.#queueBindingKey(queue, exchange, routingKey, args);
    if (key !== null) this.#remove(key);
  }

  boundExchange(destination: string, source: string, routingKey: string, args: HeaderTable | undefined): void {
    const key = exchangeKey(destination, source, routingKey, args);
    if (this.#bindings.has(key)) return;
    this.#bindings.set(key, { kind: 'exchange', destination, source, routingKey, args: copyArgs(args) });
    index(this.#byExchange, source, key);
    index(this.#byExchange, destination, key);
  }

  unboundExchange(destination: string, source: string, routingKey: string, args: HeaderTable | undefined): void {
    this.#remove(exchangeKey(destination, source, routingKey, args));
  }

  /** The key of an existing binding of `queue`, made through its record or its plain name; null if none. */
  #queueBindingKey(queue: string, exchange: string, routingKey: string, args: HeaderTable | undefined): string | null {
    const record = this.queues.get(queue);
    if (record !== undefined) {
      const key = this.#queueKey(record, exchange, routingKey, args);
      if (this.#bindings.has(key)) return key;
    }
    const key = this.#queueKey(queue, exchange, routingKey, args);
    return this.#bindings.has(key) ? key : null;
  }

  #queueKey(ref: QueueRecord | string, exchange: string, routingKey: string, args: HeaderTable | undefined): string {
    let id: string;
    if (typeof ref === 'string') id = `n${ref}`;
    else {
      let n = this.#recordIds.get(ref);
      if (n === undefined) this.#recordIds.set(ref, (n = this.#nextRecordId++));
      id = `r${n}`;
    }
    return `q\u0000${id}\u0000${exchange}\u0000${routingKey}\u0000${argsKey(args)}`;
  }

  #remove(key: string): void {
    const b = this.#bindings.get(key);
    if (b === undefined) return;
    this.#bindings.delete(key);
    if (b.kind === 'queue') {
      unindex(this.#byQueue, b.queue, key);
      unindex(this.#byExchange, b.exchange, key);
    } else {
      unindex(this.#byExchange, b.source, key);
      unindex(this.#byExchange, b.destination, key);
    }
  }
}

function exchangeKey(destination: string, source: string, routingKey: string, args: HeaderTable | undefined): string {
  return `x\u0000${destination}\u0000${source}\u0000${routingKey}\u0000${argsKey(args)}`;
}

function index<K>(map: Map<K, Set<string>>, k: K, key: string): void {
  let set = map.get(k);
  if (set === undefined) map.set(k, (set = new Set()));
  set.add(key);
}

function unindex<K>(map: Map<K, Set<string>>, k: K, key: string): void {
  const set = map.get(k);
  if (set === undefined) return;
  set.delete(key);
  if (set.size === 0) map.delete(k);
}

function copyArgs(args: HeaderTable | undefined): HeaderTable | undefined {
  return args === undefined ? undefined : { ...args };
}

/** Binding arguments compared as the broker compares them: by value (Uint8Arrays by their bytes). */
function argsKey(args: HeaderTable | undefined): string {
  if (args === undefined || Object.keys(args).length === 0) return '{}';
  return JSON.stringify(args, (_k, v: unknown) => (v instanceof Uint8Array ? { bytes: Array.from(v) } : v));
}
