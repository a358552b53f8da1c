/**
 * What a vhost name costs on the publish path (issue 19): one broker, the same traffic into `/` and
 * into a non-default vhost, interleaved round by round, so the ratio comes from one run on one
 * warm machine. Two drives: the open-loop 1→1 pub/sub of the headline (exported client, confirms
 * on, lost counted at the subscriber; the vhost is named once, at the handshake) and HTTP publish
 * under autocannon (50 connections, pipelining 10, 128 B) into a capped queue without consumers,
 * each answered once its shard holds it. An HTTP request names its vhost in its query string, so
 * HTTP runs three ways: into `/` without a query, into `/` naming it (`?vhost=%2F`), and into the
 * other vhost (`?vhost=tenant-b`): the last two differ in the vhost only, the first two in the
 * query string only.
 */
import { startBrokerProcess, type BrokerProcess } from '../broker-process.js';
import { runOpenLoop, type OpenLoopResult } from '../open-loop.js';
import { shardmqOpenLoop } from '../open-loop-systems.js';
import { roundOrder } from '../pacing.js';
import { formatRate, spread, summarize } from '../sample-stats.js';
import type { Workload, WorkloadContext, WorkloadResult } from '../workload.js';
import { runCannon } from './http-publish.js';
import { OPEN_LOOP_COLUMNS, openLoopRow, openLoopSpec, pairedRatio } from './open-loop.js';

/** The non-default vhost of the comparison. */
const VHOST = 'tenant-b';
const QUEUE = 'bench.vhost';
const QUEUE_MAX = 100_000;
const PAYLOAD_128 = 'x'.repeat(128);
const PIPELINING = 10;

/** The HTTP request shapes, in the order of a round (rotated each round). */
const HTTP_VARIANTS = [
  { key: 'root', label: 'HTTP publish into / (no query)', query: '' },
  { key: 'root-named', label: 'HTTP publish into / (?vhost=%2F)', query: '?vhost=%2F' },
  { key: 'vhost', label: `HTTP publish into vhost ${VHOST} (?vhost=${VHOST})`, query: `?vhost=${VHOST}` },
] as const;

interface CannonRun {
  readonly rps: number;
  readonly non2xx: number;
  readonly errors: number;
  readonly p99ms: number;
}

