/**
 * The stream queues of one shard (`x-queue-type: stream`): each keeps a StreamLog instead of a
 * ready list. A publish routed to one is appended (it is "in the stream" once appended); a read
 * never removes; retention runs once per batch on the streams that grew and, for ages, on a timer.
 *
 * The stream's MessageQueue still exists, as the routing target bindings point at and for the
 * listings; it never holds a message. Reading over HTTP is a manage request answered with JSON;
 * consumers are readers with a cursor each, fed while they have credit (and prefetch slots).
 * A stream whose readers met a full outbound ring waits in ShardOutbound like a queue does.
 *
 * Under --data-dir a stream's log is on disk (store/stream-store.ts): an append is confirmed, and
 * readable, once the stream store reports it durable; a reader far behind reads from the files a
 * chunk at a time and is woken when its chunk is in.
 */
import { isUtf8 } from 'node:buffer';
import type { MessageQueue } from '../queue/message-queue.js';
import type { Consumer, MessageProperties } from '../queue/types.js';
import { decodeProperties, encodeProperties } from '../protocol/properties.js';
import type { PublishRecord } from '../protocol/ring-record-codec.js';
import type { FigureSource } from './queue-figures.js';
import type { Dispatchable, ShardOutbound } from './shard-outbound.js';
import { propertiesToJson } from '../protocol/json-properties.js';
import { parseStreamOffset, resolveStart, StreamOffsetError } from '../stream/offset-spec.js';
import type { StreamArguments } from '../stream/stream-arguments.js';
import { entryHead, entryLength, readEntry, writeEntry, type EntryHead } from '../stream/stream-entry.js';
import { StreamCursor, StreamLog, type ReplayLog } from '../stream/stream-log.js';
import type { DurableStreamLog } from '../store/durable-stream-log.js';
import type { StreamStore } from '../store/stream-store.js';

/** A read's answer carries at most this many bytes of entries (it travels as one ring record). */
export const STREAM_READ_MAX_BYTES = 256 * 1024;
/** Consumer names whose offsets one stream stores (bounded memory: a name per client would grow without end). */
const MAX_STORED_OFFSETS = 10_000;
/** The longest an HTTP read waits for a chunk from disk before answering with what it has. */
const READ_WAIT_MS = 5000;
/** How often idle streams with an x-max-age are looked at. */
const AGE_SWEEP_MS = 1000;

export interface StreamInfo {
  readonly name: string;
  readonly first_offset: number;
  readonly next_offset: number;
  readonly messages: number;
  readonly bytes: number;
  readonly segments: number;
  /** On disk under --data-dir (durable), or in memory. */
  readonly durable: boolean;
  /** The end of what readers may see (on disk: what is fsynced). */
  readonly readable_offset: number;
  readonly first_timestamp: string | null;
  readonly last_timestamp: string | null;
  readonly max_length_bytes: number | null;
  readonly max_age_ms: number | null;
  readonly segment_bytes: number;
  /** Entries dropped by retention since the stream was declared. */
  readonly retention_dropped: number;
  /** Its consumers now, each with how far behind the end it is. */
  readonly consumers: ReadonlyArray<{
    name: string;
    connection: number;
    subscription: number;
    next_offset: number;
    lag: number;
    unacked: number;
  }>;
  /** Committed offsets by consumer name. */
  readonly stored_offsets: Readonly<Record<string, number>>;
}

export interface StreamReadAnswer {
  readonly first_offset: number;
  readonly next_offset: number;
  /** Entries the read asked for that retention had already dropped (it started before first_offset). */
  readonly skipped: number;
  /** One JSON object per entry, already serialised: the front joins them into NDJSON. */
  readonly lines: string[];
}

interface Stream extends Dispatchable {
  readonly name: string;
  readonly log: ReplayLog;
  /** The same log when it is on disk (stored offsets are written to it); null in memory. */
  readonly disk: DurableStreamLog | null;
  readonly args: StreamArguments;
  retentionDropped: number;
  /** Its consumers, each at its own position. */
  readonly readers: Set<Reader>;
  /** Offsets consumers committed, by consumer name: the last each processed (x-stream-offset "stored" resumes after it). */
  readonly stored: Map<string, number>;
}

/** A consumer of a stream: where it is, and how much of what retention skipped it has been told. */
interface Reader {
  readonly consumer: Consumer;
  /** Its consumer name (stored offsets); '' when it has none. */
  readonly name: string;
  readonly stream: Stream;
  readonly cursor: StreamCursor;
  told: number;
  /** A client-ack reader's delivery tags not yet settled (at most its prefetch). */
  readonly unacked: Set<number>;
}

