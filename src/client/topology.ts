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
  bindings: BindingRecord[] = [];

  declaredExchange(name: string, type: string, options: ExchangeDeclareOptions): void {
    if (options.passive === true) return;
    this.exchanges.delete(name); // re-insert: replay in the order of the latest declare
    this.exchanges.set(name, { name, type, options: { ...options } });
  }

  deletedExchange(name: string): void {
    this.exchanges.delete(name);
    this.bindings = this.bindings.filter((b) => (b.kind === 'queue' ? b.exchange !== name : b.source !== name && b.destination !== name));
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
    this.queues.delete(name);
    this.bindings = this.bindings.filter((b) => b.kind !== 'queue' || queueName(b.queue) !== name);
  }

  /** A server-named queue got a new name on a new connection. */
  renamedQueue(record: QueueRecord, name: string): void {
    this.queues.delete(record.name);
    record.name = name;
    this.queues.set(name, record);
  }

  boundQueue(queue: string, exchange: string, routingKey: string, args: HeaderTable | undefined): void {
    if (this.#findQueueBinding(queue, exchange, routingKey, args) >= 0) return;
    this.bindings.push({ kind: 'queue', queue: this.queues.get(queue) ?? queue, exchange, routingKey, args: copyArgs(args) });
  }

  unboundQueue(queue: string, exchange: string, routingKey: string, args: HeaderTable | undefined): void {
    const i = this.#findQueueBinding(queue, exchange, routingKey, args);
    if (i >= 0) this.bindings.splice(i, 1);
  }

  boundExchange(destination: string, source: string, routingKey: string, args: HeaderTable | undefined): void {
    if (this.#findExchangeBinding(destination, source, routingKey, args) >= 0) return;
    this.bindings.push({ kind: 'exchange', destination, source, routingKey, args: copyArgs(args) });
  }

  unboundExchange(destination: string, source: string, routingKey: string, args: HeaderTable | undefined): void {
    const i = this.#findExchangeBinding(destination, source, routingKey, args);
    if (i >= 0) this.bindings.splice(i, 1);
  }

  #findQueueBinding(queue: string, exchange: string, routingKey: string, args: HeaderTable | undefined): number {
    const a = argsKey(args);
    return this.bindings.findIndex(
      (b) =>
        b.kind === 'queue' &&
        queueName(b.queue) === queue &&
        b.exchange === exchange &&
        b.routingKey === routingKey &&
        argsKey(b.args) === a,
    );
  }

  #findExchangeBinding(destination: string, source: string, routingKey: string, args: HeaderTable | undefined): number {
    const a = argsKey(args);
    return this.bindings.findIndex(
      (b) =>
        b.kind === 'exchange' &&
        b.destination === destination &&
        b.source === source &&
        b.routingKey === routingKey &&
        argsKey(b.args) === a,
    );
  }
}

function copyArgs(args: HeaderTable | undefined): HeaderTable | undefined {
  return args === undefined ? undefined : { ...args };
}

/** Binding arguments compared as the broker compares them: by value (Uint8Arrays by their bytes). */
function argsKey(args: HeaderTable | undefined): string {
  if (args === undefined || Object.keys(args).length === 0) return '{}';
  return JSON.stringify(args, (_k, v: unknown) => (v instanceof Uint8Array ? { bytes: Array.from(v) } : v));
}
