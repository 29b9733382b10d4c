// The Live view: one column per node (role, ballot, commit and execute
// points, locks, 2PC transactions), the messages seen passing between nodes,
// and the open node's charts with the current state of each actor lit and
// transitions flashing as they happen.
import { api } from './app.js';
import { chartById, chartCard, loadCharts } from './charts.js';

const $ = (sel) => document.querySelector(sel);
const SVG = 'http://www.w3.org/2000/svg';
/** The fixed actors, in the order a node's hierarchy reads. */
const FIXED = ['election', 'acceptor', 'proposer', 'executor', 'lockManager', 'node', 'transactions'];
const PER_TX = ['coordinator', 'participant'];
/** The order the open node's charts are shown in: the busiest first. */
const SHOWN = ['election', 'proposer', 'coordinator', 'participant', 'lockManager', 'acceptor', 'executor', 'node', 'transactions'];
const MSG_Y = 72;

export class LiveView {
  constructor(info) {
    this.info = info;
    this.visible = false;
    this.nodes = new Map();
    this.selected = info.nodes[0] ?? 'n1';
    this.cards = new Map();
    this.columns = new Map();
    this.recentTx = [];
    this.enabled = info.mode !== 'offline';
    this.buildControls();
    this.buildCluster();
    this.buildMessages();
    this.openNode(this.selected);
  }

  setVisible(on) {
    this.visible = on;
    if (this.enabled) this.tellWatch({ looking: on });
  }

  notice(text, error = false) {
    const el = $('#live-notice');
    el.hidden = !text;
    el.textContent = text;
    el.classList.toggle('error', error);
  }

  tellWatch(w) {
    api('/api/live/watch', w).catch((err) => this.notice(err.message, true));
  }

  // ---------------------------------------------------------------- operations

  buildControls() {
    const sel = $('#op-node select');
    for (const n of this.info.nodes) sel.add(new Option(n, n));
    if (!this.enabled) {
      for (const el of document.querySelectorAll('#live-ops button, #live-ops input, #live-ops select')) el.disabled = true;
      this.notice('no cluster: start the studio without --offline (or with --connect) to see one live');
      return;
    }
    const run = async (what, body) => {
      const li = document.createElement('li');
      li.textContent = `${what}…`;
      $('#outcomes').prepend(li);
      try {
        const r = await api(`/api/live/${what}`, body);
        li.textContent = r.outcome;
      } catch (err) {
        li.textContent = `${what}: ${err.message}`;
        li.classList.add('error');
      }
    };
    $('#op-transfer').addEventListener('submit', (e) => {
      e.preventDefault();
      const f = new FormData(e.target);
      run('transfer', { sender: f.get('sender'), receiver: f.get('receiver'), amount: f.get('amount') });
    });
    $('#op-read').addEventListener('submit', (e) => {
      e.preventDefault();
      run('read', { item: new FormData(e.target).get('item') });
    });
    $('#op-node').addEventListener('submit', (e) => {
      e.preventDefault();
      run(e.submitter.value, { node: new FormData(e.target).get('node') });
    });
    $('#op-reshard').addEventListener('click', () => run('reshard', {}));
    $('#watch-mode').addEventListener('change', (e) => this.tellWatch({ mode: e.target.value }));
  }

  // ---------------------------------------------------------------- cluster columns

  buildCluster() {
    const box = $('#cluster');
    this.info.clusters.forEach((members, i) => {
      const shard = document.createElement('div');
      shard.className = 'shard';
      shard.innerHTML = `<h4>cluster ${i + 1}</h4>`;
      for (const n of members) {
        const col = document.createElement('div');
        col.className = 'node-col';
        col.dataset.node = n;
        col.innerHTML = `<h5>${n} <span class="role">?</span></h5><dl></dl><ul class="txs"></ul>`;
        col.addEventListener('click', () => this.openNode(n));
        shard.append(col);
        this.columns.set(n, col);
      }
      box.append(shard);
    });
  }