/**
 * Writes one delivery of a stream entry to its consumer (ShardCore's ring writer, with a fresh
 * delivery tag); returns the tag, or 0 when the outbound ring is full (nothing was written).
 */
export type StreamDeliver = (
  consumer: Consumer,
  exchange: string,
  routingKey: string,
  properties: Uint8Array,
  payload: Uint8Array,
) => number;

const iso = (ms: number): string | null => (Number.isFinite(ms) ? new Date(ms).toISOString() : null);

export class ShardStreams {
  readonly #byQueue = new Map<MessageQueue, Stream>();
  readonly #byName = new Map<string, Stream>();
  /** Streams appended to in this batch: retention looks at them at its end. */
  readonly #grown = new Set<Stream>();
  /** Streams with an x-max-age: the only ones the age sweep looks at. */
  readonly #aging = new Set<Stream>();
  readonly #now: () => number;
  /** Where a stream whose readers met a full outbound ring waits for room (ShardOutbound's stalled set). */
  readonly #outbound: Pick<ShardOutbound, 'stall' | 'forget' | 'commit'>;
  /** Streams on disk (--data-dir), or null: in memory. */
  readonly #store: StreamStore | null;
  readonly #byLog = new Map<ReplayLog, Stream>();
  #ageTimer: NodeJS.Timeout | null = null;
  #lastHead: { exchange: string; routingKey: string; head: EntryHead } | null = null;
  readonly #readers = new Map<Consumer, Reader>();
  #deliver: StreamDeliver = () => 0;
  /** Unsettled tags of client-ack readers. */
  readonly #tags = new Map<number, Reader>();

  constructor(now: () => number, outbound: Pick<ShardOutbound, 'stall' | 'forget' | 'commit'>, store: StreamStore | null = null) {
    this.#now = now;
    this.#outbound = outbound;
    this.#store = store;
  }

  /** The number of the last append to a stream on disk (0: none, or streams are in memory): what a confirm waits for. */
  get appendSeq(): number {
    return this.#store?.seq ?? 0;
  }

  /** The stream store made appends durable: the readers of the streams it wrote read on. */
  durable(logs: readonly ReplayLog[]): void {
    for (const log of logs) {
      const stream = this.#byLog.get(log);
      if (stream !== undefined && stream.readers.size > 0) this.#pumpStream(stream);
    }
  }

  /** What the streams on disk recovered from their files. */
  recovered(): { streams: number; entries: number; corruptSkipped: number; tornBytesTruncated: number } {
    const total = { streams: 0, entries: 0, corruptSkipped: 0, tornBytesTruncated: 0 };
    for (const s of this.#byName.values()) {
      if (s.disk === null) continue;
      const r = s.disk.recovery;
      total.streams++;
      total.entries += r.entries;
      total.corruptSkipped += r.corruptSkipped;
      total.tornBytesTruncated += r.tornBytesTruncated;
    }
    return total;
  }

  /** After recovery: stream directories no declared stream owns are moved aside; returns their ids. */
  sweepOrphans(): string[] {
    return this.#store?.sweep(this.#byName.keys()) ?? [];
  }

  /** How deliveries are written (set once by ShardCore, which owns the ring writer and the tags). */
  set deliverWith(deliver: StreamDeliver) {
    this.#deliver = deliver;
  }

