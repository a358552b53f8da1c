/**
 * The binary protocol of /v1/ws (docs/protocol.md): a streaming decoder per connection
 * dispatches PUBLISH/PUBLISH_BATCH with publisher confirms, SUBSCRIBE, ACK/NACK and the
 * management ops; answers go into the connection's one binary frame per chunk.
 */
import { BrokerError, ErrorCode } from '../protocol/errors.js';
import { ConfirmStatus, NO_TOKEN } from '../protocol/ring-record-codec.js';
import { decodeProperties, PropertyFlag } from '../protocol/properties.js';
import { checkMessageProperties } from '../protocol/property-rules.js';
import { BinaryDecoder, Direction } from '../protocol/ws-binary-decode.js';
import { Opcode, ProtocolError } from '../protocol/ws-binary.js';
import type * as Bin from '../protocol/ws-binary.js';
import { confirmRefusal } from '../control/confirm-tracker.js';
import type { PublishTarget } from '../control/publish-path.js';
import { ProtocolSession, toBrokerError } from './ws-ops.js';
import { CLOSE_POLICY, CLOSE_PROTOCOL_ERROR, CLOSE_TOO_BIG, type Connection } from './ws-connection.js';
import type { PublishCredit } from './publish-credit.js';

/** A publish past the connection's credit: the client ignored flow control (docs/protocol.md §6a). */
class CreditViolation extends Error {}

export class BinarySession extends ProtocolSession {
  #credit: PublishCredit | null = null;

  /** Set once by the front: publish credit is shared with the JSON protocol. */
  set credit(credit: PublishCredit) {
    this.#credit = credit;
  }

