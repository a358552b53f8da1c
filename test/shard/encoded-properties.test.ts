import { describe, expect, it } from 'vitest';
import { encodeProperties } from '../../src/protocol/properties.js';
import { EncodedProperties } from '../../src/shard/encoded-properties.js';

describe('encoded properties', () => {
  it('bytes - no properties are zero bytes; properties are encoded once and the same bytes reused', () => {
    const encoded = new EncodedProperties();
    expect(encoded.bytes(null).byteLength).toBe(0);
    const props = { messageId: 'm', headers: { a: 1 } };
    const first = encoded.bytes(props);
    expect(first).toEqual(encodeProperties(props));
    expect(encoded.bytes(props)).toBe(first);
    // Per object, not per value: an equal copy is encoded on its own.
    expect(encoded.bytes({ ...props })).not.toBe(first);
  });

  it('remember - the bytes a message arrived with are used as they are', () => {
    const encoded = new EncodedProperties();
    const props = { messageId: 'm' };
    const arrived = encodeProperties(props);
    encoded.remember(props, arrived);
    expect(encoded.bytes(props)).toBe(arrived);
  });
});
