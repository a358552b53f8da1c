/**
 * Telling a slow subscriber what it lost. A shard reports the messages it discarded for a
 * subscription (one `dropped` record per subscription per batch); here they are counted per
 * subscription (for /v1/stats and /metrics) and told to its client: a binary DROPPED op or a JSON
 * `{"op":"dropped",...}` frame, at most one per subscription per NOTICE_INTERVAL_MS (the rest waits
 * for the next one, so the counts add up to the total), and a warn line at most every WARN_INTERVAL_MS.
 * A stalled subscriber reads its notices when it reads again; they sit behind its deliveries.
 *
 * Work follows drops: a timer runs only while some subscription has a count not yet told, and it
 * visits only those.
 */
import { formatDestination } from '../protocol/destination.js';
import type { Logger } from '../log/logger.js';
import type { DeliveryFlush } from './delivery-flush.js';
import type { WsSubscription } from './ws-connection.js';

const NOTICE_INTERVAL_MS = 1000;
const WARN_INTERVAL_MS = 10_000;

export class DropNotices {
  readonly #flush: DeliveryFlush;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #pending = new Set<WsSubscription>();
  #timer: NodeJS.Timeout | null = null;
  /** Messages dropped for slow subscribers since the broker started. */
  total = 0;

  constructor(flush: DeliveryFlush, log: Logger, now: () => number = Date.now) {
    this.#flush = flush;
    this.#log = log;
    this.#now = now;
  }

  /** A shard discarded `count` messages of `sub`. */
  record(sub: WsSubscription, count: number): void {
    sub.dropped += count;
    const notices = (sub.notices ??= { unreported: 0, lastNoticeAt: 0, lastWarnAt: 0 });
    notices.unreported += count;
    this.total += count;
    if (this.#now() - notices.lastNoticeAt >= NOTICE_INTERVAL_MS) this.#notify(sub);
    else {
      this.#pending.add(sub);
      this.#schedule();
    }
  }

  /** The subscription is gone: nothing more is told about it. */
  forget(sub: WsSubscription): void {
    this.#pending.delete(sub);
  }

  stop(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }

  #schedule(): void {
    if (this.#timer !== null) return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      const now = this.#now();
      for (const sub of this.#pending) {
        if (now - (sub.notices?.lastNoticeAt ?? 0) < NOTICE_INTERVAL_MS) continue;
        this.#pending.delete(sub);
        this.#notify(sub);
      }
      if (this.#pending.size > 0) this.#schedule();
    }, NOTICE_INTERVAL_MS);
    this.#timer.unref();
  }

  #notify(sub: WsSubscription): void {
    const notices = sub.notices;
    const { connection } = sub;
    if (notices === null || notices.unreported === 0 || connection.closed) return;
    const count = notices.unreported;
    notices.unreported = 0;
    const now = this.#now();
    notices.lastNoticeAt = now;
    const destination = destinationOf(sub);
    if (sub.binary) {
      this.#flush.writer(connection).dropped(sub.clientId as number, count, destination);
      this.#flush.flushConnection(connection);
    } else {
      this.#flush.sendText(
        connection,
        `{"op":"dropped","subscription":${sub.clientIdJson},"destination":${JSON.stringify(destination)},"count":${count},"total":${sub.dropped}}`,
      );
    }
    if (now - notices.lastWarnAt >= WARN_INTERVAL_MS) {
      notices.lastWarnAt = now;
      this.#log.warn(
        { connection: connection.id, user: connection.principal.name, subscription: sub.clientId, destination, dropped: sub.dropped },
        'slow consumer: its topic buffer is full and its socket stays above high water; dropping its oldest messages',
      );
    }
  }
}

/** The destination a subscription was made with, as the client wrote it. */
export function destinationOf(sub: WsSubscription): string {
  return formatDestination(sub.destination.type, sub.destination.exchange, sub.destination.name);
}
