/**
 * The file seam with its fsyncs timed: every fsync's duration goes to `onFsync` (the shard turns
 * them into its fsync counter and latency histogram). Nothing else changes.
 */
import type { FsSeam } from './fs-seam.js';

export function withTimedFsync(base: FsSeam, onFsync: (seconds: number) => void): FsSeam {
  return {
    ...base,
    fsync: async (fd) => {
      const t0 = performance.now();
      try {
        await base.fsync(fd);
      } finally {
        onFsync((performance.now() - t0) / 1000);
      }
    },
  };
}
