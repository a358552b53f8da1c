/**
 * The README's commands work as written in a checkout after `npm ci`: the quick start's
 * `npm start`, then every command of "Use it" against it, each checked by what it prints. The only
 * change to them is the port (an OS-picked one instead of 7070, through SHARDMQ_PORT and
 * SHARDMQ_URL, which the README documents), so the test never collides with a broker on 7070.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

/** The shell commands of the first ```sh block after `heading`, comments dropped. */
function commandsUnder(heading: string): string[] {
  const at = readme.indexOf(`\n## ${heading}\n`);
  expect(at, `README has a "${heading}" section`).toBeGreaterThanOrEqual(0);
  const block = /```sh\n([\s\S]*?)```/.exec(readme.slice(at));
  expect(block, `a sh block under "${heading}"`).not.toBeNull();
  return (block?.[1] ?? '')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
}

function linesOf(child: ChildProcess, stream: 'stdout' | 'stderr'): string[] {
  const lines: string[] = [];
  let buf = '';
  child[stream]?.on('data', (d: Buffer) => {
    buf += d.toString();
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      lines.push(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
    }
  });
  return lines;
}

async function until(check: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`README test: ${what} within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("README's commands", () => {
  let broker: ChildProcess;
  let port = 0;
  const env = (): NodeJS.ProcessEnv => ({ ...process.env, SHARDMQ_URL: `http://127.0.0.1:${port}` });

  beforeAll(async () => {
    // The quick start's "npm ci && npm start": npm ci already ran for this checkout.
    const quick = commandsUnder('Quick start');
    expect(quick[0]).toBe('npm ci && npm start');
    // Its own process group: npm does not always pass SIGTERM on to the broker it started, which then outlived the test.
    broker = spawn('npm', ['start'], {
      cwd: root,
      env: { ...process.env, SHARDMQ_PORT: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    const out = linesOf(broker, 'stdout');
    await until(() => out.some((l) => /"url":"http:\/\/127\.0\.0\.1:\d+"/.test(l)), 60_000, 'npm start prints its listening line');
    const line = out.find((l) => /"url":"http:\/\/127\.0\.0\.1:\d+"/.test(l)) ?? '';
    port = Number(/127\.0\.0\.1:(\d+)/.exec(line)?.[1]);
    expect(line).toMatch(/shardmq listening on http:\/\/127\.0\.0\.1:\d+ with \d+ shard\(s\); uWebSockets\.js loaded natively/);
  }, 90_000);

  afterAll(async () => {
    if (broker.exitCode === null && broker.pid !== undefined) {
      const exited = new Promise((r) => broker.once('exit', r));
      process.kill(-broker.pid, 'SIGTERM');
      await exited;
    }
  });

  it('"Use it": the subscriber prints what the publisher, curl and an NDJSON batch sent; stats answer', async () => {
    const commands = commandsUnder('Use it').map((c) => c.replace(/localhost:7070/g, `127.0.0.1:${port}`));
    const [subscribe, ...rest] = commands;
    expect(subscribe).toBe("node bin/shardmq.js sub '/topic/sensors.*'");
    const sub = spawn('bash', ['-c', `exec ${subscribe}`], { cwd: root, env: env(), stdio: ['ignore', 'pipe', 'pipe'] });
    const printed = linesOf(sub, 'stdout');
    const said = linesOf(sub, 'stderr');
    try {
      await until(() => said.some((l) => l.startsWith('subscribed to /topic/sensors.*')), 20_000, 'sub says it subscribed');
      const outputs = rest.map((command) => {
        const r = spawnSync('bash', ['-c', command], { cwd: root, env: env(), encoding: 'utf8', timeout: 30_000 });
        expect(r.status, `${command}\n${r.stderr}`).toBe(0);
        // curl's answer is its stdout (its progress meter goes to stderr); the CLI reports on stderr.
        return { command, out: command.startsWith('curl') ? r.stdout : r.stdout + r.stderr };
      });
      const byStart = (prefix: string): string => outputs.find((o) => o.command.includes(prefix))?.out ?? '';
      expect(byStart('pub /topic/sensors.temp')).toMatch(/published 1 message\(s\) to \/topic\/sensors\.temp/);
      expect(byStart('/v1/publish/queue/jobs')).toBe('{"accepted":1}');
      expect(byStart('x-ndjson')).toBe('{"accepted":3}');
      expect(JSON.parse(byStart('/v1/stats'))).toHaveProperty('shards');
      await until(() => printed.length >= 4, 10_000, 'the subscriber printed four messages');
      expect(printed).toEqual(['21.5', '1', '2', '3']);
    } finally {
      sub.kill('SIGINT');
      await new Promise((r) => sub.once('exit', r));
    }
  }, 60_000);
});
