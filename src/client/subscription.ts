/**
 * A subscription as its user sees it: an async iterator of messages, or a handler called once per
 * message, fed from a bounded buffer.
 *
 * Backpressure. Messages wait in the subscription's buffer until the iterator or the handler takes
 * them. `bufferSize` defaults to the prefetch for client-ack subscriptions (the broker never has
 * more than `prefetch` unacked deliveries out, so the buffer cannot overflow) and to 1000 for
 * auto-ack ones. When an auto-ack buffer is full:
 * - `overflow: 'block'` (default): the client stops reading from the socket until the buffer is
 *   below its size again. Nothing is lost: the broker stops returning delivery credit, messages
 *   wait in their queue (a /topic/ subscription's private queue drops its oldest beyond the
 *   broker's `--topic-buffer`). The bound is `bufferSize` plus the rest of the frame in which it
 *   was reached and any frame the socket had already read (the broker puts one drained batch of
 *   deliveries in one frame). Reading stops for the whole connection, so confirms, replies and
 *   other subscriptions' deliveries wait too: do not await something from the same client while
 *   leaving a full subscription unread.
 * - `overflow: 'dropOldest'`: the oldest buffered message is discarded (counted in `dropped`) and
 *   the socket keeps flowing; auto-ack messages are already settled, so this is at-most-once.
 *
 * Handlers are called one message at a time: a handler that returns a promise is awaited before the
 * next call, so the buffer also bounds a slow async handler. A handler that throws is reported as a
 * HandlerError on the client's 'error' event; the message is left as it is (ack or nack it in the
 * handler; an unsettled client-ack message holds a prefetch slot until the connection drops).
 *
 * Loss on the broker's side. 'block' keeps this client's buffer lossless, but a subscription that
 * stays too slow can still lose messages before they reach the socket (under the broker's default
 * `--slow-consumer drop`, a /topic/ subscriber that stays behind loses the oldest messages of its
 * private queue beyond `--topic-buffer`). The broker says so with DROPPED ops: they add up in
 * `brokerDropped` and each one fires a 'dropped' event, so a consumer can tell a gap in the stream
 * from a quiet producer.
 */
import type { AckMode } from '../protocol/ws-binary.js';
import type { HeaderTable } from '../protocol/field-table.js';
import { TypedEmitter } from './emitter.js';
import type { ShardmqError } from './errors.js';
import type { Message, MessageSubscription } from './message.js';

export type Overflow = 'block' | 'dropOldest';

export interface SubscribeOptions {
  /** `auto` (default): settled by the broker on send, at-most-once. `client`: ack or nack each message. */
  ack?: AckMode;
  /** Unacked deliveries the broker allows out for a client-ack subscription (default: the client's `prefetch`). 0 = no limit. */
  prefetch?: number;
  /** Messages buffered for the iterator or handler (default: prefetch for client ack, else the client's `bufferSize`). */
  bufferSize?: number;
  /** What a full auto-ack buffer does (default `block`); client-ack subscriptions always block. */
  overflow?: Overflow;
  /**
   * A stream queue (`x-queue-type: stream`): where to start reading, as RabbitMQ's `x-stream-offset`:
   * `'first'`, `'last'`, `'next'` (default), `'stored'`, an offset, a `Date`, or an interval such as
   * `'10m'`. Each message carries its offset in `properties.headers['x-stream-offset']`.
   */
  offset?: StreamOffset;
  /** A stream consumer's name: what `commit()` stores its offset under and `offset: 'stored'` resumes from (default: the subscription's id). */
  consumerName?: string;
}

export type StreamOffset = 'first' | 'last' | 'next' | 'stored' | number | Date | string;

/** The consumer arguments SUBSCRIBE carries for `options` (empty when it names no stream offset). */
export function consumerArguments(options: SubscribeOptions): HeaderTable {
  const args: HeaderTable = {};
  const offset = options.offset;
  if (offset !== undefined) args['x-stream-offset'] = offset instanceof Date ? offset.toISOString() : offset;
  if (options.consumerName !== undefined) args['x-stream-consumer-name'] = options.consumerName;
  return args;
}

export type MessageHandler = (message: Message) => void | Promise<void>;

export type SubscriptionEndReason = 'unsubscribed' | 'cancelled' | 'closed' | 'failed';