  renderColumn(n) {
    const col = this.columns.get(`n${n.node}`);
    if (!col) return;
    const s = n.status;
    const role = col.querySelector('.role');
    const down = !n.reachable;
    col.classList.toggle('down', down);
    const word = down ? 'down' : s?.failed ? 'failed' : s?.role || '?';
    role.textContent = word;
    role.className = `role ${word}`;
    // An actor that took no step since watching began has not told its state: a dash.
    const a = (m) => (n.watched ? leafOf(n.actors[m]) || '—' : leafOf(n.actors[m]) || '?');
    const rows = down
      ? [['why', n.error || 'no answer']]
      : [
          ['ballot', s?.ballot ?? ''],
          ['leader', s?.leader ? `n${s.leader}` : '—'],
          ['commit', s?.commitThrough ?? ''],
          ['executed', s?.executedThrough ?? ''],
          ['locks', a('lockManager')],
          ['WAL', s?.walEntries ?? 0],
          ['proposer', a('proposer').replace(/^leading\./, '')],
          ['unacked', s?.unacked ?? 0],
        ];
    const txs = Object.values(n.txs).filter((t) => t.endedAt === undefined);
    let list = !n.watched ? `<li class="stale">not streaming${txs.length ? ' (last seen)' : ''}</li>` : txs.length === 0 ? '<li class="stale">no 2PC in flight</li>' : '';
    for (const t of txs.slice(0, 6)) list += `<li>${t.machine === 'coordinator' ? 'C' : 'P'} ${escapeHtml(t.actor.slice(2))} ${escapeHtml(leafOf(t))}</li>`;
    if (txs.length > 6) list += `<li>+${txs.length - 6} more</li>`;
    // Only what changed is written: the page repaints nothing for a column that says the same.
    setHtml(col.querySelector('dl'), rows.map(([k, v]) => `<dt>${k}</dt><dd>${escapeHtml(String(v))}</dd>`).join(''));
    setHtml(col.querySelector('.txs'), list);
    col.classList.toggle('selected', col.dataset.node === this.selected);
  }

  // ---------------------------------------------------------------- messages

  buildMessages() {
    const svg = $('#messages');
    this.msgPos = new Map();
    const nodes = this.info.nodes;
    const width = svg.clientWidth || 1200;
    svg.innerHTML = '<defs><marker id="msg-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" markerHeight="6" orient="auto-start-reverse"><path d="M0 0 L10 5 L0 10 z" fill="#2b6cb0"/></marker></defs>';
    nodes.forEach((n, i) => {
      const x = ((i + 0.5) * width) / nodes.length;
      this.msgPos.set(Number(n.slice(1)), x);
      const g = document.createElementNS(SVG, 'g');
      g.setAttribute('class', 'node');
      g.innerHTML = `<circle cx="${x}" cy="${MSG_Y}" r="13"></circle><text x="${x}" y="${MSG_Y}">${n}</text>`;
      svg.append(g);
    });
  }

  /**
   * One arc per pair of nodes that exchanged messages (above going right,
   * below going left), labelled with the kinds of the last batch; it fades
   * unless more pass, and is reused, never stacked.
   */
  drawMessages(messages) {
    const svg = $('#messages');
    this.arcs ??= new Map();
    const pairs = new Map();
    for (const m of messages) {
      const key = `${m.from}>${m.to}`;
      const p = pairs.get(key) ?? { from: m.from, to: m.to, kinds: [] };
      p.kinds.push(m);
      pairs.set(key, p);
    }
    for (const [key, p] of pairs) {
      const x1 = this.msgPos.get(p.from);
      const x2 = this.msgPos.get(p.to);
      if (x1 === undefined || x2 === undefined) continue;
      let arc = this.arcs.get(key);
      if (!arc) {
        const dir = x2 > x1 ? -1 : 1;
        const lift = 12 + Math.min(34, Math.abs(x2 - x1) / 12);
        const y0 = MSG_Y + dir * 13;
        const mid = (x1 + x2) / 2;
        arc = document.createElementNS(SVG, 'g');
        arc.setAttribute('class', 'msg');
        arc.dataset.pair = key;
        arc.innerHTML = `<path d="M${x1} ${y0} Q${mid} ${y0 + dir * 2 * lift} ${x2} ${y0}" marker-end="url(#msg-arrow)"></path><text x="${mid}" y="${y0 + dir * lift + (dir < 0 ? -2 : 9)}"></text>`;
        svg.append(arc);
        this.arcs.set(key, arc);
      }
      // The busiest kinds name the arc; heartbeats only when nothing else passed.
      const kinds = p.kinds.filter((k) => !['heartbeat', 'contact'].includes(k.kind)).sort((a, b) => b.count - a.count);
      const label = kinds.slice(0, 2).map((k) => (k.count > 1 ? `${k.kind}×${k.count}` : k.kind)).join(', ') + (kinds.length > 2 ? ', …' : '');
      const text = arc.querySelector('text');
      if (text.textContent !== label) text.textContent = label;
      arc.dataset.age = '0';
    }
    // An arc fades by steps, once per batch, instead of an animation that would repaint every frame.
    for (const [key, arc] of this.arcs) {
      const age = Number(arc.dataset.age ?? 0);
      if (!pairs.has(key)) arc.dataset.age = String(age + 1);
      const opacity = String(Math.max(0, 1 - 0.2 * Math.max(0, age - 2)));
      if (arc.style.opacity !== opacity) arc.style.opacity = opacity;
    }
  }

