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
 */
import type { HeaderTable } from '../protocol/field-table.js';
import type { MessageProperties } from '../protocol/properties.js';
import { encodeProperties, encodedTableLength } from '../protocol/properties.js';
import { DestinationError, parseDestination } from '../protocol/destination.js';
import { Opcode, utf8Length, type AckMode, type BinaryClientDispatcher, type CancelEvent, type ConfirmEvent, type DeliverEvent, type ErrorEvent, type OkEvent } from '../protocol/ws-binary.js';
import type { BinaryFrameWriter, ExchangeDeclareOptions, QueueDeclareOptions, QueueDeleteOptions } from '../protocol/ws-binary-encode.js';
import { Connection } from './connection.js';
import { PublishConfirms, type SettleOutcome } from './confirms.js';
import { TypedEmitter } from './emitter.js';
import {
  BadDestinationError,
  ConnectFailedError,
  ConnectionClosedError,
  ConnectionError,
  ConnectionLostError,
  DeliveryTagError,
  HandlerError,
  SaturatedError,
  ShardmqError,
  SubscriptionCancelledError,
  TooLargeError,
  errorFromServer,
} from './errors.js';
import { Message, type MessageSettler } from './message.js';
import { SILENT_LOGGER, resolveOptions, type ClientOptions, type ResolvedOptions } from './options.js';
import { RequestTable } from './requests.js';
import { SubscriptionCore, type MessageHandler, type SubscribeOptions, type Subscription, type SubscriptionOwner } from './subscription.js';
import { QueueDeclaration, TopologyRecorder, queueName, type DeclareQueueResult } from './topology.js';

export type Payload = string | Uint8Array;

export interface PublishOptions {
  /** AMQP basic properties: contentType, headers (nested tables allowed), priority, deliveryMode, expiration… */
  properties?: MessageProperties;
}

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

type State = 'connecting' | 'ready' | 'restoring' | 'reconnecting' | 'closing' | 'closed';

