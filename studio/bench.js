// The Bench view: throughput and latency of a running bench, second by
// second (a bench started here, or one run with --report-to this studio),
// and a bench --json file opened and plotted.
import { api } from './app.js';
import { escapeHtml } from './live.js';

const $ = (sel) => document.querySelector(sel);
const SVG = 'http://www.w3.org/2000/svg';

export class BenchView {
  constructor(info) {
    this.samples = [];
    this.title = '';
    if (info.mode === 'offline') {
      for (const el of document.querySelectorAll('#bench-run button, #bench-run input, #bench-run select')) el.disabled = true;
    }
    $('#bench-run').addEventListener('submit', async (e) => {
      e.preventDefault();
      const f = new FormData(e.target);
      try {
        await api('/api/bench/start', { preset: f.get('preset'), clients: Number(f.get('clients')), duration: Number(f.get('duration')) });
        this.message('');
      } catch (err) {
        this.message(err.message, true);
      }
    });
    $('#bench-stop').addEventListener('click', () => api('/api/bench/stop', {}).catch((err) => this.message(err.message, true)));
    $('#bench-file').addEventListener('change', (e) => this.openFile(e.target.files[0]));
    this.draw();
  }

  message(text, error = false) {
    const el = $('#bench-message');
    el.hidden = !text;
    el.textContent = text;
    el.classList.toggle('error', error);
  }

  onStarted(b) {
    this.samples = [];
    this.title = `bench --preset ${b.preset} --clients ${b.clients} (pid ${b.pid})`;
    $('#bench-output').hidden = true;
    $('#bench-summary').replaceChildren();
    this.message(`running ${this.title}…`);
    this.draw();
  }

  onSample(m) {
    if (m.sample) {
      if (this.samples.length && m.sample.tS < this.samples[this.samples.length - 1].tS) this.samples = [];
      this.samples.push(m.sample);
      this.title ||= `bench --preset ${m.run?.preset || '?'} --clients ${m.run?.clients ?? '?'} (pid ${m.run?.pid ?? '?'})`;
      this.draw();
    }
    if (m.done) this.message(`${this.title}: done`);
  }

  onDone(d) {
    this.message(`${this.title}: ${d.code === 0 ? 'finished' : `ended with code ${d.code}`}`, d.code !== 0);
    const out = $('#bench-output');
    out.hidden = false;
    out.textContent = d.output;
  }

  async openFile(file) {
    if (!file) return;
    try {
      const text = await file.text();
      const r = await api(`/api/bench/file?name=${encodeURIComponent(file.name)}`, text);
      this.samples = r.samples;
      this.title = `${file.name}: ${r.system}${r.preset ? ` --preset ${r.preset}` : ''}${r.clients ? ` --clients ${r.clients}` : ''}`;
      this.message(`${this.title}: ${Math.round(r.committedPerS)} committed/s over ${r.elapsedS.toFixed(1)} s${r.samples.length ? '' : ' (an older report: no per-second samples)'}`);
      this.summary(r);
      this.draw();
    } catch (err) {
      this.message(err.message, true);
    }
  }

  summary(r) {
    const cols = ['mean', 'p50', 'p90', 'p99', 'p999', 'max'];
    const rows = Object.entries(r.latencyMs)
      .map(([kind, l]) => `<tr><td>${escapeHtml(kind)}</td>${cols.map((c) => `<td>${l[c] !== undefined ? l[c].toFixed(2) : ''}</td>`).join('')}</tr>`)
      .join('');
    $('#bench-summary').innerHTML = `<table class="summary"><tr><th>latency (ms)</th>${cols.map((c) => `<th>${c}</th>`).join('')}</tr>${rows}</table>`;
  }

  draw() {
    const s = this.samples;
    plot($('#plot-throughput'), [{ name: 'committed/s', color: '#2f7d4f', points: s.map((x) => [x.tS, x.committedPerS]) }], 's');
    plot(
      $('#plot-latency'),
      [
        { name: 'p50', color: '#2b6cb0', points: s.map((x) => [x.tS, x.p50Ms]) },
        { name: 'p99', color: '#e4572e', points: s.map((x) => [x.tS, x.p99Ms]) },
      ],
      's',
    );
  }
}

/** A small line plot: axes from 0, ticks, one polyline per series, a legend. */
export function plot(svg, series, xUnit) {
  svg.replaceChildren();
  const w = svg.clientWidth || 560;
  const h = svg.clientHeight || 260;
  const m = { l: 52, r: 12, t: 20, b: 26 };
  const all = series.flatMap((s) => s.points);
  const xMax = Math.max(1, ...all.map((p) => p[0]));
  const yMax = niceMax(Math.max(1, ...all.map((p) => p[1])));
  const X = (x) => m.l + ((w - m.l - m.r) * x) / xMax;
  const Y = (y) => h - m.b - ((h - m.t - m.b) * y) / yMax;
  const el = (tag, attrs, text) => {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = text;
    svg.append(e);
    return e;
  };
  el('g', { class: 'axis' });
  for (let i = 0; i <= 4; i++) {
    const y = (yMax * i) / 4;
    el('line', { x1: m.l, x2: w - m.r, y1: Y(y), y2: Y(y), stroke: '#e3e8ee' });
    el('text', { x: m.l - 6, y: Y(y) + 3, 'text-anchor': 'end', class: 'tick', 'font-size': 10, fill: '#6b7785' }, fmt(y));
  }
  for (let i = 0; i <= 5; i++) {
    const x = (xMax * i) / 5;
    el('text', { x: X(x), y: h - 8, 'text-anchor': 'middle', 'font-size': 10, fill: '#6b7785' }, `${fmt(x)} ${xUnit}`);
  }
  el('line', { x1: m.l, x2: m.l, y1: m.t, y2: h - m.b, stroke: '#9aa7b6' });
  el('line', { x1: m.l, x2: w - m.r, y1: h - m.b, y2: h - m.b, stroke: '#9aa7b6' });
  if (all.length === 0) el('text', { x: w / 2, y: h / 2, 'text-anchor': 'middle', fill: '#6b7785', 'font-size': 12 }, 'no samples yet: run a bench, or open a bench --json file');
  series.forEach((s, i) => {
    if (s.points.length) el('polyline', { class: 'series', stroke: s.color, fill: 'none', 'stroke-width': 2, points: s.points.map(([x, y]) => `${X(x)},${Y(y)}`).join(' ') });
    el('rect', { x: m.l + 10 + i * 90, y: 6, width: 12, height: 3, fill: s.color });
    el('text', { x: m.l + 26 + i * 90, y: 11, 'font-size': 11 }, s.name);
  });
}

function niceMax(v) {
  const p = 10 ** Math.floor(Math.log10(v));
  for (const k of [1, 2, 2.5, 5, 10]) if (k * p >= v) return k * p;
  return 10 * p;
}

function fmt(v) {
  return v >= 1000 ? `${(v / 1000).toFixed(v >= 10000 ? 0 : 1)}k` : v >= 10 ? v.toFixed(0) : v.toFixed(1);
}
