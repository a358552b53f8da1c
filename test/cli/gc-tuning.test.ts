import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { BROKER_V8_FLAGS } from '../../src/cli/gc-tuning.js';
import { brokerNodeArgs } from '../../src/bench/broker-process.js';

describe('broker V8 flags', () => {
  // The main thread's heap takes them only from node's command line: every way the broker is
  // started must pass them, or the latency the bench measures is not what `npm start` gives.
  it('npm start, the published bin and the bench harness all run node with them', () => {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { scripts: Record<string, string> };
    const shebang = readFileSync(new URL('../../bin/shardmq.js', import.meta.url), 'utf8').split('\n')[0];
    const harness = brokerNodeArgs();
    expect(BROKER_V8_FLAGS.length).toBeGreaterThan(0);
    for (const flag of BROKER_V8_FLAGS) {
      expect(pkg.scripts.start.split(' ')).toContain(flag);
      expect(shebang.split(' ')).toContain(flag);
      expect(harness).toContain(flag);
    }
    expect(shebang.startsWith('#!/usr/bin/env -S node ')).toBe(true);
  });
});
