// The Replay view: a node's event log stepped with a slider and the arrow
// keys. At each step the charts light the state the node was in, and the
// replica state and the timeline around the step sit beside them. Two logs
// (A and B) side by side, with their first divergence marked.
import { api } from './app.js';
import { chartCard, loadCharts } from './charts.js';
import { escapeHtml } from './live.js';

const $ = (sel) => document.querySelector(sel);
const MACHINES = ['election', 'acceptor', 'proposer', 'executor', 'lockManager', 'node', 'coordinator', 'participant'];

class Pane {
  constructor(el, name, view) {
    this.el = el;
    this.name = name;
    this.view = view;
    this.log = null;
    this.step = 0;
    this.pending = null;
    this.cards = new Map();
    el.innerHTML = `
      <form class="open"><strong>${name}</strong>
        <input name="path" placeholder="a node's log directory, e.g. data/n8" aria-label="log ${name}">
        <button type="submit">Open</button></form>
      <div class="content" hidden>
        <div class="head muted"></div>
        <input type="range" class="slider" min="0" value="0" aria-label="step ${name}">
        <div class="marks"></div>
        <div class="nav">
          <button type="button" data-go="-100">⟪</button><button type="button" data-go="-1">◀</button>
          <span class="pos"></span>
          <button type="button" data-go="1">▶</button><button type="button" data-go="100">⟫</button>
          <form class="find"><select name="what" aria-label="find what ${name}"><option value="tx">transaction</option><option value="item">item</option><option value="seq">seq</option><option value="index">log index</option></select>
            <input name="value" size="14" placeholder="client/3:17, 4001, 7, #17" aria-label="find ${name}"><button type="submit">Jump</button></form>
        </div>
        <div class="step-line"></div>
        <div class="body">
          <div class="chart-grid"></div>
          <div class="side"><div class="timeline"></div><pre class="replica"></pre></div>
        </div>
      </div>`;
    el.querySelector('.open').addEventListener('submit', (e) => {
      e.preventDefault();
      this.open(new FormData(e.target).get('path'));
    });
    this.slider = el.querySelector('.slider');
    this.slider.addEventListener('input', () => this.go(Number(this.slider.value)));
    for (const b of el.querySelectorAll('[data-go]')) b.addEventListener('click', () => this.go(this.step + Number(b.dataset.go)));
    el.querySelector('.find').addEventListener('submit', (e) => {
      e.preventDefault();
      const f = new FormData(e.target);
      this.find(f.get('what'), f.get('value'));
    });
    el.addEventListener('pointerdown', () => view.activate(this));
  }

  async open(path) {
    try {
      await loadCharts();
      const r = await api('/api/replay/open', { path });
      this.log = r;
      this.el.querySelector('.open input').value = r.path;
      this.el.querySelector('.content').hidden = false;
      this.el.querySelector('.head').textContent = `${r.label}: ${r.count} events (${r.path})`;
      this.slider.max = String(r.count - 1);
      this.buildCharts();
      this.drawMarks([]);
      this.view.message('');
      this.view.activate(this);
      this.show(r.view);
      this.view.opened();
    } catch (err) {
      this.view.message(`${this.name}: ${err.message}`, true);
    }
  }

  buildCharts() {
    const grid = this.el.querySelector('.chart-grid');
    grid.replaceChildren();
    this.cards.clear();
    for (const m of MACHINES) {
      const c = chartCard(m);
      grid.append(c.card);
      this.cards.set(m, c);
    }
  }

  drawMarks(extra) {
    const box = this.el.querySelector('.marks');
    box.replaceChildren();
    const max = Math.max(1, this.log.count - 1);
    const add = (step, cls, title) => {
      const s = document.createElement('span');
      s.className = cls;
      s.style.left = `${(100 * step) / max}%`;
      s.title = title;
      s.addEventListener('click', () => this.go(step));
      box.append(s);
    };
    for (const step of this.log.marks.flushes) add(step, 'flush', `#${step}: a set starts`);
    for (const m of this.log.marks.roles) add(m.step, `role-${m.text}`, `step ${m.step}: ${m.text}`);
    for (const m of extra) add(m.step, m.cls, m.title);
  }

  /** Moves to a step; rapid moves (a dragged slider) ask the server for the last one only. */
  go(step) {
    if (!this.log) return;
    this.step = Math.max(0, Math.min(this.log.count - 1, step));
    this.slider.value = String(this.step);
    if (this.pending) return;
    this.pending = (async () => {
      let asked;
      do {
        asked = this.step;
        try {
          this.show(await api(`/api/replay/${this.log.id}/step?i=${asked}`));
        } catch (err) {
          this.view.message(err.message, true);
        }
      } while (asked !== this.step);
      this.pending = null;
    })();
  }

  async find(what, value) {
    try {
      const r = await api(`/api/replay/${this.log.id}/find?what=${encodeURIComponent(what)}&value=${encodeURIComponent(value)}&from=${this.step}`);
      this.go(r.step);
      this.view.message('');
    } catch (err) {
      this.view.message(`${this.name}: ${err.message}`, true);
    }
  }

