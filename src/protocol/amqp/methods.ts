/**
 * Every AMQP 0-9-1 method RabbitMQ implements, both directions, from one table (METHOD_TABLE):
 * class id, method id, name, and the arguments in wire order with their types. decodeMethod and
 * writeMethodFrame walk that table, so adding a method is one line plus its MethodArgs type.
 *
 * The per-message methods skip the table: basic.publish and basic.ack are decoded, and
 * basic.deliver, basic.ack and basic.nack (confirms) encoded, by hand-written functions that
 * decodeMethod and writeMethodFrame call for them, with a one-entry string cache for the exchange
 * and routing key a publisher repeats (the cache that made the WebSocket decoder's publish path
 * cheaper, ws-binary-decode.ts).
 *
 * Argument names are amqplib's (lib/defs.js), except that its `nowait` is `noWait` here. Reserved
 * arguments (ticket, capabilities, insist, knownHosts, outOfBand, channelId, clusterId) are read and
 * returned, and written as given or as zero/empty when absent. Longstr arguments decode to a copy
 * as Uint8Array (they are SASL responses and the like, not always text) and encode from a string
 * or bytes. RabbitMQ's own quirk is kept: exchange.unbind-ok is method 51, not 41.
 */
import { copyBytes } from '../bytes.js';
import type { HeaderTable } from '../field-table.js';
import { StringCache } from '../string-cache.js';
import { decodeUtf8, writeUtf8 } from '../ws-binary.js';
import { FRAME_END, FRAME_HEADER_SIZE, FrameType, ReplyCode } from './constants.js';
import { AmqpError } from './errors.js';
import { readU16BE, readU32BE, U64_LIMIT, WireReader, WireWriter, writeU32BE, writeU64BE } from './wire.js';

/** Argument types of the method table (timestamp is a longlong of seconds). */
export type ArgType = 'octet' | 'short' | 'long' | 'longlong' | 'bit' | 'shortstr' | 'longstr' | 'table' | 'timestamp';

/**
 * A longstr argument: decoding always yields a Uint8Array (a copy); encoding also takes a string,
 * written as UTF-8. One type for both directions, so that MethodArgs[N] is what both take.
 */
export type LongStr = Uint8Array | string;

/** No arguments. */
export type NoArgs = Record<string, never>;

interface CloseArgs {
  replyCode: number;
  replyText: string;
  /** The method that caused the close, 0 when none. */
  classId: number;
  methodId: number;
}

interface TuneArgs {
  channelMax: number;
  frameMax: number;
  heartbeat: number;
}

interface BindArgs {
  ticket?: number;
  queue: string;
  exchange: string;
  routingKey: string;
  noWait: boolean;
  arguments: HeaderTable;
}

interface ExchangeBindArgs {
  ticket?: number;
  destination: string;
  source: string;
  routingKey: string;
  noWait: boolean;
  arguments: HeaderTable;
}

