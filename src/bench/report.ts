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

/** How a goal stands; `why` qualifies the status, e.g. "lost 1,234" for a row that lost messages. */
interface Verdict {
  readonly measured: string;
  readonly status: GoalStatus;
  readonly why?: string;
}

/** One goal of design.md §4, and how the harness's figures decide it. */
interface Goal {
  readonly goal: string;
  /** The figure(s) it is read from, named as in benchmarks.json. */
  readonly figure: string;
  readonly judge: (f: Figures) => Verdict;
}

const has = (f: Figures, k: string): boolean => typeof f[k] === 'number' && Number.isFinite(f[k]);
const NOT_MEASURED = { measured: '—', status: 'not measured' } as const;
const times = (x: number): string => `${x.toFixed(1)}×`;
/** Ratios judged against 1: two decimals, so 0.97× never reads as 1.0×. */
const times2 = (x: number): string => `${x.toFixed(2)}×`;
const percent = (x: number): string => `${(x * 100).toFixed(0)}%`;
const us = (x: number): string => (x >= 1000 ? `${(x / 1000).toFixed(2)} ms` : `${x.toFixed(0)} µs`);
const rate = (x: number): string =>
  x >= 1e6 ? `${(x / 1e6).toFixed(2)} M/s` : x >= 1e3 ? `${(x / 1e3).toFixed(1)} k/s` : `${x.toFixed(0)}/s`;
const count = (x: number): string => Math.round(x).toLocaleString('en-US');

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

type OpenLoopWorkload = '1to1' | '1to16';

/**
 * A goal judged on the open-loop workload's shardmq row (confirms off, the equivalent of NATS core's
 * fire-and-forget): `ratio` is a median of per-round ratios shardmq ÷ peer, met when `meets(ratio)`
 * AND the row lost nothing in any run. A row with loss is never met: "not met (lost N)".
 */
function openLoopGoal(
  goal: string,
  workload: OpenLoopWorkload,
  ratioKey: string,
  meets: (ratio: number) => boolean,
  show: (ratio: number, f: Figures) => string,
  peer: string,
): Goal {
  const lostKey = `open_loop_shardmq_${workload}_lost_max`;
  return {
    goal,
    figure: ratioKey,
    judge: (f) => {
      const lost = has(f, lostKey) ? f[lostKey] : null;
      const lossNote = lost === null ? '' : `; lost ${count(lost)} (worst run)`;
      if (!has(f, ratioKey)) {
        const ours = `open_loop_shardmq_${workload}_delivered_msgs_per_s`;
        return { measured: has(f, ours) ? `${rate(f[ours])}; ${peer} not measured${lossNote}` : '—', status: 'not measured' };
      }
      const measured = `${show(f[ratioKey], f)}${lossNote}`;
      if (lost !== null && lost > 0) return { measured, status: 'not met', why: `lost ${count(lost)}` };
      return { measured, status: meets(f[ratioKey]) ? 'met' : 'not met' };
    },
  };
}

/** Open loop: shardmq's delivered msg/s ≥ NATS core's, lost = 0. */
function openLoopVsNats(goal: string, workload: OpenLoopWorkload): Goal {
  const ours = `open_loop_shardmq_${workload}_delivered_msgs_per_s`;
  const theirs = `open_loop_nats_${workload}_delivered_msgs_per_s`;
  return openLoopGoal(
    goal,
    workload,
    `open_loop_shardmq_vs_nats_${workload}_delivered_ratio`,
    (x) => x >= 1,
    (x, f) => `${times2(x)} NATS` + (has(f, ours) && has(f, theirs) ? ` (${rate(f[ours])} vs ${rate(f[theirs])})` : ''),
    'NATS',
  );
}

/**
 * A goal judged on the amqp workload: `ratioKey` is a median of per-round ratios shardmq ÷ RabbitMQ
 * (same amqplib code, same run), met when `meets(ratio)` AND neither broker's row lost anything in
 * any run (design.md §4: "a row with loss is never a win"; a RabbitMQ row with loss means the
 * comparison itself is broken).
 */
function amqpGoal(
  goal: string,
  id: string,
  ratioKey: string,
  meets: (ratio: number) => boolean,
  show: (ratio: number, f: Figures) => string,
): Goal {
  const lostKeys = [`amqp_shardmq_${id}_lost_max`, `amqp_rabbitmq_${id}_lost_max`];
  return {
    goal,
    figure: ratioKey,
    judge: (f) => {
      if (!has(f, ratioKey)) return has(f, lostKeys[0]) ? { measured: 'RabbitMQ not measured', status: 'not measured' } : NOT_MEASURED;
      const [ours, theirs] = lostKeys.map((k) => (has(f, k) ? f[k] : 0));
      const measured = `${show(f[ratioKey], f)}; lost ${count(ours)} / ${count(theirs)} (shardmq / RabbitMQ, worst run)`;
      if (ours > 0 || theirs > 0) return { measured, status: 'not met', why: `lost ${count(ours + theirs)}` };
      return { measured, status: meets(f[ratioKey]) ? 'met' : 'not met' };
    },
  };
}

