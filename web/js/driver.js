// The driver page: live free connectors and a wait estimate per station, along a highway in
// the order a driver meets them, or for one service area. Reads the public endpoint (no token)
// every few seconds; polling rather than a stream because a crowd of phones polling a short,
// cacheable answer costs the server less than holding a connection open for each of them, and
// it survives flaky mobile networks and proxies without any reconnect logic.

import { el, nameLines, directionLabel, directionArrow, compareHighways, travelOrder, formatDuration } from './names.js';

const POLL_MS = 5000;
const CITY = '__city__';
const $ = (id) => document.getElementById(id);

let stations = [];
let lastOk = 0;
let prefs = readPrefs();

function readPrefs() {
  const q = new URLSearchParams(location.search);
  let saved = {};
  try { saved = JSON.parse(localStorage.getItem('chargeops.driver') || '{}'); } catch { /* ignore */ }
  return {
    tab: q.get('area') != null ? 'area' : (saved.tab || 'road'),
    highway: q.get('highway') || saved.highway || '',
    dir: q.get('dir') || saved.dir || '',
    area: q.get('area') || '',
  };
}

function savePrefs() {
  try { localStorage.setItem('chargeops.driver', JSON.stringify({ tab: prefs.tab, highway: prefs.highway, dir: prefs.dir })); } catch { /* private mode */ }
  const q = new URLSearchParams();
  if (prefs.tab === 'road') {
    if (prefs.highway) q.set('highway', prefs.highway === CITY ? 'city' : prefs.highway);
    if (prefs.dir) q.set('dir', prefs.dir);
  } else {
    q.set('area', prefs.area);
  }
  history.replaceState(null, '', `${location.pathname}?${q}`);
}

/** free | busy | full | out, for colour; `label` for the wait pill. */
function availability(s) {
  const inUse = s.connectors.occupied + s.connectors.charging + s.connectors.reserved;
  if (s.total === 0) return { cls: 'out', label: 'No data' };
  if (s.available > 0) {
    const cls = s.available <= Math.max(1, Math.floor(s.total / 5)) ? 'busy' : 'free';
    return { cls, label: 'No wait' };
  }
  if (s.wait_estimate_s == null || inUse === 0) return { cls: 'out', label: 'Out of service' };
  return { cls: 'full', label: `≈ ${formatDuration(s.wait_estimate_s)} wait` };
}

function meter(s) {
  const c = s.connectors;
  const n = Math.min(s.total, 24);
  const scale = s.total > 24 ? 24 / s.total : 1;
  const f = Math.round(c.available * scale);
  const b = Math.min(n - f, Math.round((c.occupied + c.charging + c.reserved) * scale));
  const cells = [];
  for (let i = 0; i < n; i++) cells.push(el('i', { class: i < f ? 'f' : i < f + b ? 'b' : 'x' }));
  return el('div', { class: 'meter', 'aria-hidden': 'true' }, cells);
}

function highwayOf(s) {
  return s.highway || CITY;
}

// ---------------------------------------------------------------- along a highway

function renderPickers() {
  const highways = [...new Set(stations.map(highwayOf))].sort((a, b) =>
    a === CITY ? 1 : b === CITY ? -1 : compareHighways(a, b));
  if (!highways.includes(prefs.highway)) prefs.highway = highways[0] || '';
  const sel = $('highway');
  const want = highways.join('|');
  if (sel.dataset.options !== want) {
    sel.replaceChildren(...highways.map((h) => {
      const n = stations.filter((s) => highwayOf(s) === h).length;
      return el('option', { value: h, text: h === CITY ? `City (${n})` : `${h} (${n})` });
    }));
    sel.dataset.options = want;
  }
  sel.value = prefs.highway;
  const dirs = [...new Set(stations.filter((s) => highwayOf(s) === prefs.highway).map((s) => s.direction || ''))]
    .sort((a, b) => 'NSEW'.indexOf(a) - 'NSEW'.indexOf(b));
  if (!dirs.includes(prefs.dir)) prefs.dir = dirs[0] ?? '';
  const box = $('dirs');
  const key = `${prefs.highway}|${dirs.join('')}|${prefs.dir}`;
  if (box.dataset.key !== key) {
    box.replaceChildren(...dirs.map((d) => el('button', {
      type: 'button', role: 'radio', 'aria-checked': String(d === prefs.dir), 'data-dir': d, 'aria-label': d ? directionLabel(d) : 'All directions', tabindex: d === prefs.dir ? '0' : '-1',
      onclick: () => { prefs.dir = d; savePrefs(); render(); },
      onkeydown: (e) => {
        if (!['ArrowLeft', 'ArrowRight', 'ArrowUp', 'ArrowDown'].includes(e.key)) return;
        e.preventDefault();
        const i = (dirs.indexOf(prefs.dir) + 1) % dirs.length;
        prefs.dir = dirs[i]; savePrefs(); render();
        box.querySelector(`[data-dir="${dirs[i]}"]`)?.focus();
      },
    }, d ? `${directionArrow(d)} ${directionLabel(d).replace(/bound$/, '')}` : 'All', d ? el('small', { text: directionLabel(d, { zh: true }).split(' · ')[1] || '' }) : null)));
    box.dataset.key = key;
  }
  box.closest('.field').hidden = dirs.length <= 1 && !dirs[0];
}

