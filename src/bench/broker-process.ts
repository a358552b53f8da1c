import { spawn, type ChildProcess } from 'node:child_process';
import { BROKER_V8_FLAGS } from '../cli/gc-tuning.js';
import { extraNodeArgs, nodeScriptArgs, stopChild } from './child.js';
import { processCpuSeconds, processRssBytes } from './proc.js';

/** A broker started by the harness in its own process, on loopback and an OS-picked port. */
export interface BrokerProcess {
  /** The broker's log lines up to and including its start-up line (JSON lines). */
  readonly startupLog: string;
  readonly url: string;
  /** amqp://host:port of its AMQP listener (the harness starts it on an OS-picked port). */
  readonly amqpUrl: string | null;
  readonly pid: number;
  readonly child: ChildProcess;
  /** CPU seconds (user+system) the broker process has used so far, all threads. */
  cpuSeconds(): number;
  /** Resident set size now, bytes. */
  rssBytes(): number;
  stop(): Promise<void>;
}

/**
 * Extra node flags for every broker the harness starts, for profiling, e.g.
 * `SHARDMQ_BENCH_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof"` (space-separated).
 */
export const BENCH_NODE_ARGS_ENV = 'SHARDMQ_BENCH_NODE_ARGS';

/** Node's arguments for a broker: its V8 flags as `npm start` and bin/shardmq.js pass them (src/cli/gc-tuning.ts), any extra ones, the CLI. */
export function brokerNodeArgs(): string[] {
  return [...BROKER_V8_FLAGS, ...extraNodeArgs(BENCH_NODE_ARGS_ENV), ...nodeScriptArgs(new URL('../cli/main.js', import.meta.url))];
}

export async function startBrokerProcess(args: readonly string[] = []): Promise<BrokerProcess> {
  const nodeArgs = brokerNodeArgs();
  const child = spawn(
    process.execPath,
    [...nodeArgs, 'serve', '--host', '127.0.0.1', '--port', '0', '--amqp-port', '0', '--log-level', 'info', ...args],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let startupLog = '';
  let amqpUrl: string | null = null;
  const url = await new Promise<string>((resolve, reject) => {
    let buf = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error(`broker did not start in 20 s: ${err}`)), 20_000);
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout?.on('data', (d: Buffer) => {
      buf += d.toString();
      const m = /"url":"(http:\/\/[^"]+)"/.exec(buf);
      if (m) {
        clearTimeout(timer);
        startupLog = buf;
        amqpUrl = /"amqp":"(amqp:\/\/[^"]+)"/.exec(buf)?.[1] ?? null;
        buf = '';
        child.stdout?.removeAllListeners('data');
        child.stdout?.resume();
        resolve(m[1]);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`broker exited with ${code}: ${err}`));
    });
  });
  const pid = child.pid ?? 0;
  return {
    url,
    amqpUrl,
    pid,
    child,
    startupLog,
    cpuSeconds: () => processCpuSeconds(pid),
    rssBytes: () => processRssBytes(pid),
    stop: () => stopChild(child, 10_000),
  };
}
