import { describe, expect, it } from 'vitest';
import { FRAME_MIN_SIZE, FrameType, HEARTBEAT_FRAME, PROTOCOL_HEADER, ReplyCode } from '../../../src/protocol/amqp/constants.js';
import { AmqpError } from '../../../src/protocol/amqp/errors.js';
import { AmqpFrameDecoder, BadProtocolHeader, FrameDecoderState } from '../../../src/protocol/amqp/frame-decoder.js';
import type { FrameSink } from '../../../src/protocol/amqp/frame-decoder.js';
import { methodFrame } from '../../../src/protocol/amqp/methods.js';
import { bytes, concat, frame, SAMPLES } from './samples.js';

interface Got {
  type: number;
  channel: number;
  /** Hex: cheap to compare over thousands of runs. */
  payload: string;
}

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.length).toString('hex');

/** A sink that records copies (payloads are only valid during the call). */
function recorder(): { frames: Got[]; sink: FrameSink } {
  const frames: Got[] = [];
  return { frames, sink: { frame: (type, channel, payload) => frames.push({ type, channel, payload: hex(payload) }) } };
}

function decodeChunks(chunks: Uint8Array[], frameMax = 131072): Got[] {
  const d = new AmqpFrameDecoder(frameMax);
  const { frames, sink } = recorder();
  for (const c of chunks) d.push(c, sink);
  expect(d.state).toBe(FrameDecoderState.FRAME_HEADER);
  return frames;
}

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected a throw');
}

const body = new Uint8Array(700).map((_, i) => (i * 7) & 0xff);
const FRAMES = [
  methodFrame(1, 'basic.publish', SAMPLES['basic.publish']),
  frame(FrameType.header, 1, Uint8Array.of(0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0xbc, 0, 0)),
  frame(FrameType.body, 1, body.subarray(0, 500)),
  frame(FrameType.body, 1, body.subarray(500)),
  HEARTBEAT_FRAME,
  frame(FrameType.body, 65535, new Uint8Array(0)),
  methodFrame(0, 'connection.close-ok', {}),
];
const STREAM = concat(PROTOCOL_HEADER, ...FRAMES);
const EXPECTED: Got[] = FRAMES.map((f) => ({ type: f[0], channel: (f[1] << 8) | f[2], payload: hex(f.subarray(7, f.length - 1)) }));

