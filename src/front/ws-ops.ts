/**
 * What the JSON and binary WebSocket protocols do alike: publish, subscribe, unsubscribe,
 * settle, and receipts that wait for a shard. Each protocol module decodes its frames and
 * encodes its answers; the logic between is here once.
 */
import type { BrokerContext } from './context.js';
import { BrokerError, ErrorCode } from '../protocol/errors.js';
import { AckModeCode, ConfirmStatus, NO_TOKEN, RecordKind, streamStartOf } from '../protocol/ring-record-codec.js';
import { pingShard } from './shard-ping.js';
import { confirmRefusal } from '../control/confirm-tracker.js';
import type { DeliveryFlush } from './delivery-flush.js';
import type { PublishTarget } from '../control/publish-path.js';
import type { DeliveryGroups } from './delivery-groups.js';
import type { Destination } from '../protocol/destination.js';
import { detachSubscription, type Connection, type StreamGroup, type WsSubscription } from './ws-connection.js';
import { portOf, portOfTag } from './shard-ports.js';

export class SessionOps {
  readonly #ctx: BrokerContext;
  readonly #flush: DeliveryFlush;
  readonly #groups: DeliveryGroups;

  constructor(ctx: BrokerContext, flush: DeliveryFlush, groups: DeliveryGroups) {
    this.#ctx = ctx;
    this.#flush = flush;
    this.#groups = groups;
  }

  /** Publishes one message; `done` gets null once the broker holds it, or why it was refused. */
  publish(
    connection: Connection,
    destinationText: string,
    properties: Uint8Array | null,
    payload: Uint8Array,
    done: (refused: BrokerError | null) => void,
  ): PublishTarget {
    const max = this.#ctx.config.maxMessageBytes;
    if (payload.byteLength + (properties?.byteLength ?? 0) > max) {
      throw new BrokerError(ErrorCode.tooLarge, `message of ${payload.byteLength} bytes exceeds max-message-bytes ${max}`, 413);
    }
    const { publisher, confirms } = this.#ctx;
    const target = publisher.targetFor(destinationText, connection.principal);
    // A receipt means the message is in a shard's ring: while a target shard holds publishes in
    // main-thread memory, the shard itself answers, after routing it.
    const token = publisher.wantsConfirm(target)
      ? confirms.allocate(publisher.confirmShards(target), (status) =>
          done(status === ConfirmStatus.ok ? null : confirmRefusal(status, target.exchange)),
        )
      : NO_TOKEN;
    if (publisher.write(target, connection.id, token, properties, payload, 0, 0, true) < target.shards.length) {
      if (token !== NO_TOKEN) confirms.fail(token, ConfirmStatus.rejected);
      throw new BrokerError(ErrorCode.saturated, 'the broker is saturated; message not accepted, retry later', 503);
    }
    // Held once it is in the rings (they outlive a shard thread), unless a shard must confirm.
    if (token === NO_TOKEN) done(null);
    return target;
  }

