/**
 * The shardmq client: publish with confirms, subscribe, settle deliveries and manage exchanges,
 * queues and bindings over the binary WebSocket protocol (docs/protocol.md).
 *
 * ```ts
 * const client = await connect('http://127.0.0.1:7070');
 * await client.publish('/topic/sensors.temp', '21.5');          // resolves when the broker holds it
 * const sub = await client.subscribe('/queue/jobs', { ack: 'client', prefetch: 10 });
 * for await (const msg of sub) { work(msg.json()); await msg.ack(); }
 * await client.close();
 * ```
 *
 * Delivery guarantees. With confirms (the default) a resolved `publish()` means the broker holds
 * the message. A publish whose connection drops before its confirm rejects with
 * ConnectionLostError: the broker may or may not have taken it, so republishing gives
 * at-least-once delivery (consumers should tolerate duplicates). Auto-ack subscriptions are
 * at-most-once; client-ack ones are at-least-once: a delivery that is not acked before its
 * connection or subscription ends is requeued by the broker and delivered again (`redelivered`).
 *
 * Reconnecting. When the socket drops without close() the client emits 'disconnected', then
 * retries with exponential backoff and jitter ('reconnecting' per attempt). On the new socket it
 * turns confirms on again, re-declares the exchanges and queues this client declared (in their
 * order), re-binds, and re-subscribes every active subscription under the same id, so iterators and
 * handlers keep receiving without noticing; then it emits 'reconnected' and sends what was issued
 * meanwhile. A server-named queue (declared with '') gets a NEW name: the `queue` of the object
 * `declareQueue` returned reads the latest name, and 'queueRenamed' says so. Things that were in
 * flight when the socket dropped fail with ConnectionLostError; delivery tags from before the drop
 * become stale (settling them throws DeliveryTagError `stale_tag` locally, the broker has requeued
 * those messages). Operations issued while reconnecting wait for the new connection (publishes up
 * to `reconnectBufferBytes`).
 *
 * Flow control. The broker grants each connection publish credit (messages and bytes) and closes
 * a connection that publishes beyond it, so the client never does: a publish without credit waits
 * in a client-side FIFO (up to `maxPendingBytes`, then SaturatedError) until the broker's CREDIT
 * releases it, in order. A producer faster than the broker therefore sees `publish()` take longer
 * (and `stats.creditWaiting` grow) rather than a dropped connection. Subscribers are told when the
 * broker discarded messages they were too slow for (`subscription.on('dropped')`).
 */
import type { HeaderTable } from '../protocol/field-table.js';
import { runWindowed } from './windowed.js';
import { Opcode, type BinaryClientDispatcher } from '../protocol/ws-binary.js';
import type { ExchangeDeclareOptions, QueueDeclareOptions, QueueDeleteOptions } from '../protocol/ws-binary-encode.js';
import { Connection } from './connection.js';
import { Deliveries } from './deliveries.js';
import { TypedEmitter } from './emitter.js';
import {
  ConnectFailedError,
  ConnectionClosedError,
  ConnectionError,
  ConnectionLostError,
  ShardmqError,
  errorFromServer,
} from './errors.js';
import { SILENT_LOGGER, resolveOptions, type ClientOptions, type ResolvedOptions } from './options.js';
import { Publisher, type Payload, type PublishCredit, type PublishOptions } from './publisher.js';
import { ClientSession } from './session.js';
import { Subscriber } from './subscriber.js';
import type { MessageHandler, SubscribeOptions, Subscription } from './subscription.js';
import type { DeclareQueueResult } from './topology.js';
import { TopologyOps } from './topology-ops.js';

export type { Payload, PublishCredit, PublishOptions };

export interface SettleOptions {
  /** Also settle every unsettled delivery with a smaller tag (tag 0 + multiple: all of them). */
  multiple?: boolean;
}

export interface ClientNackOptions extends SettleOptions {
  /** Back into the queue (default true); false drops or dead-letters. */
  requeue?: boolean;
}

export type ExchangeType = 'direct' | 'fanout' | 'topic' | 'headers';
export type { ExchangeDeclareOptions, QueueDeclareOptions, QueueDeleteOptions };

