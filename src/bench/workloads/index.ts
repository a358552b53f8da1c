import type { Workload } from '../workload.js';
import { httpPublish } from './http-publish.js';

/** Every workload `shardmq bench` knows, in the order it runs them. */
export const WORKLOADS: readonly Workload[] = [httpPublish];