  // ---------------------------------------------------------------- the open node

  async openNode(name) {
    await loadCharts();
    this.selected = name;
    for (const col of this.columns.values()) col.classList.toggle('selected', col.dataset.node === name);
    $('#node-title').textContent = `${name}'s actors`;
    const grid = $('#node-charts');
    grid.replaceChildren();
    this.cards.clear();
    for (const m of SHOWN) {
      const c = chartCard(m, `${m}${PER_TX.includes(m) ? ' (per transaction)' : ''}`);
      grid.append(c.card);
      this.cards.set(m, c);
    }
    if (this.enabled) this.tellWatch({ selected: name });
    const n = this.nodes.get(Number(name.slice(1)));
    if (n) this.lightNode(n);
  }

  lightNode(n) {
    for (const m of FIXED) {
      const view = n.actors[m];
      this.cards.get(m)?.setLit(view?.lit ?? [], view ? '' : '');
    }
    for (const m of PER_TX) {
      const card = this.cards.get(m);
      const mine = Object.values(n.txs).filter((t) => t.machine === m && t.lit.length > 1);
      const running = mine.filter((t) => t.endedAt === undefined);
      const ended = mine.filter((t) => t.endedAt !== undefined).sort((a, b) => a.endedAt - b.endedAt);
      const counts = {};
      for (const t of running) for (const id of t.lit) if (id !== m) counts[id] = (counts[id] ?? 0) + 1;
      // The states of the transactions in flight; with none, how the last one ended.
      const lit = running.length ? [...new Set(running.flatMap((t) => t.lit))] : (ended.at(-1)?.lit ?? []);
      if (lit.length) card.setLit(lit, '', { quiet: true });
      card.badges(counts);
      const summary = Object.entries(counts).map(([id, k]) => `${id.slice(m.length + 1)} ×${k}`).join(', ');
      card.note(running.length ? `${running.length} in flight: ${summary}` : ended.length ? `none in flight; the last ended ${leafOf(ended.at(-1))}` : 'none in flight');
    }
  }

  onBatch(batch) {
    for (const n of batch.nodes) {
      this.nodes.set(n.node, n);
      this.renderColumn(n);
    }
    this.watch = batch.watch;
    $('#watch-mode').value = batch.watch.mode;
    if (this.enabled) {
      const w = batch.watch;
      const el = $('#live-notice');
      if (w.sampled) this.notice(`busy cluster: to keep watching cheap, n${w.sampled}'s actors are sampled (a quarter second every few seconds) and the other columns show status only; choose "every node" to stream them all`);
      else if (!el.classList.contains('error') && el.textContent.startsWith('busy')) this.notice('');
    }
    if (!this.visible) return;
    const open = this.nodes.get(Number(this.selected.slice(1)));
    for (const f of batch.fired) {
      if (`n${f.node}` !== this.selected) continue;
      const card = this.cards.get(f.machine);
      if (!card) continue;
      if (f.edges.length === 0) {
        card.flash([], f.event);
        continue;
      }
      card.flash(f.edges, null);
      // Each state the actor passed through in this batch, with the event that moved it (the card's history line).
      if (!PER_TX.includes(f.machine)) card.setLit(f.lit, f.event);
    }
    if (open) this.lightNode(open);
    this.drawMessages(batch.messages);
  }
}

/** Writes HTML only when it differs from what the element holds. */
function setHtml(el, html) {
  if (el._html === html) return;
  el._html = html;
  el.innerHTML = html;
}

function leafOf(view) {
  if (!view || view.value === null || view.value === undefined) return '';
  const v = view.value;
  if (typeof v === 'string') return v;
  const parts = [];
  const walk = (x) => {
    if (typeof x === 'string') parts.push(x);
    else if (x && typeof x === 'object') for (const [k, sub] of Object.entries(x)) (parts.push(k), walk(sub));
  };
  walk(v);
  return parts.join('.');
}

export function escapeHtml(s) {
  return s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);
}

export { chartById };
