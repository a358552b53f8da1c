/**
 * Exchange registry: routing per exchange type, the default and amq.* exchanges, declare/delete
 * rules, exchange-to-exchange bindings, auto-delete, and a seeded property run against a naive model.
 * Replay a failing property case with SHARDMQ_SEED=<seed printed in the message>.
 */
import { describe, expect, it } from 'vitest';
import {
  ExchangeRegistry,
  ExchangeType,
  PREDECLARED_EXCHANGES,
  RouterError,
  type ExchangeOptions,
  type MessageHeaders,
} from '../../src/router/exchange-registry.js';
import { topicMatches } from '../../src/router/topic-matcher.js';
import { Prng, testSeed } from '../helpers/prng.js';

const sorted = <T>(xs: readonly T[]): T[] => [...xs].sort();

/** Runs `fn`, expecting a RouterError; returns it for further checks. */
function routerError(fn: () => unknown): RouterError {
  try {
    fn();
  } catch (e) {
    if (e instanceof RouterError) return e;
    throw e;
  }
  throw new Error('expected a RouterError, got none');
}

function registry(): ExchangeRegistry<string> {
  return new ExchangeRegistry<string>();
}

// ---------------------------------------------------------------------------------------------------
// Routing per type

describe('exchange registry - direct', () => {
  it('routes on binding key equal to routing key', () => {
    const r = registry();
    r.declareExchange('d', ExchangeType.direct);
    r.bindQueue('d', 'q1', 'red');
    r.bindQueue('d', 'q2', 'red');
    r.bindQueue('d', 'q2', 'green');
    r.bindQueue('d', 'q3', '');
    expect(r.route('d', 'red')).toEqual(['q1', 'q2']);
    expect(r.route('d', 'green')).toEqual(['q2']);
    expect(r.route('d', '')).toEqual(['q3']);
    expect(r.route('d', 'blue')).toEqual([]);
    expect(r.route('d', 'RED')).toEqual([]);
    // `*` and `#` are literals for a direct exchange.
    r.bindQueue('d', 'q4', '#');
    expect(r.route('d', 'red')).toEqual(['q1', 'q2']);
    expect(r.route('d', '#')).toEqual(['q4']);
  });

  it('answers the same frozen array while bindings are unchanged, a new one after', () => {
    const r = registry();
    r.declareExchange('d', 'direct');
    r.bindQueue('d', 'q1', 'k');
    const a = r.route('d', 'k');
    expect(r.route('d', 'k')).toBe(a);
    expect(Object.isFrozen(a)).toBe(true);
    r.bindQueue('d', 'q2', 'k');
    const b = r.route('d', 'k');
    expect(b).not.toBe(a);
    expect(a).toEqual(['q1']); // the snapshot handed out earlier is untouched
    expect(b).toEqual(['q1', 'q2']);
  });

  it('keeps a queue bound with the same key and two argument tables until both go', () => {
    const r = registry();
    r.declareExchange('d', 'direct');
    expect(r.bindQueue('d', 'q', 'k', { v: 1 })).toBe(true);
    expect(r.bindQueue('d', 'q', 'k', { v: 2 })).toBe(true);
    expect(r.route('d', 'k')).toEqual(['q']);
    r.unbindQueue('d', 'q', 'k', { v: 1 });
    expect(r.route('d', 'k')).toEqual(['q']);
    r.unbindQueue('d', 'q', 'k', { v: 2 });
    expect(r.route('d', 'k')).toEqual([]);
  });
});

describe('exchange registry - fanout', () => {
  it('routes to every bound queue once, whatever the keys', () => {
    const r = registry();
    r.declareExchange('f', 'fanout');
    r.bindQueue('f', 'q1', 'a');
    r.bindQueue('f', 'q2', 'b');
    r.bindQueue('f', 'q1', 'c');
    expect(r.route('f', 'zzz')).toEqual(['q1', 'q2']);
    expect(r.route('f', '')).toBe(r.route('f', 'other'));
    r.unbindQueue('f', 'q1', 'a');
    expect(r.route('f', 'x')).toEqual(['q1', 'q2']);
    r.unbindQueue('f', 'q1', 'c');
    expect(r.route('f', 'x')).toEqual(['q2']);
  });
});

describe('exchange registry - topic', () => {
  it('routes AMQP patterns', () => {
    const r = registry();
    r.declareExchange('t', 'topic');
    r.bindQueue('t', 'all', '#');
    r.bindQueue('t', 'orange', '*.orange.*');
    r.bindQueue('t', 'rabbit', '*.*.rabbit');
    r.bindQueue('t', 'lazy', 'lazy.#');
    const table: [string, string[]][] = [
      ['quick.orange.rabbit', ['all', 'orange', 'rabbit']],
      ['lazy.orange.elephant', ['all', 'lazy', 'orange']],
      ['quick.orange.fox', ['all', 'orange']],
      ['lazy.brown.fox', ['all', 'lazy']],
      ['lazy', ['all', 'lazy']],
      ['quick.brown.fox', ['all']],
      ['', ['all']],
      ['lazy.orange.male.rabbit', ['all', 'lazy']],
    ];
    for (const [key, expected] of table) expect(sorted(r.route('t', key)), key).toEqual(expected);
  });

  it('is the predeclared amq.topic too, and unbinding a pattern stops it', () => {
    const r = registry();
    r.bindQueue('amq.topic', 'q', 'a.*');
    expect(r.route('amq.topic', 'a.b')).toEqual(['q']);
    r.unbindQueue('amq.topic', 'q', 'a.*');
    expect(r.route('amq.topic', 'a.b')).toEqual([]);
  });
});

