/** What every benchmark workload receives and returns. */
export interface WorkloadContext {
  /** Brief runs (smoke check, under two minutes for the whole harness). */
  readonly quick: boolean;
  /** Repetitions for medians (≥ 5 in a full run). */
  readonly runs: number;
  /** One progress line per run, to stderr. */
  progress(message: string): void;
}

export interface WorkloadTable {
  readonly title: string;
  readonly columns: readonly string[];
  readonly rows: ReadonlyArray<ReadonlyArray<string | number>>;
  readonly notes?: readonly string[];
}

export interface WorkloadResult {
  readonly tables: readonly WorkloadTable[];
  /** Flat named figures for benchmarks.json (e.g. http_publish_ratio_vs_bare_uws). */
  readonly figures: Readonly<Record<string, number>>;
  /** Optional series for charts: label → value. */
  readonly series?: Readonly<Record<string, ReadonlyArray<{ label: string; value: number }>>>;
}

export interface Workload {
  readonly name: string;
  readonly description: string;
  run(ctx: WorkloadContext): Promise<WorkloadResult>;
}
