/**
 * Who may do what. Off by default (loopback-only broker); with `--auth-token` one token
 * grants everything; with `--users-file` each user has a token and destination patterns
 * for publish and subscribe, plus whether it may change the topology. The same rules
 * apply over HTTP, WebSocket (JSON and binary) and any later protocol.
 *
 * Users file (JSON):
 *   {"users":[{"name":"sensor-7","token":"…","publish":["/topic/sensors.#"],"subscribe":[],"manage":false,"monitor":false}]}
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

export interface Principal {
  readonly name: string;
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

interface UserSpec {
  name: string;
  token: string;
  publish: string[];
  subscribe: string[];
  manage: boolean;
  monitor: boolean;
}

/** What a request without a valid token is told, on every protocol. */
export const UNAUTHORIZED_MESSAGE = 'missing or invalid token (Authorization: Bearer <token>, or ?token= on the WebSocket URL)';

/** The principal of every request when auth is off. */
export const ANONYMOUS: Principal = {
  name: 'anonymous',
  canPublish: () => true,
  canSubscribe: () => true,
  canManage: true,
  canMonitor: true,
};

export class Authenticator {
  readonly #users: Array<{ token: Buffer; principal: Principal }> = [];
  readonly enabled: boolean;

  constructor(authToken: string | null, usersFile: string | null) {
    if (authToken !== null) {
      this.#users.push({ token: Buffer.from(authToken), principal: { ...ANONYMOUS, name: 'token' } });
    }
    if (usersFile !== null) {
      for (const u of loadUsers(usersFile)) this.#users.push({ token: Buffer.from(u.token), principal: principalOf(u) });
    }
    this.enabled = this.#users.length > 0;
  }

  /** The principal a request carries; ANONYMOUS when auth is off; null when the token is missing or wrong. */
  authenticate(token: string | null): Principal | null {
    if (!this.enabled) return ANONYMOUS;
    if (token === null || token === '') return null;
    const given = Buffer.from(token);
    for (const u of this.#users) {
      // Constant-time compare, so response timing does not leak how much of a token matched.
      if (u.token.length === given.length && timingSafeEqual(u.token, given)) return u.principal;
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

function principalOf(u: UserSpec): Principal {
  const pub = u.publish.map(compile);
  const sub = u.subscribe.map(compile);
  return {
    name: u.name,
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
    const spec: UserSpec = {
      name: o.name,
      token: o.token,
      publish: list(o.publish, 'publish'),
      subscribe: list(o.subscribe, 'subscribe'),
      manage: flag(o.manage, 'manage'),
      monitor: flag(o.monitor, 'monitor'),
    };
    principalOf(spec); // validates the patterns now, not at the first request
    return spec;
  });
}
