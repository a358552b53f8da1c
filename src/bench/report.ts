import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { machineLine, type MachineInfo } from './machine.js';
import type { Workload, WorkloadResult } from './workload.js';

export interface RunRecord {
  readonly workload: Workload;
  readonly result: WorkloadResult;
}

type Figures = Readonly<Record<string, number>>;
type GoalStatus = 'met' | 'not met' | 'not measured' | 'reported';

/** One goal of design.md §4, and how the harness's figures decide it. */
interface Goal {
  readonly goal: string;
  /** The figure(s) it is read from, named as in benchmarks.json. */
  readonly figure: string;
  readonly judge: (f: Figures) => { measured: string; status: GoalStatus };
}

const has = (f: Figures, k: string): boolean => typeof f[k] === 'number' && Number.isFinite(f[k]);
const NOT_MEASURED = { measured: '—', status: 'not measured' } as const;
const times = (x: number): string => `${x.toFixed(1)}×`;
const percent = (x: number): string => `${(x * 100).toFixed(0)}%`;
const us = (x: number): string => (x >= 1000 ? `${(x / 1000).toFixed(2)} ms` : `${x.toFixed(0)} µs`);
const rate = (x: number): string =>
  x >= 1e6 ? `${(x / 1e6).toFixed(2)} M/s` : x >= 1e3 ? `${(x / 1e3).toFixed(1)} k/s` : `${x.toFixed(0)}/s`;

/** A goal met when one figure passes a bound; the figure is named once, for both the table and the judge. */
function bounded(goal: string, figure: string, meets: (x: number) => boolean, show: (x: number, f: Figures) => string): Goal {
  return {
    goal,
    figure,
    judge: (f) => (has(f, figure) ? { measured: show(f[figure], f), status: meets(f[figure]) ? 'met' : 'not met' } : NOT_MEASURED),
  };
}
const atLeast = (goal: string, figure: string, min: number, show: (x: number, f: Figures) => string): Goal =>
  bounded(goal, figure, (x) => x >= min, show);
const atMost = (goal: string, figure: string, max: number, show: (x: number, f: Figures) => string): Goal =>
  bounded(goal, figure, (x) => x <= max, show);

/** A WebSocket-vs-NATS goal: the interleaved ratio from `peers` if present, else the two workloads' figures. */
function vsNats(goal: string, ratioKey: string, wsKey: string, natsKey: string): Goal {
  return {
    goal,
    figure: ratioKey,
    judge: (f) => {
      if (has(f, ratioKey)) {
        const detail = has(f, wsKey) && has(f, natsKey) ? ` (${rate(f[wsKey])} vs ${rate(f[natsKey])})` : '';
        return { measured: `${times(f[ratioKey])} NATS${detail}`, status: f[ratioKey] >= 1 ? 'met' : 'not met' };
      }
      return { measured: has(f, wsKey) ? `${rate(f[wsKey])}; NATS not measured` : '—', status: 'not measured' };
    },
  };
}

export const GOALS: readonly Goal[] = [
  atLeast('Ring: 128-byte records main→worker at ≥ 20× one `postMessage` per record', 'ring_vs_postmessage_ratio_128B', 20, times),
  atLeast(
    "Ring: ≥ 50% of the machine's `Uint8Array.set` copy bandwidth for 4 KiB records",
    'ring_copy_fraction_of_memcpy_4KiB',
    0.5,
    percent,
  ),
  atLeast(
    'HTTP publish under autocannon: ≥ 80% of the req/s of a bare uWebSockets.js endpoint',
    'http_publish_ratio_vs_bare_uws',
    0.8,
    percent,
  ),
  vsNats(
    'WebSocket 1→1, 128-byte messages: at least the delivered msg/s of NATS core (`nats` client)',
    'ws_1to1_vs_nats_core_ratio',
    'peers_shardmq_1to1_msgs_per_s',
    'nats_core_1to1_msgs_per_s',
  ),
  vsNats(
    'WebSocket 1→16 fanout, 128-byte messages: at least the delivered msg/s of NATS core',
    'ws_fanout16_vs_nats_core_ratio',
    'peers_shardmq_fanout16_delivered_msgs_per_s',
    'nats_core_fanout16_delivered_msgs_per_s',
  ),
  atMost('Latency at 10,000 msg/s: p99 publish→deliver ≤ 1 ms', 'latency_p99_us_at_10k', 1000, us),
  atMost('Latency at 10,000 msg/s: p99.9 publish→deliver ≤ 5 ms', 'latency_p999_us_at_10k', 5000, us),
  {
    goal: 'Shard sweep: throughput for 1…N shards on a CPU-heavy workload, and how it scales with cores',
    figure: 'shard_sweep_gain_1_to_2',
    judge: (f) =>
      has(f, 'shard_sweep_1_msgs_per_s')
        ? {
            measured:
              `1 shard ${rate(f.shard_sweep_1_msgs_per_s)}` +
              (has(f, 'shard_sweep_gain_1_to_2') ? `; ×${f.shard_sweep_gain_1_to_2.toFixed(2)} at 2` : '') +
              (has(f, 'shard_sweep_gain_1_to_4') ? `, ×${f.shard_sweep_gain_1_to_4.toFixed(2)} at 4` : '') +
              ` (${f.machine_cores ?? '?'} cores)`,
            status: 'reported',
          }
        : NOT_MEASURED,
  },
  atMost(
    'Memory: bounded under load; a consumer that never reads costs at most its configured buffer',
    'memory_stalled_consumer_growth_vs_bound',
    1,
    (x, f) =>
      `RSS grew ${percent(x)} of the configured bound` +
      (has(f, 'memory_stalled_consumer_rss_growth_bytes')
        ? ` (${(f.memory_stalled_consumer_rss_growth_bytes / 2 ** 20).toFixed(0)} MiB)`
        : ''),
  ),
];

