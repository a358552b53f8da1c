import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ANONYMOUS, Authenticator, tokenFrom, type User } from '../../src/control/auth.js';
import { NO_LIMITS, Vhost } from '../../src/control/vhosts.js';

const dir = mkdtempSync(join(tmpdir(), 'shardmq-auth-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function users(list: unknown[]): string {
  const file = join(dir, `u${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(file, JSON.stringify({ users: list }));
  return file;
}

const ROOT = new Vhost('/', '', NO_LIMITS);
const STAGING = new Vhost('staging', '', NO_LIMITS);

/** The user's principal in `/`, which the test expects to exist. */
function inRoot(user: User | null) {
  const p = user?.principalIn(ROOT) ?? null;
  if (p === null) throw new Error('expected a principal in /');
  return p;
}

describe('auth', () => {
  it('off: everyone is the anonymous user, who may do everything in every vhost', () => {
    const a = new Authenticator(null, null);
    expect(a.authenticate(null)).toBe(ANONYMOUS);
    expect(ANONYMOUS.principalIn(ROOT)).toMatchObject({ canManage: true, canMonitor: true, vhost: ROOT });
    expect(ANONYMOUS.principalIn(STAGING)).toMatchObject({ canManage: true, vhost: STAGING });
    // One principal per vhost, made once.
    expect(ANONYMOUS.principalIn(STAGING)).toBe(ANONYMOUS.principalIn(STAGING));
  });

  it('rules per vhost: a user has rights only where it has rules, and top-level rules are its rules in /', () => {
    const a = new Authenticator(
      null,
      users([
        { name: 'legacy', token: 'legacy-123', publish: ['#'] },
        { name: 'tenant', token: 'tenant-123', vhosts: { staging: { publish: ['/queue/orders'], manage: true } } },
        { name: 'both', token: 'both-1234', subscribe: ['#'], vhosts: { staging: { monitor: true } } },
      ]),
    );
    const legacy = a.authenticate('legacy-123');
    expect(inRoot(legacy).canPublish('/topic/x')).toBe(true);
    expect(legacy?.principalIn(STAGING)).toBeNull();
    const tenant = a.authenticate('tenant-123');
    expect(tenant?.principalIn(ROOT)).toBeNull();
    const staged = tenant?.principalIn(STAGING);
    expect(staged).toMatchObject({ name: 'tenant', canManage: true, vhost: STAGING });
    expect(staged?.canPublish('/queue/orders')).toBe(true);
    expect(staged?.canPublish('/queue/other')).toBe(false);
    const both = a.authenticate('both-1234');
    expect(inRoot(both).canSubscribe('/topic/a.#')).toBe(true);
    expect(inRoot(both).canManage).toBe(false);
    expect(both?.principalIn(STAGING)).toMatchObject({ canMonitor: true, canManage: false });
    expect(both?.principalIn(STAGING)?.canPublish('/topic/a')).toBe(false);
  });

  it.each([
    [[{ name: 'x', token: 'long-enough', vhosts: [] }], /vhosts must be an object/],
    [[{ name: 'x', token: 'long-enough', vhosts: { '': {} } }], /vhost name must not be empty/],
    [[{ name: 'x', token: 'long-enough', vhosts: { s: { publish: ['nope'] } } }], /must start with \/topic\//],
    [[{ name: 'x', token: 'long-enough', manage: true, vhosts: { '/': {} } }], /rules for '\/' twice/],
  ])('a bad vhosts entry is refused at start (%#)', (list, message) => {
    expect(() => new Authenticator(null, users(list))).toThrow(message);
  });

  it('users: tokens map to principals; wrong and missing tokens to null', () => {
    const a = new Authenticator(
      null,
      users([{ name: 'u', token: 'token-123', publish: ['/topic/a.#'], subscribe: ['/topic/a.*', '/queue/q.*'] }]),
    );
    expect(a.authenticate('nope-nope')).toBeNull();
    expect(a.authenticate(null)).toBeNull();
    const p = inRoot(a.authenticate('token-123'));
    expect(p.name).toBe('u');
    expect([p.canManage, p.canMonitor]).toEqual([false, false]);
    expect(p.canPublish('/topic/a.b.c')).toBe(true);
    expect(p.canPublish('/exchange/amq.topic/a.b')).toBe(true); // the same destination
    expect(p.canPublish('/topic/b')).toBe(false);
    expect(p.canSubscribe('/topic/a.x')).toBe(true);
    expect(p.canSubscribe('/topic/a.#')).toBe(false);
    expect(p.canSubscribe('/exchange/amq.topic/a.*')).toBe(true);
    expect(p.canSubscribe('/queue/q.#')).toBe(true); // a queue name is a name: `#` is a literal word here
    expect(p.canSubscribe('/queue/r')).toBe(false);
  });

  it('manage implies monitor; monitor alone does not imply manage', () => {
    const a = new Authenticator(
      null,
      users([
        { name: 'm', token: 'manage-123', manage: true },
        { name: 'w', token: 'monitor-12', monitor: true },
      ]),
    );
    expect(inRoot(a.authenticate('manage-123'))).toMatchObject({ canManage: true, canMonitor: true });
    expect(inRoot(a.authenticate('monitor-12'))).toMatchObject({ canManage: false, canMonitor: true });
  });

  it.each([
    [[{ name: 'x', token: 'short' }], /token of at least 8/],
    [[{ name: 'x', token: 'long-enough', publish: ['topic/a'] }], /must start with \/topic\//],
    [[{ name: 'x', token: 'long-enough', monitor: 'yes' }], /users\[0\]\.monitor must be true or false/],
    [[{ name: 'x', token: 'long-enough', subscribe: 'a' }], /users\[0\]\.subscribe must be an array/],
  ])('a bad users file is refused at start with a message naming the field (%#)', (list, message) => {
    expect(() => new Authenticator(null, users(list))).toThrow(message);
  });

  it('tokens come from a Bearer header, else the query', () => {
    expect(tokenFrom('Bearer abc', 'q')).toBe('abc');
    expect(tokenFrom('', 'q%20x')).toBe('q x');
    expect(tokenFrom('', undefined)).toBeNull();
  });
});
