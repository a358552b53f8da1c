/**
 * Every file operation the log store does, behind one interface, so tests can inject faults
 * (ENOSPC, EIO, partial writes) and count calls (fsyncs) without touching the real store code.
 *
 * Synchronous members are used by `recover()` only (the shard is not serving yet); everything on the
 * append path is asynchronous, so the shard keeps processing while the disk works.
 *
 * The default, {@link nodeFs}, is node:fs with callbacks wrapped in promises (not `fs/promises`,
 * whose FileHandle objects the store does not need: it keeps raw fds).
 */
import * as fs from 'node:fs';
import { dirname } from 'node:path';

export interface FsSeam {
  // ---- synchronous: recovery --------------------------------------------------------------
  mkdirSync(path: string): void;
  /** Entry names of a directory. */
  readdirSync(path: string): string[];
  readFileSync(path: string): Buffer;
  /** Cuts the file to `length` bytes and fsyncs it. */
  truncateSync(path: string, length: number): void;
  unlinkSync(path: string): void;
  /** The file's size in bytes. */
  fileSizeSync(path: string): number;
  /** Creates (or replaces) `path` with `bytes`, fsyncs it and its directory: it survives a crash. */
  writeFileDurableSync(path: string, bytes: Uint8Array): void;
  /** Renames a file or directory (atomic on one file system). */
  renameSync(from: string, to: string): void;
  /** Reads up to `length` bytes of the file at `position` into `buffer` from `offset`; returns the bytes read. */
  readAtSync(path: string, buffer: Uint8Array, offset: number, length: number, position: number): number;

  // ---- asynchronous: flushes and segment deletion --------------------------------------------
  /** Opens for writing at explicit positions, creating (and emptying) the file. */
  openForWrite(path: string): Promise<number>;
  /** Writes `length` bytes of `buffer` from `offset` at file `position`; resolves to the bytes written (may be fewer). */
  write(fd: number, buffer: Uint8Array, offset: number, length: number, position: number): Promise<number>;
  fsync(fd: number): Promise<void>;
  ftruncate(fd: number, length: number): Promise<void>;
  close(fd: number): Promise<void>;
  unlink(path: string): Promise<void>;
  /** Makes the directory's entries (created and deleted files) durable: open, fsync, close. */
  syncDir(path: string): Promise<void>;

  // ---- asynchronous: stream reads and removal ---------------------------------------------------
  /** readAtSync without blocking: opens, reads, closes (a stream's reader far behind reads a chunk at a time). */
  readAt(path: string, buffer: Uint8Array, offset: number, length: number, position: number): Promise<number>;
  /** Removes a directory and everything in it (a deleted stream's files). */
  removeTree(path: string): Promise<void>;
}

function done<T>(resolve: (v: T) => void, reject: (e: Error) => void) {
  return (err: Error | null, value?: T): void => {
    if (err) reject(err);
    else resolve(value as T);
  };
}

/** A synchronous change counts only once fsynced; the fd must not leak when the change or the fsync throws. */
function fsyncedSync(path: string, flags: string, use: (fd: number) => void): void {
  const fd = fs.openSync(path, flags);
  try {
    use(fd);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** node:fs, as is. */
export const nodeFs: FsSeam = {
  mkdirSync: (path) => {
    fs.mkdirSync(path, { recursive: true });
  },
  readdirSync: (path) => fs.readdirSync(path),
  readFileSync: (path) => fs.readFileSync(path),
  truncateSync: (path, length) => fsyncedSync(path, 'r+', (fd) => fs.ftruncateSync(fd, length)),
  unlinkSync: (path) => fs.unlinkSync(path),
  renameSync: (from, to) => fs.renameSync(from, to),
  readAtSync: (path, buffer, offset, length, position) => {
    const fd = fs.openSync(path, 'r');
    try {
      return fs.readSync(fd, buffer, offset, length, position);
    } finally {
      fs.closeSync(fd);
    }
  },
  fileSizeSync: (path) => fs.statSync(path).size,
  writeFileDurableSync: (path, bytes) => {
    fsyncedSync(path, 'w', (fd) => fs.writeFileSync(fd, bytes));
    fsyncedSync(dirname(path), 'r', () => {});
  },

  openForWrite: (path) => new Promise((resolve, reject) => fs.open(path, 'w', done(resolve, reject))),
  write: (fd, buffer, offset, length, position) =>
    new Promise((resolve, reject) => fs.write(fd, buffer, offset, length, position, done(resolve, reject))),
  fsync: (fd) => new Promise((resolve, reject) => fs.fsync(fd, done(resolve, reject))),
  ftruncate: (fd, length) => new Promise((resolve, reject) => fs.ftruncate(fd, length, done(resolve, reject))),
  close: (fd) => new Promise((resolve, reject) => fs.close(fd, done(resolve, reject))),
  unlink: (path) => new Promise((resolve, reject) => fs.unlink(path, done(resolve, reject))),
  readAt: (path, buffer, offset, length, position) =>
    new Promise((resolve, reject) => {
      fs.open(path, 'r', (err, fd) => {
        if (err) return reject(err);
        fs.read(fd, buffer, offset, length, position, (readErr, n) => {
          fs.close(fd, () => (readErr ? reject(readErr) : resolve(n)));
        });
      });
    }),
  removeTree: (path) => new Promise((resolve, reject) => fs.rm(path, { recursive: true, force: true }, done(resolve, reject))),
  syncDir: (path) =>
    new Promise((resolve, reject) => {
      fs.open(path, 'r', (err, fd) => {
        if (err) return reject(err);
        fs.fsync(fd, (syncErr) => {
          fs.close(fd, () => {
            // Some platforms refuse fsync on a directory (EINVAL/EISDIR/EPERM): nothing more to do there.
            const code = (syncErr as NodeJS.ErrnoException | null)?.code;
            if (syncErr && code !== 'EINVAL' && code !== 'EISDIR' && code !== 'EPERM') reject(syncErr);
            else resolve();
          });
        });
      });
    }),
};
