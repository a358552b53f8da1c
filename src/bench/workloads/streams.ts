/**
 * Streams: ingest into a stream queue with publisher confirms, then replay from the first offset by
 * one and by four consumers, side by side with NATS JetStream in the same run (nats-server -js, one
 * replica, FILE storage) — shardmq with --data-dir (streams on disk, confirmed after the group
 * commit's fsync) and, for what the disk costs, without it (in memory).
 * Same 128-byte messages; the publisher is open loop within a confirm window, as a nats.js user
 * publishing asynchronously: at most WINDOW unconfirmed at any time on both systems.
 *
 * Then, once per workload: a consumer 10 million messages behind (1 million with --quick) reads
 * from the first offset while the broker's RSS is sampled: the entries are on disk, so its reading
 * must not raise the RSS by more than its read buffer (plus the broker's usual garbage).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '../../client/client.js';
import { startBrokerProcess } from '../broker-process.js';
import { processRssBytes } from '../proc.js';
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

async function shardmqRun(count: number, onDisk: boolean): Promise<StreamRun> {
  const dir = onDisk ? mkdtempSync(join(tmpdir(), 'shardmq-bench-streams-')) : null;
  const broker = await startBrokerProcess(['--shards', '1', ...(dir === null ? [] : ['--data-dir', dir])]);
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
    if (dir !== null) rmSync(dir, { recursive: true, force: true });
  }
}

interface BehindRun {
  readonly entries: number;
  readonly ingestPerS: number;
  /** Broker RSS with an empty stream, with `entries` in it, and the most while a reader reads them from the first. */
  readonly rssEmpty: number;
  /** RSS once a tenth of the entries are in: the rest must not add to it (the entries are on disk). */
  readonly rssTenth: number;
  readonly rssFull: number;
  /** A consumer a tenth behind read this many first, the RSS at most meanwhile, and after it. */
  readonly nearRead: number;
  readonly nearRssMax: number;
  readonly rssAfterNear: number;
  readonly rssReadingMax: number;
  readonly read: number;
  readonly readPerS: number;
  readonly diskBytes: number;
}

