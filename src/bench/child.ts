/**
 * Processes the harness starts itself (the broker, the bare uWS ceiling, peer servers): how to run
 * one of this package's scripts, and how to stop any of them without hanging a run.
 */
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/**
 * Node arguments that run the package script at `compiled` (its URL in dist, ending in .js). From
 * sources (tests of the harness) the script is .ts and needs tsx; from dist it is plain JS.
 */
export function nodeScriptArgs(compiled: URL): string[] {
  const path = fileURLToPath(compiled);
  return import.meta.url.endsWith('.ts') ? ['--import', 'tsx', path.replace(/\.js$/, '.ts')] : [path];
}

/**
 * Extra node flags from the environment variable `name` (space-separated), for profiling a child,
 * e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof` (node refuses --cpu-prof in NODE_OPTIONS).
 */
export function extraNodeArgs(name: string): string[] {
  const raw = process.env[name]?.trim();
  return raw === undefined || raw === '' ? [] : raw.split(/\s+/);
}

/** SIGTERM first so the process can shut down cleanly; SIGKILL after `killAfterMs` so a stuck one cannot hang the harness. */
export async function stopChild(child: ChildProcess, killAfterMs: number): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
  await exited;
  clearTimeout(timer);
}
