import { describe, expect, it } from 'vitest';
import { Interest } from '../../src/cluster/interest.js';

describe('interest', () => {
  it('interest - bindings are counted per subject: one NATS subscription for many bindings, gone with the last', () => {
    const log: string[] = [];
    const interest = new Interest({ subscribe: (s) => log.push(`+${s}`), unsubscribe: (s) => log.push(`-${s}`) });
    for (let i = 0; i < 1000; i++) interest.add('topic', 'amq.topic', 'a.*');
    interest.add('topic', 'amq.topic', 'a.#');
    expect(log).toEqual(['+shardmq.x.~YW1xLnRvcGlj.a.*', '+shardmq.x.~YW1xLnRvcGlj.a', '+shardmq.x.~YW1xLnRvcGlj.a.>']);
    expect(interest.size).toBe(3);
    for (let i = 0; i < 999; i++) interest.remove('topic', 'amq.topic', 'a.*');
    expect(log.length).toBe(3);
    interest.remove('topic', 'amq.topic', 'a.*');
    interest.remove('topic', 'amq.topic', 'a.#');
    expect(log.slice(3).sort()).toEqual(['-shardmq.x.~YW1xLnRvcGlj.a', '-shardmq.x.~YW1xLnRvcGlj.a.*', '-shardmq.x.~YW1xLnRvcGlj.a.>']);
    expect(interest.size).toBe(0);
  });

  it('interest - the default exchange (queues) is not interest; a mid-pattern # counts as inexact', () => {
    const interest = new Interest({ subscribe: () => undefined, unsubscribe: () => undefined });
    interest.add('direct', '', 'q1');
    expect(interest.size).toBe(0);
    interest.add('topic', 'x', 'a.#.b');
    expect(interest.inexact).toBe(1);
    interest.remove('topic', 'x', 'a.#.b');
    expect(interest.inexact).toBe(0);
  });
});