/** The arguments of every method, by name. Decoding returns exactly these fields (optional ones included). */
export interface MethodArgs {
  'connection.start': {
    versionMajor: number;
    versionMinor: number;
    serverProperties: HeaderTable;
    /** Space-separated SASL mechanism names. */
    mechanisms: LongStr;
    /** Space-separated locales. */
    locales: LongStr;
  };
  'connection.start-ok': { clientProperties: HeaderTable; mechanism: string; response: LongStr; locale: string };
  'connection.secure': { challenge: LongStr };
  'connection.secure-ok': { response: LongStr };
  'connection.tune': TuneArgs;
  'connection.tune-ok': TuneArgs;
  'connection.open': { virtualHost: string; capabilities?: string; insist?: boolean };
  'connection.open-ok': { knownHosts?: string };
  'connection.close': CloseArgs;
  'connection.close-ok': NoArgs;
  'connection.blocked': { reason: string };
  'connection.unblocked': NoArgs;
  'connection.update-secret': { newSecret: LongStr; reason: string };
  'connection.update-secret-ok': NoArgs;
  'channel.open': { outOfBand?: string };
  'channel.open-ok': { channelId?: LongStr };
  'channel.flow': { active: boolean };
  'channel.flow-ok': { active: boolean };
  'channel.close': CloseArgs;
  'channel.close-ok': NoArgs;
  'exchange.declare': {
    ticket?: number;
    exchange: string;
    type: string;
    passive: boolean;
    durable: boolean;
    autoDelete: boolean;
    internal: boolean;
    noWait: boolean;
    arguments: HeaderTable;
  };
  'exchange.declare-ok': NoArgs;
  'exchange.delete': { ticket?: number; exchange: string; ifUnused: boolean; noWait: boolean };
  'exchange.delete-ok': NoArgs;
  'exchange.bind': ExchangeBindArgs;
  'exchange.bind-ok': NoArgs;
  'exchange.unbind': ExchangeBindArgs;
  'exchange.unbind-ok': NoArgs;
  'queue.declare': {
    ticket?: number;
    queue: string;
    passive: boolean;
    durable: boolean;
    exclusive: boolean;
    autoDelete: boolean;
    noWait: boolean;
    arguments: HeaderTable;
  };
  'queue.declare-ok': { queue: string; messageCount: number; consumerCount: number };
  'queue.bind': BindArgs;
  'queue.bind-ok': NoArgs;
  'queue.purge': { ticket?: number; queue: string; noWait: boolean };
  'queue.purge-ok': { messageCount: number };
  'queue.delete': { ticket?: number; queue: string; ifUnused: boolean; ifEmpty: boolean; noWait: boolean };
  'queue.delete-ok': { messageCount: number };
  'queue.unbind': { ticket?: number; queue: string; exchange: string; routingKey: string; arguments: HeaderTable };
  'queue.unbind-ok': NoArgs;
  'basic.qos': { prefetchSize: number; prefetchCount: number; global: boolean };
  'basic.qos-ok': NoArgs;
  'basic.consume': {
    ticket?: number;
    queue: string;
    consumerTag: string;
    noLocal: boolean;
    noAck: boolean;
    exclusive: boolean;
    noWait: boolean;
    arguments: HeaderTable;
  };
  'basic.consume-ok': { consumerTag: string };
  'basic.cancel': { consumerTag: string; noWait: boolean };
  'basic.cancel-ok': { consumerTag: string };
  'basic.publish': { ticket?: number; exchange: string; routingKey: string; mandatory: boolean; immediate: boolean };
  'basic.return': { replyCode: number; replyText: string; exchange: string; routingKey: string };
  'basic.deliver': { consumerTag: string; deliveryTag: number; redelivered: boolean; exchange: string; routingKey: string };
  'basic.get': { ticket?: number; queue: string; noAck: boolean };
  'basic.get-ok': { deliveryTag: number; redelivered: boolean; exchange: string; routingKey: string; messageCount: number };
  'basic.get-empty': { clusterId?: string };
  'basic.ack': { deliveryTag: number; multiple: boolean };
  'basic.reject': { deliveryTag: number; requeue: boolean };
  'basic.recover-async': { requeue: boolean };
  'basic.recover': { requeue: boolean };
  'basic.recover-ok': NoArgs;
  'basic.nack': { deliveryTag: number; multiple: boolean; requeue: boolean };
  'confirm.select': { noWait: boolean };
  'confirm.select-ok': NoArgs;
  'tx.select': NoArgs;
  'tx.select-ok': NoArgs;
  'tx.commit': NoArgs;
  'tx.commit-ok': NoArgs;
  'tx.rollback': NoArgs;
  'tx.rollback-ok': NoArgs;
}

export type MethodName = keyof MethodArgs;

export type AnyMethod = { [N in MethodName]: { name: N; classId: number; methodId: number; args: MethodArgs[N] } }[MethodName];

