/**
 * JSON text-frame ops of the WebSocket contract (design.md §3): every op with valid input, and every
 * validation error as a BrokerError with code bad_frame or unknown_op and a message naming the field.
 */
import { describe, expect, it } from 'vitest';
import { BrokerError, ErrorCode } from '../../src/protocol/errors.js';
import { MAX_SUBSCRIPTION_ID_LENGTH, parseClientOp } from '../../src/protocol/ws-json.js';

/** Parses `frame` (an object is JSON-encoded first), expecting a BrokerError; returns it. */
function frameError(frame: string | object): BrokerError {
  const text = typeof frame === 'string' ? frame : JSON.stringify(frame);
  let caught: unknown;
  try {
    parseClientOp(text);
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(BrokerError);
  const err = caught as BrokerError;
  expect(err.status).toBe(400);
  return err;
}

function badFrame(frame: string | object, messageMatch: RegExp): void {
  const err = frameError(frame);
  expect(err.code).toBe(ErrorCode.badFrame);
  expect(err.code).toBe('bad_frame');
  expect(err.message).toMatch(messageMatch);
}

const parse = (frame: object) => parseClientOp(JSON.stringify(frame));

describe('parseClientOp - frame', () => {
  it.each(['', '{', 'nope', '{"op":"ack",}', "{'op':'ack'}"])('frame - %j is not valid JSON', (text) => {
    badFrame(text, /^frame is not valid JSON: /);
  });

  it.each(['null', '[]', '[{"op":"ack","tag":1}]', '"subscribe"', '42', 'true'])('frame - %s is not a JSON object', (text) => {
    badFrame(text, /must be a JSON object with an "op" field/);
  });

  it.each([
    ['an unknown op', { op: 'bind' }, '"bind"'],
    ['a missing op', { id: 's1' }, 'undefined'],
    ['a non-string op', { op: 1 }, '1'],
    ['op in the wrong case', { op: 'Subscribe' }, '"Subscribe"'],
  ])('frame - %s is unknown_op, naming it and the known ops', (_case, frame, shown) => {
    const err = frameError(frame);
    expect(err.code).toBe(ErrorCode.unknownOp);
    expect(err.code).toBe('unknown_op');
    expect(err.message).toContain(`unknown op ${shown}`);
    expect(err.message).toContain('subscribe, unsubscribe, publish, ack, nack or commit');
  });
});

describe('parseClientOp - subscribe', () => {
  it('subscribe - the design.md example with every field', () => {
    expect(parse({ op: 'subscribe', id: 's1', destination: '/topic/a.*', ack: 'client', prefetch: 100, receipt: 'r1' })).toEqual({
      op: 'subscribe',
      id: 's1',
      destination: '/topic/a.*',
      ack: 'client',
      prefetch: 100,
      receipt: 'r1',
      arguments: null,
    });
  });

  it('commit - a stream consumer stores an offset; the offset must be an integer ≥ 0', () => {
    expect(parse({ op: 'commit', subscription: 's1', offset: 99, receipt: 'r' })).toEqual({
      op: 'commit',
      subscription: 's1',
      offset: 99,
      receipt: 'r',
    });
    for (const bad of [-1, 1.5, '3', null, undefined]) {
      expect(() => parse({ op: 'commit', subscription: 's1', offset: bad })).toThrow(/offset must be an integer/);
    }
  });

  it('subscribe - consumer arguments (x-stream-offset) pass through; a non-object is refused', () => {
    expect(parse({ op: 'subscribe', id: 's1', destination: '/queue/metrics', arguments: { 'x-stream-offset': 'first' } })).toMatchObject({
      arguments: { 'x-stream-offset': 'first' },
    });
    for (const bad of ['first', 5, [1], null]) {
      expect(() => parse({ op: 'subscribe', id: 's1', destination: '/queue/metrics', arguments: bad })).toThrow(
        /arguments must be an object/,
      );
    }
  });

  it('subscribe - defaults: ack auto, no prefetch, no receipt', () => {
    expect(parse({ op: 'subscribe', id: 's1', destination: '/queue/jobs' })).toEqual({
      op: 'subscribe',
      id: 's1',
      destination: '/queue/jobs',
      ack: 'auto',
      prefetch: null,
      receipt: null,
      arguments: null,
    });
  });

  it('subscribe - the destination is passed through unparsed (it is validated elsewhere)', () => {
    expect(parse({ op: 'subscribe', id: 's1', destination: 'anything' })).toMatchObject({ destination: 'anything' });
  });

  it.each([0, 1, 0xffff_ffff])('subscribe - prefetch %i is accepted', (prefetch) => {
    expect(parse({ op: 'subscribe', id: 's', destination: '/queue/q', prefetch })).toMatchObject({ prefetch });
  });

  it.each([
    ['-1', -1],
    ['2^32', 0x1_0000_0000],
    ['1.5', 1.5],
    ['"10"', '10'],
    ['true', true],
    ['null', null],
  ])('subscribe - prefetch %s is rejected', (_case, prefetch) => {
    badFrame({ op: 'subscribe', id: 's', destination: '/queue/q', prefetch }, /prefetch must be an integer/);
  });

  it.each([
    ['"AUTO"', 'AUTO'],
    ['"none"', 'none'],
    ['1', 1],
    ['false', false],
  ])('subscribe - ack %s is rejected', (_case, ack) => {
    badFrame({ op: 'subscribe', id: 's', destination: '/queue/q', ack }, /ack must be "auto" or "client"/);
  });

  it.each([
    ['missing', undefined],
    ['a number', 5],
    ['null', null],
  ])('subscribe - destination %s is rejected', (_case, destination) => {
    badFrame({ op: 'subscribe', id: 's', destination }, /destination must be a string/);
  });

  it(`subscribe - an id of ${MAX_SUBSCRIPTION_ID_LENGTH} characters is accepted`, () => {
    const id = 'i'.repeat(MAX_SUBSCRIPTION_ID_LENGTH);
    expect(parse({ op: 'subscribe', id, destination: '/queue/q' })).toMatchObject({ id });
  });

  it.each([
    ['missing', undefined],
    ['empty', ''],
    ['a number', 1],
    [`${MAX_SUBSCRIPTION_ID_LENGTH + 1} characters long`, 'i'.repeat(MAX_SUBSCRIPTION_ID_LENGTH + 1)],
  ])('subscribe - an id that is %s is rejected with the length limit', (_case, id) => {
    badFrame(
      { op: 'subscribe', id, destination: '/queue/q' },
      new RegExp(`id must be a non-empty string of at most ${MAX_SUBSCRIPTION_ID_LENGTH} characters`),
    );
  });

  it('subscribe - receipt null is the same as no receipt', () => {
    expect(parse({ op: 'subscribe', id: 's', destination: '/queue/q', receipt: null })).toMatchObject({ receipt: null });
  });

  it.each([
    ['a number', 7],
    ['an object', { r: 1 }],
    [`${MAX_SUBSCRIPTION_ID_LENGTH + 1} characters long`, 'r'.repeat(MAX_SUBSCRIPTION_ID_LENGTH + 1)],
  ])('subscribe - a receipt that is %s is rejected', (_case, receipt) => {
    badFrame({ op: 'subscribe', id: 's', destination: '/queue/q', receipt }, /receipt must be a string/);
  });
});

describe('parseClientOp - unsubscribe', () => {
  it('unsubscribe - id and receipt', () => {
    expect(parse({ op: 'unsubscribe', id: 's1', receipt: 'r9' })).toEqual({ op: 'unsubscribe', id: 's1', receipt: 'r9' });
  });

  it('unsubscribe - no receipt', () => {
    expect(parse({ op: 'unsubscribe', id: 's1' })).toEqual({ op: 'unsubscribe', id: 's1', receipt: null });
  });

  it('unsubscribe - a missing id is rejected', () => {
    badFrame({ op: 'unsubscribe' }, /^id must be a non-empty string/);
  });

  it('unsubscribe - an over-long id is rejected', () => {
    badFrame({ op: 'unsubscribe', id: 'x'.repeat(MAX_SUBSCRIPTION_ID_LENGTH + 1) }, /^id must be/);
  });
});

describe('parseClientOp - publish', () => {
  it('publish - the design.md example: a UTF-8 text payload with a receipt', () => {
    const op = parse({ op: 'publish', destination: '/queue/jobs', payload: 'text', receipt: 'r1' });
    expect(op).toMatchObject({ op: 'publish', destination: '/queue/jobs', receipt: 'r1' });
    expect(op.op === 'publish' && [...op.payload]).toEqual([0x74, 0x65, 0x78, 0x74]);
  });

  it('publish - a utf8 payload is its UTF-8 bytes (not UTF-16 code units)', () => {
    const op = parse({ op: 'publish', destination: '/topic/t', payload: 'é🌡', encoding: 'utf8' });
    expect(op.op === 'publish' && [...op.payload]).toEqual([0xc3, 0xa9, 0xf0, 0x9f, 0x8c, 0xa1]);
  });

  it('publish - an empty payload is a zero-length message', () => {
    const op = parse({ op: 'publish', destination: '/topic/t', payload: '' });
    expect(op).toMatchObject({ op: 'publish', receipt: null });
    expect(op.op === 'publish' && op.payload.byteLength).toBe(0);
  });

  it('publish - a base64 payload decodes to its exact bytes, all 256 values', () => {
    const bytes = new Uint8Array(256);
    for (let i = 0; i < 256; i++) bytes[i] = i;
    const op = parse({ op: 'publish', destination: '/queue/bin', payload: Buffer.from(bytes).toString('base64'), encoding: 'base64' });
    expect(op.op === 'publish' && new Uint8Array(op.payload)).toEqual(bytes);
  });

  it.each([
    ['padded', 'AAE=', [0, 1]],
    ['unpadded', 'AAE', [0, 1]],
    ['empty', '', []],
  ])('publish - base64 %s', (_case, payload, want) => {
    const op = parse({ op: 'publish', destination: '/queue/bin', payload, encoding: 'base64' });
    expect(op.op === 'publish' && [...op.payload]).toEqual(want);
  });

  it('publish - a base64 payload that is not base64 is rejected, not silently altered', () => {
    // Node's decoder skips characters outside the alphabet and stops at the first padding, so each of
    // these would otherwise publish bytes the client never sent: [], "hello" and [0, 1].
    for (const payload of ['!!!!', 'aGVs*bG8', 'AAE=AAE=']) {
      const text = JSON.stringify({ op: 'publish', destination: '/queue/bin', payload, encoding: 'base64' });
      expect(() => parseClientOp(text), `payload ${JSON.stringify(payload)}`).toThrow(BrokerError);
      badFrame(text, /payload|base64/);
    }
  });

  it.each([
    ['"hex"', 'hex'],
    ['"UTF8"', 'UTF8'],
    ['"binary"', 'binary'],
    ['null', null],
    ['1', 1],
  ])('publish - encoding %s is rejected', (_case, encoding) => {
    badFrame({ op: 'publish', destination: '/queue/q', payload: 'x', encoding }, /encoding must be "utf8" or "base64"/);
  });

  it.each([
    ['missing', undefined],
    ['a number', 1],
    ['an array of bytes', [1, 2]],
    ['null', null],
    ['an object', { data: 'x' }],
  ])('publish - a payload that is %s is rejected', (_case, payload) => {
    badFrame({ op: 'publish', destination: '/queue/q', payload }, /payload must be a string/);
  });

  it('publish - a missing destination is rejected', () => {
    badFrame({ op: 'publish', payload: 'x' }, /destination must be a string/);
  });

  it('publish - a non-string receipt is rejected', () => {
    badFrame({ op: 'publish', destination: '/queue/q', payload: 'x', receipt: 1 }, /receipt must be a string/);
  });
});

describe('parseClientOp - ack and nack', () => {
  it.each([1, 42, 2 ** 32, 2 ** 52, Number.MAX_SAFE_INTEGER])('ack - tag %i', (tag) => {
    expect(parse({ op: 'ack', tag })).toEqual({ op: 'ack', tag, multiple: false });
  });

  it.each([
    ['0', 0],
    ['-1', -1],
    ['1.5', 1.5],
    ['2^53', 2 ** 53],
    ['"1"', '1'],
    ['missing', undefined],
    ['null', null],
  ])('ack - tag %s is rejected', (_case, tag) => {
    badFrame({ op: 'ack', tag }, /tag must be a positive integer/);
  });

  it('nack - requeue defaults to true', () => {
    expect(parse({ op: 'nack', tag: 7 })).toEqual({ op: 'nack', tag: 7, requeue: true, multiple: false });
  });

  it.each([true, false])('nack - requeue %s is kept', (requeue) => {
    expect(parse({ op: 'nack', tag: 7, requeue })).toEqual({ op: 'nack', tag: 7, requeue, multiple: false });
  });

  it.each([
    ['"false"', 'false'],
    ['0', 0],
    ['null', null],
  ])('nack - requeue %s is rejected (not a boolean)', (_case, requeue) => {
    badFrame({ op: 'nack', tag: 7, requeue }, /requeue must be a boolean/);
  });

  it('nack - tag is validated like ack', () => {
    badFrame({ op: 'nack', tag: 0 }, /tag must be a positive integer/);
  });

  it('ack and nack - tag 0 with multiple means every outstanding delivery, as in the binary protocol', () => {
    expect(parse({ op: 'ack', tag: 0, multiple: true })).toEqual({ op: 'ack', tag: 0, multiple: true });
    expect(parse({ op: 'nack', tag: 0, multiple: true, requeue: false })).toEqual({ op: 'nack', tag: 0, multiple: true, requeue: false });
    badFrame({ op: 'ack', tag: 0, multiple: false }, /tag must be a positive integer/);
  });
});
