/**
 * A file-system seam for store tests: node:fs underneath, with call counters and faults on demand.
 *
 * `fail('write', { code: 'ENOSPC', partialBytes: 10 })` makes the next write(s) write 10 bytes for
 * real and then fail with ENOSPC, as a full disk does mid-write. Faults stay until `times` of them
 * have fired (default: until `heal()`).
 */
import type { FsSeam } from '../../src/store/fs-seam.js';
import { nodeFs } from '../../src/store/fs-seam.js';

export type FaultableOp = 'openForWrite' | 'write' | 'fsync' | 'ftruncate' | 'syncDir' | 'unlink';

export interface FaultOptions {
  /** errno code of the injected error. Default ENOSPC. */
  readonly code?: string;
  /** How many calls fail before the fault clears itself. Default: until heal(). */
  readonly times?: number;
  /** write only: bytes really written before the failure. Default 0. */
  readonly partialBytes?: number;
}

interface Fault {
  code: string;
  remaining: number;
  partialBytes: number;
}

export class FaultyFs implements FsSeam {
  readonly calls: Record<FaultableOp, number> = { openForWrite: 0, write: 0, fsync: 0, ftruncate: 0, syncDir: 0, unlink: 0 };
  /** Injected errors that fired, per op. */
  readonly failures: Record<FaultableOp, number> = { openForWrite: 0, write: 0, fsync: 0, ftruncate: 0, syncDir: 0, unlink: 0 };
  readonly #faults = new Map<FaultableOp, Fault>();
  readonly #base: FsSeam;

  constructor(base: FsSeam = nodeFs) {
    this.#base = base;
  }

  fail(op: FaultableOp, options: FaultOptions = {}): void {
    this.#faults.set(op, { code: options.code ?? 'ENOSPC', remaining: options.times ?? Infinity, partialBytes: options.partialBytes ?? 0 });
  }

  heal(): void {
    this.#faults.clear();
  }

  /** The fault for `op` if one fires on this call (consumed), else undefined. Counts the call. */
  #fire(op: FaultableOp): Fault | undefined {
    this.calls[op]++;
    const f = this.#faults.get(op);
    if (f === undefined) return undefined;
    if (--f.remaining <= 0) this.#faults.delete(op);
    this.failures[op]++;
    return f;
  }

  mkdirSync(path: string): void {
    this.#base.mkdirSync(path);
  }
  readdirSync(path: string): string[] {
    return this.#base.readdirSync(path);
  }
  readFileSync(path: string): Buffer {
    return this.#base.readFileSync(path);
  }
  truncateSync(path: string, length: number): void {
    this.#base.truncateSync(path, length);
  }
  fileSizeSync(path: string): number {
    return this.#base.fileSizeSync(path);
  }
  writeFileDurableSync(path: string, bytes: Uint8Array): void {
    this.#base.writeFileDurableSync(path, bytes);
  }
  unlinkSync(path: string): void {
    this.#base.unlinkSync(path);
  }
  renameSync(from: string, to: string): void {
    this.#base.renameSync(from, to);
  }
  readAtSync(path: string, buffer: Uint8Array, offset: number, length: number, position: number): number {
    return this.#base.readAtSync(path, buffer, offset, length, position);
  }
  readAt(path: string, buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    return this.#base.readAt(path, buffer, offset, length, position);
  }
  removeTree(path: string): Promise<void> {
    return this.#base.removeTree(path);
  }

  async openForWrite(path: string): Promise<number> {
    const f = this.#fire('openForWrite');
    if (f !== undefined) throw injected(f.code, 'open');
    return this.#base.openForWrite(path);
  }

  async write(fd: number, buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    const f = this.#fire('write');
    if (f !== undefined) {
      const partial = Math.min(f.partialBytes, length);
      if (partial > 0) await this.#base.write(fd, buffer, offset, partial, position);
      throw injected(f.code, 'write');
    }
    return this.#base.write(fd, buffer, offset, length, position);
  }

  async fsync(fd: number): Promise<void> {
    const f = this.#fire('fsync');
    if (f !== undefined) throw injected(f.code, 'fsync');
    return this.#base.fsync(fd);
  }

  async ftruncate(fd: number, length: number): Promise<void> {
    const f = this.#fire('ftruncate');
    if (f !== undefined) throw injected(f.code, 'ftruncate');
    return this.#base.ftruncate(fd, length);
  }

  close(fd: number): Promise<void> {
    return this.#base.close(fd);
  }

  async unlink(path: string): Promise<void> {
    const f = this.#fire('unlink');
    if (f !== undefined) throw injected(f.code, 'unlink');
    return this.#base.unlink(path);
  }

  async syncDir(path: string): Promise<void> {
    const f = this.#fire('syncDir');
    if (f !== undefined) throw injected(f.code, 'fsync');
    return this.#base.syncDir(path);
  }
}

function injected(code: string, syscall: string): NodeJS.ErrnoException {
  const err: NodeJS.ErrnoException = new Error(`${code}: injected ${syscall} failure`);
  err.code = code;
  err.syscall = syscall;
  return err;
}
