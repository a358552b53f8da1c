/**
 * Requests in flight on one connection: every management op, CONFIRM_SELECT, SUBSCRIBE and
 * UNSUBSCRIBE carries a u32 request id that the broker answers with exactly one OK or one ERROR
 * (docs/protocol.md §4). Id 0 means "no answer wanted", so ids run 1 … 2^32 − 1 and wrap.
 */
import type { OkEvent } from '../protocol/ws-binary.js';
import { opcodeName } from '../protocol/ws-binary.js';
import { errorFromServer, type ShardmqError } from './errors.js';

interface PendingRequest {
  readonly op: number;
  readonly resolve: (ok: OkEvent) => void;
  readonly reject: (err: ShardmqError) => void;
}

export class RequestTable {
  #next = 0;
  readonly #pending = new Map<number, PendingRequest>();

  get size(): number {
    return this.#pending.size;
  }

  /** A fresh id for a request of opcode `op`, answered through `resolve`/`reject`. */
  add(op: number, resolve: (ok: OkEvent) => void, reject: (err: ShardmqError) => void): number {
    do {
      this.#next = this.#next >= 0xffff_ffff ? 1 : this.#next + 1;
    } while (this.#pending.has(this.#next));
    this.#pending.set(this.#next, { op, resolve, reject });
    return this.#next;
  }

  /** Forgets a request whose op could not be written (the writer threw). */
  remove(id: number): void {
    this.#pending.delete(id);
  }

  /** An OK arrived; false when it answers nothing this table knows. */
  ok(ev: OkEvent): boolean {
    const p = this.#pending.get(ev.requestId);
    if (p === undefined) return false;
    this.#pending.delete(ev.requestId);
    p.resolve(ev);
    return true;
  }

  /** An ERROR naming a request arrived; false when it answers nothing this table knows. */
  error(requestId: number, code: string, message: string): boolean {
    const p = this.#pending.get(requestId);
    if (p === undefined) return false;
    this.#pending.delete(requestId);
    p.reject(errorFromServer(code, message, opcodeName(p.op)));
    return true;
  }

  /** The connection is gone: every request in flight fails with `error`. */
  failAll(error: (op: string) => ShardmqError): void {
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const p of pending) p.reject(error(opcodeName(p.op)));
  }
}
