import { describe, expect, it } from 'vitest';
import { MessageQueue } from '../../src/queue/message-queue.js';
import type { Consumer } from '../../src/queue/types.js';
import { decodeProperties, encodeProperties } from '../../src/protocol/properties.js';
import { newPublishRecord, type PublishRecord } from '../../src/protocol/ring-record-codec.js';
import { StreamOffsetError } from '../../src/stream/offset-spec.js';
import { ShardStreams } from '../../src/shard/shard-streams.js';
import type { Dispatchable } from '../../src/shard/shard-outbound.js';

/** A publish record over `buf` carrying `payload` (and `properties`, encoded), as the shard reads one. */
function publishOf(payload: string, properties: Uint8Array = new Uint8Array(0)): { rec: PublishRecord; buf: Uint8Array } {
  const body = Buffer.from(payload);
  const buf = new Uint8Array(properties.byteLength + body.byteLength);
  buf.set(properties, 0);
  buf.set(body, properties.byteLength);
  const rec = newPublishRecord();
  rec.exchange = '';
  rec.routingKey = 'events';
  rec.propsOffset = 0;
  rec.propsLength = properties.byteLength;
  rec.payloadOffset = properties.byteLength;
  rec.payloadLength = body.byteLength;
  return { rec, buf };
}

/** ShardOutbound's stalled set, as the streams use it: what waits for room, dispatched by `flush()`. */
function stalledSet(): { stall(t: Dispatchable): void; forget(t: Dispatchable): void; flush(): void; commit(): void; commits: number } {
  const waiting = new Set<Dispatchable>();
  return {
    commits: 0,
    commit() {
      this.commits++;
    },
    stall: (t) => void waiting.add(t),
    forget: (t) => void waiting.delete(t),
    flush: () => {
      for (const t of [...waiting]) {
        waiting.delete(t);
        t.dispatch();
      }
    },
  };
}

function consumerOf(ackMode: 'auto' | 'client', credit: number, prefetch = 0, connectionId = 1): Consumer {
  return { connectionId, subscriptionId: 1, ackMode, prefetch, unacked: 0, credit, creditBytes: Infinity, exclusive: false } as Consumer;
}

interface Delivered {
  consumer: Consumer;
  offset: number;
  skipped: number | undefined;
  payload: string;
  tag: number;
}

function setUp(now = () => 1000): {
  streams: ShardStreams;
  queue: MessageQueue;
  delivered: Delivered[];
  ring: { full: boolean };
  outbound: ReturnType<typeof stalledSet>;
  publish: (n: number) => void;
} {
  const outbound = stalledSet();
  const streams = new ShardStreams(now, outbound);
  const queue = new MessageQueue(
    'events',
    () => true,
    () => 0,
  );
  streams.declare(queue, { segmentBytes: 4096 });
  const delivered: Delivered[] = [];
  const ring = { full: false };
  let tag = 0;
  streams.deliverWith = (consumer, _exchange, _key, props, payload) => {
    if (ring.full) return 0;
    const headers = decodeProperties(props, 0, props.byteLength).headers ?? {};
    delivered.push({
      consumer,
      offset: headers['x-stream-offset'] as number,
      skipped: headers['x-stream-offset-skipped'] as number | undefined,
      payload: Buffer.from(payload).toString(),
      tag: ++tag,
    });
    return tag;
  };
  let n = 0;
  const publish = (count: number): void => {
    for (let i = 0; i < count; i++) {
      const { rec, buf } = publishOf(`m${n++}`, encodeProperties({ contentType: 'text/plain' }));
      expect(streams.append(queue, rec, buf, { contentType: 'text/plain' })).toBe(true);
    }
    streams.endBatch();
  };
  return { streams, queue, delivered, ring, outbound, publish };
}

