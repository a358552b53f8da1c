/**
 * Who may do what. Off by default (loopback-only broker); with `--auth-token` one token
 * grants everything; with `--users-file` each user has a token and destination patterns
 * for publish and subscribe, plus whether it may change the topology. The same rules
 * apply over HTTP, WebSocket (JSON and binary) and any later protocol.
 *
 * Users file (JSON):
 *   {"users":[{"name":"sensor-7","token":"…","publish":["/topic/sensors.#"],"subscribe":[],"manage":false,"monitor":false}]}
 * Those rules are the user's in the vhost `/`. Rules per vhost go under `vhosts`:
 *   {"name":"team-b","token":"…","vhosts":{"staging":{"publish":["#"],"subscribe":["#"],"manage":true}}}
 * A user has no right at all in a vhost it has no rules for: it cannot connect to it (RabbitMQ's
 * "access to vhost refused"). A user with `vhosts` and no top-level rules has none in `/`.
 * `monitor` lets a user read the whole broker's state (/v1/stats, /metrics: every queue name and
 * connection); `manage` implies it. Without it a user sees only its own connections (/v1/me).
 * A pattern is a destination prefix (/topic/, /queue/, /exchange/<x>/) plus an AMQP topic
 * pattern over the rest (`*` one word, `#` zero or more); `#` alone matches everything.
 * `/exchange/amq.topic/<key>` and `/topic/<key>` are one destination, in patterns and requests.
 *
 * Publishing names one routing key (or queue), so a publish is allowed when some pattern
 * matches it. Subscribing to /topic/ or /exchange/ names a *pattern*, so it is allowed only
 * when some allowed pattern covers every key the requested one can match (`patternCovers`):
 * `/topic/public.*` does not admit `/topic/public.#`. Binding a queue or exchange to an
 * exchange reads from that exchange, so it takes the same subscribe right (RabbitMQ: read).
 */
import { readFileSync } from 'node:fs';
import { timingSafeEqual } from 'node:crypto';
import { topicMatches } from '../router/topic-matcher.js';
import { patternCovers } from '../router/topic-pattern-cover.js';
import { DEFAULT_VHOST, vhostNameProblem } from '../protocol/vhost-name.js';
import { BrokerError, ErrorCode } from '../protocol/errors.js';
import type { Vhost } from './vhosts.js';

/** A user's rights in one vhost: every request, subscription and connection carries one. */
export interface Principal {
  readonly name: string;
  /** The vhost the rights are for; every name the principal uses is that vhost's. */
  readonly vhost: Vhost;
  canPublish(destination: string): boolean;
  /** A /queue/ name, or a /topic/ or /exchange/ binding pattern (checked as a subset of what is allowed). */
  canSubscribe(destination: string): boolean;
  readonly canManage: boolean;
  /** May read the whole broker's state: /v1/stats, /metrics (every queue, connection and user). */
  readonly canMonitor: boolean;
}

export class AuthConfigError extends Error {
  override readonly name = 'AuthConfigError';
  readonly code = 'bad_config';
}

interface RuleSpec {
  publish: string[];
  subscribe: string[];
  manage: boolean;
  monitor: boolean;
}

interface UserSpec {
  name: string;
  token: string;
  /** Rules by vhost name. */
  vhosts: Map<string, RuleSpec>;
}

/** Rights without the vhost: what a Principal is made of. */
type Rights = Omit<Principal, 'name' | 'vhost'>;

const ALL_RIGHTS: Rights = { canPublish: () => true, canSubscribe: () => true, canManage: true, canMonitor: true };

/**
 * Who a valid token is: its rights in each vhost. A principal per vhost is made once and kept
 * (an HTTP publish asks for one per request).
 */
export class User {
  readonly name: string;
  /** Rights by vhost name; null: every right in every vhost (auth off, --auth-token). */
  readonly #rights: ReadonlyMap<string, Rights> | null;
  readonly #principals = new WeakMap<Vhost, Principal>();

  constructor(name: string, rights: ReadonlyMap<string, Rights> | null) {
    this.name = name;
    this.#rights = rights;
  }

