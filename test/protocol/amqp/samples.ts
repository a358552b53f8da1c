/**
 * Shared fixtures for the AMQP codec tests: one argument set per method with a non-default value
 * in every field (so a field dropped or swapped by the codec shows), and a strict frame splitter
 * that does not use the decoder under test.
 */
import { FRAME_END } from '../../../src/protocol/amqp/constants.js';
import type { HeaderTable } from '../../../src/protocol/field-table.js';
import type { MethodArgs, MethodName } from '../../../src/protocol/amqp/methods.js';

const te = new TextEncoder();
export const bytes = (s: string): Uint8Array => te.encode(s);

/** A table with every kind of value the encoder writes, nested. */
export const RICH_TABLE: HeaderTable = {
  str: 'text ü 名',
  empty: '',
  yes: true,
  no: false,
  int: -42,
  big: 2 ** 40 + 3,
  frac: 1.5,
  nothing: null,
  raw: Uint8Array.of(0, 1, 2, 0xff),
  list: [1, 'two', [false, null], { deep: { deeper: 'x' } }],
  nested: { a: { b: { c: 'd' } }, n: 7 },
};

/** A table the way RabbitMQ clients fill connection properties: strings, booleans, nested tables. */
export const CLIENT_PROPERTIES: HeaderTable = {
  product: 'shardmq-test',
  version: '1.2.3',
  capabilities: { publisher_confirms: true, 'basic.nack': true, consumer_cancel_notify: false },
  information: 'ü',
};

