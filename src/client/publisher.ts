/**
 * The publishing side of the client: checks and encodes a publish once, writes it into the
 * connection's current frame (which batches it with everything else written in the same turn) or
 * holds it while reconnecting or while the broker withholds publish credit, and settles publishes
 * from the broker's CONFIRMs, explaining nacks with the ERRORs that came with them.
 *
 * Flow control (docs/protocol.md §6a). The broker closes a connection that publishes beyond the
 * credit it granted, so nothing is written without credit: each socket starts with
 * INITIAL_PUBLISH_CREDIT, every PUBLISH written spends one message and its payload + properties
 * bytes, and CREDIT ops add to what is left. A publish that finds no credit, or finds others
 * already waiting, joins a FIFO (bounded by `maxPendingBytes`) that is written in order when credit
 * comes back: publishes must reach the wire in the order they were issued, and confirm numbers are
 * positional on the broker (the n-th PUBLISH written after CONFIRM_SELECT is seq n), so they are
 * given out when a publish is written, never when it is queued. flush() takes a place in the same
 * FIFO, so it cannot resolve ahead of a publish issued before it.
 *
 * The fire-and-forget path (publishNoWait → #prepare → #write) allocates only the prepared publish
 * and the callback Connection.write takes: it is the client's throughput path, keep it that way
 * (the credit check is two comparisons on fields; only a publish that has to wait allocates more).
 */
import type { MessageProperties } from '../protocol/properties.js';
import { encodeProperties } from '../protocol/properties.js';
import { INITIAL_PUBLISH_CREDIT, Opcode, utf8Length, type ConfirmEvent, type CreditEvent, type ErrorEvent } from '../protocol/ws-binary.js';
import { PublishConfirms, type Settle, type SettleOutcome } from './confirms.js';
import type { Connection } from './connection.js';
import { checkDestination } from './destination.js';
import { ConnectionClosedError, ConnectionLostError, SaturatedError, TooLargeError, errorFromServer, type ShardmqError } from './errors.js';
import type { ResolvedOptions } from './options.js';
import type { ClientSession } from './session.js';
import { PayloadSlab } from './payload-slab.js';

export type Payload = string | Uint8Array;

export interface PublishOptions {
  /** AMQP basic properties: contentType, headers (nested tables allowed), priority, deliveryMode, expiration… */
  properties?: MessageProperties;
}

interface PreparedPublish {
  readonly destination: string;
  readonly payload: Uint8Array;
  readonly properties: Uint8Array | null;
  /** Size of the PUBLISH op (exact: the destination is measured, not estimated). */
  readonly size: number;
  /** Byte credit it spends: payload plus properties block, as the broker counts it. */
  readonly cost: number;
  /** The payload is the caller's own buffer, which it may reuse once the call returns: copied before it waits. */
  readonly borrowed: boolean;
}

/** An entry of the credit FIFO: a publish, or a flush()/close() waiting for the publishes ahead of it. */
type Waiting =
  | { readonly publish: PreparedPublish; readonly settle: Settle | null }
  | { readonly barrier: () => void; readonly fail: (err: ShardmqError) => void };

/** What the client's stats report about flow control. */
export interface PublishCredit {
  /** Messages the broker still allows on this socket before its next CREDIT. */
  readonly messages: number;
  /** Payload + properties bytes still allowed (negative after one message larger than what was left). */
  readonly bytes: number;
}

/**
 * Largest message that waits until the byte credit left covers it. A larger one goes as soon as any
 * byte credit is left, overdrawing (the protocol allows that for a single message), and nothing
 * follows it until the broker has given the overdraft back. Waiting is only safe for a message
 * that returned credit is sure to cover: the broker returns spent credit in batches, holding back
 * less than a quarter of its window (which is at least the initial credit), so an idle connection
 * always gets back above three quarters of the initial credit. A larger message could wait forever.
 */
const MAX_COST_WAITING_FOR_BYTES = (INITIAL_PUBLISH_CREDIT.bytes * 3) / 4;

/** CONFIRM and request-less ERROR ops of the frame being decoded, handled together at its end. */
type FrameEntry = { readonly confirm: ConfirmEvent; group: number } | { readonly error: ErrorEvent; consumed: boolean };

