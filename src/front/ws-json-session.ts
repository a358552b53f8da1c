/**
 * The JSON text-frame protocol of /v1/ws (design.md §3): ops in, receipts, messages and
 * errors out. For people and debugging; the binary protocol is the fast one.
 */
import { isUtf8 } from 'node:buffer';
import { ClientOpError, parseClientOp, type ClientOp } from '../protocol/ws-json.js';
import { BrokerError, ErrorCode } from '../protocol/errors.js';
import { DestinationType } from '../protocol/destination.js';
import { localName } from '../protocol/vhost-name.js';
import { decodeProperties } from '../protocol/properties.js';
import { encodeCheckedProperties } from '../protocol/property-rules.js';
import { propertiesToJson } from '../protocol/json-properties.js';
import { DEFAULT_PREFETCH } from '../config/defaults.js';
import { ProtocolSession, toBrokerError } from './ws-ops.js';
import { CLOSE_POLICY, type Connection, type WsSubscription } from './ws-connection.js';
import type { PublishCredit } from './publish-credit.js';

export class JsonSession extends ProtocolSession {
  #credit: PublishCredit | null = null;

  /** Set once by the front: publish credit is shared with the binary protocol. */
  set credit(credit: PublishCredit) {
    this.#credit = credit;
  }

  /** Publish credit goes back to a JSON client as a `credit` frame (docs/protocol.md §6a). */
  sendCredit(connection: Connection, messages: number, bytes: number): void {
    this.flush.sendText(connection, `{"op":"credit","messages":${messages},"bytes":${bytes}}`);
  }

  frame(connection: Connection, message: ArrayBuffer): void {
    // uWS itself fails a text frame that is not UTF-8 (RFC 6455 §8.1), so this decodes cleanly.
    let op: ClientOp;
    try {
      op = parseClientOp(Buffer.from(message).toString('utf8'));
    } catch (err) {
      this.#sendError(connection, err);
      return;
    }
    const owedBefore = connection.owedPublish;
    try {
      this.#process(connection, op);
    } catch (err) {
      this.#sendError(connection, err, op);
    }
    // After the frame's own answer, so a person reading the frames sees it first.
    if (connection.owedPublish !== owedBefore) this.#credit?.settle(connection);
  }