  /** The user's principal in `vhost`; null when it has no rules there (it may not connect). */
  principalIn(vhost: Vhost): Principal | null {
    const known = this.#principals.get(vhost);
    if (known !== undefined) return known;
    const rights = this.#rights === null ? ALL_RIGHTS : this.#rights.get(vhost.name);
    if (rights === undefined) return null;
    const principal: Principal = { name: this.name, vhost, ...rights };
    this.#principals.set(vhost, principal);
    return principal;
  }

  /** The vhosts it has rules for; null for all. */
  get vhostNames(): string[] | null {
    return this.#rights === null ? null : [...this.#rights.keys()];
  }
}

/** RabbitMQ's refusal of a vhost a user has no rules for (HTTP 403; AMQP 530 NOT_ALLOWED). */
export function vhostRefused(user: string, vhost: string): BrokerError {
  return new BrokerError(ErrorCode.accessRefused, `access to vhost '${vhost}' refused for user '${user}'`);
}

/** What a request without a valid token is told, on every protocol. */
export const UNAUTHORIZED_MESSAGE = 'missing or invalid token (Authorization: Bearer <token>, or ?token= on the WebSocket URL)';

/** The user of every request when auth is off: every right in every vhost. */
export const ANONYMOUS = new User('anonymous', null);

export class Authenticator {
  readonly #users: Array<{ token: Buffer; user: User }> = [];
  readonly enabled: boolean;

  constructor(authToken: string | null, usersFile: string | null) {
    if (authToken !== null) this.#users.push({ token: Buffer.from(authToken), user: new User('token', null) });
    if (usersFile !== null) {
      for (const u of loadUsers(usersFile)) this.#users.push({ token: Buffer.from(u.token), user: userOf(u) });
    }
    this.enabled = this.#users.length > 0;
  }

  /** The user a request's token names; ANONYMOUS when auth is off; null when the token is missing or wrong. */
  authenticate(token: string | null): User | null {
    if (!this.enabled) return ANONYMOUS;
    if (token === null || token === '') return null;
    const given = Buffer.from(token);
    for (const u of this.#users) {
      // Constant-time compare, so response timing does not leak how much of a token matched.
      if (u.token.length === given.length && timingSafeEqual(u.token, given)) return u.user;
    }
    return null;
  }
}

/** `Authorization: Bearer <token>`, else the `token` query parameter (browsers cannot set WS headers). */
export function tokenFrom(authorization: string, query: string | undefined): string | null {
  const m = /^Bearer\s+(.+)$/i.exec(authorization);
  if (m) return m[1].trim();
  return query === undefined || query === '' ? null : decodeURIComponent(query);
}

/** The destination a binding of `exchange` with `routingKey` reads from, as permissions name it. */
export function bindingDestination(exchange: string, routingKey: string): string {
  return `/exchange/${exchange}/${routingKey}`;
}

function userOf(u: UserSpec): User {
  const rights = new Map<string, Rights>();
  for (const [vhost, rules] of u.vhosts) rights.set(vhost, rightsOf(rules));
  return new User(u.name, rights);
}

function rightsOf(u: RuleSpec): Rights {
  const pub = u.publish.map(compile);
  const sub = u.subscribe.map(compile);
  return {
    canPublish: (d) => allowed(pub, d, topicMatches),
    canSubscribe: (d) => allowed(sub, d, patternCovers),
    canManage: u.manage,
    // Who may change the broker may also see it (RabbitMQ's administrator tag includes monitoring).
    canMonitor: u.monitor || u.manage,
  };
}

interface CompiledPattern {
  readonly all: boolean;
  readonly prefix: string;
  readonly rest: string;
}

/** `/exchange/amq.topic/` is what `/topic/` publishes to; one spelling for both. */
const AMQ_TOPIC_PREFIX = '/exchange/amq.topic/';

function splitDestination(d: string): { prefix: string; rest: string } | null {
  if (d.startsWith(AMQ_TOPIC_PREFIX)) return { prefix: '/topic/', rest: d.slice(AMQ_TOPIC_PREFIX.length) };
  const m = /^(\/topic\/|\/queue\/|\/exchange\/[^/]+\/)(.*)$/s.exec(d);
  return m === null ? null : { prefix: m[1], rest: m[2] };
}