export interface ArgDef {
  readonly name: string;
  readonly type: ArgType;
  /** Deprecated by 0-9-1 or unused by RabbitMQ; zero/empty when absent on encode. */
  readonly reserved: boolean;
}

export interface MethodDef {
  readonly name: MethodName;
  readonly classId: number;
  readonly methodId: number;
  readonly args: readonly ArgDef[];
  /** Followed by a content header and body frames. */
  readonly content: boolean;
}

/**
 * The method table. Arguments are `name:type`, in wire order; a leading `*` marks a reserved one.
 * Checked against amqplib's lib/defs.js and RabbitMQ's amqp-rabbitmq-0.9.1.json field orders.
 */
const METHOD_TABLE: readonly (readonly [MethodName, number, number, string])[] = [
  ['connection.start', 10, 10, 'versionMajor:octet versionMinor:octet serverProperties:table mechanisms:longstr locales:longstr'],
  ['connection.start-ok', 10, 11, 'clientProperties:table mechanism:shortstr response:longstr locale:shortstr'],
  ['connection.secure', 10, 20, 'challenge:longstr'],
  ['connection.secure-ok', 10, 21, 'response:longstr'],
  ['connection.tune', 10, 30, 'channelMax:short frameMax:long heartbeat:short'],
  ['connection.tune-ok', 10, 31, 'channelMax:short frameMax:long heartbeat:short'],
  ['connection.open', 10, 40, 'virtualHost:shortstr *capabilities:shortstr *insist:bit'],
  ['connection.open-ok', 10, 41, '*knownHosts:shortstr'],
  ['connection.close', 10, 50, 'replyCode:short replyText:shortstr classId:short methodId:short'],
  ['connection.close-ok', 10, 51, ''],
  ['connection.blocked', 10, 60, 'reason:shortstr'],
  ['connection.unblocked', 10, 61, ''],
  ['connection.update-secret', 10, 70, 'newSecret:longstr reason:shortstr'],
  ['connection.update-secret-ok', 10, 71, ''],
  ['channel.open', 20, 10, '*outOfBand:shortstr'],
  ['channel.open-ok', 20, 11, '*channelId:longstr'],
  ['channel.flow', 20, 20, 'active:bit'],
  ['channel.flow-ok', 20, 21, 'active:bit'],
  ['channel.close', 20, 40, 'replyCode:short replyText:shortstr classId:short methodId:short'],
  ['channel.close-ok', 20, 41, ''],
  [
    'exchange.declare',
    40,
    10,
    '*ticket:short exchange:shortstr type:shortstr passive:bit durable:bit autoDelete:bit internal:bit noWait:bit arguments:table',
  ],
  ['exchange.declare-ok', 40, 11, ''],
  ['exchange.delete', 40, 20, '*ticket:short exchange:shortstr ifUnused:bit noWait:bit'],
  ['exchange.delete-ok', 40, 21, ''],
  ['exchange.bind', 40, 30, '*ticket:short destination:shortstr source:shortstr routingKey:shortstr noWait:bit arguments:table'],
  ['exchange.bind-ok', 40, 31, ''],
  ['exchange.unbind', 40, 40, '*ticket:short destination:shortstr source:shortstr routingKey:shortstr noWait:bit arguments:table'],
  ['exchange.unbind-ok', 40, 51, ''],
  ['queue.declare', 50, 10, '*ticket:short queue:shortstr passive:bit durable:bit exclusive:bit autoDelete:bit noWait:bit arguments:table'],
  ['queue.declare-ok', 50, 11, 'queue:shortstr messageCount:long consumerCount:long'],
  ['queue.bind', 50, 20, '*ticket:short queue:shortstr exchange:shortstr routingKey:shortstr noWait:bit arguments:table'],
  ['queue.bind-ok', 50, 21, ''],
  ['queue.purge', 50, 30, '*ticket:short queue:shortstr noWait:bit'],
  ['queue.purge-ok', 50, 31, 'messageCount:long'],
  ['queue.delete', 50, 40, '*ticket:short queue:shortstr ifUnused:bit ifEmpty:bit noWait:bit'],
  ['queue.delete-ok', 50, 41, 'messageCount:long'],
  ['queue.unbind', 50, 50, '*ticket:short queue:shortstr exchange:shortstr routingKey:shortstr arguments:table'],
  ['queue.unbind-ok', 50, 51, ''],
  ['basic.qos', 60, 10, 'prefetchSize:long prefetchCount:short global:bit'],
  ['basic.qos-ok', 60, 11, ''],
  [
    'basic.consume',
    60,
    20,
    '*ticket:short queue:shortstr consumerTag:shortstr noLocal:bit noAck:bit exclusive:bit noWait:bit arguments:table',
  ],
  ['basic.consume-ok', 60, 21, 'consumerTag:shortstr'],
  ['basic.cancel', 60, 30, 'consumerTag:shortstr noWait:bit'],
  ['basic.cancel-ok', 60, 31, 'consumerTag:shortstr'],
  ['basic.publish', 60, 40, '*ticket:short exchange:shortstr routingKey:shortstr mandatory:bit immediate:bit'],
  ['basic.return', 60, 50, 'replyCode:short replyText:shortstr exchange:shortstr routingKey:shortstr'],
  ['basic.deliver', 60, 60, 'consumerTag:shortstr deliveryTag:longlong redelivered:bit exchange:shortstr routingKey:shortstr'],
  ['basic.get', 60, 70, '*ticket:short queue:shortstr noAck:bit'],
  ['basic.get-ok', 60, 71, 'deliveryTag:longlong redelivered:bit exchange:shortstr routingKey:shortstr messageCount:long'],
  ['basic.get-empty', 60, 72, '*clusterId:shortstr'],
  ['basic.ack', 60, 80, 'deliveryTag:longlong multiple:bit'],
  ['basic.reject', 60, 90, 'deliveryTag:longlong requeue:bit'],
  ['basic.recover-async', 60, 100, 'requeue:bit'],
  ['basic.recover', 60, 110, 'requeue:bit'],
  ['basic.recover-ok', 60, 111, ''],
  ['basic.nack', 60, 120, 'deliveryTag:longlong multiple:bit requeue:bit'],
  ['confirm.select', 85, 10, 'noWait:bit'],
  ['confirm.select-ok', 85, 11, ''],
  ['tx.select', 90, 10, ''],
  ['tx.select-ok', 90, 11, ''],
  ['tx.commit', 90, 20, ''],
  ['tx.commit-ok', 90, 21, ''],
  ['tx.rollback', 90, 30, ''],
  ['tx.rollback-ok', 90, 31, ''],
];

