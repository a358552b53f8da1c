import { describe, expect, it } from 'vitest';
import { PublishPath } from '../../src/control/publish-path.js';
import { Topology } from '../../src/control/topology.js';
import { parseDestination } from '../../src/protocol/destination.js';
import { PUBLISH_FLAG_DEAD_LETTERED } from '../../src/protocol/ring-record-codec.js';
import { VHOST_SEPARATOR, vhostScope } from '../../src/protocol/vhost-name.js';
import { NO_LIMITS, Vhost } from '../../src/control/vhosts.js';
import { createLogger } from '../../src/log/logger.js';
import { FakeShards, principal } from './fakes.js';

/** The vhost `/`: a `/queue/` target routes by its default exchange (''). */
const ROOT = vhostScope('/');

const log = createLogger('silent');
const payload = new Uint8Array([1, 2, 3]);

function setup(shardCount = 4) {
  const shards = new FakeShards(shardCount);
  const topology = new Topology(shardCount);
  const path = new PublishPath(topology, shards.handles, false, log);
  return { shards, topology, path };
}

describe('publish path - target', () => {
  it('a /queue/ destination declares its queue once, on its shard, ahead of the message', () => {
    const { shards, topology, path } = setup();
    const target = path.target(parseDestination('/queue/jobs'), ROOT);
    const queue = topology.getQueue('jobs')!;
    expect(target).toEqual({
      exchange: '',
      routingKey: 'jobs',
      shards: [queue.shard],
      confirmFromShard: false,
      forward: null,
      vhostNumber: 0,
      ringExchange: '',
      flags: 0,
    });
    expect(shards.manageOps()).toEqual([[queue.shard, expect.objectContaining({ op: 'declareQueue', name: 'jobs', durable: false })]]);
    path.target(parseDestination('/queue/jobs'), ROOT);
    expect(shards.manageOps()).toHaveLength(1);
  });

  it('a topic nobody is bound to routes nowhere, and the write counts it unroutable', () => {
    const { path } = setup();
    const target = path.target(parseDestination('/topic/a.b'), ROOT);
    expect(target.shards).toEqual([]);
    expect(path.write(target, 1, 0, null, payload)).toBe(0);
    expect(path.unroutable).toBe(1);
  });

  it('an unknown exchange is not_found', () => {
    const { path } = setup();
    expect(() => path.target(parseDestination('/exchange/nope/k'), ROOT)).toThrow(expect.objectContaining({ code: 'not_found' }));
  });
});

describe('publish path - a numbered vhost', () => {
  it('its messages go into the ring under its number and their local names; an alternate exchange goes by its whole name', () => {
    const { shards, topology, path } = setup();
    const staging = new Vhost('staging', '', NO_LIMITS, 7);
    const sep = VHOST_SEPARATOR;
    topology.registry.ensureVhost(staging.prefix);
    const declare = (name: string) =>
      topology.declareQueue(`staging${sep}${name}`, { durable: false, exclusive: false, autoDelete: false, arguments: {} }, false, 0).queue;
    const opts = { durable: false, autoDelete: false, internal: false };
    // A queue target: the vhost's default exchange is its prefix, so the record carries '' and the number.
    const jobs = declare('jobs');
    const toQueue = path.target(parseDestination('/queue/jobs'), staging);
    expect(toQueue).toMatchObject({ exchange: staging.prefix, routingKey: 'jobs', shards: [jobs.shard], vhostNumber: 7, ringExchange: '' });
    // An exchange target: routed by its qualified name, written by its local one.
    const events = declare('events');
    topology.registry.bindQueue(`staging${sep}amq.topic`, events.name, 'a.#', {});
    const toTopic = path.target(parseDestination('/topic/a.b'), staging);
    expect(toTopic).toMatchObject({
      exchange: `staging${sep}amq.topic`,
      shards: [events.shard],
      vhostNumber: 7,
      ringExchange: 'amq.topic',
    });
    expect(path.write(toTopic, 3, 0, null, payload)).toBe(1);
    const written = shards.written.filter((w) => w.method === 'publish').at(-1)!;
    expect([written.args[2], written.args[8]]).toEqual(['amq.topic', 7]);
    // Routed on to an alternate exchange: that one is not the name published to, so it goes whole.
    topology.registry.declareExchange(`staging${sep}ae`, 'fanout', { ...opts, arguments: {} });
    topology.registry.bindQueue(`staging${sep}ae`, jobs.name, '', {});
    topology.registry.declareExchange(`staging${sep}main`, 'direct', { ...opts, arguments: { 'alternate-exchange': 'ae' } });
    const alternate = path.target(parseDestination('/exchange/main/nobody'), staging);
    expect(alternate).toMatchObject({ exchange: `staging${sep}ae`, shards: [jobs.shard], vhostNumber: 0, ringExchange: `staging${sep}ae` });
  });
});