function renderRoute() {
  const list = stations
    .filter((s) => highwayOf(s) === prefs.highway && (s.direction || '') === prefs.dir)
    .filter((s) => s.lat != null && s.lon != null)
    .sort(travelOrder(prefs.dir));
  const free = list.reduce((a, s) => a + s.available, 0);
  const all = list.reduce((a, s) => a + s.total, 0);
  const full = list.filter((s) => s.total > 0 && s.available === 0).length;
  $('route-summary').textContent = list.length
    ? `${list.length} stations · ${free} of ${all} connectors free${full ? ` · ${full} full` : ''}${prefs.dir ? ` · in order of travel, ${directionLabel(prefs.dir).toLowerCase()}` : ''}`
    : 'No stations here.';
  $('route').replaceChildren(...list.map((s) => {
    const [zh, latin] = nameLines(s.name);
    const a = availability(s);
    return el('li', { class: `stop ${a.cls}`, 'data-station': s.id },
      el('span', { class: 'pin', 'aria-hidden': 'true' }),
      el('div', { class: 'name' }, el('div', { class: 'zh', text: zh || latin }), zh && latin ? el('div', { class: 'latin', text: latin }) : null),
      el('div', { class: 'avail' },
        el('div', { class: 'count' }, String(s.available), el('small', { text: ` / ${s.total} free` })),
        el('span', { class: 'wait', text: a.label })),
      meter(s));
  }));
}

// ---------------------------------------------------------------- one service area

function renderAreas() {
  const q = ($('area-search').value || '').toLowerCase().replace(/\s+/g, '');
  const groups = new Map();
  for (const s of stations) {
    const [zh, latin] = nameLines(s.name);
    const hay = `${s.name}${s.highway || ''}`.toLowerCase().replace(/\s+/g, '');
    if (q && !hay.includes(q)) continue;
    const key = `${zh || latin}|${s.highway || ''}`;
    if (!groups.has(key)) groups.set(key, { zh, latin, highway: s.highway, sides: [] });
    groups.get(key).sides.push(s);
  }
  const list = [...groups.values()]
    .sort((a, b) => compareHighways(a.highway || 'Z', b.highway || 'Z') || a.zh.localeCompare(b.zh, 'zh'))
    .slice(0, q ? 30 : 12);
  $('areas').replaceChildren(...(list.length ? list.map((g) => el('li', { class: 'area' },
    el('h2', {}, g.zh || g.latin, g.highway ? el('small', { class: 'hw', text: ` ${g.highway}` }) : null),
    g.zh && g.latin ? el('p', { class: 'latin', text: g.latin }) : null,
    g.sides.sort((a, b) => 'NSEW'.indexOf(a.direction) - 'NSEW'.indexOf(b.direction)).map((s) => {
      const a = availability(s);
      return el('div', { class: `side ${a.cls}`, 'data-station': s.id },
        el('div', { class: 'dir' }, s.direction ? `${directionArrow(s.direction)} ${directionLabel(s.direction)}` : 'Station',
          s.direction ? el('small', { text: directionLabel(s.direction, { zh: true }).split(' · ')[1] }) : null),
        el('div', { class: 'avail' }, el('div', { class: 'count' }, String(s.available), el('small', { text: ` / ${s.total} free` })), el('span', { class: 'wait', text: a.label })),
        meter(s));
    })))
    : [el('li', { class: 'empty', text: 'No station matches.' })]));
}

// ---------------------------------------------------------------- page

function render() {
  const road = prefs.tab === 'road';
  $('tab-road').setAttribute('aria-selected', String(road));
  $('tab-area').setAttribute('aria-selected', String(!road));
  $('tab-road').tabIndex = road ? 0 : -1;
  $('tab-area').tabIndex = road ? -1 : 0;
  $('view-road').hidden = !road;
  $('view-area').hidden = road;
  if (road) { renderPickers(); renderRoute(); } else renderAreas();
}

function showUpdated() {
  const u = $('updated');
  if (!lastOk) return;
  const age = Math.round((Date.now() - lastOk) / 1000);
  u.textContent = age < 3 ? 'Live · updated just now' : `Live · updated ${age} s ago`;
  u.classList.toggle('stale', age > 20);
}

async function poll() {
  try {
    const res = await fetch('/api/v1/public/stations', { cache: 'no-store' });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    stations = await res.json();
    lastOk = Date.now();
    $('error').hidden = true;
    render();
    document.body.dataset.ready = 'true';
  } catch {
    $('error').textContent = 'Cannot reach the network right now; showing the last known state and retrying.';
    $('error').hidden = false;
  }
  showUpdated();
}

function bind() {
  $('highway').addEventListener('change', (e) => { prefs.highway = e.target.value; prefs.dir = ''; savePrefs(); render(); });
  const tabs = [$('tab-road'), $('tab-area')];
  for (const t of tabs) {
    t.addEventListener('click', () => { prefs.tab = t.id === 'tab-road' ? 'road' : 'area'; savePrefs(); render(); });
    t.addEventListener('keydown', (e) => {
      if (e.key !== 'ArrowLeft' && e.key !== 'ArrowRight') return;
      prefs.tab = prefs.tab === 'road' ? 'area' : 'road';
      savePrefs(); render();
      (prefs.tab === 'road' ? tabs[0] : tabs[1]).focus();
    });
  }
  const search = $('area-search');
  search.value = prefs.area;
  search.addEventListener('input', () => { prefs.area = search.value; savePrefs(); renderAreas(); });
  if (prefs.highway === 'city') prefs.highway = CITY;
}

bind();
poll();
let timer = setInterval(poll, POLL_MS);
setInterval(showUpdated, 1000);
// No polling while the phone is in a pocket.
document.addEventListener('visibilitychange', () => {
  clearInterval(timer);
  if (!document.hidden) { poll(); timer = setInterval(poll, POLL_MS); }
});
