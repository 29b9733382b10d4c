// The studio page: four views (Charts, Live, Replay, Bench) over one
// Server-Sent Events stream from the studio server.
import { loadCharts, showChartsView } from './charts.js';
import { LiveView } from './live.js';
import { ReplayView } from './replay.js';
import { BenchView } from './bench.js';

const $ = (sel) => document.querySelector(sel);

/** Calls the server; resolves with its JSON, rejects with its one-line error. */
export async function api(path, body) {
  const init = body === undefined ? {} : { method: 'POST', headers: { 'content-type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body) };
  let res;
  try {
    res = await fetch(path, init);
  } catch (err) {
    throw new Error(`the studio server does not answer (${err.message})`);
  }
  const data = await res.json().catch(() => ({ error: `${res.status} ${res.statusText}` }));
  if (!res.ok || data.error) throw new Error(data.error ?? `${res.status} ${res.statusText}`);
  return data;
}

async function main() {
  const [info] = await Promise.all([api('/api/info'), loadCharts()]);
  $('#mode').textContent =
    info.mode === 'offline' ? 'no cluster (--offline): charts, replay, bench files' : `${info.mode === 'local' ? 'local cluster' : 'connected to'} ${info.nodes.length} nodes in ${info.clusters.length} clusters`;
  showChartsView($('#chart-list'), $('#chart-show'));
  const live = new LiveView(info);
  const replay = new ReplayView();
  const bench = new BenchView(info);
  const views = { charts: null, live, replay, bench };

  const events = new EventSource('/api/events');
  events.addEventListener('live', (e) => live.onBatch(JSON.parse(e.data)));
  events.addEventListener('bench', (e) => bench.onSample(JSON.parse(e.data)));
  events.addEventListener('benchStarted', (e) => bench.onStarted(JSON.parse(e.data)));
  events.addEventListener('benchDone', (e) => bench.onDone(JSON.parse(e.data)));
  events.addEventListener('error', () => live.notice('the studio server stopped answering; reconnecting…'));
  events.addEventListener('open', () => live.notice(''));

  const show = (name) => {
    for (const b of document.querySelectorAll('#tabs button')) b.classList.toggle('on', b.dataset.view === name);
    for (const v of document.querySelectorAll('.view')) v.hidden = v.id !== `view-${name}`;
    for (const [k, v] of Object.entries(views)) v?.setVisible?.(k === name);
    history.replaceState(null, '', `#${name}`);
  };
  for (const b of document.querySelectorAll('#tabs button')) b.addEventListener('click', () => show(b.dataset.view));
  const first = location.hash.slice(1);
  show(views[first] !== undefined ? first : info.mode === 'offline' ? 'charts' : 'live');
  document.body.dataset.ready = 'true';
  window.studio = { live, replay, bench, show };
}

main().catch((err) => {
  document.body.insertAdjacentHTML('afterbegin', `<div class="notice error">the studio could not start: ${err.message}</div>`);
});
