import { cpus, platform, release, totalmem } from 'node:os';
import { execFileSync } from 'node:child_process';

/** What every benchmark table is headed by: figures without their machine mean nothing. */
export interface MachineInfo {
  readonly cpuModel: string;
  readonly cores: number;
  readonly memoryGiB: number;
  readonly node: string;
  readonly os: string;
  readonly commit: string;
  readonly date: string;
}

export function describeMachine(): MachineInfo {
  let commit = 'unknown';
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
    if (dirty !== '') commit += '+dirty';
  } catch {
    // Not a git checkout (an installed package): the commit stays unknown.
  }
  const list = cpus();
  return {
    cpuModel: list[0]?.model.trim() ?? 'unknown',
    cores: list.length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    os: `${platform()} ${release()}`,
    commit,
    date: new Date().toISOString().slice(0, 19) + 'Z',
  };
}

export function machineLine(m: MachineInfo): string {
  return `${m.cpuModel}, ${m.cores} cores, ${m.memoryGiB} GiB, Node ${m.node}, ${m.os}, commit ${m.commit}, ${m.date}`;
}