const ARG_TYPES: readonly ArgType[] = ['octet', 'short', 'long', 'longlong', 'bit', 'shortstr', 'longstr', 'table', 'timestamp'];
const CONTENT_METHODS: ReadonlySet<MethodName> = new Set<MethodName>(['basic.publish', 'basic.return', 'basic.deliver', 'basic.get-ok']);

function parseArgs(name: string, spec: string): ArgDef[] {
  if (spec === '') return [];
  return spec.split(' ').map((field) => {
    const reserved = field.startsWith('*');
    const [argName, type] = (reserved ? field.slice(1) : field).split(':');
    if (!(ARG_TYPES as readonly string[]).includes(type)) throw new Error(`method table: ${name}.${argName} has unknown type ${type}`);
    return Object.freeze({ name: argName, type: type as ArgType, reserved });
  });
}

/** Every method, in table order. */
export const METHODS: readonly MethodDef[] = Object.freeze(
  METHOD_TABLE.map(([name, classId, methodId, spec]) =>
    Object.freeze({ name, classId, methodId, args: Object.freeze(parseArgs(name, spec)), content: CONTENT_METHODS.has(name) }),
  ),
);

const BY_NAME = new Map<string, MethodDef>(METHODS.map((d) => [d.name, d]));
const BY_ID = new Map<number, MethodDef>(METHODS.map((d) => [methodKey(d.classId, d.methodId), d]));

