/**
 * The null broker of the AMQP workload (workloads/amqp.ts): an AMQP 0-9-1 server that does only
 * what the benchmark's amqplib code needs and holds nothing. A publish goes straight to a consumer
 * of its queue (the default exchange) or of each queue bound to its fanout exchange, round robin,
 * once the message is whole; a confirm channel's publishes are acked once per input chunk (`multiple`);
 * consumer acks are read and dropped, and prefetch is not honoured (a looser bound, not a tighter one). No queue, no routing table beyond fanout, no persistence, no
 * flow control but one: while a consumer's socket is backed up, publishers are not read.
 *
 * Run against it, the SAME client code the workload points at shardmq and RabbitMQ shows what the
 * client and this machine allow at all: the figure no broker can beat with that client here (its
 * own cost, a frame parse and a copy per message, is as small as a broker's can be). So a goal that
 * asks for k× RabbitMQ can be checked against k× RabbitMQ ≤ the null broker's figure.
 *
 * A child process of its own (its CPU is "the server"): prints `port <n>` on stdout once it
 * listens on 127.0.0.1, exits on SIGTERM or when stdin closes.
 */
import { createServer, type Socket } from 'node:net';
import { AmqpFrameDecoder, type FrameSink } from '../protocol/amqp/frame-decoder.js';
import { FrameType } from '../protocol/amqp/constants.js';
import {
  beginFrame,
  decodeBasicPublish,
  decodeMethod,
  endFrame,
  writeBasicAck,
  writeBasicDeliverMethod,
  writeMethodFrame,
} from '../protocol/amqp/methods.js';
import { WireWriter } from '../protocol/amqp/wire.js';

const FRAME_MAX = 131_072;
/** A consumer socket holding more than this unsent pauses every publisher until it drains. */
const BACKED_UP_BYTES = 4 * 1024 * 1024;

interface Consumer {
  readonly conn: Conn;
  readonly channel: number;
  readonly tag: string;
  nextTag: number;
}

interface QueueState {
  readonly consumers: Consumer[];
  next: number;
}

const queues = new Map<string, QueueState>();
/** fanout exchange → its queues */
const exchanges = new Map<string, Set<string>>();
let serverNamed = 0;
const conns = new Set<Conn>();
let paused = false;
/** Messages that found no consumer (the workload's consumers are ready before it publishes: should stay 0). */
let unrouted = 0;

function queueOf(name: string): QueueState {
  let q = queues.get(name);
  if (q === undefined) {
    q = { consumers: [], next: 0 };
    queues.set(name, q);
  }
  return q;
}

/** A publish between its method frame and its last body frame. */
interface Incoming {
  readonly targets: Consumer[];
  readonly exchange: string;
  readonly routingKey: string;
  remaining: number;
  header: Uint8Array | null;
  readonly bodies: Uint8Array[];
}

function writeFrame(w: WireWriter, type: number, channel: number, payload: Uint8Array): void {
  const start = beginFrame(w, type, channel);
  w.bytes(payload);
  endFrame(w, start);
}

class Conn implements FrameSink {
  readonly out = new WireWriter(64 * 1024);
  readonly #socket: Socket;
  readonly #decoder = new AmqpFrameDecoder(FRAME_MAX);
  /** channel → publish seq of a confirm channel (absent: not in confirm mode) */
  readonly #confirm = new Map<number, number>();
  /** channel → highest seq to ack at the end of this chunk */
  readonly #toAck = new Map<number, number>();
  readonly #incoming = new Map<number, Incoming>();
  readonly #consumers: Consumer[] = [];

  constructor(socket: Socket) {
    this.#socket = socket;
  }

  get backedUp(): boolean {
    return this.#socket.writableLength > BACKED_UP_BYTES;
  }