/** An operation waiting for the connection to be ready. */
interface Deferred {
  readonly run: () => void;
  readonly fail: (err: ShardmqError) => void;
  readonly bytes: number;
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
const NOT_PUBLISH_CODES = new Set(['unknown_tag', 'unknown_subscription', 'duplicate_subscription', 'shard_restarted', 'consumer_cancelled']);

const textEncoder = new TextEncoder();

/**
 * Connects to a shardmq broker at `url` (`http://host:port`, or a `ws://host:port/v1/ws` URL) and
 * resolves once the binary protocol is up (with confirms on, unless disabled). Rejects with
 * ConnectFailedError when the first connection fails; later drops reconnect.
 */
export async function connect(url: string, options: ClientOptions = {}): Promise<ShardmqClient> {
  const client = new ShardmqClient(url, resolveOptions(options));
  await client.start();
  return client;
}

export class ShardmqClient extends TypedEmitter<ClientEvents> {
  readonly #options: ResolvedOptions;
  /** What subscriptions and messages call back into (kept off the public surface). */
  readonly #owner: SubscriptionOwner = {
    unsubscribe: (core) => this.#unsubscribe(core),
    setBlocked: (core, blocked) => this.#setBlocked(core, blocked),
    handlerFailed: (core, message, err) => this.#report(new HandlerError(core.destination, message.tag, err)),
  };
  readonly #settler: MessageSettler = {
    settleMessage: (message, ack, requeue) => this.#settle(message.tag, false, ack, requeue, message),
  };
  readonly #conn: Connection;
  readonly #requests = new RequestTable();
  readonly #confirms = new PublishConfirms();
  readonly #topology = new TopologyRecorder();
  readonly #subs = new Map<number, SubscriptionCore>();
  readonly #blocked = new Set<SubscriptionCore>();
  /** Client-ack deliveries not yet settled, by tag (insertion = tag order, as MULTIPLE needs). */
  readonly #unsettled = new Map<number, Message>();
  #state: State = 'connecting';
  #deferred: Deferred[] = [];
  #deferredBytes = 0;
  #frame: FrameEntry[] = [];
  #nextSubscription = 0;
  /** Tags of the current connection are `#tagBase + broker tag`; everything ≤ #tagBase is stale. */
  #tagBase = 0;
  #lastTag = 0;
  #downSince = 0;
  #closePromise: Promise<void> | null = null;
  #published = 0;
  #delivered = 0;

  /** Use {@link connect}. */
  constructor(url: string, options: ResolvedOptions) {
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
      },
      {
        dispatcher: this.#dispatcher(),
        frameEnd: () => this.#frameEnd(),
        opened: (reconnected) => this.#opened(reconnected),
        lost: (error) => this.#lost(error),
        reconnecting: (attempt, delayMs, error) => this.emit('reconnecting', { attempt, delayMs, error }),
        closed: (error) => this.#finalize(error),
        error: (error) => this.#report(error),
      },
    );
  }

  /** @internal Opens the first connection (connect() calls it). */
  async start(): Promise<void> {
    await this.#conn.start();
    try {
      if (this.#options.confirms) await this.#rawRequest(Opcode.CONFIRM_SELECT, 16, (w, id) => w.confirmSelect(id));
    } catch (err) {
      await this.close().catch(() => undefined);
      throw new ConnectFailedError(`connected to ${this.#conn.url} but could not turn confirms on: ${(err as Error).message}`, { cause: err });
    }
    if (this.#state === 'connecting') {
      this.#state = 'ready';
      this.#conn.resetBackoff();
    }
  }

  /** The WebSocket endpoint. */
  get url(): string {
    return this.#conn.url;
  }

  /** True while connected with everything restored (operations go out at once). */
  get connected(): boolean {
    return this.#state === 'ready';
  }

  get closed(): boolean {
    return this.#state === 'closed';
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
  } {
    return {
      readPaused: this.#conn.paused,
      published: this.#published,
      unconfirmed: this.#confirms.unconfirmed,
      delivered: this.#delivered,
      unsettled: this.#unsettled.size,
      subscriptions: this.#subs.size,
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
   */
  publish(destination: string, payload: Payload, options?: PublishOptions): Promise<void> {
    let p: PreparedPublish;
    try {
      p = this.#prepare(destination, payload, options);
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise<void>((resolve, reject) => {
      const settle = { resolve, reject };
      if (this.#state === 'ready') this.#writePublish(p, settle);
      else this.#deferPublish(p, settle);
    });
  }

  /**
   * Publishes without waiting for the outcome (still batched, still confirmed when confirms are
   * on). Argument errors throw; a refusal later is reported by the next flush() and on 'error'.
   */
  publishNoWait(destination: string, payload: Payload, options?: PublishOptions): void {
    const p = this.#prepare(destination, payload, options);
    if (this.#state === 'ready') this.#writePublish(p, null);
    else this.#deferPublish(p, null);
  }

  /**
   * Sends everything pending and resolves when every publish issued so far is confirmed. Rejects
   * with the first failure among fire-and-forget publishes since the previous flush(), or with
   * ConnectionLostError if the connection dropped with publishes unconfirmed. With confirms off it
   * resolves after a round trip to the broker (which has then read every earlier op).
   */
  flush(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const run = (): void => {
        this.#conn.flush();
        if (this.#options.confirms) {
          this.#confirms.waitForAll().then(resolve, reject);
        } else {
          this.#sendRequest(Opcode.DECLARE_EXCHANGE, 64, (w, id) => w.declareExchange(id, 'amq.topic', 'topic', { passive: true })).then(() => resolve(), reject);
        }
      };
      if (this.#state === 'ready') run();
      else this.#whenReady(0, run, reject);
    });
  }

  // ---- subscribing --------------------------------------------------------------------------

  /**
   * Subscribes to `destination`: `/queue/<name>` consumes that queue (declared on first use; several
   * consumers take turns), `/topic/<pattern>` and `/exchange/<exchange>/<pattern>` get every
   * matching message through a private queue. Resolves once the broker has the consumer. Without
   * `handler`, iterate the subscription (`for await`); with one, it is called per message, one at a
   * time (see subscription.ts for buffering and backpressure).
   */
  async subscribe(destination: string, options: SubscribeOptions = {}, handler?: MessageHandler): Promise<Subscription> {
    checkDestination(destination, 'SUBSCRIBE');
    const ackMode: AckMode = options.ack ?? 'auto';
    if (ackMode !== 'auto' && ackMode !== 'client') throw new TypeError(`options.ack must be "auto" or "client" (got ${JSON.stringify(ackMode)})`);
    const prefetch = ackMode === 'client' ? (options.prefetch ?? this.#options.prefetch) : 0;
    if (!Number.isInteger(prefetch) || prefetch < 0 || prefetch > 0xffff_ffff) {
      throw new RangeError(`options.prefetch must be an integer from 0 to 2^32 - 1 (got ${String(options.prefetch)})`);
    }
    const bufferSize = options.bufferSize ?? (ackMode === 'client' && prefetch > 0 ? prefetch : this.#options.bufferSize);
    if (!Number.isInteger(bufferSize) || bufferSize < 1) throw new RangeError(`options.bufferSize must be an integer ≥ 1 (got ${String(bufferSize)})`);
    const overflow = options.overflow ?? 'block';
    if (overflow !== 'block' && overflow !== 'dropOldest') throw new TypeError(`options.overflow must be "block" or "dropOldest" (got ${JSON.stringify(overflow)})`);
    if (handler !== undefined && typeof handler !== 'function') throw new TypeError(`handler must be a function (got ${typeof handler})`);
    if (this.#state === 'closing' || this.#state === 'closed') throw new ConnectionClosedError(undefined, { op: 'SUBSCRIBE' });

    const core = new SubscriptionCore(this.#owner, this.#allocateSubscriptionId(), destination, ackMode, prefetch, bufferSize, overflow, handler);
    // Registered before SUBSCRIBE goes out: DELIVERs may arrive ahead of its OK.
    this.#subs.set(core.id, core);
    try {
      await new Promise<OkEvent>((resolve, reject) => {
        const run = (): void => {
          core.state = 'subscribing';
          core.onWire = true;
          this.#sendRequest(Opcode.SUBSCRIBE, 32 + 3 * destination.length, (w, id) => w.subscribe(id, core.id, core.destination, core.ackMode, core.prefetch)).then(resolve, reject);
        };
        if (this.#state === 'ready') run();
        else this.#whenReady(0, run, reject);
      });
    } catch (err) {
      this.#subs.delete(core.id);
      core.end({ reason: 'failed', error: err as ShardmqError });
      throw err;
    }
    if (core.state === 'subscribing') {
      core.state = 'active';
      core.refreshBlocked();
    }
    return core.facade;
  }

  /** Subscription.unsubscribe() and leaving a for-await loop come here. */
  #unsubscribe(core: SubscriptionCore): Promise<void> {
    if (core.ended) return Promise.resolve();
    if (core.unsubscribing !== null) return core.unsubscribing;
    const finish = (): void => {
      this.#subs.delete(core.id);
      this.#forgetDeliveries(core);
      core.end({ reason: 'unsubscribed' });
    };
    if (core.state !== 'active' || !core.onWire || !this.#conn.isOpen) {
      // Not on the broker: never sent, or the connection dropped (and the restore skips it now).
      core.state = 'unsubscribing';
      finish();
      return Promise.resolve();
    }
    core.state = 'unsubscribing';
    core.unsubscribing = this.#sendRequest(Opcode.UNSUBSCRIBE, 16, (w, id) => w.unsubscribe(id, core.id)).then(
      () => finish(),
      (err: unknown) => {
        // Lost connection or an unknown subscription: either way the broker has no such consumer now.
        finish();
        if (!(err instanceof ConnectionError)) this.#report(err as ShardmqError);
      },
    );
    return core.unsubscribing;
  }

  #setBlocked(core: SubscriptionCore, blocked: boolean): void {
    if (blocked) this.#blocked.add(core);
    else this.#blocked.delete(core);
    if (this.#blocked.size > 0) this.#conn.pause();
    else this.#conn.resume();
  }

  // ---- settling -----------------------------------------------------------------------------

  /**
   * Acknowledges client-ack delivery `tag` (with `multiple`, every unsettled delivery up to it; tag
   * 0 with `multiple`: all). Throws DeliveryTagError locally, sending nothing, for a stale or
   * unknown tag.
   */
  ack(tag: number, options: SettleOptions = {}): void {
    this.#settle(tag, options.multiple === true, true, false, undefined);
  }

  /** Rejects client-ack delivery `tag` (AMQP basic.nack); requeued unless `requeue: false`. */
  nack(tag: number, options: ClientNackOptions = {}): void {
    this.#settle(tag, options.multiple === true, false, options.requeue ?? true, undefined);
  }

  #settle(tag: number, multiple: boolean, ack: boolean, requeue: boolean, message: Message | undefined): void {
    if (!Number.isSafeInteger(tag) || tag < 0) throw new RangeError(`tag must be an integer ≥ 0 (got ${String(tag)})`);
    if (this.#state === 'closed') throw new ConnectionClosedError(undefined, { op: ack ? 'ACK' : 'NACK' });
    const what = ack ? 'ack' : 'nack';
    if (multiple && tag === 0) {
      for (const m of this.#unsettled.values()) m.markSettled();
      this.#unsettled.clear();
      if (this.#conn.isOpen) this.#writeSettle(0, true, ack, requeue);
      return;
    }
    if (tag <= this.#tagBase) {
      throw new DeliveryTagError('stale_tag', tag, `cannot ${what} delivery tag ${tag}: it was delivered on an earlier connection; the broker requeued that message`);
    }
    if (!this.#conn.isOpen) {
      // Closing (a drop would have made the tag stale above): the broker requeues it when the socket goes.
      throw new ConnectionClosedError(`cannot ${what} delivery tag ${tag}: the client is closing; the broker will requeue it`, { op: ack ? 'ACK' : 'NACK' });
    }
    if (!multiple) {
      const m = this.#unsettled.get(tag);
      if (m === undefined || (message !== undefined && m !== message)) {
        if (message !== undefined && !message.subscription.active) {
          throw new DeliveryTagError('stale_tag', tag, `cannot ${what} delivery tag ${tag}: its subscription ended and the broker requeued the message`);
        }
        throw new DeliveryTagError('unknown_tag', tag, `cannot ${what} delivery tag ${tag}: not an unsettled client-ack delivery of this client`);
      }
      this.#unsettled.delete(tag);
      m.markSettled();
    } else {
      let n = 0;
      for (const [t, m] of this.#unsettled) {
        if (t > tag) break;
        this.#unsettled.delete(t);
        m.markSettled();
        n++;
      }
      if (n === 0) throw new DeliveryTagError('unknown_tag', tag, `cannot ${what} up to delivery tag ${tag}: no unsettled client-ack delivery at or below it`);
    }
    this.#writeSettle(tag - this.#tagBase, multiple, ack, requeue);
  }

  #writeSettle(brokerTag: number, multiple: boolean, ack: boolean, requeue: boolean): void {
    this.#conn.write(14, (w) => {
      if (ack) w.ack(brokerTag, multiple);
      else w.nack(brokerTag, multiple, requeue);
    });
  }

  // ---- topology -----------------------------------------------------------------------------

  /** Declares an exchange (`passive`: only checks it exists, NotFoundError if not). Re-declared after a reconnect. */
  async declareExchange(name: string, type: ExchangeType | string, options: ExchangeDeclareOptions = {}): Promise<void> {
    await this.#request(Opcode.DECLARE_EXCHANGE, 64 + 3 * (name.length + type.length) + tableSize(options.arguments), (w, id) => w.declareExchange(id, name, type, options));
    this.#topology.declaredExchange(name, type, options);
  }

  /** Deletes an exchange (`ifUnused`: PreconditionFailedError while it has bindings). */
  async deleteExchange(name: string, options: { ifUnused?: boolean } = {}): Promise<void> {
    await this.#request(Opcode.DELETE_EXCHANGE, 64 + 3 * name.length, (w, id) => w.deleteExchange(id, name, options.ifUnused === true));
    this.#topology.deletedExchange(name);
  }

  /**
   * Declares a queue; `''` asks the broker for a name (`amq.gen-…`). Resolves to its name and
   * counts. The result's `queue` always reads the queue's current name: a server-named queue gets
   * a new one when it is re-declared after a reconnect ('queueRenamed'). Note that the broker
   * reserves `amq.` names in destinations, so a server-named queue can be bound and inspected
   * here but not consumed through `/queue/…`.
   */
  async declareQueue(name: string, options: QueueDeclareOptions = {}): Promise<DeclareQueueResult> {
    const ok = await this.#request(Opcode.DECLARE_QUEUE, 64 + 3 * name.length + tableSize(options.arguments), (w, id) => w.declareQueue(id, name, options));
    const record = this.#topology.declaredQueue(name, ok.name, options);
    return new QueueDeclaration(record, ok.name, ok.messageCount, ok.consumerCount);
  }

  /** Deletes a queue; resolves to the number of messages deleted with it. Its consumers are cancelled. */
  async deleteQueue(name: string, options: QueueDeleteOptions = {}): Promise<{ messageCount: number }> {
    const ok = await this.#request(Opcode.DELETE_QUEUE, 64 + 3 * name.length, (w, id) => w.deleteQueue(id, name, options));
    this.#topology.deletedQueue(name);
    return { messageCount: ok.messageCount };
  }

  /** Removes a queue's ready messages; resolves to how many. */
  async purgeQueue(name: string): Promise<{ messageCount: number }> {
    const ok = await this.#request(Opcode.PURGE_QUEUE, 64 + 3 * name.length, (w, id) => w.purgeQueue(id, name));
    return { messageCount: ok.messageCount };
  }

  /** Binds `queue` to `exchange` with `routingKey` (a pattern for topic exchanges; `args` e.g. x-match for headers). */
  async bindQueue(queue: string, exchange: string, routingKey: string, args?: HeaderTable): Promise<void> {
    await this.#request(Opcode.BIND_QUEUE, 64 + 3 * (queue.length + exchange.length + routingKey.length) + tableSize(args), (w, id) => w.bindQueue(id, queue, exchange, routingKey, args));
    this.#topology.boundQueue(queue, exchange, routingKey, args);
  }

  async unbindQueue(queue: string, exchange: string, routingKey: string, args?: HeaderTable): Promise<void> {
    await this.#request(Opcode.UNBIND_QUEUE, 64 + 3 * (queue.length + exchange.length + routingKey.length) + tableSize(args), (w, id) => w.unbindQueue(id, queue, exchange, routingKey, args));
    this.#topology.unboundQueue(queue, exchange, routingKey, args);
  }

  /** Exchange-to-exchange binding: messages `source` routes with `routingKey` also go to `destination`. */
  async bindExchange(destination: string, source: string, routingKey: string, args?: HeaderTable): Promise<void> {
    await this.#request(Opcode.BIND_EXCHANGE, 64 + 3 * (destination.length + source.length + routingKey.length) + tableSize(args), (w, id) => w.bindExchange(id, destination, source, routingKey, args));
    this.#topology.boundExchange(destination, source, routingKey, args);
  }

  async unbindExchange(destination: string, source: string, routingKey: string, args?: HeaderTable): Promise<void> {
    await this.#request(Opcode.UNBIND_EXCHANGE, 64 + 3 * (destination.length + source.length + routingKey.length) + tableSize(args), (w, id) => w.unbindExchange(id, destination, source, routingKey, args));
    this.#topology.unboundExchange(destination, source, routingKey, args);
  }

  // ---- closing ------------------------------------------------------------------------------

  /**
   * Closes the client: new operations are refused with ConnectionClosedError, publishes already
   * sent get up to `closeTimeoutMs` to be confirmed, then the socket closes. Subscriptions end
   * (iterators finish after their buffered auto-ack messages). Safe to call more than once.
   */
  close(): Promise<void> {
    if (this.#closePromise !== null) return this.#closePromise;
    const wasReady = this.#state === 'ready';
    this.#state = this.#state === 'closed' ? 'closed' : 'closing';
    this.#failDeferred(new ConnectionClosedError('the client was closed before this operation could be sent'));
    this.#closePromise = (async () => {
      if (wasReady && this.#options.confirms && this.#confirms.unconfirmed > 0) {
        this.#conn.flush();
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          this.#confirms.waitForAll().catch(() => undefined),
          new Promise<void>((resolve) => {
            timer = setTimeout(resolve, this.#options.closeTimeoutMs);
          }),
        ]);
        clearTimeout(timer);
      }
      await this.#conn.close();
    })();
    return this.#closePromise;
  }

  // ---- internals: sending ---------------------------------------------------------------------

  #prepare(destination: string, payload: Payload, options: PublishOptions | undefined): PreparedPublish {
    if (this.#state === 'closing' || this.#state === 'closed') throw new ConnectionClosedError(undefined, { op: 'PUBLISH' });
    checkDestination(destination, 'PUBLISH');
    let bytes: Uint8Array;
    if (typeof payload === 'string') bytes = textEncoder.encode(payload);
    else if (payload instanceof Uint8Array) bytes = payload;
    else throw new TypeError(`payload must be a string or a Uint8Array (got ${payload === null ? 'null' : typeof payload})`);
    const props = options?.properties;
    const properties = props == null ? null : encodeProperties(props);
    const size = 8 + utf8Length(destination) + (properties === null ? 0 : 4 + properties.length) + bytes.length;
    if (size > this.#options.maxFrameBytes) {
      throw new TooLargeError('too_large', `a ${bytes.length}-byte message makes a ${size}-byte op, over maxFrameBytes ${this.#options.maxFrameBytes}`, { op: 'PUBLISH' });
    }
    return { destination, payload: bytes, properties, size };
  }

  #writePublish(p: PreparedPublish, settle: { resolve(): void; reject(err: ShardmqError): void } | null): void {
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
  #deferPublish(p: PreparedPublish, settle: { resolve(): void; reject(err: ShardmqError): void } | null): void {
    const copy: PreparedPublish = p.payload.length === 0 ? p : { ...p, payload: new Uint8Array(p.payload) };
    this.#whenReady(
      copy.payload.length,
      () => this.#writePublish(copy, settle),
      (err) => (settle === null ? this.#noWaitFailed(err) : settle.reject(err)),
    );
  }

  /** A fire-and-forget publish failed before it got a confirm number: the next flush() and the 'error' event say so. */
  #noWaitFailed(err: ShardmqError): void {
    this.#confirms.recordFailure(err);
    this.#report(err);
  }

  /** A request that waits for the connection when it is not ready (user operations). */
  #request(op: number, sizeHint: number, write: (w: BinaryFrameWriter, id: number) => void): Promise<OkEvent> {
    if (this.#state === 'ready') return this.#sendRequest(op, sizeHint, write);
    return new Promise<OkEvent>((resolve, reject) => {
      this.#whenReady(0, () => this.#sendRequest(op, sizeHint, write).then(resolve, reject), reject);
    });
  }

  /** A request written now, ready or not (restoring), failing at once when no socket is open. */
  #rawRequest(op: number, sizeHint: number, write: (w: BinaryFrameWriter, id: number) => void): Promise<OkEvent> {
    return this.#sendRequest(op, sizeHint, write);
  }

  #sendRequest(op: number, sizeHint: number, write: (w: BinaryFrameWriter, id: number) => void): Promise<OkEvent> {
    return new Promise<OkEvent>((resolve, reject) => {
      if (!this.#conn.isOpen) {
        reject(this.#state === 'closing' || this.#state === 'closed' ? new ConnectionClosedError() : new ConnectionLostError('not connected'));
        return;
      }
      const id = this.#requests.add(op, resolve, reject);
      try {
        this.#conn.write(sizeHint, (w) => write(w, id));
      } catch (err) {
        this.#requests.remove(id);
        reject(err);
      }
    });
  }

  /** Runs `run` now when ready, else when the connection is back (fails it when the client closes). */
  #whenReady(bytes: number, run: () => void, fail: (err: ShardmqError) => void): void {
    if (this.#state === 'ready') {
      run();
      return;
    }
    if (this.#state === 'closing' || this.#state === 'closed') {
      fail(new ConnectionClosedError());
      return;
    }
    if (bytes > 0 && this.#deferredBytes + bytes > this.#options.reconnectBufferBytes) {
      fail(new SaturatedError('saturated', `not connected and the reconnect buffer is full (reconnectBufferBytes ${this.#options.reconnectBufferBytes}); retry later`, { op: 'PUBLISH' }));
      return;
    }
    this.#deferred.push({ run, fail, bytes });
    this.#deferredBytes += bytes;
  }

  #drainDeferred(): void {
    const list = this.#deferred;
    this.#deferred = [];
    this.#deferredBytes = 0;
    for (const d of list) {
      if (this.#state !== 'ready') {
        // Dropped again while draining: keep the rest for the next connection.
        this.#deferred.push(d);
        this.#deferredBytes += d.bytes;
        continue;
      }
      d.run();
    }
  }

  #failDeferred(err: ShardmqError): void {
    const list = this.#deferred;
    this.#deferred = [];
    this.#deferredBytes = 0;
    for (const d of list) d.fail(err);
  }

  #allocateSubscriptionId(): number {
    do {
      this.#nextSubscription = this.#nextSubscription >= 0xffff_ffff ? 1 : this.#nextSubscription + 1;
    } while (this.#subs.has(this.#nextSubscription));
    return this.#nextSubscription;
  }

  #forgetDeliveries(core: SubscriptionCore): void {
    for (const [tag, m] of this.#unsettled) if (m.subscription === core.facade) this.#unsettled.delete(tag);
    core.dropStale();
  }

  /** An error no call is waiting for: the 'error' event, else the logger, else a process warning (never silent, never a throw). */
  #report(err: ShardmqError): void {
    if (this.emit('error', err)) return;
    if (this.#options.logger !== SILENT_LOGGER) this.#options.logger.warn({ err, code: err.code }, 'shardmq client error (no error listener)');
    else process.emitWarning(`${err.name} (${err.code}): ${err.message}`, { code: 'SHARDMQ_CLIENT_ERROR' });
  }

  // ---- internals: the connection's life -------------------------------------------------------

  #opened(reconnected: boolean): void {
    if (!reconnected) return; // start() does the first connection's setup
    this.#state = 'restoring';
    this.#restore().then(
      () => {
        if (this.#state !== 'restoring') return;
        this.#state = 'ready';
        this.#conn.resetBackoff();
        const downtimeMs = Date.now() - this.#downSince;
        this.#options.logger.info({ url: this.#conn.url, downtimeMs }, 'shardmq client reconnected');
        this.#drainDeferred();
        this.emit('reconnected', { downtimeMs });
      },
      (err: unknown) => {
        // A drop during the restore (#lost has run and another attempt is on its way), or close().
        if (err instanceof ConnectionError) return;
        this.#report(err instanceof ShardmqError ? err : new ShardmqError('internal', `restoring the connection failed: ${String(err)}`, { cause: err }));
        this.#conn.dropSocket(err);
      },
    );
  }

  /** Re-establishes confirms, topology and subscriptions on a new socket. */
  async #restore(): Promise<void> {
    const softly = (what: string) => (err: unknown) => {
      if (err instanceof ConnectionError) throw err;
      this.#report(restoreError(err, what));
    };
    const first: Promise<unknown>[] = [];
    if (this.#options.confirms) first.push(this.#rawRequest(Opcode.CONFIRM_SELECT, 16, (w, id) => w.confirmSelect(id)));
    for (const x of this.#topology.exchanges.values()) {
      first.push(
        this.#rawRequest(Opcode.DECLARE_EXCHANGE, 1024 + tableSize(x.options.arguments), (w, id) => w.declareExchange(id, x.name, x.type, x.options)).catch(
          softly(`re-declaring exchange '${x.name}'`),
        ),
      );
    }
    for (const q of [...this.#topology.queues.values()]) {
      first.push(
        this.#rawRequest(Opcode.DECLARE_QUEUE, 1024 + tableSize(q.options.arguments), (w, id) => w.declareQueue(id, q.serverNamed ? '' : q.name, q.options)).then((ok) => {
          if (!q.serverNamed || ok.name === q.name) return;
          const previous = q.name;
          this.#topology.renamedQueue(q, ok.name);
          for (const core of this.#subs.values()) if (core.destination === '/queue/' + previous) core.destination = '/queue/' + ok.name;
          this.emit('queueRenamed', { previous, queue: ok.name });
        }, softly(`re-declaring queue '${q.name}'`)),
      );
    }
    await Promise.all(first);
    const second: Promise<unknown>[] = [];
    for (const b of this.#topology.bindings) {
      if (b.kind === 'queue') {
        const queue = queueName(b.queue);
        second.push(
          this.#rawRequest(Opcode.BIND_QUEUE, 1024 + tableSize(b.args), (w, id) => w.bindQueue(id, queue, b.exchange, b.routingKey, b.args)).catch(
            softly(`re-binding queue '${queue}' to '${b.exchange}' with '${b.routingKey}'`),
          ),
        );
      } else {
        second.push(
          this.#rawRequest(Opcode.BIND_EXCHANGE, 1024 + tableSize(b.args), (w, id) => w.bindExchange(id, b.destination, b.source, b.routingKey, b.args)).catch(
            softly(`re-binding exchange '${b.destination}' to '${b.source}' with '${b.routingKey}'`),
          ),
        );
      }
    }
    for (const core of [...this.#subs.values()]) {
      if (core.state !== 'active') continue;
      core.onWire = true;
      second.push(
        this.#rawRequest(Opcode.SUBSCRIBE, 32 + 3 * core.destination.length, (w, id) => w.subscribe(id, core.id, core.destination, core.ackMode, core.prefetch)).catch((err: unknown) => {
          if (err instanceof ConnectionError) throw err;
          this.#subs.delete(core.id);
          const error = restoreError(err, `re-subscribing to ${core.destination}`);
          core.end({ reason: 'failed', error });
          if (core.handler !== undefined) this.#report(error);
        }),
      );
    }
    await Promise.all(second);
  }

  #lost(error: ConnectionLostError): void {
    if (this.#state === 'closing' || this.#state === 'closed') return;
    this.#state = 'reconnecting';
    this.#downSince = Date.now();
    this.#frame = [];
    this.#options.logger.warn({ url: this.#conn.url, err: error.cause }, 'shardmq client lost its connection; reconnecting');
    this.#requests.failAll((op) => new ConnectionLostError(`the connection dropped before ${op} was answered; it may or may not have been applied`, { cause: error.cause, op }));
    this.#confirms.failAll(new ConnectionLostError('the connection dropped before the broker confirmed this publish; it may or may not have been taken (republish for at-least-once)', { cause: error.cause, op: 'PUBLISH' }));
    this.#invalidateTags();
    this.emit('disconnected', { error });
  }

  /** Every tag delivered so far is stale (the broker requeued what was unsettled) and no subscription is on the wire. */
  #invalidateTags(): void {
    this.#tagBase = this.#lastTag;
    this.#unsettled.clear();
    for (const core of this.#subs.values()) {
      core.onWire = false;
      core.dropStale();
    }
  }

  #finalize(error: ShardmqError | undefined): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    const closed = (op?: string): ShardmqError => error ?? new ConnectionClosedError('the client closed before this was answered', op === undefined ? undefined : { op });
    this.#requests.failAll((op) => closed(op));
    this.#confirms.failAll(closed('PUBLISH'));
    this.#failDeferred(closed());
    this.#invalidateTags();
    for (const core of [...this.#subs.values()]) core.end(error === undefined ? { reason: 'closed' } : { reason: 'closed', error });
    this.#subs.clear();
    this.#blocked.clear();
    if (error !== undefined) this.#options.logger.error({ err: error }, 'shardmq client gave up reconnecting');
    this.emit('close', error === undefined ? {} : { error });
  }

  // ---- internals: what the broker sends -------------------------------------------------------

  #dispatcher(): BinaryClientDispatcher {
    return {
      processDeliver: (ev) => this.#processDeliver(ev),
      processConfirm: (ev) => {
        this.#frame.push({ confirm: ev, group: -1 });
      },
      processOk: (ev) => {
        if (!this.#requests.ok(ev)) this.#options.logger.warn({ requestId: ev.requestId }, 'OK for a request this client does not know');
      },
      processError: (ev) => {
        if (ev.requestId === 0) this.#frame.push({ error: ev, consumed: false });
        else if (!this.#requests.error(ev.requestId, ev.code, ev.message)) this.#report(errorFromServer(ev.code, ev.message));
      },
      processCancel: (ev) => this.#processCancel(ev),
    };
  }

  #processDeliver(ev: DeliverEvent): void {
    const core = this.#subs.get(ev.subscriptionId);
    if (core === undefined) return; // it ended here first; the broker requeues client-ack deliveries
    const tag = this.#tagBase + ev.tag;
    if (tag > this.#lastTag) this.#lastTag = tag;
    this.#delivered++;
    // Copies: the event's views alias the socket's buffer, which a kept message would pin.
    const message = new Message(
      this.#settler,
      core.facade,
      core.ackMode,
      tag,
      ev.redelivered,
      ev.exchange,
      ev.routingKey,
      ev.properties === null ? null : new Uint8Array(ev.properties),
      new Uint8Array(ev.payload),
    );
    if (core.ackMode === 'client') this.#unsettled.set(tag, message);
    core.push(message);
  }

  #processCancel(ev: CancelEvent): void {
    const core = this.#subs.get(ev.subscriptionId);
    if (core === undefined) return;
    this.#subs.delete(core.id);
    this.#forgetDeliveries(core);
    const error = new SubscriptionCancelledError(ev.code, core.destination, `the broker cancelled the subscription to ${core.destination}: ${ev.message}`);
    core.end({ reason: 'cancelled', error });
    if (core.handler !== undefined) this.#report(error);
  }

  /**
   * Settles the frame's confirms in order, pairing each run of nacks with the request-less ERROR
   * that explains it. The broker writes a refused publish's ERROR right before or right after its
   * nacks (docs/protocol.md §6), so ERRORs and nack runs are paired in the order they alternate;
   * acks in between are transparent. Unpaired ERRORs go to the 'error' event, unexplained nacks get
   * a SaturatedError.
   */
  #frameEnd(): void {
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
            ? new SaturatedError('saturated', 'the broker nacked the publish (ring full, a refusing queue or a restarting shard); retry later', { op: 'PUBLISH' })
            : errorFromServer(why.code, why.message, 'PUBLISH');
        this.#confirms.settle(seq, multiple, error, outcomes[e.group]);
      } else if (!e.consumed) {
        this.#report(errorFromServer(e.error.code, e.error.message));
      }
    }
    for (let g = 0; g < groupErrors.length; g++) {
      const o = outcomes[g];
      if (o.rejected > 0 || o.failedNoWait === 0) continue;
      const why = groupErrors[g];
      this.#report(
        why === null
          ? new SaturatedError('saturated', `the broker nacked ${o.failedNoWait} fire-and-forget publish(es)`, { op: 'PUBLISH' })
          : errorFromServer(why.code, `${o.failedNoWait} fire-and-forget publish(es) refused: ${why.message}`, 'PUBLISH'),
      );
    }
  }
}

/** A failure while restoring, as the same typed error with what was being restored in its message. */
function restoreError(err: unknown, what: string): ShardmqError {
  if (!(err instanceof ShardmqError)) return new ShardmqError('internal', `after reconnecting, ${what} failed: ${String(err)}`, { cause: err });
  const e = errorFromServer(err.code, `after reconnecting, ${what} failed: ${err.message}`, err.op);
  (e as { cause?: unknown }).cause = err;
  return e;
}

function checkDestination(destination: string, op: string): void {
  if (typeof destination !== 'string') throw new TypeError(`destination must be a string (got ${typeof destination})`);
  try {
    parseDestination(destination);
  } catch (err) {
    if (err instanceof DestinationError) throw new BadDestinationError('bad_destination', err.message, { op });
    throw err;
  }
}

function tableSize(args: HeaderTable | undefined): number {
  return args === undefined ? 4 : encodedTableLength(args);
}
