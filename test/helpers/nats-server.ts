/**
 * A real nats-server (Debian's, installed by scripts/ci-deps.sh) on 127.0.0.1 and a port it
 * picks, started and stopped by PID; `restart` brings it back on the same port.
 */
import { spawn, type ChildProcess } from 'node:child_process';

const READY = /Listening for client connections on [^\s]*:(\d+)/;

export class NatsServer {
  #child: ChildProcess | null = null;
  #port = -1;

  get port(): number {
    return this.#port;
  }

  get url(): string {
    return `nats://127.0.0.1:${this.#port}`;
  }

  static async start(): Promise<NatsServer> {
    const server = new NatsServer();
    await server.#spawn();
    return server;
  }

  async #spawn(): Promise<void> {
    const child = spawn('nats-server', ['-a', '127.0.0.1', '-p', String(this.#port)], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.#child = child;
    let seen = '';
    this.#port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`nats-server did not start in 10 s: ${seen}`)), 10_000);
      child.once('error', (err) => {
        clearTimeout(timer);
        reject(new Error(`cannot run nats-server (scripts/ci-deps.sh installs it): ${err.message}`));
      });
      child.stderr?.on('data', (chunk: Buffer) => {
        seen += chunk.toString();
        const m = READY.exec(seen);
        if (m !== null) {
          clearTimeout(timer);
          resolve(Number(m[1]));
        }
      });
      child.once('exit', (code) => reject(new Error(`nats-server exited (${code}): ${seen}`)));
    });
  }

  /** Kills it (SIGKILL: whatever it held is gone) and waits for the exit. */
  async kill(): Promise<void> {
    const child = this.#child;
    if (child === null || child.exitCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
    this.#child = null;
  }

  async restart(): Promise<void> {
    await this.kill();
    await this.#spawn();
  }

  async stop(): Promise<void> {
    await this.kill();
  }
}
