import { describe, expect, it } from 'vitest';
import { entryHead, entryLength, readEntry, writeEntry } from '../../src/stream/stream-entry.js';

describe('stream entry bytes', () => {
  it('round-trips exchange, routing key (UTF-8), properties and payload, at any position of a bigger buffer', () => {
    const source = new Uint8Array(64);
    source.set([1, 2, 3], 5); // properties block
    source.set([9, 8, 7, 6], 20); // payload
    const head = entryHead('amq.tøpic', 'sensors.温度');
    for (const at of [0, 3, 17]) {
      const length = entryLength(head, 3, 4);
      const bytes = new Uint8Array(at + length + 11).fill(0xee);
      writeEntry(bytes, at, head, source.subarray(5, 8), source, 20, 4);
      const e = readEntry(bytes, at, at + length);
      expect(e.exchange).toBe('amq.tøpic');
      expect(e.routingKey).toBe('sensors.温度');
      expect([...e.properties]).toEqual([1, 2, 3]);
      expect([...e.payload]).toEqual([9, 8, 7, 6]);
      expect(bytes[at + length]).toBe(0xee); // nothing written past the entry
    }
  });

  it('takes empty names, no properties and an empty payload; refuses properties that run past the entry', () => {
    const head = entryHead('', '');
    const bytes = new Uint8Array(entryLength(head, 0, 0));
    writeEntry(bytes, 0, head, new Uint8Array(0), new Uint8Array(0), 0, 0);
    const e = readEntry(bytes, 0, bytes.length);
    expect([e.exchange, e.routingKey, e.properties.length, e.payload.length]).toEqual(['', '', 0, 0]);
    new DataView(bytes.buffer).setUint32(4, 100, true);
    expect(() => readEntry(bytes, 0, bytes.length)).toThrow(/properties run past its end/);
  });
});
