import { describe, expect, it } from 'vitest';
import {
  MAX_EXPIRATION_MS,
  checkExpiration,
  deliveryModeFromText,
  encodeCheckedProperties,
  priorityFromText,
} from '../../src/protocol/property-rules.js';

const refused = (f: () => unknown): void => {
  expect(f).toThrow(expect.objectContaining({ code: 'precondition_failed', status: 406 }));
};

describe('property rules', () => {
  it.each(['0', '1', '60000', String(MAX_EXPIRATION_MS)])('expiration %s is accepted', (v) => {
    expect(() => checkExpiration(v)).not.toThrow();
  });
  it.each(['', 'abc', '-5', '1.5', ' 1', '1e3', '0x10', String(MAX_EXPIRATION_MS + 1), '9'.repeat(26)])('expiration %j is refused', (v) => {
    refused(() => checkExpiration(v));
  });
  it.each([
    ['0', 0],
    ['7', 7],
    ['255', 255],
  ])('priority %s is %i', (text, n) => {
    expect(priorityFromText(text)).toBe(n);
  });
  it.each(['', '0x10', '1e2', '256', '-1', '+1', '1.0', '0255'])('priority %j is refused', (text) => {
    refused(() => priorityFromText(text));
  });
  it.each(['0', '3', '', 'persistent'])('delivery mode %j is refused', (text) => {
    refused(() => deliveryModeFromText(text));
  });
  it('header tables beyond the codec limits are refused the same way', () => {
    let deep: Record<string, unknown> = { x: 1 };
    for (let i = 0; i < 20; i++) deep = { n: deep };
    refused(() => encodeCheckedProperties({ headers: deep as never }));
    expect(encodeCheckedProperties({ expiration: '10', priority: 1, deliveryMode: 2 }).byteLength).toBeGreaterThan(0);
  });
});
