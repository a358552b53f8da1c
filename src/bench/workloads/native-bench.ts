/**
 * Folds the micro-benchmarks into the harness: runs native-bench/run.ts (every *.bench.ts in its own
 * process, through tsx) and takes its tables and figures into benchmarks.md/json: ring vs
 * postMessage, the ring's share of the copy ceiling, the topic matcher and the codecs.
 * Needs the source checkout (native-bench/ is not in the npm package) and tsx (a devDependency);
 * without them the workload says so and reports nothing.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NATIVE_BENCH_DIR, PROJECT_ROOT } from '../paths.js';
import type { Workload, WorkloadContext, WorkloadResult, WorkloadTable } from '../workload.js';

interface NativeOutput {
  readonly figures: Record<string, number>;
  readonly tables: WorkloadTable[];
  readonly benches: ReadonlyArray<{ file: string; ok: boolean; seconds: number; error?: string }>;
}

export const nativeBench: Workload = {
  name: 'native-bench',
  description:
    'micro-benchmarks (native-bench/): SAB ring vs postMessage both ways, the ring vs the copy ceiling, the topic matcher, the codecs',
  async run(ctx: WorkloadContext): Promise<WorkloadResult> {
    const runner = join(NATIVE_BENCH_DIR, 'run.ts');
    if (!existsSync(runner)) {
      return { tables: [], figures: {}, notes: [`skipped: ${runner} is absent (native-bench/ ships only with the source checkout)`] };
    }
    try {
      createRequire(join(PROJECT_ROOT, 'package.json')).resolve('tsx');
    } catch {
      return { tables: [], figures: {}, notes: ['skipped: tsx (a devDependency) is not installed; run `npm install` in the checkout'] };
    }
    const dir = mkdtempSync(join(tmpdir(), 'shardmq-native-'));
    const jsonOut = join(dir, 'native.json');
    const args = ['--import', 'tsx', runner, '--json-out', jsonOut, ...(ctx.quick ? ['--quick'] : ['--runs', String(ctx.runs)])];
    // Bounds: the runner kills a bench past its own limit; this is the outer one.
    const limitMs = ctx.quick ? 90_000 : 300_000;
    try {
      const code = await new Promise<number | null>((resolve, reject) => {
        const child = spawn(process.execPath, args, { cwd: PROJECT_ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
        const timer = setTimeout(() => {
          ctx.progress(`native-bench: over ${limitMs / 1000} s, stopping it`);
          child.kill('SIGKILL');
        }, limitMs);
        let pending = '';
        child.stdout.setEncoding('utf8');
        child.stdout.on('data', (chunk: string) => {
          pending += chunk;
          let nl: number;
          while ((nl = pending.indexOf('\n')) >= 0) {
            const line = pending.slice(0, nl);
            pending = pending.slice(nl + 1);
            // Progress lines only: tables and JSON come back through the file.
            if (/^(=== | {2}\[|native-bench: )/.test(line)) ctx.progress(`native-bench: ${line.trim()}`);
          }
        });
        child.once('error', reject);
        child.once('exit', (c) => {
          clearTimeout(timer);
          resolve(c);
        });
      });
      if (!existsSync(jsonOut)) throw new Error(`native-bench/run.ts exited with ${code} and wrote no results`);
      const out = JSON.parse(readFileSync(jsonOut, 'utf8')) as NativeOutput;
      const failed = out.benches.filter((b) => !b.ok);
      return {
        tables: out.tables,
        figures: out.figures,
        notes: [
          `run by \`npm run bench:native${ctx.quick ? ' -- --quick' : ''}\` (native-bench/run.ts): ${out.benches.map((b) => `${b.file} ${b.ok ? 'ok' : `FAILED (${b.error})`} ${b.seconds} s`).join(', ')}`,
          ...(failed.length > 0 ? [`failed: ${failed.map((b) => b.file).join(', ')}; their figures are missing`] : []),
        ],
      };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
