/**
 * Streams: ingest into a stream queue with publisher confirms, then replay from the first offset by
 * one and by four consumers, side by side with NATS JetStream in the same run (nats-server -js, one
 * replica, MEMORY storage: shardmq's streams are held in memory for now, so the fair peer is
 * JetStream's memory storage; the file-storage comparison waits for shardmq's disk streams).
 * Same 128-byte messages; the publisher is open loop within a confirm window, as a nats.js user
 * publishing asynchronously: at most WINDOW unconfirmed at any time on both systems.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '../../client/client.js';
import { startBrokerProcess } from '../broker-process.js';
import { freePort, loadPeers, type NatsModule, type PeerServer, startPeerServer } from '../peers.js';
import { formatRate, minMax, summarize } from '../sample-stats.js';
import { roundsOf, type Workload, type WorkloadContext, type WorkloadResult } from '../workload.js';

const PAYLOAD = new Uint8Array(128).fill(0x62);
/** Unconfirmed publishes in flight, on both systems. */
const WINDOW = 2000;
const STREAM = 'bench-stream';
/** Longest one phase may take before the run gives up on it (and reports what it got). */
const PHASE_LIMIT_MS = 60_000;

interface StreamRun {
  readonly ingestPerS: number;
  readonly confirmed: number;
  readonly replay1PerS: number;
  readonly replay4PerS: number;
  /** Messages a replay did not get (over the one-consumer and the four-consumer replays). */
  readonly lost: number;
}

/**
 * Publishes up to `count` messages with `publish` (which resolves on the confirm), at most WINDOW
 * unconfirmed at a time and for at most PHASE_LIMIT_MS; the confirmed count and rate.
 */
async function ingest(count: number, publish: () => Promise<unknown>): Promise<{ confirmed: number; perS: number }> {
  const t0 = performance.now();
  let confirmed = 0;
  const inFlight = new Set<Promise<void>>();
  for (let i = 0; i < count && performance.now() - t0 < PHASE_LIMIT_MS; i++) {
    const p: Promise<void> = publish().then(() => {
      confirmed++;
      inFlight.delete(p);
    });
    inFlight.add(p);
    if (inFlight.size >= WINDOW) await Promise.race(inFlight);
  }
  await Promise.all(inFlight);
  return { confirmed, perS: confirmed / ((performance.now() - t0) / 1000) };
}

async function shardmqRun(count: number): Promise<StreamRun> {
  const broker = await startBrokerProcess(['--shards', '1']);
  try {
    const client = await connect(broker.url, { reconnect: false });
    await client.declareQueue(STREAM, { durable: true, arguments: { 'x-queue-type': 'stream' } });
    const { confirmed, perS: ingestPerS } = await ingest(count, () => client.publish(`/queue/${STREAM}`, PAYLOAD));
    const replay = async (consumers: number): Promise<{ perS: number; lost: number }> => {
      const clients = await Promise.all(Array.from({ length: consumers }, () => connect(broker.url, { reconnect: false })));
      const got = new Array<number>(consumers).fill(0);
      const start = performance.now();
      let finished = 0;
      let done: () => void = () => undefined;
      const all = new Promise<void>((r) => {
        done = r;
      });
      const subs = await Promise.all(
        clients.map((c, k) =>
          c.subscribe(`/queue/${STREAM}`, { offset: 'first', bufferSize: 10_000 }, () => {
            if (++got[k] === confirmed && ++finished === consumers) done();
          }),
        ),
      );
      await Promise.race([all, new Promise((r) => setTimeout(r, PHASE_LIMIT_MS))]);
      const seconds = (performance.now() - start) / 1000;
      for (const s of subs) await s.unsubscribe();
      for (const c of clients) await c.close();
      const total = got.reduce((a, b) => a + b, 0);
      return { perS: total / seconds, lost: consumers * confirmed - total };
    };
    const one = await replay(1);
    const four = await replay(4);
    await client.close();
    return { ingestPerS, confirmed, replay1PerS: one.perS, replay4PerS: four.perS, lost: one.lost + four.lost };
  } finally {
    await broker.stop();
  }
}

interface JsMsg {
  readonly seq: number;
}
interface OrderedMessages extends AsyncIterable<JsMsg> {
  stop(): void;
}
interface JetStreamClient {
  publish(subject: string, data: Uint8Array): Promise<{ seq: number }>;
  consumers: { get(stream: string): Promise<{ consume(opts?: { max_messages?: number }): Promise<OrderedMessages> }> };
}
interface JetStreamConnection {
  jetstream(): JetStreamClient;
  jetstreamManager(): Promise<{ streams: { add(config: Record<string, unknown>): Promise<unknown> } }>;
  drain(): Promise<void>;
}

