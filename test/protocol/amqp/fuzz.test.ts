/**
 * Seeded fuzzing of the AMQP decoding path as the front end runs it: frame decoder → decodeMethod,
 * decodeContentHeader → amqpToMessageProperties. Random bytes, truncations and mutations of valid
 * streams, in random chunks. Every throw must be an AmqpError with a reply code or a
 * BadProtocolHeader, never a RangeError/TypeError out of a typed array; chunking must not change
 * the outcome; a hang would show as this file's timeout. Bounded: a fixed number of cases (well
 * under a second). Replay a failure with SHARDMQ_SEED=<seed> (printed in the assertion message).
 */
import { describe, expect, it } from 'vitest';
import { FRAME_MIN_SIZE, FrameType, HEARTBEAT_FRAME, PROTOCOL_HEADER, ReplyCode } from '../../../src/protocol/amqp/constants.js';
import { amqpToMessageProperties, decodeContentHeader, messagePropertiesToAmqp, writeDeliver } from '../../../src/protocol/amqp/content.js';
import { AmqpError } from '../../../src/protocol/amqp/errors.js';
import { AmqpFrameDecoder, BadProtocolHeader } from '../../../src/protocol/amqp/frame-decoder.js';
import { decodeMethod, METHODS, methodFrame } from '../../../src/protocol/amqp/methods.js';
import type { MethodName } from '../../../src/protocol/amqp/methods.js';
import { WireReader, WireWriter } from '../../../src/protocol/amqp/wire.js';
import { Prng, testSeed } from '../../helpers/prng.js';
import { concat, RICH_TABLE, SAMPLES } from './samples.js';

const SEED = testSeed();
const CASES = 500; // per property; four properties

const REPLY_CODES: ReadonlySet<number> = new Set(Object.values(ReplyCode));

/** Valid frames: every method, and deliveries with properties and split bodies. */
function corpus(): Uint8Array[] {
  const frames: Uint8Array[] = METHODS.map((d) => methodFrame(1, d.name as MethodName, SAMPLES[d.name as MethodName]));
  const w = new WireWriter();
  const props = messagePropertiesToAmqp({ contentType: 'text/plain', headers: RICH_TABLE, deliveryMode: 2, timestamp: 1, appId: 'a' });
  writeDeliver(w, 2, FRAME_MIN_SIZE, 'ctag', 7, true, 'ex', 'rk', props, new Uint8Array(5000).fill(0x42), 0, 5000);
  frames.push(w.take(), HEARTBEAT_FRAME);
  return frames;
}
const FRAMES = corpus();

type Outcome = { frames: string[]; error: string | null };

/** What a front end would do with each frame: decode it. */
function handle(type: number, payload: Uint8Array): string {
  if (type === FrameType.method) return decodeMethod(payload).name;
  if (type === FrameType.header) {
    const h = decodeContentHeader(payload);
    return `header ${h.bodySize} ${Object.keys(amqpToMessageProperties(h.properties)).length}`;
  }
  return `${type}:${payload.length}`;
}

/** Feeds `chunks`; returns the frames seen and the error, failing on any other kind of throw. */
function run(chunks: Uint8Array[], frameMax: number, seedNote: string): Outcome {
  const d = new AmqpFrameDecoder(frameMax);
  const frames: string[] = [];
  try {
    for (const c of chunks) d.push(c, { frame: (type, _channel, payload) => frames.push(handle(type, payload)) });
  } catch (err) {
    if (err instanceof BadProtocolHeader) return { frames, error: 'BadProtocolHeader' };
    if (!(err instanceof AmqpError)) throw new Error(`${seedNote}: ${String(err)}`, { cause: err });
    expect(REPLY_CODES.has(err.code), `${seedNote}: code ${err.code}`).toBe(true);
    expect(d.failed).toBe(true);
    return { frames, error: `AmqpError ${err.code}` };
  }
  return { frames, error: null };
}

function randomChunks(rng: Prng, bytes: Uint8Array): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  let at = 0;
  while (at < bytes.length) {
    const n = rng.chance(0.3) ? 1 : rng.int(1, 64);
    chunks.push(bytes.slice(at, at + n));
    at += n;
  }
  return chunks;
}

/** Runs `bytes` whole and in random chunks: both must end alike (frames and error). */
function check(rng: Prng, bytes: Uint8Array, caseNote: string): void {
  const frameMax = rng.pick([FRAME_MIN_SIZE, 8192, 131072]);
  const note = `seed ${SEED}, ${caseNote}`;
  const whole = run([bytes], frameMax, note);
  const chunked = run(randomChunks(rng, bytes), frameMax, note);
  expect(chunked, note).toEqual(whole);
}