export interface SubscriptionEnd {
  /**
   * `unsubscribed`: by unsubscribe() or by leaving a for-await loop; `cancelled`: the broker ended it
   * (its queue was deleted); `closed`: the client closed (or gave up reconnecting, with `error`);
   * `failed`: subscribing or re-subscribing after a reconnect failed (with `error`).
   */
  readonly reason: SubscriptionEndReason;
  readonly error?: ShardmqError;
}

/** What a 'dropped' listener is told: one DROPPED notice from the broker. */
export interface DroppedNotice {
  /** Messages the broker discarded since its previous notice for this subscription. */
  readonly count: number;
  /** Messages discarded over the subscription's life so far (its `brokerDropped`, this notice included). */
  readonly total: number;
  /** The destination as the broker named it in the notice. */
  readonly destination: string;
}

/** Events of a subscription (`subscription.on(event, listener)`). */
export interface SubscriptionEvents {
  /** The broker discarded messages of this subscription because it was too slow to take them. */
  dropped: DroppedNotice;
}

export type SubscriptionListener<K extends keyof SubscriptionEvents> = (arg: SubscriptionEvents[K]) => void;

/** What a subscription needs from its client. */
export interface SubscriptionOwner {
  unsubscribe(core: SubscriptionCore): Promise<void>;
  commit(core: SubscriptionCore, offset: number): Promise<void>;
  /** The buffer crossed its size (true) or went back below it (false), with overflow 'block'. */
  setBlocked(core: SubscriptionCore, blocked: boolean): void;
  handlerFailed(core: SubscriptionCore, message: Message, err: unknown): void;
  /** A listener of the subscription's events threw (caught, so the client's bookkeeping goes on). */
  listenerFailed(core: SubscriptionCore, event: string, err: unknown): void;
}

/** The core fires the events of its facade; `emit` stays off the public surface. */
class SubscriptionEmitter extends TypedEmitter<SubscriptionEvents> {
  fire<K extends keyof SubscriptionEvents>(event: K, arg: SubscriptionEvents[K]): boolean {
    return this.emit(event, arg);
  }
}

/** Where the subscription stands on the wire. */
export type SubscriptionState = 'pending' | 'subscribing' | 'active' | 'unsubscribing' | 'ended';

/** The public face of a subscription. */
export class Subscription implements AsyncIterable<Message>, MessageSubscription {
  readonly #core: SubscriptionCore;

  /** @internal */
  constructor(core: SubscriptionCore) {
    this.#core = core;
  }

  /** The subscription id on the wire (unique per client, kept across reconnects). */
  get id(): number {
    return this.#core.id;
  }

  /** The destination subscribed to. */
  get destination(): string {
    return this.#core.destination;
  }

  get ackMode(): AckMode {
    return this.#core.ackMode;
  }

  get prefetch(): number {
    return this.#core.prefetch;
  }

  get bufferSize(): number {
    return this.#core.bufferSize;
  }

  /** Messages waiting in the buffer. */
  get buffered(): number {
    return this.#core.buffered;
  }

  /** Messages discarded by `overflow: 'dropOldest'` (in this client; see `brokerDropped` for the broker). */
  get dropped(): number {
    return this.#core.dropped;
  }

  /** Messages the broker reported discarding because this subscription was too slow (sum of its DROPPED notices). */
  get brokerDropped(): number {
    return this.#core.brokerDropped;
  }

  /**
   * Listens to `event`: `dropped` fires once per DROPPED notice from the broker. A listener that
   * throws is logged (the client's logger) and does not affect the subscription.
   */
  on<K extends keyof SubscriptionEvents>(event: K, listener: SubscriptionListener<K>): this {
    if (typeof listener !== 'function') throw new TypeError(`listener must be a function (got ${typeof listener})`);
    this.#core.events.on(event, listener);
    return this;
  }

  /** Removes a listener added with on() (one registration of it). */
  off<K extends keyof SubscriptionEvents>(event: K, listener: SubscriptionListener<K>): this {
    this.#core.events.off(event, listener);
    return this;
  }

  /** False once it ended (see `closed`). */
  get active(): boolean {
    return this.#core.state !== 'ended';
  }

  /** Resolves (never rejects) when the subscription ends, saying why. */
  get closed(): Promise<SubscriptionEnd> {
    return this.#core.closed;
  }

  /**
   * Ends the subscription. Resolves once the broker confirmed that nothing more will be delivered
   * (or at once while disconnected). Auto-ack messages still buffered stay readable; client-ack ones
   * are dropped, because the broker requeues unsettled deliveries of a cancelled subscription.
   */
  unsubscribe(): Promise<void> {
    return this.#core.owner.unsubscribe(this.#core);
  }