async function jetStreamRun(nats: NatsModule, binary: string, count: number): Promise<StreamRun> {
  const dir = mkdtempSync(join(tmpdir(), 'shardmq-bench-js-'));
  const port = await freePort();
  const server: PeerServer = await startPeerServer(
    'nats-server -js',
    binary,
    ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', dir],
    port,
  );
  const servers = `127.0.0.1:${port}`;
  const open = async (): Promise<JetStreamConnection> =>
    (await nats.connect({ servers, maxReconnectAttempts: 0 })) as unknown as JetStreamConnection;
  try {
    const nc = await open();
    const jsm = await nc.jetstreamManager();
    await jsm.streams.add({ name: 'BENCH', subjects: ['bench.stream'], storage: 'memory', num_replicas: 1 });
    const js = nc.jetstream();
    const { confirmed, perS: ingestPerS } = await ingest(count, () => js.publish('bench.stream', PAYLOAD));
    const replay = async (consumers: number): Promise<{ perS: number; lost: number }> => {
      const conns = await Promise.all(Array.from({ length: consumers }, () => open()));
      const start = performance.now();
      const counts = await Promise.all(
        conns.map(async (c) => {
          // An ordered consumer: JetStream's own replay-from-the-start reader (no acks).
          const consumer = await c.jetstream().consumers.get('BENCH');
          const messages = await consumer.consume({ max_messages: 10_000 });
          let n = 0;
          const timer = setTimeout(() => messages.stop(), PHASE_LIMIT_MS);
          for await (const _m of messages) {
            if (++n === confirmed) break;
          }
          clearTimeout(timer);
          messages.stop();
          return n;
        }),
      );
      const seconds = (performance.now() - start) / 1000;
      for (const c of conns) await c.drain();
      const total = counts.reduce((a, b) => a + b, 0);
      return { perS: total / seconds, lost: consumers * confirmed - total };
    };
    const one = await replay(1);
    const four = await replay(4);
    await nc.drain();
    return { ingestPerS, confirmed, replay1PerS: one.perS, replay4PerS: four.perS, lost: one.lost + four.lost };
  } finally {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

export const streams: Workload = {
  name: 'streams',
  description:
    'Stream queues: ingest with publisher confirms, then replay from the first offset by 1 and by 4 consumers, side by side with NATS JetStream (memory storage)',
  async run(ctx: WorkloadContext): Promise<WorkloadResult> {
    const runs = roundsOf(ctx);
    const count = ctx.quick ? 20_000 : 200_000;
    const peers = await loadPeers();
    const js = 'missing' in peers.nats ? null : peers.nats;
    const ours: StreamRun[] = [];
    const theirs: StreamRun[] = [];
    for (let i = 0; i < runs; i++) {
      const a = await shardmqRun(count);
      ours.push(a);
      ctx.progress(
        `streams run ${i + 1}/${runs}, shardmq: ingest ${formatRate(a.ingestPerS)}/s confirmed, replay ${formatRate(a.replay1PerS)}/s (1), ${formatRate(a.replay4PerS)}/s (4), lost ${a.lost}`,
      );
      if (js !== null) {
        const b = await jetStreamRun(js.client, js.binary, count);
        theirs.push(b);
        ctx.progress(
          `streams run ${i + 1}/${runs}, JetStream: ingest ${formatRate(b.ingestPerS)}/s confirmed, replay ${formatRate(b.replay1PerS)}/s (1), ${formatRate(b.replay4PerS)}/s (4), lost ${b.lost}`,
        );
      }
    }
    const row = (name: string, rs: readonly StreamRun[]): Array<string | number> => {
      const ingest = summarize(rs.map((r) => r.ingestPerS));
      const r1 = summarize(rs.map((r) => r.replay1PerS));
      const r4 = summarize(rs.map((r) => r.replay4PerS));
      return [
        name,
        formatRate(ingest.median),
        minMax(ingest),
        formatRate(r1.median),
        formatRate(r4.median),
        rs.reduce((n, r) => n + r.lost, 0),
      ];
    };
    const rows = [row('shardmq (stream queue, in memory)', ours)];
    const figures: Record<string, number> = {
      streams_ingest_confirmed_msgs_per_s: summarize(ours.map((r) => r.ingestPerS)).median,
      streams_replay_1_msgs_per_s: summarize(ours.map((r) => r.replay1PerS)).median,
      streams_replay_4_msgs_per_s: summarize(ours.map((r) => r.replay4PerS)).median,
      streams_lost: ours.reduce((n, r) => n + r.lost, 0),
    };
    const notes = [
      `${count.toLocaleString('en-US')} messages per run, published with confirms (at most ${WINDOW} unconfirmed), then read back from the first offset by 1 consumer and by 4 at once (each reads all); lost = messages a replay did not get`,
      'shardmq: the exported TypeScript client (binary protocol), 1 shard, `offset: first`; JetStream: nats.js 2.29 `js.publish` and ordered consumers, `nats-server -js`, memory storage, one replica',
    ];
    if (theirs.length > 0) {
      rows.push(row('NATS JetStream (memory storage)', theirs));
      const ratio = (pick: (r: StreamRun) => number): number =>
        summarize(ours.map((r, i) => pick(r) / pick(theirs[i] as StreamRun))).median;
      figures.streams_ingest_vs_jetstream = ratio((r) => r.ingestPerS);
      figures.streams_replay_1_vs_jetstream = ratio((r) => r.replay1PerS);
      figures.streams_replay_4_vs_jetstream = ratio((r) => r.replay4PerS);
      notes.unshift(
        `shardmq ÷ JetStream (median of per-round ratios): ingest ${figures.streams_ingest_vs_jetstream.toFixed(2)}× (goal ≥ 1.0×, against file storage once shardmq's streams are on disk), replay 1 consumer ${figures.streams_replay_1_vs_jetstream.toFixed(2)}×, 4 consumers ${figures.streams_replay_4_vs_jetstream.toFixed(2)}×`,
      );
    } else {
      notes.push(`JetStream not measured: ${(peers.nats as { missing: string }).missing}`);
    }
    return {
      tables: [
        {
          title: `Streams: 128-byte messages, ingest with confirms and replay from first, ${runs} interleaved run(s)`,
          columns: [
            'system',
            'ingest confirmed msg/s (median)',
            'min–max',
            'replay, 1 consumer msg/s',
            'replay, 4 consumers msg/s (all)',
            'lost',
          ],
          rows,
          notes,
        },
      ],
      figures,
    };
  },
};
