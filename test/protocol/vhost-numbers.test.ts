import { describe, expect, it } from 'vitest';
import { vhostPrefix } from '../../src/protocol/vhost-name.js';
import { createVhostNumberTable, VHOST_NUMBERS, VhostNumbering, VhostPrefixes } from '../../src/protocol/vhost-numbers.js';

describe('vhost numbers', () => {
  it('/ is never numbered; other vhosts get 1, 2, 3... and a reader finds each prefix, non-ASCII and 255-byte names too', () => {
    const table = createVhostNumberTable();
    const numbering = new VhostNumbering(table);
    expect(numbering.assign('')).toBe(0);
    const names = ['staging', 'wörk-日本', 'v'.repeat(255)];
    const numbers = names.map((n) => numbering.assign(vhostPrefix(n)));
    expect(numbers).toEqual([1, 2, 3]);
    const prefixes = new VhostPrefixes(table);
    expect(numbers.map((n) => prefixes.prefix(n))).toEqual(names.map(vhostPrefix));
    // Kept after the first read: the same string again.
    expect(prefixes.prefix(2)).toBe(prefixes.prefix(2));
    expect(prefixes.prefix(0)).toBe('');
  });

  it('numbers are not reused, and past the table a vhost is unnumbered (0: its records carry qualified names)', () => {
    const numbering = new VhostNumbering(createVhostNumberTable());
    const seen = new Set<number>();
    for (let i = 1; i < VHOST_NUMBERS; i++) seen.add(numbering.assign(vhostPrefix(`v${i}`)));
    expect(seen.size).toBe(VHOST_NUMBERS - 1);
    expect(Math.min(...seen)).toBe(1);
    expect(numbering.assign(vhostPrefix('late'))).toBe(0);
  });

  it('a number the table never had, or a reader without a table, is an error, not a wrong name', () => {
    const table = createVhostNumberTable();
    new VhostNumbering(table).assign(vhostPrefix('a'));
    expect(() => new VhostPrefixes(table).prefix(2)).toThrow(/never assigned/);
    expect(() => new VhostPrefixes(null).prefix(1)).toThrow(/no table/);
    expect(() => new VhostPrefixes(table).prefix(VHOST_NUMBERS)).toThrow(RangeError);
  });
});
