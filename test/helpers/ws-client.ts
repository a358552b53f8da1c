import WebSocket from 'ws';

export interface Frame {
  op: string;
  [key: string]: unknown;
}

/**
 * A JSON WebSocket test client: frames queue up in arrival order, and `next`
 * waits (bounded) for the next frame matching a predicate.
 */
export class JsonWsClient {
  readonly ws: WebSocket;
  readonly frames: Frame[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  #waiters: Array<() => void> = [];
  #receipt = 0;

  private constructor(ws: WebSocket) {
    this.ws = ws;
    ws.on('message', (data, isBinary) => {
      this.frames.push(isBinary ? { op: 'binary' } : (JSON.parse(String(data)) as Frame));
      for (const w of this.#waiters.splice(0)) w();
    });
    this.closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: String(reason) })));
  }

  /** `token` and `vhost`: sent as the query parameters browsers use. */
  static async connect(baseUrl: string, token?: string, vhost?: string): Promise<JsonWsClient> {
    const params = new URLSearchParams();
    if (token !== undefined) params.set('token', token);
    if (vhost !== undefined) params.set('vhost', vhost);
    const query = params.size === 0 ? '' : `?${params.toString()}`;
    const ws = new WebSocket(baseUrl.replace(/^http/, 'ws') + '/v1/ws' + query);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    return new JsonWsClient(ws);
  }

  send(frame: Record<string, unknown>): void {
    this.ws.send(JSON.stringify(frame));
  }

  /** Sends a frame with a fresh receipt and waits for that receipt (or an error naming it). */
  async request(frame: Record<string, unknown>, timeoutMs = 5000): Promise<Frame> {
    const receipt = `r${++this.#receipt}`;
    this.send({ ...frame, receipt });
    return this.take((f) => f.receipt === receipt, timeoutMs);
  }

  async subscribe(id: string, destination: string, extra: Record<string, unknown> = {}): Promise<void> {
    const answer = await this.request({ op: 'subscribe', id, destination, ...extra });
    if (answer.op !== 'receipt') throw new Error(`subscribe failed: ${JSON.stringify(answer)}`);
  }

  /** Removes and returns the first frame matching `match`, waiting up to timeoutMs. */
  async take(match: (f: Frame) => boolean = () => true, timeoutMs = 5000): Promise<Frame> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.frames.findIndex(match);
      if (i >= 0) return this.frames.splice(i, 1)[0];
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(`timed out after ${timeoutMs} ms waiting for a frame; have ${JSON.stringify(this.frames.slice(0, 5))}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Takes `n` message frames (optionally of one subscription). */
  async messages(n: number, subscription?: string, timeoutMs = 10_000): Promise<Frame[]> {
    const out: Frame[] = [];
    for (let i = 0; i < n; i++) {
      out.push(await this.take((f) => f.op === 'message' && (subscription === undefined || f.subscription === subscription), timeoutMs));
    }
    return out;
  }

  close(): Promise<{ code: number; reason: string }> {
    this.ws.close(1000);
    return this.closed;
  }
}