  /**
   * Makes `consumer` read the stream behind `queue` from where `offset` (its x-stream-offset value)
   * says, and delivers what its credit allows. Throws StreamOffsetError for a bad offset.
   */
  attach(queue: MessageQueue, consumer: Consumer, offset: unknown, name: string): void {
    const stream = this.#byQueue.get(queue) as Stream;
    const spec = parseStreamOffset(offset, this.#now());
    if (spec.kind === 'stored' && name === '')
      throw new StreamOffsetError('x-stream-offset "stored" needs a consumer name (x-stream-consumer-name)');
    const start = resolveStart(spec, stream.log, stream.stored.get(name));
    const reader: Reader = { consumer, name, stream, cursor: new StreamCursor(start), told: 0, unacked: new Set() };
    reader.cursor.wake = () => {
      // Its chunk is in from disk (or it was moved past a dropped file): read on, if still attached.
      if (this.#readers.get(consumer) !== reader) return;
      this.#pumpReader(reader);
      this.#outbound.commit();
    };
    this.#readers.set(consumer, reader);
    stream.readers.add(reader);
    this.#pumpReader(reader);
  }

  detach(consumer: Consumer): void {
    const reader = this.#readers.get(consumer);
    if (reader === undefined) return;
    this.#readers.delete(consumer);
    reader.stream.readers.delete(reader);
    for (const tag of reader.unacked) this.#tags.delete(tag);
  }

  /**
   * An ack, nack or reject of `tag` from `connectionId`: for a stream it only frees the reader's
   * prefetch slot (a stream keeps every entry: nothing is removed or requeued, as RabbitMQ's streams).
   * False when the tag is not an unsettled stream delivery of that connection.
   */
  settle(connectionId: number, tag: number): boolean {
    const reader = this.#tags.get(tag);
    if (reader === undefined || reader.consumer.connectionId !== connectionId) return false;
    this.#tags.delete(tag);
    reader.unacked.delete(tag);
    reader.consumer.unacked--;
    this.#pumpReader(reader);
    return true;
  }

  /** `consumer` got credit back: it reads on. False when it is not a stream reader. */
  credited(consumer: Consumer): boolean {
    const reader = this.#readers.get(consumer);
    if (reader === undefined) return false;
    this.#pumpReader(reader);
    return true;
  }

  /** Delivers to every reader of `stream` what its credit allows, until the ring fills. */
  #pumpStream(stream: Stream): void {
    for (const reader of stream.readers) if (!this.#pumpReader(reader)) return;
  }

  #pumpReader(reader: Reader): boolean {
    const { consumer, cursor, stream } = reader;
    const acking = consumer.ackMode === 'client';
    let full = false;
    /** What the reader may take now: its credit, and for a client-ack reader its free prefetch slots. */
    const room = (): number =>
      consumer.creditBytes > 0
        ? Math.min(consumer.credit, acking && consumer.prefetch > 0 ? consumer.prefetch - consumer.unacked : Infinity)
        : 0;
    let take = room();
    while (take > 0 && cursor.next < stream.log.readableEnd && !full) {
      // 0 from a log on disk: it is fetching the next chunk and wakes the reader when it has it.
      const n = stream.log.read(cursor, Math.min(take, 256), consumer.creditBytes, (_offset, _ts, bytes, start, end) => {
        const e = readEntry(bytes, start, end);
        const tag = this.#deliver(consumer, e.exchange, e.routingKey, this.#toldSkips(reader, e.properties), e.payload);
        if (tag === 0) {
          full = true;
          return false;
        }
        consumer.credit--;
        consumer.creditBytes -= e.payload.byteLength;
        if (acking) {
          consumer.unacked++;
          reader.unacked.add(tag);
          this.#tags.set(tag, reader);
        }
        return true;
      });
      if (n === 0) break;
      take = room();
    }
    if (full) this.#outbound.stall(stream);
    return !full;
  }

  /**
   * The entry's properties as stored (its offset already in them), or, when retention dropped
   * entries this reader had not reached, with their count added in `x-stream-offset-skipped`.
   */
  #toldSkips(reader: Reader, properties: Uint8Array): Uint8Array {
    if (reader.cursor.skipped <= reader.told) return properties;
    const skipped = reader.cursor.skipped - reader.told;
    reader.told = reader.cursor.skipped;
    const p = decodeProperties(properties, 0, properties.byteLength) as MessageProperties;
    return encodeProperties({ ...p, headers: { ...(p.headers ?? {}), 'x-stream-offset-skipped': skipped } });
  }

