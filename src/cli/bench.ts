import { parseArgs } from 'node:util';
import { describeMachine, machineLine } from '../bench/machine.js';
import { writeReports, type RunRecord } from '../bench/report.js';
import { WORKLOADS } from '../bench/workloads/index.js';

/**
 * `shardmq bench [--quick] [--only a,b] [--runs N] [--out benchmarks.md] [--json benchmarks.json]`:
 * the harness. Workloads run in order (later ones may use earlier figures, e.g. latency reads the
 * ws-fanout 1→1 maximum); charts are written under `benchmarks/` next to --out.
 */
export async function bench(args: string[]): Promise<number> {
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
    process.stderr.write(
      `shardmq bench: ${(err as Error).message}\nusage: shardmq bench [--quick] [--only a,b] [--runs N] [--out benchmarks.md] [--json benchmarks.json]\n`,
    );
    return 2;
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
