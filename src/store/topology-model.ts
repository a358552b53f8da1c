/**
 * The compacted topology of one shard, as the store keeps it: what replaying the topology log would
 * leave, with nothing that was undone. The log store keeps one in memory, writes it as the snapshot
 * at the start of every segment, and returns it from recovery.
 *
 * Semantics mirror `src/router/exchange-registry.ts` and `ShardCore` for ops that SUCCEEDED there
 * (the shard logs only those), so that replaying `ops()` rebuilds the same state:
 * - declareQueue / declareExchange: the first declaration of a name wins (a successful redeclare
 *   changes nothing in RabbitMQ).
 * - deleteQueue: drops the queue and its bindings. deleteExchange: drops the exchange and its
 *   bindings as source and as destination.
 * - bindQueue / bindExchange: a set keyed by (source, destination, routing key, arguments), arguments
 *   compared as tables (key order ignored). A binding is kept only if everything it names exists in
 *   the model (`amq.*` exchanges always do): a binding that could not be replayed is not kept.
 * - An auto-delete exchange is deleted when its last binding as source goes (unbind, queue deletion,
 *   deletion of a destination exchange), cascading, as the registry does.
 *
 * Replay order of `ops()`: exchanges, then queues (each in first-declaration order), then bindings
 * (in binding order). Declarations never refer to each other, so this order always replays.
 *
 * Cost: every op is O(1) plus the bindings it removes (indexes by source, queue and destination).
 */
import type { TopologyOp } from './store.js';
import { localName } from '../protocol/vhost-name.js';

/** Exchanges every vhost has without declaring them (RabbitMQ's predeclared `amq.*`), by local name. */
const PREDECLARED_PREFIX = 'amq.';

/** The ops the store understands; anything else is refused. */
export const TOPOLOGY_OPS = [
  'declareQueue',
  'deleteQueue',
  'declareExchange',
  'deleteExchange',
  'bindQueue',
  'unbindQueue',
  'bindExchange',
  'unbindExchange',
] as const;

const KNOWN = new Set<string>(TOPOLOGY_OPS);

/** The string fields each op must carry for compaction. */
const REQUIRED: Readonly<Record<string, readonly string[]>> = {
  declareQueue: ['name'],
  deleteQueue: ['name'],
  declareExchange: ['name'],
  deleteExchange: ['name'],
  bindQueue: ['exchange', 'queue', 'routingKey'],
  unbindQueue: ['exchange', 'queue', 'routingKey'],
  bindExchange: ['destination', 'source', 'routingKey'],
  unbindExchange: ['destination', 'source', 'routingKey'],
};

/** Throws a TypeError naming the problem unless `op` is a topology op the store can compact. */
export function checkTopologyOp(op: TopologyOp): void {
  if (op === null || typeof op !== 'object' || typeof op.op !== 'string') {
    throw new TypeError('topology op must be an object with a string "op"');
  }
  if (!KNOWN.has(op.op)) {
    const hint = op.op === 'purgeQueue' ? ' (log a purge as removes of the purged messages)' : '';
    throw new TypeError(`unknown topology op '${op.op}'${hint}; expected one of ${TOPOLOGY_OPS.join(', ')}`);
  }
  for (const field of REQUIRED[op.op]) {
    if (typeof op[field] !== 'string') throw new TypeError(`topology op '${op.op}' needs a string '${field}'`);
  }
}

interface Binding {
  readonly op: TopologyOp;
  /** The exchange the binding routes from. */
  readonly source: string;
  /** Queue name (queue binding) or exchange name (exchange-to-exchange binding). */
  readonly destination: string;
  readonly toQueue: boolean;
}

export class TopologyModel {
  readonly #exchanges = new Map<string, TopologyOp>();
  readonly #queues = new Map<string, TopologyOp>();
  /** key → binding, in binding order. */
  readonly #bindings = new Map<string, Binding>();
  /** exchange → keys of the bindings it is the source of. */
  readonly #bySource = new Map<string, Set<string>>();
  /** queue → keys of the bindings into it. */
  readonly #byQueue = new Map<string, Set<string>>();
  /** exchange → keys of the exchange-to-exchange bindings into it. */
  readonly #byDestinationExchange = new Map<string, Set<string>>();

  /** A model that replays `ops` (e.g. a snapshot). Each op is checked. */
  static from(ops: readonly TopologyOp[]): TopologyModel {
    const model = new TopologyModel();
    for (const op of ops) model.apply(op);
    return model;
  }

  get queueCount(): number {
    return this.#queues.size;
  }

  hasQueue(name: string): boolean {
    return this.#queues.has(name);
  }

