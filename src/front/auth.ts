/**
 * Who may do what. Off by default (loopback-only broker); with `--auth-token` one token
 * grants everything; with `--users-file` each user has a token and destination patterns
 * for publish and subscribe, plus whether it may change the topology. The same rules
 * apply over HTTP, WebSocket (JSON and binary) and any later protocol.
 *
 * Users file (JSON):
 *   {"users":[{"name":"sensor-7","token":"…","publish":["/topic/sensors.#"],"subscribe":[],"manage":false}]}
 * A pattern is a destination prefix (/topic/, /queue/, /exchange/<x>/) plus an AMQP topic
 * pattern over the rest (`*` one word, `#` zero or more); `#` alone matches everything.
 */
import { readFileSync } from 'node:fs';
import { timingSafeEqual } from 'node:crypto';
import { topicMatches } from '../router/topic-matcher.js';

export interface Principal {
  readonly name: string;
  canPublish(destination: string): boolean;
  canSubscribe(destination: string): boolean;
  readonly canManage: boolean;
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
}

/** The principal of every request when auth is off. */
export const ANONYMOUS: Principal = { name: 'anonymous', canPublish: () => true, canSubscribe: () => true, canManage: true };

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

function principalOf(u: UserSpec): Principal {
  const pub = u.publish.map(compile);
  const sub = u.subscribe.map(compile);
  return {
    name: u.name,
    canPublish: (d) => pub.some((p) => p(d)),
    canSubscribe: (d) => sub.some((p) => p(d)),
    canManage: u.manage,
  };
}

function compile(pattern: string): (destination: string) => boolean {
  if (pattern === '#') return () => true;
  const m = /^(\/topic\/|\/queue\/|\/exchange\/[^/]+\/)(.*)$/.exec(pattern);
  if (m === null) throw new AuthConfigError(`users file: pattern ${JSON.stringify(pattern)} must start with /topic/, /queue/ or /exchange/<name>/ (or be "#")`);
  const [, prefix, rest] = m;
  return (d) => d.startsWith(prefix) && topicMatches(rest, d.slice(prefix.length));
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
      if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw new AuthConfigError(`${where}.${field} must be an array of destination patterns`);
      return v as string[];
    };
    const spec: UserSpec = { name: o.name, token: o.token, publish: list(o.publish, 'publish'), subscribe: list(o.subscribe, 'subscribe'), manage: o.manage === true };
    principalOf(spec); // validates the patterns now, not at the first request
    return spec;
  });
}
