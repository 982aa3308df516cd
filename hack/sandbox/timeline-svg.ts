/**
 * A picture of the autoscaler: per node, over time, the IPs on its NIC (allocated), what the scaling
 * policy aims at (target), what pods hold (used) and pod set-ups waiting for an IP (pending), with the pool's
 * limit and the moments that explain them ("burst: 20 pods", "pods deleted"). `timelineSvg` is a pure
 * function of the samples; `TimelineSampler` collects them (from the controller's /metrics, or any source).
 * The sandbox writes one through a burst and its release; the soak writes one of its run.
 */

export interface NodePoint {
  allocated: number;
  target: number;
  used: number;
  pending: number;
}

export interface TimelineSample {
  /** Milliseconds (any origin; the first sample is time 0 on the axis). */
  t: number;
  nodes: Record<string, NodePoint>;
}

export interface TimelineMark {
  t: number;
  label: string;
}

export interface TimelineOptions {
  title?: string;
  /** A line under the title: the pool's policy, what was done. */
  subtitle?: string;
  /** The pool's ipsPerNode.max: a limit line in every panel. */
  max?: number;
  /** Moments to mark with a vertical line and a label. */
  marks?: readonly TimelineMark[];
  /** Nodes to draw, in order (default: every node seen, sorted). */
  nodes?: readonly string[];
  width?: number;
  panelHeight?: number;
  /** Height of a panel whose node never changed (default a third of panelHeight): the eye goes where things happen. */
  quietPanelHeight?: number;
}

export const SERIES = [
  { key: 'used', label: 'used (pods holding an IP)', color: '#2ca02c' },
  { key: 'pending', label: 'pending (pods waiting for an IP)', color: '#d62728' },
  { key: 'allocated', label: 'allocated (ip-configs on the NIC)', color: '#1f77b4' },
  { key: 'target', label: 'target (what the autoscaler wants)', color: '#ff7f0e' },
] as const;

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
const f = (n: number) => (Math.round(n * 10) / 10).toString();

/** A round step for about `count` ticks up to `max`. */
export function niceStep(max: number, count = 5): number {
  if (max <= 0) return 1;
  const raw = max / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw)!;
  return Math.max(1, Math.round(step));
}

/** Words into lines of at most `max` characters. */
function wrap(text: string, max: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const w of text.split(/\s+/).filter(Boolean)) {
    if (line && line.length + 1 + w.length > max) { lines.push(line); line = w; } else line = line ? `${line} ${w}` : w;
  }
  if (line) lines.push(line);
  return lines;
}

/** Where everything goes: margins, one panel per node (a quiet node's is lower), the time scale. */
interface Layout {
  width: number;
  height: number;
  left: number;
  right: number;
  top: number;
  plotW: number;
  subtitle: string[];
  nodes: readonly string[];
  heights: number[];
  tops: number[];
  /** The bottom of the last panel, where the time axis goes. */
  panelsBottom: number;
  t0: number;
  t1: number;
  x: (t: number) => number;
}

function layoutOf(samples: readonly TimelineSample[], o: TimelineOptions): Layout {
  const width = o.width ?? 960;
  const panelH = o.panelHeight ?? 190;
  const left = 56;
  const right = 20;
  const top = 100;
  const gap = 34;
  const subtitle = wrap(o.subtitle ?? '', Math.floor((width - left - right) / 6.2));
  const bottom = 44 + subtitle.length * 14;
  const nodes = o.nodes ?? [...new Set(samples.flatMap((s) => Object.keys(s.nodes)))].sort();
  const quietH = o.quietPanelHeight ?? Math.round(panelH / 3);
  const changed = (n: string) => new Set(samples.map((s) => JSON.stringify(s.nodes[n] ?? null))).size > 1;
  const heights = nodes.map((n) => (changed(n) ? panelH : quietH));
  const tops = heights.map((_h, i) => heights.slice(0, i).reduce((a, h) => a + h + gap, top));
  const t0 = samples[0]?.t ?? 0;
  const t1 = Math.max(t0 + 1000, samples[samples.length - 1]?.t ?? t0);
  const plotW = width - left - right;
  const panelsBottom = top + heights.reduce((a, h) => a + h + gap, 0) - (nodes.length ? gap : 0);
  return {
    width, height: panelsBottom + bottom, left, right, top, plotW, subtitle, nodes, heights, tops, panelsBottom, t0, t1,
    x: (t: number) => left + ((t - t0) / (t1 - t0)) * plotW,
  };
}

