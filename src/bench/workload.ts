import type { MachineInfo } from './machine.js';

/** What every benchmark workload receives and returns. */
export interface WorkloadContext {
  /** Brief runs (smoke check, under two minutes for the whole harness). */
  readonly quick: boolean;
  /** Repetitions for medians (≥ 5 in a full run). */
  readonly runs: number;
  /** The machine every table is headed by (also the caption of charts). */
  readonly machine: MachineInfo;
  /**
   * Figures of the workloads that ran before this one in the same run (e.g. latency reads
   * ws_1to1_msgs_per_s to pick its rates). Absent figures mean the workload measures its own.
   */
  readonly results: Readonly<Record<string, number>>;
  /** One progress line per run, to stderr. */
  progress(message: string): void;
}

export interface WorkloadTable {
  readonly title: string;
  readonly columns: readonly string[];
  readonly rows: ReadonlyArray<ReadonlyArray<string | number>>;
  readonly notes?: readonly string[];
}

/** A chart the report writes next to benchmarks.md and links from it. */
export interface WorkloadChart {
  /** Path relative to benchmarks.md, e.g. `benchmarks/shard-sweep.svg`. */
  readonly file: string;
  /** Link text / alt text. */
  readonly title: string;
  readonly svg: string;
}

export interface WorkloadResult {
  readonly tables: readonly WorkloadTable[];
  /** Flat named figures for benchmarks.json (e.g. http_publish_ratio_vs_bare_uws). */
  readonly figures: Readonly<Record<string, number>>;
  /** Optional series for charts: label → value. */
  readonly series?: Readonly<Record<string, ReadonlyArray<{ label: string; value: number }>>>;
  readonly charts?: readonly WorkloadChart[];
  /** Said at the top of the workload's section: skipped parts, how to install what was missing. */
  readonly notes?: readonly string[];
}

export interface Workload {
  readonly name: string;
  readonly description: string;
  /**
   * Set on the workload whose section heads benchmarks.md (right after the Goals table): the
   * section's title. Workloads without it follow in the order they ran.
   */
  readonly headline?: string;
  run(ctx: WorkloadContext): Promise<WorkloadResult>;
}

/** Rounds a workload runs: one in a quick run (a smoke check of the harness, not a median), else `runs`. */
export function roundsOf(ctx: WorkloadContext): number {
  return ctx.quick ? 1 : ctx.runs;
}
