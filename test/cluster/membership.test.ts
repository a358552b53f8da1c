import { describe, expect, it } from 'vitest';
import { Membership, type MemberAnnouncement } from '../../src/cluster/membership.js';

const hb = (name: string, boot = 'b1', state: 'up' | 'leaving' = 'up'): MemberAnnouncement => ({
  name,
  boot,
  state,
  http: `http://${name}`,
  amqp: null,
  interest: 0,
  droppedIn: 0,
  queued: 0,
  pressed: false,
});

describe('membership', () => {
  it('membership - joins on the first heartbeat, stays on the next, rejoins on a new boot id', () => {
    const m = new Membership('a', 2000);
    expect(m.heard(hb('a'), 0)).toMatchObject({ kind: 'joined' });
    expect(m.heard(hb('b'), 0)).toMatchObject({ kind: 'joined', member: { name: 'b' } });
    expect(m.heard(hb('b'), 500)).toBeNull();
    expect(m.heard(hb('b', 'b2'), 600)).toMatchObject({ kind: 'rejoined', member: { boot: 'b2', joinedAt: 600 } });
    expect(m.members().map((x) => x.name)).toEqual(['a', 'b']);
  });

  it('membership - a node silent past the timeout is out at the next sweep; this node never expires itself', () => {
    const m = new Membership('a', 2000);
    m.heard(hb('a'), 0);
    m.heard(hb('b'), 0);
    m.heard(hb('c'), 1500);
    expect(m.sweep(2000)).toEqual([]);
    expect(m.sweep(2001).map((c) => [c.kind, c.member.name])).toEqual([['expired', 'b']]);
    expect(m.sweep(10_000).map((c) => c.member.name)).toEqual(['c']);
    expect(m.members().map((x) => x.name)).toEqual(['a']);
  });

  it('membership - leaving takes a node out at once; a stale leave from an older boot is ignored', () => {
    const m = new Membership('a', 2000);
    m.heard(hb('b', 'new'), 0);
    expect(m.heard(hb('b', 'old', 'leaving'), 1)).toBeNull();
    expect(m.has('b')).toBe(true);
    expect(m.heard(hb('b', 'new', 'leaving'), 2)).toMatchObject({ kind: 'left' });
    expect(m.has('b')).toBe(false);
  });
});