/** ERROR codes that never accompany a publish nack (so they are not paired with one). */
const NOT_PUBLISH_CODES = new Set([
  'unknown_tag',
  'unknown_subscription',
  'duplicate_subscription',
  'shard_restarted',
  'consumer_cancelled',
]);

const textEncoder = new TextEncoder();

export class Publisher {
  readonly #session: ClientSession;
  readonly #conn: Connection;
  readonly #options: ResolvedOptions;
  readonly #confirms = new PublishConfirms();
  readonly #slab = new PayloadSlab();
  #frame: FrameEntry[] = [];
  #published = 0;
  /** Publish credit left on the current socket (none between sockets). */
  #creditMessages = 0;
  #creditBytes = 0;
  /** A CREDIT op arrived in the frame being decoded: drain the FIFO at its end. */
  #creditGranted = false;
  /** The credit FIFO: `#waiting[#waitHead…]`, compacted now and then. */
  #waiting: Waiting[] = [];
  #waitHead = 0;
  /** Publishes (not barriers) in the FIFO, and the bytes of their ops (what `maxPendingBytes` bounds). */
  #waitingCount = 0;
  #waitingBytes = 0;
  /** close() lets the FIFO drain (within `closeTimeoutMs`) although the client is no longer 'ready'. */
  #closeDrain = false;

  constructor(session: ClientSession) {
    this.#session = session;
    this.#conn = session.conn;
    this.#options = session.options;
  }

  get published(): number {
    return this.#published;
  }

  get unconfirmed(): number {
    return this.#confirms.unconfirmed;
  }

  /** Publishes waiting in the FIFO for publish credit. */
  get creditWaiting(): number {
    return this.#waitingCount;
  }

