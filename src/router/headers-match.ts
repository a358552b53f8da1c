/**
 * Headers-exchange matching (AMQP 0-9-1 `headers` type, RabbitMQ semantics): a binding's arguments
 * are compiled once, at bind time, into a {@link HeadersBinding}; {@link matchHeaders} then tests a
 * message's headers against it without allocating.
 *
 * Semantics, as RabbitMQ's `rabbit_exchange_type_headers` implements them:
 * - `x-match` selects the mode: `all` (the default when absent), `any`, `all-with-x`, `any-with-x`.
 *   Any other value is refused at bind time with PRECONDITION_FAILED.
 * - `x-match` itself never takes part in matching. Other arguments whose names start with `x-` are
 *   ignored too, except in the `-with-x` modes.
 * - An argument matches when the message has a header of that name with an equal value (see
 *   {@link headerValuesEqual}). An argument with no value (`null` or `undefined`, AMQP void) matches
 *   when the header is present, whatever its value.
 * - `all` with zero matchable arguments matches every message (headers or not); `any` with zero
 *   matchable arguments matches none.
 * - A header whose value is `undefined` counts as absent (AMQP has no such value); a header whose
 *   value is `null` (void) is present. Only own properties count: a binding on `constructor` does
 *   not match a message that lacks that header.
 */

import { RouterError, RouterErrorCode } from './router-error.js';

/** A message header value: the JS side of an AMQP field-table value. */
export type HeaderValue =
  | string
  | number
  | bigint
  | boolean
  | null
  | Uint8Array
  | Date
  | readonly HeaderValue[]
  | { readonly [name: string]: HeaderValue };

/** A message's headers (AMQP `headers` basic property). */
export type MessageHeaders = Readonly<Record<string, HeaderValue | undefined>>;

/** The binding argument that selects the headers match mode. */
export const X_MATCH = 'x-match';

/** Prefix of reserved argument names, ignored for matching outside the `-with-x` modes. */
const RESERVED_PREFIX = 'x-';

export const XMatch = {
  all: 'all',
  any: 'any',
  allWithX: 'all-with-x',
  anyWithX: 'any-with-x',
} as const;
export type XMatch = (typeof XMatch)[keyof typeof XMatch];

/** A headers binding compiled for matching: parallel arrays, so a match walks them without allocating. */
export interface HeadersBinding {
  /** The `x-match` mode in force. */
  readonly mode: XMatch;
  /** True for `all`/`all-with-x`: every argument must match; false: at least one. */
  readonly matchAll: boolean;
  /** Names of the arguments that take part in matching, in the binding's key order. */
  readonly names: readonly string[];
  /** `values[i]` is the value `names[i]` must equal (ignored when `presenceOnly[i]`). */
  readonly values: readonly unknown[];
  /** `presenceOnly[i]`: the argument has no value (void), so the header only has to be present. */
  readonly presenceOnly: readonly boolean[];
}

/**
 * Reads `x-match` from binding arguments, refusing values RabbitMQ refuses (PRECONDITION_FAILED, as
 * `validate_binding` does): a string other than the four modes, or a non-string.
 */
export function parseXMatch(args: Readonly<Record<string, unknown>> | null | undefined): XMatch {
  if (args == null || !Object.hasOwn(args, X_MATCH)) return XMatch.all;
  const value = args[X_MATCH];
  if (value === undefined) return XMatch.all;
  if (typeof value !== 'string') {
    throw new RouterError(
      RouterErrorCode.preconditionFailed,
      `Invalid x-match field type ${value === null ? 'void' : typeof value} (value ${describeValue(value)}); expected longstr`,
    );
  }
  switch (value) {
    case XMatch.all:
    case XMatch.any:
    case XMatch.allWithX:
    case XMatch.anyWithX:
      return value;
    default:
      throw new RouterError(
        RouterErrorCode.preconditionFailed,
        `Invalid x-match field value '${value}'; expected all, any, all-with-x, or any-with-x`,
      );
  }
}

