import { describe, expect, it } from 'vitest';
import { LightRoutes } from '../../src/control/light-routes.js';
import { Topology } from '../../src/control/topology.js';
import { PUBLISH_FLAG_LIGHT } from '../../src/protocol/ring-record-codec.js';
import type { BindingObserver } from '../../src/router/exchange-registry.js';

const PLAIN = { durable: false, exclusive: false, autoDelete: false, arguments: {} };

function observed(): { observer: BindingObserver; seen: string[] } {
  const seen: string[] = [];
  return {
    seen,
    observer: {
      bindingAdded: (source, type, key) => void seen.push(`+${source}/${type}/${key}`),
      bindingRemoved: (source, type, key) => void seen.push(`-${source}/${type}/${key}`),
    },
  };
}

describe('light routes', () => {
  it("answers the carrier's shard only for keys a pattern of that exchange matches", () => {
    const routes = new LightRoutes<string>(
      () => null,
      (v) => v,
    );
    const x = routes.open('amq.topic', 'amq.gen-c', 3);
    routes.add(x, 'a.*', 'g1');
    routes.add(x, 'b.#', 'g2');
    expect(routes.shardFor('amq.topic', 'a.1')).toBe(3);
    expect(routes.shardFor('amq.topic', 'b')).toBe(3);
    expect(routes.shardFor('amq.topic', 'a.1.2')).toBe(-1);
    expect(routes.shardFor('other', 'a.1')).toBe(-1);
    routes.remove(x, 'a.*', 'g1');
    expect(routes.shardFor('amq.topic', 'a.1')).toBe(-1);
    routes.close('amq.topic');
    expect(routes.shardFor('amq.topic', 'b.1')).toBe(-1);
    expect(routes.size).toBe(0);
  });

  it('tells cluster interest of each pattern added and removed, read at each change (set on joining)', () => {
    let observer: BindingObserver | null = null;
    const routes = new LightRoutes<string>(
      () => observer,
      (v) => v,
    );
    const x = routes.open('amq.topic', 'q', 0);
    routes.add(x, 'early', 'early'); // before the cluster link: nobody to tell
    const o = observed();
    observer = o.observer;
    routes.add(x, 'a.*', 'g1');
    routes.remove(x, 'a.*', 'g1');
    routes.remove(x, 'a.*', 'g1'); // not bound any more: nothing to tell
    expect(o.seen).toEqual(['+amq.topic/topic/a.*', '-amq.topic/topic/a.*']);
    // What the cluster link reads on joining: every pattern there is, with its exchange.
    const all: string[] = [];
    routes.eachPattern((exchange, pattern) => void all.push(`${exchange} ${pattern}`));
    expect(all).toEqual(['amq.topic early']);
  });
});

describe('topology - routing with light routes', () => {
  it('adds the carrier shard (once) and the light flag when a pattern matches; neither when none does', () => {
    const t = new Topology(4);
    t.declareQueue('bound', PLAIN, false, 0);
    const boundShard = (t.getQueue('bound') as { shard: number }).shard;
    t.registry.bindQueue('amq.topic', 'bound', 'a.*', {});
    const routes = new LightRoutes<string>(
      () => null,
      (v) => v,
    );
    t.light = routes;
    const carrierShard = (boundShard + 1) % 4;
    const x = routes.open('amq.topic', 'amq.gen-c', carrierShard);
    routes.add(x, 'a.x', 'g');
    routes.add(x, 'z.#', 'g2');
    expect(t.route('amq.topic', 'a.x')).toMatchObject({ shards: [boundShard, carrierShard], flags: PUBLISH_FLAG_LIGHT });
    expect(t.route('amq.topic', 'a.y')).toMatchObject({ shards: [boundShard], flags: 0 });
    expect(t.route('amq.topic', 'z.1')).toMatchObject({ shards: [carrierShard], flags: PUBLISH_FLAG_LIGHT });
    expect(t.route('amq.topic', 'q')).toMatchObject({ shards: [], flags: 0 });
    // The carrier on the bound queue's shard: that shard once.
    const y = routes.open('amq.direct', 'amq.gen-d', boundShard);
    t.registry.bindQueue('amq.direct', 'bound', 'k', {});
    routes.add(y, 'k', 'g3');
    expect(t.route('amq.direct', 'k')).toMatchObject({ shards: [boundShard], flags: PUBLISH_FLAG_LIGHT });
  });
});