  get credit(): PublishCredit {
    return { messages: this.#creditMessages, bytes: this.#creditBytes };
  }

  publish(destination: string, payload: Payload, options?: PublishOptions): Promise<void> {
    let p: PreparedPublish;
    try {
      p = this.#prepare(destination, payload, options);
    } catch (err) {
      return Promise.reject(err);
    }
    // A SaturatedError thrown by #wait (the FIFO is full) rejects the promise.
    return new Promise<void>((resolve, reject) => {
      const settle = { resolve, reject };
      if (this.#session.state !== 'ready') this.#defer(p, settle);
      else if (this.#waitHead === this.#waiting.length && this.#hasCreditFor(p)) this.#write(p, settle);
      else this.#wait(p, settle, false);
    });
  }

  publishNoWait(destination: string, payload: Payload, options?: PublishOptions): void {
    const p = this.#prepare(destination, payload, options);
    if (this.#session.state !== 'ready') this.#defer(p, null);
    else if (this.#waitHead === this.#waiting.length && this.#hasCreditFor(p)) this.#write(p, null);
    else this.#wait(p, null, false);
  }

  /**
   * Resolves once everything published before it is settled: with confirms, confirmed; without,
   * routed by the broker (a FLUSH op, which the broker answers once it has routed every publish it
   * read before it). Either way only after the publishes waiting for credit ahead of it were written.
   */
  flush(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const run = (): void => {
        if (this.#options.confirms) {
          this.#conn.flush();
          this.#confirms.waitForAll().then(resolve, reject);
        } else {
          this.#session.send(Opcode.FLUSH, 16, (w, id) => w.flush(id)).then(() => resolve(), reject);
        }
      };
      const afterWaiting = (): void => this.#afterWaiting(run, reject);
      if (this.#session.state === 'ready') afterWaiting();
      else this.#session.whenReady(0, afterWaiting, reject);
    });
  }

  /**
   * For close(): lets the publishes waiting for credit go out as credit arrives, sends what is
   * pending and resolves (never rejects) once every publish sent is settled; null when nothing is
   * waiting or unconfirmed. close() bounds the wait and then fails what still waits (failWaiting).
   */
  confirmedBeforeClose(): Promise<unknown> | null {
    const waiting = this.#waitHead < this.#waiting.length;
    if (!waiting && (!this.#options.confirms || this.#confirms.unconfirmed === 0)) return null;
    this.#closeDrain = true;
    return new Promise<void>((resolve) => {
      this.#afterWaiting(
        () => {
          this.#conn.flush();
          if (this.#options.confirms) this.#confirms.waitForAll().then(resolve, () => resolve());
          else resolve();
        },
        () => resolve(),
      );
    });
  }

  // ---- the socket's life ----------------------------------------------------------------------

  /** A new socket is open: the broker starts every connection with the initial credit. */
  socketOpened(): void {
    this.#creditMessages = INITIAL_PUBLISH_CREDIT.messages;
    this.#creditBytes = INITIAL_PUBLISH_CREDIT.bytes;
    this.#creditGranted = false;
  }

  /**
   * The client is ready on the (new) socket: the FIFO goes first, under the socket's fresh credit,
   * before anything deferred while disconnected (those were issued later).
   */
  ready(): void {
    this.#drain();
  }

  /**
   * The socket dropped: the confirms of its publishes will never come, and its credit died with
   * it. Publishes still waiting for credit were never written, so they keep their place for the
   * next socket (they fail only if the client closes first).
   */
  connectionLost(cause: unknown): void {
    this.#frame = [];
    this.#creditMessages = 0;
    this.#creditBytes = 0;
    this.#creditGranted = false;
    this.#confirms.failAll(
      new ConnectionLostError(
        'the connection dropped before the broker confirmed this publish; it may or may not have been taken (republish for at-least-once)',
        { cause, op: 'PUBLISH' },
      ),
    );
  }

  /** The client closed for good. */
  failAll(error: ShardmqError): void {
    this.#confirms.failAll(error);
    this.failWaiting(error);
  }

  /**
   * Fails everything in the credit FIFO with `error`: awaited publishes and flush() calls reject;
   * fire-and-forget ones are reported once for all (the next flush() and one 'error' event, their
   * number in the log), not once each: a stalled broker can leave thousands of them waiting.
   */
  failWaiting(error: ShardmqError): void {
    const list = this.#waiting.slice(this.#waitHead);
    this.#waiting = [];
    this.#waitHead = 0;
    this.#waitingCount = 0;
    this.#waitingBytes = 0;
    let noWait = 0;
    for (const e of list) {
      if ('barrier' in e) e.fail(error);
      else if (e.settle !== null) e.settle.reject(error);
      else noWait++;
    }
    if (noWait === 0) return;
    this.#confirms.recordFailure(error);
    this.#session.report(error);
    if (noWait > 1)
      this.#options.logger.warn({ count: noWait, code: error.code }, 'fire-and-forget publishes waiting for publish credit were not sent');
  }

  // ---- writing --------------------------------------------------------------------------------

  #prepare(destination: string, payload: Payload, options: PublishOptions | undefined): PreparedPublish {
    if (this.#session.ending) throw new ConnectionClosedError(undefined, { op: 'PUBLISH' });
    checkDestination(destination, 'PUBLISH');
    let bytes: Uint8Array;
    let borrowed: boolean;
    if (typeof payload === 'string') {
      bytes = textEncoder.encode(payload);
      borrowed = false;
    } else if (payload instanceof Uint8Array) {
      bytes = payload;
      borrowed = true;
    } else throw new TypeError(`payload must be a string or a Uint8Array (got ${payload === null ? 'null' : typeof payload})`);
    const props = options?.properties;
    const properties = props == null ? null : encodeProperties(props);
    const propertiesLength = properties === null ? 0 : properties.length;
    const size = 8 + utf8Length(destination) + (properties === null ? 0 : 4 + propertiesLength) + bytes.length;
    if (size > this.#options.maxFrameBytes) {
      throw new TooLargeError(
        'too_large',
        `a ${bytes.length}-byte message makes a ${size}-byte op, over maxFrameBytes ${this.#options.maxFrameBytes}`,
        { op: 'PUBLISH' },
      );
    }
    return { destination, payload: bytes, properties, size, cost: bytes.length + propertiesLength, borrowed };
  }

  /** The credit left on this socket allows `p` now (see MAX_COST_WAITING_FOR_BYTES for the byte rule). */
  #hasCreditFor(p: PreparedPublish): boolean {
    return this.#creditMessages >= 1 && (p.cost <= this.#creditBytes || (p.cost > MAX_COST_WAITING_FOR_BYTES && this.#creditBytes > 0));
  }

  /** Writes `p` into the current frame, spending its credit; its confirm number is given here, in write order. */
  #write(p: PreparedPublish, settle: Settle | null): void {
    try {
      this.#conn.write(p.size, (w) => w.publishCoalescing(p.destination, p.payload, p.properties));
    } catch (err) {
      if (settle !== null) settle.reject(err as ShardmqError);
      else this.#noWaitFailed(err as ShardmqError);
      return;
    }
    this.#creditMessages--;
    this.#creditBytes -= p.cost;
    this.#published++;
    if (this.#options.confirms) this.#confirms.add(settle);
    else settle?.resolve();
  }

  /**
   * Puts `p` at the end of the credit FIFO, with a copy of a borrowed payload. Throws SaturatedError
   * when that would take the FIFO past `maxPendingBytes`, unless `force` (a publish that already
   * waited through a reconnect, within `reconnectBufferBytes`: it was accepted then).
   */
  #wait(p: PreparedPublish, settle: Settle | null, force: boolean): void {
    if (!force && this.#waitingBytes + p.size > this.#options.maxPendingBytes) {
      throw new SaturatedError(
        'saturated',
        `the broker is applying flow control (no publish credit left) and ${this.#waitingCount} publish(es) of ` +
          `${this.#waitingBytes} bytes already wait for it, the most maxPendingBytes ${this.#options.maxPendingBytes} allows; retry later`,
        { op: 'PUBLISH' },
      );
    }
    // The caller may reuse a borrowed payload once publish returns: it waits as a copy, packed into
    // a shared slab (a fresh ArrayBuffer per waiting publish was most of an open-loop publisher's GC).
    const publish: PreparedPublish =
      p.borrowed && p.payload.length > 0 ? { ...p, payload: this.#slab.copy(p.payload), borrowed: false } : p;
    this.#waiting.push({ publish, settle });
    this.#waitingCount++;
    this.#waitingBytes += p.size;
  }

  /** Runs `run` once every publish now in the FIFO was written (at once when none waits); `fail` if they never will be. */
  #afterWaiting(run: () => void, fail: (err: ShardmqError) => void): void {
    if (this.#waitHead === this.#waiting.length) run();
    else this.#waiting.push({ barrier: run, fail });
  }

  /** The FIFO may be written: the client is ready, or closing with the FIFO given its last chance. */
  #canDrain(): boolean {
    if (!this.#conn.isOpen) return false;
    const state = this.#session.state;
    return state === 'ready' || (state === 'closing' && this.#closeDrain);
  }

  /**
   * Writes waiting publishes in order as far as the credit goes, running the flush() barriers it
   * reaches. Re-entrant safe: a settle or barrier callback may publish (it joins the end) or close.
   */
  #drain(): void {
    while (this.#waitHead < this.#waiting.length && this.#canDrain()) {
      const e = this.#waiting[this.#waitHead];
      if ('barrier' in e) {
        this.#take();
        e.barrier();
        continue;
      }
      if (!this.#hasCreditFor(e.publish)) return;
      this.#take();
      this.#waitingCount--;
      this.#waitingBytes -= e.publish.size;
      this.#write(e.publish, e.settle);
    }
  }

  #take(): void {
    this.#waiting[this.#waitHead] = undefined as unknown as Waiting;
    this.#waitHead++;
    if (this.#waitHead === this.#waiting.length) {
      this.#waiting = [];
      this.#waitHead = 0;
    } else if (this.#waitHead >= 1024 && this.#waitHead * 2 >= this.#waiting.length) {
      this.#waiting = this.#waiting.slice(this.#waitHead);
      this.#waitHead = 0;
    }
  }

  /**
   * A publish issued while not ready waits for the connection (bounded by `reconnectBufferBytes`),
   * with a copy of a borrowed payload; once ready it goes through the credit check like any other.
   */
  #defer(p: PreparedPublish, settle: Settle | null): void {
    const copy: PreparedPublish = p.borrowed && p.payload.length > 0 ? { ...p, payload: this.#slab.copy(p.payload), borrowed: false } : p;
    this.#session.whenReady(
      copy.payload.length,
      () => {
        if (this.#waitHead === this.#waiting.length && this.#hasCreditFor(copy)) this.#write(copy, settle);
        else this.#wait(copy, settle, true);
      },
      (err) => (settle === null ? this.#noWaitFailed(err) : settle.reject(err)),
    );
  }

  /** A fire-and-forget publish failed before it got a confirm number: the next flush() and the 'error' event say so. */
  #noWaitFailed(err: ShardmqError): void {
    this.#confirms.recordFailure(err);
    this.#session.report(err);
  }

  // ---- what the broker sends ------------------------------------------------------------------

  confirmArrived(ev: ConfirmEvent): void {
    this.#frame.push({ confirm: ev, group: -1 });
  }

  /** CREDIT adds to what is left (an overdraft included); the FIFO drains at the frame's end, after its confirms. */
  creditArrived(ev: CreditEvent): void {
    this.#creditMessages += ev.messages;
    this.#creditBytes += ev.bytes;
    this.#creditGranted = true;
  }

  /** A request-less ERROR: it may explain nacks in the same frame, so it waits for the frame's end. */
  errorArrived(ev: ErrorEvent): void {
    this.#frame.push({ error: ev, consumed: false });
  }

  /** End of an inbound frame: settle its confirms, then write what its CREDITs allow. */
  frameEnd(): void {
    if (this.#frame.length > 0) this.#settleFrame();
    if (this.#creditGranted) {
      this.#creditGranted = false;
      this.#drain();
    }
  }

  /**
   * Settles the frame's confirms in order, pairing each run of nacks with the request-less ERROR
   * that explains it. The broker writes a refused publish's ERROR right before or right after its
   * nacks (docs/protocol.md §6), so ERRORs and nack runs are paired in the order they alternate;
   * acks in between are transparent. Unpaired ERRORs go to the 'error' event, unexplained nacks get
   * a SaturatedError.
   */
  #settleFrame(): void {
    const entries = this.#frame;
    this.#frame = [];
    // Pass 1: runs of nacks become groups; pair groups and ERRORs that alternate.
    const groupErrors: Array<ErrorEvent | null> = [];
    let last: 'error' | 'nack' | null = null;
    let lastError: { error: ErrorEvent; consumed: boolean } | null = null;
    for (const e of entries) {
      if ('confirm' in e) {
        if (!e.confirm.nack) continue;
        if (last !== 'nack') {
          groupErrors.push(null);
          if (last === 'error' && lastError !== null && !lastError.consumed) {
            groupErrors[groupErrors.length - 1] = lastError.error;
            lastError.consumed = true;
          }
        }
        e.group = groupErrors.length - 1;
        last = 'nack';
      } else {
        if (NOT_PUBLISH_CODES.has(e.error.code)) continue;
        if (last === 'nack' && groupErrors[groupErrors.length - 1] === null) {
          groupErrors[groupErrors.length - 1] = e.error;
          e.consumed = true;
        }
        lastError = e;
        last = 'error';
      }
    }
    // Pass 2: settle in order; report what nobody awaited.
    const outcomes: SettleOutcome[] = groupErrors.map(() => ({ rejected: 0, failedNoWait: 0 }));
    const ok: SettleOutcome = { rejected: 0, failedNoWait: 0 };
    for (const e of entries) {
      if ('confirm' in e) {
        const { seq, multiple, nack } = e.confirm;
        if (!nack) {
          this.#confirms.settle(seq, multiple, null, ok);
          continue;
        }
        const why = groupErrors[e.group];
        const error =
          why === null
            ? new SaturatedError(
                'saturated',
                'the broker nacked the publish (ring full, a refusing queue or a restarting shard); retry later',
                { op: 'PUBLISH' },
              )
            : errorFromServer(why.code, why.message, 'PUBLISH');
        this.#confirms.settle(seq, multiple, error, outcomes[e.group]);
      } else if (!e.consumed) {
        this.#session.report(errorFromServer(e.error.code, e.error.message));
      }
    }
    for (let g = 0; g < groupErrors.length; g++) {
      const o = outcomes[g];
      if (o.rejected > 0 || o.failedNoWait === 0) continue;
      const why = groupErrors[g];
      this.#session.report(
        why === null
          ? new SaturatedError('saturated', `the broker nacked ${o.failedNoWait} fire-and-forget publish(es)`, { op: 'PUBLISH' })
          : errorFromServer(why.code, `${o.failedNoWait} fire-and-forget publish(es) refused: ${why.message}`, 'PUBLISH'),
      );
    }
  }
}