function methodKey(classId: number, methodId: number): number {
  return classId * 0x1_0000 + methodId;
}

/** The table entry for `name`. */
export function methodDef(name: MethodName): MethodDef {
  const def = BY_NAME.get(name);
  if (def === undefined) throw new TypeError(`unknown AMQP method ${JSON.stringify(name)}`);
  return def;
}

/** The table entry for the ids, or undefined. */
export function methodDefById(classId: number, methodId: number): MethodDef | undefined {
  return BY_ID.get(methodKey(classId, methodId));
}

/** Whether a method carries content (basic.publish, return, deliver, get-ok). */
export function hasContent(name: MethodName): boolean {
  return CONTENT_METHODS.has(name);
}

// ---------------------------------------------------------------------------------------------
// Decoding

const reader = new WireReader();

/**
 * Decodes a method frame's payload (class id, method id, arguments). Unknown class/method →
 * AmqpError 503 COMMAND_INVALID with the ids; truncated or malformed arguments, or bytes left over
 * after the last one → 502 SYNTAX_ERROR naming the method. Nothing returned aliases `payload`.
 */
export function decodeMethod(payload: Uint8Array): AnyMethod {
  if (payload.length < 4) {
    throw new AmqpError(ReplyCode.syntaxError, `method frame payload of ${payload.length} bytes has no class and method ids`);
  }
  const classId = readU16BE(payload, 0);
  const methodId = readU16BE(payload, 2);
  if (classId === 60) {
    if (methodId === 40) return { name: 'basic.publish', classId, methodId, args: decodeBasicPublish(payload) };
    if (methodId === 80) return { name: 'basic.ack', classId, methodId, args: decodeBasicAck(payload) };
  }
  const def = BY_ID.get(methodKey(classId, methodId));
  if (def === undefined) {
    throw new AmqpError(ReplyCode.commandInvalid, `unknown method: class ${classId}, method ${methodId}`, classId, methodId);
  }
  const r = reader.reset(payload, 4);
  r.classId = classId;
  r.methodId = methodId;
  const args: Record<string, unknown> = {};
  // Consecutive bits share an octet, lowest bit first; any other argument ends the run.
  let octet = 0;
  let bit = 8;
  for (const a of def.args) {
    if (a.type === 'bit') {
      if (bit === 8) {
        octet = r.octet(a.name);
        bit = 0;
      }
      args[a.name] = ((octet >> bit++) & 1) === 1;
      continue;
    }
    bit = 8;
    args[a.name] = readArg(r, a);
  }
  r.done(`the arguments of ${def.name}`);
  return { name: def.name, classId, methodId, args } as AnyMethod;
}

function readArg(r: WireReader, a: ArgDef): unknown {
  switch (a.type) {
    case 'octet':
      return r.octet(a.name);
    case 'short':
      return r.short(a.name);
    case 'long':
      return r.long(a.name);
    case 'longlong':
      return r.longlong(a.name);
    case 'timestamp':
      return r.timestamp(a.name);
    case 'shortstr':
      return r.shortstr(a.name);
    case 'longstr': {
      // A copy: a SASL response may be kept past the frame (an asynchronous password check).
      const v = r.longstr(a.name);
      return copyBytes(v);
    }
    case 'table':
      return r.table(a.name);
    case 'bit':
      return r.octet(a.name) !== 0;
  }
}

const exchangeCache = new StringCache(255);
const routingKeyCache = new StringCache(255);

/**
 * basic.publish from a whole method payload (ids included), by hand: every published message
 * comes through here. Throws like decodeMethod.
 */