/** Every method with a non-default value in every field, reserved ones included. */
export const SAMPLES: { [N in MethodName]: MethodArgs[N] } = {
  'connection.start': {
    // Not 0-9: a zero would not show a dropped field.
    versionMajor: 2,
    versionMinor: 9,
    serverProperties: { product: 'shardmq', capabilities: { publisher_confirms: true, exchange_exchange_bindings: true } },
    mechanisms: bytes('PLAIN AMQPLAIN'),
    locales: bytes('en_US'),
  },
  'connection.start-ok': { clientProperties: CLIENT_PROPERTIES, mechanism: 'PLAIN', response: bytes('\0guest\0guest'), locale: 'en_US' },
  'connection.secure': { challenge: Uint8Array.of(1, 2, 3) },
  'connection.secure-ok': { response: Uint8Array.of(4, 5, 6, 0) },
  'connection.tune': { channelMax: 2047, frameMax: 131072, heartbeat: 60 },
  'connection.tune-ok': { channelMax: 0xffff, frameMax: 0xffff_ffff, heartbeat: 0xfffe },
  'connection.open': { virtualHost: '/vhost', capabilities: 'caps', insist: true },
  'connection.open-ok': { knownHosts: 'host:5672' },
  'connection.close': { replyCode: 320, replyText: 'CONNECTION_FORCED - bye', classId: 60, methodId: 40 },
  'connection.close-ok': {},
  'connection.blocked': { reason: 'low on memory' },
  'connection.unblocked': {},
  'connection.update-secret': { newSecret: bytes('s3cret'), reason: 'rotation' },
  'connection.update-secret-ok': {},
  'channel.open': { outOfBand: 'oob' },
  'channel.open-ok': { channelId: bytes('chan-1') },
  'channel.flow': { active: true },
  'channel.flow-ok': { active: true },
  'channel.close': { replyCode: 404, replyText: "NOT_FOUND - no queue 'q' in vhost '/'", classId: 50, methodId: 10 },
  'channel.close-ok': {},
  'exchange.declare': {
    ticket: 1,
    exchange: 'ex',
    type: 'topic',
    passive: true,
    durable: true,
    autoDelete: true,
    internal: true,
    noWait: true,
    arguments: { 'alternate-exchange': 'ae' },
  },
  'exchange.declare-ok': {},
  'exchange.delete': { ticket: 2, exchange: 'ex', ifUnused: true, noWait: true },
  'exchange.delete-ok': {},
  'exchange.bind': { ticket: 3, destination: 'dst', source: 'src', routingKey: 'a.*.c', noWait: true, arguments: { x: 'y' } },
  'exchange.bind-ok': {},
  'exchange.unbind': { ticket: 4, destination: 'dst', source: 'src', routingKey: 'a.#', noWait: true, arguments: { x: 'z' } },
  'exchange.unbind-ok': {},
  'queue.declare': {
    ticket: 5,
    queue: 'q',
    passive: true,
    durable: true,
    exclusive: true,
    autoDelete: true,
    noWait: true,
    arguments: { 'x-message-ttl': 60000, 'x-queue-type': 'classic', 'x-dead-letter-exchange': 'dlx' },
  },
  'queue.declare-ok': { queue: 'amq.gen-abc', messageCount: 0xffff_fffe, consumerCount: 3 },
  'queue.bind': { ticket: 6, queue: 'q', exchange: 'ex', routingKey: 'rk', noWait: true, arguments: { 'x-match': 'all' } },
  'queue.bind-ok': {},
  'queue.purge': { ticket: 7, queue: 'q', noWait: true },
  'queue.purge-ok': { messageCount: 12 },
  'queue.delete': { ticket: 8, queue: 'q', ifUnused: true, ifEmpty: true, noWait: true },
  'queue.delete-ok': { messageCount: 13 },
  'queue.unbind': { ticket: 9, queue: 'q', exchange: 'ex', routingKey: 'rk', arguments: { 'x-match': 'any' } },
  'queue.unbind-ok': {},
  'basic.qos': { prefetchSize: 65536, prefetchCount: 100, global: true },
  'basic.qos-ok': {},
  'basic.consume': {
    ticket: 10,
    queue: 'q',
    consumerTag: 'ctag',
    noLocal: true,
    noAck: true,
    exclusive: true,
    noWait: true,
    arguments: { 'x-priority': 5 },
  },
  'basic.consume-ok': { consumerTag: 'amq.ctag-1' },
  'basic.cancel': { consumerTag: 'ctag', noWait: true },
  'basic.cancel-ok': { consumerTag: 'ctag' },
  'basic.publish': { ticket: 11, exchange: 'amq.topic', routingKey: 'stock.nyse.ibm', mandatory: true, immediate: true },
  'basic.return': { replyCode: 312, replyText: 'NO_ROUTE', exchange: 'ex', routingKey: 'nowhere' },
  'basic.deliver': { consumerTag: 'ctag', deliveryTag: 2 ** 53 - 1, redelivered: true, exchange: 'ex', routingKey: 'rk' },
  'basic.get': { ticket: 12, queue: 'q', noAck: true },
  'basic.get-ok': { deliveryTag: 2 ** 40, redelivered: true, exchange: 'ex', routingKey: 'rk', messageCount: 99 },
  'basic.get-empty': { clusterId: 'cluster' },
  'basic.ack': { deliveryTag: 123456789012, multiple: true },
  'basic.reject': { deliveryTag: 77, requeue: true },
  'basic.recover-async': { requeue: true },
  'basic.recover': { requeue: true },
  'basic.recover-ok': {},
  'basic.nack': { deliveryTag: 78, multiple: true, requeue: true },
  'confirm.select': { noWait: true },
  'confirm.select-ok': {},
  'tx.select': {},
  'tx.select-ok': {},
  'tx.commit': {},
  'tx.commit-ok': {},
  'tx.rollback': {},
  'tx.rollback-ok': {},
};

export interface SplitFrame {
  type: number;
  channel: number;
  payload: Uint8Array;
}

/** Splits whole frames (no protocol header) by hand, checking sizes and frame-ends strictly. */
export function splitFrames(buf: Uint8Array): SplitFrame[] {
  const out: SplitFrame[] = [];
  let p = 0;
  while (p < buf.length) {
    if (buf.length - p < 8) throw new Error(`trailing ${buf.length - p} bytes`);
    const type = buf[p];
    const channel = (buf[p + 1] << 8) | buf[p + 2];
    const size = ((buf[p + 3] << 24) | (buf[p + 4] << 16) | (buf[p + 5] << 8) | buf[p + 6]) >>> 0;
    if (p + 8 + size > buf.length) throw new Error(`frame at ${p} overruns`);
    if (buf[p + 7 + size] !== FRAME_END) throw new Error(`frame at ${p} has no frame-end`);
    out.push({ type, channel, payload: buf.slice(p + 7, p + 7 + size) });
    p += 8 + size;
  }
  return out;
}

/** Builds a frame by hand. */
export function frame(type: number, channel: number, payload: Uint8Array, end = FRAME_END): Uint8Array {
  const out = new Uint8Array(8 + payload.length);
  out[0] = type;
  out[1] = channel >>> 8;
  out[2] = channel & 0xff;
  new DataView(out.buffer).setUint32(3, payload.length);
  out.set(payload, 7);
  out[7 + payload.length] = end;
  return out;
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