export const vhosts: Workload = {
  name: 'vhosts',
  description: `a vhost name on the publish path: open-loop 1→1 (client, confirms on) and HTTP publish (autocannon, pipelining ${PIPELINING}) into / and into vhost '${VHOST}', interleaved on one broker`,
  async run(ctx: WorkloadContext): Promise<WorkloadResult> {
    // Twice the usual rounds, each shorter: the ratios are medians of per-round ratios (both sides
    // of a pair run back to back), which this noisy machine needs to tell a few percent from noise.
    const runs = ctx.quick ? 1 : 2 * ctx.runs;
    const seconds = ctx.quick ? 2 : 4;
    let broker: BrokerProcess | null = null;
    const loops = new Map<string, OpenLoopResult[]>();
    const cannons = new Map<string, CannonRun[]>();
    const vhostNames = ['/', VHOST];
    try {
      broker = await startBrokerProcess([]);
      await put(broker.url, `/v1/vhosts/${VHOST}`, {});
      for (const v of vhostNames) {
        await put(broker.url, `/v1/queues/${encodeURIComponent(v)}/${QUEUE}`, { durable: false, arguments: { 'x-max-length': QUEUE_MAX } });
      }
      const systems = vhostNames.map((v) => shardmqOpenLoop((broker as BrokerProcess).url, (broker as BrokerProcess).pid, true, v));
      for (const s of systems) {
        ctx.progress(`vhosts: warm-up ${s.name}`);
        await runOpenLoop(s, { ...openLoopSpec(1, true), messages: 20_000, maxSeconds: 2, drainSeconds: 2 });
      }
      for (let i = 0; i < runs; i++) {
        for (const s of roundOrder(systems, i)) {
          const r = await runOpenLoop(s, openLoopSpec(1, ctx.quick));
          loops.set(s.key, [...(loops.get(s.key) ?? []), r]);
          ctx.progress(`vhosts run ${i + 1}/${runs}: ${s.name} ${formatRate(r.deliveredPerSecond)} delivered/s, lost ${r.lost}`);
        }
        for (const h of roundOrder(HTTP_VARIANTS, i)) {
          const c = await runCannon(`${broker.url}/v1/publish/queue/${QUEUE}${h.query}`, seconds, PAYLOAD_128, {}, PIPELINING);
          cannons.set(h.key, [...(cannons.get(h.key) ?? []), c]);
          ctx.progress(`vhosts run ${i + 1}/${runs}: ${h.label} ${formatRate(c.rps)} req/s, non-2xx ${c.non2xx}`);
        }
      }
    } finally {
      await broker?.stop();
    }

    const figures: Record<string, number> = {};
    const med = (xs: readonly number[]): number => summarize(xs).median;
    const [rootKey, vhostKey] = vhostNames.map((v) => shardmqOpenLoop('', 0, true, v).key);
    const root = loops.get(rootKey) ?? [];
    const other = loops.get(vhostKey) ?? [];
    const rows = [openLoopRow('shardmq 1→1 in /', root), openLoopRow(`shardmq 1→1 in vhost ${VHOST}`, other)];
    figures.vhosts_open_loop_root_delivered_msgs_per_s = med(root.map((r) => r.deliveredPerSecond));
    figures.vhosts_open_loop_vhost_delivered_msgs_per_s = med(other.map((r) => r.deliveredPerSecond));
    figures.vhosts_open_loop_ratio =
      figures.vhosts_open_loop_vhost_delivered_msgs_per_s / figures.vhosts_open_loop_root_delivered_msgs_per_s;
    figures.vhosts_open_loop_lost = Math.max(0, ...root.map((r) => r.lost), ...other.map((r) => r.lost));
    const http = HTTP_VARIANTS.map((h) => cannons.get(h.key) ?? []);
    const rpsOf = (k: number): number => med(http[k].map((c) => c.rps));
    figures.vhosts_http_root_req_per_s = rpsOf(0);
    figures.vhosts_http_root_named_req_per_s = rpsOf(1);
    figures.vhosts_http_vhost_req_per_s = rpsOf(2);
    // The vhost's own cost: the same request naming another vhost instead of '/'.
    figures.vhosts_http_ratio = pairedRatio(http[2], http[1], (c) => c.rps);
    // Beside it, against '/' named by no query at all (the query string's cost included).
    figures.vhosts_http_ratio_vs_no_query = pairedRatio(http[2], http[0], (c) => c.rps);
    figures.vhosts_http_non2xx = http.flat().reduce((n, c) => n + c.non2xx + c.errors, 0);
    const httpRows = HTTP_VARIANTS.map((h, k) => {
      const rps = http[k].map((c) => c.rps);
      return [
        h.label,
        formatRate(med(rps)),
        spread(summarize(rps)),
        `${med(http[k].map((c) => c.p99ms)).toFixed(1)} ms`,
        http[k].reduce((n, c) => n + c.non2xx + c.errors, 0),
      ];
    });
    return {
      figures,
      tables: [
        {
          title: `A vhost name on the publish path: open loop 1→1, / vs vhost '${VHOST}' (same broker, interleaved)`,
          columns: OPEN_LOOP_COLUMNS,
          rows,
          notes: [
            `Delivered/s in vhost ${VHOST} ÷ in /: ${figures.vhosts_open_loop_ratio.toFixed(3)}× (median of the ${root.length} rounds' ratios); lost at most ${figures.vhosts_open_loop_lost}.`,
          ],
        },
        {
          title: `A vhost name on the publish path: HTTP publish (autocannon, 50 connections, pipelining ${PIPELINING}, 128 B) into a capped queue`,
          columns: ['target', 'req/s (median)', 'spread', 'p99 (median)', 'non-2xx + errors'],
          rows: httpRows,
          notes: [
            `req/s into vhost ${VHOST} ÷ into / named the same way (?vhost=%2F): ${figures.vhosts_http_ratio.toFixed(3)}× (the vhost's cost); ÷ into / without a query: ${figures.vhosts_http_ratio_vs_no_query.toFixed(3)}× (the query string's cost too); medians of per-round ratios.`,
          ],
        },
      ],
    };
  },
};

async function put(url: string, path: string, body: unknown): Promise<void> {
  const res = await fetch(`${url}${path}`, { method: 'PUT', body: JSON.stringify(body), signal: AbortSignal.timeout(10_000) });
  if (res.status !== 201 && res.status !== 200) throw new Error(`PUT ${path}: ${res.status} ${await res.text()}`);
}