/** Compiles binding arguments for {@link matchHeaders}; throws RouterError for a bad `x-match`. */
export function compileHeadersBinding(args: Readonly<Record<string, unknown>> | null | undefined): HeadersBinding {
  const mode = parseXMatch(args);
  const withX = mode === XMatch.allWithX || mode === XMatch.anyWithX;
  const names: string[] = [];
  const values: unknown[] = [];
  const presenceOnly: boolean[] = [];
  if (args != null) {
    for (const name of Object.keys(args)) {
      if (name === X_MATCH) continue;
      if (!withX && name.startsWith(RESERVED_PREFIX)) continue;
      const value = args[name];
      names.push(name);
      values.push(value);
      presenceOnly.push(value === null || value === undefined);
    }
  }
  return Object.freeze({
    mode,
    matchAll: mode === XMatch.all || mode === XMatch.allWithX,
    names: Object.freeze(names),
    values: Object.freeze(values),
    presenceOnly: Object.freeze(presenceOnly),
  });
}

/** Does a message with `headers` match the compiled binding? Allocation-free. */
export function matchHeaders(binding: HeadersBinding, headers: MessageHeaders | null | undefined): boolean {
  const names = binding.names;
  const n = names.length;
  if (binding.matchAll) {
    if (n === 0) return true;
    if (headers == null) return false;
    for (let i = 0; i < n; i++) {
      const name = names[i];
      if (!Object.hasOwn(headers, name)) return false;
      const actual = headers[name];
      if (actual === undefined) return false;
      if (!binding.presenceOnly[i] && !headerValuesEqual(binding.values[i], actual)) return false;
    }
    return true;
  }
  if (n === 0 || headers == null) return false;
  for (let i = 0; i < n; i++) {
    const name = names[i];
    if (!Object.hasOwn(headers, name)) continue;
    const actual = headers[name];
    if (actual === undefined) continue;
    if (binding.presenceOnly[i] || headerValuesEqual(binding.values[i], actual)) return true;
  }
  return false;
}

/**
 * Value equality of a binding argument and a header value, as RabbitMQ's `==` on field values (the
 * AMQP type tag is not compared, since JS values do not carry it):
 * - primitives by `===` (so `1` equals `1.0`, and `'1'` does not equal `1`);
 * - a bigint equals a number or bigint of the same integer value;
 * - byte arrays (`Uint8Array`, so also `Buffer`) byte by byte; `Date`s (AMQP timestamps) by time;
 * - arrays element by element; plain objects (nested tables) by the same own keys with equal values.
 */
export function headerValuesEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  const ta = typeof a;
  const tb = typeof b;
  if (ta === 'bigint' || tb === 'bigint') return integersEqual(a, b);
  if (ta !== 'object' || tb !== 'object' || a === null || b === null) return false;
  if (a instanceof Uint8Array) return b instanceof Uint8Array && bytesEqual(a, b);
  if (b instanceof Uint8Array) return false;
  if (a instanceof Date) return b instanceof Date && a.getTime() === b.getTime();
  if (b instanceof Date) return false;
  const aIsArray = Array.isArray(a);
  if (aIsArray !== Array.isArray(b)) return false;
  if (aIsArray) {
    const xs = a as readonly unknown[];
    const ys = b as readonly unknown[];
    if (xs.length !== ys.length) return false;
    for (let i = 0; i < xs.length; i++) if (!headerValuesEqual(xs[i], ys[i])) return false;
    return true;
  }
  const x = a as Readonly<Record<string, unknown>>;
  const y = b as Readonly<Record<string, unknown>>;
  const keys = Object.keys(x);
  if (keys.length !== Object.keys(y).length) return false;
  for (const key of keys) {
    if (!Object.hasOwn(y, key) || !headerValuesEqual(x[key], y[key])) return false;
  }
  return true;
}

function integersEqual(a: unknown, b: unknown): boolean {
  const x = toBigInt(a);
  const y = toBigInt(b);
  return x !== null && y !== null && x === y;
}

function toBigInt(v: unknown): bigint | null {
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number' && Number.isInteger(v)) return BigInt(v);
  return null;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function describeValue(v: unknown): string {
  if (typeof v === 'bigint') return `${v}`;
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}