/**
 * Queue names are names, never patterns, so a queue request is matched as a literal; a topic or
 * exchange request is a binding pattern and goes through `patternCheck` (match or cover).
 */
function allowed(
  patterns: readonly CompiledPattern[],
  destination: string,
  patternCheck: (allowed: string, requested: string) => boolean,
): boolean {
  const d = splitDestination(destination);
  if (d === null) return patterns.some((p) => p.all);
  const check = d.prefix === '/queue/' ? topicMatches : patternCheck;
  return patterns.some((p) => p.all || (p.prefix === d.prefix && check(p.rest, d.rest)));
}

function compile(pattern: string): CompiledPattern {
  if (pattern === '#') return { all: true, prefix: '', rest: '' };
  const d = splitDestination(pattern);
  if (d === null)
    throw new AuthConfigError(
      `users file: pattern ${JSON.stringify(pattern)} must start with /topic/, /queue/ or /exchange/<name>/ (or be "#")`,
    );
  return { all: false, ...d };
}

/** A user's rules in `/` when given at the top level of its entry. */
const RULE_FIELDS = ['publish', 'subscribe', 'manage', 'monitor'] as const;

function loadUsers(path: string): UserSpec[] {
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new AuthConfigError(`users-file ${path}: ${(err as Error).message}`);
  }
  const users = (doc as { users?: unknown }).users;
  if (!Array.isArray(users)) throw new AuthConfigError(`users-file ${path}: expected {"users": [...]}`);
  return users.map((u, i) => {
    const o = u as Record<string, unknown>;
    const where = `users-file ${path}: users[${i}]`;
    if (typeof o.name !== 'string' || typeof o.token !== 'string' || o.token.length < 8) {
      throw new AuthConfigError(`${where} needs a name and a token of at least 8 characters`);
    }
    const list = (v: unknown, field: string): string[] => {
      if (v === undefined) return [];
      if (!Array.isArray(v) || v.some((x) => typeof x !== 'string'))
        throw new AuthConfigError(`${where}.${field} must be an array of destination patterns`);
      return v as string[];
    };
    const flag = (v: unknown, field: string): boolean => {
      if (v !== undefined && typeof v !== 'boolean') throw new AuthConfigError(`${where}.${field} must be true or false`);
      return v === true;
    };
    const rulesOf = (r: Record<string, unknown>, at: string): RuleSpec => {
      const rules: RuleSpec = {
        publish: list(r.publish, `${at}publish`),
        subscribe: list(r.subscribe, `${at}subscribe`),
        manage: flag(r.manage, `${at}manage`),
        monitor: flag(r.monitor, `${at}monitor`),
      };
      rightsOf(rules); // validates the patterns now, not at the first request
      return rules;
    };
    const vhosts = new Map<string, RuleSpec>();
    const topLevel = RULE_FIELDS.some((f) => o[f] !== undefined);
    if (o.vhosts !== undefined) {
      if (typeof o.vhosts !== 'object' || o.vhosts === null || Array.isArray(o.vhosts))
        throw new AuthConfigError(`${where}.vhosts must be an object of vhost name → rules`);
      for (const [vhost, r] of Object.entries(o.vhosts as Record<string, unknown>)) {
        const problem = vhostNameProblem(vhost);
        if (problem !== null) throw new AuthConfigError(`${where}.vhosts: ${problem} (got ${JSON.stringify(vhost)})`);
        if (typeof r !== 'object' || r === null || Array.isArray(r))
          throw new AuthConfigError(`${where}.vhosts[${JSON.stringify(vhost)}] must be an object of rules`);
        vhosts.set(vhost, rulesOf(r as Record<string, unknown>, `vhosts[${JSON.stringify(vhost)}].`));
      }
      if (topLevel && vhosts.has(DEFAULT_VHOST))
        throw new AuthConfigError(`${where} gives rules for '/' twice: top-level and in vhosts["/"]`);
    }
    // Without `vhosts`, the top-level rules are the user's in '/' (the users file before vhosts).
    if (topLevel || o.vhosts === undefined) vhosts.set(DEFAULT_VHOST, rulesOf(o, ''));
    return { name: o.name, token: o.token, vhosts };
  });
}
