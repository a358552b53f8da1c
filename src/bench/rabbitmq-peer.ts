/**
 * RabbitMQ as the AMQP peer of workloads/amqp.ts: Debian's `rabbitmq-server` (3.10.x in bookworm),
 * installed by scripts/install-bench-peers.sh and started here as a node the harness owns, never
 * as the distro's service. Nothing of the distro's set-up is used:
 *
 * - files: a temp dir holds the Mnesia base, the logs, `rabbitmq.conf`, `enabled_plugins` (`[]`:
 *   no management plugin, nothing else), an empty `rabbitmq-env.conf` (so /etc/rabbitmq's cannot
 *   rename or move the node) and HOME, where Erlang writes the node's `.erlang.cookie`;
 * - network: AMQP on 127.0.0.1 and a free port; Erlang distribution on a second free port, bound to
 *   127.0.0.1 too (`-kernel inet_dist_use_interface`: ERL_EPMD_ADDRESS binds only epmd, and the
 *   distribution listener otherwise takes 0.0.0.0); an epmd of its own on a third free port
 *   (ERL_EPMD_PORT), started here in the foreground, so the harness stops it by PID. Without it
 *   `erl` starts `epmd -daemon`, which detaches and outlives the run;
 * - node name `bench-<harness pid>-<n>@localhost`, unique on the machine.
 *
 * Ready = amqplib connects (retried for up to 60 s; the port only listens once the broker has
 * booted, about 4 s here). Stop: SIGTERM to the `rabbitmq-server` script, whose trap hands it to the
 * Erlang VM and waits for a clean stop (about 3 s); past a bound, SIGKILL to the VM and the script,
 * each by PID. The VM's PID (its CPU is "the server's") is its pid file, or the script's child.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import amqp from 'amqplib';
import { stopChild } from './child.js';
import { freePort, waitForPort } from './peers.js';

/** The broker's start script as Debian installs it (/usr/sbin/rabbitmq-server is a wrapper that su's to the `rabbitmq` user). */
export const RABBITMQ_SERVER_SCRIPT = '/usr/lib/rabbitmq/bin/rabbitmq-server';
export const RABBITMQ_INSTALL_HINT =
  'bash scripts/install-bench-peers.sh (apt-get installs rabbitmq-server, whose own service it leaves stopped)';
/** Boot to first AMQP connection, bounded: a node that is not up by then fails the start. */
const READY_TIMEOUT_MS = 60_000;
const CONNECT_RETRY_MS = 250;
/** A clean stop takes about 3 s on 2 cores; past this the VM is killed. */
const STOP_TIMEOUT_MS = 20_000;

export interface RabbitMqServer {
  /** amqp://127.0.0.1:<port> (guest, from loopback only: RabbitMQ's default). */
  readonly url: string;
  /** e.g. `RabbitMQ 3.10.8, Erlang/OTP 25.2.3` (from the server properties of a connection). */
  readonly version: string;
  /** The Erlang VM (beam.smp): the process whose CPU and memory are "the server". */
  readonly pid: number;
  /** Seconds from spawn to the first AMQP connection. */
  readonly bootSeconds: number;
  stop(): Promise<void>;
}

/** null when the script is there, else a sentence saying how to install it. */
export function rabbitMqMissing(): string | null {
  try {
    accessSync(RABBITMQ_SERVER_SCRIPT, constants.X_OK);
    return null;
  } catch {
    return `${RABBITMQ_SERVER_SCRIPT} is absent; install with ${RABBITMQ_INSTALL_HINT}`;
  }
}

/** `n` free ports on 127.0.0.1, all different (each is free when picked; the OS may hand one out twice). */
async function distinctFreePorts(n: number): Promise<number[]> {
  const ports = new Set<number>();
  for (let tries = 0; ports.size < n && tries < 10 * n; tries++) ports.add(await freePort());
  if (ports.size < n) throw new Error(`could not pick ${n} distinct free ports`);
  return [...ports];
}

/** Keeps the last `max` characters a stream wrote (for the error when the node does not come up). */
function tail(stream: NodeJS.ReadableStream | null, max = 4000): () => string {
  let text = '';
  stream?.on('data', (d: Buffer) => {
    text = (text + d.toString()).slice(-max);
  });
  return () => text.trim();
}

