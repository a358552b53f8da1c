/**
 * The dashboard in a real headless Chromium (Debian's `chromium`, driven by playwright-core;
 * scripts/ci-deps.sh installs it): it loads clean, draws, shows a queue filling, a slow subscriber
 * with its dropped count, a broker going away and coming back, and asks for a token when auth is on.
 *
 * The page talks to the broker through a small TCP relay on a fixed port, so "the broker restarts"
 * can be a new broker on a new port behind the same address (uWebSockets.js cannot listen again on a
 * port whose connections it just closed until their TIME-WAIT ends).
 */
import { existsSync } from 'node:fs';
import { createServer, connect as tcpConnect, type AddressInfo, type Server, type Socket } from 'node:net';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { Broker } from '../../src/front/broker.js';
import { connect } from '../../src/index.js';
import { startBroker } from '../helpers/broker.js';

const CHROMIUM = '/usr/bin/chromium';

/** A relay from a fixed local port to whatever broker port it is pointed at. */
class Relay {
  readonly server: Server;
  target = 0;
  readonly #sockets = new Set<Socket>();

  constructor() {
    this.server = createServer((client) => {
      const upstream = tcpConnect(this.target, '127.0.0.1');
      this.#sockets.add(client).add(upstream);
      client.pipe(upstream).pipe(client);
      const end = (): void => {
        client.destroy();
        upstream.destroy();
        this.#sockets.delete(client);
        this.#sockets.delete(upstream);
      };
      client.on('error', end).on('close', end);
      upstream.on('error', end).on('close', end);
    });
  }

