/**
 * Temporary directories for tests that touch the disk: created under the OS temp dir, removed by the
 * returned cleanup (call it from afterEach, so a failing test still cleans up).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export interface TempDirs {
  /** A new empty directory. */
  make(): string;
  /** Removes every directory made so far. */
  cleanup(): void;
}

export function tempDirs(prefix = 'shardmq-test-'): TempDirs {
  const made: string[] = [];
  return {
    make() {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
      made.push(dir);
      return dir;
    },
    cleanup() {
      for (const dir of made.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
