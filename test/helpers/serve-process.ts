/**
 * `shardmq serve` from sources as a child process (so a test can SIGKILL it), its URL read from
 * the start-up log line. Later log lines keep arriving in `lines`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface ServeProcess {
  readonly child: ChildProcess;
  readonly url: string;
  readonly lines: string[];
}

export async function startServe(args: string[], env: Record<string, string> = {}): Promise<ServeProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'serve', '--port', '0', ...args], {
    cwd: ROOT,
    env: { ...process.env, SHARDMQ_LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no start-up line; got ${lines.join('\n')}`)), 20_000);
    let buf = '';
    child.stdout?.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        lines.push(line);
        const rec = JSON.parse(line) as { url?: string };
        if (rec.url) {
          clearTimeout(timer);
          resolve(rec.url);
        }
      }
    });
    child.stderr?.on('data', (d: Buffer) => lines.push(d.toString()));
    child.once('exit', (code) => reject(new Error(`exited ${code}: ${lines.join('\n')}`)));
  });
  return { child, url, lines };
}

/** SIGKILL, and wait for the exit. */
export async function killServe(p: ServeProcess): Promise<void> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return;
  const exited = new Promise((r) => p.child.once('exit', r));
  p.child.kill('SIGKILL');
  await exited;
}