  async listen(): Promise<string> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** Cuts every relayed connection (the broker behind went away). */
  cut(): void {
    for (const s of this.#sockets) s.destroy();
    this.#sockets.clear();
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

async function openPage(browser: Browser, url: string): Promise<{ page: Page; problems: string[] }> {
  const page = await browser.newPage({ viewport: { width: 1366, height: 768 } });
  const problems: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${String(e)}`));
  page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()}`));
  page.on('response', (r) => {
    if (r.status() >= 400) problems.push(`HTTP ${r.status()}: ${r.url()}`);
  });
  await page.goto(url);
  return { page, problems };
}

// The page's globals as the browser-side callbacks below use them: this compilation has no DOM lib,
// and the page's CSP forbids evaluating source text (Playwright's waitForFunction polls that way),
// so the callbacks are functions typed here and polled from the test.
interface PageElement {
  readonly textContent: string | null;
  querySelector(selector: string): PageElement | null;
}
interface PageCanvas {
  readonly width: number;
  readonly height: number;
  getContext(kind: '2d'): { getImageData(x: number, y: number, w: number, h: number): { data: Uint8ClampedArray } };
}
declare const document: { querySelector(selector: string): PageElement | null; querySelectorAll(selector: string): { length: number } };

/** Evaluates `check` in the page every 50 ms until it returns true; fails with `what` after `timeoutMs`. */
async function until(page: Page, check: (arg: string[]) => boolean, arg: string[], timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await page.evaluate<boolean, string[]>(check, arg)) return;
    if (Date.now() > deadline) throw new Error(`dashboard: ${what} not seen within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** True when the table's row for `key` shows `text` in column `col`. */
const cellIs = ([table, key, col, text]: string[]): boolean =>
  document.querySelector(`#${table} tr[data-key="${key}"] td[data-col="${col}"]`)?.textContent === text;

describe('e2e - dashboard in headless Chromium', () => {
  let browser: Browser;
  beforeAll(async () => {
    expect(existsSync(CHROMIUM), `${CHROMIUM} is missing: bash scripts/ci-deps.sh installs Debian's chromium`).toBe(true);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu'] });
  });
  afterAll(async () => {
    await browser?.close();
  });

  it('loads clean and draws; a queue filling shows within 3 s; a slow subscriber shows with its dropped count; a restart shows disconnected, then live', async () => {
    const flags = { shards: '2', 'slow-consumer-ms': '100', 'socket-high-water': '65536', 'topic-buffer': '1000' };
    let broker: Broker = await startBroker(flags);
    const relay = new Relay();
    relay.target = broker.port;
    const base = await relay.listen();
    const { page, problems } = await openPage(browser, `${base}/`);
    let raw: WebSocket | null = null;
    try {
      await page.waitForSelector('#status[data-state="live"]', { timeout: 5000 });
      // Two polls make a rate: the charts draw, and their canvas is not blank.
      await until(
        page,
        () => document.querySelectorAll('#rates-chart canvas, #queued-chart canvas, #bytes-chart canvas').length === 3,
        [],
        5000,
        'three charts',
      );
      const inked = await page.evaluate(() => {
        const canvas = document.querySelector('#rates-chart canvas') as unknown as PageCanvas;
        const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        let n = 0;
        for (let i = 3; i < data.length; i += 4) if (data[i] > 0) n++;
        return n;
      });
      expect(inked).toBeGreaterThan(500);

      // 10,000 messages to a queue nobody consumes: the page shows them within 3 s.
      const lines = Array.from({ length: 10_000 }, (_, i) => `m${i}`).join('\n');
      const published = await fetch(`${broker.url}/v1/publish/queue/dash-backlog`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-ndjson' },
        body: lines,
      });
      expect(await published.json()).toEqual({ accepted: 10_000 });
      const t0 = Date.now();
      // The poll that first sees them also shows them coming in (in/s from the queue's published counter).
      await until(
        page,
        () => {
          const row = document.querySelector('#queues tr[data-key="dash-backlog"]');
          const inRate = Number((row?.querySelector('td[data-col="inRate"]')?.textContent ?? '0').replace(/,/g, ''));
          return row?.querySelector('td[data-col="ready"]')?.textContent === '10,000' && inRate > 0;
        },
        [],
        3000,
        'dash-backlog with 10,000 ready, coming in',
      );
      expect(Date.now() - t0).toBeLessThanOrEqual(3000);

      // A second vhost: the vhosts card appears with it and what it holds; its queue is its own row.
      expect((await fetch(`${broker.url}/v1/vhosts/dash-tenant`, { method: 'PUT', body: '{}' })).status).toBe(201);
      expect((await fetch(`${broker.url}/v1/publish/queue/dash-backlog?vhost=dash-tenant`, { method: 'POST', body: 'one' })).status).toBe(
        200,
      );
      await until(
        page,
        ([key]: string[]) =>
          document.querySelector('#vhosts-card:not([hidden])') !== null &&
          document.querySelector('#vhosts tr[data-key="dash-tenant"] td[data-col="queues"]')?.textContent === '1' &&
          document.querySelector(`#queues tr[data-key="${key}"] td[data-col="ready"]`)?.textContent === '1',
        ['dash-tenant\u001fdash-backlog'],
        5000,
        "the vhost card, and dash-tenant's own dash-backlog row",
      );

      // A JSON subscriber that stops reading: its socket fills, it turns slow and loses the oldest.
      raw = new WebSocket(`${broker.url.replace('http', 'ws')}/v1/ws`);
      await new Promise<void>((resolve, reject) => {
        raw?.once('open', () => resolve());
        raw?.once('error', reject);
      });
      raw.send(JSON.stringify({ op: 'subscribe', id: 'stalled', destination: '/topic/dash.slow', ack: 'auto', receipt: 'r' }));
      await new Promise<void>((resolve) => raw?.once('message', () => resolve()));
      (raw as unknown as { _socket: Socket })._socket.pause();
      const pub = await connect(broker.url, { confirms: false });
      const pad = 'x'.repeat(2048);
      for (let i = 0; i < 20_000; i++) {
        pub.publishNoWait('/topic/dash.slow', pad);
        if (i % 2000 === 1999) await pub.flush();
      }
      await pub.flush();
      await until(
        page,
        () => {
          const row = document.querySelector('#connections tr.slow');
          const dropped = row?.querySelector('td[data-col="dropped"]')?.textContent ?? '0';
          return row !== null && Number(dropped.replace(/,/g, '')) > 0;
        },
        [],
        10_000,
        'a slow connection with a dropped count',
      );
      await pub.close();
      expect(problems).toEqual([]);

      // The broker goes away: the page says so; a new one behind the same address: live again.
      raw.terminate();
      raw = null;
      await broker.stop();
      relay.cut();
      await page.waitForSelector('#status[data-state="disconnected"]', { timeout: 5000 });
      broker = await startBroker(flags);
      relay.target = broker.port;
      await page.waitForSelector('#status[data-state="live"]', { timeout: 5000 });
      await fetch(`${broker.url}/v1/publish/queue/after-restart`, { method: 'POST', body: 'x' });
      await until(page, cellIs, ['queues', 'after-restart', 'ready', '1'], 5000, 'after-restart with 1 ready');
      expect(await page.evaluate<boolean, string[]>(cellIs, ['shards', '0', 'state', 'up'])).toBe(true);
    } finally {
      raw?.terminate();
      await page.close();
      await relay.close();
      await broker.stop();
    }
  }, 60_000);

  it('with auth on, the page asks for a token, refuses a wrong one and shows the broker with the right one', async () => {
    const broker = await startBroker({ 'auth-token': 's3cret' });
    const { page } = await openPage(browser, `${broker.url}/dashboard`);
    try {
      await page.waitForSelector('#login:not([hidden])', { timeout: 5000 });
      expect(await page.isHidden('#main')).toBe(true);
      await page.fill('#token', 'wrong');
      await page.click('#login button');
      await page.waitForSelector('#login.refused', { timeout: 5000 });
      expect(await page.textContent('#login-message')).toMatch(/Refused/);
      expect(await page.isHidden('#main')).toBe(true);
      await page.fill('#token', 's3cret');
      await page.click('#login button');
      await page.waitForSelector('#status[data-state="live"]', { timeout: 5000 });
      expect(await page.isHidden('#login')).toBe(true);
      expect(await page.isVisible('#shards')).toBe(true);
      // A phone's width: the page reflows to one column; only the tables scroll sideways, inside their cards.
      await page.setViewportSize({ width: 390, height: 844 });
      await until(page, () => document.querySelectorAll('#rates-chart canvas').length === 1, [], 5000, 'the rates chart');
      const widths = await page.evaluate(() => {
        const root = (document as unknown as { documentElement: { scrollWidth: number; clientWidth: number } }).documentElement;
        return [root.scrollWidth, root.clientWidth];
      });
      expect(widths[0]).toBeLessThanOrEqual(widths[1]);
    } finally {
      await page.close();
      await broker.stop();
    }
  }, 30_000);

  it('a node of a cluster lists the nodes, their state and what each holds; a node of its own shows no cluster card', async () => {
    const { NatsServer } = await import('../helpers/nats-server.js');
    const nats = await NatsServer.start();
    const alone = await startBroker();
    const a = await startBroker({ cluster: nats.url, 'node-name': 'a' });
    const b = await startBroker({ cluster: nats.url, 'node-name': 'b' });
    const pages: Page[] = [];
    try {
      // Both nodes in on a first: a places a new queue by hash over the members it knows.
      const deadline = Date.now() + 5000;
      while (((await (await fetch(`${a.url}/v1/cluster`)).json()) as { members: unknown[] }).members.length < 2) {
        if (Date.now() > deadline) throw new Error('a never saw b');
        await new Promise((r) => setTimeout(r, 20));
      }
      // A queue on b, made from a (placed by hash), and one message in it.
      let q = '';
      for (let i = 0; q === ''; i++) {
        const { placeByHash } = await import('../../src/cluster/queue-placement.js');
        if (placeByHash(`dash${i}`, ['a', 'b']) === 'b') q = `dash${i}`;
      }
      expect((await fetch(`${a.url}/v1/publish/queue/${q}`, { method: 'POST', body: 'x' })).status).toBe(200);
      const { page, problems } = await openPage(browser, `${a.url}/dashboard`);
      pages.push(page);
      await page.waitForSelector('#cluster-card:not([hidden])', { timeout: 5000 });
      await until(page, cellIs, ['cluster', 'b', 'queues', '1'], 5000, 'b holding one queue');
      await until(page, cellIs, ['cluster', 'b', 'queued', '1'], 5000, 'b holding one message');
      await until(page, cellIs, ['cluster', 'a', 'name', 'a (this node)'], 5000, 'a as this node');
      await until(page, cellIs, ['cluster', 'b', 'state', 'up'], 5000, 'b up');
      await b.stop();
      await until(page, (args) => document.querySelector(`#cluster tr[data-key="${args[0]}"]`) === null, ['b'], 5000, 'b gone');
      expect(problems).toEqual([]);
      const lone = await openPage(browser, `${alone.url}/dashboard`);
      pages.push(lone.page);
      await lone.page.waitForSelector('#status[data-state="live"]', { timeout: 5000 });
      await new Promise((r) => setTimeout(r, 1500));
      expect(await lone.page.isHidden('#cluster-card')).toBe(true);
      expect(lone.problems).toEqual([]);
    } finally {
      for (const p of pages) await p.close();
      await alone.stop();
      await a.stop();
      await b.stop();
      await nats.stop();
    }
  }, 40_000);
});
