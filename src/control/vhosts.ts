/**
 * The broker's virtual hosts: which exist, their limits, and what each holds right now.
 *
 * A vhost is a name space (its objects' names are qualified by its prefix: protocol/vhost-name.ts),
 * a unit of permissions (auth.ts gives each user rules per vhost) and a unit of limits, as
 * RabbitMQ's `max-connections` and `max-queues`, plus `max-queued-bytes`, a budget for the bytes of
 * messages waiting in its queues. `/` always exists and cannot be deleted.
 *
 * Under --data-dir the set of vhosts and their limits live in `<data-dir>/vhosts.json`, rewritten
 * whole (temp file, fsync, rename) on every change; what a vhost holds lives in the shards' logs
 * under its qualified names, so a restart finds both again.
 */
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { nodeFs } from '../store/fs-seam.js';
import { BrokerError, ErrorCode } from '../protocol/errors.js';
import type { VhostNumbering } from '../protocol/vhost-numbers.js';
import { DEFAULT_VHOST, QualifiedNames, vhostNameProblem, vhostPrefix, type VhostScope } from '../protocol/vhost-name.js';

/** A vhost's limits; null is none. */
export interface VhostLimits {
  readonly maxConnections: number | null;
  readonly maxQueues: number | null;
  /** Bytes of ready messages its queues may hold before publishes to it are refused. */
  readonly maxQueuedBytes: number | null;
}

export const NO_LIMITS: VhostLimits = Object.freeze({ maxConnections: null, maxQueues: null, maxQueuedBytes: null });

/** The limit names as the API and vhosts.json spell them (RabbitMQ's, plus max-queued-bytes). */
const LIMIT_KEYS = [
  ['max-connections', 'maxConnections'],
  ['max-queues', 'maxQueues'],
  ['max-queued-bytes', 'maxQueuedBytes'],
] as const;

export class Vhost implements VhostScope {
  readonly name: string;
  readonly prefix: string;
  readonly names: QualifiedNames;
  /** Its number in ring records (protocol/vhost-numbers.ts): 0 for `/`, or when none was left. */
  readonly number: number;
  description: string;
  limits: VhostLimits;
  /** Open connections (WebSocket, AMQP) in this vhost. */
  connections = 0;
  /** Ready bytes in its queues at the last sample (only sampled with a max-queued-bytes). */
  queuedBytes = 0;
  /** Publishes are refused while its queues hold more than max-queued-bytes. */
  overBudget = false;
  /** Set once deleted: a connection still holding it is being closed. */
  deleted = false;

  constructor(name: string, description: string, limits: VhostLimits, number = 0) {
    this.name = name;
    this.prefix = vhostPrefix(name);
    this.names = new QualifiedNames(this.prefix);
    this.number = number;
    this.description = description;
    this.limits = limits;
  }

  /** The refusal of a publish while the vhost is over its byte budget; null when it may publish. */
  publishRefusal(): BrokerError | null {
    if (!this.overBudget) return null;
    return new BrokerError(
      ErrorCode.preconditionFailed,
      `vhost '${this.name}' holds ${this.queuedBytes} bytes of queued messages, over its max-queued-bytes ${this.limits.maxQueuedBytes}: consume or purge before publishing more`,
    );
  }

  /** The refusal of one more connection, or null when it is admitted. */
  connectionRefusal(): BrokerError | null {
    const max = this.limits.maxConnections;
    if (max === null || this.connections < max) return null;
    return new BrokerError(ErrorCode.accessRefused, `connection limit (${max}) is reached for vhost '${this.name}' (max-connections)`);
  }

  /** RabbitMQ's limit object: only the limits that are set. */
  limitsJson(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [key, field] of LIMIT_KEYS) {
      const v = this.limits[field];
      if (v !== null) out[key] = v;
    }
    return out;
  }
}

/** Parses `{"max-connections": n, ...}` (absent or -1 is none, as RabbitMQ's -1). */
export function parseLimits(body: unknown, base: VhostLimits = NO_LIMITS): VhostLimits {
  if (body === undefined || body === null) return base;
  if (typeof body !== 'object' || Array.isArray(body)) throw new BrokerError(ErrorCode.badRequest, 'limits must be an object');
  const o = body as Record<string, unknown>;
  const known = new Set<string>(LIMIT_KEYS.map(([k]) => k));
  for (const k of Object.keys(o)) {
    if (!known.has(k)) throw new BrokerError(ErrorCode.badRequest, `unknown vhost limit '${k}' (known: ${[...known].join(', ')})`);
  }
  const out: Record<string, number | null> = { ...base };
  for (const [key, field] of LIMIT_KEYS) {
    const v = o[key];
    if (v === undefined) continue;
    if (v === -1 || v === null) out[field] = null;
    else if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) out[field] = v;
    else throw new BrokerError(ErrorCode.badRequest, `${key} must be a non-negative integer, or -1 for none (got ${JSON.stringify(v)})`);
  }
  return out as unknown as VhostLimits;
}