export function decodeBasicPublish(payload: Uint8Array): MethodArgs['basic.publish'] {
  const n = payload.length;
  if (n < 4 || readU16BE(payload, 0) !== 60 || readU16BE(payload, 2) !== 40) notThe('basic.publish', payload);
  // ticket (2), exchange length (1)
  if (n < 7) truncated('basic.publish', 60, 40, 'exchange');
  const ticket = readU16BE(payload, 4);
  let p = 6;
  const exLen = payload[p++];
  // exchange bytes, routing key length (1)
  if (n - p < exLen + 1) truncated('basic.publish', 60, 40, 'exchange');
  const exchange = exLen === 0 ? '' : cachedText(exchangeCache, payload, p, exLen, 'exchange', 60, 40);
  p += exLen;
  const rkLen = payload[p++];
  // routing key bytes, bits (1)
  if (n - p < rkLen + 1) truncated('basic.publish', 60, 40, 'routingKey');
  const routingKey = rkLen === 0 ? '' : cachedText(routingKeyCache, payload, p, rkLen, 'routingKey', 60, 40);
  p += rkLen;
  const bits = payload[p++];
  if (p !== n) trailing('basic.publish', 60, 40, n - p);
  return { ticket, exchange, routingKey, mandatory: (bits & 1) !== 0, immediate: (bits & 2) !== 0 };
}

/** basic.ack from a whole method payload (ids included), by hand: consumers ack every message. */
export function decodeBasicAck(payload: Uint8Array): MethodArgs['basic.ack'] {
  const n = payload.length;
  if (n < 4 || readU16BE(payload, 0) !== 60 || readU16BE(payload, 2) !== 80) notThe('basic.ack', payload);
  if (n < 13) truncated('basic.ack', 60, 80, n < 12 ? 'deliveryTag' : 'multiple');
  if (n !== 13) trailing('basic.ack', 60, 80, n - 13);
  return { deliveryTag: readU32BE(payload, 4) * 0x1_0000_0000 + readU32BE(payload, 8), multiple: (payload[12] & 1) !== 0 };
}

function cachedText(cache: StringCache, b: Uint8Array, at: number, n: number, what: string, classId: number, methodId: number): string {
  const hit = cache.lookup(b, at, n);
  if (hit !== undefined) return hit;
  const s = decodeUtf8(b, at, at + n);
  if (s === undefined) throw new AmqpError(ReplyCode.syntaxError, `${what} is not valid UTF-8`, classId, methodId);
  cache.remember(b, at, n, s);
  return s;
}

function notThe(name: string, payload: Uint8Array): never {
  const ids = payload.length < 4 ? 'no class and method ids' : `class ${readU16BE(payload, 0)}, method ${readU16BE(payload, 2)}`;
  throw new AmqpError(ReplyCode.commandInvalid, `expected ${name}, got ${ids}`);
}

function truncated(name: string, classId: number, methodId: number, what: string): never {
  throw new AmqpError(ReplyCode.syntaxError, `${name} ends inside ${what}`, classId, methodId);
}

function trailing(name: string, classId: number, methodId: number, extra: number): never {
  throw new AmqpError(ReplyCode.syntaxError, `${extra} unexpected bytes after the arguments of ${name}`, classId, methodId);
}

// ---------------------------------------------------------------------------------------------
// Encoding

/**
 * Appends one whole method frame (header, payload, frame-end) for `channel` to `out`. Throws
 * TypeError/RangeError naming the argument when `args` cannot be encoded, leaving `out` as it was.
 */
export function writeMethodFrame<N extends MethodName>(out: WireWriter, channel: number, name: N, args: MethodArgs[N]): void {
  switch (name) {
    case 'basic.deliver': {
      const a = args as MethodArgs['basic.deliver'];
      writeBasicDeliverMethod(out, channel, a.consumerTag, a.deliveryTag, a.redelivered, a.exchange, a.routingKey);
      return;
    }
    case 'basic.ack': {
      const a = args as MethodArgs['basic.ack'];
      writeBasicAck(out, channel, a.deliveryTag, a.multiple);
      return;
    }
    case 'basic.nack': {
      const a = args as MethodArgs['basic.nack'];
      writeBasicNack(out, channel, a.deliveryTag, a.multiple, a.requeue);
      return;
    }
    default:
      break;
  }
  const def = BY_NAME.get(name);
  if (def === undefined) throw new TypeError(`unknown AMQP method ${JSON.stringify(name)}`);
  const start = beginFrame(out, FrameType.method, channel);
  try {
    out.short(def.classId);
    out.short(def.methodId);
    writeArgs(out, def, args as Readonly<Record<string, unknown>>);
  } catch (err) {
    out.setLength(start);
    throw err;
  }
  endFrame(out, start);
}

