import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ANONYMOUS, Authenticator, tokenFrom } from '../../src/control/auth.js';

const dir = mkdtempSync(join(tmpdir(), 'shardmq-auth-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function users(list: unknown[]): string {
  const file = join(dir, `u${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(file, JSON.stringify({ users: list }));
  return file;
}

describe('auth', () => {
  it('off: everyone is the anonymous principal, who may do everything', () => {
    const a = new Authenticator(null, null);
    expect(a.authenticate(null)).toBe(ANONYMOUS);
    expect(ANONYMOUS).toMatchObject({ canManage: true, canMonitor: true });
  });

  it('users: tokens map to principals; wrong and missing tokens to null', () => {
    const a = new Authenticator(
      null,
      users([{ name: 'u', token: 'token-123', publish: ['/topic/a.#'], subscribe: ['/topic/a.*', '/queue/q.*'] }]),
    );
    expect(a.authenticate('nope-nope')).toBeNull();
    expect(a.authenticate(null)).toBeNull();
    const p = a.authenticate('token-123')!;
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
    expect(a.authenticate('manage-123')).toMatchObject({ canManage: true, canMonitor: true });
    expect(a.authenticate('monitor-12')).toMatchObject({ canManage: false, canMonitor: true });
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
