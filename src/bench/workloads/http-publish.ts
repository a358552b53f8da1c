/**
 * HTTP publish under autocannon, side by side with a bare uWebSockets.js endpoint
 * (the ceiling), interleaved A/B in one run; plus end-to-end delivery to a WebSocket
 * subscriber measured at the subscriber.
 */
import autocannon from 'autocannon';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { startBrokerProcess } from '../broker-process.js';
import { summarize, formatRate } from '../sample-stats.js';
import type { Workload, WorkloadContext, WorkloadResult } from '../workload.js';

const PAYLOAD_128 = 'x'.repeat(128);
/** autocannon settings shared by both sides of the comparison. */
const CONNECTIONS = 32;
const PIPELINING = 1;

interface CannonResult {
  readonly rps: number;
  readonly ok: number;
  readonly non2xx: number;
  readonly errors: number;
  readonly p99ms: number;
}

export function runCannon(url: string, seconds: number, body: string, headers: Record<string, string> = {}): Promise<CannonResult> {
  return new Promise((resolve, reject) => {
    autocannon(
      { url, method: 'POST', body, headers: { 'content-type': 'text/plain', ...headers }, connections: CONNECTIONS, pipelining: PIPELINING, duration: seconds },
      (err, result) => {
        if (err) {
          reject(err);
          return;
        }
        resolve({
          rps: result.requests.average,
          ok: result['2xx'],
          non2xx: result.non2xx,
          errors: result.errors + result.timeouts,
          p99ms: result.latency.p99,
        });
      },
    );
  });
}

async function startBareUws(): Promise<{ url: string; stop: () => Promise<void> }> {
  const self = fileURLToPath(new URL('../bare-uws-server.js', import.meta.url));
  const fromSource = import.meta.url.endsWith('.ts');
  const args = fromSource ? ['--import', 'tsx', self.replace(/\.js$/, '.ts')] : [self];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout?.once('data', (d: Buffer) => resolve((JSON.parse(d.toString()) as { url: string }).url));
    child.once('exit', (code) => reject(new Error(`bare uWS server exited ${code}`)));
  });
  return {
    url,
    stop: async () => {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** A JSON WebSocket subscriber that only counts what it receives. */
export async function countingSubscriber(url: string, destination: string): Promise<{ count: () => number; lastAt: () => number; close: () => void }> {
  const ws = new WebSocket(url.replace(/^http/, 'ws') + '/v1/ws');
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  let count = 0;
  let lastAt = 0;
  let subscribed: () => void = () => undefined;
  const ready = new Promise<void>((r) => (subscribed = r));
  ws.on('message', (data) => {
    const text = String(data);
    // Cheap check: message frames start with {"op":"message".
    if (text.startsWith('{"op":"message"')) {
      count++;
      lastAt = performance.now();
    } else if (text.includes('"receipt"')) subscribed();
  });
  ws.send(JSON.stringify({ op: 'subscribe', id: 'bench', destination, receipt: 'ready' }));
  await ready;
  return { count: () => count, lastAt: () => lastAt, close: () => ws.close() };
}

export const httpPublish: Workload = {
  name: 'http-publish',
  description: 'HTTP publish (autocannon, 128 B) vs a bare uWebSockets.js endpoint, and HTTP → WebSocket delivery',
  async run(ctx: WorkloadContext): Promise<WorkloadResult> {
    const seconds = ctx.quick ? 2 : 8;
    const runs = ctx.quick ? 1 : ctx.runs;
    const bare = await startBareUws();
    const broker = await startBrokerProcess([]);
    const sub = await countingSubscriber(broker.url, '/topic/bench.http');
    const bareRps: number[] = [];
    const brokerRps: number[] = [];
    const deliveredRate: number[] = [];
    const cpu: number[] = [];
    let non2xx = 0;
    let errors = 0;
    try {
      for (let i = 0; i < runs; i++) {
        const b = await runCannon(bare.url + '/v1/publish/topic/bench.http', seconds, PAYLOAD_128);
        bareRps.push(b.rps);
        ctx.progress(`http-publish run ${i + 1}/${runs}: bare uWS ${formatRate(b.rps)} req/s`);
        const before = sub.count();
        const cpu0 = broker.cpuSeconds();
        const t0 = performance.now();
        const r = await runCannon(broker.url + '/v1/publish/topic/bench.http', seconds, PAYLOAD_128);
        // Wait (bounded) until the subscriber has everything the broker accepted.
        const deadline = Date.now() + 5000;
        while (sub.count() - before < r.ok && Date.now() < deadline) await new Promise((res) => setTimeout(res, 20));
        const delivered = sub.count() - before;
        const elapsed = (sub.lastAt() - t0) / 1000;
        cpu.push((broker.cpuSeconds() - cpu0) / elapsed);
        brokerRps.push(r.rps);
        deliveredRate.push(delivered / elapsed);
        non2xx += r.non2xx;
        errors += r.errors;
        ctx.progress(`http-publish run ${i + 1}/${runs}: shardmq ${formatRate(r.rps)} req/s, delivered ${delivered}/${r.ok} (${formatRate(delivered / elapsed)} msg/s)`);
      }
    } finally {
      sub.close();
      await broker.stop();
      await bare.stop();
    }
    const bareS = summarize(bareRps);
    const brokerS = summarize(brokerRps);
    const delS = summarize(deliveredRate);
    const ratio = brokerS.median / bareS.median;
    return {
      tables: [
        {
          title: `HTTP publish, 128-byte body, autocannon ${CONNECTIONS} connections, pipelining ${PIPELINING}, ${seconds} s × ${runs} runs (interleaved)`,
          columns: ['endpoint', 'req/s median', 'min–max', '± SE', 'vs bare uWS'],
          rows: [
            ['bare uWebSockets.js (reads body, answers 200)', formatRate(bareS.median), `${formatRate(bareS.min)}–${formatRate(bareS.max)}`, `${bareS.sePercent.toFixed(1)}%`, '1.00'],
            ['shardmq POST /v1/publish/topic/… (1 WS subscriber)', formatRate(brokerS.median), `${formatRate(brokerS.min)}–${formatRate(brokerS.max)}`, `${brokerS.sePercent.toFixed(1)}%`, ratio.toFixed(2)],
            ['shardmq delivered to the WS subscriber (msg/s)', formatRate(delS.median), `${formatRate(delS.min)}–${formatRate(delS.max)}`, `${delS.sePercent.toFixed(1)}%`, '—'],
          ],
          notes: [
            `goal (design.md §4): ≥ 80% of bare uWS; measured ${(ratio * 100).toFixed(0)}% — ${ratio >= 0.8 ? 'met' : 'not met'}`,
            `non-2xx answers: ${non2xx}, errors/timeouts: ${errors}; broker CPU ${summarize(cpu).median.toFixed(2)} cores (median)`,
          ],
        },
      ],
      figures: {
        http_publish_bare_uws_rps: bareS.median,
        http_publish_rps: brokerS.median,
        http_publish_ratio_vs_bare_uws: ratio,
        http_to_ws_delivered_msgs_per_s: delS.median,
      },
    };
  },
};
