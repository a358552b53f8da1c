/**
 * The scale workload's shared measurements: publish → deliver latency at a fixed low rate (the
 * send time travels in the payload), for any system that can publish a string and call back
 * with it. The caller wires its subscriber to `record`.
 */
import { spawn } from 'node:child_process';

/** The rate every scale point measures latency at. */
export const SCALE_LATENCY_RATE = 2000;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export const pct = (sorted: readonly number[], p: number): number =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;

export class LatencyProbe {
  #values: number[] = [];
  #measuring = false;
  readonly #publish: (sentAt: string) => void;

  /** `publish` sends its argument as the payload; the subscriber hands what it got to record(). */
  constructor(publish: (sentAt: string) => void) {
    this.#publish = publish;
  }

  /** A delivery whose payload is the send time published. */
  record(payload: string): void {
    if (this.#measuring) this.#values.push(performance.now() - Number(payload));
  }

  /**
   * Publishes at SCALE_LATENCY_RATE for `ms` after a 0.5 s warm-up and returns the sorted latencies
   * (ms); `during`, when given, runs alongside from the start of the measured part, and the
   * measurement goes on until it has finished too (all of it is measured, however long it takes).
   */
  async run(ms: number, during?: () => Promise<void>): Promise<number[]> {
    const warmMs = 500;
    const start = performance.now();
    let sent = 0;
    let side: Promise<void> | null = null;
    let sideDone = false;
    this.#values = [];
    this.#measuring = false;
    while (performance.now() - start < warmMs + ms || (side !== null && !sideDone)) {
      const now = performance.now();
      if (!this.#measuring && now - start >= warmMs) {
        this.#measuring = true;
        if (during !== undefined) {
          const finished = (): void => {
            sideDone = true;
          };
          side = during();
          side.then(finished, finished);
        }
      }
      const due = Math.floor(((now - start) / 1000) * SCALE_LATENCY_RATE);
      while (sent < due) {
        this.#publish(String(performance.now()));
        sent++;
      }
      await sleep(1);
    }
    if (side !== null) await side;
    await sleep(300);
    this.#measuring = false;
    return this.#values.sort((a, b) => a - b);
  }
}

/** GET `url` and read the whole body; returns the milliseconds it took. */
export async function timedGet(url: string): Promise<number> {
  const t = performance.now();
  const res = await fetch(url, { signal: AbortSignal.timeout(30_000) });
  await res.arrayBuffer();
  if (res.status !== 200) throw new Error(`${url} answered ${res.status}`);
  return performance.now() - t;
}

/** A management walk ready to go: its process is up and warm, waiting for `start`. */
export interface PreparedWalk {
  /** Starts the walk; resolves when it has finished. */
  start(): Promise<void>;
}

/**
 * The management walk, from a process of its own: fetched in the harness it would put the harness's
 * own parsing and GC (it is also the subscriber that measures) into the latencies. The process is
 * started, and its HTTP client warmed on `/healthz`, before the caller measures: a node process
 * starting (~100 ms of a core) on this two-core machine is contention the walk itself does not
 * cause, and it fell inside the measured window before.
 */
export async function prepareWalk(base: string, pages: number): Promise<PreparedWalk> {
  const script = `
    const get = async (path) => {
      const res = await fetch(${JSON.stringify(base)} + path, { signal: AbortSignal.timeout(30000) });
      await res.arrayBuffer();
      if (res.status !== 200) throw new Error(path + ' answered ' + res.status);
    };
    await get('/healthz');
    process.stdout.write('ready\\n');
    await new Promise((resolve) => process.stdin.once('data', resolve));
    await get('/v1/stats');
    await get('/metrics');
    for (let p = 1; p <= ${pages}; p++) await get('/v1/queues?page=' + p + '&page_size=500');
    process.exit(0);
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['pipe', 'pipe', 'pipe'] });
  let err = '';
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
  const exited = new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`management walk exited with ${code}: ${err.slice(0, 500)}`));
    });
  });
  exited.catch(() => {});
  await Promise.race([new Promise<void>((resolve) => child.stdout?.once('data', () => resolve())), exited]);
  return {
    start: () => {
      child.stdin?.write('go\n');
      return exited;
    },
  };
}

export { sleep };