/** Convenience: one method frame as a fresh Buffer. */
export function methodFrame<N extends MethodName>(channel: number, name: N, args: MethodArgs[N]): Buffer {
  const w = new WireWriter(64);
  writeMethodFrame(w, channel, name, args);
  return w.take();
}

function writeArgs(out: WireWriter, def: MethodDef, args: Readonly<Record<string, unknown>>): void {
  if (typeof args !== 'object' || args === null) throw new TypeError(`${def.name} arguments must be an object (got ${String(args)})`);
  let octet = 0;
  let bit = 0;
  for (const a of def.args) {
    let v = args[a.name];
    if (v === undefined) {
      if (!a.reserved) throw new TypeError(`${def.name} needs ${a.name}`);
      v = reservedDefault(a.type);
    }
    if (a.type === 'bit') {
      if (typeof v !== 'boolean') throw new TypeError(`${def.name} ${a.name} must be a boolean (got ${typeof v})`);
      if (bit === 8) {
        out.octet(octet);
        octet = 0;
        bit = 0;
      }
      if (v) octet |= 1 << bit;
      bit++;
      continue;
    }
    if (bit > 0) {
      out.octet(octet);
      octet = 0;
      bit = 0;
    }
    writeArg(out, def, a, v);
  }
  if (bit > 0) out.octet(octet);
}

function reservedDefault(type: ArgType): unknown {
  switch (type) {
    case 'bit':
      return false;
    case 'shortstr':
      return '';
    case 'longstr':
      return EMPTY;
    case 'table':
      return {};
    default:
      return 0;
  }
}

const EMPTY = new Uint8Array(0);

function writeArg(out: WireWriter, def: MethodDef, a: ArgDef, v: unknown): void {
  const what = `${def.name} ${a.name}`;
  switch (a.type) {
    case 'octet':
      out.octet(number(v, what));
      return;
    case 'short':
      out.short(number(v, what));
      return;
    case 'long':
      out.long(number(v, what));
      return;
    case 'longlong':
    case 'timestamp':
      out.longlong(number(v, what));
      return;
    case 'shortstr':
      out.shortstr(v as string, what);
      return;
    case 'longstr':
      out.longstr(v as string | Uint8Array, what);
      return;
    case 'table':
      out.table(v as HeaderTable, what);
      return;
    case 'bit':
      // Bits are packed by writeArgs.
      return;
  }
}

function number(v: unknown, what: string): number {
  if (typeof v !== 'number') throw new TypeError(`${what} must be a number (got ${typeof v})`);
  return v;
}

/** Starts a frame: writes type and channel, leaves the size for endFrame. Returns where it starts. */
export function beginFrame(out: WireWriter, type: number, channel: number): number {
  if (!(channel >= 0 && channel <= 0xffff && Math.floor(channel) === channel)) {
    throw new RangeError(`channel must be an integer from 0 to 65535 (got ${channel})`);
  }
  const b = out.ensure(FRAME_HEADER_SIZE);
  const start = out.length;
  b[start] = type;
  b[start + 1] = channel >>> 8;
  b[start + 2] = channel & 0xff;
  out.setLength(start + FRAME_HEADER_SIZE);
  return start;
}

/** Ends the frame begun at `start`: fills in its size and writes the frame-end octet. */
export function endFrame(out: WireWriter, start: number): void {
  const b = out.ensure(1);
  const end = out.length;
  writeU32BE(b, start + 3, end - start - FRAME_HEADER_SIZE);
  b[end] = FRAME_END;
  out.setLength(end + 1);
}