export interface ClientEvents {
  /** A failure no call was waiting for: a refused fire-and-forget publish, a handler that threw, a failed re-declare, a CANCEL… */
  error: ShardmqError;
  /** The socket dropped unexpectedly; in-flight operations were rejected with ConnectionLostError. */
  disconnected: { error: ConnectionLostError };
  /** A reconnect attempt will be made in `delayMs` (attempt counts from 1 per outage). */
  reconnecting: { attempt: number; delayMs: number; error: unknown };
  /** Connected again, topology and subscriptions restored, after `downtimeMs`. */
  reconnected: { downtimeMs: number };
  /** A server-named queue has a new name after a reconnect. */
  queueRenamed: { previous: string; queue: string };
  /** The client is closed for good: by close() (no error) or because reconnecting gave up (error). */
  close: { error?: ShardmqError };
}

/**
 * Connects to a shardmq broker at `url` (`http://host:port`, or a `ws://host:port/v1/ws` URL) and
 * resolves once the binary protocol is up (with confirms on, unless disabled). Rejects with
 * ConnectFailedError when the first connection fails; later drops reconnect. Several URLs (the
 * nodes of a cluster): the first that answers is used, and each reconnect attempt moves on to the
 * next, so a client of a node that died fails over to another with its subscriptions restored.
 */
export async function connect(url: string | readonly string[], options: ClientOptions = {}): Promise<ShardmqClient> {
  const client = new ShardmqClient(url, resolveOptions(options));
  await client.start();
  return client;
}

/**
 * The public API and the connection's life (start, drop, restore, close); the work is done by
 * Publisher, Subscriber (with Deliveries for settling) and TopologyOps, which share one
 * ClientSession so that they see the same state and the same queue of operations waiting for the
 * connection. They sit in private fields because what subscriptions and messages call back into
 * (SubscriptionOwner, MessageSettler) must stay off the public surface.
 */
export class ShardmqClient extends TypedEmitter<ClientEvents> {
  readonly #options: ResolvedOptions;
  readonly #conn: Connection;
  readonly #session: ClientSession;
  readonly #publisher: Publisher;
  readonly #deliveries: Deliveries;
  readonly #subscriber: Subscriber;
  readonly #topology: TopologyOps;
  #downSince = 0;
  #closePromise: Promise<void> | null = null;

