/**
 * The subscribing side of the client: the subscriptions by wire id, DELIVERs, CANCELs and DROPPED
 * notices routed to them, socket reads paused while a subscription's buffer is full, and every
 * active subscription re-subscribed under the same id on a new socket.
 */
import {
  Opcode,
  type AckMode,
  type CancelEvent,
  type DeliverEvent,
  type DroppedEvent,
  type OkEvent,
  type StreamEvent,
} from '../protocol/ws-binary.js';
import type { Deliveries } from './deliveries.js';
import { checkDestination } from './destination.js';
import {
  ConnectionClosedError,
  ConnectionError,
  HandlerError,
  SubscriptionCancelledError,
  restoreError,
  type ShardmqError,
} from './errors.js';
import type { Message } from './message.js';
import type { ClientSession } from './session.js';
import {
  consumerArguments,
  SubscriptionCore,
  type MessageHandler,
  type SubscribeOptions,
  type Subscription,
  type SubscriptionOwner,
} from './subscription.js';

export class Subscriber implements SubscriptionOwner {
  readonly #session: ClientSession;
  readonly #deliveries: Deliveries;
  readonly #subs = new Map<number, SubscriptionCore>();
  /** Shared streams of the current socket (STREAM ops): stream id → the subscriptions it delivers to. */
  readonly #streams = new Map<number, SubscriptionCore[]>();
  readonly #blocked = new Set<SubscriptionCore>();
  #nextSubscription = 0;
  #brokerDropped = 0;

  constructor(session: ClientSession, deliveries: Deliveries) {
    this.#session = session;
    this.#deliveries = deliveries;
  }

  get size(): number {
    return this.#subs.size;
  }

  /** Messages the broker reported discarding, over every subscription this client had (a counter: ended ones still count). */
  get brokerDropped(): number {
    return this.#brokerDropped;
  }

  async subscribe(destination: string, options: SubscribeOptions, handler: MessageHandler | undefined): Promise<Subscription> {
    checkDestination(destination, 'SUBSCRIBE');
    const defaults = this.#session.options;
    const ackMode: AckMode = options.ack ?? 'auto';
    if (ackMode !== 'auto' && ackMode !== 'client')
      throw new TypeError(`options.ack must be "auto" or "client" (got ${JSON.stringify(ackMode)})`);
    const prefetch = ackMode === 'client' ? (options.prefetch ?? defaults.prefetch) : 0;
    if (!Number.isInteger(prefetch) || prefetch < 0 || prefetch > 0xffff_ffff) {
      throw new RangeError(`options.prefetch must be an integer from 0 to 2^32 - 1 (got ${String(options.prefetch)})`);
    }
    const bufferSize = options.bufferSize ?? (ackMode === 'client' && prefetch > 0 ? prefetch : defaults.bufferSize);
    if (!Number.isInteger(bufferSize) || bufferSize < 1)
      throw new RangeError(`options.bufferSize must be an integer ≥ 1 (got ${String(bufferSize)})`);
    const overflow = options.overflow ?? 'block';
    if (overflow !== 'block' && overflow !== 'dropOldest')
      throw new TypeError(`options.overflow must be "block" or "dropOldest" (got ${JSON.stringify(overflow)})`);
    if (handler !== undefined && typeof handler !== 'function') throw new TypeError(`handler must be a function (got ${typeof handler})`);
    if (this.#session.ending) throw new ConnectionClosedError(undefined, { op: 'SUBSCRIBE' });

    const core = new SubscriptionCore(
      this,
      this.#allocateId(),
      destination,
      ackMode,
      prefetch,
      bufferSize,
      overflow,
      handler,
      consumerArguments(options),
    );
    // Registered before SUBSCRIBE goes out: DELIVERs may arrive ahead of its OK.
    this.#subs.set(core.id, core);
    try {
      await new Promise<OkEvent>((resolve, reject) => {
        const run = (): void => {
          core.state = 'subscribing';
          core.onWire = true;
          this.#sendSubscribe(core).then(resolve, reject);
        };
        if (this.#session.state === 'ready') run();
        else this.#session.whenReady(0, run, reject);
      });
    } catch (err) {
      this.#subs.delete(core.id);
      this.#unstream(core);
      core.end({ reason: 'failed', error: err as ShardmqError });
      throw err;
    }
    if (core.state === 'subscribing') {
      core.state = 'active';
      core.refreshBlocked();
    }
    return core.facade;
  }

  /** SUBSCRIBE for `core` (first time and on a restore alike), answered by OK. */
  #sendSubscribe(core: SubscriptionCore): Promise<OkEvent> {
    return this.#session.send(Opcode.SUBSCRIBE, 32 + 3 * core.destination.length, (w, id) =>
      w.subscribe(id, core.id, core.destination, core.ackMode, core.prefetch, core.ackMode === 'auto', core.arguments),
    );
  }

