import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { CONFIG_SPECS, envName } from '../../src/config/config.js';
import { FLAG_HELP } from '../../src/config/flag-help.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** Runs the CLI from sources; `input` goes to its stdin. */
function cli(args: string[], input = ''): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
    cwd: root,
    input,
    encoding: 'utf8',
    timeout: 30_000,
    env: { ...process.env, SHARDMQ_URL: 'http://127.0.0.1:9' },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('cli - help and bad command lines', () => {
  it('every serve flag has a meaning and a default, and the README table says the same', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    for (const spec of CONFIG_SPECS) {
      const help = FLAG_HELP[spec.flag];
      expect(help, spec.flag).toBeDefined();
      expect(help.meaning.length, spec.flag).toBeGreaterThan(0);
      const row = readme.split('\n').find((l) => l.startsWith('| ') && (l.split('|')[1] ?? '').includes(`\`--${spec.flag}\``));
      expect(row, `README row for --${spec.flag}`).toBeDefined();
      expect(row?.replace(/`/g, ''), `README default of --${spec.flag}`).toContain(`| ${help.def} |`);
    }
    expect(Object.keys(FLAG_HELP).sort()).toEqual(CONFIG_SPECS.map((s) => s.flag).sort());
  });

  it('shardmq <command> --help lists every flag with its default (and its variable for serve), exit 0', () => {
    const serve = cli(['serve', '--help']);
    expect(serve.status).toBe(0);
    for (const spec of CONFIG_SPECS) {
      expect(serve.stdout).toContain(`--${spec.flag} `);
      expect(serve.stdout).toContain(`env ${envName(spec.flag)}`);
    }
    for (const [command, flags] of [
      ['pub', ['--count', '--rate', '--url']],
      ['sub', ['--count', '--ack', '--prefetch', '--url']],
      ['bench', ['--quick', '--only', '--runs', '--out', '--json']],
    ] as const) {
      const r = cli([command, '--help']);
      expect(r.status, command).toBe(0);
      expect(r.stdout).toContain(`usage: shardmq ${command}`);
      for (const f of flags) expect(r.stdout, `${command} ${f}`).toMatch(new RegExp(`${f} .*default: `));
    }
    const all = cli(['--help']);
    expect(all.status).toBe(0);
    for (const command of ['serve', 'pub', 'sub', 'bench']) expect(all.stdout).toContain(`usage: shardmq ${command}`);
  });

  it('an unknown flag is one line and a pointer to --help, exit 2, no stack trace', () => {
    for (const command of ['serve', 'pub', 'sub', 'bench']) {
      const r = cli([command, '--no-such-flag']);
      expect(r.status, command).toBe(2);
      expect(r.stderr).toContain(`shardmq ${command}: Unknown option '--no-such-flag'`);
      expect(r.stderr).toContain(`see: shardmq ${command} --help`);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
    const unknown = cli(['frobnicate']);
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toMatch(/unknown command "frobnicate"/);
  });

  it('pub with no message and an empty stdin publishes nothing and says so, exit 2', () => {
    const r = cli(['pub', '/queue/jobs'], '');
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('nothing to publish');
  });
});
