/**
 * Fake shard handles for control/ tests, as ShardCore is tested without threads: every write
 * a decision makes is recorded as `{ shard, method, args }`, and a shard can be told to refuse
 * publishes (a full ring and overflow).
 */
import { NO_LIMITS, Vhost } from '../../src/control/vhosts.js';
import { DEFAULT_VHOST } from '../../src/protocol/vhost-name.js';
import type { InboundWriter } from '../../src/protocol/ring-record-codec.js';
import type { ShardWriter } from '../../src/control/publish-path.js';
import type { ManageAnswer } from '../../src/control/shard-calls.js';
import type { ManageOp } from '../../src/protocol/ring-record-codec.js';
import type { Principal } from '../../src/control/auth.js';

export interface Written {
  readonly shard: number;
  readonly method: string;
  readonly args: unknown[];
}

export class FakeShards {
  readonly written: Written[] = [];
  /** Shards whose `publish` refuses. */
  readonly full = new Set<number>();
  readonly handles: ShardWriter[];

  constructor(count: number) {
    this.handles = Array.from({ length: count }, (_, shard) => ({
      publish: (...args: unknown[]): boolean => {
        if (this.full.has(shard)) return false;
        this.written.push({ shard, method: 'publish', args });
        return true;
      },
      whenRoom: (): Promise<boolean> => Promise.resolve(!this.full.has(shard)),
      get holding(): boolean {
        return false;
      },
      writeControl: (write: (w: InboundWriter) => boolean): void => {
        const record =
          (method: string) =>
          (...args: unknown[]): boolean => {
            this.written.push({ shard, method, args });
            return true;
          };
        const recorder = new Proxy({}, { get: (_t, method: string) => record(method) });
        write(recorder as InboundWriter);
      },
    }));
  }

  /** The manage ops written, in order, as `[shard, op]`. */
  manageOps(): Array<[number, ManageOp]> {
    return this.written.filter((w) => w.method === 'manage').map((w) => [w.shard, w.args[2] as ManageOp]);
  }
}

/** ShardCalls that answer every call ok (or with `answer`), recording them. */
export class FakeCalls {
  readonly calls: Array<{ shard: number | 'all'; op: ManageOp }> = [];
  answer: ManageAnswer = { ok: true, result: {} };

  call(shard: number, op: ManageOp): Promise<ManageAnswer> {
    this.calls.push({ shard, op });
    return Promise.resolve(this.answer);
  }

  broadcast(op: ManageOp): Promise<ManageAnswer> {
    this.calls.push({ shard: 'all', op });
    return Promise.resolve(this.answer);
  }
}

/** The vhost `/` of a test's own (a Vhost is per broker: its limits and counts are not shared). */
export function rootVhost(): Vhost {
  return new Vhost(DEFAULT_VHOST, '', NO_LIMITS);
}

/** A principal with fixed answers, in `vhost` (a fresh `/` by default). */
export function principal(
  name: string,
  rights: Partial<{ publish: boolean; subscribe: (d: string) => boolean; manage: boolean }> = {},
  vhost: Vhost = rootVhost(),
): Principal {
  return {
    name,
    vhost,
    canPublish: () => rights.publish ?? true,
    canSubscribe: rights.subscribe ?? (() => true),
    canManage: rights.manage ?? true,
    canMonitor: rights.manage ?? true,
  };
}
