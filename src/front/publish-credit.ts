/**
 * Publish credit for WebSocket connections (docs/protocol.md §6a): what a client may publish
 * before the broker has taken its earlier messages into the shards' rings. The broker's own
 * pipeline slows a publisher by not returning credit; it never drops what the publisher sent.
 *
 * A connection starts with INITIAL_PUBLISH_CREDIT and is owed the rest of --publish-window(-bytes).
 * Every publish takes credit; at the end of the frame that carried it, what is owed goes back
 * (one CREDIT op or JSON `credit` frame) unless a shard it published to holds more than half of
 * --overflow-bytes of publishes (ring full, or the shard's flow control), or, in a cluster, its
 * publishes crossed to other nodes and the link has no room (front/shard-ports.ts roomOf): then it
 * goes back when there is room again. Credit goes back in quarters of the window, so a steady publisher gets one
 * CREDIT per quarter window, not one per frame, and never stalls (it has three quarters left).
 */
import { REMOTE_SHARD, type RoomSignal } from '../shard/shard-handle.js';
import { crossesNodes, type PublishTarget } from '../control/publish-path.js';
import type { Connection } from './ws-connection.js';

export interface PublishWindow {
  readonly messages: number;
  readonly bytes: number;
}

export class PublishCredit {
  readonly #room: (shard: number) => RoomSignal;
  readonly #minMessages: number;
  readonly #minBytes: number;
  readonly #send: (connection: Connection, messages: number, bytes: number) => void;

  constructor(
    room: (shard: number) => RoomSignal,
    window: PublishWindow,
    send: (connection: Connection, messages: number, bytes: number) => void,
  ) {
    this.#room = room;
    this.#minMessages = Math.max(1, Math.floor(window.messages / 4));
    this.#minBytes = Math.max(1, Math.floor(window.bytes / 4));
    this.#send = send;
  }

  /**
   * Takes credit for `messages` messages of `bytes` bytes in all. False when the client had no
   * credit for them: it ignored flow control (a message may overdraw the bytes only while some are left).
   */
  take(connection: Connection, messages: number, bytes: number): boolean {
    if (connection.publishCredit < messages || connection.publishCreditBytes <= 0) return false;
    connection.publishCredit -= messages;
    connection.publishCreditBytes -= bytes;
    connection.owedPublish += messages;
    connection.owedPublishBytes += bytes;
    return true;
  }

  /** The connection published to `target`: its credit waits on the target's shards, and on the cluster link when it crossed. */
  wroteTo(connection: Connection, target: PublishTarget): void {
    for (const s of target.shards) connection.creditShards.add(s);
    if (crossesNodes(target)) connection.creditShards.add(REMOTE_SHARD);
  }

  /** End of a frame that published: returns what is owed, now or once its shards have room. */
  settle(connection: Connection): void {
    if (connection.closed || connection.creditWaiting) return;
    if (connection.owedPublish < this.#minMessages && connection.owedPublishBytes < this.#minBytes) return;
    for (const s of connection.creditShards) {
      const shard = this.#room(s);
      if (shard.hasRoom) continue;
      connection.creditWaiting = true;
      shard.onRoom(() => {
        connection.creditWaiting = false;
        this.settle(connection);
      });
      return;
    }
    connection.creditShards.clear();
    const messages = connection.owedPublish;
    const bytes = connection.owedPublishBytes;
    connection.owedPublish = 0;
    connection.owedPublishBytes = 0;
    connection.publishCredit += messages;
    connection.publishCreditBytes += bytes;
    this.#send(connection, messages, bytes);
  }
}
