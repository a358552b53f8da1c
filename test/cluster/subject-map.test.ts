import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { bindingSubjects, decodeToken, encodeToken, publishSubject } from '../../src/cluster/subject-map.js';
import { TopicMatcher } from '../../src/router/topic-matcher.js';

/** NATS's own subject matching (`*` one token, `>` one or more at the end), for checking the mapping. */
function natsMatches(pattern: string, subject: string): boolean {
  const p = pattern.split('.');
  const s = subject.split('.');
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '>') return s.length > i;
    if (i >= s.length) return false;
    if (p[i] !== '*' && p[i] !== s[i]) return false;
  }
  return p.length === s.length;
}

function amqpMatches(pattern: string, key: string): boolean {
  const m = new TopicMatcher<number>();
  m.add(pattern, 1);
  return m.match(key).length > 0;
}

describe('subject-map', () => {
  it('subject-map - plain words are their own tokens; anything else is ~base64url, and decodes back', () => {
    expect(publishSubject('amq.topic', 'sensors.temp')).toBe('shardmq.x.~YW1xLnRvcGlj.sensors.temp');
    expect(publishSubject('logs', '')).toBe('shardmq.x.logs');
    expect(publishSubject('x', 'a..b')).toBe('shardmq.x.x.a.~.b');
    expect(publishSubject('x', '*.>')).toBe('shardmq.x.x.~Kg.~Pg');
    for (const w of ['', '*', '>', '~', 'ä', 'a b', 'k-1_Z']) expect(decodeToken(encodeToken(w))).toBe(w);
  });

  it('subject-map - bindings: exact where NATS can say it, the prefix where a # sits mid-pattern', () => {
    expect(bindingSubjects('topic', 'x', 'a.*.c')).toEqual({ subjects: ['shardmq.x.x.a.*.c'], exact: true });
    expect(bindingSubjects('topic', 'x', 'a.#')).toEqual({ subjects: ['shardmq.x.x.a', 'shardmq.x.x.a.>'], exact: true });
    expect(bindingSubjects('topic', 'x', '#')).toEqual({ subjects: ['shardmq.x.x', 'shardmq.x.x.>'], exact: true });
    expect(bindingSubjects('topic', 'x', 'a.#.c')).toEqual({ subjects: ['shardmq.x.x.a', 'shardmq.x.x.a.>'], exact: false });
    expect(bindingSubjects('direct', 'x', 'a.*')).toEqual({ subjects: ['shardmq.x.x.a.~Kg'], exact: true });
    expect(bindingSubjects('fanout', 'x', 'ignored')).toEqual({ subjects: ['shardmq.x.x', 'shardmq.x.x.>'], exact: true });
    expect(bindingSubjects('headers', 'x', '').exact).toBe(false);
  });

  it('subject-map - property: a key the AMQP pattern matches always matches one of its subjects; exact ones match nothing else', () => {
    const word = fc.constantFrom('a', 'b', '', 'ä', '*x');
    const key = fc.array(word, { maxLength: 4 }).map((ws) => ws.join('.'));
    const pword = fc.constantFrom('a', 'b', '*', '#', '');
    const pattern = fc.array(pword, { maxLength: 4 }).map((ws) => ws.join('.'));
    fc.assert(
      fc.property(pattern, key, (p, k) => {
        const { subjects, exact } = bindingSubjects('topic', 'ex', p);
        const subject = publishSubject('ex', k);
        const viaNats = subjects.some((s) => natsMatches(s, subject));
        const viaAmqp = amqpMatches(p, k);
        if (viaAmqp) expect(viaNats).toBe(true);
        if (exact) expect(viaNats).toBe(viaAmqp);
      }),
      { numRuns: 3000, seed: 17 },
    );
  });
});
