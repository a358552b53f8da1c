/**
 * CPU and memory of processes the harness starts (broker, bare uWS, peer servers), read from /proc,
 * plus a meter that samples them around a measured run. Linux only; elsewhere the figures read 0.
 */
import { readFileSync } from 'node:fs';
import { summarize } from './sample-stats.js';

/** USER_HZ: /proc/<pid>/stat counts CPU time in clock ticks of 1/100 s on Linux. */
const CLOCK_TICKS = 100;

/** CPU seconds (user + system, all threads) process `pid` has used so far; 0 if unreadable. */
export function processCpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces): utime and stime are fields 14 and 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return 0;
  }
}

/** Resident set size of process `pid` now, in bytes; 0 if unreadable. */
export function processRssBytes(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = /VmRSS:\s+(\d+) kB/.exec(status);
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Busy and total jiffies of the whole machine (/proc/stat), to tell how loaded it was. */
export function machineJiffies(): { busy: number; total: number } {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0];
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    const total = f.reduce((s, x) => s + x, 0);
    const idle = (f[3] ?? 0) + (f[4] ?? 0); // idle + iowait
    return { busy: total - idle, total };
  } catch {
    return { busy: 0, total: 0 };
  }
}

export interface ResourceSample {
  /** Wall seconds the meter ran. */
  readonly seconds: number;
  /** CPU seconds per wall second of the watched process (1.0 = one core busy). */
  readonly cores: number;
  /** Highest RSS seen while the meter ran (sampled every 100 ms), bytes. */
  readonly peakRssBytes: number;
  /** RSS at the end, bytes. */
  readonly endRssBytes: number;
  /** CPU seconds per wall second of this harness process. */
  readonly harnessCores: number;
  /**
   * CPU per wall second on the machine not used by the watched process or the harness: other
   * developers' tests, other benchmarks. Above ~0.1 the run was shared (docs/engine-notes.md §2, noise).
   */
  readonly foreignCores: number;
}

/** Samples one process's CPU and RSS (and the harness's and the machine's CPU) over a run. */
export class ResourceMeter {
  readonly #pids: readonly number[];
  readonly #t0 = performance.now();
  readonly #cpu0: number;
  readonly #self0 = process.cpuUsage();
  readonly #machine0 = machineJiffies();
  readonly #timer: NodeJS.Timeout;
  #peak = 0;

  /** `pids`: the processes whose CPU and RSS count as "the server" (summed). */
  constructor(pids: readonly number[]) {
    this.#pids = pids;
    this.#cpu0 = this.#cpu();
    this.#peak = this.#rss();
    this.#timer = setInterval(() => {
      this.#peak = Math.max(this.#peak, this.#rss());
    }, 100);
    this.#timer.unref();
  }

  #cpu(): number {
    return this.#pids.reduce((s, pid) => s + processCpuSeconds(pid), 0);
  }

  #rss(): number {
    return this.#pids.reduce((s, pid) => s + processRssBytes(pid), 0);
  }

  /** Stops sampling; `seconds` overrides the wall time the rates are per (e.g. the measured window). */
  stop(): ResourceSample {
    clearInterval(this.#timer);
    const wall = (performance.now() - this.#t0) / 1000;
    const end = this.#rss();
    const cpu = this.#cpu() - this.#cpu0;
    const self = process.cpuUsage(this.#self0);
    const selfSeconds = (self.user + self.system) / 1e6;
    const m1 = machineJiffies();
    const machineBusySeconds = (m1.busy - this.#machine0.busy) / CLOCK_TICKS;
    const foreign = Math.max(0, machineBusySeconds - cpu - selfSeconds);
    return {
      seconds: wall,
      cores: wall > 0 ? cpu / wall : 0,
      peakRssBytes: Math.max(this.#peak, end),
      endRssBytes: end,
      harnessCores: wall > 0 ? selfSeconds / wall : 0,
      foreignCores: wall > 0 ? foreign / wall : 0,
    };
  }
}

export function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(0)} MiB`;
}

/**
 * The resource cells of a table row over a set of runs, read the same way in every workload: CPU as
 * the median over the runs, memory as the highest peak any run reached.
 */
export function resourceCells(samples: readonly ResourceSample[]): { cores: string; peakRss: string; harness: string; foreign: string } {
  const median = (pick: (r: ResourceSample) => number): string => summarize(samples.map(pick)).median.toFixed(2);
  return {
    cores: median((r) => r.cores),
    peakRss: mib(Math.max(...samples.map((r) => r.peakRssBytes))),
    harness: median((r) => r.harnessCores),
    foreign: median((r) => r.foreignCores),
  };
}
