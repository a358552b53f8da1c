import { describe, expect, it } from 'vitest';
import {
  DEFAULT_VHOST,
  describeIn,
  localName,
  prefixOf,
  QualifiedNames,
  qualifiedFlat,
  qualify,
  vhostNameProblem,
  vhostOf,
  vhostPrefix,
  VHOST_SEPARATOR,
} from '../../src/protocol/vhost-name.js';
import { shardFor } from '../../src/router/shard-map.js';

describe('vhost names', () => {
  it('/ keeps bare names; another vhost qualifies them with its name and U+001F', () => {
    expect(vhostPrefix(DEFAULT_VHOST)).toBe('');
    expect(qualify('', 'orders')).toBe('orders');
    const p = vhostPrefix('staging');
    expect(p).toBe(`staging${VHOST_SEPARATOR}`);
    const q = qualify(p, 'orders');
    expect([vhostOf(q), localName(q), prefixOf(q)]).toEqual(['staging', 'orders', p]);
    expect([vhostOf('orders'), localName('orders'), prefixOf('orders')]).toEqual(['/', 'orders', '']);
    // A vhost named like a path and a name holding slashes stay apart.
    const odd = qualify(vhostPrefix('/tenant/a'), 'x/y');
    expect([vhostOf(odd), localName(odd)]).toEqual(['/tenant/a', 'x/y']);
    expect(describeIn('queue', q)).toBe("queue 'orders' in vhost 'staging'");
    expect(describeIn('exchange', 'amq.topic')).toBe("exchange 'amq.topic' in vhost '/'");
  });

  it('a name holding the separator is refused in every vhost: in / it would name another vhost`s object', () => {
    expect(() => qualify('', `staging${VHOST_SEPARATOR}orders`)).toThrow(/U\+001F/);
    expect(() => qualify(vhostPrefix('a'), `b${VHOST_SEPARATOR}c`)).toThrow(expect.objectContaining({ code: 'precondition_failed' }));
  });

  it('the shard map hashes vhost and name together: one name in two vhosts may live on two shards', () => {
    const shards = new Set<number>();
    for (const vhost of ['/', 'a', 'b', 'c', 'd', 'e', 'f', 'g']) shards.add(shardFor(qualify(vhostPrefix(vhost), 'orders'), 8));
    expect(shards.size).toBeGreaterThan(1);
    // `/` is as before vhosts: its names hash bare, so durable state from then stays where it is.
    expect(shardFor(qualify('', 'orders'), 8)).toBe(shardFor('orders', 8));
  });

  it('QualifiedNames: / answers the name itself; a vhost its qualified name, the same string for the same name', () => {
    expect(new QualifiedNames('').of('amq.topic')).toBe('amq.topic');
    const names = new QualifiedNames(vhostPrefix('tenant-b'));
    const first = names.of('amq.topic');
    expect(first).toBe(qualify(vhostPrefix('tenant-b'), 'amq.topic'));
    expect(names.of(`amq.${'topic'}`)).toBe(first);
    expect(names.of('other')).toBe(`tenant-b${VHOST_SEPARATOR}other`);
    // Past its bound it starts over and still answers right.
    for (let i = 0; i < 3000; i++) expect(names.of(`q${i}`)).toBe(`tenant-b${VHOST_SEPARATOR}q${i}`);
    expect(names.of('amq.topic')).toBe(first);
    expect(qualifiedFlat('ü\u001f', 'wörk')).toBe('ü\u001fwörk');
  });

  it('vhost names: non-empty, at most 255 bytes, no control characters', () => {
    expect(vhostNameProblem('staging')).toBeNull();
    expect(vhostNameProblem('/')).toBeNull();
    expect(vhostNameProblem('')).toMatch(/empty/);
    expect(vhostNameProblem('é'.repeat(128))).toMatch(/255 bytes/);
    expect(vhostNameProblem(`a${VHOST_SEPARATOR}b`)).toMatch(/control/);
  });
});
