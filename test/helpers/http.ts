/**
 * Small HTTP helpers for load and fault tests: every request is bounded by a timeout, so a
 * broker that stops answering fails the test with a clear message instead of hanging it.
 */

export interface HttpAnswer {
  status: number;
  /** Parsed JSON body, or null when the body is not JSON. */
  json: Record<string, unknown> | null;
  text: string;
  headers: Headers;
}

/** Sends one request and reads the whole answer, aborting after `timeoutMs`. */
export async function request(url: string, init: RequestInit = {}, timeoutMs = 10_000): Promise<HttpAnswer> {
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs) });
  const text = await res.text();
  let json: Record<string, unknown> | null = null;
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) json = parsed as Record<string, unknown>;
  } catch {
    json = null;
  }
  return { status: res.status, json, text, headers: res.headers };
}

/** POSTs `lines` as one NDJSON batch to `/v1/publish/<destination>`. */
export function publishNdjson(
  baseUrl: string,
  destination: string,
  lines: readonly string[] | string,
  timeoutMs = 10_000,
): Promise<HttpAnswer> {
  const body = typeof lines === 'string' ? lines : lines.join('\n') + '\n';
  return request(
    `${baseUrl}/v1/publish/${destination.replace(/^\//, '')}`,
    { method: 'POST', body, headers: { 'content-type': 'application/x-ndjson' } },
    timeoutMs,
  );
}

/** GET /v1/stats as loosely typed JSON. */
export async function brokerStats(baseUrl: string, timeoutMs = 5000): Promise<BrokerStats> {
  const a = await request(`${baseUrl}/v1/stats`, {}, timeoutMs);
  if (a.status !== 200 || a.json === null) throw new Error(`/v1/stats answered ${a.status}: ${a.text.slice(0, 200)}`);
  return a.json as unknown as BrokerStats;
}

export interface ShardStatsJson {
  index: number;
  alive: boolean;
  published: number;
  delivered: number;
  dropped: number;
  restarts: number;
  lost: number;
  ready: number;
  unacked: number;
  [key: string]: unknown;
}

export interface QueueStatsJson {
  name: string;
  depth: number;
  consumers: number;
  unacked: number;
  shard: number;
  stats: Record<string, number>;
  [key: string]: unknown;
}

export interface BrokerStats {
  shards: ShardStatsJson[];
  queues: QueueStatsJson[];
  connections: { websocket: number; subscriptions: number; [key: string]: unknown };
  /** Publishes held in main-thread memory per shard, and flow-control holds so far. */
  overflow: Array<{ shard: number; bytes: number; records: number; flowHeld: boolean; flowHolds: number }>;
  slowConsumers: {
    dropped: number;
    subscriptions: Array<{ connection: number; subscription: string | number; destination: string; dropped: number; slow: boolean }>;
  };
  [key: string]: unknown;
}

/** Polls `check` every `everyMs` until it is true; throws `what` after `timeoutMs`. */
export async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string, everyMs = 20): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Every value under `key` anywhere in a JSON value (for fields whose place is not fixed). */
export function findValues(value: unknown, key: string, out: unknown[] = []): unknown[] {
  if (Array.isArray(value)) for (const v of value) findValues(v, key, out);
  else if (typeof value === 'object' && value !== null) {
    for (const [k, v] of Object.entries(value)) {
      if (k === key) out.push(v);
      findValues(v, key, out);
    }
  }
  return out;
}

/**
 * A queue's ready count once it reaches `expected`, or whatever it is after `timeoutMs`: a publish
 * is answered once the broker holds it in a ring, before its shard has queued it, so a count read
 * at once can lag. 0 for a queue that does not exist.
 */
export async function settledDepth(baseUrl: string, queue: string, expected: number, timeoutMs = 10_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const a = await request(`${baseUrl}/v1/queues/${encodeURIComponent(queue)}`, {}, 5000);
    const depth = a.status === 404 ? 0 : ((a.json?.messages_ready as number | undefined) ?? -1);
    if (depth === expected || Date.now() > deadline) return depth;
    await new Promise((r) => setTimeout(r, 25));
  }
}