function renderTable(
  out: string[],
  machine: MachineInfo,
  title: string,
  columns: readonly string[],
  rows: ReadonlyArray<ReadonlyArray<string | number>>,
  notes: readonly string[] = [],
): void {
  out.push(`### ${title}`, '', `_${machineLine(machine)}_`, '');
  out.push('| ' + columns.join(' | ') + ' |');
  out.push('|' + columns.map(() => '---').join('|') + '|');
  for (const row of rows) out.push('| ' + row.map((c) => String(c).replace(/\|/g, '\\|')).join(' | ') + ' |');
  out.push('');
  for (const note of notes) out.push(`- ${note}`);
  if (notes.length > 0) out.push('');
}

/** benchmarks.md: generated, never hand-edited; every table headed by its machine. */
export function renderMarkdown(machine: MachineInfo, records: readonly RunRecord[], command: string, quick = false): string {
  const figures: Record<string, number> = { machine_cores: machine.cores };
  for (const { result } of records) Object.assign(figures, result.figures);
  const charts = records.flatMap((r) => r.result.charts ?? []);
  const out: string[] = [
    '# shardmq benchmarks',
    '',
    `<!-- GENERATED by \`${command}\` (src/bench/report.ts). Do not edit by hand: rerun the command. -->`,
    '',
    `Machine: ${machineLine(machine)}.`,
    '',
    'Ratios are measured side by side in one run on this machine; absolute numbers only describe the machine',
    '(2 shared cores are noisy: compare medians, not single runs; the "foreign CPU" columns show other load during a run).',
    '',
  ];
  if (quick) {
    out.push(
      '> **Quick run** (`--quick`): one short run per configuration. These figures are smoke checks of the harness, not results to quote.',
      '',
    );
  }
  const goalRows = GOALS.map((g) => {
    const { measured, status } = g.judge(figures);
    const mark = status === 'met' ? '**met**' : status === 'not met' ? '**not met**' : status;
    return [g.goal, measured, mark, `\`${g.figure}\``];
  });
  renderTable(out, machine, 'Goals (design.md §4)', ['goal', 'measured', 'status', 'figure'], goalRows, [
    'ratios come from comparisons interleaved in this run; "not measured" means the workload was not selected (`--only`) or could not run (see its section)',
  ]);
  if (charts.length > 0) {
    out.push('## Charts', '');
    for (const c of charts) out.push(`- [${c.title}](${c.file})`);
    out.push('');
  }
  for (const { workload, result } of records) {
    out.push(`## ${workload.name}`, '', workload.description + '.', '');
    for (const note of result.notes ?? []) out.push(`> ${note}`, '');
    for (const table of result.tables) renderTable(out, machine, table.title, table.columns, table.rows, table.notes ?? []);
    for (const c of result.charts ?? []) out.push(`![${c.title}](${c.file})`, '');
  }
  return out.join('\n');
}

/**
 * Writes benchmarks.md, benchmarks.json (a flat object of named figures) and every chart, relative
 * to the directory of `path`. Returns the chart paths written.
 */
export function writeReports(
  path: string,
  jsonPath: string,
  machine: MachineInfo,
  records: readonly RunRecord[],
  command: string,
  quick = false,
): string[] {
  const written: string[] = [];
  for (const { result } of records) {
    for (const chart of result.charts ?? []) {
      const file = join(dirname(path), chart.file);
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(file, chart.svg);
      written.push(file);
    }
  }
  writeFileSync(path, renderMarkdown(machine, records, command, quick));
  const figures: Record<string, number | string | boolean> = {
    machine_cpu: machine.cpuModel,
    machine_cores: machine.cores,
    machine_node: machine.node,
    commit: machine.commit,
    date: machine.date,
    quick,
  };
  for (const { result } of records) Object.assign(figures, result.figures);
  writeFileSync(jsonPath, JSON.stringify(figures, null, 2) + '\n');
  return written;
}