/** Still running: stopChild would wait for an 'exit' that already happened if it had died by a signal. */
function running(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

function alive(pid: number): boolean {
  if (pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The VM's OS pid: the pid file RabbitMQ writes at boot, else the script's only child (`exec erl` → beam.smp). */
function vmPid(pidFile: string, scriptPid: number): number {
  try {
    const pid = Number(readFileSync(pidFile, 'utf8').trim());
    if (Number.isInteger(pid) && pid > 0) return pid;
  } catch {
    // not written (yet): ask /proc
  }
  try {
    const children = readFileSync(`/proc/${scriptPid}/task/${scriptPid}/children`, 'utf8').trim().split(/\s+/).map(Number);
    if (children.length === 1 && children[0] > 0) return children[0];
  } catch {
    // not Linux, or the script is gone
  }
  return 0;
}

let started = 0;

/** Starts a RabbitMQ node on loopback as described above; resolves once amqplib can connect. */
export async function startRabbitMq(): Promise<RabbitMqServer> {
  const missing = rabbitMqMissing();
  if (missing !== null) throw new Error(missing);
  const t0 = performance.now();
  const dir = mkdtempSync(join(tmpdir(), 'shardmq-bench-rabbitmq-'));
  const [amqpPort, distPort, epmdPort] = await distinctFreePorts(3);
  const nodeName = `bench-${process.pid}-${++started}@localhost`;
  const configFile = join(dir, 'rabbitmq.conf');
  writeFileSync(
    configFile,
    [
      // Its defaults otherwise. In the foreground it also logs to stdout: the file in the temp dir is enough.
      'log.console = false',
      '',
    ].join('\n'),
  );
  writeFileSync(join(dir, 'enabled_plugins'), '[].\n');
  writeFileSync(join(dir, 'rabbitmq-env.conf'), '');
  const pidFile = join(dir, 'rabbitmq.pid');
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    HOME: dir,
    RABBITMQ_CONF_ENV_FILE: join(dir, 'rabbitmq-env.conf'),
    RABBITMQ_CONFIG_FILE: configFile,
    RABBITMQ_ADVANCED_CONFIG_FILE: join(dir, 'advanced.config'),
    RABBITMQ_ENABLED_PLUGINS_FILE: join(dir, 'enabled_plugins'),
    RABBITMQ_PLUGINS_EXPAND_DIR: join(dir, 'plugins-expand'),
    RABBITMQ_FEATURE_FLAGS_FILE: join(dir, 'feature_flags'),
    RABBITMQ_MNESIA_BASE: join(dir, 'mnesia'),
    RABBITMQ_LOG_BASE: join(dir, 'log'),
    RABBITMQ_PID_FILE: pidFile,
    RABBITMQ_NODENAME: nodeName,
    RABBITMQ_NODE_IP_ADDRESS: '127.0.0.1',
    RABBITMQ_NODE_PORT: String(amqpPort),
    RABBITMQ_DIST_PORT: String(distPort),
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS: '-kernel inet_dist_use_interface {127,0,0,1}',
    ERL_EPMD_ADDRESS: '127.0.0.1',
    ERL_EPMD_PORT: String(epmdPort),
  };
  delete env.RABBITMQ_ALLOW_INPUT; // keeps the script's TERM trap (it execs the VM in place otherwise)
  delete env.NOTIFY_SOCKET; // ditto: the script would think it runs under systemd

  let epmd: ChildProcess | null = null;
  let server: ChildProcess | null = null;
  let pid = 0;
  const onExit = (): void => {
    // The harness is exiting without stop() (a crash): do not leave a broker behind.
    for (const p of [pid, server?.pid ?? 0, epmd?.pid ?? 0]) if (alive(p)) process.kill(p, 'SIGKILL');
  };
  process.once('exit', onExit);

  const stop = async (): Promise<void> => {
    process.removeListener('exit', onExit);
    if (server !== null) {
      const scriptPid = server.pid ?? 0;
      // The script's TERM trap passes the signal to the VM and waits for it: a clean stop.
      if (running(server)) await stopChild(server, STOP_TIMEOUT_MS);
      // If the script was killed (past the bound), the VM may still run: by PID, no mercy.
      const vm = pid !== 0 ? pid : vmPid(pidFile, scriptPid);
      if (alive(vm)) process.kill(vm, 'SIGKILL');
    }
    if (epmd !== null && running(epmd)) await stopChild(epmd, 2000);
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    epmd = spawn('epmd', ['-port', String(epmdPort), '-address', '127.0.0.1'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    const epmdErr = tail(epmd.stderr);
    let spawnError = '';
    epmd.once('error', (e) => (spawnError = `epmd: ${e.message}`));
    try {
      await waitForPort(epmdPort, epmd, 'epmd (from erlang-base, a dependency of rabbitmq-server)', 5000);
    } catch (e) {
      throw new Error(`${(e as Error).message} ${spawnError} ${epmdErr()}`.trim());
    }

    server = spawn(RABBITMQ_SERVER_SCRIPT, [], { env, cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    server.once('error', (e) => (spawnError = `${RABBITMQ_SERVER_SCRIPT}: ${e.message}`));
    const out = tail(server.stdout);
    const err = tail(server.stderr);
    const deadline = performance.now() + READY_TIMEOUT_MS;
    const url = `amqp://127.0.0.1:${amqpPort}`;
    let version = '';
    for (;;) {
      if (!running(server) || spawnError !== '') {
        throw new Error(`rabbitmq-server exited (${server.exitCode ?? server.signalCode}) while booting: ${spawnError || err() || out()}`);
      }
      try {
        const conn = await amqp.connect(url);
        const p = conn.connection.serverProperties as Record<string, unknown>;
        version = `${String(p.product ?? 'RabbitMQ')} ${String(p.version ?? '?')}, ${String(p.platform ?? 'Erlang')}`;
        await conn.close();
        break;
      } catch (e) {
        if (performance.now() > deadline) {
          throw new Error(
            `rabbitmq-server did not accept an AMQP connection on ${url} within ${READY_TIMEOUT_MS / 1000} s (${(e as Error).message}); log dir ${join(dir, 'log')}: ${err() || out()}`,
          );
        }
        await new Promise((resolve) => setTimeout(resolve, CONNECT_RETRY_MS));
      }
    }
    pid = vmPid(pidFile, server.pid ?? 0);
    if (pid === 0) throw new Error('rabbitmq-server is up but its Erlang VM pid is unknown (no pid file, no child of the script)');
    return { url, version, pid, bootSeconds: (performance.now() - t0) / 1000, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}
