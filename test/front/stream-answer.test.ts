import { describe, expect, it } from 'vitest';
import type { HttpResponse } from 'uWebSockets.js';
import { streamAnswer } from '../../src/front/stream-answer.js';
import { WorkPacer } from '../../src/front/work-pacer.js';
import type { ResponseState } from '../../src/front/http-util.js';

/** What streamAnswer does to a response, in order; `backedUp` writes answer false until onWritable fires. */
class FakeResponse {
  readonly calls: string[] = [];
  readonly chunks: string[] = [];
  ended: string | null = null;
  closed = false;
  backedUp = 0;
  #writable: (() => boolean) | null = null;

  cork(fn: () => void): this {
    fn();
    return this;
  }
  writeStatus(status: string): this {
    this.calls.push(`status ${status}`);
    return this;
  }
  writeHeader(name: string, value: string): this {
    this.calls.push(`header ${name}: ${value}`);
    return this;
  }
  write(chunk: string): boolean {
    this.calls.push('write');
    this.chunks.push(chunk);
    if (this.backedUp > 0) {
      this.backedUp--;
      return false;
    }
    return true;
  }
  onWritable(fn: () => boolean): this {
    this.calls.push('onWritable');
    this.#writable = fn;
    return this;
  }
  drain(): void {
    this.#writable?.();
    this.#writable = null;
  }
  end(text: string): this {
    this.calls.push('end');
    this.ended = text;
    return this;
  }
  close(): this {
    this.closed = true;
    return this;
  }
  get body(): string {
    return this.chunks.join('') + (this.ended ?? '');
  }
}

const asRes = (r: FakeResponse): HttpResponse => r as unknown as HttpResponse;
const NEVER_WAIT = new WorkPacer(1);

/** Parts that each keep the thread busy for `ms`, so every part overruns a budget of that size. */
function* slowParts(n: number, ms: number): Generator<string> {
  for (let i = 0; i < n; i++) {
    const until = performance.now() + ms;
    while (performance.now() < until) {
      // busy: the part's own cost
    }
    yield `[${i}]`;
  }
}

describe('streamAnswer', () => {
  it('writes the whole answer, in order, in more than one write once parts overrun the budget', async () => {
    const res = new FakeResponse();
    const state: ResponseState = { aborted: false };
    await streamAnswer(asRes(res), state, 'application/json', slowParts(10, 0.3), NEVER_WAIT, 0.5);
    expect(res.body).toBe(Array.from({ length: 10 }, (_, i) => `[${i}]`).join(''));
    expect(res.calls.slice(0, 2)).toEqual(['status 200 OK', 'header content-type: application/json']);
    expect(res.chunks.length).toBeGreaterThan(1);
    expect(res.calls.at(-1)).toBe('end');
  });

  it('parts within the budget go out in one end, with no write', async () => {
    const res = new FakeResponse();
    await streamAnswer(asRes(res), { aborted: false }, 'text/plain', ['a', 'b', 'c'], NEVER_WAIT, 1000);
    expect(res.chunks).toEqual([]);
    expect(res.ended).toBe('abc');
  });

  it('takes async parts', async () => {
    async function* parts(): AsyncGenerator<string> {
      for (let i = 0; i < 5; i++) {
        await new Promise((r) => setImmediate(r));
        yield String(i);
      }
    }
    const res = new FakeResponse();
    await streamAnswer(asRes(res), { aborted: false }, 'text/plain', parts(), NEVER_WAIT, 1000);
    expect(res.body).toBe('01234');
  });

  it('waits for the socket to drain when a write is backed up, then goes on', async () => {
    const res = new FakeResponse();
    res.backedUp = 1;
    const done = streamAnswer(asRes(res), { aborted: false }, 'text/plain', slowParts(4, 0.3), NEVER_WAIT, 0.1);
    await new Promise((r) => setTimeout(r, 50));
    // Held after the first write, waiting to be writable.
    expect(res.calls.filter((c) => c === 'write')).toHaveLength(1);
    expect(res.calls).toContain('onWritable');
    expect(res.ended).toBeNull();
    res.drain();
    await done;
    expect(res.body).toBe('[0][1][2][3]');
  });

  it('stops writing once the client went away', async () => {
    const res = new FakeResponse();
    const state: ResponseState = { aborted: false };
    function* parts(): Generator<string> {
      yield* slowParts(2, 0.3);
      state.aborted = true;
      yield* slowParts(2, 0.3);
    }
    await streamAnswer(asRes(res), state, 'text/plain', parts(), NEVER_WAIT, 0.1);
    expect(res.ended).toBeNull();
    expect(res.body).not.toContain('[2]');
  });

  it('a failing part closes the connection mid-answer and rethrows', async () => {
    const res = new FakeResponse();
    function* parts(): Generator<string> {
      yield 'ok';
      throw new Error('boom');
    }
    await expect(streamAnswer(asRes(res), { aborted: false }, 'text/plain', parts(), NEVER_WAIT)).rejects.toThrow('boom');
    expect(res.closed).toBe(true);
    expect(res.ended).toBeNull();
  });
});