describe('frame decoder - splitting', () => {
  it('decodes a stream of mixed frames pushed whole', () => {
    expect(decodeChunks([STREAM])).toEqual(EXPECTED);
  });

  it('decodes the same frames fed a byte at a time', () => {
    const chunks = Array.from(STREAM, (b) => Uint8Array.of(b));
    expect(decodeChunks(chunks)).toEqual(EXPECTED);
  });

  it('decodes the same frames split at every offset', () => {
    for (let at = 0; at <= STREAM.length; at++) {
      expect(decodeChunks([STREAM.slice(0, at), STREAM.slice(at)]), `split at ${at}`).toEqual(EXPECTED);
    }
  });

  it('decodes the same frames cut into three at many pairs of offsets', () => {
    const points = [0, 1, 7, 8, 9, 14, 15, 30, 60, 61, 62, 500, 580, STREAM.length - 9, STREAM.length - 1];
    for (const a of points) {
      for (const b of points) {
        if (b < a) continue;
        expect(decodeChunks([STREAM.slice(0, a), STREAM.slice(a, b), STREAM.slice(b)]), `cuts ${a}, ${b}`).toEqual(EXPECTED);
      }
    }
  });

  it('hands out views of the chunk when a frame is whole inside it (zero copy)', () => {
    const d = new AmqpFrameDecoder(FRAME_MIN_SIZE);
    d.push(PROTOCOL_HEADER, recorder().sink);
    const chunk = concat(...FRAMES.slice(0, 2));
    const views: Uint8Array[] = [];
    d.push(chunk, { frame: (_t, _c, p) => views.push(p) });
    expect(views).toHaveLength(2);
    for (const v of views) expect(v.buffer).toBe(chunk.buffer);
    expect(views[0].byteOffset).toBe(7);
    expect(d.bufferSize).toBe(0);
  });

  it('a split frame is unaffected by the caller reusing its chunks', () => {
    const d = new AmqpFrameDecoder(131072);
    const { frames, sink } = recorder();
    const chunk = new Uint8Array(64);
    for (let at = 0; at < STREAM.length; at += 64) {
      const n = Math.min(64, STREAM.length - at);
      chunk.set(STREAM.subarray(at, at + n));
      d.push(chunk.subarray(0, n), sink);
      chunk.fill(0xee);
    }
    expect(frames).toEqual(EXPECTED);
  });

  it('the split-frame buffer grows only to the largest payload frameMax allows', () => {
    const frameMax = 10_000;
    const d = new AmqpFrameDecoder(frameMax);
    const { frames, sink } = recorder();
    d.push(PROTOCOL_HEADER, sink);
    const big = frame(FrameType.body, 1, new Uint8Array(frameMax - 8).fill(1));
    for (let i = 0; i < big.length; i += 1000) d.push(big.subarray(i, i + 1000), sink);
    expect(frames).toHaveLength(1);
    expect(frames[0].payload).toBe('01'.repeat(frameMax - 8));
    expect(d.bufferSize).toBe(frameMax - 8);
    // A small split frame later reuses the buffer.
    const small = frame(FrameType.body, 1, Uint8Array.of(1, 2, 3));
    d.push(small.subarray(0, 5), sink);
    d.push(small.subarray(5), sink);
    expect(frames[1].payload).toBe('010203');
    expect(d.bufferSize).toBe(frameMax - 8);
  });

  it('accepts a frame of exactly frameMax bytes', () => {
    const f = frame(FrameType.body, 1, new Uint8Array(FRAME_MIN_SIZE - 8));
    expect(decodeChunks([PROTOCOL_HEADER, f], FRAME_MIN_SIZE)).toHaveLength(1);
  });

  it('applies a frameMax changed by the sink to the next frame in the same chunk (tune-ok)', () => {
    const d = new AmqpFrameDecoder(131072);
    d.push(PROTOCOL_HEADER, recorder().sink);
    const chunk = concat(frame(FrameType.method, 0, Uint8Array.of(0, 10, 0, 31)), frame(FrameType.body, 1, new Uint8Array(5000)));
    const e = thrown(() =>
      d.push(chunk, {
        frame: () => {
          d.frameMax = FRAME_MIN_SIZE;
        },
      }),
    );
    expect(e).toBeInstanceOf(AmqpError);
    expect((e as AmqpError).code).toBe(ReplyCode.frameError);
  });

  it('refuses a frameMax it cannot honour', () => {
    for (const bad of [0, 7, 1.5, Number.NaN, 2 ** 33]) expect(() => new AmqpFrameDecoder(bad)).toThrow(RangeError);
    const d = new AmqpFrameDecoder(FRAME_MIN_SIZE);
    expect(() => {
      d.frameMax = -1;
    }).toThrow(RangeError);
    expect(d.frameMax).toBe(FRAME_MIN_SIZE);
  });
});

describe('frame decoder - protocol header', () => {
  it('accepts AMQP 0-9-1 a byte at a time and reports headerDone', () => {
    const d = new AmqpFrameDecoder(FRAME_MIN_SIZE);
    const { frames, sink } = recorder();
    for (let i = 0; i < 8; i++) {
      expect(d.headerDone).toBe(false);
      d.push(PROTOCOL_HEADER.subarray(i, i + 1), sink);
    }
    expect(d.headerDone).toBe(true);
    expect(frames).toEqual([]);
  });

  it.each([
    ['AMQP 0-9-0', 'AMQP\0\0\x09\x00'],
    ['HTTP', 'HTTP/1.1'],
    ['AMQP 0-9 (old style)', 'AMQP\x01\x01\x00\x09'],
    ['AMQP 1.0', 'AMQP\x00\x01\x00\x00'],
    ['AMQP 0-8', 'AMQP\x01\x01\x08\x00'],
    ['a GET', 'GET / HTTP/1.1\r\n'],
    ['a frame first', '\x01\x00\x00\x00\x00\x00\x04'],
  ])('refuses %s with BadProtocolHeader, whole or a byte at a time', (_name, header) => {
    const input = Uint8Array.from(header, (c) => c.charCodeAt(0));
    const whole = new AmqpFrameDecoder(FRAME_MIN_SIZE);
    expect(thrown(() => whole.push(input, recorder().sink))).toBeInstanceOf(BadProtocolHeader);
    expect(whole.headerDone).toBe(false);
    expect(whole.failed).toBe(true);
    const byByte = new AmqpFrameDecoder(FRAME_MIN_SIZE);
    const e = thrown(() => {
      for (const b of input) byByte.push(Uint8Array.of(b), recorder().sink);
    });
    expect(e).toBeInstanceOf(BadProtocolHeader);
    // It stops at the first byte that differs, with what it read.
    const received = (e as BadProtocolHeader).received;
    expect([...received.subarray(0, -1)]).toEqual([...PROTOCOL_HEADER.subarray(0, received.length - 1)]);
    expect(received.at(-1)).not.toBe(PROTOCOL_HEADER[received.length - 1]);
    // And stays failed, even for a correct header now.
    expect(thrown(() => byByte.push(PROTOCOL_HEADER, recorder().sink))).toBe(e);
  });

  it('waits for more when the header is a correct prefix', () => {
    const d = new AmqpFrameDecoder(FRAME_MIN_SIZE);
    d.push(bytes('AMQ'), recorder().sink);
    expect(d.headerDone).toBe(false);
    expect(d.failed).toBe(false);
  });
});

