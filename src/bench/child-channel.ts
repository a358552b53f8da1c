/**
 * The harness's helper processes that report over IPC (the open-loop and memory subscribers): the
 * same life on both sides. The child says `ready` (or `failed`), reports as it goes, and on `stop`
 * sends a `final` report, closes its connections (bounded) and exits. The parent waits for `ready`
 * (bounded), hands every other report to its owner, and on stop waits for the final one and the
 * exit, each bounded, so a stuck child cannot hang a run.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { extraNodeArgs, nodeScriptArgs, stopChild } from './child.js';

/** Every child's first report: ready, or why not. */
export type LifeReport = { readonly type: 'ready' } | { readonly type: 'failed'; readonly message: string };

const READY_TIMEOUT_MS = 30_000;
const FINAL_TIMEOUT_MS = 5000;
const EXIT_TIMEOUT_MS = 5000;
/** How long the child gives its connections to close after its final report. */
const CLOSE_BOUND_MS = 3000;

/** Parent side of one helper process. */
export class ChildChannel<Report extends { readonly type: string }> {
  readonly #child: ChildProcess;
  #exited = false;
  #onFinal: ((r: Report) => void) | null = null;

  private constructor(child: ChildProcess) {
    this.#child = child;
    child.once('exit', () => {
      this.#exited = true;
    });
  }

  get pid(): number {
    return this.#child.pid ?? 0;
  }

  /**
   * Starts `script` (a URL in dist) with `spec` as its argument and resolves once it is ready.
   * `onReport` gets every report but `ready` and `failed`, the `final` one included. `what` names
   * it in errors; `nodeArgsEnv` names an environment variable of extra node flags (profiling).
   */
  static async start<Report extends { readonly type: string }>(
    script: URL,
    spec: unknown,
    what: string,
    onReport: (r: Report) => void,
    nodeArgsEnv?: string,
  ): Promise<ChildChannel<Report>> {
    const child = spawn(
      process.execPath,
      [...(nodeArgsEnv === undefined ? [] : extraNodeArgs(nodeArgsEnv)), ...nodeScriptArgs(script), JSON.stringify(spec)],
      { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] },
    );
    const channel = new ChildChannel<Report>(child);
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${what} were not ready within ${READY_TIMEOUT_MS / 1000} s`)), READY_TIMEOUT_MS);
        child.once('exit', (code) => {
          clearTimeout(timer);
          reject(new Error(`the ${what} process exited with ${code} before it was ready`));
        });
        child.on('message', (m: Report | LifeReport) => {
          if (m.type === 'ready') {
            clearTimeout(timer);
            resolve();
          } else if (m.type === 'failed') {
            clearTimeout(timer);
            reject(new Error(`${what} failed: ${(m as { message: string }).message}`));
          } else {
            onReport(m as Report);
            if (m.type === 'final') channel.#onFinal?.(m as Report);
          }
        });
      });
    } catch (err) {
      await channel.kill();
      throw err;
    }
    return channel;
  }

  send(command: { readonly type: string }): void {
    if (!this.#exited) this.#child.send(command);
  }

  /** Sends `stop`, resolves with the final report (null: none within 5 s), then lets the process exit (bounded). */
  async stop(): Promise<Report | null> {
    if (this.#exited) return null;
    const final = new Promise<Report | null>((resolve) => {
      const timer = setTimeout(() => resolve(null), FINAL_TIMEOUT_MS);
      this.#onFinal = (r) => {
        clearTimeout(timer);
        resolve(r);
      };
      this.#child.once('exit', () => {
        clearTimeout(timer);
        resolve(null);
      });
    });
    this.send({ type: 'stop' });
    const r = await final;
    // It closes its connections and exits by itself; past the bound it is stopped.
    await Promise.race([
      new Promise<void>((resolve) => (this.#exited ? resolve() : this.#child.once('exit', () => resolve()))),
      new Promise<void>((resolve) => setTimeout(resolve, EXIT_TIMEOUT_MS)),
    ]);
    await this.kill();
    return r;
  }

  /** Stops the process unless it has exited (stopChild would wait for an exit that already happened by signal). */
  async kill(): Promise<void> {
    if (!this.#exited) await stopChild(this.#child, 2000);
  }
}

// ---- the child's side ----------------------------------------------------------------------------

/** Sends one report to the parent; resolves once it is written (or at once without a channel). */
export function sendToParent(report: unknown): Promise<void> {
  return new Promise((resolve) => {
    if (!process.connected) resolve();
    else process.send?.(report, undefined, undefined, () => resolve());
  });
}

/** The child's end: its final report, then its connections closed (bounded), then exit. */
export async function finishChild(final: unknown, closers: ReadonlyArray<() => Promise<unknown>>): Promise<void> {
  await sendToParent(final);
  const bound = new Promise<void>((resolve) => setTimeout(resolve, CLOSE_BOUND_MS).unref());
  await Promise.race([Promise.all(closers.map((c) => c().catch(() => undefined))), bound]);
  process.exit(0);
}

/** Runs the child's `main`: exits on SIGTERM or when the parent goes away, and reports `failed` if main throws. */
export function runChild(main: () => Promise<void>): void {
  process.on('SIGTERM', () => process.exit(0));
  process.on('disconnect', () => process.exit(0)); // the harness is gone
  main().catch(async (err: unknown) => {
    await sendToParent({ type: 'failed', message: err instanceof Error ? err.message : String(err) } satisfies LifeReport);
    process.exit(1);
  });
}
