/**
 * Binary frame writers lent to whoever has something to send in this turn: a connection between
 * its first op and its flush, a shared stream between its first delivery and its publish to uWS.
 * A writer per connection or per stream, kept for good, cost 64 KiB each whether it ever sent
 * again or not (10,000 idle wildcard subscriptions: 560 MiB); lent, the memory follows the
 * messages: as many writers as one turn touches, and a bounded few kept warm.
 */
import { BinaryFrameWriter } from '../protocol/ws-binary-encode.js';

/** A new writer's first buffer: enough for a burst of small ops, grown (doubling) by a big one. */
const INITIAL_WRITER_BYTES = 4096;
/** Writers kept between turns (each keeps its grown buffer, up to the writer's retain limit). */
const MAX_IDLE_WRITERS = 64;

export class WriterPool {
  readonly #idle: BinaryFrameWriter[] = [];
  readonly #maxIdle: number;
  readonly #initialBytes: number;

  constructor(maxIdle = MAX_IDLE_WRITERS, initialBytes = INITIAL_WRITER_BYTES) {
    this.#maxIdle = maxIdle;
    this.#initialBytes = initialBytes;
  }

  /** Writers waiting to be lent. */
  get idle(): number {
    return this.#idle.length;
  }

  take(): BinaryFrameWriter {
    return this.#idle.pop() ?? new BinaryFrameWriter(this.#initialBytes);
  }

  /** Back from its borrower, who must not touch it again: whatever it held is dropped. */
  give(writer: BinaryFrameWriter): void {
    writer.reset();
    if (this.#idle.length < this.#maxIdle) this.#idle.push(writer);
  }
}