/** AMQP delivered msg/s ≥ 5× RabbitMQ's. */
function amqpThroughput(goal: string, id: string): Goal {
  const ours = `amqp_shardmq_${id}_delivered_msgs_per_s`;
  const theirs = `amqp_rabbitmq_${id}_delivered_msgs_per_s`;
  return amqpGoal(
    goal,
    id,
    `amqp_${id}_vs_rabbitmq_ratio`,
    (x) => x >= 5,
    (x, f) =>
      `${times2(x)} RabbitMQ` +
      (has(f, ours) && has(f, theirs) ? ` (${rate(f[ours])} vs ${rate(f[theirs])})` : '') +
      nullBrokerNote(f, `amqp_null_${id}_vs_rabbitmq_ratio`, 'RabbitMQ', (c) => c < 5),
  );
}

/** What the same client reaches against the null broker (bench/amqp-null-broker.ts), as a ratio to RabbitMQ's figure. */
function nullBrokerNote(f: Figures, key: string, of: string, beyond: (ratio: number) => boolean): string {
  if (!has(f, key)) return '';
  return `; the same client against a null broker: ${times2(f[key])} ${of}${beyond(f[key]) ? ' (the goal is beyond this client on this machine)' : ''}`;
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
    'HTTP publish under autocannon: ≥ 90% of the req/s of a bare uWebSockets.js endpoint (same settings, same run, pipelining 1 and 10)',
    'http_publish_ratio_vs_bare_uws',
    0.9,
    (x, f) =>
      has(f, 'http_publish_ratio_vs_bare_uws_pipelining_1') && has(f, 'http_publish_ratio_vs_bare_uws_pipelining_10')
        ? `${percent(f.http_publish_ratio_vs_bare_uws_pipelining_1)} / ${percent(f.http_publish_ratio_vs_bare_uws_pipelining_10)} (pipelining 1 / 10, topic without subscribers; to a queue, answered on the shard's confirm: ${has(f, 'http_publish_queue_ratio_vs_bare_uws_pipelining_1') ? percent(f.http_publish_queue_ratio_vs_bare_uws_pipelining_1) : '?'} / ${has(f, 'http_publish_queue_ratio_vs_bare_uws_pipelining_10') ? percent(f.http_publish_queue_ratio_vs_bare_uws_pipelining_10) : '?'})`
        : percent(x),
  ),
  openLoopVsNats(
    'WebSocket 1→1, 128-byte messages, open loop through the exported client: delivered msg/s ≥ NATS core (`nats` client), lost = 0',
    '1to1',
  ),
  openLoopVsNats(
    'WebSocket 1→16 fanout, 128-byte messages, open loop through the exported client: delivered msg/s ≥ NATS core, lost = 0',
    '1to16',
  ),
  openLoopGoal(
    'WebSocket 1→16, open loop: server CPU per delivered message ≤ uWebSockets.js built-in pub/sub',
    '1to16',
    'open_loop_shardmq_vs_uws_1to16_cpu_ratio',
    (x) => x <= 1,
    (x, f) => {
      const ours = 'open_loop_shardmq_1to16_cpu_us_per_delivered';
      const theirs = 'open_loop_uws_1to16_cpu_us_per_delivered';
      return (
        `${times2(x)} uWS` + (has(f, ours) && has(f, theirs) ? ` (${f[ours].toFixed(2)} vs ${f[theirs].toFixed(2)} µs/delivered)` : '')
      );
    },
    'uWebSockets.js',
  ),
  atMost('Latency at 10,000 msg/s: p99 publish→deliver ≤ 1 ms', 'latency_p99_us_at_10k', 1000, us),
  atMost('Latency at 10,000 msg/s: p99.9 publish→deliver ≤ 3 ms', 'latency_p999_us_at_10k', 3000, us),
  amqpThroughput(
    'AMQP 0-9-1 with amqplib, 1→1, noAck, 128-byte messages: delivered msg/s ≥ 5× RabbitMQ, same client code, same run, lost = 0',
    '1to1',
  ),
  amqpThroughput('AMQP 0-9-1 with amqplib, 1→16 fanout, noAck: delivered msg/s ≥ 5× RabbitMQ, lost = 0', 'fanout16'),
  amqpThroughput('AMQP 0-9-1 with amqplib, confirms + manual acks: delivered msg/s ≥ 5× RabbitMQ, lost = 0', 'confirms_acks'),
  amqpGoal(
    "AMQP 0-9-1 with amqplib, latency at 10,000 msg/s: p99 publish→deliver ≤ RabbitMQ's / 3, lost = 0",
    'latency_10k',
    'amqp_latency_p99_vs_rabbitmq_ratio_at_10k',
    (x) => x <= 1 / 3,
    (x, f) =>
      `${times2(x)} RabbitMQ's p99` +
      (has(f, 'amqp_shardmq_latency_p99_us_at_10k') && has(f, 'amqp_rabbitmq_latency_p99_us_at_10k')
        ? ` (${us(f.amqp_shardmq_latency_p99_us_at_10k)} vs ${us(f.amqp_rabbitmq_latency_p99_us_at_10k)})`
        : '') +
      nullBrokerNote(f, 'amqp_null_latency_p99_vs_rabbitmq_ratio_at_10k', "RabbitMQ's p99", (c) => c > 1 / 3),
  ),
  {
    goal: 'Streams on disk: confirmed ingest ≥ NATS JetStream (file storage, one replica), same run; replay from the first offset by 1 and 4 consumers; lost = 0',
    figure: 'streams_ingest_vs_jetstream',
    judge: (f) => {
      if (!has(f, 'streams_ingest_vs_jetstream'))
        return has(f, 'streams_ingest_confirmed_msgs_per_s')
          ? { measured: `${rate(f.streams_ingest_confirmed_msgs_per_s)}; JetStream not measured`, status: 'not measured' }
          : NOT_MEASURED;
      const lost = has(f, 'streams_lost') ? f.streams_lost : 0;
      const replay =
        has(f, 'streams_replay_1_vs_jetstream') && has(f, 'streams_replay_4_vs_jetstream')
          ? `; replay ${times2(f.streams_replay_1_vs_jetstream)} (1), ${times2(f.streams_replay_4_vs_jetstream)} (4)`
          : '';
      const measured = `${times2(f.streams_ingest_vs_jetstream)} JetStream${replay}; lost ${count(lost)}`;
      if (lost > 0) return { measured, status: 'not met', why: `lost ${count(lost)}` };
      return { measured, status: f.streams_ingest_vs_jetstream >= 1 ? 'met' : 'not met' };
    },
  },
  {
    goal: "Vhosts: a vhost name costs nothing measurable on the publish path: open-loop 1→1 and HTTP publish into a non-default vhost ≥ 0.95× the same into '/' (HTTP: the same request naming '/'), same run (interleaved), lost 0",
    figure: 'vhosts_open_loop_ratio',
    judge: (f) => {
      if (!has(f, 'vhosts_open_loop_ratio') || !has(f, 'vhosts_http_ratio')) return NOT_MEASURED;
      const lost = has(f, 'vhosts_open_loop_lost') ? f.vhosts_open_loop_lost : 0;
      const bare = has(f, 'vhosts_http_ratio_vs_no_query') ? ` (${times2(f.vhosts_http_ratio_vs_no_query)} of '/' without a query)` : '';
      const measured = `open loop ${times2(f.vhosts_open_loop_ratio)}, HTTP ${times2(f.vhosts_http_ratio)}${bare} of '/'; lost ${count(lost)}`;
      if (lost > 0) return { measured, status: 'not met', why: `lost ${count(lost)}` };
      return { measured, status: f.vhosts_open_loop_ratio >= 0.95 && f.vhosts_http_ratio >= 0.95 ? 'met' : 'not met' };
    },
  },
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
    const { measured, status, why } = g.judge(figures);
    const mark = status === 'met' ? '**met**' : status === 'not met' ? '**not met**' : status;
    return [g.goal, measured, why === undefined ? mark : `${mark} (${why})`, `\`${g.figure}\``];
  });
  renderTable(out, machine, 'Goals (design.md §4)', ['goal', 'measured', 'status', 'figure'], goalRows, [
    'ratios come from comparisons interleaved in this run; "not measured" means the workload was not selected (`--only`) or could not run (see its section)',
    "the WebSocket goals are judged on the open-loop workload (the headline section below): the publisher sends as fast as the broker's flow control lets it, and a row that lost messages in any run is never met",
  ]);
  // The headline workload's section comes first, right after the goals; the rest in the order they ran.
  const renderSection = ({ workload, result }: RunRecord): void => {
    const title = workload.headline ?? workload.name;
    out.push(
      `## ${title}`,
      '',
      (workload.headline !== undefined ? `Workload \`${workload.name}\`: ` : '') + workload.description + '.',
      '',
    );
    for (const note of result.notes ?? []) out.push(`> ${note}`, '');
    for (const table of result.tables) renderTable(out, machine, table.title, table.columns, table.rows, table.notes ?? []);
    for (const c of result.charts ?? []) out.push(`![${c.title}](${c.file})`, '');
  };
  for (const r of records) if (r.workload.headline !== undefined) renderSection(r);
  if (charts.length > 0) {
    out.push('## Charts', '');
    for (const c of charts) out.push(`- [${c.title}](${c.file})`);
    out.push('');
  }
  for (const r of records) if (r.workload.headline === undefined) renderSection(r);
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
