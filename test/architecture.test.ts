/**
 * The folder layout is the architecture (docs/architecture.md, "Rooms"); this keeps it true.
 * It reads every import of src/ (static, `export … from`, dynamic `import()`, type-only ones
 * too: a type-only back edge is still a cycle a reader has to untangle) and fails on:
 * - an arrow from the pure layers (ring, protocol, router, queue, store) up into shard, front,
 *   control or cli;
 * - `node:worker_threads` in router, queue or control (single-threaded code, testable alone);
 * - uWebSockets.js imported outside front;
 * - `front` importing router or queue directly (socket code calls control);
 * - the NATS client imported outside cluster/, or cluster/ loaded statically from outside it
 *   (a node without --cluster must not load it: broker.ts imports it dynamically);
 * - any import cycle.
 * The checker itself is tested on planted violations, so a rule that can never fail shows up.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

type Graph = Map<string, Set<string>>;

const SRC = resolve(import.meta.dirname, '../src');
const PURE = ['ring', 'protocol', 'router', 'queue', 'store', 'stream'];
const UPPER = ['shard', 'front', 'control', 'cli', 'cluster'];
const SINGLE_THREADED = ['router', 'queue', 'control'];

const IMPORT = /(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|import\s*\(\s*['"]([^'"]+)['"]\s*\)|import\s+['"]([^'"]+)['"]/g;

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...sourceFiles(path));
    else if (/\.(ts|mts|mjs)$/.test(name)) out.push(path);
  }
  return out;
}

/** file (relative to src/) → what it imports: other files relative to src/, or bare specifiers. */
function importGraph(): Graph {
  const graph: Graph = new Map();
  for (const file of sourceFiles(SRC)) {
    const from = relative(SRC, file);
    const targets = new Set<string>();
    const text = readFileSync(file, 'utf8')
      .replace(/\/\*[\s\S]*?\*\//g, '')
      .replace(/^\s*\/\/.*$/gm, '');
    for (const m of text.matchAll(IMPORT)) {
      const spec = m[1] ?? m[2] ?? m[3];
      if (spec.startsWith('.')) targets.add(relative(SRC, resolve(dirname(file), spec)).replace(/\.js$/, '.ts'));
      else targets.add(spec);
    }
    graph.set(from, targets);
  }
  return graph;
}

const room = (file: string): string => (file.includes('/') ? file.slice(0, file.indexOf('/')) : '');

/** Every rule broken in `graph`, one line each. */
function violations(graph: Graph): string[] {
  const out: string[] = [];
  for (const [file, targets] of graph) {
    const here = room(file);
    for (const t of targets) {
      const there = graph.has(t) ? room(t) : null;
      if (PURE.includes(here) && there !== null && UPPER.includes(there))
        out.push(`${file} imports ${t}: ${here}/ may not depend on ${there}/`);
      if (SINGLE_THREADED.includes(here) && (t === 'node:worker_threads' || t === 'worker_threads'))
        out.push(`${file} imports ${t}: ${here}/ is single-threaded`);
      if (t === 'uWebSockets.js' && here !== 'front') out.push(`${file} imports uWebSockets.js outside front/`);
      if (here === 'front' && (there === 'router' || there === 'queue'))
        out.push(`${file} imports ${t}: front/ calls control/, not ${there}/`);
      if (t === 'nats' && here !== 'cluster') out.push(`${file} imports the NATS client outside cluster/`);
    }
  }
  for (const cycle of cycles(graph)) out.push(`import cycle: ${cycle.join(' -> ')}`);
  return out;
}

/** The cycles of `graph` (one per strongly connected component of more than one file, or a self-import). */
function cycles(graph: Graph): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  let next = 0;
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next);
    next++;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1 || graph.get(v)?.has(v)) found.push(component.reverse());
    }
  };
  for (const v of [...graph.keys()].sort()) if (!index.has(v)) visit(v);
  return found;
}

/** Static value imports of cluster/ from outside it (type-only imports and `import()` are fine). */
function staticClusterImports(): string[] {
  const out: string[] = [];
  const STATIC = /^\s*(?:import|export)\s+(?!type\b)[^'"]*?from\s*['"]([^'"]+)['"]/gm;
  for (const file of sourceFiles(SRC)) {
    const from = relative(SRC, file);
    if (room(from) === 'cluster') continue;
    for (const m of readFileSync(file, 'utf8').matchAll(STATIC)) {
      const target = relative(SRC, resolve(dirname(file), m[1]));
      if (m[1].startsWith('.') && room(target) === 'cluster') out.push(`${from} loads ${target} statically`);
    }
  }
  return out;
}

describe('architecture', () => {
  it('src/ keeps its rooms: no upward arrow, threads and uWS where they belong, no cycle', () => {
    const graph = importGraph();
    expect(graph.size).toBeGreaterThan(50);
    expect(violations(graph)).toEqual([]);
    expect(staticClusterImports()).toEqual([]);
    // The one way in is the dynamic import in broker.ts.
    expect(graph.get('front/broker.ts')?.has('cluster/cluster-node.ts')).toBe(true);
  });

  it('the checker fails on each planted violation', () => {
    const planted = (edges: Array<[string, string]>): string[] => {
      const g: Graph = new Map();
      for (const [a, b] of edges) {
        if (!g.has(a)) g.set(a, new Set());
        if (!b.startsWith('node:') && b !== 'uWebSockets.js' && !g.has(b)) g.set(b, new Set());
        g.get(a)!.add(b);
      }
      return violations(g);
    };
    expect(planted([['ring/spsc-ring.ts', 'shard/shard-core.ts']])).toEqual([expect.stringContaining('ring/ may not depend on shard/')]);
    expect(planted([['store/log-store.ts', 'control/topology.ts']])).toEqual([
      expect.stringContaining('store/ may not depend on control/'),
    ]);
    expect(planted([['control/x.ts', 'node:worker_threads']])).toEqual([expect.stringContaining('single-threaded')]);
    expect(planted([['shard/x.ts', 'uWebSockets.js']])).toEqual([expect.stringContaining('outside front/')]);
    expect(planted([['front/x.ts', 'router/y.ts']])).toEqual([expect.stringContaining('front/ calls control/')]);
    expect(planted([['front/x.ts', 'nats']])).toEqual([expect.stringContaining('NATS client outside cluster/')]);
    expect(planted([['cluster/x.ts', 'nats']])).toEqual([]);
    expect(
      planted([
        ['a/x.ts', 'b/y.ts'],
        ['b/y.ts', 'c/z.ts'],
        ['c/z.ts', 'a/x.ts'],
      ]),
    ).toEqual(['import cycle: a/x.ts -> b/y.ts -> c/z.ts']);
    expect(planted([['a/x.ts', 'b/y.ts']])).toEqual([]);
  });
});
