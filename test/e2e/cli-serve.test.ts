import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { JsonWsClient } from '../helpers/ws-client.js';
import { startServe as startServeProcess, type ServeProcess } from '../helpers/serve-process.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** `shardmq serve` with two shards, as the cases below want it. */
function startServe(extra: string[] = []): Promise<ServeProcess> {
  return startServeProcess(['--shards', '2', ...extra]);
}

describe('cli - shardmq serve', () => {
  it('serve - logs URL, shard count and native uWS; SIGTERM closes WebSockets with 1001 and exits 0', async () => {
    const { child, url, lines } = await startServe();
    const startLine = JSON.parse(lines.find((l) => l.includes('"url"')) ?? '{}') as Record<string, unknown>;
    expect(startLine).toMatchObject({ shards: 2, level: 30 });
    expect(String(startLine.uws)).toMatch(/^native \(uws_linux_x64_\d+\.node\)$/);
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const c = await JsonWsClient.connect(url);
    await c.subscribe('s', '/topic/t');
    const exit = once(child, 'exit');
    child.kill('SIGTERM');
    const closed = await c.closed;
    expect(closed.code).toBe(1001);
    const [code] = await exit;
    expect(code).toBe(0);
  });

  it('serve - a bad flag value is refused with a message naming the flag', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'serve', '--shards', '0'], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    const [code] = await once(child, 'exit');
    expect(code).toBe(2);
    expect(err).toMatch(/shards must be an integer from 1 to 256 \(got "0"\)/);
  });

  it('pub and sub - the CLI publishes over HTTP and prints what it receives, one per line', async () => {
    const { child, url } = await startServe();
    const sub = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'sub', '/queue/cli', '--count', '3', '--url', url], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    sub.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    const subExit = once(sub, 'exit');
    const pub = spawn(
      process.execPath,
      ['--import', 'tsx', 'src/cli/main.ts', 'pub', '/queue/cli', 'hello', '--count', '3', '--url', url],
      { cwd: root, stdio: 'ignore' },
    );
    expect((await once(pub, 'exit'))[0]).toBe(0);
    expect((await subExit)[0]).toBe(0);
    expect(out).toBe('hello\nhello\nhello\n');
    child.kill('SIGTERM');
    expect((await once(child, 'exit'))[0]).toBe(0);
  });

  it('sub --offset first replays a stream from its start, as often as asked', async () => {
    const { child, url } = await startServe();
    try {
      const put = await fetch(`${url}/v1/queues/replay`, {
        method: 'PUT',
        body: JSON.stringify({ arguments: { 'x-queue-type': 'stream' } }),
      });
      expect(put.status).toBe(201);
      const pub = await fetch(`${url}/v1/publish/queue/replay`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-ndjson' },
        body: 'one\ntwo\nthree\n',
      });
      expect(pub.status).toBe(200);
      for (const [offset, want] of [
        ['first', 'one\ntwo\nthree\n'],
        ['1', 'two\nthree\n'],
      ] as const) {
        const count = String(want.split('\n').length - 1);
        const sub = spawn(
          process.execPath,
          ['--import', 'tsx', 'src/cli/main.ts', 'sub', '/queue/replay', '--offset', offset, '--count', count, '--url', url],
          { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] },
        );
        let out = '';
        sub.stdout?.on('data', (d: Buffer) => (out += d.toString()));
        expect((await once(sub, 'exit'))[0]).toBe(0);
        expect(out).toBe(want);
      }
    } finally {
      child.kill('SIGTERM');
      await once(child, 'exit');
    }
  });
});
