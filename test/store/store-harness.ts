/**
 * Shared pieces of the store tests: a probe that records what a store reports (durable LSNs, flush
 * errors) and lets a test wait for it, and message builders.
 */
import type { MessageStore, PersistedMessage } from '../../src/store/store.js';

export class DurabilityProbe {
  /** Every LSN `onDurable` reported, in order. */
  readonly durable: number[] = [];
  /** Every `onFlushError` call. */
  readonly errors: Array<{ err: Error; failedUpToLsn: number }> = [];
  /** Set while `onDurable` runs inside requestFlush (must never happen). */
  insideRequestFlush = false;
  readonly #store: MessageStore;
  #waiters: Array<{ lsn: number; resolve: () => void; reject: (e: Error) => void }> = [];
  #errorWaiters: Array<() => void> = [];

  constructor(store: MessageStore, onDurable?: (lsn: number) => void) {
    this.#store = store;
    let inFlushCall = false;
    const request = store.requestFlush.bind(store);
    store.requestFlush = () => {
      inFlushCall = true;
      try {
        request();
      } finally {
        inFlushCall = false;
      }
    };
    store.onDurable = (lsn) => {
      if (inFlushCall) this.insideRequestFlush = true;
      this.durable.push(lsn);
      onDurable?.(lsn);
      this.#waiters = this.#waiters.filter((w) => {
        if (lsn < w.lsn) return true;
        w.resolve();
        return false;
      });
    };
    store.onFlushError = (err, failedUpToLsn) => {
      this.errors.push({ err, failedUpToLsn });
      for (const w of this.#errorWaiters.splice(0)) w();
    };
  }

  get store(): MessageStore {
    return this.#store;
  }

  /** Resolves once `onDurable` reported `lsn` or more. */
  durableAt(lsn: number): Promise<void> {
    if (this.#store.durableLsn >= lsn) return Promise.resolve();
    return new Promise((resolve, reject) => this.#waiters.push({ lsn, resolve, reject }));
  }

  /** requestFlush(), then waits until `lsn` is durable. */
  async flush(lsn: number): Promise<void> {
    this.#store.requestFlush();
    await this.durableAt(lsn);
  }

  /** Resolves at the next `onFlushError`. */
  nextError(): Promise<void> {
    return new Promise((resolve) => this.#errorWaiters.push(resolve));
  }
}

const encoder = new TextEncoder();

/** A message with a payload that names it, so mix-ups show in diffs. */
export function msg(queue: string, id: number, payload = `${queue}#${id}`, properties: Uint8Array | null = null): PersistedMessage {
  return { queue, id, exchange: 'ex', routingKey: `rk.${id}`, properties, payload: encoder.encode(payload) };
}

/** A message as plain data, for toEqual against recovered ones. */
export function plain(m: PersistedMessage): Record<string, unknown> {
  return {
    queue: m.queue,
    id: m.id,
    exchange: m.exchange,
    routingKey: m.routingKey,
    properties: m.properties === null ? null : Buffer.from(m.properties).toString('hex'),
    payload: Buffer.from(m.payload).toString('hex'),
  };
}