describe('exchange registry - headers', () => {
  it('routes on headers, ignoring the routing key', () => {
    const r = registry();
    r.declareExchange('h', 'headers');
    r.bindQueue('h', 'all', '', { 'x-match': 'all', format: 'pdf', type: 'report' });
    r.bindQueue('h', 'any', 'ignored', { 'x-match': 'any', format: 'pdf', type: 'log' });
    r.bindQueue('h', 'every', '');
    r.bindQueue('h', 'none', '', { 'x-match': 'any' });
    expect(sorted(r.route('h', 'k', { format: 'pdf', type: 'report' }))).toEqual(['all', 'any', 'every']);
    expect(sorted(r.route('h', 'k', { type: 'log' }))).toEqual(['any', 'every']);
    expect(sorted(r.route('h', 'k', null))).toEqual(['every']);
    expect(sorted(r.route('h', 'k'))).toEqual(['every']);
  });

  it('supports -with-x modes and presence-only arguments', () => {
    const r = registry();
    r.bindQueue('amq.headers', 'withx', '', { 'x-match': 'all-with-x', 'x-tenant': 'a' });
    r.bindQueue('amq.headers', 'plain', '', { 'x-match': 'all', 'x-tenant': 'a', kind: null });
    expect(r.route('amq.headers', '', { 'x-tenant': 'a' })).toEqual(['withx']);
    expect(sorted(r.route('amq.headers', '', { 'x-tenant': 'a', kind: 1 }))).toEqual(['plain', 'withx']);
    expect(r.route('amq.headers', '', { 'x-tenant': 'b', kind: 'x' })).toEqual(['plain']);
  });

  it('deduplicates a queue matched by several bindings', () => {
    const r = registry();
    r.declareExchange('h', 'headers');
    for (let i = 0; i < 20; i++) r.bindQueue('h', `q${i % 12}`, '', { n: i % 2 === 0 ? 'even' : 'odd', i });
    for (let i = 0; i < 20; i++) r.bindQueue('h', `q${i % 12}`, '', { 'x-match': 'any', n: 'even', j: i });
    const result = r.route('h', '', { n: 'even' });
    expect(new Set(result).size).toBe(result.length);
    expect(sorted(result)).toEqual(sorted(['q0', 'q2', 'q4', 'q6', 'q8', 'q10', 'q1', 'q3', 'q5', 'q7', 'q9', 'q11']));
  });

  it('refuses a bad x-match at bind time', () => {
    const r = registry();
    r.declareExchange('h', 'headers');
    const e = routerError(() => r.bindQueue('h', 'q', '', { 'x-match': 'most' }));
    expect(e.code).toBe('precondition_failed');
    expect(e.replyCode).toBe(406);
    expect(r.listBindings()).toEqual([]);
    // Non-headers exchanges do not look at x-match.
    r.declareExchange('d', 'direct');
    expect(r.bindQueue('d', 'q', 'k', { 'x-match': 'most' })).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------------
// Default exchange and amq.*

describe('exchange registry - default exchange', () => {
  it('routes by queue name through defaultExchangeTarget', () => {
    const shards = new Map([
      ['orders', 2],
      ['audit', 0],
    ]);
    const r = new ExchangeRegistry<string, number>({
      routeTarget: (q) => shards.get(q)!,
      defaultExchangeTarget: (name) => shards.get(name),
    });
    expect(r.route('', 'orders')).toEqual([2]);
    expect(r.route('', 'audit')).toEqual([0]);
    expect(r.route('', 'missing')).toEqual([]);
    expect(r.route('', 'orders')).toBe(r.route('', 'orders')); // cached, no allocation per message
    expect(r.routeIgnoringHeaders('', 'orders')).toEqual([2]);
  });

  it('routes nowhere without defaultExchangeTarget', () => {
    expect(registry().route('', 'q')).toEqual([]);
  });

  it('exists, but refuses declare, passive declare, delete and bindings', () => {
    const r = registry();
    expect(r.hasExchange('')).toBe(true);
    expect(r.getExchange('')).toMatchObject({ name: '', type: 'direct', durable: true, builtIn: true });
    r.declareExchange('x', 'direct');
    const refused: (() => unknown)[] = [
      () => r.declareExchange('', 'direct'),
      () => r.declareExchange('', 'direct', { durable: true }),
      () => r.declareExchange('', 'direct', {}, true),
      () => r.deleteExchange(''),
      () => r.bindQueue('', 'q', 'q'),
      () => r.unbindQueue('', 'q', 'q'),
      () => r.bindExchange('', 'x', 'k'),
      () => r.bindExchange('x', '', 'k'),
      () => r.unbindExchange('', 'x', 'k'),
      () => r.unbindExchange('x', '', 'k'),
    ];
    for (const op of refused) {
      const e = routerError(op);
      expect(e.code).toBe('access_refused');
      expect(e.replyCode).toBe(403);
      expect(e.message).toBe('operation not permitted on the default exchange');
    }
  });
});

describe('exchange registry - amq.* exchanges', () => {
  it('are predeclared, durable, with the right types', () => {
    const r = registry();
    for (const { name, type } of PREDECLARED_EXCHANGES) {
      expect(r.getExchange(name)).toMatchObject({ name, type, durable: true, autoDelete: false, builtIn: true });
    }
    expect(PREDECLARED_EXCHANGES.map((x) => x.name)).toEqual(
      expect.arrayContaining(['amq.direct', 'amq.fanout', 'amq.topic', 'amq.headers']),
    );
    expect(r.listExchanges().map((x) => x.name)[0]).toBe('');
  });

  it('accept an equivalent or passive redeclare, refuse an inequivalent one', () => {
    const r = registry();
    expect(r.declareExchange('amq.direct', 'direct', { durable: true })).toEqual({ created: false });
    expect(r.declareExchange('amq.fanout', 'anything', {}, true)).toEqual({ created: false });
    const e = routerError(() => r.declareExchange('amq.direct', 'direct', { durable: false }));
    expect(e.code).toBe('precondition_failed');
    expect(e.message).toBe("inequivalent arg 'durable' for exchange 'amq.direct' in vhost '/': received 'false' but current is 'true'");
  });

  it('refuse creating other amq. names', () => {
    const r = registry();
    const e = routerError(() => r.declareExchange('amq.mine', 'direct'));
    expect(e.code).toBe('access_refused');
    expect(e.message).toBe("exchange name 'amq.mine' contains reserved prefix 'amq.*'");
    expect(r.hasExchange('amq.mine')).toBe(false);
    // A passive declare of an absent amq. name is a plain not_found.
    expect(routerError(() => r.declareExchange('amq.mine', 'direct', {}, true)).code).toBe('not_found');
  });

  it('cannot be deleted', () => {
    const r = registry();
    for (const name of ['amq.direct', 'amq.topic', 'amq.absent']) {
      const e = routerError(() => r.deleteExchange(name));
      expect(e.code).toBe('access_refused');
      expect(e.message).toBe(`deletion of system exchange '${name}' in vhost '/' not allowed`);
    }
    expect(r.hasExchange('amq.direct')).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------------
// Declare and delete

describe('exchange registry - declare', () => {
  it('creates once, then accepts equivalent redeclares', () => {
    const r = registry();
    expect(r.declareExchange('x', 'topic', { durable: true })).toEqual({ created: true });
    expect(r.declareExchange('x', 'topic', { durable: true, arguments: { other: 1 } })).toEqual({ created: false });
    expect(r.getExchange('x')).toEqual({
      name: 'x',
      type: 'topic',
      durable: true,
      autoDelete: false,
      internal: false,
      arguments: {},
      builtIn: false,
    });
  });

  it('passive: not_found when absent, no options checked when present', () => {
    const r = registry();
    const e = routerError(() => r.declareExchange('nope', 'direct', {}, true));
    expect(e.code).toBe('not_found');
    expect(e.replyCode).toBe(404);
    expect(e.message).toBe("no exchange 'nope' in vhost '/'");
    expect(r.hasExchange('nope')).toBe(false);
    r.declareExchange('x', 'fanout', { durable: true });
    expect(r.declareExchange('x', 'direct', { durable: false, internal: true }, true)).toEqual({ created: false });
  });

  it.each<[field: string, type: string, options: Partial<ExchangeOptions>, tail: string]>([
    ['type', 'headers', {}, "received 'headers' but current is 'direct'"],
    ['durable', 'direct', { durable: true }, "received 'true' but current is 'false'"],
    ['auto_delete', 'direct', { autoDelete: true }, "received 'true' but current is 'false'"],
    ['internal', 'direct', { internal: true }, "received 'true' but current is 'false'"],
    ['alternate-exchange', 'direct', { arguments: { 'alternate-exchange': 'ae' } }, "received 'ae' but current is none"],
  ])('inequivalent %s is precondition_failed', (field, type, options, tail) => {
    const r = registry();
    r.declareExchange('x', 'direct');
    const e = routerError(() => r.declareExchange('x', type, options));
    expect(e.code).toBe('precondition_failed');
    expect(e.message).toBe(`inequivalent arg '${field}' for exchange 'x' in vhost '/': ${tail}`);
  });

  it('the RabbitMQ wording for a type clash, with a custom vhost', () => {
    const r = new ExchangeRegistry<string>();
    r.declareExchange('prod\u001flogs', 'direct');
    expect(() => r.declareExchange('prod\u001flogs', 'fanout')).toThrow(
      "inequivalent arg 'type' for exchange 'logs' in vhost 'prod': received 'fanout' but current is 'direct'",
    );
  });

  it('unknown type is command_invalid, even for an existing name', () => {
    const r = registry();
    const e = routerError(() => r.declareExchange('x', 'x-consistent-hash'));
    expect(e.code).toBe('command_invalid');
    expect(e.message).toBe("unknown exchange type 'x-consistent-hash'");
    expect(routerError(() => r.declareExchange('amq.direct', 'bogus')).code).toBe('command_invalid');
  });

  it('copies the arguments, so later edits by the caller change nothing', () => {
    const r = registry();
    const args: Record<string, unknown> = { 'alternate-exchange': 'ae' };
    r.declareExchange('x', 'direct', { arguments: args });
    args['alternate-exchange'] = 'other';
    expect(r.getExchange('x')!.arguments).toEqual({ 'alternate-exchange': 'ae' });
    expect(r.declareExchange('x', 'direct', { arguments: { 'alternate-exchange': 'ae' } })).toEqual({ created: false });
  });
});

describe('exchange registry - delete', () => {
  it('deleting an absent exchange succeeds silently', () => {
    expect(registry().deleteExchange('nope')).toEqual({ deleted: false, autoDeleted: [] });
    expect(registry().deleteExchange('nope', true)).toEqual({ deleted: false, autoDeleted: [] });
  });

  it('ifUnused refuses an exchange that is a binding source, not one that is only a destination', () => {
    const r = registry();
    r.declareExchange('src', 'fanout');
    r.declareExchange('dst', 'fanout');
    r.bindExchange('dst', 'src', '');
    const e = routerError(() => r.deleteExchange('src', true));
    expect(e.code).toBe('precondition_failed');
    expect(e.message).toBe("exchange 'src' in vhost '/' in use");
    expect(r.deleteExchange('dst', true)).toEqual({ deleted: true, autoDeleted: [] });
    expect(r.listBindings()).toEqual([]);
    expect(r.deleteExchange('src', true)).toEqual({ deleted: true, autoDeleted: [] });
  });

  it('drops the bindings both ways, and publishing to it is then not_found', () => {
    const r = registry();
    r.declareExchange('a', 'fanout');
    r.declareExchange('b', 'fanout');
    r.declareExchange('c', 'fanout');
    r.bindExchange('b', 'a', '');
    r.bindExchange('c', 'b', '');
    r.bindQueue('b', 'qb', '');
    r.bindQueue('c', 'qc', '');
    expect(sorted(r.route('a', ''))).toEqual(['qb', 'qc']);
    expect(r.deleteExchange('b')).toEqual({ deleted: true, autoDeleted: [] });
    expect(r.route('a', '')).toEqual([]);
    expect(r.route('c', '')).toEqual(['qc']);
    expect(r.listBindings().map((b) => `${b.source}->${b.destination}`)).toEqual(['c->qc']);
    const e = routerError(() => r.route('b', ''));
    expect(e.code).toBe('not_found');
    expect(e.message).toBe("no exchange 'b' in vhost '/'");
    // It can be declared again, afresh.
    r.declareExchange('b', 'direct');
    expect(r.route('b', '')).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------------
// Bindings

describe('exchange registry - bindings', () => {
  it('binding twice is a no-op; argument key order does not matter', () => {
    const r = registry();
    r.declareExchange('d', 'direct');
    expect(r.bindQueue('d', 'q', 'k', { a: 1, b: [1, { c: 2 }] })).toBe(true);
    expect(r.bindQueue('d', 'q', 'k', { b: [1, { c: 2 }], a: 1 })).toBe(false);
    expect(r.bindQueue('d', 'q', 'k')).toBe(true);
    expect(r.bindQueue('d', 'q', 'k', {})).toBe(false);
    expect(r.bindQueue('d', 'q', 'k', null)).toBe(false);
    expect(r.bindingCount).toBe(2);
    expect(r.listBindings()).toEqual([
      { source: 'd', destination: 'q', destinationType: 'queue', routingKey: 'k', arguments: { a: 1, b: [1, { c: 2 }] } },
      { source: 'd', destination: 'q', destinationType: 'queue', routingKey: 'k', arguments: {} },
    ]);
  });

  it('a queue and an exchange with the same name are different destinations', () => {
    const r = registry();
    r.declareExchange('src', 'direct');
    r.declareExchange('same', 'direct');
    expect(r.bindQueue('src', 'same', 'k')).toBe(true);
    expect(r.bindExchange('same', 'src', 'k')).toBe(true);
    expect(r.bindingCount).toBe(2);
  });

  it('unbinding a missing binding is a no-op, but the exchanges must exist', () => {
    const r = registry();
    r.declareExchange('d', 'direct');
    expect(r.unbindQueue('d', 'q', 'k')).toEqual({ autoDeleted: [] });
    expect(r.unbindExchange('d', 'd', 'k')).toEqual({ autoDeleted: [] });
    expect(routerError(() => r.unbindQueue('nope', 'q', 'k')).code).toBe('not_found');
    expect(routerError(() => r.unbindExchange('nope', 'd', 'k')).code).toBe('not_found');
    expect(routerError(() => r.unbindExchange('d', 'nope', 'k')).code).toBe('not_found');
  });

  it('binding to or from a missing exchange is not_found and stores nothing', () => {
    const r = registry();
    r.declareExchange('d', 'direct');
    expect(routerError(() => r.bindQueue('nope', 'q', 'k')).message).toBe("no exchange 'nope' in vhost '/'");
    expect(routerError(() => r.bindExchange('nope', 'd', 'k')).message).toBe("no exchange 'nope' in vhost '/'");
    expect(routerError(() => r.bindExchange('d', 'nope', 'k')).message).toBe("no exchange 'nope' in vhost '/'");
    expect(r.listBindings()).toEqual([]);
  });

  it('removeQueue drops every binding of the queue only', () => {
    const r = registry();
    r.declareExchange('d', 'direct');
    r.declareExchange('t', 'topic');
    r.bindQueue('d', 'q1', 'a');
    r.bindQueue('d', 'q1', 'b');
    r.bindQueue('t', 'q1', '#');
    r.bindQueue('d', 'q2', 'a');
    expect(r.removeQueue('q1')).toEqual({ autoDeleted: [] });
    expect(r.route('d', 'a')).toEqual(['q2']);
    expect(r.route('d', 'b')).toEqual([]);
    expect(r.route('t', 'x')).toEqual([]);
    expect(r.removeQueue('q1')).toEqual({ autoDeleted: [] });
    expect(r.listBindings().map((b) => b.destination)).toEqual(['q2']);
  });

  it('queueKey is the binding identity, routeTarget the routed value, deduplicated', () => {
    interface Queue {
      name: string;
      shard: number;
    }
    const r = new ExchangeRegistry<Queue, number>({ queueKey: (q) => q.name, routeTarget: (q) => q.shard });
    r.declareExchange('d', 'direct');
    r.bindQueue('d', { name: 'a', shard: 1 }, 'k');
    r.bindQueue('d', { name: 'b', shard: 1 }, 'k');
    r.bindQueue('d', { name: 'c', shard: 3 }, 'k');
    expect(r.bindQueue('d', { name: 'c', shard: 3 }, 'k')).toBe(false); // same key: same queue
    expect(r.route('d', 'k')).toEqual([1, 3]);
    // Unbinding one queue of shard 1 keeps the shard while the other queue is bound.
    r.unbindQueue('d', { name: 'a', shard: 1 }, 'k');
    expect(r.route('d', 'k')).toEqual([1, 3]);
    r.removeQueue({ name: 'b', shard: 1 });
    expect(r.route('d', 'k')).toEqual([3]);
    expect(r.listBindings().map((b) => b.destination)).toEqual(['c']);
  });
});

// ---------------------------------------------------------------------------------------------------
// Exchange-to-exchange

describe('exchange registry - exchange-to-exchange bindings', () => {
  it('follow chains with the same routing key, filtered at every hop', () => {
    const r = registry();
    r.declareExchange('entry', 'topic');
    r.declareExchange('mid', 'direct');
    r.declareExchange('last', 'fanout');
    r.bindExchange('mid', 'entry', 'orders.*');
    r.bindExchange('last', 'mid', 'orders.eu');
    r.bindQueue('mid', 'eu-mid', 'orders.eu');
    r.bindQueue('mid', 'us-mid', 'orders.us');
    r.bindQueue('last', 'sink', 'whatever');
    expect(sorted(r.route('entry', 'orders.eu'))).toEqual(['eu-mid', 'sink']);
    expect(sorted(r.route('entry', 'orders.us'))).toEqual(['us-mid']);
    expect(r.route('entry', 'invoices.eu')).toEqual([]);
    r.unbindExchange('last', 'mid', 'orders.eu');
    expect(sorted(r.route('entry', 'orders.eu'))).toEqual(['eu-mid']);
  });

  it('give a queue reachable by two paths once (fan-in)', () => {
    const r = registry();
    r.declareExchange('top', 'fanout');
    r.declareExchange('left', 'fanout');
    r.declareExchange('right', 'fanout');
    r.bindExchange('left', 'top', '');
    r.bindExchange('right', 'top', '');
    r.bindQueue('top', 'shared', '');
    r.bindQueue('left', 'shared', '');
    r.bindQueue('right', 'shared', '');
    r.bindQueue('right', 'only-right', '');
    const result = r.route('top', 'k');
    expect(sorted(result)).toEqual(['only-right', 'shared']);
  });

  it('answers one contributing exchange as-is, merges several', () => {
    const r = registry();
    r.declareExchange('a', 'direct');
    r.declareExchange('b', 'direct');
    r.bindExchange('b', 'a', 'k');
    r.bindQueue('b', 'q', 'k');
    expect(r.route('a', 'k')).toBe(r.route('b', 'k'));
    r.bindQueue('a', 'q0', 'k');
    expect(r.route('a', 'k')).toEqual(['q0', 'q']);
  });

  it('terminate on cycles, including a self-binding', () => {
    const r = registry();
    for (const name of ['a', 'b', 'c']) r.declareExchange(name, 'fanout');
    r.bindExchange('b', 'a', '');
    r.bindExchange('c', 'b', '');
    r.bindExchange('a', 'c', '');
    r.bindExchange('a', 'a', '');
    r.bindQueue('c', 'qc', '');
    r.bindQueue('a', 'qa', '');
    for (const name of ['a', 'b', 'c']) expect(sorted(r.route(name, 'x'))).toEqual(['qa', 'qc']);
  });

  it('deliver through internal exchanges, which refuse direct publishes', () => {
    const r = registry();
    r.declareExchange('public', 'direct');
    r.declareExchange('hidden', 'fanout', { internal: true });
    r.bindExchange('hidden', 'public', 'k');
    r.bindQueue('hidden', 'q', '');
    expect(r.route('public', 'k')).toEqual(['q']);
    expect(r.route('public', 'other')).toEqual([]);
    for (const op of [() => r.route('hidden', 'k'), () => r.routeIgnoringHeaders('hidden', 'k')]) {
      const e = routerError(op);
      expect(e.code).toBe('access_refused');
      expect(e.message).toBe("cannot publish to internal exchange 'hidden' in vhost '/'");
    }
  });

  it('headers exchanges filter e2e bindings by headers too', () => {
    const r = registry();
    r.declareExchange('h', 'headers');
    r.declareExchange('d', 'direct');
    r.bindExchange('d', 'h', 'ignored', { kind: 'x' });
    r.bindQueue('d', 'q', 'rk');
    r.bindQueue('h', 'direct-q', '', { kind: 'y' });
    expect(r.route('h', 'rk', { kind: 'x' })).toEqual(['q']);
    expect(r.route('h', 'other', { kind: 'x' })).toEqual([]);
    expect(r.route('h', 'rk', { kind: 'y' })).toEqual(['direct-q']);
  });
});

describe('exchange registry - routeIgnoringHeaders', () => {
  it('over-approximates headers exchanges, reached directly or through bindings', () => {
    const r = registry();
    r.declareExchange('h', 'headers');
    r.declareExchange('t', 'topic');
    r.declareExchange('h2', 'headers');
    r.bindQueue('h', 'q1', '', { a: 1 });
    r.bindQueue('h', 'q2', '', { 'x-match': 'any' });
    r.bindExchange('h2', 't', 'x.#');
    r.bindQueue('h2', 'q3', '', { b: 2 });
    r.bindExchange('t', 'h2', '', { c: 3 });
    r.bindQueue('t', 'qt', 'x.y');
    expect(sorted(r.routeIgnoringHeaders('h', 'k'))).toEqual(['q1', 'q2']);
    expect(r.route('h', 'k', { a: 2 })).toEqual([]);
    expect(sorted(r.routeIgnoringHeaders('t', 'x.y'))).toEqual(['q3', 'qt']);
    expect(r.route('t', 'x.y', {})).toEqual(['qt']);
    expect(sorted(r.route('t', 'x.y', { b: 2 }))).toEqual(['q3', 'qt']);
    // The topic filter still applies: only the headers test is skipped.
    expect(r.routeIgnoringHeaders('t', 'y')).toEqual([]);
    expect(r.routeIgnoringHeaders('h2', 'y')).toEqual(['q3']);
    expect(sorted(r.routeIgnoringHeaders('h2', 'x.y'))).toEqual(['q3', 'qt']);
    expect(r.route('h2', 'x.y', { b: 2 })).toEqual(['q3']);
    expect(sorted(r.route('h2', 'x.y', { b: 2, c: 3 }))).toEqual(['q3', 'qt']);
  });

  it('equals route for the other types', () => {
    const r = registry();
    r.bindQueue('amq.direct', 'q', 'k');
    expect(r.routeIgnoringHeaders('amq.direct', 'k')).toBe(r.route('amq.direct', 'k'));
    expect(routerError(() => r.routeIgnoringHeaders('nope', 'k')).code).toBe('not_found');
  });
});

// ---------------------------------------------------------------------------------------------------
// Auto-delete

describe('exchange registry - auto-delete', () => {
  it('is not deleted when created without bindings, but when its last binding goes', () => {
    const r = registry();
    r.declareExchange('ad', 'direct', { autoDelete: true });
    expect(r.hasExchange('ad')).toBe(true);
    r.bindQueue('ad', 'q', 'a');
    r.bindQueue('ad', 'q', 'b');
    expect(r.unbindQueue('ad', 'q', 'a')).toEqual({ autoDeleted: [] });
    expect(r.unbindQueue('ad', 'q', 'b')).toEqual({ autoDeleted: ['ad'] });
    expect(r.hasExchange('ad')).toBe(false);
  });

  it('on removeQueue, and only for exchanges left without bindings', () => {
    const r = registry();
    r.declareExchange('ad1', 'fanout', { autoDelete: true });
    r.declareExchange('ad2', 'fanout', { autoDelete: true });
    r.declareExchange('keep', 'fanout');
    r.bindQueue('ad1', 'q', '');
    r.bindQueue('ad2', 'q', '');
    r.bindQueue('ad2', 'other', '');
    r.bindQueue('keep', 'q', '');
    expect(r.removeQueue('q')).toEqual({ autoDeleted: ['ad1'] });
    expect(r.hasExchange('ad2')).toBe(true);
    expect(r.hasExchange('keep')).toBe(true);
  });

  it('cascades through exchange-to-exchange bindings', () => {
    const r = registry();
    r.declareExchange('top', 'fanout', { autoDelete: true });
    r.declareExchange('mid', 'fanout', { autoDelete: true });
    r.declareExchange('side', 'fanout');
    r.bindExchange('mid', 'top', '');
    r.bindQueue('mid', 'q', '');
    r.bindQueue('side', 'q', '');
    // q goes: mid loses its last binding, is deleted, which removes top → mid, so top goes too.
    expect(sorted(r.removeQueue('q').autoDeleted)).toEqual(['mid', 'top']);
    expect(r.listExchanges().map((x) => x.name)).not.toContain('top');
    expect(r.listBindings()).toEqual([]);
  });

  it('an explicit delete of a destination exchange may auto-delete its sources', () => {
    const r = registry();
    r.declareExchange('src', 'topic', { autoDelete: true });
    r.declareExchange('dst', 'topic');
    r.bindExchange('dst', 'src', '#');
    expect(r.deleteExchange('dst')).toEqual({ deleted: true, autoDeleted: ['src'] });
    expect(r.hasExchange('src')).toBe(false);
  });

  it('unbinding an auto-delete self-binding deletes the exchange', () => {
    const r = registry();
    r.declareExchange('loop', 'fanout', { autoDelete: true });
    r.bindExchange('loop', 'loop', '');
    expect(r.route('loop', '')).toEqual([]);
    expect(r.unbindExchange('loop', 'loop', '')).toEqual({ autoDeleted: ['loop'] });
  });
});

// ---------------------------------------------------------------------------------------------------
// Property: route() against a naive model over random operations

interface RefExchange {
  type: ExchangeType;
  autoDelete: boolean;
  internal: boolean;
}

interface RefBinding {
  source: string;
  kind: 'queue' | 'exchange';
  destination: string;
  key: string;
  /** Index into ARG_POOL; entries with the same tag are the same table. */
  args: number;
}

/** Binding arguments; `tag` names the table, so differently ordered copies share a tag. */
const ARG_POOL: readonly { tag: string; args: Record<string, unknown> | undefined }[] = [
  { tag: 'none', args: undefined },
  { tag: 'none', args: {} },
  { tag: 'a1', args: { a: 1 } },
  { tag: 'a1b', args: { a: 1, b: 'x' } },
  { tag: 'a1b', args: { b: 'x', a: 1 } },
  { tag: 'any-a1b', args: { 'x-match': 'any', a: 1, b: 'x' } },
  { tag: 'any', args: { 'x-match': 'any' } },
  { tag: 'all', args: { 'x-match': 'all' } },
  { tag: 'allx', args: { 'x-match': 'all-with-x', 'x-k': 'v' } },
  { tag: 'anyx', args: { 'x-match': 'any-with-x', 'x-k': 'v', a: 2 } },
  { tag: 'plainx', args: { 'x-k': 'v' } },
  { tag: 'void-a', args: { a: null } },
  { tag: 'any-void-b', args: { 'x-match': 'any', b: null, a: 2 } },
];

const HEADER_POOL: readonly (MessageHeaders | null)[] = [
  null,
  {},
  { a: 1 },
  { a: 2 },
  { a: 1, b: 'x' },
  { b: 'x' },
  { b: 'y', 'x-k': 'v' },
  { 'x-k': 'v' },
  { a: 2, 'x-k': 'w', b: 'x' },
];

const QUEUES = ['q0', 'q1', 'q2', 'q3', 'q4', 'q5'];
const EXCHANGES = ['x0', 'x1', 'x2', 'x3', 'x4', 'x5'];
const TYPES = [ExchangeType.direct, ExchangeType.fanout, ExchangeType.topic, ExchangeType.headers];
const WORDS = ['a', 'b', 'c'];
const PATTERN_WORDS = ['a', 'b', 'c', '*', '#'];

/** An independent, naive statement of the semantics. */
class ReferenceModel {
  readonly exchanges = new Map<string, RefExchange>();
  bindings: RefBinding[] = [];

  constructor(readonly target: (q: string) => string | number) {
    this.exchanges.set('', { type: 'direct', autoDelete: false, internal: false });
    for (const { name, type } of PREDECLARED_EXCHANGES) this.exchanges.set(name, { type, autoDelete: false, internal: false });
  }

  static same(a: RefBinding, b: RefBinding): boolean {
    return (
      a.source === b.source &&
      a.kind === b.kind &&
      a.destination === b.destination &&
      a.key === b.key &&
      ARG_POOL[a.args].tag === ARG_POOL[b.args].tag
    );
  }

  bind(b: RefBinding): void {
    if (!this.bindings.some((x) => ReferenceModel.same(x, b))) this.bindings.push(b);
  }

  /** Removes the bindings `drop` selects, then runs auto-delete from `candidates`; returns names deleted. */
  remove(drop: (b: RefBinding) => boolean, candidates: string[]): string[] {
    this.bindings = this.bindings.filter((b) => !drop(b));
    const deleted: string[] = [];
    while (candidates.length > 0) {
      const name = candidates.pop()!;
      const x = this.exchanges.get(name);
      if (x === undefined || !x.autoDelete || this.bindings.some((b) => b.source === name)) continue;
      deleted.push(name);
      this.deleteExchange(name, candidates);
    }
    return deleted;
  }

  deleteExchange(name: string, candidates: string[]): void {
    this.exchanges.delete(name);
    for (const b of this.bindings) {
      if (b.kind === 'exchange' && b.destination === name && b.source !== name) candidates.push(b.source);
    }
    this.bindings = this.bindings.filter((b) => b.source !== name && !(b.kind === 'exchange' && b.destination === name));
  }

  matches(x: RefExchange, b: RefBinding, key: string, headers: MessageHeaders | null, ignoreHeaders: boolean): boolean {
    switch (x.type) {
      case 'direct':
        return b.key === key;
      case 'fanout':
        return true;
      case 'topic':
        return topicMatches(b.key, key);
      case 'headers': {
        if (ignoreHeaders) return true;
        const args = ARG_POOL[b.args].args ?? {};
        const mode = (args['x-match'] as string | undefined) ?? 'all';
        const withX = mode.endsWith('-with-x');
        const pairs = Object.entries(args).filter(([k]) => k !== 'x-match' && (withX || !k.startsWith('x-')));
        const ok = ([k, v]: [string, unknown]): boolean => headers !== null && headers[k] !== undefined && (v === null || headers[k] === v);
        return mode.startsWith('all') ? pairs.every(ok) : pairs.some(ok);
      }
    }
  }

  /** The set of targets, or the error code. */
  route(exchange: string, key: string, headers: MessageHeaders | null, ignoreHeaders: boolean): Set<string | number> | string {
    const start = this.exchanges.get(exchange);
    if (start === undefined) return 'not_found';
    if (start.internal) return 'access_refused';
    const out = new Set<string | number>();
    if (exchange === '') {
      if (QUEUES.includes(key)) out.add(this.target(key));
      return out;
    }
    const visited = new Set([exchange]);
    const todo = [exchange];
    while (todo.length > 0) {
      const name = todo.shift()!;
      const x = this.exchanges.get(name)!;
      for (const b of this.bindings) {
        if (b.source !== name || !this.matches(x, b, key, headers, ignoreHeaders)) continue;
        if (b.kind === 'queue') out.add(this.target(b.destination));
        else if (!visited.has(b.destination)) {
          visited.add(b.destination);
          todo.push(b.destination);
        }
      }
    }
    return out;
  }
}

function randomKey(rng: Prng, words: readonly string[]): string {
  const n = rng.int(0, 3);
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(rng.pick(words));
  return out.join('.');
}

function codeOf(fn: () => unknown): string | null {
  try {
    fn();
    return null;
  } catch (e) {
    if (e instanceof RouterError) return e.code;
    throw e;
  }
}

const TARGET_MODES = [
  { label: 'queue names (R = Q)', target: (q: string): string | number => q },
  { label: 'queue → shard (R = shard index)', target: (q: string): string | number => Number(q.slice(1)) % 3 },
] as const;

describe.each(TARGET_MODES)('exchange registry - property: route vs naive model, $label', ({ target }) => {
  const suiteSeed = testSeed();
  const CASES = 12;
  const STEPS = 250;

  it(`agrees over ${CASES} random histories of ${STEPS} operations (seed ${suiteSeed})`, () => {
    const master = new Prng(suiteSeed);
    for (let c = 0; c < CASES; c++) {
      const rng = master.fork();
      const where = (step: number, op: string): string => `case ${c} step ${step} ${op} (replay with SHARDMQ_SEED=${suiteSeed})`;
      const reg = new ExchangeRegistry<string, string | number>({
        routeTarget: target,
        defaultExchangeTarget: (name) => (QUEUES.includes(name) ? target(name) : undefined),
        topicCacheSize: rng.chance(0.5) ? 0 : 16,
      });
      const ref = new ReferenceModel(target);
      const anyExchange = (): string => (rng.chance(0.1) ? rng.pick(['', 'amq.direct', 'amq.headers']) : rng.pick(EXCHANGES));

      // Operation mix (cumulative thresholds out of 100): some histories grow dense binding graphs,
      // others churn, so exchanges often lose their last binding and auto-delete cascades happen.
      const dense = rng.chance(0.5);
      const [declareTo, bindQueueTo, bindExchangeTo, unbindTo, removeQueueTo, deleteTo] = dense
        ? [12, 40, 55, 75, 83, 90]
        : [15, 30, 45, 70, 80, 90];

      for (let step = 0; step < STEPS; step++) {
        const roll = rng.int(0, 99);
        let op = '';
        if (roll < declareTo) {
          const name = rng.pick(EXCHANGES);
          const type = rng.pick(TYPES);
          const autoDelete = rng.chance(0.4);
          const internal = rng.chance(0.15);
          op = `declare ${name} ${type} ad=${autoDelete} int=${internal}`;
          const existing = ref.exchanges.get(name);
          const expected =
            existing === undefined || (existing.type === type && existing.autoDelete === autoDelete && existing.internal === internal)
              ? null
              : 'precondition_failed';
          expect(
            codeOf(() => reg.declareExchange(name, type, { autoDelete, internal })),
            where(step, op),
          ).toBe(expected);
          if (existing === undefined) ref.exchanges.set(name, { type, autoDelete, internal });
        } else if (roll < bindQueueTo) {
          const b: RefBinding = {
            source: anyExchange(),
            kind: 'queue',
            destination: rng.pick(QUEUES),
            key: randomKey(rng, PATTERN_WORDS),
            args: rng.int(0, ARG_POOL.length - 1),
          };
          op = `bindQueue ${JSON.stringify(b)}`;
          const expected = b.source === '' ? 'access_refused' : ref.exchanges.has(b.source) ? null : 'not_found';
          expect(
            codeOf(() => reg.bindQueue(b.source, b.destination, b.key, ARG_POOL[b.args].args)),
            where(step, op),
          ).toBe(expected);
          if (expected === null) ref.bind(b);
        } else if (roll < bindExchangeTo) {
          const b: RefBinding = {
            source: anyExchange(),
            kind: 'exchange',
            destination: anyExchange(),
            key: randomKey(rng, PATTERN_WORDS),
            args: rng.int(0, ARG_POOL.length - 1),
          };
          op = `bindExchange ${JSON.stringify(b)}`;
          const expected =
            b.source === '' || b.destination === ''
              ? 'access_refused'
              : ref.exchanges.has(b.source) && ref.exchanges.has(b.destination)
                ? null
                : 'not_found';
          expect(
            codeOf(() => reg.bindExchange(b.destination, b.source, b.key, ARG_POOL[b.args].args)),
            where(step, op),
          ).toBe(expected);
          if (expected === null) ref.bind(b);
        } else if (roll < unbindTo) {
          // Unbind: usually an existing binding (possibly spelled with a reordered argument table).
          let b: RefBinding;
          if (ref.bindings.length > 0 && rng.chance(0.8)) {
            const existing = rng.pick(ref.bindings);
            const sameTag = ARG_POOL.map((_a, i) => i).filter((i) => ARG_POOL[i].tag === ARG_POOL[existing.args].tag);
            b = { ...existing, args: rng.pick(sameTag) };
          } else {
            b = {
              source: rng.pick(EXCHANGES),
              kind: rng.chance(0.5) ? 'queue' : 'exchange',
              destination: rng.pick(rng.chance(0.5) ? QUEUES : EXCHANGES),
              key: randomKey(rng, PATTERN_WORDS),
              args: rng.int(0, ARG_POOL.length - 1),
            };
          }
          op = `unbind ${JSON.stringify(b)}`;
          const missing = !ref.exchanges.has(b.source) || (b.kind === 'exchange' && !ref.exchanges.has(b.destination));
          let expected: string[] | string;
          if (missing) expected = 'not_found';
          else {
            const found = ref.bindings.some((x) => ReferenceModel.same(x, b));
            expected = found ? ref.remove((x) => ReferenceModel.same(x, b), [b.source]) : [];
          }
          let actual: string[] | string;
          try {
            const res =
              b.kind === 'queue'
                ? reg.unbindQueue(b.source, b.destination, b.key, ARG_POOL[b.args].args)
                : reg.unbindExchange(b.destination, b.source, b.key, ARG_POOL[b.args].args);
            actual = sorted(res.autoDeleted);
          } catch (e) {
            if (!(e instanceof RouterError)) throw e;
            actual = e.code;
          }
          expect(actual, where(step, op)).toEqual(typeof expected === 'string' ? expected : sorted(expected));
        } else if (roll < removeQueueTo) {
          const q = rng.pick(QUEUES);
          op = `removeQueue ${q}`;
          const sources = ref.bindings.filter((b) => b.kind === 'queue' && b.destination === q).map((b) => b.source);
          const expected = ref.remove((b) => b.kind === 'queue' && b.destination === q, sources);
          expect(sorted(reg.removeQueue(q).autoDeleted), where(step, op)).toEqual(sorted(expected));
        } else if (roll < deleteTo) {
          const name = rng.pick(EXCHANGES);
          const ifUnused = rng.chance(0.5);
          op = `delete ${name} ifUnused=${ifUnused}`;
          let expected: { deleted: boolean; autoDeleted: string[] } | string;
          if (!ref.exchanges.has(name)) expected = { deleted: false, autoDeleted: [] };
          else if (ifUnused && ref.bindings.some((b) => b.source === name)) expected = 'precondition_failed';
          else {
            const candidates: string[] = [];
            ref.deleteExchange(name, candidates);
            expected = { deleted: true, autoDeleted: sorted(ref.remove(() => false, candidates)) };
          }
          let actual: { deleted: boolean; autoDeleted: string[] } | string;
          try {
            const res = reg.deleteExchange(name, ifUnused);
            actual = { deleted: res.deleted, autoDeleted: sorted(res.autoDeleted) };
          } catch (e) {
            if (!(e instanceof RouterError)) throw e;
            actual = e.code;
          }
          expect(actual, where(step, op)).toEqual(expected);
        } else {
          op = 'route only';
        }

        // State agrees.
        expect(sorted(reg.listExchanges().map((x) => x.name)), where(step, op)).toEqual(sorted([...ref.exchanges.keys()]));
        const actualBindings = reg.listBindings().map((b) => `${b.source}|${b.destinationType}|${b.destination}|${b.routingKey}`);
        const expectedBindings = ref.bindings.map((b) => `${b.source}|${b.kind}|${b.destination}|${b.key}`);
        expect(sorted(actualBindings), where(step, op)).toEqual(sorted(expectedBindings));

        // Routing agrees, for a few random messages.
        for (let m = 0; m < 4; m++) {
          const exchange = rng.chance(0.1) ? rng.pick(['', 'amq.direct', 'nope']) : rng.pick(EXCHANGES);
          const key = exchange === '' && rng.chance(0.7) ? rng.pick(QUEUES) : randomKey(rng, WORDS);
          const headers = rng.pick(HEADER_POOL);
          const msg = `${where(step, op)}: route ${JSON.stringify([exchange, key, headers])}`;
          for (const ignoreHeaders of [false, true]) {
            const expected = ref.route(exchange, key, headers, ignoreHeaders);
            let actual: readonly (string | number)[] | string;
            try {
              actual = ignoreHeaders ? reg.routeIgnoringHeaders(exchange, key) : reg.route(exchange, key, headers);
            } catch (e) {
              if (!(e instanceof RouterError)) throw e;
              actual = e.code;
            }
            if (typeof expected === 'string') {
              expect(actual, msg).toBe(expected);
              continue;
            }
            expect(typeof actual, msg).toBe('object');
            const list = actual as readonly (string | number)[];
            expect(new Set(list).size, `${msg}: duplicates in ${JSON.stringify(list)}`).toBe(list.length);
            expect(sorted(list.map(String)), `${msg} ignoreHeaders=${ignoreHeaders}`).toEqual(sorted([...expected].map(String)));
          }
        }
      }
    }
  });
});

describe('exchange registry - vhosts (qualified names)', () => {
  const S = 'staging\u001f';

  it('every vhost has its own default and amq.* exchanges; the default one routes to that vhost`s queue', () => {
    const queues = new Set(['orders', `${S}orders`]);
    const r = new ExchangeRegistry<string>({ defaultExchangeTarget: (name) => (queues.has(name) ? name : undefined) });
    expect(r.route('', 'orders')).toEqual(['orders']);
    expect(r.route(S, 'orders')).toEqual([`${S}orders`]);
    expect(r.route(S, 'missing')).toEqual([]);
    expect(r.hasExchange(`${S}amq.topic`)).toBe(true);
    expect(r.getExchange(`${S}amq.direct`)).toMatchObject({ type: 'direct', builtIn: true });
    // Made on first use (a shard learns a vhost from its traffic), and they are every vhost's.
    expect(r.hasExchange('other\u001famq.fanout')).toBe(true);
    expect(r.hasExchange('other\u001fnot-builtin')).toBe(false);
  });

  it('bindings of one exchange name in two vhosts are two exchanges` bindings', () => {
    const r = new ExchangeRegistry<string>();
    r.declareExchange('events', 'fanout');
    r.declareExchange(`${S}events`, 'fanout');
    r.bindQueue('events', 'q-root', '');
    r.bindQueue(`${S}events`, `${S}q`, '');
    expect(r.route('events', 'k')).toEqual(['q-root']);
    expect(r.route(`${S}events`, 'k')).toEqual([`${S}q`]);
    expect(r.route(`${S}amq.topic`, 'k')).toEqual([]);
  });

  it('errors name the vhost and the local name; reserved and default rules hold in every vhost', () => {
    const r = new ExchangeRegistry<string>();
    expect(routerError(() => r.route(`${S}nope`, 'k')).message).toBe("no exchange 'nope' in vhost 'staging'");
    expect(routerError(() => r.declareExchange(`${S}amq.mine`, 'direct')).message).toBe(
      "exchange name 'amq.mine' contains reserved prefix 'amq.*'",
    );
    expect(routerError(() => r.deleteExchange(`${S}amq.topic`)).code).toBe('access_refused');
    expect(routerError(() => r.bindQueue(S, 'q', 'k')).message).toBe('operation not permitted on the default exchange');
  });

  it('removeVhost drops that vhost`s exchanges and bindings only, and names the declared ones', () => {
    const r = new ExchangeRegistry<string>();
    r.declareExchange(`${S}events`, 'topic');
    r.declareExchange('events', 'topic');
    r.bindQueue(`${S}amq.topic`, `${S}q`, '#');
    r.bindQueue('amq.topic', 'q', '#');
    expect(r.removeVhost(S)).toEqual([`${S}events`]);
    expect(r.listExchanges().some((x) => x.name.startsWith(S))).toBe(false);
    expect(r.route('amq.topic', 'a')).toEqual(['q']);
    expect(() => r.removeVhost('')).toThrow(RangeError);
  });
});
