import type { Workload } from '../workload.js';
import { amqpWorkload } from './amqp.js';
import { httpPublish } from './http-publish.js';
import { latency } from './latency.js';
import { memory } from './memory.js';
import { nativeBench } from './native-bench.js';
import { openLoop } from './open-loop.js';
import { peers } from './peers.js';
import { shardSweep } from './shard-sweep.js';
import { telemetry } from './telemetry.js';
import { wsFanout } from './ws-fanout.js';
import { durable } from './durable.js';
import { wsJsonVsBinary } from './ws-json-vs-binary.js';
import { scale } from './scale.js';
import { dashboard } from './dashboard.js';
import { streams } from './streams.js';
import { cluster } from './cluster.js';
import { vhosts } from './vhosts.js';

/**
 * Every workload `shardmq bench` knows, in the order it runs them. Order matters: latency picks its
 * rates from ws-fanout's 1→1 figure when ws-fanout ran before it. open-loop is the headline
 * (design.md §4 judges the WebSocket goals on it) and runs early, on a machine not yet warm from
 * the others.
 */
export const WORKLOADS: readonly Workload[] = [
  nativeBench,
  openLoop,
  httpPublish,
  wsFanout,
  telemetry,
  latency,
  shardSweep,
  peers,
  amqpWorkload,
  memory,
  durable,
  streams,
  cluster,
  vhosts,
  wsJsonVsBinary,
  scale,
  dashboard,
];