  /**
   * A publish's properties (as ShardCore decoded them for routing) with its offset in the
   * `x-stream-offset` header (RabbitMQ's name), encoded once when it is appended rather than for
   * every delivery of every replay.
   */
  #withOffset(properties: MessageProperties | null, offset: number): Uint8Array {
    return encodeProperties({ ...properties, headers: { ...properties?.headers, 'x-stream-offset': offset } });
  }

  get size(): number {
    return this.#byQueue.size;
  }

  isStream(name: string): boolean {
    return this.#byName.has(name);
  }

  declare(queue: MessageQueue, args: StreamArguments): void {
    const limits = { maxBytes: args.maxBytes, maxAgeMs: args.maxAgeMs };
    const disk = this.#store?.open(queue.name, args.segmentBytes, limits) ?? null;
    const stream: Stream = {
      name: queue.name,
      log: disk ?? new StreamLog({ segmentBytes: args.segmentBytes, ...limits }),
      disk,
      args,
      retentionDropped: 0,
      readers: new Set(),
      stored: new Map(disk?.stored),
      dispatch: () => this.#pumpStream(stream),
    };
    this.#byLog.set(stream.log, stream);
    this.#byQueue.set(queue, stream);
    this.#byName.set(queue.name, stream);
    if (args.maxAgeMs !== undefined) {
      this.#aging.add(stream);
      this.#startAgeSweep();
    }
  }

  /** Forgets a deleted stream; returns the entries it held. */
  delete(queue: MessageQueue): number {
    const stream = this.#byQueue.get(queue);
    if (stream === undefined) return 0;
    this.#byQueue.delete(queue);
    this.#byName.delete(queue.name);
    this.#byLog.delete(stream.log);
    if (stream.disk !== null) this.#store?.remove(stream.disk);
    this.#grown.delete(stream);
    this.#aging.delete(stream);
    this.#outbound.forget(stream);
    for (const r of stream.readers) this.detach(r.consumer);
    if (this.#aging.size === 0) this.stop();
    return stream.log.count;
  }

  /** The listing figures of a stream: its entries as the depth, its bytes as the ready bytes. */
  figures(queue: MessageQueue): FigureSource {
    const log = (this.#byQueue.get(queue) as Stream).log;
    return { depth: log.count, consumerCount: 0, unackedCount: 0, readyBytes: log.bytes, stats: queue.stats };
  }

  /** Entries held by the stream behind `queue`; undefined for a classic queue. */
  depthOf(queue: MessageQueue): number | undefined {
    return this.#byQueue.get(queue)?.log.count;
  }

  /**
   * Appends a publish (its payload read in place from `buf`, its properties as ShardCore decoded
   * them) to the stream behind `queue`, if it is one; returns false for a classic queue (the caller
   * goes on with it as usual).
   */
  append(queue: MessageQueue, rec: PublishRecord, buf: Uint8Array, properties: MessageProperties | null): boolean {
    const stream = this.#byQueue.get(queue);
    if (stream === undefined) return false;
    const { exchange, routingKey, payloadOffset, payloadLength } = rec;
    let last = this.#lastHead;
    if (last === null || last.exchange !== exchange || last.routingKey !== routingKey) {
      last = { exchange, routingKey, head: entryHead(exchange, routingKey) };
      this.#lastHead = last;
    }
    const head = last.head;
    const encoded = this.#withOffset(properties, stream.log.nextOffset);
    stream.log.appendWith(entryLength(head, encoded.byteLength, payloadLength), this.#now(), (bytes, at) =>
      writeEntry(bytes, at, head, encoded, buf, payloadOffset, payloadLength),
    );
    this.#grown.add(stream);
    return true;
  }

  /** End of a batch: the readers of the streams that grew read on, then retention; what grew on disk is flushed. */
  endBatch(): void {
    if (this.#grown.size === 0) return;
    this.#store?.requestFlush();
    const now = this.#now();
    for (const s of this.#grown) {
      if (s.readers.size > 0) this.#pumpStream(s);
      s.retentionDropped += s.log.applyRetention(now);
    }
    this.#grown.clear();
  }

  /**
   * Stores `offset` as the last entry consumer `consumerName` of stream `name` processed (it may go
   * back as well as forward: a consumer may choose to reprocess). Refused: an offset not yet in the
   * stream. Null when there is no such stream.
   */
  commit(name: string, consumerName: string, offset: number): Record<string, never> | Promise<Record<string, never>> | null {
    const s = this.#byName.get(name);
    if (s === undefined) return null;
    if (!Number.isSafeInteger(offset) || offset < 0 || offset >= s.log.nextOffset) {
      throw new StreamOffsetError(
        `cannot commit offset ${offset} for consumer '${consumerName}': the stream's offsets run from 0 to ${s.log.nextOffset - 1}`,
      );
    }
    if (!s.stored.has(consumerName) && s.stored.size >= MAX_STORED_OFFSETS) {
      throw new StreamOffsetError(`stream '${name}' already stores offsets for ${MAX_STORED_OFFSETS} consumer names`);
    }
    s.stored.set(consumerName, offset);
    if (s.disk === null || this.#store === null) return {};
    // On disk the commit is answered once it is durable: a consumer told "stored" resumes there after a crash.
    s.disk.storeOffset(consumerName, offset);
    return this.#store.whenDurable().then(() => ({}));
  }

  info(name: string): StreamInfo | null {
    const s = this.#byName.get(name);
    if (s === undefined) return null;
    const log = s.log;
    return {
      name,
      first_offset: log.firstOffset,
      next_offset: log.nextOffset,
      messages: log.count,
      bytes: log.bytes,
      segments: log.segmentCount,
      durable: s.disk !== null,
      readable_offset: log.readableEnd,
      first_timestamp: iso(log.firstTimestamp),
      last_timestamp: iso(log.lastTimestamp),
      max_length_bytes: s.args.maxBytes ?? null,
      max_age_ms: s.args.maxAgeMs ?? null,
      segment_bytes: s.args.segmentBytes,
      retention_dropped: s.retentionDropped,
      consumers: [...s.readers].map((r) => ({
        name: r.name,
        connection: r.consumer.connectionId,
        subscription: r.consumer.subscriptionId,
        next_offset: r.cursor.next,
        lag: log.nextOffset - r.cursor.next,
        unacked: r.unacked.size,
      })),
      stored_offsets: Object.fromEntries(s.stored),
    };
  }

  /**
   * Up to `limit` entries from where `offset` (an x-stream-offset value) says, at most
   * STREAM_READ_MAX_BYTES of them (at least one). Throws StreamOffsetError for a bad offset.
   */
  read(name: string, offset: unknown, limit: number): StreamReadAnswer | Promise<StreamReadAnswer> | null {
    const s = this.#byName.get(name);
    if (s === undefined) return null;
    const log = s.log;
    const cursor = new StreamCursor(resolveStart(parseStreamOffset(offset, this.#now()), log, undefined));
    const lines: string[] = [];
    let bytes = 0;
    const answer = (): StreamReadAnswer => ({ first_offset: log.firstOffset, next_offset: cursor.next, skipped: cursor.skipped, lines });
    const wants = (): boolean => lines.length < limit && bytes < STREAM_READ_MAX_BYTES && cursor.next < log.readableEnd;
    /** Reads while the answer wants more; false when a log on disk is fetching the chunk it needs. */
    const fill = (): boolean => {
      while (wants()) {
        const n = this.#readLines(log, cursor, limit - lines.length, STREAM_READ_MAX_BYTES - bytes, lines, (b) => {
          bytes += b;
        });
        if (n === 0) return false;
      }
      return true;
    };
    if (fill()) return answer();
    // Answer once the read has what it asked for, or with what is in if no chunk comes (a file
    // damaged after recovery): never hang a request.
    return new Promise((resolve) => {
      const giveUp = setTimeout(() => resolve(answer()), READ_WAIT_MS);
      cursor.wake = () => {
        if (!fill()) return;
        clearTimeout(giveUp);
        resolve(answer());
      };
    });
  }

  /** Up to `limit` entries as NDJSON lines; returns how many. */
  #readLines(
    log: ReplayLog,
    cursor: StreamCursor,
    limit: number,
    maxBytes: number,
    lines: string[],
    counted: (bytes: number) => void,
  ): number {
    return log.read(cursor, limit, maxBytes, (off, ts, bytes, start, end) => {
      counted(end - start);
      const e = readEntry(bytes, start, end);
      const payload = Buffer.from(e.payload.buffer, e.payload.byteOffset, e.payload.byteLength);
      const text = isUtf8(payload);
      const line: Record<string, unknown> = {
        offset: off,
        timestamp: new Date(ts).toISOString(),
        exchange: e.exchange,
        routing_key: e.routingKey,
      };
      if (e.properties.byteLength > 0) line.properties = propertiesToJson(decodeProperties(e.properties, 0, e.properties.byteLength));
      line.payload = text ? payload.toString('utf8') : payload.toString('base64');
      if (!text) line.encoding = 'base64';
      lines.push(JSON.stringify(line));
      return true;
    });
  }

  /** Flushes the streams on disk and closes their files. */
  async close(): Promise<void> {
    this.stop();
    await this.#store?.close();
  }

  stop(): void {
    if (this.#ageTimer !== null) clearInterval(this.#ageTimer);
    this.#ageTimer = null;
  }

  #startAgeSweep(): void {
    if (this.#ageTimer !== null) return;
    // Streams that stop growing must still age out; only those with an age limit are looked at.
    this.#ageTimer = setInterval(() => {
      const now = this.#now();
      for (const s of this.#aging) s.retentionDropped += s.log.applyRetention(now);
    }, AGE_SWEEP_MS);
    this.#ageTimer.unref?.();
  }
}
