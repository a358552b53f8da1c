/**
 * What one open dashboard costs the broker (issue "A live dashboard…": its polling must not cost
 * more than 1% of a core). One broker with 200 queues holding messages and 10 connections (so
 * /v1/stats has something to say); its CPU over a window with no page open, then over the same
 * window with the dashboard open in headless Chromium (Debian's `chromium`, through playwright-core),
 * interleaved twice (30 s windows); medians. Then, under a real load (2,000 msg/s through a topic to a
 * subscriber, a queue filling), a screenshot of the page at 1366×768 for the README: docs/dashboard.png.
 */
import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';
import { connect, type ShardmqClient } from '../../index.js';
import { startBrokerProcess } from '../broker-process.js';
import { ResourceMeter } from '../proc.js';
import { summarize } from '../sample-stats.js';
import { roundsOf, type Workload, type WorkloadResult } from '../workload.js';

const CHROMIUM = '/usr/bin/chromium';
const SCREENSHOT = 'docs/dashboard.png';
const GOAL_CORES = 0.01;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export const dashboard: Workload = {
  name: 'dashboard',
  description:
    'What one open dashboard (headless Chromium polling /v1/stats every second) costs the broker in CPU; a screenshot under load for the README',
  async run(ctx): Promise<WorkloadResult> {
    if (!existsSync(CHROMIUM)) {
      return { tables: [], figures: {}, notes: [`skipped: ${CHROMIUM} is missing (bash scripts/ci-deps.sh installs Debian's chromium)`] };
    }
    const windowMs = ctx.quick ? 10_000 : 30_000;
    const rounds = ctx.quick ? 1 : Math.min(2, roundsOf(ctx));
    const broker = await startBrokerProcess([]);
    const clients: ShardmqClient[] = [];
    let browser: Browser | null = null;
    try {
      for (let i = 0; i < 10; i++) clients.push(await connect(broker.url));
      const admin = clients[0];
      for (let q = 0; q < 200; q++) {
        await admin.declareQueue(`dash-q${q}`);
        for (let m = 0; m < 50; m++) admin.publishNoWait(`/queue/dash-q${q}`, `m${m}`);
      }
      await admin.flush();
      browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu'] });
      const without: number[] = [];
      const withPage: number[] = [];
      for (let r = 0; r < rounds; r++) {
        await sleep(1000);
        const idle = new ResourceMeter([broker.pid]);
        await sleep(windowMs);
        without.push(idle.stop().cores);
        const page = await browser.newPage({ viewport: { width: 1366, height: 768 } });
        await page.goto(`${broker.url}/`);
        await page.waitForSelector('#status[data-state="live"]', { timeout: 10_000 });
        await sleep(1000);
        const open = new ResourceMeter([broker.pid]);
        await sleep(windowMs);
        withPage.push(open.stop().cores);
        await page.close();
        ctx.progress(
          `dashboard round ${r + 1}: broker CPU ${(without[r] * 100).toFixed(2)}% of a core without the page, ${(withPage[r] * 100).toFixed(2)}% with it`,
        );
      }

      // The screenshot under a real load: a topic at 2,000 msg/s to a subscriber, a queue filling.
      const pub = clients[1];
      await clients[2].subscribe('/topic/sensors.*', { ack: 'auto' }, () => undefined);
      let sent = 0;
      const load = setInterval(() => {
        for (let i = 0; i < 20; i++) pub.publishNoWait('/topic/sensors.temp', String(sent++));
        for (let i = 0; i < 4; i++) pub.publishNoWait('/queue/jobs', 'job');
      }, 10);
      const page = await browser.newPage({ viewport: { width: 1366, height: 768 } });
      await page.goto(`${broker.url}/`);
      await sleep(ctx.quick ? 8000 : 30_000);
      await page.screenshot({ path: SCREENSHOT });
      clearInterval(load);
      await page.close();

      const a = summarize(without).median;
      const b = summarize(withPage).median;
      const cost = b - a;
      const cell = (x: number): string => `${(x * 100).toFixed(2)}%`;
      return {
        tables: [
          {
            title: 'One open dashboard: broker CPU',
            columns: ['window', 'broker CPU, no page', 'with one dashboard open', 'the page costs'],
            rows: [[`${windowMs / 1000} s × ${rounds}`, cell(a), cell(b), cell(cost)]],
            notes: [
              `goal: the page's polling costs at most ${cell(GOAL_CORES)} of a core: ${cost <= GOAL_CORES ? 'met' : 'not met'} (median of ${rounds} interleaved pair(s) of windows)`,
              'the broker holds 200 queues of 50 messages each and 10 idle connections; the page polls GET /v1/stats every second and the exchange and binding lists every ten seconds; Chromium itself runs outside the broker and is not counted',
              `screenshot under load (2,000 msg/s through a topic to a subscriber, 400 msg/s into a queue nobody consumes): ${SCREENSHOT}`,
            ],
          },
        ],
        figures: { dashboard_broker_cores_without: a, dashboard_broker_cores_with: b, dashboard_cost_cores: cost },
      };
    } finally {
      await browser?.close();
      await Promise.all(clients.map((c) => c.close()));
      await broker.stop();
    }
  },
};
