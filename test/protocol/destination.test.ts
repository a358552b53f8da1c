/**
 * Destinations (design.md §2): /topic/<key>, /queue/<name>, /exchange/<exchange>/<key>, the HTTP form
 * without the leading slash, the errors with what is wrong, and formatDestination.
 */
import { describe, expect, it } from 'vitest';
import {
  DestinationError,
  DestinationType,
  MAX_NAME_BYTES,
  formatDestination,
  parseDestination,
  type Destination,
} from '../../src/protocol/destination.js';

/** Parses `input`, expecting a DestinationError; returns its message. */
function destinationError(input: string, slashOptional = false): string {
  let caught: unknown;
  try {
    parseDestination(input, slashOptional);
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(DestinationError);
  const err = caught as DestinationError;
  expect(err.name).toBe('DestinationError');
  expect(err.code).toBe('bad_destination');
  return err.message;
}

describe('parseDestination - /topic/', () => {
  it.each<[string, Destination]>([
    ['/topic/sensors.temp', { type: DestinationType.topic, exchange: 'amq.topic', name: 'sensors.temp', declare: true }],
    ['/topic/a.*.#', { type: DestinationType.topic, exchange: 'amq.topic', name: 'a.*.#', declare: true }],
    ['/topic/a/b', { type: DestinationType.topic, exchange: 'amq.topic', name: 'a/b', declare: true }],
    ['/topic/', { type: DestinationType.topic, exchange: 'amq.topic', name: '', declare: true }],
    ['/topic/température.日本', { type: DestinationType.topic, exchange: 'amq.topic', name: 'température.日本', declare: true }],
  ])('topic - %s', (input, want) => {
    expect(parseDestination(input)).toEqual(want);
  });
});

describe('parseDestination - /queue/', () => {
  it.each<[string, Destination]>([
    ['/queue/jobs', { type: DestinationType.queue, exchange: '', name: 'jobs', declare: true }],
    ['/queue/jobs.high-priority', { type: DestinationType.queue, exchange: '', name: 'jobs.high-priority', declare: true }],
    ['/queue/amq', { type: DestinationType.queue, exchange: '', name: 'amq', declare: true }],
    ['/queue/xamq.foo', { type: DestinationType.queue, exchange: '', name: 'xamq.foo', declare: true }],
    ['/queue/tâches', { type: DestinationType.queue, exchange: '', name: 'tâches', declare: true }],
  ])('queue - %s', (input, want) => {
    expect(parseDestination(input)).toEqual(want);
  });

  it('amq/queue - names an existing queue without declaring it, amq.gen-* names included', () => {
    expect(parseDestination('/amq/queue/amq.gen-abc')).toEqual({
      type: DestinationType.queue,
      exchange: '',
      name: 'amq.gen-abc',
      declare: false,
    });
    expect(parseDestination('amq/queue/jobs', true)).toEqual({ type: DestinationType.queue, exchange: '', name: 'jobs', declare: false });
    expect(destinationError('/amq/queue/')).toMatch(/queue name is empty/);
  });

  it('queue - an empty queue name is rejected, saying the name is empty', () => {
    expect(destinationError('/queue/')).toMatch(/queue name is empty/);
  });

  it.each(['/queue/amq.gen-123', '/queue/amq.', '/queue/amq.direct'])('queue - %s is reserved (amq.* names)', (input) => {
    const message = destinationError(input);
    expect(message).toContain('"amq."');
    expect(message).toContain('reserved');
    expect(message).toContain(JSON.stringify(input.slice('/queue/'.length)));
  });
});

describe('parseDestination - /exchange/', () => {
  it.each<[string, Destination]>([
    ['/exchange/logs/app.error', { type: DestinationType.exchange, exchange: 'logs', name: 'app.error', declare: true }],
    ['/exchange/amq.topic/a.b', { type: DestinationType.exchange, exchange: 'amq.topic', name: 'a.b', declare: true }],
    ['/exchange/logs', { type: DestinationType.exchange, exchange: 'logs', name: '', declare: true }],
    ['/exchange/logs/', { type: DestinationType.exchange, exchange: 'logs', name: '', declare: true }],
    ['/exchange/logs/a/b', { type: DestinationType.exchange, exchange: 'logs', name: 'a/b', declare: true }],
    ['/exchange/börse/kurs.€', { type: DestinationType.exchange, exchange: 'börse', name: 'kurs.€', declare: true }],
  ])('exchange - %s', (input, want) => {
    expect(parseDestination(input)).toEqual(want);
  });

  it.each(['/exchange/', '/exchange//key'])('exchange - %s: an empty exchange name is rejected', (input) => {
    expect(destinationError(input)).toMatch(/exchange name is empty/);
  });
});

describe('parseDestination - HTTP form', () => {
  it.each<[string, Destination]>([
    ['topic/sensors.temp', { type: DestinationType.topic, exchange: 'amq.topic', name: 'sensors.temp', declare: true }],
    ['queue/jobs', { type: DestinationType.queue, exchange: '', name: 'jobs', declare: true }],
    ['exchange/logs/app.error', { type: DestinationType.exchange, exchange: 'logs', name: 'app.error', declare: true }],
  ])('http - %s without the leading slash', (input, want) => {
    expect(parseDestination(input, true)).toEqual(want);
  });

  it('http - the leading slash is still accepted when optional', () => {
    expect(parseDestination('/queue/jobs', true)).toEqual({ type: DestinationType.queue, exchange: '', name: 'jobs', declare: true });
  });

  it('http - without slashOptional the slash-less form is an unknown prefix', () => {
    expect(destinationError('queue/jobs')).toMatch(/must start with \/topic\/, \/queue\/, \/amq\/queue\/ or \/exchange\//);
  });

  it('http - the same errors apply to the slash-less form', () => {
    expect(destinationError('queue/amq.x', true)).toContain('reserved');
    expect(destinationError('queue/', true)).toMatch(/queue name is empty/);
  });
});

describe('parseDestination - errors', () => {
  it.each(['', '/', 'topic', '/topics/a', '/Topic/a', 'http://host/queue/x', '/queue', '/exchange'])(
    'unknown prefix - %j says which prefixes are allowed and shows the input',
    (input) => {
      const message = destinationError(input);
      expect(message).toContain('/topic/, /queue/, /amq/queue/ or /exchange/');
      expect(message).toContain(JSON.stringify(input));
    },
  );

  it('unknown prefix - a long input is shown truncated to 80 characters', () => {
    const input = '/nope/' + 'x'.repeat(500);
    const message = destinationError(input);
    expect(message).toContain(JSON.stringify(input.slice(0, 80) + '…'));
    expect(message).not.toContain('x'.repeat(100));
  });

  it.each([
    ['NUL in a topic key', '/topic/a\u0000b'],
    ['newline in a queue name', '/queue/jobs\n'],
    ['tab in an exchange key', '/exchange/logs/a\tb'],
    ['escape in an exchange name', '/exchange/lo\u001bgs/a'],
    ['DEL in a topic key', '/topic/a\u007f'],
    ['CR in an HTTP-form queue name', 'queue/a\rb'],
  ])('control character - %s is rejected', (_case, input) => {
    const message = destinationError(input, true);
    expect(message).toMatch(/control character/);
    expect(message).toContain(JSON.stringify(input)); // JSON escapes the character, so it is visible
  });

  it('control character - printable ASCII from space to ~ is accepted', () => {
    let key = '';
    for (let c = 0x20; c < 0x7f; c++) key += String.fromCharCode(c);
    expect(parseDestination('/topic/' + key).name).toBe(key);
  });

  it.each([
    ['topic key', '/topic/'],
    ['queue name', '/queue/'],
    ['exchange key', '/exchange/logs/'],
  ])('length - a %s of exactly 255 bytes is accepted', (_case, prefix) => {
    expect(parseDestination(prefix + 'k'.repeat(MAX_NAME_BYTES)).name).toBe('k'.repeat(MAX_NAME_BYTES));
  });

  it.each([
    ['ASCII topic key of 256 bytes', '/topic/' + 'k'.repeat(256)],
    ['queue name of 128 two-byte characters (256 bytes, 128 chars)', '/queue/' + 'é'.repeat(128)],
    ['exchange key of 64 four-byte characters (256 bytes)', '/exchange/logs/' + '🌡'.repeat(64)],
    ['exchange name of 256 bytes', '/exchange/' + 'x'.repeat(256) + '/k'],
  ])('length - %s is rejected as longer than 255 bytes', (_case, input) => {
    const message = destinationError(input);
    expect(message).toContain(`longer than ${MAX_NAME_BYTES} bytes`);
  });

  it('length - the limit counts UTF-8 bytes, not characters', () => {
    const name = 'é'.repeat(127); // 254 bytes
    expect(parseDestination('/queue/' + name).name).toBe(name);
    expect(destinationError('/queue/' + name + 'éé')).toContain('255 bytes');
  });
});

describe('formatDestination', () => {
  it.each<[DestinationType, string, string, string]>([
    [DestinationType.topic, 'amq.topic', 'a.b', '/topic/a.b'],
    [DestinationType.queue, '', 'jobs', '/queue/jobs'],
    [DestinationType.exchange, 'logs', 'app.error', '/exchange/logs/app.error'],
    [DestinationType.exchange, 'logs', '', '/exchange/logs/'],
    [DestinationType.topic, 'amq.topic', 'température', '/topic/température'],
  ])('format - type %i exchange %j name %j → %s', (type, exchange, name, want) => {
    expect(formatDestination(type, exchange, name)).toBe(want);
  });

  it.each(['/topic/a.b', '/topic/', '/queue/jobs', '/exchange/logs/app.error', '/exchange/logs/', '/exchange/börse/€'])(
    'format - parse then format gives back %s',
    (input) => {
      const d = parseDestination(input);
      expect(formatDestination(d.type, d.exchange, d.name)).toBe(input);
    },
  );
});
