import { parseArgs } from 'node:util';
import { describeMachine, machineLine } from '../bench/machine.js';
import { writeReports, type RunRecord } from '../bench/report.js';
import { WORKLOADS } from '../bench/workloads/index.js';
import { badUsage, helpText, wantsHelp, type CommandHelp } from './help.js';

/**
 * `shardmq bench [--quick] [--only a,b] [--runs N] [--out benchmarks.md] [--json benchmarks.json]`:
 * the harness. Workloads run in order (later ones may use earlier figures, e.g. latency reads the
 * ws-fanout 1→1 maximum); charts are written under `benchmarks/` next to --out.
 */
export const BENCH_HELP: CommandHelp = {
  command: 'bench',
  synopsis: '',
  description:
    'Runs the benchmark harness (one workload at a time; keep the machine otherwise idle) and rewrites the report\nand its charts (under benchmarks/ next to --out). Peers (NATS, Redis, RabbitMQ) are measured when installed:\nbash scripts/install-bench-peers.sh.',
  flags: [
    { name: 'quick', def: 'off', help: 'a smoke run of every workload (minutes, not for quoting)' },
    { name: 'only', value: 'a,b', def: 'every workload', help: `run only these (${WORKLOADS.map((w) => w.name).join(', ')})` },
    { name: 'runs', value: 'N', def: '5', help: 'repetitions for medians' },
    { name: 'out', value: 'FILE', def: 'benchmarks.md', help: 'the Markdown report' },
    { name: 'json', value: 'FILE', def: 'benchmarks.json', help: 'the figures' },
  ],
};

export async function bench(args: string[]): Promise<number> {
  if (wantsHelp(args)) {
    process.stdout.write(helpText(BENCH_HELP));
    return 0;
  }
  let values: { quick: boolean; only?: string; runs: string; out: string; json: string };
  try {
    ({ values } = parseArgs({
      args,
      options: {
        quick: { type: 'boolean', default: false },
        only: { type: 'string' },
        runs: { type: 'string', default: '5' },
        out: { type: 'string', default: 'benchmarks.md' },
        json: { type: 'string', default: 'benchmarks.json' },
      },
    }));
  } catch (err) {
    return badUsage('bench', err);
  }
  const runs = Number(values.runs);
  if (!Number.isInteger(runs) || runs < 1) {
    process.stderr.write(`shardmq bench: --runs must be a positive integer (got ${values.runs})\n`);
    return 2;
  }
  const only = values.only?.split(',').map((s) => s.trim());
  const unknown = only?.filter((name) => !WORKLOADS.some((w) => w.name === name)) ?? [];
  if (unknown.length > 0) {
    process.stderr.write(`shardmq bench: unknown workload(s) ${unknown.join(', ')}; known: ${WORKLOADS.map((w) => w.name).join(', ')}\n`);
    return 2;
  }
  const selected = WORKLOADS.filter((w) => only === undefined || only.includes(w.name));
  const machine = describeMachine();
  const started = Date.now();
  const progress = (message: string): void => {
    process.stderr.write(`[bench ${((Date.now() - started) / 1000).toFixed(0)}s] ${message}\n`);
  };
  progress(`machine: ${machineLine(machine)}`);
  const records: RunRecord[] = [];
  const results: Record<string, number> = {};
  let failed = 0;
  for (const workload of selected) {
    progress(`workload ${workload.name}: ${workload.description}`);
    const t0 = Date.now();
    try {
      const result = await workload.run({ quick: values.quick, runs, machine, results, progress });
      Object.assign(results, result.figures);
      records.push({ workload, result });
      progress(`workload ${workload.name}: done in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    } catch (err) {
      // One broken workload must not lose the others' figures: report it and go on.
      failed++;
      const message = err instanceof Error ? (err.stack ?? err.message) : String(err);
      progress(`workload ${workload.name} FAILED: ${message}`);
      records.push({ workload, result: { tables: [], figures: {}, notes: [`FAILED in this run: ${message.split('\n')[0]}`] } });
    }
  }
  const flags = [...(values.quick ? ['--quick'] : []), ...(only !== undefined ? [`--only ${only.join(',')}`] : [])];
  const command = `npm run bench${flags.length > 0 ? ` -- ${flags.join(' ')}` : ''}`;
  const written = writeReports(values.out, values.json, machine, records, command, values.quick);
  progress(`wrote ${[values.out, values.json, ...written].join(', ')}`);
  return failed === 0 ? 0 : 1;
}
