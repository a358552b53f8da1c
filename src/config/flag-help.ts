/**
 * What each `shardmq serve` flag means and its default as a person reads it, for `serve --help`
 * and the README's Configuration table (a test keeps the two in step with CONFIG_SPECS).
 */

export interface FlagHelp {
  /** The default as the README says it (`4 MiB`, `cores − 1, at least 1`). */
  readonly def: string;
  readonly meaning: string;
}

export const FLAG_HELP: Readonly<Record<string, FlagHelp>> = {
  host: { def: '127.0.0.1', meaning: 'listen address (loopback unless told otherwise)' },
  port: { def: '7070', meaning: 'HTTP and WebSocket port; 0 picks a free one' },
  'amqp-port': { def: '5672', meaning: 'AMQP 0-9-1 port (RabbitMQ clients); 0 picks a free one, off disables it' },
  'amqps-port': { def: 'off', meaning: 'AMQP 0-9-1 over TLS with tls-cert and tls-key; 0 picks a free one' },
  shards: { def: 'cores − 1, at least 1', meaning: 'shard worker threads' },
  'data-dir': { def: 'none (in memory)', meaning: 'where shards keep their logs' },
  fsync: { def: 'batch', meaning: 'batch (group commit) or always' },
  'fsync-interval-ms': { def: '5', meaning: 'group-commit window with --fsync batch' },
  'log-level': { def: 'info', meaning: 'pino level' },
  'ring-bytes': { def: '4 MiB', meaning: 'capacity of each ring (per shard, per direction; a power of two)' },
  'overflow-bytes': {
    def: '8 MiB',
    meaning:
      'publishes the main thread holds per shard while its ring is full or its flow control holds them; past half of it WebSocket publishers get no more credit, past all of it HTTP publishes wait',
  },
  'publish-wait-ms': {
    def: '5000',
    meaning: 'how long an HTTP publish waits for a full ring and overflow to drain before 503 with the accepted prefix (0: at once)',
  },
  'max-memory': { def: 'half the RAM, ≤ 8 GiB', meaning: 'resident memory above which publishers get 503' },
  'max-message-bytes': { def: '256 KiB', meaning: 'largest message (payload + properties); larger gets 413 / error frame' },
  'max-body-bytes': { def: '16 MiB', meaning: 'largest HTTP body, also after decompression (a gzip bomb gets 413)' },
  'max-batch-lines': { def: '100000', meaning: 'lines in one NDJSON batch' },
  'max-frame-bytes': { def: '1 MiB', meaning: 'largest WebSocket frame (larger closes with 1009)' },
  'max-connections': {
    def: '10000',
    meaning: 'WebSocket connections, and AMQP connections apart (beyond: 503 on upgrade; AMQP: socket closed)',
  },
  'max-subscriptions': { def: '1000', meaning: 'subscriptions per connection' },
  'idle-timeout-s': { def: '120', meaning: 'idle WebSocket timeout (0 = off)' },
  'publish-window': { def: '16384', meaning: 'publish credit per WebSocket connection, in messages (docs/protocol.md §6a)' },
  'publish-window-bytes': { def: '4 MiB', meaning: 'the same in payload bytes' },
  'delivery-window': {
    def: '8192',
    meaning:
      'deliveries in flight per subscription and shard before the socket returns credit (a bound for a slow subscriber, not the pace of a healthy one)',
  },
  'delivery-window-bytes': { def: '1 MiB', meaning: 'the same in payload bytes (also how far one refill takes a socket past high water)' },
  'socket-high-water': { def: '1 MiB', meaning: 'socket buffer above which a subscriber gets no more deliveries until it drains' },
  'slow-consumer-ms': {
    def: '1000',
    meaning:
      'how long a socket may stay above high water (or a client-ack topic subscriber sit on its whole prefetch while its buffer is full) before it counts as slow',
  },
  'latency-sample': {
    def: '1024',
    meaning: 'trace one publish in this many hop by hop (front → shard → front → socket; GET /v1/stats/latency); 0 = off',
  },
  'stats-max-queues': {
    def: '1000',
    meaning: 'queues GET /v1/stats lists one by one, per shard (past it: totals and queuesTotal; per-queue figures on /v1/queues?page=…)',
  },
  'management-share': {
    def: '25',
    meaning:
      'percent of the time a long management answer (a /v1/queues walk) may keep the broker busy; past it the answer waits between slices (100 = unpaced)',
  },
  'topic-buffer': {
    def: '10000',
    meaning:
      'messages a topic subscription holds; past it the broker holds the publishers while the subscriber keeps up, and applies --slow-consumer once it is slow',
  },
  'slow-consumer': {
    def: 'drop',
    meaning:
      "what happens to a slow subscriber's full topic buffer: drop its oldest (counted, and the subscriber is told), disconnect it (1008), or block the publishers",
  },
  'inflate-threads': { def: '1', meaning: 'piscina threads that inflate gzip/deflate batches' },
  'inflate-queue': { def: '64', meaning: 'compressed batches waiting for a thread before 503' },
  'tls-cert': { def: 'none', meaning: 'serve HTTPS/WSS (uWebSockets.js SSLApp)' },
  'tls-key': { def: 'none', meaning: 'serve HTTPS/WSS (uWebSockets.js SSLApp)' },
  'auth-token': { def: 'none', meaning: 'one bearer token that may do everything' },
  'users-file': { def: 'none', meaning: 'JSON users with tokens, publish/subscribe destination patterns and manage' },
  'shutdown-timeout-ms': { def: '5000', meaning: 'how long SIGTERM waits for in-flight confirms' },
  cluster: {
    def: 'none (one node)',
    meaning: 'NATS servers (nats://host:port, comma-separated) joining this node to others; docs/scale-out.md',
  },
  'node-name': { def: '<hostname>-<port>', meaning: "this node's name in the cluster (letters, digits, . _ -)" },
  'cluster-timeout-ms': { def: '2000', meaning: 'a cluster node silent this long is out (heartbeats every quarter of it)' },
  'cluster-buffer-bytes': {
    def: '32 MiB',
    meaning:
      'forwarded bytes NATS has not acknowledged, and received bytes waiting for ring room; past it messages are dropped and counted in /v1/cluster',
  },
};
