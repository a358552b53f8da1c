/**
 * Runs every native-bench/*.bench.ts, one process each (fresh JIT and heap per question), prints
 * their tables as they go, then one JSON line `{"bench":"native-bench", machine, figures, tables,
 * benches}` with every bench's figures merged. `shardmq bench` runs this and folds the figures and
 * tables into benchmarks.md/json.
 *
 * Run: npm run bench:native [-- --quick] [--runs N] [--only name,name] [--json-out FILE]
 * Bounds: each bench must finish within --timeout-seconds (default 180; a bench past it is killed
 * and reported as failed).
 */
import { spawn } from 'node:child_process';
import { readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { describeMachine, machineLine } from '../src/bench/machine.js';
import type { BenchOutput, BenchTable } from './fixtures/bench-util.js';

const here = dirname(fileURLToPath(import.meta.url));
const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    runs: { type: 'string' },
    only: { type: 'string' },
    'json-out': { type: 'string' },
    'timeout-seconds': { type: 'string', default: '180' },
  },
});
const timeoutMs = Number(values['timeout-seconds']) * 1000;
if (!Number.isFinite(timeoutMs) || timeoutMs <= 0)
  throw new RangeError(`--timeout-seconds must be a positive number (got ${values['timeout-seconds']})`);

const all = readdirSync(here)
  .filter((f) => f.endsWith('.bench.ts'))
  .sort();
const only = values.only?.split(',').map((s) => s.trim().replace(/\.bench\.ts$/, ''));
const files = only === undefined ? all : all.filter((f) => only.includes(f.replace(/\.bench\.ts$/, '')));
if (only !== undefined && files.length !== only.length) {
  process.stderr.write(
    `native-bench: unknown bench in --only ${values.only}; known: ${all.map((f) => f.replace(/\.bench\.ts$/, '')).join(', ')}\n`,
  );
  process.exit(2);
}

const passArgs = [...(values.quick ? ['--quick'] : []), ...(values.runs !== undefined ? ['--runs', values.runs] : [])];

interface BenchRun {
  readonly file: string;
  readonly ok: boolean;
  readonly seconds: number;
  readonly output: BenchOutput | null;
  readonly error?: string;
}

function runOne(file: string): Promise<BenchRun> {
  const started = performance.now();
  return new Promise((resolve) => {
    // `--import tsx` resolves from the project root, where tsx is a devDependency.
    const child = spawn(process.execPath, ['--import', 'tsx', join(here, file), ...passArgs], {
      cwd: join(here, '..'),
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let lastJson: string | null = null;
    let pending = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      pending += chunk;
      let nl: number;
      while ((nl = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        if (line.startsWith('{"bench"')) lastJson = line;
        else process.stdout.write(line + '\n');
      }
    });
    const timer = setTimeout(() => {
      process.stderr.write(`native-bench: ${file} exceeded ${timeoutMs / 1000} s; killing it\n`);
      child.kill('SIGKILL');
    }, timeoutMs);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      if (pending.startsWith('{"bench"')) lastJson = pending;
      const seconds = (performance.now() - started) / 1000;
      let output: BenchOutput | null = null;
      try {
        output = lastJson === null ? null : (JSON.parse(lastJson) as BenchOutput);
      } catch {
        output = null;
      }
      const ok = code === 0 && output !== null;
      resolve({ file, ok, seconds, output, ...(ok ? {} : { error: `exit ${code ?? signal}${output === null ? ', no JSON line' : ''}` }) });
    });
  });
}

const machine = describeMachine();
console.log(`native-bench: ${files.length} bench(es)${values.quick ? ' (quick)' : ''}; ${machineLine(machine)}`);
const runs: BenchRun[] = [];
for (const file of files) {
  console.log(`\n=== ${file} ===`);
  const r = await runOne(file);
  console.log(`=== ${file}: ${r.ok ? 'ok' : `FAILED (${r.error})`} in ${r.seconds.toFixed(1)} s ===`);
  runs.push(r);
}

const figures: Record<string, number> = {};
const tables: BenchTable[] = [];
for (const r of runs) {
  if (r.output === null) continue;
  Object.assign(figures, r.output.figures);
  tables.push(...r.output.tables);
}
const combined = {
  bench: 'native-bench',
  machine,
  quick: values.quick,
  figures,
  tables,
  benches: runs.map((r) => ({ file: r.file, ok: r.ok, seconds: Number(r.seconds.toFixed(1)), ...(r.error ? { error: r.error } : {}) })),
};
if (values['json-out'] !== undefined) writeFileSync(values['json-out'], JSON.stringify(combined) + '\n');
console.log('');
console.log(
  `native-bench: ${runs.filter((r) => r.ok).length}/${runs.length} ok in ${runs.reduce((s, r) => s + r.seconds, 0).toFixed(1)} s`,
);
console.log(JSON.stringify(combined));
process.exitCode = runs.every((r) => r.ok) ? 0 : 1;
