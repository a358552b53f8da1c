/**
 * The publishing side of the client: checks and encodes a publish once, writes it into the
 * connection's current frame (which batches it with everything else written in the same turn) or
 * holds it while reconnecting, and settles publishes from the broker's CONFIRMs, explaining nacks
 * with the ERRORs that came with them.
 *
 * The fire-and-forget path (publishNoWait → #prepare → #write) allocates only the prepared publish
 * and the callback Connection.write takes: it is the client's throughput path, keep it that way.
 */
import type { MessageProperties } from '../protocol/properties.js';
import { encodeProperties } from '../protocol/properties.js';
import { Opcode, utf8Length, type ConfirmEvent, type ErrorEvent } from '../protocol/ws-binary.js';
import { PublishConfirms, type Settle, type SettleOutcome } from './confirms.js';
import type { Connection } from './connection.js';
import { checkDestination } from './destination.js';
import { ConnectionClosedError, ConnectionLostError, SaturatedError, TooLargeError, errorFromServer, type ShardmqError } from './errors.js';
import type { ResolvedOptions } from './options.js';
import type { ClientSession } from './session.js';

export type Payload = string | Uint8Array;

export interface PublishOptions {
  /** AMQP basic properties: contentType, headers (nested tables allowed), priority, deliveryMode, expiration… */
  properties?: MessageProperties;
}

interface PreparedPublish {
  readonly destination: string;
  readonly payload: Uint8Array;
  readonly properties: Uint8Array | null;
  /** Upper bound of the PUBLISH op's size. */
  readonly size: number;
}

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
  #frame: FrameEntry[] = [];
  #published = 0;

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

  publish(destination: string, payload: Payload, options?: PublishOptions): Promise<void> {
    let p: PreparedPublish;
    try {
      p = this.#prepare(destination, payload, options);
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise<void>((resolve, reject) => {
      const settle = { resolve, reject };
      if (this.#session.state === 'ready') this.#write(p, settle);
      else this.#defer(p, settle);
    });
  }

  publishNoWait(destination: string, payload: Payload, options?: PublishOptions): void {
    const p = this.#prepare(destination, payload, options);
    if (this.#session.state === 'ready') this.#write(p, null);
    else this.#defer(p, null);
  }

  flush(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const run = (): void => {
        this.#conn.flush();
        if (this.#options.confirms) {
          this.#confirms.waitForAll().then(resolve, reject);
        } else {
          this.#session
            .send(Opcode.DECLARE_EXCHANGE, 64, (w, id) => w.declareExchange(id, 'amq.topic', 'topic', { passive: true }))
            .then(() => resolve(), reject);
        }
      };
      if (this.#session.state === 'ready') run();
      else this.#session.whenReady(0, run, reject);
    });
  }

  /** For close(): sends what is pending; resolves (never rejects) once every publish sent is settled, null when none is unconfirmed. */
  confirmedBeforeClose(): Promise<unknown> | null {
    if (!this.#options.confirms || this.#confirms.unconfirmed === 0) return null;
    this.#conn.flush();
    return this.#confirms.waitForAll().catch(() => undefined);
  }

  /** The socket dropped: the confirms of its publishes will never come. */
  connectionLost(cause: unknown): void {
    this.#frame = [];
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
  }

  #prepare(destination: string, payload: Payload, options: PublishOptions | undefined): PreparedPublish {
    if (this.#session.ending) throw new ConnectionClosedError(undefined, { op: 'PUBLISH' });
    checkDestination(destination, 'PUBLISH');
    let bytes: Uint8Array;
    if (typeof payload === 'string') bytes = textEncoder.encode(payload);
    else if (payload instanceof Uint8Array) bytes = payload;
    else throw new TypeError(`payload must be a string or a Uint8Array (got ${payload === null ? 'null' : typeof payload})`);
    const props = options?.properties;
    const properties = props == null ? null : encodeProperties(props);
    const size = 8 + utf8Length(destination) + (properties === null ? 0 : 4 + properties.length) + bytes.length;
    if (size > this.#options.maxFrameBytes) {
      throw new TooLargeError(
        'too_large',
        `a ${bytes.length}-byte message makes a ${size}-byte op, over maxFrameBytes ${this.#options.maxFrameBytes}`,
        { op: 'PUBLISH' },
      );
    }
    return { destination, payload: bytes, properties, size };
  }

  #write(p: PreparedPublish, settle: Settle | null): void {
    try {
      this.#conn.write(p.size, (w) => w.publish(p.destination, p.payload, p.properties));
    } catch (err) {
      if (settle !== null) settle.reject(err as ShardmqError);
      else this.#noWaitFailed(err as ShardmqError);
      return;
    }
    this.#published++;
    if (this.#options.confirms) this.#confirms.add(settle);
    else settle?.resolve();
  }

  /** A publish issued while not ready waits for the connection, with a copy of its payload (the caller may reuse its buffer). */
  #defer(p: PreparedPublish, settle: Settle | null): void {
    const copy: PreparedPublish = p.payload.length === 0 ? p : { ...p, payload: new Uint8Array(p.payload) };
    this.#session.whenReady(
      copy.payload.length,
      () => this.#write(copy, settle),
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

  /** A request-less ERROR: it may explain nacks in the same frame, so it waits for the frame's end. */
  errorArrived(ev: ErrorEvent): void {
    this.#frame.push({ error: ev, consumed: false });
  }

  /**
   * Settles the frame's confirms in order, pairing each run of nacks with the request-less ERROR
   * that explains it. The broker writes a refused publish's ERROR right before or right after its
   * nacks (docs/protocol.md §6), so ERRORs and nack runs are paired in the order they alternate;
   * acks in between are transparent. Unpaired ERRORs go to the 'error' event, unexplained nacks get
   * a SaturatedError.
   */
  frameEnd(): void {
    const entries = this.#frame;
    if (entries.length === 0) return;
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
