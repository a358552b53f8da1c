import { defineConfig } from 'vitest/config';

// Forks, not threads: the tests start their own worker_threads (shards, ring stress),
// and a forked runner keeps those out of vitest's own worker pool.
export default defineConfig({
  test: {
    pool: 'forks',
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Brokers started by tests (in process or spawned) must not all claim AMQP's 5672.
    env: { SHARDMQ_AMQP_PORT: '0' },
  },
});