  /** Subscription.commit(): COMMIT_OFFSET, answered by OK (or ERROR: not a stream, an offset not in it). */
  async commit(core: SubscriptionCore, offset: number): Promise<void> {
    await this.#session.send(Opcode.COMMIT_OFFSET, 24, (w, id) => w.commitOffset(id, core.id, offset));
  }

  /** Subscription.unsubscribe() and leaving a for-await loop come here. */
  unsubscribe(core: SubscriptionCore): Promise<void> {
    if (core.ended) return Promise.resolve();
    if (core.unsubscribing !== null) return core.unsubscribing;
    const finish = (): void => {
      this.#subs.delete(core.id);
      this.#unstream(core);
      this.#deliveries.forget(core);
      core.end({ reason: 'unsubscribed' });
    };
    if (core.state !== 'active' || !core.onWire || !this.#session.conn.isOpen) {
      // Not on the broker: never sent, or the connection dropped (and the restore skips it now).
      core.state = 'unsubscribing';
      finish();
      return Promise.resolve();
    }
    core.state = 'unsubscribing';
    core.unsubscribing = this.#session
      .send(Opcode.UNSUBSCRIBE, 16, (w, id) => w.unsubscribe(id, core.id))
      .then(
        () => finish(),
        (err: unknown) => {
          // Lost connection or an unknown subscription: either way the broker has no such consumer now.
          finish();
          if (!(err instanceof ConnectionError)) this.#session.report(err as ShardmqError);
        },
      );
    return core.unsubscribing;
  }

