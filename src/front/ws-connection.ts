/**
 * The state of one WebSocket connection and its subscriptions, shared by the session modules
 * (JSON ops, binary ops, delivery flush). Plain records: the modules that own each behaviour
 * read and write them; nothing here does I/O.
 */
import type { WebSocket } from 'uWebSockets.js';
import type { Destination } from '../protocol/destination.js';
import type { BinaryDecoder } from '../protocol/ws-binary-decode.js';
import type { BinaryFrameWriter } from '../protocol/ws-binary-encode.js';
import type { BrokerError } from '../protocol/errors.js';
import type { StreamStart } from '../protocol/ring-record-codec.js';
import { DeliveryTags } from '../control/delivery-tags.js';
import type { Principal } from '../control/auth.js';
import { INITIAL_PUBLISH_CREDIT } from '../protocol/ws-binary.js';

/** WebSocket close codes (RFC 6455 §7.4.1). */
export const CLOSE_PROTOCOL_ERROR = 1002;
export const CLOSE_POLICY = 1008;
export const CLOSE_TOO_BIG = 1009;

/** Of the messages a subscription lost, those not yet told to its client, and when it was last told and logged (ms). */
export interface DropNoticeState {
  unreported: number;
  lastNoticeAt: number;
  lastWarnAt: number;
}

/** A shared stream as a subscription sees it (front/delivery-groups.ts holds the rest). */
export interface StreamGroup {
  /** The stream id its client learned from a STREAM op. */
  readonly id: number;
}

export interface WsSubscription {
  readonly connection: Connection;
  /** The client's id: a string for JSON subscriptions, the u32 for binary ones. */
  readonly clientId: string | number;
  /** JSON-encoded client id, computed once rather than per delivery (JSON subscriptions only; empty for binary ones). */
  readonly clientIdJson: string;
  /** Connection-unique id used in ring records. */
  readonly numericId: number;
  readonly binary: boolean;
  readonly destination: Destination;
  readonly queue: string;
  readonly shard: number;
  /** The shared stream it takes its deliveries from (front/delivery-groups.ts); null: its own consumer. */
  readonly group: StreamGroup | null;
  /** A server-named queue of this subscription alone, deleted with it. */
  readonly privateQueue: boolean;
  readonly ackMode: 'auto' | 'client';
  readonly prefetch: number;
  /** Deliveries taken from the shard whose credit is not yet returned, and their payload bytes. */
  owedCredit: number;
  owedBytes: number;
  /** Messages the shard discarded for this subscription while it was slow (shard/shard-flow.ts). */
  dropped: number;
  /** Its drop notices' state (front/drop-notices.ts), made at its first drop: most subscriptions never drop. */
  notices: DropNoticeState | null;
  /** A stream consumer's start and name (streamStartOf); null when none was given. */
  readonly streamStart: StreamStart | null;
  /**
   * Set while a SUBSCRIBE waits for its OK (binary) or receipt (JSON): a shard refusing the consumer
   * then (exclusive use, a bad x-stream-offset) fails that request instead of a loose error after it.
   */
  pendingOk: { refused: BrokerError | null } | null;
}

export interface Connection {
  readonly id: number;
  readonly principal: Principal;
  readonly ws: WebSocket<ConnectionData>;
  readonly jsonSubs: Map<string, WsSubscription>;
  readonly binarySubs: Map<number, WsSubscription>;
  readonly byNumericId: Map<number, WsSubscription>;
  readonly tags: DeliveryTags;
  /** JSON frames gathered during the current outbound chunk, sent under one cork. */
  readonly frames: string[];
  /** Binary ops gathered during the current chunk (one frame per chunk), created on first use. */
  writer: BinaryFrameWriter | null;
  decoder: BinaryDecoder | null;
  /** Publisher confirms (binary CONFIRM_SELECT): the last sequence number given out. */
  confirmSeq: number;
  confirming: boolean;
  /** Sequence numbers waiting for a shard confirm; while any, confirms are sent one by one. */
  pendingSeqs: number;
  /** Immediate confirms of the current frame: send one CONFIRM multiple up to here at its end. */
  confirmUpTo: number;
  nextSubscription: number;
  closed: boolean;
  /** Publish credit left to the client (messages, bytes), and what it used that is not yet returned. */
  publishCredit: number;
  publishCreditBytes: number;
  owedPublish: number;
  owedPublishBytes: number;
  /** Shards published to since credit was last returned; credit waits while one of them has no room. */
  readonly creditShards: Set<number>;
  creditWaiting: boolean;
  /** Shards published to since the last FLUSH (binary), which its OK waits for. */
  readonly flushShards: Set<number>;
  /** The socket went above --socket-high-water: the timer that makes it slow past --slow-consumer-ms. */
  slowTimer: NodeJS.Timeout | null;
  /** Above high water past the bound: its shards apply --slow-consumer to its topic subscriptions. */
  slow: boolean;
  /** The peer's address, for the dashboard and logs. */
  readonly peer: string;
  /** Messages it published that the broker took, and deliveries written to it (shared streams included), with their payload bytes. */
  published: number;
  delivered: number;
  deliveredBytes: number;
}

/** What uWS keeps per socket: the principal from the upgrade, then the connection. */
export interface ConnectionData {
  connection?: Connection;
  principal?: Principal;
}

export function newConnection(
  id: number,
  principal: Principal,
  ws: WebSocket<ConnectionData>,
  publishWindow: { readonly messages: number; readonly bytes: number },
  peer = '',
): Connection {
  return {
    id,
    peer,
    published: 0,
    delivered: 0,
    deliveredBytes: 0,
    principal,
    ws,
    jsonSubs: new Map(),
    binarySubs: new Map(),
    byNumericId: new Map(),
    tags: new DeliveryTags(),
    frames: [],
    writer: null,
    decoder: null,
    confirmSeq: 0,
    confirming: false,
    pendingSeqs: 0,
    confirmUpTo: 0,
    nextSubscription: 1,
    closed: false,
    publishCredit: INITIAL_PUBLISH_CREDIT.messages,
    publishCreditBytes: INITIAL_PUBLISH_CREDIT.bytes,
    // The first return grants the rest of the server's window (HTTP/2's SETTINGS after the initial window).
    owedPublish: publishWindow.messages - INITIAL_PUBLISH_CREDIT.messages,
    owedPublishBytes: publishWindow.bytes - INITIAL_PUBLISH_CREDIT.bytes,
    creditShards: new Set(),
    creditWaiting: false,
    flushShards: new Set(),
    slowTimer: null,
    slow: false,
  };
}

/** Forgets a subscription on its connection (its tags too: the shard requeues those deliveries). */
export function detachSubscription(sub: WsSubscription): void {
  const { connection } = sub;
  if (sub.binary) connection.binarySubs.delete(sub.clientId as number);
  else connection.jsonSubs.delete(sub.clientId as string);
  connection.byNumericId.delete(sub.numericId);
  connection.tags.dropSubscription(sub.numericId);
}
