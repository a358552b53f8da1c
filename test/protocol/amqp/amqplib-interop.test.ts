/**
 * Cross-checks against the real client: amqplib's generated codec (lib/defs.js, the code every
 * amqplib user runs) must read what this codec writes and write what it reads, for every method
 * and for a content header with every property. Byte-for-byte where both sides choose the same
 * encoding (amqplib picks the smallest integer type for table numbers; this codec writes I/l/d).
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { amqpToMessageProperties, decodeContentHeader, messagePropertiesToAmqp } from '../../../src/protocol/amqp/content.js';
import { decodeMethod, METHODS, methodDef, methodFrame } from '../../../src/protocol/amqp/methods.js';
import type { MethodName } from '../../../src/protocol/amqp/methods.js';
import type { HeaderTable } from '../../../src/protocol/field-table.js';
import type { MessageProperties } from '../../../src/protocol/properties.js';
import { SAMPLES, splitFrames } from './samples.js';

interface AmqplibDefs {
  encodeMethod(id: number, channel: number, fields: Record<string, unknown>): Buffer;
  decode(id: number, buf: Buffer): Record<string, unknown>;
  encodeProperties(id: number, channel: number, size: number, fields: Record<string, unknown>): Buffer;
}

// amqplib's package exports only its entry points, so lib/defs.js is loaded by file path.
const require = createRequire(import.meta.url);
const defs = require(join(dirname(require.resolve('amqplib')), 'lib', 'defs.js')) as AmqplibDefs;

/** This codec's argument name → amqplib's (it spells no-wait `nowait`). */
const amqplibName = (name: string): string => (name === 'noWait' ? 'nowait' : name);

/** Our arguments → amqplib fields: renamed, longstrs as Buffers (amqplib insists). */
function toAmqplib(name: MethodName, args: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const a of methodDef(name).args) {
    const v = args[a.name];
    out[amqplibName(a.name)] = v instanceof Uint8Array ? Buffer.from(v) : v;
  }
  return out;
}

/** amqplib fields → our arguments shape: renamed back, Buffers as plain Uint8Arrays, undefined dropped. */
function fromAmqplib(name: MethodName, fields: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const a of methodDef(name).args) out[a.name] = normalise(fields[amqplibName(a.name)]);
  return out;
}

function normalise(v: unknown): unknown {
  if (v instanceof Uint8Array) return Uint8Array.from(v);
  if (Array.isArray(v)) return v.map(normalise);
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) if (x !== undefined) out[k] = normalise(x);
    return out;
  }
  return v;
}

function hasNumbers(v: unknown): boolean {
  if (typeof v === 'number') return true;
  if (v instanceof Uint8Array || v === null || typeof v !== 'object') return false;
  return Object.values(v).some(hasNumbers);
}

const idOf = (name: MethodName): number => methodDef(name).classId * 65536 + methodDef(name).methodId;