  /**
   * A stream subscription: stores `offset` (the last one this consumer processed) under its consumer
   * name on the broker, so a subscription with `offset: 'stored'` and that name resumes right after it,
   * on any connection. Resolves once the broker has it.
   */
  commit(offset: number): Promise<void> {
    if (!Number.isSafeInteger(offset) || offset < 0)
      return Promise.reject(new RangeError(`offset must be an integer ≥ 0 (got ${String(offset)})`));
    return this.#core.owner.commit(this.#core, offset);
  }

  /**
   * Iterates the messages. Breaking out of the loop unsubscribes. The iteration ends after the last
   * buffered message once the subscription ended; if it ended with an error (cancelled by the
   * broker, a failed re-subscribe, the client gave up reconnecting) that error is thrown then.
   */
  [Symbol.asyncIterator](): AsyncIterator<Message> {
    return this.#core.iterator();
  }
}

/** The subscription's state and buffer, driven by the client. @internal */
export class SubscriptionCore {
  readonly owner: SubscriptionOwner;
  readonly id: number;
  destination: string;
  readonly ackMode: AckMode;
  readonly prefetch: number;
  readonly bufferSize: number;
  readonly overflow: Overflow;
  readonly handler: MessageHandler | undefined;
  /** Consumer arguments sent with SUBSCRIBE (a stream's offset and consumer name), again on a restore. */
  readonly arguments: HeaderTable;
  readonly facade: Subscription;
  readonly events: SubscriptionEmitter;
  readonly closed: Promise<SubscriptionEnd>;
  state: SubscriptionState = 'pending';
  /** SUBSCRIBE was written on the current socket (so UNSUBSCRIBE makes sense there). */
  onWire = false;
  dropped = 0;
  /** Sum of the broker's DROPPED counts for this subscription. */
  brokerDropped = 0;
  /** The pending unsubscribe, so that concurrent calls share it. */
  unsubscribing: Promise<void> | null = null;
  #resolveClosed!: (end: SubscriptionEnd) => void;
  #end: SubscriptionEnd | null = null;
  #errorThrown = false;
  /** FIFO of buffered messages: `#buffer[#head…]`, compacted now and then. */
  #buffer: Message[] = [];
  #head = 0;
  #waiters: Array<{ resolve: (r: IteratorResult<Message>) => void; reject: (err: unknown) => void }> = [];
  #blocked = false;
  #pumping = false;
  #iterated = false;

  constructor(
    owner: SubscriptionOwner,
    id: number,
    destination: string,
    ackMode: AckMode,
    prefetch: number,
    bufferSize: number,
    overflow: Overflow,
    handler: MessageHandler | undefined,
    args: HeaderTable = {},
  ) {
    this.arguments = args;
    this.owner = owner;
    this.id = id;
    this.destination = destination;
    this.ackMode = ackMode;
    this.prefetch = prefetch;
    this.bufferSize = bufferSize;
    this.overflow = ackMode === 'client' ? 'block' : overflow;
    this.handler = handler;
    this.facade = new Subscription(this);
    this.events = new SubscriptionEmitter((event, err) => owner.listenerFailed(this, event, err));
    this.closed = new Promise((resolve) => {
      this.#resolveClosed = resolve;
    });
  }

  get buffered(): number {
    return this.#buffer.length - this.#head;
  }

  get ended(): boolean {
    return this.#end !== null;
  }