describe('publish path - targetFor (the preamble every protocol shares)', () => {
  it('refuses what the principal may not publish, and a malformed destination', () => {
    const { path } = setup();
    expect(() => path.targetFor('/queue/x', principal('p', { publish: false }))).toThrow(
      expect.objectContaining({ code: 'access_refused', status: 403 }),
    );
    expect(() => path.targetFor('/nowhere/x', principal('p'))).toThrow(expect.objectContaining({ code: 'bad_destination', status: 400 }));
    expect(path.targetFor('/queue/x', principal('p')).routingKey).toBe('x');
  });
});

describe('publish path - write', () => {
  it('writes one copy per target shard, and stops at the first that refuses', () => {
    const { shards, topology, path } = setup(4);
    const q = (name: string) =>
      topology.declareQueue(name, { durable: false, exclusive: false, autoDelete: false, arguments: {} }, false, 0).queue;
    // Two queues on two different shards, both bound to a fanout.
    const names: string[] = [];
    for (let i = 0; names.length < 2 && i < 100; i++) {
      const name = `q${i}`;
      if (names.every((n) => topology.getQueue(n)!.shard !== topology.shardOfQueue(name))) {
        q(name);
        names.push(name);
      }
    }
    topology.registry.declareExchange('fan', 'fanout', { durable: false, autoDelete: false, internal: false, arguments: {} });
    for (const n of names) topology.registry.bindQueue('fan', n, '', {});
    const target = path.target(parseDestination('/exchange/fan/k'), ROOT);
    expect(target.shards).toHaveLength(2);
    expect(path.write(target, 7, 0, null, payload)).toBe(2);
    expect(
      shards.written
        .filter((w) => w.method === 'publish')
        .map((w) => w.shard)
        .sort(),
    ).toEqual([...target.shards].sort());
    shards.full.add(target.shards[0]);
    expect(path.write(target, 7, 0, null, payload)).toBe(0);
    path.overMemory = true;
    shards.full.clear();
    expect(path.write(target, 7, 0, null, payload)).toBe(0);
  });
});

describe('publish path - dead letters', () => {
  it('routes a dead-lettered copy like a publish, through the control backlog, flagged', () => {
    const { shards, topology, path } = setup();
    topology.declareQueue('dlq', { durable: false, exclusive: false, autoDelete: false, arguments: {} }, false, 0);
    path.republishDeadLetter('', 'dlq', null, payload);
    const writes = shards.written.filter((w) => w.method === 'publish');
    expect(writes).toEqual([
      { shard: topology.getQueue('dlq')!.shard, method: 'publish', args: [0, 0, '', 'dlq', null, payload, PUBLISH_FLAG_DEAD_LETTERED] },
    ]);
    path.republishDeadLetter('missing-dlx', 'k', null, payload);
    path.republishDeadLetter('', 'no-such-queue', null, payload);
    expect(path.unroutable).toBe(2);
  });
});

describe('publish path - /amq/queue/', () => {
  it('names a queue that must exist: a missing one is not_found, never silently unroutable', () => {
    const { topology, path } = setup();
    expect(() => path.target(parseDestination('/amq/queue/missing'), ROOT)).toThrow(
      expect.objectContaining({ code: 'not_found', status: 404 }),
    );
    expect(path.unroutable).toBe(0);
    topology.declareQueue('present', { durable: false, exclusive: false, autoDelete: false, arguments: {} }, false, 0);
    expect(path.target(parseDestination('/amq/queue/present'), ROOT).shards).toEqual([topology.getQueue('present')!.shard]);
  });
});

