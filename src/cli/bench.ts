import { parseArgs } from 'node:util';
import { describeMachine, machineLine } from '../bench/machine.js';
import { writeReports, type RunRecord } from '../bench/report.js';
import { WORKLOADS } from '../bench/workloads/index.js';

/** `shardmq bench [--quick] [--only a,b] [--runs N] [--out benchmarks.md]`: the harness. */
export async function bench(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      quick: { type: 'boolean', default: false },
      only: { type: 'string' },
      runs: { type: 'string', default: '5' },
      out: { type: 'string', default: 'benchmarks.md' },
      json: { type: 'string', default: 'benchmarks.json' },
    },
  });
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
  for (const workload of selected) {
    progress(`workload ${workload.name}: ${workload.description}`);
    records.push({ workload, result: await workload.run({ quick: values.quick, runs, progress }) });
  }
  const command = `npm run bench${values.quick ? ' -- --quick' : ''}`;
  writeReports(values.out, values.json, machine, records, command);
  progress(`wrote ${values.out} and ${values.json}`);
  return 0;
}