  show(v) {
    this.step = v.step;
    this.slider.value = String(v.step);
    this.el.dataset.step = String(v.step);
    this.el.querySelector('.pos').textContent = `step ${v.step + 1} / ${v.count} (#${v.index})`;
    this.el.querySelector('.step-line').textContent = v.line;
    for (const m of MACHINES.slice(0, 6)) this.cards.get(m).setLit(v.lit[m] ?? []);
    for (const role of ['coordinator', 'participant']) {
      const card = this.cards.get(role);
      const mine = v.txs.filter((t) => t.role === role);
      const running = mine.filter((t) => t.active);
      const last = mine[mine.length - 1];
      const counts = {};
      for (const t of running) counts[`${role}.${t.state}`] = (counts[`${role}.${t.state}`] ?? 0) + 1;
      // Light the states of the transactions in flight; with none, the last one's final state.
      const lit = running.length ? [...new Set(running.flatMap((t) => t.lit))] : last ? last.lit : [];
      card.setLit(lit);
      card.badges(counts);
      card.note(last ? `${running.length} in flight; last: ${last.txid} ${last.phase}${last.why ? ` (${last.why})` : ''}` : 'no cross-shard transaction yet');
    }
    const tl = this.el.querySelector('.timeline');
    tl.replaceChildren();
    for (const t of v.timeline) {
      const d = document.createElement('div');
      d.textContent = t.line;
      if (t.step === v.step) d.className = 'now';
      d.addEventListener('click', () => this.go(t.step));
      tl.append(d);
    }
    // Keep the current line in the middle of the timeline box (scrolling only the box, not the page).
    const now = tl.querySelector('.now');
    if (now) tl.scrollTop = now.offsetTop - tl.offsetTop - tl.clientHeight / 2;
    this.el.querySelector(".replica").textContent = stateText(v.state);
  }
}

function stateText(s) {
  const lines = [
    `set ${s.set}, leader at start ${s.initialLeader}`,
    `promised     <${s.promised.round}, n${s.promised.node}>`,
    `commit point ${s.commitThrough}`,
    `executed     ${s.executedThrough}`,
    `log          ${s.logEntries} entries, ${s.committedEntries} committed, max seq ${s.maxSeq}`,
    `failed       ${s.failed ? 'yes' : 'no'}`,
    `balances touched (${Object.keys(s.balances).length}):`,
    ...Object.entries(s.balances).slice(0, 40).map(([k, b]) => `  ${k} = ${b}`),
    `WAL (${s.wal.length}):`,
    ...s.wal.map((w) => `  ${w.txid} seq ${w.seq} ${w.role} ${w.command}`),
    `locks (${Object.keys(s.locks).length}):`,
    ...Object.entries(s.locks).map(([k, t]) => `  ${k} held by ${t}`),
    `unacked (${s.unacked.length}):`,
    ...s.unacked.map((u) => `  ${u.txid} ${u.commit ? 'commit' : 'abort'}`),
  ];
  return lines.join('\n');
}

export class ReplayView {
  constructor() {
    this.panes = [...document.querySelectorAll('.pane')].map((el) => new Pane(el, el.dataset.pane, this));
    this.active = this.panes[0];
    this.visible = false;
    $('#replay-list').addEventListener('submit', (e) => {
      e.preventDefault();
      this.list(new FormData(e.target).get('dir'));
    });
    $('#replay-diff').addEventListener('click', () => this.diff());
    document.addEventListener('keydown', (e) => {
      if (!this.visible || e.target.closest?.('input:not([type=range]), select')) return;
      const by = e.shiftKey ? 10 : 1;
      if (e.key === 'ArrowRight') this.active.go(this.active.step + by);
      else if (e.key === 'ArrowLeft') this.active.go(this.active.step - by);
      else return;
      e.preventDefault();
    });
  }

  setVisible(on) {
    this.visible = on;
  }

  activate(pane) {
    this.active = pane;
    for (const p of this.panes) p.el.classList.toggle('active', p === pane);
  }

  opened() {
    const both = this.panes.every((p) => p.log);
    $('#replay-diff').disabled = !both;
    document.querySelector('.panes').classList.toggle('two', this.panes[1].log !== null);
  }

  message(text, error = false) {
    const el = $('#replay-message');
    el.hidden = !text;
    el.textContent = text;
    el.classList.toggle('error', error);
  }

  /** The node logs in a folder, as buttons that open one into A or B. */
  async list(dir) {
    const box = $('#replay-logs');
    box.replaceChildren();
    try {
      const r = await api(`/api/replay/list?dir=${encodeURIComponent(dir)}`);
      if (r.logs.length === 0) throw new Error(`${dir}: no node logs (n1, n2, … with a LevelDB log) in this folder`);
      this.message('');
      for (const l of r.logs) {
        for (const pane of this.panes) {
          const b = document.createElement('button');
          b.textContent = `${l.name} → ${pane.name}`;
          b.addEventListener('click', () => pane.open(l.path));
          box.append(b);
        }
      }
    } catch (err) {
      this.message(err.message, true);
    }
  }

  async diff() {
    const [a, b] = this.panes;
    const out = $('#diff-out');
    try {
      const r = await api('/api/replay/diff', { a: a.log.id, b: b.log.id });
      out.hidden = false;
      out.textContent = r.lines.join('\n');
      out.classList.toggle('same', !r.diverged);
      const title = r.diverged ? 'first divergence' : 'where the shorter log ends';
      a.drawMarks([{ step: r.stepA, cls: 'diverge', title }]);
      b.drawMarks([{ step: r.stepB, cls: 'diverge', title }]);
      a.go(r.stepA);
      b.go(r.stepB);
    } catch (err) {
      this.message(err.message, true);
    }
  }
}

export { escapeHtml };
