import { REMOTE_TAG_BASE } from '../shard/shard-handle.js';

/**
 * A connection's delivery tags, as AMQP gives them per channel: 1, 2, 3... in delivery
 * order, across every shard that delivers to the connection. Shards number their own
 * deliveries; this maps the connection's tag to the shard's for client-ack deliveries,
 * so `multiple` means what AMQP says: every unacked delivery up to this one.
 */
export class DeliveryTags {
  /** Connection tag → shard tag, for client-ack deliveries not yet settled (insertion = tag order). */
  readonly #open = new Map<number, number>();
  /** Connection tag → the subscription it was delivered to, so a cancelled one's tags can go. */
  readonly #subOf = new Map<number, number>();
  #last = 0;

  /** The tag for the next delivery; remembers the shard tag when the delivery needs settling. */
  assign(shardTag: number, tracked: boolean, subscription = 0): number {
    const tag = ++this.#last;
    if (tracked) {
      this.#open.set(tag, shardTag);
      this.#subOf.set(tag, subscription);
    }
    return tag;
  }

  /**
   * Forgets the open tags of a subscription that ended: its shard requeued those deliveries
   * (redelivered), so they can no longer be settled here.
   */
  dropSubscription(subscription: number): number {
    let dropped = 0;
    for (const [tag, sub] of this.#subOf) {
      if (sub !== subscription) continue;
      this.#subOf.delete(tag);
      this.#open.delete(tag);
      dropped++;
    }
    return dropped;
  }

  /**
   * Removes and returns the shard tags `tag` settles: just it, or with `multiple` every open
   * tag up to it. Empty when the tag is unknown (never given, already settled, or its shard died).
   */
  settle(tag: number, multiple: boolean): number[] {
    if (!multiple) {
      const shardTag = this.#open.get(tag);
      if (shardTag === undefined) return [];
      this.#open.delete(tag);
      this.#subOf.delete(tag);
      return [shardTag];
    }
    const out: number[] = [];
    for (const [t, shardTag] of this.#open) {
      if (t > tag && tag !== 0) break; // tag 0 + multiple: every outstanding delivery (AMQP)
      out.push(shardTag);
      this.#open.delete(t);
      this.#subOf.delete(t);
    }
    return out;
  }

  /** Forgets the deliveries of a shard that died (they can no longer be settled). */
  dropShard(shard: number, shardCount: number): number {
    let dropped = 0;
    for (const [t, shardTag] of this.#open) {
      // Tags of deliveries from another node of a cluster (REMOTE_TAG_BASE and up) belong to no local shard.
      if (shardTag >= REMOTE_TAG_BASE || shardTag % shardCount !== shard) continue;
      this.#open.delete(t);
      this.#subOf.delete(t);
      dropped++;
    }
    return dropped;
  }

  get open(): number {
    return this.#open.size;
  }
}
