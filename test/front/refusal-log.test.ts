import { describe, expect, it } from 'vitest';
import type { Logger } from '../../src/log/logger.js';
import { RefusalLog } from '../../src/front/refusal-log.js';

function capture(): { log: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const log = { warn: (obj: Record<string, unknown>, msg: string) => void lines.push({ ...obj, msg }) } as unknown as Logger;
  return { log, lines };
}

describe('RefusalLog', () => {
  it('logs the first refusal of a client and code, then at most one line per interval with how many it held back', () => {
    const { log, lines } = capture();
    let now = 1_000;
    const refusals = new RefusalLog(log, 10_000, () => now);
    refusals.note('10.0.0.1', 404, 'not_found', 'no queue a');
    refusals.note('10.0.0.1', 404, 'not_found', 'no queue b');
    refusals.note('10.0.0.1', 404, 'not_found', 'no queue c');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ client: '10.0.0.1', status: 404, code: 'not_found', reason: 'no queue a', msg: 'request refused' });
    now += 10_000;
    refusals.note('10.0.0.1', 404, 'not_found', 'no queue d');
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatchObject({ reason: 'no queue d', alsoRefusedSinceLastLine: 2 });
  });

  it('keeps clients and codes apart', () => {
    const { log, lines } = capture();
    const refusals = new RefusalLog(log, 10_000, () => 0);
    refusals.note('a', 404, 'not_found', 'x');
    refusals.note('b', 404, 'not_found', 'x');
    refusals.note('a', 413, 'too_large', 'x');
    refusals.note('a', 404, 'not_found', 'x');
    expect(lines.map((l) => `${l.client} ${l.code}`)).toEqual(['a not_found', 'b not_found', 'a too_large']);
  });
});