describe('amqplib interop - methods', () => {
  it.each(METHODS.map((d) => [d.name]))('%s: amqplib reads our frame, we read amqplib’s', (name) => {
    const args = SAMPLES[name] as Record<string, unknown>;
    const ours = methodFrame(5, name, SAMPLES[name]);
    const theirs = defs.encodeMethod(idOf(name), 5, toAmqplib(name, args));

    const [ourFrame] = splitFrames(ours);
    const decodedByAmqplib = defs.decode(idOf(name), Buffer.from(ourFrame.payload.subarray(4)));
    expect(fromAmqplib(name, decodedByAmqplib)).toEqual(args);

    const [theirFrame] = splitFrames(theirs);
    expect(theirFrame.channel).toBe(5);
    expect(decodeMethod(theirFrame.payload)).toEqual({ name, classId: methodDef(name).classId, methodId: methodDef(name).methodId, args });

    // Same bytes wherever the two encoders have no choice to make.
    const tables = methodDef(name)
      .args.filter((a) => a.type === 'table')
      .map((a) => args[a.name]);
    if (!tables.some(hasNumbers)) expect([...ours]).toEqual([...theirs]);
  });

  it('queue.declare with arguments of every kind amqplib writes', () => {
    const args = {
      'x-message-ttl': 60000,
      'x-max-length': 2 ** 40,
      'x-small': -5,
      'x-short': 1000,
      'x-ratio': 0.25,
      'x-queue-type': 'quorum',
      'x-single-active-consumer': true,
      'x-nothing': null,
      'x-bytes': Buffer.from([1, 2, 3]),
      'x-list': [1, 'a', false, { n: 2 }],
      'x-nested': { deeper: { k: 'v' } },
    };
    const fields = {
      ticket: 0,
      queue: 'q',
      passive: false,
      durable: true,
      exclusive: false,
      autoDelete: true,
      nowait: false,
      arguments: args,
    };
    const [f] = splitFrames(defs.encodeMethod(idOf('queue.declare'), 1, fields));
    const m = decodeMethod(f.payload);
    expect(m.name).toBe('queue.declare');
    expect(m.args).toEqual({ ...fromAmqplib('queue.declare', fields), arguments: normalise(args) });
    // And back: amqplib decodes our re-encoding to the same values.
    const [ours] = splitFrames(methodFrame(1, 'queue.declare', m.args as (typeof SAMPLES)['queue.declare']));
    expect(normalise(defs.decode(idOf('queue.declare'), Buffer.from(ours.payload.subarray(4))).arguments)).toEqual(normalise(args));
  });

  it('connection.start with nested server properties, as amqplib receives it', () => {
    const serverProperties: HeaderTable = {
      product: 'shardmq',
      capabilities: { publisher_confirms: true, 'basic.nack': true, deep: { deeper: { deepest: 'yes' } } },
      cluster_name: 'rabbit@host',
    };
    const [f] = splitFrames(
      methodFrame(0, 'connection.start', {
        versionMajor: 0,
        versionMinor: 9,
        serverProperties,
        mechanisms: 'PLAIN AMQPLAIN',
        locales: 'en_US',
      }),
    );
    const fields = defs.decode(idOf('connection.start'), Buffer.from(f.payload.subarray(4)));
    expect(fields.versionMajor).toBe(0);
    expect(fields.versionMinor).toBe(9);
    expect(normalise(fields.serverProperties)).toEqual(serverProperties);
    expect(String(fields.mechanisms)).toBe('PLAIN AMQPLAIN');
    expect(String(fields.locales)).toBe('en_US');
  });
});

describe('amqplib interop - content header', () => {
  const props: MessageProperties = {
    contentType: 'application/json',
    contentEncoding: 'utf-8',
    headers: { 'x-retries': 3, big: 2 ** 35, s: 'ü', ok: true, list: ['a', 1], nested: { k: null }, ratio: 0.5 },
    deliveryMode: 2,
    priority: 7,
    correlationId: 'corr',
    replyTo: 'reply.q',
    expiration: '1000',
    messageId: 'id-1',
    timestamp: 1_700_000_000,
    type: 't',
    userId: 'guest',
    appId: 'app',
  };

  it('we decode a header amqplib encodes with every property', () => {
    const [f] = splitFrames(defs.encodeProperties(60, 3, 123_456, { ...props }));
    expect(f.type).toBe(2);
    const h = decodeContentHeader(f.payload);
    expect(h.classId).toBe(60);
    expect(h.bodySize).toBe(123_456);
    expect(amqpToMessageProperties(h.properties)).toEqual(props);
  });

  it('amqplib decodes the properties we encode', () => {
    const fields = defs.decode(60, Buffer.from(messagePropertiesToAmqp(props)));
    expect(normalise(fields)).toEqual(props);
  });

  it('both sides write the same bytes for string, octet and timestamp properties', () => {
    const simple: MessageProperties = { ...props, headers: { s: 'x', t: true } };
    const [f] = splitFrames(defs.encodeProperties(60, 1, 0, { ...simple }));
    expect([...f.payload.subarray(12)]).toEqual([...messagePropertiesToAmqp(simple)]);
  });
});