describe('frame decoder - frame errors', () => {
  function failsWith501(input: Uint8Array[], frameMax = FRAME_MIN_SIZE): AmqpFrameDecoder {
    const d = new AmqpFrameDecoder(frameMax);
    const { frames, sink } = recorder();
    let e: unknown;
    try {
      for (const c of input) d.push(c, sink);
    } catch (err) {
      e = err;
    }
    expect(e).toBeInstanceOf(AmqpError);
    expect((e as AmqpError).code).toBe(ReplyCode.frameError);
    expect(d.failed).toBe(true);
    // Stays failed: a valid frame afterwards throws the same error and is not delivered.
    const before = frames.length;
    expect(thrown(() => d.push(HEARTBEAT_FRAME, sink))).toBe(e);
    expect(frames).toHaveLength(before);
    return d;
  }

  it('a wrong frame-end is 501, whole, split before the end, or after a buffered payload', () => {
    const bad = frame(FrameType.method, 1, Uint8Array.of(0, 60, 0, 80, 0, 0, 0, 0, 0, 0, 0, 1, 0), 0xcd);
    failsWith501([PROTOCOL_HEADER, bad]);
    failsWith501([PROTOCOL_HEADER, bad.subarray(0, bad.length - 1), bad.subarray(bad.length - 1)]);
    failsWith501([PROTOCOL_HEADER, bad.subarray(0, 10), bad.subarray(10)]);
    failsWith501([PROTOCOL_HEADER, frame(FrameType.heartbeat, 0, new Uint8Array(0), 0)]);
  });

  it('delivers the frames before the bad one', () => {
    const d = new AmqpFrameDecoder(FRAME_MIN_SIZE);
    const { frames, sink } = recorder();
    const input = concat(PROTOCOL_HEADER, HEARTBEAT_FRAME, frame(FrameType.body, 1, Uint8Array.of(1), 0));
    expect(thrown(() => d.push(input, sink))).toBeInstanceOf(AmqpError);
    expect(frames).toHaveLength(1);
  });

  it('a frame larger than frameMax is 501 at its header, before its payload arrives', () => {
    const header = Uint8Array.of(FrameType.body, 0, 1, 0, 0, FRAME_MIN_SIZE >> 8, (FRAME_MIN_SIZE & 0xff) - 7);
    // Payload FRAME_MIN_SIZE - 7: one byte over. Only the 7 header bytes are pushed.
    const d = failsWith501([PROTOCOL_HEADER, header]);
    expect((d.error as AmqpError).message).toContain('frame_max 4096');
    failsWith501([PROTOCOL_HEADER, ...Array.from(header, (b) => Uint8Array.of(b))]);
    failsWith501([PROTOCOL_HEADER, Uint8Array.of(FrameType.body, 0, 1, 0xff, 0xff, 0xff, 0xff)]);
    expect(d.bufferSize).toBe(0);
  });

  it.each([0, 4, 5, 9, 0x41, 0xce, 0xff])('an unknown frame type %i is 501', (type) => {
    failsWith501([PROTOCOL_HEADER, frame(type, 0, new Uint8Array(0))]);
    failsWith501([PROTOCOL_HEADER, Uint8Array.of(type), Uint8Array.of(0, 0, 0, 0, 0, 0, 0xce)]);
  });

  it('a sink that throws propagates, and the decoder is failed', () => {
    const d = new AmqpFrameDecoder(FRAME_MIN_SIZE);
    const boom = new Error('boom');
    d.push(PROTOCOL_HEADER, recorder().sink);
    expect(
      thrown(() =>
        d.push(HEARTBEAT_FRAME, {
          frame: () => {
            throw boom;
          },
        }),
      ),
    ).toBe(boom);
    expect(d.failed).toBe(true);
    expect(thrown(() => d.push(HEARTBEAT_FRAME, recorder().sink))).toBe(boom);
  });

  it('refuses a re-entrant push from its own sink', () => {
    const d = new AmqpFrameDecoder(FRAME_MIN_SIZE);
    d.push(PROTOCOL_HEADER, recorder().sink);
    const sink: FrameSink = { frame: () => d.push(HEARTBEAT_FRAME, sink) };
    expect(thrown(() => d.push(HEARTBEAT_FRAME, sink))).toBeInstanceOf(Error);
    expect(d.failed).toBe(true);
  });
});
