// A service area's robot lot (`/lot?station=ID`, staff token in `#token=`): the lot drawn live
// (bays, cars by state, the dock, robots with their battery and a line to their task), the
// robots and the cars as tables, and the staff override: pick a robot and a waiting car, Assign;
// Release a busy robot. The lot view is read again on every `lot_changed` of this station, at
// most four times a second, and every few seconds anyway so that waiting times move.

import { api, send, takeToken, whoAmI, showError, showOk, AuthError } from './cases.js';
import { openEvents } from './api.js';
import { el, nameLines, formatDuration } from './names.js';

const SVG_NS = 'http://www.w3.org/2000/svg';
const station = new URLSearchParams(location.search).get('station') || '';
const LOT = `/stations/${encodeURIComponent(station)}/lot`;
/** Least time between two reads of the lot view, ms. */
const MIN_REFRESH_MS = 250;

const $ = (id) => document.getElementById(id);

let view = null;
const pick = { robot: null, car: null };

const ROBOT_STATE = {
  idle: 'Idle', to_car: 'To car', charging: 'Charging', to_dock: 'To dock', docked: 'Docked', offline: 'Offline',
};
const CAR_STATE = {
  waiting: 'Waiting', assigned: 'Robot on its way', charging: 'Charging', served: 'Served', left: 'Left', cancelled: 'Cancelled',
};
const ACTIVE = new Set(['waiting', 'assigned', 'charging']);

/** An SVG element; `text` sets its text, `on*` attaches a listener. */
function s(tag, attrs = {}, ...children) {
  const e = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue;
    if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, String(v));
  }
  for (const c of children.flat()) if (c != null) e.append(c);
  return e;
}

/** "g4-changsha-s-R01" at station "g4-changsha-s" -> "R01". */
function shortRobot(id) {
  return id && id.startsWith(`${station}-`) ? id.slice(station.length + 1) : id || '';
}

const r1 = (v) => (Math.round(v * 10) / 10).toFixed(1);

function ago(now, at) {
  if (!at) return 'never';
  const s = (Date.parse(now) - Date.parse(at)) / 1000;
  return Number.isFinite(s) ? `${formatDuration(Math.max(0, s))} ago` : '–';
}

function carOf(id) {
  return view?.cars.find((c) => c.id === id) || null;
}

function robotOf(id) {
  return view?.robots.find((r) => r.id === id) || null;
}

/** A car staff may send a robot to: waiting, or assigned (the override takes it over). */
function pickable(c) {
  return c && (c.state === 'waiting' || c.state === 'assigned');
}

function carLabel(c) {
  return c ? `bay ${c.bay}${c.plate ? ` · ${c.plate}` : ''}` : '–';
}

// ------------------------------------------------------------------------------- banner

/** Whether the banner says that reading the lot failed (cleared by the next good read), not
 *  that staff were refused something (kept until dismissed or the next action). */
let bannerFromRead = false;

function banner(text) {
  $('banner-text').textContent = text;
  $('banner').hidden = !text;
  bannerFromRead = false;
}

function fail(e) {
  banner(e instanceof AuthError ? 'Sign-in token missing or refused: open this page with #token=…' : (e.message || String(e)));
}

// ------------------------------------------------------------------------------- drawing

let layoutKey = '';

/** Half the height of the dock as drawn: a slot for each robot, 3 m apart. */
function dockHalf(v) {
  return Math.max(3, (v.robots.length * 3 + 1) / 2);
}

/** The drawing's extent: the bays, the dock with its label and the robots, with a margin,
 *  on a 2 m grid so that a robot driving about does not rescale the drawing at every report. */
function extent(v) {
  const h = dockHalf(v);
  // Boxes as [x0, y0, x1, y1]: a bay as drawn, the dock and its label, a robot and its bar.
  const boxes = [
    ...v.bays.map((b) => [b.x - 1.2, b.y - 2.4, b.x + 1.2, b.y + 2.4]),
    [v.dock.x - 3, v.dock.y - h - 2, v.dock.x + 3, v.dock.y + h],
    ...v.robots.filter((r) => Number.isFinite(r.x) && Number.isFinite(r.y)).map((r) => [r.x - 1.5, r.y - 2, r.x + 3.7, r.y + 1.2]),
  ];
  let [x0, y0, x1, y1] = [Infinity, Infinity, -Infinity, -Infinity];
  for (const [a, b, c, d] of boxes) {
    x0 = Math.min(x0, a); y0 = Math.min(y0, b);
    x1 = Math.max(x1, c); y1 = Math.max(y1, d);
  }
  if (!Number.isFinite(x0)) return [0, 0, 40, 20];
  const m = 1.5;
  x0 = Math.floor((x0 - m) / 2) * 2; y0 = Math.floor((y0 - m) / 2) * 2;
  x1 = Math.ceil((x1 + m) / 2) * 2; y1 = Math.ceil((y1 + m) / 2) * 2;
  return [x0, y0, x1 - x0, y1 - y0];
}

