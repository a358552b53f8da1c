/**
 * Hand-written SVG charts for benchmarks.md (no dependency): a line chart (the shard sweep) and a
 * grouped bar chart (shardmq vs its peers). Plain SVG 1.1 with inline styles, so GitHub and any
 * browser render it; every chart carries its machine line as a caption.
 */

export interface Series {
  readonly name: string;
  readonly values: readonly number[];
}

export interface ChartOptions {
  readonly title: string;
  /** Labels along the x axis (line chart: points; bar chart: groups). */
  readonly categories: readonly string[];
  readonly series: readonly Series[];
  readonly yLabel: string;
  readonly xLabel?: string;
  /** Small print under the chart: the machine, the date, the command. */
  readonly caption: string;
}

const WIDTH = 760;
const HEIGHT = 420;
const MARGIN = { left: 80, right: 20, top: 48, bottom: 96 };
const PLOT_W = WIDTH - MARGIN.left - MARGIN.right;
const PLOT_H = HEIGHT - MARGIN.top - MARGIN.bottom;
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b'];
const FONT = 'font-family="Helvetica, Arial, sans-serif"';

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** 1.2M, 350k, 12 */
export function shortNumber(x: number): string {
  if (!Number.isFinite(x)) return 'n/a';
  if (Math.abs(x) >= 1e6) return `${+(x / 1e6).toFixed(2)}M`;
  if (Math.abs(x) >= 1e3) return `${+(x / 1e3).toFixed(1)}k`;
  return `${+x.toFixed(2)}`;
}

/** A "nice" upper bound and tick step for values up to `max`. */
function niceScale(max: number): { top: number; step: number } {
  if (!(max > 0)) return { top: 1, step: 0.25 };
  const raw = max / 5;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  return { top: Math.ceil(max / step) * step, step };
}

/**
 * Everything but the data, the same for both chart kinds: title, y axis scaled to the largest finite
 * value, grid, legend and caption. Returns the lines so far and the y-axis top the data scales to.
 */
function frame(o: ChartOptions): { out: string[]; top: number } {
  const max = Math.max(0, ...o.series.flatMap((s) => s.values.filter(Number.isFinite)));
  const { top, step } = niceScale(max);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}">`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="#ffffff"/>`,
    `<text x="${WIDTH / 2}" y="24" text-anchor="middle" font-size="16" font-weight="bold" ${FONT}>${esc(o.title)}</text>`,
  ];
  for (let v = 0; v <= top + step / 2; v += step) {
    const y = MARGIN.top + PLOT_H - (v / top) * PLOT_H;
    out.push(`<line x1="${MARGIN.left}" y1="${y.toFixed(1)}" x2="${MARGIN.left + PLOT_W}" y2="${y.toFixed(1)}" stroke="#e0e0e0"/>`);
    out.push(
      `<text x="${MARGIN.left - 8}" y="${(y + 4).toFixed(1)}" text-anchor="end" font-size="12" ${FONT}>${esc(shortNumber(v))}</text>`,
    );
  }
  out.push(`<line x1="${MARGIN.left}" y1="${MARGIN.top}" x2="${MARGIN.left}" y2="${MARGIN.top + PLOT_H}" stroke="#333"/>`);
  out.push(
    `<line x1="${MARGIN.left}" y1="${MARGIN.top + PLOT_H}" x2="${MARGIN.left + PLOT_W}" y2="${MARGIN.top + PLOT_H}" stroke="#333"/>`,
  );
  out.push(
    `<text transform="translate(18 ${MARGIN.top + PLOT_H / 2}) rotate(-90)" text-anchor="middle" font-size="13" ${FONT}>${esc(o.yLabel)}</text>`,
  );
  if (o.xLabel !== undefined) {
    out.push(
      `<text x="${MARGIN.left + PLOT_W / 2}" y="${MARGIN.top + PLOT_H + 40}" text-anchor="middle" font-size="13" ${FONT}>${esc(o.xLabel)}</text>`,
    );
  }
  // Legend, then the caption (wrapped at ~110 characters per line).
  let lx = MARGIN.left;
  const ly = HEIGHT - 36;
  o.series.forEach((s, i) => {
    out.push(`<rect x="${lx}" y="${ly - 10}" width="12" height="12" fill="${COLORS[i % COLORS.length]}"/>`);
    out.push(`<text x="${lx + 16}" y="${ly}" font-size="12" ${FONT}>${esc(s.name)}</text>`);
    lx += 28 + s.name.length * 7;
  });
  const words = o.caption.split(' ');
  const lines: string[] = [''];
  for (const w of words) {
    if ((lines[lines.length - 1] + ' ' + w).length > 120) lines.push(w);
    else lines[lines.length - 1] = (lines[lines.length - 1] + ' ' + w).trim();
  }
  lines.slice(0, 2).forEach((line, i) => {
    out.push(`<text x="${MARGIN.left}" y="${HEIGHT - 18 + i * 12}" font-size="10" fill="#555" ${FONT}>${esc(line)}</text>`);
  });
  return { out, top };
}