  #process(connection: Connection, op: ClientOp): void {
    switch (op.op) {
      case 'subscribe': {
        if (connection.jsonSubs.has(op.id)) {
          throw new BrokerError(
            ErrorCode.duplicateSubscription,
            `subscription id ${JSON.stringify(op.id)} is already in use on this connection`,
          );
        }
        const prefetch = op.ack === 'client' ? (op.prefetch ?? DEFAULT_PREFETCH) : 0;
        const sub = this.ops.subscribe(connection, op.id, false, op.destination, op.ack, prefetch, false, op.arguments);
        if (op.receipt !== null) {
          // The receipt waits for the shard to take the consumer; its refusal (exclusive use, a bad
          // x-stream-offset) is the error naming this receipt instead of an error and then a receipt.
          const receipt = op.receipt;
          this.ops.whenTaken(sub).then(
            (refused) => {
              if (refused === null) this.flush.sendText(connection, `{"op":"receipt","receipt":${JSON.stringify(receipt)}}`);
              else this.flush.sendErrorText(connection, refused.code, refused.message, receipt);
            },
            () => this.flush.sendErrorText(connection, ErrorCode.shardUnavailable, 'a shard restarted before confirming', receipt),
          );
        }
        return;
      }
      case 'unsubscribe': {
        const sub = connection.jsonSubs.get(op.id);
        if (sub === undefined)
          throw new BrokerError(ErrorCode.unknownSubscription, `no subscription ${JSON.stringify(op.id)} on this connection`);
        this.ops.unsubscribe(sub);
        if (op.receipt !== null) this.ops.receiptAfter(connection, sub.shard, op.receipt);
        return;
      }
      case 'publish': {
        const receipt = op.receipt;
        const properties = op.properties === null ? null : encodeCheckedProperties(op.properties);
        const credit = this.#credit;
        const bytes = op.payload.byteLength + (properties?.byteLength ?? 0);
        if (credit !== null && !credit.take(connection, 1, bytes)) {
          // A client that ignores credit cannot be slowed: say why, then close (docs/protocol.md §6a).
          const message = `published with ${connection.publishCredit} message(s) and ${connection.publishCreditBytes} byte(s) of credit left; wait for a credit frame`;
          this.flush.sendErrorText(connection, ErrorCode.creditExceeded, message, receipt ?? undefined);
          connection.ws.end(CLOSE_POLICY, ErrorCode.creditExceeded);
          return;
        }
        const target = this.ops.publish(connection, op.destination, properties, op.payload, (refused) => {
          if (receipt === null) return;
          if (refused === null) this.flush.sendText(connection, `{"op":"receipt","receipt":${JSON.stringify(receipt)}}`);
          else this.flush.sendErrorText(connection, refused.code, refused.message, receipt);
        });
        connection.published++;
        credit?.wroteTo(connection, target);
        return;
      }
      case 'commit': {
        const sub = connection.jsonSubs.get(op.subscription);
        if (sub === undefined)
          throw new BrokerError(ErrorCode.unknownSubscription, `no subscription ${JSON.stringify(op.subscription)} on this connection`);
        const receipt = op.receipt;
        void this.ops.commit(sub, op.offset).then(
          () => {
            if (receipt !== null) this.flush.sendText(connection, `{"op":"receipt","receipt":${JSON.stringify(receipt)}}`);
          },
          (err: unknown) => {
            const e = err instanceof BrokerError ? err : new BrokerError(ErrorCode.internal, (err as Error).message);
            this.flush.sendErrorText(connection, e.code, e.message, receipt ?? undefined);
          },
        );
        return;
      }
      case 'ack':
      case 'nack':
        if (!this.ops.settle(connection, op.tag, op.multiple, op.op === 'ack', op.op === 'nack' && op.requeue)) {
          throw new BrokerError(ErrorCode.unknownTag, `delivery tag ${op.tag} is not an unacked delivery of this connection`);
        }
        return;
    }
  }

  /** A delivery as a JSON `message` frame (payloads that are not UTF-8 as base64). */
  delivery(
    sub: WsSubscription,
    tag: number,
    redelivered: boolean,
    exchange: string,
    routingKey: string,
    buf: Buffer,
    propsOffset: number,
    propsLength: number,
    start: number,
    length: number,
  ): string {
    const end = start + length;
    const text = isUtf8(buf.subarray(start, end));
    const payload = text ? JSON.stringify(buf.toString('utf8', start, end)) : `"${buf.toString('base64', start, end)}","encoding":"base64"`;
    const d = sub.destination;
    const destination =
      d.type === DestinationType.queue
        ? '/queue/' + localName(sub.queue)
        : d.type === DestinationType.topic
          ? '/topic/' + routingKey
          : `/exchange/${exchange}/${routingKey}`;
    let props = '';
    let offset = '';
    if (propsLength > 0) {
      const decoded = decodeProperties(buf, propsOffset, propsLength);
      props = `,"properties":${JSON.stringify(propertiesToJson(decoded))}`;
      // A stream's entry: its offset as a field of its own too (it is also in the header).
      const at = decoded.headers?.['x-stream-offset'];
      if (typeof at === 'number' && d.type === DestinationType.queue) offset = `,"offset":${at}`;
    }
    return `{"op":"message","subscription":${sub.clientIdJson},"destination":${JSON.stringify(destination)},"tag":${tag},"redelivered":${redelivered}${offset}${props},"payload":${payload}}`;
  }

  /** An error frame about a subscription (its shard restarted, its queue went away...). */
  subscriptionError(connection: Connection, code: string, message: string, sub: WsSubscription | undefined): void {
    const extra = sub === undefined ? '' : `,"subscription":${sub.clientIdJson}`;
    this.flush.sendText(connection, `{"op":"error","code":${JSON.stringify(code)},"message":${JSON.stringify(message)}${extra}}`);
  }

  #sendError(connection: Connection, err: unknown, op?: ClientOp): void {
    const receipt =
      err instanceof ClientOpError ? err.receipt : op !== undefined && 'receipt' in op && op.receipt !== null ? op.receipt : undefined;
    const e = toBrokerError(err, this.ctx);
    this.flush.sendErrorText(connection, e.code, e.message, receipt);
  }
}
