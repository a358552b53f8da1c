/**
 * What the front's route and session modules need of the broker, in a module of its own so
 * they depend on this, not on broker.ts (which builds them): no import cycle.
 */
import type { BrokerConfig } from '../config/config.js';
import type { Logger } from '../log/logger.js';
import type { ControlPort, RoomSignal, ShardHandle } from '../shard/shard-handle.js';
import type { Supervisor } from '../shard/supervisor.js';
import type { ConfirmTracker } from '../control/confirm-tracker.js';
import type { Topology } from '../control/topology.js';
import type { Management } from '../control/management.js';
import type { ShardCalls } from '../control/shard-calls.js';
import type { PublishPath } from '../control/publish-path.js';
import type { ConsumePath } from '../control/consume-path.js';
import type { InflatePool } from '../offload/inflate-pool.js';
import type { Authenticator } from '../control/auth.js';
import type { Vhosts } from '../control/vhosts.js';
import type { HopTrace } from '../metrics/hop-trace.js';
import type { GcPauses } from '../metrics/gc-monitor.js';
import type { RefusalLog } from './refusal-log.js';
import type { RouteMethods } from './route-methods.js';
import type { ClusterStatus } from '../cluster/cluster-node.js';
import type { WorkPacer } from './work-pacer.js';

export interface BrokerContext {
  readonly config: BrokerConfig;
  readonly log: Logger;
  readonly shards: readonly ShardHandle[];
  readonly supervisor: Supervisor;
  readonly confirms: ConfirmTracker;
  readonly topology: Topology;
  readonly management: Management;
  /** Request/answer calls through the rings (basic.get). */
  readonly calls: ShardCalls;
  readonly publisher: PublishPath;
  readonly consume: ConsumePath;
  readonly inflate: InflatePool;
  readonly auth: Authenticator;
  /** The vhosts, their limits and what each holds. */
  readonly vhosts: Vhosts;
  /** Sampled hop latencies (GET /v1/stats/latency). */
  readonly trace: HopTrace;
  /** The main thread's GC pauses so far. */
  readonly mainGc: Readonly<GcPauses>;
  /** Refused HTTP requests, logged at warn per client and code at most once per interval. */
  readonly refusals: RefusalLog;
  /** The methods of every registered path (405 + Allow for the others). */
  readonly routes: RouteMethods;
  /** This node's view of its cluster (GET /v1/cluster); null on a node of its own. */
  readonly clusterStatus: () => ClusterStatus | null;
  /** Where control records for queues on other nodes go (front/shard-ports.ts); null on a node of its own. */
  readonly remotePort: () => ControlPort | null;
  /** The cluster link's room for publishes that cross to other nodes (front/shard-ports.ts roomOf); null on a node of its own. */
  readonly clusterRoom: () => RoomSignal | null;
  /** Paces long management answers (--management-share), one for the whole front. */
  readonly pacer: WorkPacer;
}