function finish(out: string[]): string {
  out.push('</svg>');
  return out.join('\n') + '\n';
}

/** Line chart: one line per series over the categories (evenly spaced). */
export function lineChart(o: ChartOptions): string {
  const { out, top } = frame(o);
  const n = o.categories.length;
  const x = (i: number): number => MARGIN.left + (n === 1 ? PLOT_W / 2 : 30 + (i * (PLOT_W - 60)) / (n - 1));
  const y = (v: number): number => MARGIN.top + PLOT_H - (v / top) * PLOT_H;
  o.categories.forEach((c, i) => {
    out.push(`<text x="${x(i).toFixed(1)}" y="${MARGIN.top + PLOT_H + 18}" text-anchor="middle" font-size="12" ${FONT}>${esc(c)}</text>`);
  });
  o.series.forEach((s, k) => {
    const color = COLORS[k % COLORS.length];
    const pts = s.values.map((v, i) => (Number.isFinite(v) ? `${x(i).toFixed(1)},${y(v).toFixed(1)}` : null)).filter((p) => p !== null);
    out.push(`<polyline fill="none" stroke="${color}" stroke-width="2.5" points="${pts.join(' ')}"/>`);
    s.values.forEach((v, i) => {
      if (!Number.isFinite(v)) return;
      out.push(`<circle cx="${x(i).toFixed(1)}" cy="${y(v).toFixed(1)}" r="4" fill="${color}"/>`);
      out.push(
        `<text x="${x(i).toFixed(1)}" y="${(y(v) - 9).toFixed(1)}" text-anchor="middle" font-size="11" ${FONT}>${esc(shortNumber(v))}</text>`,
      );
    });
  });
  return finish(out);
}

/** Grouped bar chart: one group per category, one bar per series. */
export function barChart(o: ChartOptions): string {
  const { out, top } = frame(o);
  const groups = o.categories.length;
  const groupW = PLOT_W / Math.max(1, groups);
  const barW = (groupW * 0.8) / Math.max(1, o.series.length);
  o.categories.forEach((c, g) => {
    const gx = MARGIN.left + g * groupW;
    out.push(
      `<text x="${(gx + groupW / 2).toFixed(1)}" y="${MARGIN.top + PLOT_H + 18}" text-anchor="middle" font-size="12" ${FONT}>${esc(c)}</text>`,
    );
    o.series.forEach((s, k) => {
      const v = s.values[g];
      if (!Number.isFinite(v)) return;
      const h = (v / top) * PLOT_H;
      const bx = gx + groupW * 0.1 + k * barW;
      const by = MARGIN.top + PLOT_H - h;
      out.push(
        `<rect x="${bx.toFixed(1)}" y="${by.toFixed(1)}" width="${(barW - 2).toFixed(1)}" height="${h.toFixed(1)}" fill="${COLORS[k % COLORS.length]}"/>`,
      );
      out.push(
        `<text x="${(bx + barW / 2).toFixed(1)}" y="${(by - 4).toFixed(1)}" text-anchor="middle" font-size="10" ${FONT}>${esc(shortNumber(v))}</text>`,
      );
    });
  });
  return finish(out);
}