describe('ShardStreams', () => {
  it('a reader takes no more than its credit, and reads on when credit comes back; the offset is in every delivery', () => {
    const { streams, queue, delivered, publish } = setUp();
    publish(10);
    const c = consumerOf('auto', 4);
    streams.attach(queue, c, 'first', '');
    expect(delivered.map((d) => d.offset)).toEqual([0, 1, 2, 3]);
    c.credit += 3;
    expect(streams.credited(c)).toBe(true);
    expect(delivered.map((d) => d.offset)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(delivered.map((d) => d.payload)).toEqual(['m0', 'm1', 'm2', 'm3', 'm4', 'm5', 'm6']);
    // New entries go to a reader with credit at the end of the batch that appended them.
    c.credit += 100;
    streams.credited(c);
    publish(2);
    expect(delivered.map((d) => d.offset)).toEqual(Array.from({ length: 12 }, (_, i) => i));
  });

  it("a client-ack reader stops at its prefetch; a settle frees one slot; a stranger's settle of its tag is refused", () => {
    const { streams, queue, delivered, publish } = setUp();
    publish(6);
    const c = consumerOf('client', Infinity, 2);
    streams.attach(queue, c, 'first', '');
    expect(delivered.map((d) => d.offset)).toEqual([0, 1]);
    expect(streams.settle(99, delivered[0].tag)).toBe(false);
    expect(streams.settle(1, delivered[0].tag)).toBe(true);
    expect(streams.settle(1, delivered[0].tag)).toBe(false); // settled once only
    expect(delivered.map((d) => d.offset)).toEqual([0, 1, 2]);
    expect(c.unacked).toBe(2);
    streams.detach(c);
    expect(streams.settle(1, delivered[1].tag)).toBe(false); // its tags went with it
  });

  it('a full outbound ring stalls a reader without losing its place; the outbound flush delivers from there', () => {
    const { streams, queue, delivered, ring, outbound, publish } = setUp();
    publish(5);
    const c = consumerOf('auto', Infinity);
    ring.full = true;
    streams.attach(queue, c, 'first', '');
    expect(delivered).toHaveLength(0);
    ring.full = false;
    outbound.flush();
    expect(delivered.map((d) => d.offset)).toEqual([0, 1, 2, 3, 4]);
  });

  it('stored offsets: commit and resume after it; a commit past the end and "stored" with none are refused; the figures list readers and their lag', () => {
    const { streams, queue, publish } = setUp();
    publish(8);
    expect(streams.commit('events', 'dash', 4)).toEqual({});
    expect(() => streams.commit('events', 'dash', 8)).toThrow(StreamOffsetError);
    expect(() => streams.commit('events', 'dash', -1)).toThrow(StreamOffsetError);
    expect(streams.commit('nope', 'dash', 1)).toBeNull();
    const c = consumerOf('auto', 2);
    streams.attach(queue, c, 'stored', 'dash');
    expect(() => streams.attach(queue, consumerOf('auto', 1, 0, 2), 'stored', 'other')).toThrow(/no stored offset/);
    expect(() => streams.attach(queue, consumerOf('auto', 1, 0, 3), 'stored', '')).toThrow(/needs a consumer name/);
    const info = streams.info('events');
    expect(info?.stored_offsets).toEqual({ dash: 4 });
    expect(info?.consumers).toEqual([{ name: 'dash', connection: 1, subscription: 1, next_offset: 7, lag: 1, unacked: 0 }]);
  });

  it('retention moves a reader past what it dropped and tells it once, on its next delivery', () => {
    let now = 0;
    const streams = new ShardStreams(() => now, stalledSet());
    const queue = new MessageQueue(
      'events',
      () => true,
      () => 0,
    );
    streams.declare(queue, { segmentBytes: 200, maxBytes: 400 });
    const got: Array<[number, number | undefined]> = [];
    streams.deliverWith = (_c, _e, _k, props) => {
      const h = decodeProperties(props, 0, props.byteLength).headers ?? {};
      got.push([h['x-stream-offset'] as number, h['x-stream-offset-skipped'] as number | undefined]);
      return got.length;
    };
    const c = consumerOf('auto', 0);
    streams.attach(queue, c, 'first', '');
    for (let i = 0; i < 40; i++) {
      const { rec, buf } = publishOf('x'.repeat(40));
      streams.append(queue, rec, buf, null);
      now++;
      streams.endBatch();
    }
    const first = streams.info('events')?.first_offset ?? 0;
    expect(first).toBeGreaterThan(0);
    c.credit = 3;
    streams.credited(c);
    expect(got).toEqual([
      [first, first],
      [first + 1, undefined],
      [first + 2, undefined],
    ]);
  });

  it('deleting a stream forgets its readers and tags; a classic queue is not a stream', () => {
    const { streams, queue, publish } = setUp();
    publish(3);
    const c = consumerOf('client', Infinity, 10);
    streams.attach(queue, c, 'first', '');
    expect(streams.delete(queue)).toBe(3);
    expect(streams.credited(c)).toBe(false);
    expect(streams.info('events')).toBeNull();
    const classic = new MessageQueue(
      'jobs',
      () => true,
      () => 0,
    );
    const { rec, buf } = publishOf('x');
    expect(streams.append(classic, rec, buf, null)).toBe(false);
  });
});