function drawBays(v) {
  const h = dockHalf(v);
  const key = JSON.stringify([v.bays, v.dock, h]);
  if (key === layoutKey) return;
  layoutKey = key;
  $('layer-bays').replaceChildren(...v.bays.map((b, i) => s('g', { class: 'bay', 'data-bay': i },
    s('rect', { x: b.x - 1.2, y: b.y - 2.4, width: 2.4, height: 4.8, rx: 0.25 }),
    s('text', { x: b.x, y: b.y - 1.35, text: i }))));
  $('layer-dock').replaceChildren(s('g', { class: 'dock' },
    // Each robot has its own slot at the dock: a row of them through the dock point.
    s('rect', { x: v.dock.x - 3, y: v.dock.y - h, width: 6, height: 2 * h, rx: 0.6 }),
    s('text', { x: v.dock.x, y: v.dock.y - h - 0.6, text: 'Dock' })));
}

function drawCars(v) {
  $('layer-cars').replaceChildren(...v.cars.filter((c) => ACTIVE.has(c.state)).map((c) => {
    const b = v.bays[c.bay];
    if (!b) return null;
    return s('rect', {
      class: `car${pick.car === c.id ? ' selected' : ''}${pickable(c) ? ' pickable' : ''}`,
      'data-car': c.id, 'data-state': c.state, 'data-bay': c.bay,
      x: b.x - 0.9, y: b.y - 0.85, width: 1.8, height: 3.0, rx: 0.45,
      onclick: () => pickCar(c.id),
    }, s('title', { text: `${carLabel(c)} · ${CAR_STATE[c.state] || c.state}` }));
  }));
}

function drawTasks(v) {
  $('layer-tasks').replaceChildren(...v.robots.map((r) => {
    const t = r.task || {};
    if (!(t.kind === 'car' || t.kind === 'dock') || !Number.isFinite(t.x) || !Number.isFinite(t.y)) return null;
    if (Math.hypot(t.x - r.x, t.y - r.y) < 0.3) return null;
    return s('line', {
      class: `task ${t.kind}${r.online ? '' : ' offline'}`, 'data-robot': r.id, 'data-kind': t.kind,
      x1: r.x, y1: r.y, x2: t.x, y2: t.y,
    });
  }));
}

/** Robots are kept from one view to the next and moved, so the page can glide them. */
const robotNodes = new Map();

function drawRobots(v) {
  const layer = $('layer-robots');
  const seen = new Set();
  for (const r of v.robots) {
    if (!Number.isFinite(r.x) || !Number.isFinite(r.y)) continue;
    seen.add(r.id);
    let g = robotNodes.get(r.id);
    if (!g) {
      g = s('g', { class: 'robot', 'data-robot': r.id, onclick: () => pickRobot(r.id) },
        s('title'),
        // What a finger or a pointer hits: the robot, its battery bar and its name.
        s('rect', { class: 'hit', x: -1.5, y: -2, width: 5.2, height: 3.2 }),
        s('circle', { class: 'body', r: 1 }),
        s('rect', { class: 'batt-bg', x: -1.3, y: -1.8, width: 2.6, height: 0.5, rx: 0.12 }),
        s('rect', { class: 'batt', x: -1.3, y: -1.8, width: 0, height: 0.5, rx: 0.12 }),
        s('text', { class: 'label', x: 1.35, y: 0.1 }));
      robotNodes.set(r.id, g);
      layer.append(g);
    }
    const pct = Math.max(0, Math.min(100, r.battery_pct || 0));
    g.dataset.state = r.state;
    g.dataset.x = r.x;
    g.dataset.y = r.y;
    g.dataset.battery = Math.round(pct);
    g.classList.toggle('offline', !r.online);
    g.classList.toggle('selected', pick.robot === r.id);
    g.classList.toggle('low', pct < 25);
    // Through the CSSOM (the page's Content-Security-Policy forbids style attributes); CSS
    // lengths in an SVG transform are user units, here metres.
    g.style.transform = `translate(${r.x}px, ${r.y}px)`;
    g.querySelector('.batt').setAttribute('width', (2.6 * pct / 100).toFixed(2));
    g.querySelector('.label').textContent = shortRobot(r.id).slice(0, 8);
    g.querySelector('title').textContent = `${r.id} · ${ROBOT_STATE[r.state] || r.state} · ${Math.round(pct)} %`;
  }
  for (const [id, g] of robotNodes) {
    if (!seen.has(id)) { g.remove(); robotNodes.delete(id); }
  }
}

