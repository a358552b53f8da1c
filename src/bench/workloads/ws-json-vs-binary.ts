/**
 * The two WebSocket protocols side by side, interleaved in one run: 1 publisher, 1 subscriber,
 * 128-byte messages, through the binary protocol (PUBLISH_BATCH, batched DELIVERs) and through
 * the JSON text ops (one publish op per frame, one message frame per delivery). Same driver,
 * same window, same broker; delivered messages/s measured at the subscriber.
 */
import { startBrokerProcess } from '../broker-process.js';
import { runFanout, shardmqSystem, type FanoutSystem } from '../fanout.js';
import { countingSubscriber, JsonCreditSender, openJsonWs } from '../json-ws.js';
import { roundOrder } from '../pacing.js';
import { formatRate, minMax, summarize } from '../sample-stats.js';
import { roundsOf, type Workload, type WorkloadContext, type WorkloadResult } from '../workload.js';
import { fanoutSpec } from './ws-fanout.js';

/** shardmq over JSON text frames. */
function jsonSystem(url: string, pid: number): FanoutSystem {
  return {
    name: 'shardmq (JSON WebSocket)',
    pids: [pid],
    async publisher(topic, payload) {
      const ws = await openJsonWs(url);
      const frame = JSON.stringify({ op: 'publish', destination: `/topic/${topic}`, payload: Buffer.from(payload).toString('latin1') });
      const sender = new JsonCreditSender(ws);
      ws.on('message', (data) => {
        const f = JSON.parse(String(data)) as { op: string; messages?: number; bytes?: number };
        if (f.op === 'credit') sender.granted(f.messages ?? 0, f.bytes ?? 0);
      });
      return {
        publish: (n) => {
          for (let i = 0; i < n; i++) sender.send(frame, payload.byteLength);
        },
        congested: () => ws.bufferedAmount > 1 << 20 || sender.waiting > 0,
        close: async () => {
          ws.close();
        },
      };
    },
    async subscriber(topic, onMessages) {
      const sub = await countingSubscriber(url, `/topic/${topic}`, onMessages);
      return {
        received: sub.count,
        lastAt: sub.lastAt,
        close: async () => {
          sub.close();
        },
      };
    },
  };
}

export const wsJsonVsBinary: Workload = {
  name: 'ws-json-vs-binary',
  description: 'Publish → deliver 1→1, 128-byte messages: the binary protocol next to the JSON text protocol, interleaved',
  async run(ctx: WorkloadContext): Promise<WorkloadResult> {
    const runs = roundsOf(ctx);
    const broker = await startBrokerProcess([]);
    const binary = shardmqSystem(broker.url, broker.pid);
    const json = jsonSystem(broker.url, broker.pid);
    const spec = { ...fanoutSpec(1, ctx.quick), messages: ctx.quick ? 100_000 : 1_000_000 };
    const results = { binary: [] as number[], json: [] as number[] };
    try {
      for (let i = 0; i < runs; i++) {
        for (const [name, system] of roundOrder(
          [
            ['binary', binary],
            ['json', json],
          ] as const,
          i,
        )) {
          const r = await runFanout(system, spec);
          results[name].push(r.deliveredPerSecond);
          ctx.progress(
            `ws-json-vs-binary run ${i + 1}/${runs}: ${system.name} ${formatRate(r.deliveredPerSecond)} delivered msg/s${r.complete ? '' : ' (incomplete)'}`,
          );
        }
      }
    } finally {
      await broker.stop();
    }
    const b = summarize(results.binary);
    const j = summarize(results.json);
    return {
      tables: [
        {
          title: `1 publisher → 1 subscriber, 128-byte messages, ${runs} interleaved run(s)`,
          columns: ['protocol', 'delivered msg/s (median)', 'min–max', 'vs JSON'],
          rows: [
            ['binary (PUBLISH_BATCH of 250, batched DELIVER)', formatRate(b.median), minMax(b), (b.median / j.median).toFixed(2)],
            ['JSON text (one op per frame)', formatRate(j.median), minMax(j), '1.00'],
          ],
        },
      ],
      figures: { ws_binary_1to1_msgs_per_s: b.median, ws_json_1to1_msgs_per_s: j.median, ws_binary_vs_json_ratio: b.median / j.median },
    };
  },
};