export class Vhosts {
  readonly #byName = new Map<string, Vhost>();
  readonly #byPrefix = new Map<string, Vhost>();
  readonly #file: string | null;
  readonly #numbering: VhostNumbering | null;

  /**
   * `dataDir` null: vhosts live in memory only (as everything else does without --data-dir).
   * `numbering`: numbers each vhost for the shards' ring records; null: none is numbered.
   */
  constructor(dataDir: string | null, numbering: VhostNumbering | null = null) {
    this.#file = dataDir === null ? null : join(dataDir, 'vhosts.json');
    this.#numbering = numbering;
    this.#add(new Vhost(DEFAULT_VHOST, 'the default vhost', NO_LIMITS));
    if (this.#file !== null && existsSync(this.#file)) this.#load(this.#file);
  }

  get(name: string): Vhost | undefined {
    return this.#byName.get(name);
  }

  /** The vhost whose qualified names start with `prefix`. */
  byPrefix(prefix: string): Vhost | undefined {
    return this.#byPrefix.get(prefix);
  }

  /** Every vhost, `/` first, then by name. */
  list(): Vhost[] {
    return [...this.#byName.values()].sort((a, b) =>
      a.name === DEFAULT_VHOST ? -1 : b.name === DEFAULT_VHOST ? 1 : a.name < b.name ? -1 : 1,
    );
  }

  get size(): number {
    return this.#byName.size;
  }

  /** PUT: creates the vhost, or updates its description and limits. */
  put(name: string, description: string | undefined, limits: VhostLimits | undefined): { vhost: Vhost; created: boolean } {
    const problem = vhostNameProblem(name);
    if (problem !== null) throw new BrokerError(ErrorCode.badRequest, `${problem} (got ${JSON.stringify(name)})`);
    const existing = this.#byName.get(name);
    if (existing !== undefined) {
      if (description !== undefined) existing.description = description;
      if (limits !== undefined) existing.limits = limits;
      if (existing.limits.maxQueuedBytes === null) existing.overBudget = false;
      this.#save();
      return { vhost: existing, created: false };
    }
    const vhost = this.#create(name, description ?? '', limits ?? NO_LIMITS);
    this.#add(vhost);
    this.#save();
    return { vhost, created: true };
  }

  /**
   * Forgets the vhost (durably, first: a crash while its contents are deleted finishes the
   * deletion at the next start). The caller closes its connections and deletes its objects.
   */
  remove(name: string): Vhost {
    if (name === DEFAULT_VHOST) throw new BrokerError(ErrorCode.accessRefused, "the vhost '/' cannot be deleted");
    const vhost = this.#byName.get(name);
    if (vhost === undefined) throw new BrokerError(ErrorCode.notFound, `no vhost '${name}'`);
    this.#byName.delete(name);
    this.#byPrefix.delete(vhost.prefix);
    vhost.deleted = true;
    this.#save();
    return vhost;
  }

  #create(name: string, description: string, limits: VhostLimits): Vhost {
    return new Vhost(name, description, limits, this.#numbering?.assign(vhostPrefix(name)) ?? 0);
  }

  #add(vhost: Vhost): void {
    this.#byName.set(vhost.name, vhost);
    this.#byPrefix.set(vhost.prefix, vhost);
  }

  #load(file: string): void {
    let doc: unknown;
    try {
      doc = JSON.parse(readFileSync(file, 'utf8'));
    } catch (err) {
      throw new Error(`${file}: ${(err as Error).message}`);
    }
    const list = (doc as { vhosts?: unknown }).vhosts;
    if (!Array.isArray(list)) throw new Error(`${file}: expected {"vhosts": [...]}`);
    for (const entry of list) {
      const o = entry as { name?: unknown; description?: unknown; limits?: unknown };
      if (typeof o.name !== 'string' || vhostNameProblem(o.name) !== null) throw new Error(`${file}: bad vhost ${JSON.stringify(entry)}`);
      const limits = parseLimits(o.limits);
      const description = typeof o.description === 'string' ? o.description : '';
      const existing = this.#byName.get(o.name);
      if (existing !== undefined) {
        existing.limits = limits;
        existing.description = description;
      } else this.#add(this.#create(o.name, description, limits));
    }
  }

  #save(): void {
    if (this.#file === null) return;
    const doc = { vhosts: this.list().map((v) => ({ name: v.name, description: v.description, limits: v.limitsJson() })) };
    mkdirSync(dirname(this.#file), { recursive: true });
    const temp = `${this.#file}.tmp`;
    nodeFs.writeFileDurableSync(temp, Buffer.from(JSON.stringify(doc, null, 2) + '\n'));
    renameSync(temp, this.#file);
    // The rename itself is durable only once the directory is.
    const dir = openSync(dirname(this.#file), 'r');
    try {
      fsyncSync(dir);
    } finally {
      closeSync(dir);
    }
  }
}
