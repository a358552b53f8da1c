import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NO_LIMITS, parseLimits, Vhosts } from '../../src/control/vhosts.js';

const root = mkdtempSync(join(tmpdir(), 'shardmq-vhosts-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('vhosts', () => {
  it('/ always exists and cannot be deleted; others are created, changed, listed and removed', () => {
    const v = new Vhosts(null);
    expect(v.list().map((x) => x.name)).toEqual(['/']);
    expect(() => v.remove('/')).toThrow(expect.objectContaining({ code: 'access_refused' }));
    expect(v.put('b', 'team b', undefined).created).toBe(true);
    expect(v.put('a', undefined, undefined).created).toBe(true);
    expect(v.put('a', 'now described', parseLimits({ 'max-queues': 3 })).created).toBe(false);
    expect(v.list().map((x) => x.name)).toEqual(['/', 'a', 'b']);
    expect(v.get('a')).toMatchObject({ description: 'now described', limits: { maxQueues: 3, maxConnections: null } });
    expect(v.byPrefix('a\u001f')?.name).toBe('a');
    const removed = v.remove('a');
    expect(removed.deleted).toBe(true);
    expect(v.get('a')).toBeUndefined();
    expect(() => v.remove('a')).toThrow(expect.objectContaining({ code: 'not_found' }));
    expect(() => v.put('', undefined, undefined)).toThrow(expect.objectContaining({ code: 'bad_request' }));
  });

  it('limits: RabbitMQ`s names, -1 for none, unknown names and bad values refused', () => {
    expect(parseLimits({ 'max-connections': 5, 'max-queues': -1, 'max-queued-bytes': 1024 })).toEqual({
      maxConnections: 5,
      maxQueues: null,
      maxQueuedBytes: 1024,
    });
    expect(parseLimits({ 'max-queues': 7 }, { ...NO_LIMITS, maxConnections: 2 })).toEqual({
      maxConnections: 2,
      maxQueues: 7,
      maxQueuedBytes: null,
    });
    expect(() => parseLimits({ 'max-channels': 1 })).toThrow(/unknown vhost limit 'max-channels'/);
    expect(() => parseLimits({ 'max-queues': 1.5 })).toThrow(/max-queues must be a non-negative integer/);
    expect(() => parseLimits([])).toThrow(/limits must be an object/);
  });

  it('the connection limit and the byte budget are refusals naming the limit', () => {
    const v = new Vhosts(null);
    const t = v.put('t', undefined, parseLimits({ 'max-connections': 1, 'max-queued-bytes': 10 })).vhost;
    expect(t.connectionRefusal()).toBeNull();
    t.connections = 1;
    expect(t.connectionRefusal()?.message).toBe("connection limit (1) is reached for vhost 't' (max-connections)");
    expect(t.publishRefusal()).toBeNull();
    t.queuedBytes = 11;
    t.overBudget = true;
    expect(t.publishRefusal()).toMatchObject({ code: 'precondition_failed', status: 406 });
    // Lifting the budget lifts the refusal at once.
    v.put('t', undefined, parseLimits({ 'max-queued-bytes': -1 }, t.limits));
    expect(t.publishRefusal()).toBeNull();
  });

  it('under a data dir the vhosts and their limits are in vhosts.json, read back at the next start', () => {
    const dir = join(root, 'data');
    const a = new Vhosts(dir);
    a.put('staging', 'stage', parseLimits({ 'max-queues': 10 }));
    a.put('gone', undefined, undefined);
    a.remove('gone');
    const doc = JSON.parse(readFileSync(join(dir, 'vhosts.json'), 'utf8'));
    expect(doc.vhosts).toEqual([
      { name: '/', description: 'the default vhost', limits: {} },
      { name: 'staging', description: 'stage', limits: { 'max-queues': 10 } },
    ]);
    const b = new Vhosts(dir);
    expect(b.list().map((x) => x.name)).toEqual(['/', 'staging']);
    expect(b.get('staging')?.limits.maxQueues).toBe(10);
  });
});