function drawLot(v) {
  const [x, y, w, h] = extent(v);
  $('lot-svg').setAttribute('viewBox', `${x} ${y} ${w} ${h}`);
  drawBays(v);
  drawCars(v);
  drawTasks(v);
  drawRobots(v);
}

// ------------------------------------------------------------------------------- tables

function taskText(r) {
  const t = r.task || {};
  let text = '–';
  if (t.kind === 'car') text = `car in bay ${t.bay} · ${r1(t.energy_kwh)} kWh`;
  else if (t.kind === 'dock') text = r.state === 'docked' ? 'recharge at the dock' : 'to the dock';
  return r.override ? [text, ' ', el('span', { class: 'chip override', text: 'override' })] : text;
}

function renderRobots(v) {
  $('robot-rows').replaceChildren(...v.robots.map((r) => {
    const pct = Math.max(0, Math.min(100, r.battery_pct || 0));
    const busy = r.task?.kind === 'car';
    return el('tr', {
      'data-robot': r.id, 'data-state': r.state, tabindex: '0',
      class: r.online ? null : 'offline',
      'aria-selected': String(pick.robot === r.id),
      onclick: (e) => { if (!e.target.closest('button')) pickRobot(r.id); },
      onkeydown: (e) => { if (e.key === 'Enter' && e.target === e.currentTarget) pickRobot(r.id); },
    },
    el('td', { class: 'id', title: r.id, text: shortRobot(r.id) }),
    el('td', {}, el('span', { class: 'rstate', 'data-state': r.state, text: ROBOT_STATE[r.state] || r.state }),
      // What the robot itself last said: staff see at once a robot that disagrees with its task.
      el('div', { class: 'sub reported', text: r.last_report_at ? `reports ${r.reported_state}` : 'never reported' })),
    el('td', { class: 'num' },
      el('span', { class: `battbar${pct < 25 ? ' low' : ''}`, 'aria-hidden': 'true' }, el('i', { style: `width:${pct.toFixed(0)}%` })),
      el('span', { class: 'pct', text: `${Math.round(pct)} %` })),
    el('td', { class: 'task' }, taskText(r)),
    el('td', { class: 'when', text: ago(v.now, r.last_report_at) }),
    el('td', { class: 'act' }, busy
      ? el('button', { type: 'button', class: 'btn release', 'data-robot': r.id, onclick: () => release(r.id), text: 'Release' })
      : null));
  }));
}

function renderCars(v) {
  $('cars-empty').hidden = v.cars.length > 0;
  $('car-rows').replaceChildren(...v.cars.map((c) => el('tr', {
    'data-car': c.id, 'data-state': c.state,
    class: [ACTIVE.has(c.state) ? null : 'ended', pickable(c) ? 'pickable' : null].filter(Boolean).join(' ') || null,
    tabindex: pickable(c) ? '0' : null,
    'aria-selected': String(pick.car === c.id),
    onclick: () => pickCar(c.id),
    onkeydown: (e) => { if (e.key === 'Enter') pickCar(c.id); },
  },
  el('td', { class: 'num', text: c.bay }),
  el('td', { class: 'plate', text: c.plate || '–' }),
  el('td', { class: 'num', text: `${r1(c.remaining_kwh)} / ${r1(c.energy_kwh)} kWh` }),
  el('td', { class: 'num', text: formatDuration(c.wait_s) }),
  el('td', {}, el('span', { class: 'cstate', 'data-state': c.state, text: CAR_STATE[c.state] || c.state })),
  el('td', { title: c.robot || '', text: c.robot ? shortRobot(c.robot) : '–' }))));
}

function renderSummary(v) {
  const st = v.stats || {};
  const item = (k, label, value) => el('span', { class: 'stat', 'data-k': k }, label, ' ', el('b', { text: value }));
  $('summary').replaceChildren(
    item('waiting', 'Waiting', st.waiting ?? 0),
    item('charging', 'Charging', st.charging ?? 0),
    item('served', 'Served', st.served ?? 0),
    item('mean_wait', 'Mean wait', formatDuration(st.mean_wait_s ?? 0)),
    item('robots_online', 'Robots online', `${st.robots_online ?? 0} of ${v.robots.length}`));
}