function mutate(rng: Prng, bytes: Uint8Array): Uint8Array {
  const out = bytes.slice();
  const n = rng.int(1, 4);
  for (let k = 0; k < n && out.length > 0; k++) {
    const at = rng.int(0, out.length - 1);
    out[at] = rng.chance(0.5) ? rng.u32() & 0xff : out[at] ^ (1 << rng.int(0, 7));
  }
  return out;
}

/** A decoding step that may throw only an AmqpError. */
function onlyAmqpErrors(fn: () => unknown, note: string): void {
  try {
    fn();
  } catch (err) {
    if (!(err instanceof AmqpError)) throw new Error(`${note}: ${String(err)}`, { cause: err });
    expect(REPLY_CODES.has(err.code)).toBe(true);
  }
}

describe('amqp fuzz', () => {
  it('random bytes, with and without a protocol header', () => {
    const rng = new Prng(SEED);
    for (let i = 0; i < CASES; i++) {
      const junk = new Uint8Array(rng.skewedSize(0, 64, 600));
      rng.fill(junk);
      check(rng, rng.chance(0.7) ? concat(PROTOCOL_HEADER, junk) : junk, `random case ${i}`);
    }
  });

  it('valid streams truncated anywhere decode their whole frames and then wait', () => {
    const rng = new Prng(SEED + 1);
    for (let i = 0; i < CASES; i++) {
      const parts = Array.from({ length: rng.int(1, 6) }, () => rng.pick(FRAMES));
      const stream = concat(PROTOCOL_HEADER, ...parts);
      const cut = rng.int(0, stream.length);
      const note = `seed ${SEED}, truncation case ${i} at ${cut}`;
      const outcome = run(randomChunks(rng, stream.subarray(0, cut)), 131072, note);
      expect(outcome.error, note).toBeNull();
      // Truncated payloads handed straight to the method and property decoders.
      const payload = rng.pick(parts).subarray(7, -1);
      const n = rng.int(0, Math.max(0, payload.length - 1));
      onlyAmqpErrors(() => decodeMethod(payload.subarray(0, n)), note);
      onlyAmqpErrors(() => amqpToMessageProperties(payload.subarray(0, n)), note);
      onlyAmqpErrors(() => decodeContentHeader(payload.subarray(0, n)), note);
    }
  });

  it('mutated valid streams fail only with AMQP errors, whole or chunked', () => {
    const rng = new Prng(SEED + 2);
    for (let i = 0; i < CASES; i++) {
      const parts = Array.from({ length: rng.int(1, 4) }, () => rng.pick(FRAMES));
      const stream = concat(PROTOCOL_HEADER, ...parts);
      // Mostly past the protocol header, where the frame and method decoders are exercised.
      const mutated = rng.chance(0.9) ? concat(PROTOCOL_HEADER, mutate(rng, stream.subarray(8))) : mutate(rng, stream);
      check(rng, mutated, `mutation case ${i}`);
    }
  });

  it('method arguments, properties and tables from random and mutated bytes', () => {
    const rng = new Prng(SEED + 3);
    const props = messagePropertiesToAmqp({ contentType: 'a', headers: RICH_TABLE, priority: 1, timestamp: 5, userId: 'u' });
    const tw = new WireWriter();
    tw.table(RICH_TABLE);
    const table = tw.take();
    for (let i = 0; i < CASES; i++) {
      const note = `seed ${SEED}, direct case ${i}`;
      const def = rng.pick(METHODS);
      const valid = methodFrame(0, def.name, SAMPLES[def.name]).subarray(7, -1);
      const args = new Uint8Array(rng.skewedSize(0, 16, 200));
      rng.fill(args);
      onlyAmqpErrors(() => decodeMethod(concat(valid.subarray(0, 4), args)), note);
      onlyAmqpErrors(() => decodeMethod(mutate(rng, valid)), note);
      onlyAmqpErrors(() => amqpToMessageProperties(mutate(rng, props)), note);
      onlyAmqpErrors(() => amqpToMessageProperties(args), note);
      onlyAmqpErrors(() => new WireReader(mutate(rng, table)).table(), note);
      onlyAmqpErrors(() => new WireReader(args).table(), note);
    }
  });
});
