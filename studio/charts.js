// The charts on the page: each machine's SVG (drawn and laid out by the
// server from the machine's own definition), copied wherever a chart is
// shown, lit by toggling classes on its states and flashed on its arrows.

let charts = null;
let copies = 0;

/** The charts, fetched once: [{ id, about, perTransaction, svg, states, edges }]. */
export async function loadCharts() {
  if (!charts) {
    const res = await fetch('/api/charts');
    charts = await res.json();
  }
  return charts;
}

export function chartById(id) {
  return charts.find((c) => c.id === id);
}

/** A fresh copy of a chart's SVG in a card: { card, svg, setLit, flash, badges, note }. */
export function chartCard(id, title) {
  const chart = chartById(id);
  const card = document.createElement('div');
  card.className = 'chart-card';
  card.dataset.machine = id;
  const head = document.createElement('h3');
  head.innerHTML = `<span>${title ?? id}</span><span class="now"></span>`;
  card.append(head);
  // Marker ids must be unique in the document: a copy in a hidden view would otherwise hide the arrowheads.
  const n = ++copies;
  const holder = document.createElement('div');
  holder.innerHTML = chart.svg.replaceAll(`arrow-${id}`, `arrow-${id}-${n}`);
  const svg = holder.querySelector('svg');
  card.append(svg);
  const history = document.createElement('p');
  history.className = 'history';
  card.append(history);
  const states = new Map([...svg.querySelectorAll('.state')].map((g) => [g.dataset.state, g]));
  let lit = [];
  const steps = [];
  return {
    card,
    svg,
    /** Lights exactly these state ids; notes the change in the card's history line. */
    setLit(ids, why = '', { quiet = false } = {}) {
      const key = ids.join('|');
      if (key === lit.join('|')) return;
      lit = ids;
      card.dataset.lit = ids.join(' ');
      for (const [sid, g] of states) g.classList.toggle('lit', ids.includes(sid));
      const leaf = shortState(id, ids);
      head.querySelector('.now').textContent = leaf;
      if (leaf && !quiet) {
        steps.push(why ? `${why} → ${leaf}` : leaf);
        if (steps.length > 6) steps.shift();
        history.textContent = steps.join('  ·  ');
        card.dataset.history = steps.join('|');
      }
    },
    /** Flashes arrows by id, or the line of a step inside a state (its event). */
    flash(edgeIds, internalEvent) {
      const hit = [];
      for (const e of edgeIds) {
        const g = svg.querySelector(`.edge[data-edge="${e}"]`);
        if (g) hit.push(g);
      }
      if (internalEvent) {
        for (const sid of lit) {
          const g = states.get(sid);
          g?.querySelectorAll(`.line[data-event="${CSS.escape(internalEvent)}"]`).forEach((l) => hit.push(l));
        }
      }
      // A flash still on is extended, not restarted: restarting would force a layout per arrow.
      for (const el of hit) {
        el.classList.add('flash');
        clearTimeout(el._flash);
        el._flash = setTimeout(() => el.classList.remove('flash'), 700);
      }
    },
    /** Count badges (many transactions at once): { stateId: n }. */
    badges(counts) {
      const key = JSON.stringify(counts);
      if (key === this._badges) return;
      this._badges = key;
      svg.querySelectorAll('.badge').forEach((b) => b.remove());
      for (const [sid, count] of Object.entries(counts)) {
        const g = states.get(sid);
        const rect = g?.querySelector('rect');
        if (!rect || !count) continue;
        const t = document.createElementNS('http://www.w3.org/2000/svg', 'text');
        t.setAttribute('class', 'badge');
        t.setAttribute('x', String(Number(rect.getAttribute('x')) + Number(rect.getAttribute('width')) - 8));
        t.setAttribute('y', String(Number(rect.getAttribute('y')) + 15));
        t.setAttribute('text-anchor', 'end');
        t.textContent = `×${count}`;
        g.append(t);
      }
    },
    note(text) {
      if (history.textContent !== text) history.textContent = text;
    },
  };
}

/** The deepest active state, without the machine's name: `leading.quiet`. */
export function shortState(machine, ids) {
  const deepest = ids.reduce((a, b) => (b.length > a.length ? b : a), '');
  return deepest.startsWith(`${machine}.`) ? deepest.slice(machine.length + 1) : '';
}

/** The Charts view: one machine at a time, full size. */
export function showChartsView(list, show) {
  list.replaceChildren();
  const pick = (id) => {
    for (const b of list.querySelectorAll('button')) b.classList.toggle('on', b.dataset.machine === id);
    const c = chartById(id);
    show.innerHTML = `<h2>${id}</h2><p class="muted">${c.about}: ${c.states.length} states, ${c.edges.filter((e) => e.event).length} transitions drawn</p>`;
    const holder = document.createElement('div');
    holder.innerHTML = c.svg;
    show.append(holder.firstElementChild);
  };
  for (const c of charts) {
    const b = document.createElement('button');
    b.dataset.machine = c.id;
    b.innerHTML = `<strong>${c.id}</strong><small>${c.about}</small>`;
    b.addEventListener('click', () => pick(c.id));
    list.append(b);
  }
  pick(charts[0].id);
}
