import { describe, expect, it } from 'vitest';
import { Topology } from '../../src/control/topology.js';

const S = 'staging\u001f';
const PLAIN = { durable: false, exclusive: false, autoDelete: false, arguments: {} };

describe('topology - per vhost', () => {
  it('counts and lists each vhost`s queues apart, / included, and keeps each list sorted', () => {
    const t = new Topology(2);
    for (const name of ['b', 'a', `${S}z`, `${S}y`, 'c']) t.declareQueue(name, PLAIN, false, 0);
    expect([t.queueCountIn(''), t.queueCountIn(S)]).toEqual([3, 2]);
    expect([...t.sortedQueueNamesIn('')]).toEqual(['a', 'b', 'c']);
    expect([...t.sortedQueueNamesIn(S)]).toEqual([`${S}y`, `${S}z`]);
    t.removeQueue(`${S}y`);
    t.removeQueue('a');
    expect([...t.sortedQueueNamesIn('')]).toEqual(['b', 'c']);
    expect([...t.sortedQueueNamesIn(S)]).toEqual([`${S}z`]);
    expect([t.queueCountIn(''), t.queueCountIn(S)]).toEqual([2, 1]);
  });

  it('a server-named queue is asked for by the vhost`s prefix and gets a name in that vhost', () => {
    const t = new Topology(1);
    const { queue } = t.declareQueue(S, PLAIN, false, 7);
    expect(queue.name.startsWith(`${S}amq.gen-`)).toBe(true);
    expect(() => t.declareQueue(S, PLAIN, true, 7)).toThrow("no queue '' in vhost 'staging'");
    // amq. is reserved in every vhost; the error names the local name.
    expect(() => t.declareQueue(`${S}amq.mine`, PLAIN, false, 0)).toThrow("queue name 'amq.mine' contains reserved prefix 'amq.*'");
  });

  it('max-queues is per vhost: at the limit that vhost refuses, the others declare on', () => {
    const t = new Topology(1);
    t.queueLimit = (prefix) => (prefix === S ? 2 : Number.POSITIVE_INFINITY);
    t.declareQueue(`${S}1`, PLAIN, false, 0);
    t.declareQueue(`${S}2`, PLAIN, false, 0);
    expect(() => t.declareQueue(`${S}3`, PLAIN, false, 0)).toThrow(
      expect.objectContaining({
        code: 'precondition_failed',
        message: "cannot declare queue '3': queue limit in virtual host 'staging' is reached",
      }),
    );
    // A redeclare of an existing queue is no new queue; / is unlimited.
    expect(t.declareQueue(`${S}1`, PLAIN, false, 0).created).toBe(false);
    for (let i = 0; i < 10; i++) t.declareQueue(`q${i}`, PLAIN, false, 0);
    t.removeQueue(`${S}2`);
    expect(t.declareQueue(`${S}3`, PLAIN, false, 0).created).toBe(true);
  });

  it('routing: a vhost`s default exchange finds its queue, and an alternate exchange is one of the same vhost', () => {
    const t = new Topology(4);
    const durable = t.declareQueue(`${S}orders`, { ...PLAIN, durable: true }, false, 0).queue;
    t.declareQueue('orders', PLAIN, false, 0);
    expect(t.route(S, 'orders')).toMatchObject({ shards: [durable.shard], confirmFromShard: true });
    expect(t.route('', 'orders').confirmFromShard).toBe(false);
    t.registry.declareExchange(`${S}main`, 'direct', { arguments: { 'alternate-exchange': 'ae' } });
    t.registry.declareExchange(`${S}ae`, 'fanout');
    t.registry.declareExchange('ae', 'fanout');
    t.registry.bindQueue(`${S}ae`, `${S}orders`, '');
    t.registry.bindQueue('ae', 'orders', '');
    expect(t.route(`${S}main`, 'unrouted')).toMatchObject({ exchange: `${S}ae`, shards: [durable.shard] });
  });
});
