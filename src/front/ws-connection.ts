/**
 * The state of one WebSocket connection and its subscriptions, shared by the session modules
 * (JSON ops, binary ops, delivery flush). Plain records: the modules that own each behaviour
 * read and write them; nothing here does I/O.
 */
import type { WebSocket } from 'uWebSockets.js';
import type { Destination } from '../protocol/destination.js';
import type { BinaryDecoder } from '../protocol/ws-binary-decode.js';
import type { BinaryFrameWriter } from '../protocol/ws-binary-encode.js';
import { DeliveryTags } from '../control/delivery-tags.js';
import type { Principal } from '../control/auth.js';

/** WebSocket close codes (RFC 6455 §7.4.1). */
export const CLOSE_PROTOCOL_ERROR = 1002;
export const CLOSE_POLICY = 1008;
export const CLOSE_TOO_BIG = 1009;

export interface WsSubscription {
  readonly connection: Connection;
  /** The client's id: a string for JSON subscriptions, the u32 for binary ones. */
  readonly clientId: string | number;
  /** JSON-encoded client id, computed once rather than per delivery. */
  readonly clientIdJson: string;
  /** Connection-unique id used in ring records. */
  readonly numericId: number;
  readonly binary: boolean;
  readonly destination: Destination;
  readonly queue: string;
  readonly shard: number;
  /** A server-named queue of this subscription alone, deleted with it. */
  readonly privateQueue: boolean;
  readonly ackMode: 'auto' | 'client';
  readonly prefetch: number;
  /** Deliveries taken from the shard whose credit is not yet returned. */
  owedCredit: number;
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
}

/** What uWS keeps per socket: the principal from the upgrade, then the connection. */
export interface ConnectionData {
  connection?: Connection;
  principal?: Principal;
}

export function newConnection(id: number, principal: Principal, ws: WebSocket<ConnectionData>): Connection {
  return {
    id,
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
