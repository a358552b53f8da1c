/**
 * Starts and stops the null broker (amqp-null-broker.ts) as a child process of the harness, by PID,
 * on a port of 127.0.0.1 it picks itself.
 */
import { spawn } from 'node:child_process';
import { nodeScriptArgs, stopChild } from './child.js';

export interface NullBroker {
  readonly url: string;
  readonly pid: number;
  stop(): Promise<void>;
}

export async function startNullBroker(): Promise<NullBroker> {
  const child = spawn(process.execPath, nodeScriptArgs(new URL('./amqp-null-broker.js', import.meta.url)), {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`the null broker did not listen within 10 s: ${err}`)), 10_000);
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /port (\d+)/.exec(out);
      if (m !== null) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the null broker exited with ${code}: ${err}`));
    });
  });
  return {
    url: `amqp://guest:guest@127.0.0.1:${port}`,
    pid: child.pid as number,
    stop: () => stopChild(child, 5000),
  };
}
