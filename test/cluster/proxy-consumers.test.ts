import { describe, expect, it } from 'vitest';
import { ProxyConsumers, forEachRemoteRecord } from '../../src/cluster/proxy-consumers.js';
import { FIRST_CLUSTER_CONNECTION } from '../../src/front/connection-ids.js';
import { AckModeCode, RecordKind, RecordReader } from '../../src/protocol/ring-record-codec.js';
import type { ControlPort, ControlWriter } from '../../src/shard/shard-handle.js';

/** Two fake shards that log what is written to them. */
function setup() {
  const log: string[] = [];
  const port = (index: number): ControlPort => ({
    writeControl: (write) => {
      const note = (line: string): boolean => log.push(`${index}:${line}`) > 0;
      const w: ControlWriter = {
        subscribe: (c, s, q) => note(`sub ${c} ${s} ${q}`),
        unsubscribe: (c, s) => note(`unsub ${c} ${s}`),
        credit: (c, s, n) => note(`credit ${c} ${s} ${n}`),
        settle: (kind, c, tag, requeue) => note(`${kind === RecordKind.ack ? 'ack' : 'nack'} ${c} ${tag} ${requeue}`),
        connectionClosed: (c) => note(`closed ${c}`),
        slow: (c, on) => note(`slow ${c} ${on}`),
      };
      write(w);
    },
  });
  let flushes = 0;
  const proxies = new ProxyConsumers({
    self: 'b',
    shardOfQueue: (q) => (q === 'q0' ? 0 : 1),
    shard: port,
    shardCount: () => 2,
    flushSoon: () => flushes++,
  });
  return { log, proxies, flushes: () => flushes };
}

const sub = (conn: number, id: number, queue: string) =>
  ({
    op: 'sub',
    conn,
    sub: id,
    queue,
    ack: AckModeCode.client,
    prefetch: 5,
    window: 10,
    windowBytes: 1000,
    flags: 0,
    start: null,
  }) as const;

describe('proxy-consumers', () => {
  it('proxy-consumers - each (node, connection) gets a proxy id of the cluster range; ops land on the queue’s shard under it', () => {
    const { log, proxies } = setup();
    const p = FIRST_CLUSTER_CONNECTION;
    proxies.apply('c', [sub(7, 1, 'q0'), sub(7, 2, 'q1'), { op: 'credit', conn: 7, sub: 2, n: 3, bytes: 30 }]);
    proxies.apply('a', [sub(7, 1, 'q1')]);
    proxies.apply('c', [
      { op: 'settle', kind: RecordKind.ack, conn: 7, tag: 11, requeue: false },
      { op: 'settle', kind: RecordKind.nack, conn: 7, tag: 12, requeue: true },
      { op: 'slow', conn: 7, on: true },
      { op: 'unsub', conn: 7, sub: 1 },
      { op: 'closed', conn: 7 },
    ]);
    expect(log).toEqual([
      `0:sub ${p} 1 q0`,
      `1:sub ${p} 2 q1`,
      `1:credit ${p} 2 3`,
      `1:sub ${p + 1} 1 q1`,
      // tag 11 is shard 1's (11 % 2), 12 shard 0's.
      `1:ack ${p} 11 false`,
      `0:nack ${p} 12 true`,
      `0:slow ${p} true`,
      `1:slow ${p} true`,
      `0:unsub ${p} 1`,
      `1:closed ${p}`,
    ]);
    expect(proxies.proxies).toBe(1);
    // Ops of a connection this node never saw are ignored.
    proxies.apply('c', [{ op: 'credit', conn: 99, sub: 1, n: 1, bytes: 1 }]);
    expect(log.length).toBe(10);
  });

  it('proxy-consumers - a consumer node gone: every proxy of it closes on its shards (their unacked are redelivered)', () => {
    const { log, proxies } = setup();
    proxies.apply('c', [sub(7, 1, 'q0'), sub(8, 1, 'q1')]);
    proxies.apply('a', [sub(7, 1, 'q0')]);
    expect(proxies.nodeGone('c')).toBe(2);
    expect(log.slice(3).sort()).toEqual([`0:closed ${FIRST_CLUSTER_CONNECTION}`, `1:closed ${FIRST_CLUSTER_CONNECTION + 1}`]);
    expect(proxies.proxies).toBe(1);
  });

  it('proxy-consumers - records a shard sent for a proxy go to its node with the consumer’s connection id; a batch cut short is refused', () => {
    const { proxies, flushes } = setup();
    proxies.apply('c', [sub(7, 3, 'q0')]);
    const bytes = new Uint8Array(48);
    const view = new DataView(bytes.buffer);
    view.setUint32(8, FIRST_CLUSTER_CONNECTION, true);
    view.setUint32(12, 3, true);
    view.setFloat64(16, 4, true);
    proxies.onRecord(RecordKind.deliver, 8, 40, new RecordReader(bytes, view));
    expect(flushes()).toBe(1);
    const [[node, data]] = proxies.takeOutboxes();
    expect(node).toBe('c');
    const seen: Array<[string, number, number]> = [];
    const from = forEachRemoteRecord(data, (f, kind, offset) => {
      const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
      seen.push([f, kind, v.getUint32(offset, true)]);
      expect(v.getUint32(offset + 4, true)).toBe(3);
      expect(v.getFloat64(offset + 8, true)).toBe(4);
    });
    expect(from).toBe('b');
    expect(seen).toEqual([['b', RecordKind.deliver, 7]]);
    expect(proxies.takeOutboxes()).toEqual([]);
    for (let cut = 0; cut < data.length; cut++) {
      if (cut === 2) continue; // the sender's name alone: an empty batch
      expect(() => forEachRemoteRecord(data.subarray(0, cut), () => undefined)).toThrow(RangeError);
    }
  });
});
