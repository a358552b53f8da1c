/**
 * A fault seam for whole-broker tests of disk failures: while the file named by
 * SHARDMQ_STORE_FAULT_FILE exists, store writes fail with the errno written in it
 * (ENOSPC when empty). Reads and recovery are untouched. Off unless the variable is set,
 * so production pays one `existsSync` per flush only when a test turned it on.
 */
import { existsSync, readFileSync } from 'node:fs';
import type { FsSeam } from './fs-seam.js';

export const FAULT_FILE_ENV = 'SHARDMQ_STORE_FAULT_FILE';

export function withFaultSwitch(base: FsSeam, faultFile: string | undefined): FsSeam {
  if (faultFile === undefined || faultFile === '') return base;
  const failure = (): NodeJS.ErrnoException | null => {
    if (!existsSync(faultFile)) return null;
    const code = readFileSync(faultFile, 'utf8').trim() || 'ENOSPC';
    const err: NodeJS.ErrnoException = new Error(`${code}: injected by ${FAULT_FILE_ENV}`);
    err.code = code;
    return err;
  };
  return {
    ...base,
    write: (fd, buffer, offset, length, position) => {
      const err = failure();
      return err === null ? base.write(fd, buffer, offset, length, position) : Promise.reject(err);
    },
    fsync: (fd) => {
      const err = failure();
      return err === null ? base.fsync(fd) : Promise.reject(err);
    },
  };
}