  frame(connection: Connection, bytes: Uint8Array): void {
    connection.decoder ??= new BinaryDecoder(Direction.toServer, this.#dispatcher(connection), {
      maxOpBodyBytes: this.ctx.config.maxFrameBytes,
    });
    connection.confirmUpTo = 0;
    const owedBefore = connection.owedPublish;
    try {
      connection.decoder.decodeFrame(bytes);
    } catch (err) {
      if (err instanceof ProtocolError || err instanceof CreditViolation) {
        // A length-prefixed stream cannot resynchronise, and a client that ignores credit cannot be
        // slowed: say why, then close (docs/protocol.md §6a, §8).
        const code = err instanceof ProtocolError ? err.code : ErrorCode.creditExceeded;
        const writer = this.flush.writer(connection);
        writer.error(0, code, err.message);
        this.flush.flushConnection(connection);
        connection.ws.end(code === 'too_large' ? CLOSE_TOO_BIG : code === 'bad_frame' ? CLOSE_PROTOCOL_ERROR : CLOSE_POLICY, code);
        return;
      }
      throw err;
    } finally {
      if (connection.confirmUpTo > 0 && !connection.closed) {
        this.flush.writer(connection).confirm(connection.confirmUpTo, true, false);
        connection.confirmUpTo = 0;
      }
    }
    if (connection.owedPublish !== owedBefore) this.#credit?.settle(connection);
    this.flush.flushConnection(connection);
  }

  /** Publish credit goes back to a binary client as one CREDIT op. */
  sendCredit(connection: Connection, messages: number, bytes: number): void {
    this.flush.writer(connection).credit(messages, bytes);
    this.flush.flushConnection(connection);
  }

  #dispatcher(connection: Connection): Bin.BinaryDispatcher {
    const manage = (requestId: number, op: Opcode, work: () => Promise<Bin.OkEvent | void> | void): void =>
      answer(requestId, op, () => {
        if (!connection.principal.canManage) {
          this.ctx.log.warn({ user: connection.principal.name, op }, 'management op denied');
          throw new BrokerError(
            ErrorCode.accessRefused,
            `user ${connection.principal.name} may not manage vhost '${connection.principal.vhost.name}'`,
          );
        }
        return work();
      });
    const answer = (requestId: number, op: Opcode, work: () => Promise<Bin.OkEvent | void> | void): void => {
      const fail = (err: unknown): void => {
        const e = toBrokerError(err, this.ctx);
        this.flush.writer(connection).error(requestId, e.code, e.message);
        this.flush.flushConnection(connection);
      };
      try {
        const result = work();
        if (result instanceof Promise) {
          result.then((r) => {
            if (connection.closed || requestId === 0) return;
            this.flush.writer(connection).ok(requestId, op, r ?? undefined);
            this.flush.flushConnection(connection);
          }, fail);
        } else if (requestId !== 0) {
          this.flush.writer(connection).ok(requestId, op);
        }
      } catch (err) {
        fail(err);
      }
    };
    const mgmt = this.ctx.management;
    return {
      processPublish: (ev) => this.#publish(connection, ev.destination, ev.properties, [ev.payload]),
      processPublishBatch: (ev) => this.#publish(connection, ev.destination, ev.properties, ev.payloads),
      processFlush: (ev) =>
        answer(ev.requestId, Opcode.FLUSH, () => {
          // Answered once every shard this connection published to has routed what it was sent
          // before (a ping behind the publishes, held ones included).
          const shards = [...connection.flushShards];
          connection.flushShards.clear();
          if (shards.length === 0) return;
          return Promise.all(shards.map((s) => this.ops.pingShard(s, true))).then(() => undefined);
        }),
      processConfirmSelect: (ev) =>
        answer(ev.requestId, Opcode.CONFIRM_SELECT, () => {
          connection.confirming = true;
        }),
      processSubscribe: (ev) =>
        answer(ev.requestId, Opcode.SUBSCRIBE, () => {
          if (connection.binarySubs.has(ev.subscriptionId)) {
            throw new BrokerError(
              ErrorCode.duplicateSubscription,
              `subscription id ${ev.subscriptionId} is already in use on this connection`,
            );
          }
          const sub = this.ops.subscribe(
            connection,
            ev.subscriptionId,
            true,
            ev.destination,
            ev.ackMode,
            ev.prefetch,
            ev.shared,
            ev.arguments,
          );
          // A shared stream's member has no consumer of its own to wait for: its stream's carrier took
          // its consumer before anything published after this OK can reach it (same ring, in order).
          if (sub.group !== null) return;
          // The OK goes out once the shard has the consumer; its refusal fails the request instead.
          return this.ops.whenTaken(sub).then((refused) => {
            if (refused !== null) throw refused;
          });
        }),
      processCommitOffset: (ev) =>
        answer(ev.requestId, Opcode.COMMIT_OFFSET, () => {
          const sub = connection.binarySubs.get(ev.subscriptionId);
          if (sub === undefined)
            throw new BrokerError(ErrorCode.unknownSubscription, `no subscription ${ev.subscriptionId} on this connection`);
          return this.ops.commit(sub, ev.offset);
        }),
      processUnsubscribe: (ev) =>
        answer(ev.requestId, Opcode.UNSUBSCRIBE, () => {
          const sub = connection.binarySubs.get(ev.subscriptionId);
          if (sub === undefined)
            throw new BrokerError(ErrorCode.unknownSubscription, `no subscription ${ev.subscriptionId} on this connection`);
          this.ops.unsubscribe(sub);
          return this.ops.pingShard(sub.shard).then(() => undefined);
        }),
      processAck: (ev) => {
        if (!this.ops.settle(connection, ev.tag, ev.multiple, true, false)) {
          this.flush
            .writer(connection)
            .error(0, ErrorCode.unknownTag, `delivery tag ${ev.tag} is not an unacked delivery of this connection`);
        }
      },
      processNack: (ev) => {
        if (!this.ops.settle(connection, ev.tag, ev.multiple, false, ev.requeue)) {
          this.flush
            .writer(connection)
            .error(0, ErrorCode.unknownTag, `delivery tag ${ev.tag} is not an unacked delivery of this connection`);
        }
      },
      processDeclareExchange: (ev) =>
        manage(ev.requestId, Opcode.DECLARE_EXCHANGE, async () => {
          await mgmt.declareExchange(connection.principal.vhost, { ...ev, arguments: ev.arguments as Record<string, unknown> });
        }),
      processDeleteExchange: (ev) =>
        manage(ev.requestId, Opcode.DELETE_EXCHANGE, async () => {
          await mgmt.deleteExchange(connection.principal.vhost, ev.name, ev.ifUnused);
        }),
      processDeclareQueue: (ev) =>
        manage(ev.requestId, Opcode.DECLARE_QUEUE, async () => {
          const ok = await mgmt.declareQueue(
            connection.principal.vhost,
            { ...ev, arguments: ev.arguments as Record<string, unknown> },
            connection.id,
          );
          return {
            requestId: ev.requestId,
            op: Opcode.DECLARE_QUEUE,
            name: ok.queue,
            messageCount: ok.messageCount,
            consumerCount: ok.consumerCount,
          };
        }),
      processDeleteQueue: (ev) =>
        manage(ev.requestId, Opcode.DELETE_QUEUE, async () => {
          const ok = await mgmt.deleteQueue(connection.principal.vhost, ev.name, ev.ifUnused, ev.ifEmpty, connection.id);
          return { requestId: ev.requestId, op: Opcode.DELETE_QUEUE, name: ev.name, messageCount: ok.messageCount, consumerCount: 0 };
        }),
      processPurgeQueue: (ev) =>
        manage(ev.requestId, Opcode.PURGE_QUEUE, async () => {
          const ok = await mgmt.purgeQueue(connection.principal.vhost, ev.name);
          return { requestId: ev.requestId, op: Opcode.PURGE_QUEUE, name: ev.name, messageCount: ok.messageCount, consumerCount: 0 };
        }),
      processBindQueue: (ev) =>
        manage(ev.requestId, Opcode.BIND_QUEUE, () =>
          mgmt.bindQueue(ev.exchange, ev.queue, ev.routingKey, ev.arguments as Record<string, unknown>, connection.principal),
        ),
      processUnbindQueue: (ev) =>
        manage(ev.requestId, Opcode.UNBIND_QUEUE, () =>
          mgmt.unbindQueue(connection.principal.vhost, ev.exchange, ev.queue, ev.routingKey, ev.arguments as Record<string, unknown>),
        ),
      processBindExchange: (ev) =>
        manage(ev.requestId, Opcode.BIND_EXCHANGE, () =>
          mgmt.bindExchange(ev.destination, ev.source, ev.routingKey, ev.arguments as Record<string, unknown>, connection.principal),
        ),
      processUnbindExchange: (ev) =>
        manage(ev.requestId, Opcode.UNBIND_EXCHANGE, () =>
          mgmt.unbindExchange(
            connection.principal.vhost,
            ev.destination,
            ev.source,
            ev.routingKey,
            ev.arguments as Record<string, unknown>,
          ),
        ),
    };
  }

  #publish(connection: Connection, destinationText: string, properties: Uint8Array | null, payloads: readonly Uint8Array[]): void {
    const max = this.ctx.config.maxMessageBytes - (properties?.byteLength ?? 0);
    if (payloads.length > 1) {
      // A batch is many messages, not one: one too large is refused alone, its neighbours go on
      // (the client joins consecutive publishes into batches, so this is the PUBLISHes' behaviour).
      for (let i = 0; i < payloads.length; i++) {
        if (payloads[i].byteLength <= max) continue;
        for (const p of payloads) this.#publish(connection, destinationText, properties, [p]);
        return;
      }
    }
    let bytes = 0;
    const propsBytes = properties?.byteLength ?? 0;
    for (let i = 0; i < payloads.length; i++) bytes += payloads[i].byteLength + propsBytes;
    if (this.#credit !== null && !this.#credit.take(connection, payloads.length, bytes)) {
      throw new CreditViolation(
        `published ${payloads.length} message(s) with ${connection.publishCredit} message(s) and ${connection.publishCreditBytes} byte(s) of credit left; wait for CREDIT`,
      );
    }
    const first = connection.confirming ? connection.confirmSeq + 1 : 0;
    if (connection.confirming) connection.confirmSeq += payloads.length;
    const last = connection.confirmSeq;
    let exchange = '';
    const report = (status: ConfirmStatus, immediate: boolean): void => {
      if (connection.closed) return;
      if (status !== ConfirmStatus.ok) {
        const refused = confirmRefusal(status, exchange);
        this.flush.writer(connection).error(0, refused.code, refused.message);
      }
      if (!connection.confirming || first === 0) {
        if (!immediate) this.flush.flushConnection(connection);
        return;
      }
      if (status === ConfirmStatus.ok) this.ctx.publisher.confirmed += last - first + 1;
      const writer = this.flush.writer(connection);
      if (immediate && status === ConfirmStatus.ok && connection.pendingSeqs === 0) {
        connection.confirmUpTo = last;
        return;
      }
      if (connection.confirmUpTo > 0) {
        writer.confirm(connection.confirmUpTo, true, false);
        connection.confirmUpTo = 0;
      }
      for (let seq = first; seq <= last; seq++) writer.confirm(seq, false, status !== ConfirmStatus.ok);
      if (!immediate) {
        connection.pendingSeqs -= last - first + 1;
        this.flush.flushConnection(connection);
      }
    };
    let target: PublishTarget;
    try {
      if (properties !== null) checkPropertiesBlock(properties);
      target = this.ctx.publisher.targetFor(destinationText, connection.principal);
      exchange = target.exchange;
    } catch (err) {
      const e = toBrokerError(err, this.ctx);
      this.#refuse(connection, first, last, e.code, e.message);
      return;
    }
    for (const p of payloads) {
      if (p.byteLength > max) {
        const message = `message of ${p.byteLength} bytes exceeds max-message-bytes ${this.ctx.config.maxMessageBytes}`;
        this.#refuse(connection, first, last, ErrorCode.tooLarge, message);
        return;
      }
    }
    if (this.ctx.publisher.overMemory && target.shards.length > 0) {
      // Refused before any is written, so a batch is all taken or all refused (a nack must mean "not taken").
      const message = `the broker is above its memory high-watermark (max-memory); ${payloads.length} message(s) were not accepted`;
      this.#refuse(connection, first, last, ErrorCode.saturated, message);
      return;
    }
    // A confirm means the message is in a shard's ring (or routed): while a target shard holds
    // publishes in main-thread memory, the shard itself confirms, after routing it.
    const wantToken = first > 0 && this.ctx.publisher.wantsConfirm(target);
    if (wantToken) connection.pendingSeqs += last - first + 1;
    const token = wantToken
      ? this.ctx.confirms.allocate(this.ctx.publisher.confirmShards(target), (status) => report(status, false))
      : NO_TOKEN;
    for (let i = 0; i < payloads.length; i++) {
      const t = i === payloads.length - 1 ? token : NO_TOKEN;
      if (this.ctx.publisher.write(target, connection.id, t, properties, payloads[i], 0, 0, true) < target.shards.length) {
        if (token !== NO_TOKEN) this.ctx.confirms.fail(token, ConfirmStatus.rejected);
        else report(ConfirmStatus.rejected, true);
        return;
      }
    }
    connection.published += payloads.length;
    for (const s of target.shards) connection.flushShards.add(s);
    this.#credit?.wroteTo(connection, target);
    if (token === NO_TOKEN) report(ConfirmStatus.ok, true);
  }

  /** A publish of confirm numbers first..last (0: confirms off) not taken: each number nacked, then one ERROR. */
  #refuse(connection: Connection, first: number, last: number, code: ErrorCode, message: string): void {
    const writer = this.flush.writer(connection);
    if (first > 0) for (let seq = first; seq <= last; seq++) writer.confirm(seq, false, true);
    writer.error(0, code, message);
  }
}

/**
 * The value rules (`property-rules.ts`) for a binary properties block, whose structure the decoder
 * already checked. Only `expiration` needs a look the decoder does not take (delivery mode and
 * priority are bytes it bounds), so the block is decoded only when that flag is set.
 */
function checkPropertiesBlock(block: Uint8Array): void {
  const flags = block[0] | (block[1] << 8);
  if ((flags & PropertyFlag.expiration) !== 0) checkMessageProperties(decodeProperties(block, 0, block.byteLength));
}
