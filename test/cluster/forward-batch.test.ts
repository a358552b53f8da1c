import { describe, expect, it } from 'vitest';
import { decodeForwardBatch, ForwardBatchBuilder, ForwardBatchError, type ForwardBatchHeader } from '../../src/cluster/forward-batch.js';
import { mulberry32 } from '../helpers/prng.js';

function read(data: Uint8Array): { header: ForwardBatchHeader; records: Array<[Uint8Array | null, Uint8Array]> } {
  const records: Array<[Uint8Array | null, Uint8Array]> = [];
  const header = decodeForwardBatch(
    data,
    () => true,
    (p, m) => records.push([p === null ? null : Uint8Array.from(p), Uint8Array.from(m)]),
  );
  return { header, records };
}

describe('forward-batch', () => {
  it('forward-batch - round trip: header, records in order, properties null or bytes, the builder copies what it is given', () => {
    const next = mulberry32(5);
    const rand = (): number => next() / 2 ** 32;
    const b = new ForwardBatchBuilder('boot1', 'amq.topic', 'sensors.ä', 16);
    const want: Array<[Uint8Array | null, Uint8Array]> = [];
    for (let i = 0; i < 300; i++) {
      const payload = new Uint8Array(Math.floor(rand() * 3000)).map(() => Math.floor(rand() * 256));
      const props = i % 3 === 0 ? null : new Uint8Array([i & 255, 1, 2]);
      b.add(props, payload);
      want.push([props === null ? null : props.slice(), payload.slice()]);
      payload.fill(0); // the caller's bytes die after the call
    }
    const { header, records } = read(b.finish(42));
    expect(header).toEqual({ boot: 'boot1', seq: 42, exchange: 'amq.topic', routingKey: 'sensors.ä', count: 300 });
    const hex = (rs: Array<[Uint8Array | null, Uint8Array]>): string[] =>
      rs.map(([p, m]) => `${p === null ? '-' : Buffer.from(p).toString('hex')}/${Buffer.from(m).toString('hex')}`);
    expect(hex(records)).toEqual(hex(want));
  });

  it('forward-batch - a batch cut anywhere, or with bytes after it, is refused before any record is handed out', () => {
    const b = new ForwardBatchBuilder('boot', 'x', 'k');
    for (let i = 0; i < 5; i++) b.add(null, new Uint8Array(10).fill(i));
    const whole = b.finish(1);
    for (let cut = 0; cut < whole.length; cut++) {
      let handed = 0;
      expect(() =>
        decodeForwardBatch(
          whole.subarray(0, cut),
          () => true,
          () => handed++,
        ),
      ).toThrow(ForwardBatchError);
      expect(handed).toBe(0);
    }
    const longer = new Uint8Array(whole.length + 1);
    longer.set(whole);
    expect(() =>
      decodeForwardBatch(
        longer,
        () => true,
        () => undefined,
      ),
    ).toThrow(/bytes after/);
    const wrongVersion = whole.slice();
    wrongVersion[0] = 9;
    expect(() =>
      decodeForwardBatch(
        wrongVersion,
        () => true,
        () => undefined,
      ),
    ).toThrow(/version 9/);
  });

  it('forward-batch - onHeader returning false skips the records (a duplicate, an unknown exchange)', () => {
    const b = new ForwardBatchBuilder('boot', 'x', 'k');
    b.add(null, new Uint8Array([1]));
    let handed = 0;
    const h = decodeForwardBatch(
      b.finish(7),
      () => false,
      () => handed++,
    );
    expect(h.seq).toBe(7);
    expect(handed).toBe(0);
  });
});
