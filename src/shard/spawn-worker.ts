import { Worker, type WorkerOptions } from 'node:worker_threads';

/**
 * Starts a worker thread from a module next to the caller, compiled or not.
 *
 * Production runs compiled JS from dist/, where `new Worker(url)` just works.
 * Tests and dev run .ts sources through tsx, whose loader hooks do not reach
 * worker threads on Node 20, so there the worker starts from a small .mjs
 * bootstrap that registers tsx first (docs/engine-notes.md §4).
 *
 * @param entry URL of the worker module, resolved against the caller's
 *   `import.meta.url`, written with a `.js` extension.
 */
export function spawnWorker(entry: URL, options: WorkerOptions = {}): Worker {
  const fromSource = entry.pathname.endsWith('.js') && isRunningFromSource(entry);
  if (!fromSource) return new Worker(entry, options);
  const tsEntry = new URL(entry.href.replace(/\.js$/, '.ts'));
  const bootstrap = new URL('./ts-worker-bootstrap.mjs', import.meta.url);
  const workerData: unknown = options.workerData ?? {};
  return new Worker(bootstrap, {
    ...options,
    workerData: { ...(workerData as object), __entry: tsEntry.href },
  });
}

function isRunningFromSource(entry: URL): boolean {
  // This module itself tells whether we run from .ts sources or from dist/.
  return import.meta.url.endsWith('.ts') && !entry.pathname.includes('/dist/');
}
