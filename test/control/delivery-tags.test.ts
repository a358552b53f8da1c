import { describe, expect, it } from 'vitest';
import { DeliveryTags } from '../../src/control/delivery-tags.js';

describe('delivery tags - settle', () => {
  const fill = (): DeliveryTags => {
    const tags = new DeliveryTags();
    for (let i = 0; i < 5; i++) tags.assign(100 + i, i !== 2); // tag 3 was an auto-ack delivery
    return tags;
  };

  it('one tag, then it is gone', () => {
    const tags = fill();
    expect(tags.settle(2, false)).toEqual([101]);
    expect(tags.settle(2, false)).toEqual([]);
    expect(tags.settle(3, false)).toEqual([]); // never tracked
  });

  it('multiple: every open tag up to it', () => {
    const tags = fill();
    expect(tags.settle(4, true)).toEqual([100, 101, 103]);
    expect(tags.settle(5, false)).toEqual([104]);
  });

  it('tag 0 with multiple: every outstanding delivery (AMQP), the same for JSON and binary', () => {
    const tags = fill();
    expect(tags.settle(0, true)).toEqual([100, 101, 103, 104]);
    expect(tags.settle(0, true)).toEqual([]);
    expect(fill().settle(0, false)).toEqual([]);
  });
});
