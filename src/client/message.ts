/**
 * One delivered message. The payload is the client's own copy (never a view of a socket buffer, so
 * keeping a message does not pin the frame it came in; payloads up to 1 KiB share 16 KiB slabs, as
 * Node's small Buffers share its pool, so a kept one pins at most one slab); properties are decoded
 * on first access.
 */
import { decodeProperties, type MessageProperties } from '../protocol/properties.js';
import type { AckMode } from '../protocol/ws-binary.js';
import { DeliveryTagError, type ShardmqError } from './errors.js';

/**
 * The subscription a message came through, as a message exposes it. Subscription implements it;
 * declared here so that message.ts does not import subscription.ts, which imports message.ts.
 */
export interface MessageSubscription {
  /** The subscription id on the wire (unique per client, kept across reconnects). */
  readonly id: number;
  /** The destination subscribed to. */
  readonly destination: string;
  readonly ackMode: AckMode;
  /** False once the subscription ended. */
  readonly active: boolean;
  /** Ends the subscription (see Subscription.unsubscribe). */
  unsubscribe(): Promise<void>;
}

/** How a message reaches the client to settle it (the client implements this). */
export interface MessageSettler {
  /** Throws a typed error (DeliveryTagError, ConnectionClosedError) when the tag cannot be settled. */
  settleMessage(message: Message, ack: boolean, requeue: boolean): void;
}

export interface NackOptions {
  /** Put the message back in its queue (default true); false drops it, or dead-letters it if its queue has a dead-letter exchange. */
  requeue?: boolean;
}

const EMPTY_PROPERTIES: MessageProperties = Object.freeze({}) as MessageProperties;
const textDecoder = new TextDecoder();

export class Message {
  /** The body, as sent. */
  readonly payload: Uint8Array;
  /**
   * Delivery tag, unique for the client's lifetime: tags keep increasing across reconnects, so a
   * tag from before a reconnect is recognised as stale instead of settling a newer delivery. 0 for
   * an auto-ack delivery of a shared stream (one copy for every subscriber: nothing to settle).
   */
  readonly tag: number;
  /** True when the broker delivered this message before (a requeue, or a consumer that went away). */
  readonly redelivered: boolean;
  /** `amq.topic` for /topic/, '' (the default exchange) for /queue/, the exchange for /exchange/. */
  readonly exchange: string;
  /** The key the message was published with (the queue name for /queue/). */
  readonly routingKey: string;
  /** The subscription that received it (the same object `client.subscribe` returned). */
  readonly subscription: MessageSubscription;
  readonly #ackMode: AckMode;
  readonly #settler: MessageSettler;
  #propsBlock: Uint8Array | null;
  #properties: MessageProperties | null = null;
  #settled: boolean;

  /** @internal The client builds messages; users receive them. */
  constructor(
    settler: MessageSettler,
    subscription: MessageSubscription,
    ackMode: AckMode,
    tag: number,
    redelivered: boolean,
    exchange: string,
    routingKey: string,
    propsBlock: Uint8Array | null,
    payload: Uint8Array,
  ) {
    this.#settler = settler;
    this.subscription = subscription;
    this.#ackMode = ackMode;
    this.tag = tag;
    this.redelivered = redelivered;
    this.exchange = exchange;
    this.routingKey = routingKey;
    this.#propsBlock = propsBlock;
    this.payload = payload;
    this.#settled = ackMode === 'auto';
  }

  /** AMQP basic properties (content type, headers, priority…); `{}` when the message has none. */
  get properties(): MessageProperties {
    if (this.#properties === null) {
      const block = this.#propsBlock;
      this.#properties = block === null ? EMPTY_PROPERTIES : decodeProperties(block, 0, block.length);
      this.#propsBlock = null;
    }
    return this.#properties;
  }

  /** A stream queue's message: its offset in the stream (the `x-stream-offset` header); undefined otherwise. */
  get offset(): number | undefined {
    const at = this.properties.headers?.['x-stream-offset'];
    return typeof at === 'number' ? at : undefined;
  }

  /**
   * Where the message was addressed, as a destination: the subscription's `/queue/<name>` for queue
   * subscriptions, `/topic/<key>` for messages through `amq.topic`, else `/exchange/<exchange>/<key>`.
   */
  get destination(): string {
    const sub = this.subscription.destination;
    if (sub.startsWith('/queue/')) return sub;
    if (this.exchange === 'amq.topic' && sub.startsWith('/topic/')) return '/topic/' + this.routingKey;
    if (this.exchange === '') return '/queue/' + this.routingKey;
    return '/exchange/' + this.exchange + '/' + this.routingKey;
  }

  /** True once acked or nacked (always true for auto-ack deliveries: the broker settled them on send). */
  get settled(): boolean {
    return this.#settled;
  }

  /** The payload decoded as UTF-8 (invalid sequences become U+FFFD). */
  text(): string {
    return textDecoder.decode(this.payload);
  }

  /** The payload parsed as JSON (throws SyntaxError when it is not). */
  json<T = unknown>(): T {
    return JSON.parse(this.text()) as T;
  }

  /**
   * Acknowledges the message (client-ack subscriptions). A no-op for auto-ack deliveries. Rejects
   * with DeliveryTagError (`stale_tag` after a reconnect or after the subscription ended — the
   * broker has requeued the message —, `unknown_tag` when already settled) without sending anything.
   * Resolves once the ACK is queued for the socket; the broker does not answer ACKs.
   */
  ack(): Promise<void> {
    if (this.#ackMode === 'auto') return Promise.resolve();
    return this.#settle(true, false);
  }

  /** Rejects the message (AMQP basic.nack), by default putting it back in its queue. Client-ack only. */
  nack(options: NackOptions = {}): Promise<void> {
    if (this.#ackMode === 'auto') {
      return Promise.reject(
        new DeliveryTagError(
          'unknown_tag',
          this.tag,
          `tag ${this.tag} is an auto-ack delivery: the broker settled it on send, it cannot be nacked`,
        ),
      );
    }
    return this.#settle(false, options.requeue ?? true);
  }

  #settle(ack: boolean, requeue: boolean): Promise<void> {
    if (this.#settled) {
      return Promise.reject(new DeliveryTagError('unknown_tag', this.tag, `delivery tag ${this.tag} is already settled`));
    }
    try {
      this.#settler.settleMessage(this, ack, requeue);
    } catch (err) {
      return Promise.reject(err as ShardmqError);
    }
    this.#settled = true;
    return Promise.resolve();
  }

  /** @internal The client settled it through `client.ack(tag, { multiple })`. */
  markSettled(): void {
    this.#settled = true;
  }
}