  /** A delivery arrived. */
  push(message: Message): void {
    if (this.#end !== null) return;
    const waiter = this.#waiters.shift();
    if (waiter !== undefined) {
      waiter.resolve({ value: message, done: false });
      return;
    }
    if (this.overflow === 'dropOldest' && this.buffered >= this.bufferSize) {
      this.#take();
      this.dropped++;
    }
    this.#buffer.push(message);
    this.#updateBlocked();
    if (this.handler !== undefined) this.#pump();
  }

  /** The broker discarded `count` more messages (a DROPPED notice): counts them and tells the listeners. */
  brokerDiscarded(count: number, destination: string): DroppedNotice {
    this.brokerDropped += count;
    const notice: DroppedNotice = { count, total: this.brokerDropped, destination };
    this.events.fire('dropped', notice);
    return notice;
  }

  /**
   * Drops buffered client-ack messages: their tags died with the connection or the subscription,
   * and the broker has requeued them. Returns how many.
   */
  dropStale(): number {
    if (this.ackMode !== 'client') return 0;
    const n = this.buffered;
    this.#buffer = [];
    this.#head = 0;
    this.#updateBlocked();
    return n;
  }

  /** Ends the subscription: no more deliveries; iterators finish after the buffer (then throw `error`). */
  end(end: SubscriptionEnd): void {
    if (this.#end !== null) return;
    this.#end = end;
    this.state = 'ended';
    if (this.#blocked) {
      this.#blocked = false;
      this.owner.setBlocked(this, false);
    }
    if (this.buffered === 0) this.#settleWaiters();
    this.#resolveClosed(end);
  }

  iterator(): AsyncIterator<Message> {
    if (this.handler !== undefined) throw new TypeError(`subscription ${this.id} has a handler; it cannot also be iterated`);
    this.#iterated = true;
    return {
      next: () => this.#next(),
      return: async (): Promise<IteratorResult<Message>> => {
        if (this.#end === null) {
          try {
            await this.owner.unsubscribe(this);
          } catch {
            // Unsubscribing only fails when the client is closed, and then the subscription is over anyway.
          }
        }
        return { value: undefined, done: true };
      },
    };
  }

  #next(): Promise<IteratorResult<Message>> {
    if (this.buffered > 0) {
      const message = this.#take();
      this.#updateBlocked();
      return Promise.resolve({ value: message, done: false });
    }
    if (this.#end !== null) {
      const error = this.#end.error;
      if (error !== undefined && !this.#errorThrown) {
        this.#errorThrown = true;
        return Promise.reject(error);
      }
      return Promise.resolve({ value: undefined, done: true });
    }
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  #take(): Message {
    const message = this.#buffer[this.#head];
    this.#buffer[this.#head] = undefined as unknown as Message;
    this.#head++;
    if (this.#head === this.#buffer.length) {
      this.#buffer = [];
      this.#head = 0;
    } else if (this.#head >= 1024 && this.#head * 2 >= this.#buffer.length) {
      this.#buffer = this.#buffer.slice(this.#head);
      this.#head = 0;
    }
    return message;
  }

  /** Re-evaluates blocking (the subscription just became active). */
  refreshBlocked(): void {
    this.#updateBlocked();
  }

  #updateBlocked(): void {
    // Client-ack subscriptions never block the socket: the broker keeps at most `prefetch`
    // unacked deliveries out, so the buffer is bounded anyway, and blocking at exactly that
    // bound would stop the socket before the SUBSCRIBE's OK (which follows the first
    // deliveries) could be read. Auto-ack ones block only once active, for the same reason.
    if (this.overflow !== 'block' || this.ackMode === 'client' || this.state !== 'active') return;
    const blocked = this.#end === null && this.buffered >= this.bufferSize;
    if (blocked === this.#blocked) return;
    this.#blocked = blocked;
    this.owner.setBlocked(this, blocked);
  }

  #settleWaiters(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    const error = this.#end?.error;
    for (const w of waiters) {
      if (error !== undefined && !this.#errorThrown && this.#iterated) {
        this.#errorThrown = true;
        w.reject(error);
      } else {
        w.resolve({ value: undefined, done: true });
      }
    }
  }

  /**
   * Handler mode: one message at a time. While the handler returns no promise the loop stays
   * synchronous (no async frame and promise per delivery: at a million deliveries a second they
   * showed in the profile); the first promise moves the rest of the buffer to an async loop that
   * awaits each one.
   */
  #pump(): void {
    if (this.#pumping) return;
    this.#pumping = true;
    while (this.buffered > 0) {
      const message = this.#take();
      this.#updateBlocked();
      let r: unknown;
      try {
        r = this.handler!(message);
      } catch (err) {
        this.owner.handlerFailed(this, message, err);
        continue;
      }
      if (r !== undefined && r !== null && typeof (r as Promise<void>).then === 'function') {
        void this.#pumpAsync(r as Promise<void>, message);
        return;
      }
    }
    this.#pumping = false;
  }

  async #pumpAsync(pending: Promise<void>, pendingMessage: Message): Promise<void> {
    try {
      try {
        await pending;
      } catch (err) {
        this.owner.handlerFailed(this, pendingMessage, err);
      }
      while (this.buffered > 0) {
        const message = this.#take();
        this.#updateBlocked();
        try {
          const r = this.handler!(message);
          if (r !== undefined && typeof (r as Promise<void>).then === 'function') await r;
        } catch (err) {
          this.owner.handlerFailed(this, message, err);
        }
      }
    } finally {
      this.#pumping = false;
    }
  }
}