  /**
   * Applies one op (checked with {@link checkTopologyOp}). Returns true when it was a deleteQueue
   * of a queue the model had: the caller then drops that queue's messages.
   */
  apply(op: TopologyOp): boolean {
    checkTopologyOp(op);
    const s = op as Record<string, string> & TopologyOp;
    switch (op.op) {
      case 'declareQueue':
        if (!this.#queues.has(s.name)) this.#queues.set(s.name, op);
        return false;
      case 'deleteQueue': {
        if (!this.#queues.delete(s.name)) return false;
        const candidates: string[] = [];
        this.#unbindAll(this.#byQueue.get(s.name), candidates);
        this.#autoDelete(candidates);
        return true;
      }
      case 'declareExchange':
        if (!this.#exchanges.has(s.name)) this.#exchanges.set(s.name, op);
        return false;
      case 'deleteExchange': {
        if (!this.#exchanges.has(s.name)) return false;
        const candidates: string[] = [];
        this.#destroyExchange(s.name, candidates);
        this.#autoDelete(candidates);
        return false;
      }
      case 'bindQueue':
        if (this.#queues.has(s.queue) && this.#exchangeExists(s.exchange)) {
          this.#bind(bindingKey(true, s.exchange, s.queue, s.routingKey, op.arguments), op, s.exchange, s.queue, true);
        }
        return false;
      case 'bindExchange':
        if (this.#exchangeExists(s.source) && this.#exchangeExists(s.destination)) {
          this.#bind(bindingKey(false, s.source, s.destination, s.routingKey, op.arguments), op, s.source, s.destination, false);
        }
        return false;
      case 'unbindQueue':
        this.#unbind(bindingKey(true, s.exchange, s.queue, s.routingKey, op.arguments));
        return false;
      case 'unbindExchange':
        this.#unbind(bindingKey(false, s.source, s.destination, s.routingKey, op.arguments));
        return false;
      default:
        return false; // unreachable: checkTopologyOp refused it
    }
  }

  /** The compacted topology in replay order (a fresh array of the logged op objects). */
  ops(): TopologyOp[] {
    const out: TopologyOp[] = [];
    for (const op of this.#exchanges.values()) out.push(op);
    for (const op of this.#queues.values()) out.push(op);
    for (const b of this.#bindings.values()) out.push(b.op);
    return out;
  }

  #exchangeExists(name: string): boolean {
    return this.#exchanges.has(name) || localName(name).startsWith(PREDECLARED_PREFIX);
  }

  #bind(key: string, op: TopologyOp, source: string, destination: string, toQueue: boolean): void {
    if (this.#bindings.has(key)) return;
    this.#bindings.set(key, { op, source, destination, toQueue });
    addTo(this.#bySource, source, key);
    addTo(toQueue ? this.#byQueue : this.#byDestinationExchange, destination, key);
  }

  #unbind(key: string): void {
    const candidates: string[] = [];
    this.#unbindAll([key], candidates);
    this.#autoDelete(candidates);
  }

  /** Removes the bindings `keys` (a live set may be passed: it is copied); their sources become auto-delete candidates. */
  #unbindAll(keys: Iterable<string> | undefined, candidates: string[]): void {
    if (keys === undefined) return;
    for (const key of [...keys]) {
      const b = this.#bindings.get(key);
      if (b === undefined) continue;
      this.#bindings.delete(key);
      removeFrom(this.#bySource, b.source, key);
      removeFrom(b.toQueue ? this.#byQueue : this.#byDestinationExchange, b.destination, key);
      candidates.push(b.source);
    }
  }

  #destroyExchange(name: string, candidates: string[]): void {
    this.#exchanges.delete(name);
    this.#unbindAll(this.#bySource.get(name), candidates);
    this.#unbindAll(this.#byDestinationExchange.get(name), candidates);
  }

  #autoDelete(candidates: string[]): void {
    while (candidates.length > 0) {
      const name = candidates.pop()!;
      const decl = this.#exchanges.get(name);
      if (decl === undefined || decl.autoDelete !== true || this.#bySource.has(name)) continue;
      this.#destroyExchange(name, candidates);
    }
  }
}

function addTo(index: Map<string, Set<string>>, name: string, key: string): void {
  let set = index.get(name);
  if (set === undefined) {
    set = new Set();
    index.set(name, set);
  }
  set.add(key);
}

function removeFrom(index: Map<string, Set<string>>, name: string, key: string): void {
  const set = index.get(name);
  if (set === undefined) return;
  set.delete(key);
  if (set.size === 0) index.delete(name);
}

function bindingKey(toQueue: boolean, source: string, destination: string, routingKey: string, args: unknown): string {
  return JSON.stringify([toQueue ? 'q' : 'x', source, destination, routingKey]) + canonicalJson(args ?? {});
}

/** JSON with object keys sorted, so equal tables give equal strings whatever their key order. */
function canonicalJson(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null';
  if (Array.isArray(v)) return '[' + v.map(canonicalJson).join(',') + ']';
  const table = v as Record<string, unknown>;
  const keys = Object.keys(table).sort();
  let out = '{';
  for (let i = 0; i < keys.length; i++) {
    if (i > 0) out += ',';
    out += JSON.stringify(keys[i]) + ':' + canonicalJson(table[keys[i]]);
  }
  return out + '}';
}