  push(chunk: Buffer): void {
    const before = this.#decoder.headerDone;
    this.#decoder.push(chunk, this);
    if (!before && this.#decoder.headerDone) this.#method(0, 'start');
    for (const [channel, seq] of this.#toAck) writeBasicAck(this.out, channel, seq, true);
    this.#toAck.clear();
  }

  /** Sends what this connection has to say, once per input chunk (every connection's). */
  flush(): void {
    if (this.out.length === 0) return;
    this.#socket.write(this.out.take());
    this.out.reset();
  }

  pause(): void {
    this.#socket.pause();
  }

  resume(): void {
    this.#socket.resume();
  }

  closed(): void {
    for (const c of this.#consumers) {
      const q = [...queues.values()].find((x) => x.consumers.includes(c));
      if (q !== undefined) q.consumers.splice(q.consumers.indexOf(c), 1);
    }
  }

  frame(type: number, channel: number, payload: Uint8Array): void {
    if (type === FrameType.method) this.#onMethod(channel, payload);
    else if (type === FrameType.header || type === FrameType.body) this.#onContent(type, channel, payload);
  }

  #onContent(type: number, channel: number, payload: Uint8Array): void {
    const inc = this.#incoming.get(channel);
    if (inc === undefined) return;
    if (type === FrameType.header) {
      // Body size: the u64 at 4 (a benchmark message is far below 2^53).
      inc.remaining = Number(Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).readBigUInt64BE(4));
      inc.header = Uint8Array.prototype.slice.call(payload);
    } else {
      inc.remaining -= payload.byteLength;
      inc.bodies.push(Uint8Array.prototype.slice.call(payload));
    }
    if (inc.header === null || inc.remaining > 0) return;
    // Whole: each target gets its deliver, header and bodies together, so two deliveries on one
    // channel never interleave (the frames' views were copied: they live only during the call).
    for (const c of inc.targets) {
      const w = c.conn.out;
      writeBasicDeliverMethod(w, c.channel, c.tag, c.nextTag++, false, inc.exchange, inc.routingKey);
      writeFrame(w, FrameType.header, c.channel, inc.header);
      for (const body of inc.bodies) writeFrame(w, FrameType.body, c.channel, body);
    }
    this.#incoming.delete(channel);
    this.#published(channel);
  }

