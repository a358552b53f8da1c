import { availableParallelism, totalmem } from 'node:os';

/** Every default of the broker, each with why it is what it is. */

/** Loopback unless told otherwise: a broker must not be reachable from the network by accident. */
export const DEFAULT_HOST = '127.0.0.1';
/** The contract's port (design.md §3). */
export const DEFAULT_PORT = 7070;
/** AMQP 0-9-1's IANA port, where every RabbitMQ client looks first (`amqp://localhost`). */
export const DEFAULT_AMQP_PORT = 5672;
/** One core stays with the main thread, which does all socket I/O; at least one shard. */
export const DEFAULT_SHARDS = Math.max(1, availableParallelism() - 1);
export const DEFAULT_LOG_LEVEL = 'info';
/**
 * 4 MiB per ring direction: docs/engine-notes.md §2 measured 64 KiB as too small
 * (21k full-waits per 10M records) and 1–4 MiB at full speed.
 */
export const DEFAULT_RING_BYTES = 4 * 1024 * 1024;
/** Largest message payload accepted; above this a publisher gets 413. Must fit a ring record (capacity/4). */
export const DEFAULT_MAX_MESSAGE_BYTES = 256 * 1024;
/** Largest HTTP request body (an NDJSON batch can hold many messages). */
export const DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024;
/** Largest WebSocket frame; uWebSockets.js closes the connection (1009) above it. */
export const DEFAULT_MAX_FRAME_BYTES = 1024 * 1024;
/** Default prefetch for client-ack subscriptions that do not name one (RabbitMQ's STOMP default is unlimited; we bound it). */
export const DEFAULT_PREFETCH = 1000;
/**
 * Deliveries a subscription may have in flight between a shard and its socket before the front
 * returns credit (it does at the end of every outbound chunk while the socket is below
 * --socket-high-water). A bound for a slow subscriber, not the rate of a healthy one: the credit
 * round trip must cover several outbound chunks (2048 records) so a subscriber that keeps up never
 * waits for it (1024 capped 1→1 at ~140k msg/s, issue 12).
 */
export const DEFAULT_DELIVERY_WINDOW = 8192;
/**
 * The same window in payload bytes. It is also how far past --socket-high-water one refill takes a
 * socket, so a subscriber reading R bytes/s stays above high water for up to window ÷ R after each
 * refill: with 8 MiB, a subscriber reading 2-3 MB/s (16 of them in one busy process, issue 12's
 * W2) looked slow for --slow-consumer-ms and lost messages; with 1 MiB, only one reading < 1 MB/s can.
 */
export const DEFAULT_DELIVERY_WINDOW_BYTES = 1024 * 1024;
/**
 * Publish credit per WebSocket connection (binary CREDIT ops, JSON `credit` frames): what a
 * publisher may have sent and not yet had taken into a shard's ring. Returned at the end of each
 * frame while the shards it published to hold less than half of --overflow-bytes; so it is what
 * one publisher can add to main-thread memory when a shard holds its publishes.
 */
export const DEFAULT_PUBLISH_WINDOW = 16_384;
export const DEFAULT_PUBLISH_WINDOW_BYTES = 4 * 1024 * 1024;
/** Socket buffered bytes above which the front end stops returning credit (the shard holds messages instead). */
export const DEFAULT_SOCKET_HIGH_WATER = 1024 * 1024;
/**
 * Messages a private topic-subscription queue holds for a slow subscriber before it drops the
 * oldest (counted as dropped). Queues under /queue/ are not capped by this.
 */
export const DEFAULT_TOPIC_BUFFER = 10_000;
/** Main-thread overflow per shard when its ring is full, before publishers get 503. */
export const DEFAULT_OVERFLOW_BYTES = 8 * 1024 * 1024;

/**
 * How long an HTTP publish whose shard ring and overflow are full waits for room before it is
 * answered 503 (with the accepted prefix): a batch larger than ring + overflow on a broker that
 * keeps up is then accepted whole, and only a broker that stays saturated refuses. 0 = refuse at once.
 */
export const DEFAULT_PUBLISH_WAIT_MS = 5000;
/** How long /healthz waits for each shard to answer a ping. */
export const HEALTH_TIMEOUT_MS = 1000;
/** Graceful shutdown: how long to wait for in-flight confirms and flushes. */
export const DEFAULT_SHUTDOWN_TIMEOUT_MS = 5000;
/** Group commit: one fsync per batch of publishes, at most every few ms (design.md §3 Durability). */
export const DEFAULT_FSYNC = 'batch';
export const DEFAULT_FSYNC_INTERVAL_MS = 5;
/** Inflate pool threads: it competes with shards for cores, so one unless told otherwise. */
export const DEFAULT_INFLATE_THREADS = 1;
/** Compressed batches waiting for an inflate thread before publishers get 503. */
export const DEFAULT_INFLATE_QUEUE = 64;
/** Lines one NDJSON batch may hold. */
export const DEFAULT_MAX_BATCH_LINES = 100_000;
export const DEFAULT_MAX_CONNECTIONS = 10_000;
/** Subscriptions one WebSocket connection may hold. */
export const DEFAULT_MAX_SUBSCRIPTIONS = 1000;
/** uWS closes sockets idle this long (it pings first); 0 turns it off. */
export const DEFAULT_IDLE_TIMEOUT_S = 120;
/** A topic subscriber that falls behind loses its oldest messages (counted, and told), rather than its connection. */
export const DEFAULT_SLOW_CONSUMER = 'drop';
/**
 * How long a subscriber's socket may stay above --socket-high-water before it counts as slow
 * (its policy applies then). Until then a full topic buffer holds the publishers instead: a GC
 * pause or a burst does not cost a healthy subscriber messages.
 */
export const DEFAULT_SLOW_CONSUMER_MS = 1000;
/**
 * One publish in this many is traced hop by hop (GET /v1/stats/latency): one decrement per publish,
 * two small ring records per traced one, so always on; 0 turns it off.
 */
export const DEFAULT_LATENCY_SAMPLE = 1024;
/**
 * Queues /v1/stats lists one by one, per shard (RabbitMQ's return_per_object_metrics, bounded): past
 * it the answer keeps its totals and counts, and per-queue figures are on /v1/queues, paginated. A
 * stats call must not cost every queue of a broker with 100k of them.
 */
export const DEFAULT_STATS_MAX_QUEUES = 1000;
/**
 * Percent of the time a long management answer (a /v1/queues walk) may keep the broker busy: past it
 * the answer waits between slices, so a walk of 100,000 queues takes a few seconds rather than half
 * of one, and deliveries beside it keep their latency on a two-core machine.
 */
export const DEFAULT_MANAGEMENT_SHARE = 25;
/**
 * Resident memory above which publishers get 503: half the machine, at most 8 GiB, so a
 * broker under a flood refuses work before the kernel kills it.
 */
export const DEFAULT_MAX_MEMORY_BYTES = Math.min(Math.floor(totalmem() / 2), 8 * 2 ** 30);
/**
 * A cluster node silent this long is out (the bound is 3 s); heartbeats go every quarter
 * of it, so three in a row can be lost to a busy loop before a live node is dropped.
 */
export const DEFAULT_CLUSTER_TIMEOUT_MS = 2000;
/**
 * Forwarded bytes NATS has not acknowledged, and received bytes waiting for ring room, each at
 * most this: about 2 s of a 128-byte 1→1 flow at 250k msg/s, far under nats-server's 64 MiB
 * slow-consumer limit per connection.
 */
export const DEFAULT_CLUSTER_BUFFER_BYTES = 32 * 1024 * 1024;