  /** Use {@link connect}. */
  constructor(url: string | readonly string[], options: ResolvedOptions) {
    super((event, err) => options.logger.error({ event, err }, 'a shardmq client event listener threw'));
    this.#options = options;
    this.#conn = new Connection(
      url,
      {
        reconnect: options.reconnect,
        batchMaxMessages: options.batchMaxMessages,
        batchMaxBytes: options.batchMaxBytes,
        batchMaxDelayMs: options.batchMaxDelayMs,
        maxFrameBytes: options.maxFrameBytes,
        connectTimeoutMs: options.connectTimeoutMs,
        pingIntervalMs: options.pingIntervalMs,
        vhost: options.vhost,
      },
      {
        dispatcher: this.#dispatcher(),
        frameEnd: () => this.#publisher.frameEnd(),
        opened: (reconnected) => this.#opened(reconnected),
        lost: (error) => this.#lost(error),
        reconnecting: (attempt, delayMs, error) => this.emit('reconnecting', { attempt, delayMs, error }),
        closed: (error) => this.#finalize(error),
        error: (error) => this.#report(error),
      },
    );
    this.#session = new ClientSession(this.#conn, options, (err) => this.#report(err));
    this.#publisher = new Publisher(this.#session);
    this.#deliveries = new Deliveries(this.#session);
    this.#subscriber = new Subscriber(this.#session, this.#deliveries);
    this.#topology = new TopologyOps(this.#session, (previous, queue) => {
      this.#subscriber.queueRenamed(previous, queue);
      this.emit('queueRenamed', { previous, queue });
    });
  }

  /** @internal Opens the first connection (connect() calls it). */
  async start(): Promise<void> {
    await this.#conn.start();
    try {
      if (this.#options.confirms) await this.#selectConfirms();
    } catch (err) {
      await this.close().catch(() => undefined);
      throw new ConnectFailedError(`connected to ${this.#conn.url} but could not turn confirms on: ${(err as Error).message}`, {
        cause: err,
      });
    }
    if (this.#session.state === 'connecting') {
      this.#session.state = 'ready';
      this.#conn.resetBackoff();
      this.#publisher.ready();
    }
  }

  /** The WebSocket endpoint. */
  get url(): string {
    return this.#conn.url;
  }

  /** True while connected with everything restored (operations go out at once). */
  get connected(): boolean {
    return this.#session.state === 'ready';
  }

  get closed(): boolean {
    return this.#session.state === 'closed';
  }

  /** Counters for monitoring. */
  get stats(): {
    published: number;
    unconfirmed: number;
    delivered: number;
    unsettled: number;
    subscriptions: number;
    framesOut: number;
    bytesOut: number;
    /** True while a full subscription buffer has stopped reading from the socket (overflow 'block'). */
    readPaused: boolean;
    /** Publishes waiting in the client for publish credit from the broker (its flow control). */
    creditWaiting: number;
    /** Publish credit left on the current socket. */
    publishCredit: PublishCredit;
    /** Messages the broker reported discarding because a subscription of this client was too slow (DROPPED), all subscriptions together. */
    brokerDropped: number;
  } {
    return {
      readPaused: this.#conn.paused,
      creditWaiting: this.#publisher.creditWaiting,
      publishCredit: this.#publisher.credit,
      brokerDropped: this.#subscriber.brokerDropped,
      published: this.#publisher.published,
      unconfirmed: this.#publisher.unconfirmed,
      delivered: this.#deliveries.delivered,
      unsettled: this.#deliveries.unsettled,
      subscriptions: this.#subscriber.size,
      framesOut: this.#conn.framesOut,
      bytesOut: this.#conn.bytesOut,
    };
  }

  // ---- publishing ---------------------------------------------------------------------------

  /**
   * Publishes one message to `destination` (`/topic/<key>`, `/queue/<name>`,
   * `/exchange/<exchange>/<key>`). Resolves when the broker confirmed it (with confirms off: once it
   * is queued for the socket). Rejects with a typed error when the broker refused it
   * (SaturatedError: retry later; NotFoundError: no such exchange; TooLargeError; …) or
   * ConnectionLostError when the connection dropped first (republish for at-least-once).
   *
   * Publishes issued without awaiting each other travel in one frame (one PUBLISH op each); frames
   * go out at the end of the current turn or when full (`batchMaxMessages`, `batchMaxBytes`).
   * Without publish credit the message waits in the client (in order) until the broker grants
   * more; with `maxPendingBytes` already waiting it rejects with SaturatedError at once.
   */
  publish(destination: string, payload: Payload, options?: PublishOptions): Promise<void> {
    return this.#publisher.publish(destination, payload, options);
  }

  /**
   * Publishes without waiting for the outcome (still batched, still confirmed when confirms are
   * on, still held back by the broker's flow control). Argument errors throw, and so does
   * SaturatedError when `maxPendingBytes` of publishes already wait for credit: that is the signal
   * to slow down. A refusal later is reported by the next flush() and on 'error'.
   */
  publishNoWait(destination: string, payload: Payload, options?: PublishOptions): void {
    this.#publisher.publishNoWait(destination, payload, options);
  }

  /**
   * Sends everything pending (publishes waiting for credit included, as credit arrives) and
   * resolves when every publish issued so far is confirmed. Rejects with the first failure among
   * fire-and-forget publishes since the previous flush(), or with ConnectionLostError if the
   * connection dropped with publishes unconfirmed. With confirms off it resolves once the broker
   * has routed every earlier publish (a FLUSH round trip).
   */
  flush(): Promise<void> {
    return this.#publisher.flush();
  }

  // ---- subscribing --------------------------------------------------------------------------

  /**
   * Subscribes to `destination`: `/queue/<name>` consumes that queue (declared on first use; several
   * consumers take turns), `/topic/<pattern>` and `/exchange/<exchange>/<pattern>` get every
   * matching message through a private queue. Resolves once the broker has the consumer. Without
   * `handler`, iterate the subscription (`for await`); with one, it is called per message, one at a
   * time (see subscription.ts for buffering and backpressure).
   */
  subscribe(destination: string, options: SubscribeOptions = {}, handler?: MessageHandler): Promise<Subscription> {
    return this.#subscriber.subscribe(destination, options, handler);
  }

  // ---- settling -----------------------------------------------------------------------------

  /**
   * Acknowledges client-ack delivery `tag` (with `multiple`, every unsettled delivery up to it; tag
   * 0 with `multiple`: all). Throws DeliveryTagError locally, sending nothing, for a stale or
   * unknown tag.
   */
  ack(tag: number, options: SettleOptions = {}): void {
    this.#deliveries.settle(tag, options.multiple === true, true, false, undefined);
  }

  /** Rejects client-ack delivery `tag` (AMQP basic.nack); requeued unless `requeue: false`. */
  nack(tag: number, options: ClientNackOptions = {}): void {
    this.#deliveries.settle(tag, options.multiple === true, false, options.requeue ?? true, undefined);
  }

  // ---- topology -----------------------------------------------------------------------------

  /** Declares an exchange (`passive`: only checks it exists, NotFoundError if not). Re-declared after a reconnect. */
  declareExchange(name: string, type: ExchangeType | string, options: ExchangeDeclareOptions = {}): Promise<void> {
    return this.#topology.declareExchange(name, type, options);
  }

  /** Deletes an exchange (`ifUnused`: PreconditionFailedError while it has bindings). */
  deleteExchange(name: string, options: { ifUnused?: boolean } = {}): Promise<void> {
    return this.#topology.deleteExchange(name, options);
  }

  /**
   * Declares a queue; `''` asks the broker for a name (`amq.gen-…`). Resolves to its name and
   * counts. The result's `queue` always reads the queue's current name: a server-named queue gets
   * a new one when it is re-declared after a reconnect ('queueRenamed'). Note that the broker
   * reserves `amq.` names in destinations, so a server-named queue can be bound and inspected
   * here but not consumed through `/queue/…`.
   */
  declareQueue(name: string, options: QueueDeclareOptions = {}): Promise<DeclareQueueResult> {
    return this.#topology.declareQueue(name, options);
  }

  /** Deletes a queue; resolves to the number of messages deleted with it. Its consumers are cancelled. */
  deleteQueue(name: string, options: QueueDeleteOptions = {}): Promise<{ messageCount: number }> {
    return this.#topology.deleteQueue(name, options);
  }

  /** Removes a queue's ready messages; resolves to how many. */
  purgeQueue(name: string): Promise<{ messageCount: number }> {
    return this.#topology.purgeQueue(name);
  }

  /** Binds `queue` to `exchange` with `routingKey` (a pattern for topic exchanges; `args` e.g. x-match for headers). */
  bindQueue(queue: string, exchange: string, routingKey: string, args?: HeaderTable): Promise<void> {
    return this.#topology.bindQueue(queue, exchange, routingKey, args);
  }

  unbindQueue(queue: string, exchange: string, routingKey: string, args?: HeaderTable): Promise<void> {
    return this.#topology.unbindQueue(queue, exchange, routingKey, args);
  }

  /** Exchange-to-exchange binding: messages `source` routes with `routingKey` also go to `destination`. */
  bindExchange(destination: string, source: string, routingKey: string, args?: HeaderTable): Promise<void> {
    return this.#topology.bindExchange(destination, source, routingKey, args);
  }

  unbindExchange(destination: string, source: string, routingKey: string, args?: HeaderTable): Promise<void> {
    return this.#topology.unbindExchange(destination, source, routingKey, args);
  }

  // ---- closing ------------------------------------------------------------------------------

  /**
   * Closes the client: new operations are refused with ConnectionClosedError, publishes already
   * issued get up to `closeTimeoutMs` to be sent (those waiting for publish credit) and confirmed,
   * then the socket closes; what still waits for credit then fails with ConnectionClosedError.
   * Subscriptions end (iterators finish after their buffered auto-ack messages). Safe to call more
   * than once.
   */
  close(): Promise<void> {
    if (this.#closePromise !== null) return this.#closePromise;
    const wasReady = this.#session.state === 'ready';
    this.#session.state = this.#session.state === 'closed' ? 'closed' : 'closing';
    const notSent = (): ConnectionClosedError =>
      new ConnectionClosedError('the client was closed before this operation could be sent', { op: 'PUBLISH' });
    this.#session.failDeferred(new ConnectionClosedError('the client was closed before this operation could be sent'));
    if (!wasReady) this.#publisher.failWaiting(notSent());
    this.#closePromise = (async () => {
      const confirmed = wasReady ? this.#publisher.confirmedBeforeClose() : null;
      if (confirmed !== null) {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          confirmed,
          new Promise<void>((resolve) => {
            timer = setTimeout(resolve, this.#options.closeTimeoutMs);
          }),
        ]);
        clearTimeout(timer);
      }
      this.#publisher.failWaiting(notSent());
      await this.#conn.close();
    })();
    return this.#closePromise;
  }

  /** An error no call is waiting for: the 'error' event, else the logger, else a process warning (never silent, never a throw). */
  #report(err: ShardmqError): void {
    if (this.emit('error', err)) return;
    if (this.#options.logger !== SILENT_LOGGER)
      this.#options.logger.warn({ err, code: err.code }, 'shardmq client error (no error listener)');
    else process.emitWarning(`${err.name} (${err.code}): ${err.message}`, { code: 'SHARDMQ_CLIENT_ERROR' });
  }

  #selectConfirms(): Promise<unknown> {
    return this.#session.send(Opcode.CONFIRM_SELECT, 16, (w, id) => w.confirmSelect(id));
  }

  // ---- internals: the connection's life -------------------------------------------------------

  #opened(reconnected: boolean): void {
    this.#publisher.socketOpened();
    if (!reconnected) return; // start() does the first connection's setup
    this.#session.state = 'restoring';
    this.#restore().then(
      () => {
        if (this.#session.state !== 'restoring') return;
        this.#session.state = 'ready';
        this.#conn.resetBackoff();
        const downtimeMs = Date.now() - this.#downSince;
        this.#options.logger.info({ url: this.#conn.url, downtimeMs }, 'shardmq client reconnected');
        this.#publisher.ready(); // publishes that waited for credit were issued before anything deferred
        this.#session.drainDeferred();
        this.emit('reconnected', { downtimeMs });
      },
      (err: unknown) => {
        // A drop during the restore (#lost has run and another attempt is on its way), or close().
        if (err instanceof ConnectionError) return;
        this.#report(
          err instanceof ShardmqError
            ? err
            : new ShardmqError('internal', `restoring the connection failed: ${String(err)}`, { cause: err }),
        );
        this.#conn.dropSocket(err);
      },
    );
  }

  /** Re-establishes confirms, topology and subscriptions on a new socket, at most RESTORE_WINDOW requests outstanding. */
  async #restore(): Promise<void> {
    const first: Array<() => Promise<unknown>> = [];
    if (this.#options.confirms) first.push(() => this.#selectConfirms());
    first.push(...this.#topology.redeclare());
    await runWindowed(first);
    await runWindowed([...this.#topology.rebind(), ...this.#subscriber.resubscribe()]);
  }

  #lost(error: ConnectionLostError): void {
    if (this.#session.ending) return;
    this.#session.state = 'reconnecting';
    this.#downSince = Date.now();
    this.#options.logger.warn({ url: this.#conn.url, err: error.cause }, 'shardmq client lost its connection; reconnecting');
    this.#session.requests.failAll(
      (op) =>
        new ConnectionLostError(`the connection dropped before ${op} was answered; it may or may not have been applied`, {
          cause: error.cause,
          op,
        }),
    );
    this.#publisher.connectionLost(error.cause);
    this.#invalidateTags();
    this.emit('disconnected', { error });
  }

  /** Every tag delivered so far is stale (the broker requeued what was unsettled) and no subscription is on the wire. */
  #invalidateTags(): void {
    this.#deliveries.invalidate();
    this.#subscriber.offWire();
  }

  #finalize(error: ShardmqError | undefined): void {
    if (this.#session.state === 'closed') return;
    this.#session.state = 'closed';
    const closed = (op?: string): ShardmqError =>
      error ?? new ConnectionClosedError('the client closed before this was answered', op === undefined ? undefined : { op });
    this.#session.requests.failAll((op) => closed(op));
    this.#publisher.failAll(closed('PUBLISH'));
    this.#session.failDeferred(closed());
    this.#invalidateTags();
    this.#subscriber.endAll(error);
    if (error !== undefined) this.#options.logger.error({ err: error }, 'shardmq client gave up reconnecting');
    this.emit('close', error === undefined ? {} : { error });
  }

  // ---- internals: what the broker sends -------------------------------------------------------

  #dispatcher(): BinaryClientDispatcher {
    return {
      processDeliver: (ev) => this.#subscriber.deliver(ev),
      processConfirm: (ev) => this.#publisher.confirmArrived(ev),
      processOk: (ev) => {
        if (!this.#session.requests.ok(ev))
          this.#options.logger.warn({ requestId: ev.requestId }, 'OK for a request this client does not know');
      },
      processError: (ev) => {
        if (ev.requestId === 0) this.#publisher.errorArrived(ev);
        else if (!this.#session.requests.error(ev.requestId, ev.code, ev.message)) this.#report(errorFromServer(ev.code, ev.message));
      },
      processCancel: (ev) => this.#subscriber.cancelled(ev),
      processCredit: (ev) => this.#publisher.creditArrived(ev),
      processDropped: (ev) => this.#subscriber.dropped(ev),
      processStream: (ev) => this.#subscriber.stream(ev),
    };
  }
}