describe('publish path - in a cluster', () => {
  function clustered(owner: string | null = null) {
    const { shards, topology, path } = setup(2);
    const forwarded: string[] = [];
    path.cluster = {
      forward: (exchange, key, _props, body) => forwarded.push(`x ${exchange} ${key} ${body.length}`),
      queueOwner: (name, mayPlace) => (name.startsWith('remote') && (mayPlace || owner !== null) ? (owner ?? 'b') : null),
      forwardToQueue: (node, queue, _props, body) => forwarded.push(`q ${node} ${queue} ${body.length}`),
    };
    return { shards, topology, path, forwarded };
  }

  it('a publish to an exchange goes out once, when its local copies are in, under the exchange it was published to', () => {
    const { topology, path, forwarded } = clustered();
    topology.declareQueue('q1', { durable: false, exclusive: false, autoDelete: false, arguments: {} }, false, 0);
    topology.registry.bindQueue('amq.topic', 'q1', 'a.*', {});
    const target = path.target(parseDestination('/topic/a.b'), ROOT);
    expect(target.forward).toBe('amq.topic');
    expect(path.write(target, 1, 0, null, payload)).toBe(1);
    expect(forwarded).toEqual(['x amq.topic a.b 3']);
    // Routed nowhere here: still goes out (another node may have the subscriber), and is not counted unroutable.
    expect(path.write(path.target(parseDestination('/topic/z'), ROOT), 1, 0, null, payload)).toBe(0);
    expect(forwarded.at(-1)).toBe('x amq.topic z 3');
    expect(path.unroutable).toBe(0);
  });

  it('a shard that refuses stops the forward too (the message was not taken); the retry forwards it once', () => {
    const { shards, topology, path, forwarded } = clustered();
    topology.declareQueue('q1', { durable: false, exclusive: false, autoDelete: false, arguments: {} }, false, 0);
    topology.registry.bindQueue('amq.topic', 'q1', '#', {});
    const target = path.target(parseDestination('/topic/k'), ROOT);
    const shard = target.shards[0];
    shards.full.add(shard);
    expect(path.write(target, 1, 0, null, payload)).toBe(0);
    expect(forwarded).toEqual([]);
    shards.full.delete(shard);
    expect(path.write(target, 1, 0, null, payload, 0, 0)).toBe(1);
    expect(forwarded).toEqual(['x amq.topic k 3']);
  });

  it('a /queue/ on another node is forwarded there, never declared here; the default exchange finds it by name', () => {
    const { shards, topology, path, forwarded } = clustered('c');
    const target = path.target(parseDestination('/queue/remote-jobs'), ROOT);
    expect(target).toMatchObject({ shards: [], remote: 'c', forward: null });
    expect(path.write(target, 1, 0, null, payload)).toBe(0);
    expect(forwarded).toEqual(['q c remote-jobs 3']);
    expect(topology.getQueue('remote-jobs')).toBeUndefined();
    expect(shards.manageOps()).toEqual([]);
    expect(path.exchangeTarget('', 'remote-jobs', principal('p')).remote).toBe('c');
    expect(path.received).toBe(1);
  });

  it('a message from another node routes here only and never goes out again', () => {
    const { topology, path, forwarded } = clustered();
    topology.declareQueue('q1', { durable: false, exclusive: false, autoDelete: false, arguments: {} }, false, 0);
    topology.registry.bindQueue('amq.topic', 'q1', 'a', {});
    const target = path.localTarget('amq.topic', 'a');
    expect(target).toMatchObject({ forward: null, shards: [topology.getQueue('q1')!.shard] });
    expect(path.write(target!, 0, 0, null, payload)).toBe(1);
    expect(forwarded).toEqual([]);
    expect(path.localTarget('no-such-exchange', 'a')).toBeNull();
  });
});
