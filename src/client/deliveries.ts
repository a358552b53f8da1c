/**
 * Delivered messages and their settlement (ACK/NACK). The broker numbers deliveries per socket, so
 * the client hands out its own tags, `#tagBase + broker tag`, and moves the base past every tag
 * handed out when a socket drops: a tag from before a reconnect is then recognised as stale instead
 * of settling a newer delivery that reuses the broker's number.
 */
import type { DeliverEvent } from '../protocol/ws-binary.js';
import { ConnectionClosedError, DeliveryTagError } from './errors.js';
import { Message, type MessageSettler } from './message.js';
import { PayloadSlab } from './payload-slab.js';
import type { ClientSession } from './session.js';
import type { SubscriptionCore } from './subscription.js';

export class Deliveries implements MessageSettler {
  readonly #session: ClientSession;
  /** Client-ack deliveries not yet settled, by tag (insertion = tag order, as MULTIPLE needs). */
  readonly #unsettled = new Map<number, Message>();
  /** Tags of the current connection are `#tagBase + broker tag`; everything ≤ #tagBase is stale. */
  #tagBase = 0;
  #lastTag = 0;
  #delivered = 0;
  readonly #slab = new PayloadSlab();

  constructor(session: ClientSession) {
    this.#session = session;
  }

  get delivered(): number {
    return this.#delivered;
  }

  get unsettled(): number {
    return this.#unsettled.size;
  }

  /** The message for a DELIVER to `core`, tracked until settled when it is client-ack. */
  receive(core: SubscriptionCore, ev: DeliverEvent): Message {
    // A shared stream's deliveries are auto-ack and carry no tag (0): nothing to settle.
    const tag = ev.stream ? 0 : this.#tagBase + ev.tag;
    if (tag > this.#lastTag) this.#lastTag = tag;
    this.#delivered++;
    // Copies: the event's views alias the socket's buffer, which a kept message would pin.
    const slab = this.#slab;
    const message = new Message(
      this,
      core.facade,
      core.ackMode,
      tag,
      ev.redelivered,
      ev.exchange,
      ev.routingKey,
      ev.properties === null ? null : slab.copy(ev.properties),
      slab.copy(ev.payload),
    );
    if (core.ackMode === 'client') this.#unsettled.set(tag, message);
    return message;
  }

  settleMessage(message: Message, ack: boolean, requeue: boolean): void {
    this.settle(message.tag, false, ack, requeue, message);
  }

  settle(tag: number, multiple: boolean, ack: boolean, requeue: boolean, message: Message | undefined): void {
    if (!Number.isSafeInteger(tag) || tag < 0) throw new RangeError(`tag must be an integer ≥ 0 (got ${String(tag)})`);
    if (this.#session.state === 'closed') throw new ConnectionClosedError(undefined, { op: ack ? 'ACK' : 'NACK' });
    const conn = this.#session.conn;
    const what = ack ? 'ack' : 'nack';
    if (multiple && tag === 0) {
      for (const m of this.#unsettled.values()) m.markSettled();
      this.#unsettled.clear();
      if (conn.isOpen) this.#writeSettle(0, true, ack, requeue);
      return;
    }
    if (tag <= this.#tagBase) {
      throw new DeliveryTagError(
        'stale_tag',
        tag,
        `cannot ${what} delivery tag ${tag}: it was delivered on an earlier connection; the broker requeued that message`,
      );
    }
    if (!conn.isOpen) {
      // Closing (a drop would have made the tag stale above): the broker requeues it when the socket goes.
      throw new ConnectionClosedError(`cannot ${what} delivery tag ${tag}: the client is closing; the broker will requeue it`, {
        op: ack ? 'ACK' : 'NACK',
      });
    }
    if (!multiple) {
      const m = this.#unsettled.get(tag);
      if (m === undefined || (message !== undefined && m !== message)) {
        if (message !== undefined && !message.subscription.active) {
          throw new DeliveryTagError(
            'stale_tag',
            tag,
            `cannot ${what} delivery tag ${tag}: its subscription ended and the broker requeued the message`,
          );
        }
        throw new DeliveryTagError(
          'unknown_tag',
          tag,
          `cannot ${what} delivery tag ${tag}: not an unsettled client-ack delivery of this client`,
        );
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
      if (n === 0)
        throw new DeliveryTagError(
          'unknown_tag',
          tag,
          `cannot ${what} up to delivery tag ${tag}: no unsettled client-ack delivery at or below it`,
        );
    }
    this.#writeSettle(tag - this.#tagBase, multiple, ack, requeue);
  }

  /** `core` ended: the broker requeues its unsettled deliveries, so their tags are dead here too. */
  forget(core: SubscriptionCore): void {
    for (const [tag, m] of this.#unsettled) if (m.subscription === core.facade) this.#unsettled.delete(tag);
    core.dropStale();
  }

  /** Every tag delivered so far is stale (the broker requeued what was unsettled). */
  invalidate(): void {
    this.#tagBase = this.#lastTag;
    this.#unsettled.clear();
  }

  #writeSettle(brokerTag: number, multiple: boolean, ack: boolean, requeue: boolean): void {
    this.#session.conn.write(14, (w) => {
      if (ack) w.ack(brokerTag, multiple);
      else w.nack(brokerTag, multiple, requeue);
    });
  }
}