/** The SVG document: one panel per node on a shared time axis, a legend, the marks. */
export function timelineSvg(samples: readonly TimelineSample[], o: TimelineOptions = {}): string {
  const L = layoutOf(samples, o);
  const out = [...header(L, o.title), ...legend(L, o.max)];
  if (!samples.length) {
    out.push(`<text x="${L.left}" y="${L.top + 20}">no samples</text></svg>`);
    return out.join('\n');
  }
  for (const [i, n] of L.nodes.entries()) out.push(...nodePanel(L, samples, n, i, o.max));
  out.push(...markLines(L, o.marks ?? []), ...timeAxis(L), '</svg>');
  return out.join('\n');
}

function header(L: Layout, title: string | undefined): string[] {
  const { width, height, left, subtitle } = L;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="DejaVu Sans, Arial, sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${left}" y="22" font-size="16" font-weight="bold">${esc(title ?? 'PodVNet: IPs per node over time')}</text>`,
    ...subtitle.map((line, k) => `<text x="${left}" y="${height - 8 - (subtitle.length - 1 - k) * 14}" fill="#555" font-size="11">${esc(line)}</text>`),
  ];
}

/** The legend, wrapped to the width. */
function legend(L: Layout, max: number | undefined): string[] {
  const items: Array<{ swatch: (lx: number, ly: number) => string; label: string }> = SERIES.map((s) => ({
    label: s.label,
    swatch: (lx: number, ly: number) => (s.key === 'used' || s.key === 'pending'
      ? `<rect x="${lx}" y="${ly - 9}" width="14" height="10" fill="${s.color}" fill-opacity="0.35" stroke="${s.color}"/>`
      : `<line x1="${lx}" y1="${ly - 4}" x2="${lx + 14}" y2="${ly - 4}" stroke="${s.color}" stroke-width="${s.key === 'allocated' ? 3 : 2}"${s.key === 'target' ? ' stroke-dasharray="5,3"' : ''}/>`),
  }));
  if (max !== undefined) {
    items.push({ label: `ipsPerNode.max (${max})`, swatch: (lx, ly) => `<line x1="${lx}" y1="${ly - 4}" x2="${lx + 14}" y2="${ly - 4}" stroke="#7f7f7f" stroke-width="1.5" stroke-dasharray="2,3"/>` });
  }
  const out: string[] = [];
  let lx = L.left;
  let ly = 45;
  for (const it of items) {
    const w = 18 + it.label.length * 6.6 + 16;
    if (lx + w > L.width - L.right && lx > L.left) { lx = L.left; ly += 17; }
    out.push(it.swatch(lx, ly), `<text x="${lx + 18}" y="${ly}">${esc(it.label)}</text>`);
    lx += w;
  }
  return out;
}

/** One node's panel: grid, its series (areas for used and pending, lines for allocated and target), the limit, its peak in words. */
function nodePanel(L: Layout, samples: readonly TimelineSample[], n: string, i: number, max: number | undefined): string[] {
  const { left, plotW } = L;
  const py = L.tops[i]!;
  const panelH = L.heights[i]!;
  let ymax = max ?? 0;
  for (const s of samples) { const p = s.nodes[n]; if (p) ymax = Math.max(ymax, p.allocated, p.target, p.used + p.pending); }
  const step = niceStep(ymax * 1.1 || 1, Math.max(1, Math.floor(panelH / 36)));
  const yTop = Math.max(step, Math.ceil((ymax * 1.08) / step) * step);
  const y = (v: number) => py + panelH - (v / yTop) * panelH;
  const series = { samples, n, x: L.x, y, t1: L.t1 };
  const out: string[] = [];
  out.push(`<g><title>${esc(n)}</title>`);
  out.push(`<rect x="${left}" y="${py}" width="${plotW}" height="${panelH}" fill="#fafafa" stroke="#cccccc"/>`);
  for (let v = 0; v <= yTop; v += step) {
    out.push(`<line x1="${left}" y1="${f(y(v))}" x2="${left + plotW}" y2="${f(y(v))}" stroke="#e6e6e6"/>`, `<text x="${left - 6}" y="${f(y(v) + 4)}" text-anchor="end" fill="#555">${v}</text>`);
  }
  out.push(`<text x="${left + 6}" y="${py + 16}" font-weight="bold">${esc(n)}</text>`);
  out.push(`<text x="14" y="${f(py + panelH / 2)}" text-anchor="middle" fill="#555" transform="rotate(-90 14 ${f(py + panelH / 2)})">IPs</text>`);
  const c = Object.fromEntries(SERIES.map((s) => [s.key, s.color])) as Record<(typeof SERIES)[number]['key'], string>;
  out.push(`<path d="${areaPath(series, () => 0, (p) => p.used)}" fill="${c.used}" fill-opacity="0.3" stroke="none"/>`);
  out.push(`<path d="${areaPath(series, (p) => p.used, (p) => p.used + p.pending)}" fill="${c.pending}" fill-opacity="0.35" stroke="none"/>`);
  out.push(`<path d="${stepPath(series, (p) => p.used)}" fill="none" stroke="${c.used}" stroke-width="1.5"/>`);
  if (max !== undefined) out.push(`<line x1="${left}" y1="${f(y(max))}" x2="${left + plotW}" y2="${f(y(max))}" stroke="#7f7f7f" stroke-width="1.5" stroke-dasharray="2,3"/>`);
  out.push(`<path d="${stepPath(series, (p) => p.allocated)}" fill="none" stroke="${c.allocated}" stroke-width="3" stroke-opacity="0.85"/>`);
  out.push(`<path d="${stepPath(series, (p) => p.target)}" fill="none" stroke="${c.target}" stroke-width="2" stroke-dasharray="6,4"/>`);
  // the peak, said in words
  const peak = samples.reduce((m, s) => Math.max(m, s.nodes[n]?.allocated ?? 0), 0);
  const last = [...samples].reverse().find((s) => s.nodes[n]);
  out.push(`<text x="${left + plotW - 6}" y="${py + 16}" text-anchor="end" fill="#333">peak ${peak} IPs on the NIC, now ${last ? last.nodes[n]!.allocated : 0}</text>`);
  out.push('</g>');
  return out;
}

/** One node's samples on a panel's scales. */
interface Series { samples: readonly TimelineSample[]; n: string; x: (t: number) => number; y: (v: number) => number; t1: number }

/** A step path: a value holds until the next sample; a sample without the node breaks the line. */
function stepPath({ samples, n, x, y, t1 }: Series, val: (p: NodePoint) => number): string {
  let d = '';
  let prev: number | undefined;
  for (const s of samples) {
    const p = s.nodes[n];
    if (!p) { prev = undefined; continue; }
    const yy = f(y(val(p)));
    d += prev === undefined ? `M${f(x(s.t))},${yy}` : `H${f(x(s.t))}V${yy}`;
    prev = val(p);
  }
  return d + (prev !== undefined ? `H${f(x(t1))}` : '');
}

/** The band between two step lines. */
function areaPath({ samples, n, x, y, t1 }: Series, lo: (p: NodePoint) => number, hi: (p: NodePoint) => number): string {
  const pts = samples.filter((s) => s.nodes[n]);
  if (!pts.length) return '';
  const upper: string[] = [];
  const lower: string[] = [];
  for (const [k, s] of pts.entries()) {
    const p = s.nodes[n]!;
    const xEnd = f(x(pts[k + 1]?.t ?? t1));
    upper.push(`${f(x(s.t))},${f(y(hi(p)))}`, `${xEnd},${f(y(hi(p)))}`);
    lower.push(`${f(x(s.t))},${f(y(lo(p)))}`, `${xEnd},${f(y(lo(p)))}`);
  }
  return `M${upper.join('L')}L${lower.reverse().join('L')}Z`;
}

/** Marks across every panel; labels alternate between two rows so neighbours do not overlap. */
function markLines(L: Layout, marks: readonly TimelineMark[]): string[] {
  const out: string[] = [];
  for (const [k, m] of marks.entries()) {
    const mx = L.x(Math.min(Math.max(m.t, L.t0), L.t1));
    const ly = L.top - 8 - (k % 2) * 13;
    out.push(`<line x1="${f(mx)}" y1="${ly + 2}" x2="${f(mx)}" y2="${L.panelsBottom}" stroke="#444" stroke-width="1" stroke-dasharray="4,4"/>`);
    out.push(`<text x="${f(mx + 3)}" y="${ly}" fill="#222" font-size="11">${esc(m.label)}</text>`);
  }
  return out;
}

function timeAxis(L: Layout): string[] {
  const { t0, t1, panelsBottom } = L;
  const out: string[] = [];
  const span = (t1 - t0) / 1000;
  const tstep = niceStep(span, 8);
  for (let s = 0; s <= span; s += tstep) {
    const tx = f(L.x(t0 + s * 1000));
    out.push(`<line x1="${tx}" y1="${panelsBottom}" x2="${tx}" y2="${panelsBottom + 5}" stroke="#555"/>`, `<text x="${tx}" y="${panelsBottom + 18}" text-anchor="middle" fill="#555">${s}s</text>`);
  }
  out.push(`<text x="${L.left + L.plotW / 2}" y="${panelsBottom + 34}" text-anchor="middle" fill="#555">seconds since the first sample</text>`);
  return out;
}

/** The per-node gauges of the controller's /metrics (podvnet_node_ips{pool,node,state}), as points. */
export function nodePointsFromMetrics(text: string, pool?: string): Record<string, NodePoint> {
  const nodes: Record<string, NodePoint> = {};
  for (const line of text.split('\n')) {
    if (!line.startsWith('podvnet_node_ips{')) continue;
    const m = /^podvnet_node_ips\{([^}]*)\}\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = Object.fromEntries([...m[1]!.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    if (pool !== undefined && labels.pool !== pool) continue;
    const state = labels.state as keyof NodePoint;
    if (!labels.node || !['allocated', 'target', 'used', 'pending'].includes(state)) continue;
    (nodes[labels.node] ??= { allocated: 0, target: 0, used: 0, pending: 0 })[state] = Number(m[2]);
  }
  return nodes;
}

/** Polls a source every `intervalMs` and keeps the samples and marks for timelineSvg. */
export class TimelineSampler {
  readonly samples: TimelineSample[] = [];
  readonly marks: TimelineMark[] = [];
  private timer: NodeJS.Timeout | undefined;
  private busy = false;

  constructor(private readonly source: () => Promise<Record<string, NodePoint>>, private readonly intervalMs = 500) {}

  start(): this {
    const tick = async () => {
      if (this.busy) return;
      this.busy = true;
      try { await this.sample(); } catch { /* a missed sample leaves a gap, not a failure */ } finally { this.busy = false; }
    };
    void tick();
    this.timer = setInterval(() => void tick(), this.intervalMs);
    this.timer.unref();
    return this;
  }

  async sample(): Promise<void> {
    const nodes = await this.source();
    this.samples.push({ t: Date.now(), nodes });
  }

  mark(label: string): void {
    this.marks.push({ t: Date.now(), label });
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.sample().catch(() => undefined);
  }

  svg(o: Omit<TimelineOptions, 'marks'> = {}): string {
    return timelineSvg(this.samples, { ...o, marks: this.marks });
  }
}

/** A source for TimelineSampler: the controller's /metrics at host:port. */
export const controllerMetricsSource = (address: string, pool?: string) => async (): Promise<Record<string, NodePoint>> => {
  const r = await fetch(`http://${address}/metrics`);
  return nodePointsFromMetrics(await r.text(), pool);
};