  setBlocked(core: SubscriptionCore, blocked: boolean): void {
    if (blocked) this.#blocked.add(core);
    else this.#blocked.delete(core);
    if (this.#blocked.size > 0) this.#session.conn.pause();
    else this.#session.conn.resume();
  }

  handlerFailed(core: SubscriptionCore, message: Message, err: unknown): void {
    this.#session.report(new HandlerError(core.destination, message.tag, err));
  }

  listenerFailed(core: SubscriptionCore, event: string, err: unknown): void {
    this.#session.options.logger.error({ event, err, destination: core.destination }, 'a shardmq subscription event listener threw');
  }

  // ---- what the broker sends ------------------------------------------------------------------

  deliver(ev: DeliverEvent): void {
    if (ev.stream) {
      // One delivery of a shared stream: every subscription of this client on it gets the message.
      const cores = this.#streams.get(ev.subscriptionId);
      if (cores !== undefined) for (const core of cores) core.push(this.#deliveries.receive(core, ev));
      return;
    }
    const core = this.#subs.get(ev.subscriptionId);
    if (core === undefined) return; // it ended here first; the broker requeues client-ack deliveries
    core.push(this.#deliveries.receive(core, ev));
  }

  /**
   * DROPPED: the broker discarded messages of a subscription that could not keep up. It is logged
   * (a warning: data was lost, and nothing else would say so) besides the subscription's event. A
   * notice for an id this client no longer has is only of interest when debugging: the
   * subscription ended while the notice was on its way.
   */
  dropped(ev: DroppedEvent): void {
    const logger = this.#session.options.logger;
    const core = this.#subs.get(ev.subscriptionId);
    if (core === undefined) {
      logger.debug(
        { subscriptionId: ev.subscriptionId, count: ev.count, destination: ev.destination },
        'DROPPED for a subscription this client does not have (ignored)',
      );
      return;
    }
    this.#brokerDropped += ev.count;
    logger.warn(
      { subscriptionId: core.id, destination: ev.destination, count: ev.count, total: core.brokerDropped + ev.count },
      'the broker discarded messages of a subscription too slow to take them',
    );
    core.brokerDiscarded(ev.count, ev.destination);
  }

  /** STREAM: the subscription's deliveries come through a shared stream from now on. */
  stream(ev: StreamEvent): void {
    const core = this.#subs.get(ev.subscriptionId);
    if (core === undefined) return;
    const cores = this.#streams.get(ev.streamId);
    if (cores === undefined) this.#streams.set(ev.streamId, [core]);
    else if (!cores.includes(core)) cores.push(core);
  }

  #unstream(core: SubscriptionCore): void {
    for (const [id, cores] of this.#streams) {
      const i = cores.indexOf(core);
      if (i < 0) continue;
      cores.splice(i, 1);
      if (cores.length === 0) this.#streams.delete(id);
    }
  }

  cancelled(ev: CancelEvent): void {
    const core = this.#subs.get(ev.subscriptionId);
    if (core === undefined) return;
    this.#subs.delete(core.id);
    this.#unstream(core);
    this.#deliveries.forget(core);
    const error = new SubscriptionCancelledError(
      ev.code,
      core.destination,
      `the broker cancelled the subscription to ${core.destination}: ${ev.message}`,
    );
    core.end({ reason: 'cancelled', error });
    if (core.handler !== undefined) this.#session.report(error);
  }

  // ---- the connection's life ------------------------------------------------------------------

  /** A server-named queue got a new name on the new socket: its subscriptions follow it. */
  queueRenamed(previous: string, queue: string): void {
    for (const core of this.#subs.values()) if (core.destination === '/queue/' + previous) core.destination = '/queue/' + queue;
  }

  /** The SUBSCRIBEs again, under the same ids, of every active subscription (to run after the topology is back). */
  resubscribe(): Array<() => Promise<unknown>> {
    const sent: Array<() => Promise<unknown>> = [];
    for (const core of [...this.#subs.values()]) {
      if (core.state !== 'active') continue;
      sent.push(() => {
        // Ended while earlier ones of the window were out: nothing to restore.
        if (core.state !== 'active') return Promise.resolve();
        core.onWire = true;
        return this.#sendSubscribe(core).catch((err: unknown) => {
          if (err instanceof ConnectionError) throw err;
          this.#subs.delete(core.id);
          this.#unstream(core);
          const error = restoreError(err, `re-subscribing to ${core.destination}`);
          core.end({ reason: 'failed', error });
          if (core.handler !== undefined) this.#session.report(error);
        });
      });
    }
    return sent;
  }

  /** The socket is gone: no subscription is on the wire, and buffered client-ack messages died with their tags. */
  offWire(): void {
    // Stream ids belong to a socket: the new one sends its own STREAM ops.
    this.#streams.clear();
    for (const core of this.#subs.values()) {
      core.onWire = false;
      core.dropStale();
    }
  }

  /** The client closed for good. */
  endAll(error: ShardmqError | undefined): void {
    for (const core of [...this.#subs.values()]) core.end(error === undefined ? { reason: 'closed' } : { reason: 'closed', error });
    this.#subs.clear();
    this.#streams.clear();
    this.#blocked.clear();
  }

  #allocateId(): number {
    do {
      this.#nextSubscription = this.#nextSubscription >= 0xffff_ffff ? 1 : this.#nextSubscription + 1;
    } while (this.#subs.has(this.#nextSubscription));
    return this.#nextSubscription;
  }
}