  #published(channel: number): void {
    const seq = this.#confirm.get(channel);
    if (seq === undefined) return;
    this.#confirm.set(channel, seq + 1);
    this.#toAck.set(channel, seq + 1);
  }

  #onMethod(channel: number, payload: Uint8Array): void {
    // basic.publish (60, 40) and basic.ack (60, 80) are most frames: read without the general decoder's objects.
    const classId = (payload[0] << 8) | payload[1];
    const methodId = (payload[2] << 8) | payload[3];
    if (classId === 60 && methodId === 40) {
      const p = decodeBasicPublish(payload);
      const targets: Consumer[] = [];
      const names = p.exchange === '' ? [p.routingKey] : [...(exchanges.get(p.exchange) ?? [])];
      for (const name of names) {
        const q = queues.get(name);
        if (q === undefined || q.consumers.length === 0) continue;
        targets.push(q.consumers[q.next++ % q.consumers.length]);
      }
      if (targets.length === 0) unrouted++;
      this.#incoming.set(channel, { targets, exchange: p.exchange, routingKey: p.routingKey, remaining: 0, header: null, bodies: [] });
      return;
    }
    if (classId === 60 && methodId === 80) return;
    const m = decodeMethod(payload);
    switch (m.name) {
      case 'connection.start-ok':
        this.#method(0, 'tune');
        return;
      case 'connection.tune-ok':
        return;
      case 'connection.open':
        this.#write(0, 'connection.open-ok', {});
        return;
      case 'connection.close':
        this.#write(0, 'connection.close-ok', {});
        this.flush();
        this.#socket.end();
        return;
      case 'channel.open':
        this.#write(channel, 'channel.open-ok', {});
        return;
      case 'channel.close':
        this.#write(channel, 'channel.close-ok', {});
        return;
      case 'exchange.declare':
        if (!exchanges.has(m.args.exchange)) exchanges.set(m.args.exchange, new Set());
        if (!m.args.noWait) this.#write(channel, 'exchange.declare-ok', {});
        return;
      case 'queue.declare': {
        const name = m.args.queue === '' ? `amq.gen-null-${++serverNamed}` : m.args.queue;
        queueOf(name);
        if (!m.args.noWait) this.#write(channel, 'queue.declare-ok', { queue: name, messageCount: 0, consumerCount: 0 });
        return;
      }
      case 'queue.bind': {
        const set = exchanges.get(m.args.exchange) ?? new Set<string>();
        exchanges.set(m.args.exchange, set.add(m.args.queue));
        if (!m.args.noWait) this.#write(channel, 'queue.bind-ok', {});
        return;
      }
      case 'basic.qos':
        this.#write(channel, 'basic.qos-ok', {});
        return;
      case 'basic.consume': {
        const tag = m.args.consumerTag === '' ? `amq.ctag-null-${++serverNamed}` : m.args.consumerTag;
        const consumer: Consumer = { conn: this, channel, tag, nextTag: 1 };
        queueOf(m.args.queue).consumers.push(consumer);
        this.#consumers.push(consumer);
        if (!m.args.noWait) this.#write(channel, 'basic.consume-ok', { consumerTag: tag });
        return;
      }
      case 'exchange.delete':
        exchanges.delete(m.args.exchange);
        if (!m.args.noWait) this.#write(channel, 'exchange.delete-ok', {});
        return;
      case 'queue.delete':
        queues.delete(m.args.queue);
        if (!m.args.noWait) this.#write(channel, 'queue.delete-ok', { messageCount: 0 });
        return;
      case 'basic.cancel':
        if (!m.args.noWait) this.#write(channel, 'basic.cancel-ok', { consumerTag: m.args.consumerTag });
        return;
      case 'confirm.select':
        this.#confirm.set(channel, 0);
        if (!m.args.noWait) this.#write(channel, 'confirm.select-ok', {});
        return;
      default:
        throw new Error(`the null broker does not take ${m.name}`);
    }
  }

  #method(channel: number, what: 'start' | 'tune'): void {
    if (what === 'start') {
      this.#write(channel, 'connection.start', {
        versionMajor: 0,
        versionMinor: 9,
        serverProperties: { product: 'shardmq null broker', capabilities: { publisher_confirms: true, 'basic.nack': true } },
        mechanisms: 'PLAIN AMQPLAIN',
        locales: 'en_US',
      });
    } else this.#write(channel, 'connection.tune', { channelMax: 2047, frameMax: FRAME_MAX, heartbeat: 0 });
  }

  #write<N extends Parameters<typeof writeMethodFrame>[2]>(
    channel: number,
    name: N,
    args: Parameters<typeof writeMethodFrame<N>>[3],
  ): void {
    writeMethodFrame(this.out, channel, name, args);
  }
}

function flushAll(): void {
  for (const c of conns) c.flush();
  const backedUp = [...conns].some((c) => c.backedUp);
  if (backedUp !== paused) {
    paused = backedUp;
    for (const c of conns)
      if (paused) c.pause();
      else c.resume();
  }
}

const server = createServer({ noDelay: true }, (socket) => {
  const conn = new Conn(socket);
  conns.add(conn);
  socket.on('data', (chunk: Buffer) => {
    try {
      conn.push(chunk);
    } catch (err) {
      process.stderr.write(`null broker: ${(err as Error).message}\n`);
      socket.destroy();
    }
    flushAll();
  });
  socket.on('drain', () => {
    if (paused) flushAll();
  });
  socket.on('error', () => undefined);
  socket.on('close', () => {
    conns.delete(conn);
    conn.closed();
    if (paused) flushAll();
  });
  if (paused) socket.pause();
});
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  process.stdout.write(`port ${typeof address === 'object' && address !== null ? address.port : 0}\n`);
});
const stop = (): void => {
  process.stderr.write(`null broker: ${unrouted} publishes found no consumer\n`);
  process.exit(0);
};
process.on('SIGTERM', stop);
process.stdin.on('end', stop);
process.stdin.resume();