// ------------------------------------------------------------------------------- override

function renderPick() {
  const r = robotOf(pick.robot);
  const c = carOf(pick.car);
  $('pick-robot').textContent = r ? shortRobot(r.id) : '–';
  $('pick-car').textContent = c ? carLabel(c) : '–';
  $('assign').disabled = !(r && c);
  $('clear').disabled = !(r || c);
}

function redraw() {
  if (!view) return;
  drawCars(view);
  drawRobots(view);
  renderRobots(view);
  renderCars(view);
  renderPick();
}

function pickRobot(id) {
  pick.robot = pick.robot === id ? null : id;
  $('pick-msg').textContent = '';
  redraw();
}

function pickCar(id) {
  const c = carOf(id);
  if (!pickable(c)) return;
  pick.car = pick.car === id ? null : id;
  $('pick-msg').textContent = '';
  redraw();
}

async function assign() {
  const { robot, car } = pick;
  if (!robot || !car) return;
  const label = carLabel(carOf(car));
  try {
    const v = await send('POST', `${LOT}/assign`, { robot, car });
    pick.robot = null;
    pick.car = null;
    banner('');
    showOk($('pick-msg'), `${shortRobot(robot)} sent to the car in ${label}.`);
    render(v);
  } catch (e) {
    fail(e);
  }
}

async function release(robot) {
  try {
    const v = await send('POST', `${LOT}/release`, { robot });
    banner('');
    showOk($('pick-msg'), `${shortRobot(robot)} released; its car waits again.`);
    render(v);
  } catch (e) {
    fail(e);
  }
}

// ------------------------------------------------------------------------------- reading

function render(v) {
  // An answer to an older read must not undo a newer one (an override's answer, say).
  if (view && Date.parse(v.now) < Date.parse(view.now)) return;
  view = v;
  if (pick.robot && !robotOf(pick.robot)) pick.robot = null;
  if (pick.car && !pickable(carOf(pick.car))) pick.car = null;
  renderSummary(v);
  drawLot(v);
  renderRobots(v);
  renderCars(v);
  renderPick();
  document.body.dataset.ready = 'true';
}

let inFlight = false;
let again = false;
let lastRead = 0;
let timer = null;

async function refresh() {
  if (inFlight) { again = true; return; }
  inFlight = true;
  lastRead = Date.now();
  try {
    render(await api(LOT));
    if (bannerFromRead) banner('');
  } catch (e) {
    fail(e);
    bannerFromRead = true;
  } finally {
    inFlight = false;
    if (again) { again = false; refreshSoon(); }
  }
}

/** Reads the lot again soon: at once when the last read is old enough, else when it is. */
function refreshSoon() {
  if (timer) return;
  timer = setTimeout(() => { timer = null; refresh(); }, Math.max(0, lastRead + MIN_REFRESH_MS - Date.now()));
}

function setLive(cls, text) {
  $('live').className = `live ${cls}`;
  $('live-text').textContent = text;
}

async function main() {
  takeToken();
  $('banner-close').addEventListener('click', () => banner(''));
  $('assign').addEventListener('click', assign);
  $('clear').addEventListener('click', () => { pick.robot = null; pick.car = null; $('pick-msg').textContent = ''; redraw(); });
  if (!station) {
    $('station-name').textContent = 'No station given (?station=ID)';
    banner('Open this page from a station: /lot?station=ID');
    return;
  }
  $('station-name').textContent = station;
  try {
    await whoAmI($('who'));
  } catch (e) {
    showError($('who'), e);
    fail(e);
    return;
  }
  api(`/stations/${encodeURIComponent(station)}`).then((st) => {
    const [main, second] = nameLines(st.name || station);
    $('station-name').textContent = [main, second, station].filter(Boolean).join(' · ');
    document.title = `chargeops · robot lot · ${main}`;
  }).catch(() => {});
  await refresh();
  let wasOpen = false;
  openEvents({
    lot_changed: (ev) => { if (ev.station_id === station) refreshSoon(); },
    lagged: () => refreshSoon(),
  }, (state) => {
    if (state === 'open') {
      setLive('ok', 'live');
      // Changes while the feed was down were missed: read the lot again.
      if (wasOpen) refreshSoon();
      wasOpen = true;
    } else {
      setLive('bad', state === 'retrying' ? 'reconnecting…' : 'feed closed');
    }
  });
  setInterval(refreshSoon, 5000);
}

main();