/** A stream of `count` entries on disk, then a consumer reading it from first for up to `readMs`, RSS sampled throughout. */
async function behindRun(count: number, readMs: number, progress: (line: string) => void): Promise<BehindRun> {
  const dir = mkdtempSync(join(tmpdir(), 'shardmq-bench-behind-'));
  const broker = await startBrokerProcess(['--shards', '1', '--data-dir', dir]);
  const pid = broker.child.pid as number;
  const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 2000));
  try {
    const client = await connect(broker.url, { reconnect: false });
    await client.declareQueue(STREAM, { durable: true, arguments: { 'x-queue-type': 'stream' } });
    await settle();
    const rssEmpty = processRssBytes(pid);
    const t0 = performance.now();
    let confirmed = 0;
    let rssTenth = 0;
    const inFlight = new Set<Promise<void>>();
    for (let i = 0; i < count; i++) {
      if (i === count / 10) {
        await Promise.all(inFlight);
        await settle();
        rssTenth = processRssBytes(pid);
      }
      const p: Promise<void> = client.publish(`/queue/${STREAM}`, PAYLOAD).then(() => {
        confirmed++;
        inFlight.delete(p);
      });
      inFlight.add(p);
      if (inFlight.size >= WINDOW) await Promise.race(inFlight);
      if (i % 1_000_000 === 999_999)
        progress(`streams, a stream to read far behind: ${((i + 1) / 1e6).toFixed(0)}M of ${(count / 1e6).toFixed(0)}M published`);
    }
    await Promise.all(inFlight);
    const ingestPerS = confirmed / ((performance.now() - t0) / 1000);
    const info = (await (await fetch(`${broker.url}/v1/streams/${STREAM}`)).json()) as { bytes: number };
    await settle();
    const rssFull = processRssBytes(pid);
    /** One consumer from `offset` until it read `upTo` or `readMs` passed; the most RSS seen meanwhile. */
    const readFrom = async (offset: number | 'first', upTo: number): Promise<{ read: number; perS: number; rssMax: number }> => {
      let read = 0;
      let rssMax = processRssBytes(pid);
      const sampler = setInterval(() => {
        rssMax = Math.max(rssMax, processRssBytes(pid));
      }, 100);
      const r0 = performance.now();
      const sub = await client.subscribe(`/queue/${STREAM}`, { offset, bufferSize: 10_000 }, () => {
        read++;
      });
      while (performance.now() - r0 < readMs && read < upTo) await new Promise((r) => setTimeout(r, 100));
      const perS = read / ((performance.now() - r0) / 1000);
      clearInterval(sampler);
      rssMax = Math.max(rssMax, processRssBytes(pid));
      await sub.unsubscribe();
      return { read, perS, rssMax };
    };
    // First a consumer near the end (a tenth behind): what delivering costs the broker's heaps anyway.
    const near = await readFrom(confirmed - Math.floor(confirmed / 10), Math.floor(confirmed / 10));
    await settle();
    const rssAfterNear = processRssBytes(pid);
    // Then one from the first offset, all of it behind: what being far behind adds.
    const far = await readFrom('first', confirmed);
    const rssReadingMax = far.rssMax;
    const read = far.read;
    const readPerS = far.perS;
    await client.close();
    return {
      entries: confirmed,
      ingestPerS,
      rssEmpty,
      rssTenth,
      rssFull,
      nearRead: near.read,
      nearRssMax: near.rssMax,
      rssAfterNear,
      rssReadingMax,
      read,
      readPerS,
      diskBytes: info.bytes,
    };
  } finally {
    await broker.stop();
    rmSync(dir, { recursive: true, force: true });
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
    await jsm.streams.add({ name: 'BENCH', subjects: ['bench.stream'], storage: 'file', num_replicas: 1 });
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
    'Stream queues: ingest with publisher confirms, then replay from the first offset by 1 and by 4 consumers, on disk side by side with NATS JetStream (file storage); a consumer 10M behind and the RSS',
  async run(ctx: WorkloadContext): Promise<WorkloadResult> {
    const runs = roundsOf(ctx);
    const count = ctx.quick ? 20_000 : 200_000;
    const peers = await loadPeers();
    const js = 'missing' in peers.nats ? null : peers.nats;
    const ours: StreamRun[] = [];
    const inMemory: StreamRun[] = [];
    const theirs: StreamRun[] = [];
    for (let i = 0; i < runs; i++) {
      const a = await shardmqRun(count, true);
      ours.push(a);
      ctx.progress(
        `streams run ${i + 1}/${runs}, shardmq on disk: ingest ${formatRate(a.ingestPerS)}/s confirmed, replay ${formatRate(a.replay1PerS)}/s (1), ${formatRate(a.replay4PerS)}/s (4), lost ${a.lost}`,
      );
      const m = await shardmqRun(count, false);
      inMemory.push(m);
      ctx.progress(
        `streams run ${i + 1}/${runs}, shardmq in memory: ingest ${formatRate(m.ingestPerS)}/s confirmed, replay ${formatRate(m.replay1PerS)}/s (1), ${formatRate(m.replay4PerS)}/s (4), lost ${m.lost}`,
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
    const rows = [row('shardmq (stream queue on disk, --data-dir, fsync batch)', ours), row('shardmq (stream queue in memory)', inMemory)];
    const figures: Record<string, number> = {
      streams_memory_ingest_confirmed_msgs_per_s: summarize(inMemory.map((r) => r.ingestPerS)).median,
      streams_memory_replay_1_msgs_per_s: summarize(inMemory.map((r) => r.replay1PerS)).median,
      streams_ingest_confirmed_msgs_per_s: summarize(ours.map((r) => r.ingestPerS)).median,
      streams_replay_1_msgs_per_s: summarize(ours.map((r) => r.replay1PerS)).median,
      streams_replay_4_msgs_per_s: summarize(ours.map((r) => r.replay4PerS)).median,
      streams_lost: ours.reduce((n, r) => n + r.lost, 0) + inMemory.reduce((n, r) => n + r.lost, 0),
    };
    const notes = [
      `${count.toLocaleString('en-US')} messages per run, published with confirms (at most ${WINDOW} unconfirmed), then read back from the first offset by 1 consumer and by 4 at once (each reads all); lost = messages a replay did not get`,
      "shardmq: the exported TypeScript client (binary protocol), 1 shard, `offset: first`; on disk: `--data-dir`, default `--fsync batch` (a confirm after the group commit's fsync, ≤ 5 ms apart), readers see what is fsynced; JetStream: nats.js 2.29 `js.publish` and consumers, `nats-server -js`, file storage, one replica (its acks do not wait for an fsync: JetStream syncs its files on an interval, 2 min by default)",
    ];
    if (theirs.length > 0) {
      rows.push(row('NATS JetStream (file storage)', theirs));
      const ratio = (pick: (r: StreamRun) => number): number =>
        summarize(ours.map((r, i) => pick(r) / pick(theirs[i] as StreamRun))).median;
      figures.streams_ingest_vs_jetstream = ratio((r) => r.ingestPerS);
      figures.streams_replay_1_vs_jetstream = ratio((r) => r.replay1PerS);
      figures.streams_replay_4_vs_jetstream = ratio((r) => r.replay4PerS);
      notes.unshift(
        `shardmq on disk ÷ JetStream file storage (median of per-round ratios): ingest ${figures.streams_ingest_vs_jetstream.toFixed(2)}× (goal ≥ 1.0×), replay 1 consumer ${figures.streams_replay_1_vs_jetstream.toFixed(2)}×, 4 consumers ${figures.streams_replay_4_vs_jetstream.toFixed(2)}×`,
      );
    } else {
      notes.push(`JetStream not measured: ${(peers.nats as { missing: string }).missing}`);
    }
    const behindCount = ctx.quick ? 1_000_000 : 10_000_000;
    const b = await behindRun(behindCount, ctx.quick ? 5000 : 15_000, ctx.progress);
    const mib = (n: number): string => `${(n / 1048576).toFixed(1)} MiB`;
    figures.streams_behind_entries = b.entries;
    figures.streams_behind_rss_growth_bytes = b.rssReadingMax - b.rssAfterNear;
    figures.streams_near_rss_growth_bytes = b.nearRssMax - b.rssFull;
    figures.streams_behind_rss_full_minus_empty_bytes = b.rssFull - b.rssEmpty;
    figures.streams_behind_rss_full_minus_tenth_bytes = b.rssFull - b.rssTenth;
    ctx.progress(
      `streams, ${b.entries} behind: RSS empty ${mib(b.rssEmpty)}, full ${mib(b.rssFull)}, near reader max ${mib(b.nearRssMax)}, far reader max ${mib(b.rssReadingMax)} (${b.read} read)`,
    );
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
        {
          title: `Streams: a consumer ${b.entries.toLocaleString('en-US')} messages behind, reading from the first offset (one run, --data-dir)`,
          columns: [
            'entries in the stream',
            'on disk',
            'broker RSS, empty stream',
            'RSS with a tenth of them',
            'RSS with all',
            'a consumer a tenth behind: RSS growth (read)',
            'then one at the first offset: RSS growth',
            'read in the window',
            'read msg/s',
          ],
          rows: [
            [
              b.entries.toLocaleString('en-US'),
              mib(b.diskBytes),
              mib(b.rssEmpty),
              mib(b.rssTenth),
              mib(b.rssFull),
              `${mib(b.nearRssMax - b.rssFull)} (${b.nearRead.toLocaleString('en-US')})`,
              mib(b.rssReadingMax - b.rssAfterNear),
              b.read.toLocaleString('en-US'),
              formatRate(b.readPerS),
            ],
          ],
          notes: [
            `Ingested with confirms at ${formatRate(b.ingestPerS)}/s (at most ${WINDOW} unconfirmed), 128-byte messages, then one consumer a tenth behind reads to the end (what delivering costs the heaps anyway), then one from \`offset: first\` (all of it behind) for up to ${ctx.quick ? 5 : 15} s; RSS from /proc every 100 ms, each after 2 s of quiet. The consumer's reader holds one 512 KiB read buffer; the stream keeps its newest 4 MiB in memory either way. What RSS gains from empty to a tenth is the heaps' high-water of the ingest (V8's memory reducer is off, so a heap does not shrink while idle), not entries: the other nine tenths add ${mib(b.rssFull - b.rssTenth)}.`,
          ],
        },
      ],
      figures,
    };
  },
};