  /** Creates a consumer on the queue `control/consume-path.ts` picks for the destination. */
  subscribe(
    connection: Connection,
    clientId: string | number,
    binary: boolean,
    destinationText: string,
    ackMode: 'auto' | 'client',
    prefetch: number,
    shared = false,
    consumerArguments: Record<string, unknown> | null = null,
  ): WsSubscription {
    const max = this.#ctx.config.maxSubscriptions;
    if (connection.byNumericId.size >= max) {
      throw new BrokerError(ErrorCode.limitExceeded, `this connection already holds max-subscriptions ${max} subscriptions`);
    }
    // Before anything is placed or declared: a bad x-stream-offset refuses the subscription with nothing left behind.
    const streamStart = streamStartOf(consumerArguments, String(clientId));
    // Fan-out late: an auto-ack /topic/ subscription that allows it joins its pattern's shared stream.
    const consume = this.#ctx.consume;
    const shareable = shared && binary && ackMode === 'auto' ? consume.shareable(destinationText, connection.principal) : null;
    let target: { destination: Destination; queue: string; shard: number; privateQueue: boolean; group: StreamGroup | null };
    if (shareable !== null)
      target = { destination: shareable, privateQueue: false, ...this.#groups.place(shareable, connection.principal.vhost) };
    else target = { ...consume.target(destinationText, connection.principal, connection.id), group: null };
    const { destination, queue, shard, privateQueue, group } = target;
    const sub: WsSubscription = {
      connection,
      clientId,
      // Only JSON frames name the subscription in text; a binary one names it by number (one string fewer per subscription).
      clientIdJson: binary ? '' : JSON.stringify(clientId),
      numericId: connection.nextSubscription++,
      binary,
      destination,
      queue,
      shard,
      group,
      privateQueue,
      ackMode,
      prefetch,
      owedCredit: 0,
      owedBytes: 0,
      dropped: 0,
      notices: null,
      streamStart,
      pendingOk: null,
    };
    if (binary) connection.binarySubs.set(clientId as number, sub);
    else connection.jsonSubs.set(clientId as string, sub);
    connection.byNumericId.set(sub.numericId, sub);
    if (group !== null) this.#groups.join(sub);
    else this.writeSubscribe(sub);
    return sub;
  }

  /** Registers `sub`'s consumer on its shard (again, after a shard restart); a stream's member has none of its own. */
  writeSubscribe(sub: WsSubscription): void {
    if (sub.group !== null) return;
    const ackMode = sub.ackMode === 'client' ? AckModeCode.client : AckModeCode.auto;
    const { deliveryWindow, deliveryWindowBytes } = this.#ctx.config;
    const shard = portOf(this.#ctx, sub.shard);
    shard.writeControl((w) =>
      w.subscribe(
        sub.connection.id,
        sub.numericId,
        sub.queue,
        ackMode,
        sub.prefetch,
        deliveryWindow,
        deliveryWindowBytes,
        0,
        sub.streamStart === null ? null : JSON.stringify(sub.streamStart),
      ),
    );
    // A connection already found slow stays slow on a shard it now consumes from too.
    if (sub.connection.slow) shard.writeControl((w) => w.slow(sub.connection.id, true));
  }

  /**
   * Stores `offset` as the last one a stream consumer processed, under its consumer name
   * (x-stream-consumer-name, else its subscription id); a later subscribe with x-stream-offset
   * "stored" and that name starts right after it, on any connection.
   */
  commit(sub: WsSubscription, offset: number): Promise<void> {
    return this.#ctx.management.streamCommit(sub.queue, sub.streamStart?.name ?? String(sub.clientId), offset);
  }

  unsubscribe(sub: WsSubscription): void {
    detachSubscription(sub);
    this.#flush.forgetSubscription(sub);
    if (sub.group !== null) {
      this.#groups.leave(sub);
      return;
    }
    portOf(this.#ctx, sub.shard).writeControl((w) => w.unsubscribe(sub.connection.id, sub.numericId));
    if (sub.privateQueue) this.#ctx.consume.dropQueue(sub.queue, sub.shard);
  }

  /** Settles connection tag(s); false when the tag is unknown. */
  settle(connection: Connection, tag: number, multiple: boolean, ack: boolean, requeue: boolean): boolean {
    const shardTags = connection.tags.settle(tag, multiple);
    if (shardTags.length === 0) return multiple && tag === 0;
    const kind = ack ? RecordKind.ack : RecordKind.nack;
    for (const shardTag of shardTags) portOfTag(this.#ctx, shardTag).writeControl((w) => w.settle(kind, connection.id, shardTag, requeue));
    return true;
  }

  /** Resolves once `shard` processed everything written to it before (front/shard-ping.ts). */
  pingShard(shard: number, afterPublishes = false): Promise<void> {
    return pingShard(this.#ctx, shard, afterPublishes);
  }

  /**
   * Resolves once `sub`'s shard has taken (or refused) its consumer: null when taken, else the
   * refusal (exclusive use, a bad x-stream-offset), which WsSession.onShardError hands here instead
   * of sending it loose. Rejects when the shard restarted first.
   */
  async whenTaken(sub: WsSubscription): Promise<BrokerError | null> {
    const pending: { refused: BrokerError | null } = { refused: null };
    sub.pendingOk = pending;
    try {
      await this.pingShard(sub.shard);
    } finally {
      sub.pendingOk = null;
    }
    return pending.refused;
  }

  /** Sends a JSON receipt once the shard has processed what this connection wrote before it. */
  receiptAfter(connection: Connection, shard: number, receipt: string): void {
    this.pingShard(shard).then(
      () => this.#flush.sendText(connection, `{"op":"receipt","receipt":${JSON.stringify(receipt)}}`),
      () => this.#flush.sendErrorText(connection, ErrorCode.shardUnavailable, 'a shard restarted before confirming', receipt),
    );
  }
}

/** Any error a frame's handling threw, as the client is told it; a non-BrokerError is a bug, logged. */
export function toBrokerError(err: unknown, ctx: BrokerContext): BrokerError {
  if (err instanceof BrokerError) return err;
  ctx.log.error({ err }, 'unexpected error handling a WebSocket frame');
  return new BrokerError(ErrorCode.internal, 'internal error; see the broker log');
}

/** What each protocol module (JSON, binary) works with: the broker, the shared ops and the output. */
export abstract class ProtocolSession {
  protected readonly ctx: BrokerContext;
  protected readonly ops: SessionOps;
  protected readonly flush: DeliveryFlush;

  constructor(ctx: BrokerContext, ops: SessionOps, flush: DeliveryFlush) {
    this.ctx = ctx;
    this.ops = ops;
    this.flush = flush;
  }
}
