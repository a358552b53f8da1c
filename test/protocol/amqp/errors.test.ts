import { describe, expect, it } from 'vitest';
import { ReplyCode } from '../../../src/protocol/amqp/constants.js';
import { AmqpError, isConnectionError, replyText } from '../../../src/protocol/amqp/errors.js';

const utf8Length = (s: string): number => new TextEncoder().encode(s).length;

describe('errors - classification', () => {
  it('connection exceptions are 320, 402, 501-506, 530, 540, 541', () => {
    const connection = Object.values(ReplyCode).filter(isConnectionError);
    expect(connection.sort()).toEqual([320, 402, 501, 502, 503, 504, 505, 506, 530, 540, 541]);
  });

  it('channel exceptions (311-313, 403-406) and success are not', () => {
    for (const code of [200, 311, 312, 313, 403, 404, 405, 406]) expect(isConnectionError(code)).toBe(false);
  });

  it('AmqpError carries the code and the method at fault', () => {
    const e = new AmqpError(ReplyCode.notFound, "no queue 'q' in vhost '/'", 50, 10);
    expect(e).toBeInstanceOf(Error);
    expect([e.code, e.classId, e.methodId, e.name]).toEqual([404, 50, 10, 'AmqpError']);
    expect(e.isConnectionError).toBe(false);
    expect(e.replyText).toBe("NOT_FOUND - no queue 'q' in vhost '/'");
    expect([new AmqpError(501, 'x').classId, new AmqpError(501, 'x').methodId]).toEqual([0, 0]);
  });
});

describe('errors - reply text', () => {
  it("has RabbitMQ's shape and names", () => {
    expect(replyText(404, "no queue 'x' in vhost '/'")).toBe("NOT_FOUND - no queue 'x' in vhost '/'");
    const names: Record<number, string> = {
      200: 'REPLY_SUCCESS',
      311: 'CONTENT_TOO_LARGE',
      312: 'NO_ROUTE',
      313: 'NO_CONSUMERS',
      320: 'CONNECTION_FORCED',
      402: 'INVALID_PATH',
      403: 'ACCESS_REFUSED',
      405: 'RESOURCE_LOCKED',
      406: 'PRECONDITION_FAILED',
      501: 'FRAME_ERROR',
      502: 'SYNTAX_ERROR',
      503: 'COMMAND_INVALID',
      504: 'CHANNEL_ERROR',
      505: 'UNEXPECTED_FRAME',
      506: 'RESOURCE_ERROR',
      530: 'NOT_ALLOWED',
      540: 'NOT_IMPLEMENTED',
      541: 'INTERNAL_ERROR',
    };
    for (const [code, name] of Object.entries(names)) expect(replyText(Number(code), 'm')).toBe(`${name} - m`);
    expect(replyText(312, '')).toBe('NO_ROUTE');
    expect(replyText(999, 'odd')).toBe('odd');
  });

  it('is cut to 255 UTF-8 bytes without splitting a character', () => {
    expect(utf8Length(replyText(404, 'a'.repeat(1000)))).toBe(255);
    for (const ch of ['é', '名', '😀']) {
      for (let pad = 0; pad < 4; pad++) {
        const text = replyText(406, 'x'.repeat(pad) + ch.repeat(200));
        expect(utf8Length(text)).toBeLessThanOrEqual(255);
        expect(utf8Length(text)).toBeGreaterThan(255 - utf8Length(ch));
        // A cut inside a character would leave a lone surrogate or a replacement character.
        expect(text).toBe(new TextDecoder().decode(new TextEncoder().encode(text)));
        expect(text.endsWith(ch)).toBe(true);
      }
    }
    const short = replyText(404, 'ü'.repeat(10));
    expect(short).toBe(`NOT_FOUND - ${'ü'.repeat(10)}`);
  });
});
