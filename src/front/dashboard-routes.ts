/**
 * The dashboard: `GET /` and `/dashboard` answer its page, `/dashboard/<file>` its script and
 * style, `/dashboard/vendor/` uPlot from the package's own dependency. Files are read once at
 * start and served from memory; no CDN, no build step. The page holds no data: it polls
 * `/v1/stats` (and the management lists) with the user's token, so auth applies there.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { HttpResponse, TemplatedApp } from 'uWebSockets.js';
import type { BrokerContext } from './context.js';

interface Asset {
  readonly type: string;
  readonly body: Buffer;
}

const PAGE_DIR = new URL('../../dashboard/', import.meta.url);
const require = createRequire(import.meta.url);

/** Only scripts and styles of its own origin; uPlot sets inline styles on the elements it makes. */
const CSP = "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; object-src 'none'; frame-ancestors 'none'";

function load(): Map<string, Asset> {
  const assets = new Map<string, Asset>();
  const own = (file: string, type: string): void =>
    void assets.set(`/dashboard/${file}`, { type, body: readFileSync(new URL(file, PAGE_DIR)) });
  own('index.html', 'text/html; charset=utf-8');
  own('app.js', 'text/javascript; charset=utf-8');
  own('style.css', 'text/css; charset=utf-8');
  const vendor = (file: string, type: string): void =>
    void assets.set(`/dashboard/vendor/${file}`, { type, body: readFileSync(require.resolve(`uplot/dist/${file}`)) });
  vendor('uPlot.iife.min.js', 'text/javascript; charset=utf-8');
  vendor('uPlot.min.css', 'text/css; charset=utf-8');
  return assets;
}

function serve(res: HttpResponse, asset: Asset): void {
  res.cork(() => {
    res.writeStatus('200 OK');
    res.writeHeader('content-type', asset.type);
    res.writeHeader('cache-control', 'no-cache');
    res.writeHeader('content-security-policy', CSP);
    res.writeHeader('x-content-type-options', 'nosniff');
    res.end(asset.body);
  });
}

export function registerDashboardRoutes(app: TemplatedApp, ctx: BrokerContext): void {
  const assets = load();
  const page = assets.get('/dashboard/index.html') as Asset;
  for (const path of ['/', '/dashboard', '/dashboard/']) {
    ctx.routes.note('GET', path);
    app.get(path, (res) => serve(res, page));
  }
  for (const [path, asset] of assets) {
    ctx.routes.note('GET', path);
    app.get(path, (res) => serve(res, asset));
  }
}