/**
 * basic.deliver's method frame, by hand: written once per message delivered. The strings go
 * straight into the output buffer, measured after writing (room for 3 bytes per UTF-16 unit).
 */
export function writeBasicDeliverMethod(
  out: WireWriter,
  channel: number,
  consumerTag: string,
  deliveryTag: number,
  redelivered: boolean,
  exchange: string,
  routingKey: string,
): void {
  checkDeliveryTag(deliveryTag);
  // Checked before anything is written, so a bad argument leaves `out` as it was.
  checkString(consumerTag, 'basic.deliver consumerTag');
  checkString(exchange, 'basic.deliver exchange');
  checkString(routingKey, 'basic.deliver routingKey');
  const start = beginFrame(out, FrameType.method, channel);
  const b = out.ensure(4 + 1 + 3 * consumerTag.length + 8 + 1 + 1 + 3 * exchange.length + 1 + 3 * routingKey.length);
  let p = start + FRAME_HEADER_SIZE;
  b[p] = 0;
  b[p + 1] = 60;
  b[p + 2] = 0;
  b[p + 3] = 60;
  p += 4;
  p = shortstrAt(out, start, b, p, consumerTag, 'basic.deliver consumerTag');
  writeU64BE(b, p, deliveryTag);
  b[p + 8] = redelivered ? 1 : 0;
  p += 9;
  p = shortstrAt(out, start, b, p, exchange, 'basic.deliver exchange');
  p = shortstrAt(out, start, b, p, routingKey, 'basic.deliver routingKey');
  out.setLength(p);
  endFrame(out, start);
}

/** basic.ack (a publisher confirm), by hand: one per confirmed publish or batch. */
export function writeBasicAck(out: WireWriter, channel: number, deliveryTag: number, multiple: boolean): void {
  writeTagFrame(out, channel, 80, deliveryTag, multiple ? 1 : 0);
}

/** basic.nack (a negative publisher confirm), by hand. */
export function writeBasicNack(out: WireWriter, channel: number, deliveryTag: number, multiple: boolean, requeue: boolean): void {
  writeTagFrame(out, channel, 120, deliveryTag, (multiple ? 1 : 0) | (requeue ? 2 : 0));
}

/** A basic method whose arguments are a delivery tag and one octet of bits: 21 bytes. */
function writeTagFrame(out: WireWriter, channel: number, methodId: number, deliveryTag: number, bits: number): void {
  checkDeliveryTag(deliveryTag);
  const start = beginFrame(out, FrameType.method, channel);
  const b = out.ensure(14);
  const p = start + FRAME_HEADER_SIZE;
  writeU32BE(b, start + 3, 13);
  b[p] = 0;
  b[p + 1] = 60;
  b[p + 2] = 0;
  b[p + 3] = methodId;
  writeU64BE(b, p + 4, deliveryTag);
  b[p + 12] = bits;
  b[p + 13] = FRAME_END;
  out.setLength(p + 14);
}

function checkDeliveryTag(v: number): void {
  if (!(v >= 0 && v < U64_LIMIT && Math.floor(v) === v)) {
    throw new RangeError(`deliveryTag must be an integer from 0 to 2^64 - 1 (got ${v})`);
  }
}

function checkString(s: unknown, what: string): void {
  if (typeof s !== 'string') throw new TypeError(`${what} must be a string (got ${typeof s})`);
}

/** Writes `s` as a shortstr at `b[p]`; on a string over 255 bytes, drops the frame begun at `start` and throws. */
function shortstrAt(out: WireWriter, start: number, b: Uint8Array, p: number, s: string, what: string): number {
  const end = writeUtf8(s, b, p + 1);
  const n = end - p - 1;
  if (n > 255) {
    out.setLength(start);
    throw new RangeError(`${what} must be at most 255 UTF-8 bytes (got ${n})`);
  }
  b[p] = n;
  return end;
}
